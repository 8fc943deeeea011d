"""One InferenceAwareGRPOTrainer step on 2 CPU processes; run by test_trl_integration.py under torchrun.

    python -m torch.distributed.run --nproc_per_node 2 tests/integration/trl_two_process_step.py URL OUT_DIR

Each process holds 6 of the step's 12 completions (3 prompts x 4), so the middle prompt's group straddles
the two processes. Each writes what it used to OUT_DIR/rank<r>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from datasets import Dataset
from trl import GRPOConfig

from trainer_client.integrations.trl import InferenceAwareGRPOTrainer, make_reward_func
from trainer_client.tiny_model import build_tiny_model


def main(url: str, out: Path) -> None:
    model, tokenizer = build_tiny_model(seed=0)
    digits = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    config = GRPOConfig(
        output_dir=str(out / "trainer"),
        use_cpu=True,
        report_to=[],
        max_steps=1,
        per_device_train_batch_size=6,
        num_generations=4,
        max_completion_length=1,
        save_strategy="no",
        seed=0,
        generation_kwargs={
            "suppress_tokens": [i for i in range(len(tokenizer)) if i not in digits],
            "sequence_bias": {(digits[7],): 2.0, (digits[3],): 1.5},
        },
    )
    dataset = Dataset.from_list(
        [
            {"prompt": "3+4=", "answer": "7"},
            {"prompt": "1+2=", "answer": "3"},
            {"prompt": "2+5=", "answer": "7"},
        ]
    )
    reward = make_reward_func(url)
    trainer = InferenceAwareGRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=reward,
        args=config,
        train_dataset=dataset,
        estimator="maj_loo",
    )
    seen: dict[str, object] = {}
    generate_and_score = trainer._generate_and_score_completions

    def recording(inputs: list[dict[str, object]]) -> dict[str, object]:
        output = generate_and_score(inputs)
        seen["advantages"] = output["advantages"].tolist()
        seen["rewards_per_func"] = trainer._ia_rewards_per_func.tolist()
        seen["classes"] = trainer._ia_classes.tolist()
        assert reward.last is not None
        seen["local_texts"] = reward.last.texts
        seen["local_classes"] = reward.last.classes
        seen["local_references"] = reward.last.references
        return output

    trainer._generate_and_score_completions = recording
    trainer.train()
    rank = trainer.accelerator.process_index
    seen["num_processes"] = trainer.accelerator.num_processes
    (out / f"rank{rank}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
