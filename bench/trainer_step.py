"""Step time of the training loop on the tiny model, split into generate / grade / update, with grading
overlapped with the next generation (the default) and without, against a real reward-server process.

"hidden" is the share of grading time the loop did not wait for: 1 - grade_wait / grade.
Prints a table and writes `bench/results/trainer_step.json` (`--out` for another file, e.g. a GPU run's).

    python bench/trainer_step.py [--steps 8] [--k 8] [--prompts 8] [--max-new-tokens 48] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine_info, start_server, timestamp  # noqa: E402

from trainer_client.config import load_config  # noqa: E402
from trainer_client.policy import pick_device  # noqa: E402
from trainer_client.train import train  # noqa: E402

MATH_500 = ROOT / "data/math/math_test_500.jsonl"
RESULTS = ROOT / "bench/results/trainer_step.json"


def run(url: str, overlap: bool, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        config = load_config(
            None,
            [
                f"data.path={args.data}",
                "data.prompt_template=Problem: {problem}\nSolution:",
                f"reward.url={url}",
                f"out_dir={out}",
                f"steps={args.steps}",
                f"overlap={str(overlap).lower()}",
                f"sampling.k={args.k}",
                f"sampling.prompts_per_step={args.prompts}",
                f"sampling.max_new_tokens={args.max_new_tokens}",
                f"model.device={args.device}",
                f"model.dtype={args.dtype}",
                "optim.lr=1e-4",
                "checkpoint_every=0",
                "tensorboard=false",
            ],
        )
        history = train(config)[1:]  # step 0 pays one-off start-up costs
    keys = ["time/generate_s", "time/grade_s", "time/grade_wait_s", "time/update_s", "time/step_s"]
    summary = {key.split("/")[1]: statistics.mean(h[key] for h in history) for key in keys}
    summary["hidden"] = 1 - summary["grade_wait_s"] / summary["grade_s"] if summary["grade_s"] else 0.0
    return summary


def device_name(device: str) -> str:
    resolved = pick_device(device)
    return torch.cuda.get_device_name(resolved) if resolved.type == "cuda" else resolved.type


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=8, help="B: prompts per step.")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--workers", type=int, default=1, help="REWARD_MATH_WORKERS of the server.")
    parser.add_argument("--device", default="cpu", help="Where the policy runs: cpu, cuda[:i] or auto.")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--data", type=Path, default=MATH_500, help="Prompts (JSONL); default MATH-500.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    process, url = start_server({"REWARD_MATH_WORKERS": str(args.workers)})
    try:
        modes = {"overlap": run(url, True, args), "sequential": run(url, False, args)}
    finally:
        process.terminate()
        process.wait(timeout=30)

    columns = ("generate s", "grade s", "waited s", "update s", "step s", "hidden")
    print(f"{'mode':<11} " + " ".join(f"{c:>10}" for c in columns))
    for name, m in modes.items():
        print(
            f"{name:<11} {m['generate_s']:>10.3f} {m['grade_s']:>10.3f} {m['grade_wait_s']:>10.3f} "
            f"{m['update_s']:>10.3f} {m['step_s']:>10.3f} {m['hidden']:>10.0%}"
        )
    result = {
        "bench": "trainer_step",
        "timestamp": timestamp(),
        "machine": machine_info() | {"device": device_name(args.device), "torch": torch.__version__},
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "out"}
        | {"model": "tiny (random weights)"},
        "modes": modes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
