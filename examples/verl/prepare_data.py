"""verl RL parquet from our JSONL: data_source, prompt, ability, reward_model.ground_truth, extra_info.

    python examples/verl/prepare_data.py math data/math/math_test_500.jsonl ~/data/ia_math/test.parquet
    python examples/verl/prepare_data.py code data/code/dev_problems.jsonl ~/data/ia_code/train.parquet

- math: rows with `problem` and `answer` (MATH's fields; GSM8K's worked "... #### 42" answers work too).
  `data_source` is `--data-source` (default HuggingFaceH4/MATH-500), which our reward function maps to the
  math backend; `ground_truth` is the answer.
- code: rows with `prompt` and `tests` (`[{"input", "output"}]`, stdin programs, or call tests with
  `fn_name`), as data/code/dev_problems.jsonl. `ground_truth` is verl's JSON string
  `{"inputs": [...], "outputs": [...], "fn_name"?}`, which our reward function sends as TACO's
  `input_output`; `data_source` defaults to codecontests.

verl's own `examples/data_preprocess/math_dataset.py` and `gsm8k.py` write the same schema from the Hugging
Face datasets (data_source lighteval/MATH and openai/gsm8k); those files work unchanged.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

MATH_INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."
CODE_INSTRUCTION = "Write a Python 3 program that solves the problem, in a ```python``` block."


def math_row(row: dict[str, Any], index: int, data_source: str) -> dict[str, Any]:
    return {
        "data_source": data_source,
        "prompt": [{"role": "user", "content": f"{row['problem']} {MATH_INSTRUCTION}"}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": str(row["answer"])},
        "extra_info": {"index": index, "id": str(row.get("unique_id", index))},
    }


def code_row(row: dict[str, Any], index: int, data_source: str) -> dict[str, Any]:
    tests: dict[str, Any] = {
        "inputs": [test["input"] for test in row["tests"]],
        "outputs": [test["output"] for test in row["tests"]],
    }
    if row.get("fn_name"):
        tests["fn_name"] = row["fn_name"]
    return {
        "data_source": data_source,
        "prompt": [{"role": "user", "content": f"{row['prompt']}\n\n{CODE_INSTRUCTION}"}],
        "ability": "code",
        # A JSON string, as verl's code datasets store it: parquet cannot hold ragged nested values well.
        "reward_model": {"style": "rule", "ground_truth": json.dumps(tests)},
        "extra_info": {"index": index, "id": str(row.get("id", index))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["math", "code"])
    parser.add_argument("jsonl", type=Path)
    parser.add_argument("out", type=Path, help="The parquet file to write.")
    parser.add_argument("--data-source", help="Default: HuggingFaceH4/MATH-500 (math), codecontests (code).")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.jsonl.read_text().splitlines() if line.strip()]
    if args.kind == "math":
        source = args.data_source or "HuggingFaceH4/MATH-500"
        records = [math_row(row, i, source) for i, row in enumerate(rows)]
    else:
        source = args.data_source or "codecontests"
        records = [code_row(row, i, source) for i, row in enumerate(rows)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(records).to_parquet(args.out)
    print(f"wrote {len(records)} rows to {args.out}")


if __name__ == "__main__":
    main()
