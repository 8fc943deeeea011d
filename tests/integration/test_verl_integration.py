"""The verl adapter inside real verl 0.9.1 (the .venv-integrations venv): the plugin loaded by installation
alone, advantages through verl's own `compute_advantage` and V1 `_compute_advantage`, and rewards through
verl's `naive` reward manager against a live reward server over HTTP.

The plugin test needs our package installed with its entry points (`pip install --no-deps -e .`): entry
points come from the installed metadata, not from the source tree.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shlex
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import DATA, REPO, ServerProcess

# verl and Ray warn about their own imports (Ray's moved state API, engines that are not installed).
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    verl = pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
    from verl.trainer.ppo import core_algos
    from verl.trainer.ppo.ray_trainer import compute_advantage
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from trainer_client.errors import RewardRequestError
    from trainer_client.estimators import available_estimators, compute_advantages
    from trainer_client.integrations import verl_reward
    from trainer_client.integrations.verl_estimators import (
        MissingAnswerClasses,
        answer_classes,
    )
    from trainer_client.integrations.verl_reward import RESULT_KEYS, group_answer_classes

pytestmark = [pytest.mark.integrations, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

PARAMS: dict[str, dict[str, Any]] = {
    "leave_p_out": {"p": 2},
    "softmax_loo": {"beta": 1.5},
    "passk_softmax_baseline": {"beta": 1.5},
    "pkpo": {"k": 3},
    "pkpo_loo1": {"k": 3},
}
NAMES = [f"ia_{name}" for name in available_estimators()]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter, without the variables that make verl import modules by name."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VERL_USE_EXTERNAL")}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**clean, **env}, timeout=300
    )


REGISTERED = (
    "import verl\n"
    "from verl.trainer.ppo import core_algos\n"
    "print(sorted(n for n in core_algos.ADV_ESTIMATOR_REGISTRY if n.startswith('ia_')))\n"
)


# --------------------------------------------------------------------------------------------------------
# Loading


def test_the_package_declares_the_verl_plugin_entry_point() -> None:
    points = {point.name: point.value for point in metadata.entry_points(group="verl.plugins")}
    assert points.get("inference_aware") == "trainer_client.integrations.verl_plugin", (
        "reinstall the package (pip install --no-deps -e .) so that its entry points are in the metadata"
    )


def test_installation_alone_registers_the_estimators_on_import_verl() -> None:
    done = run_python(REGISTERED)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted(NAMES))
    # Without plugins, nothing is registered: the names above came from the entry point.
    done = run_python(REGISTERED, VERL_USE_EXTERNAL_PLUGINS="none")
    assert done.stdout.strip() == "[]", done.stderr
    # verl's older mechanism works too.
    done = run_python(
        REGISTERED,
        VERL_USE_EXTERNAL_PLUGINS="none",
        VERL_USE_EXTERNAL_MODULES="trainer_client.integrations.verl_plugin",
    )
    assert done.stdout.strip() == str(sorted(NAMES)), done.stderr


def test_a_failing_registration_is_logged_at_warning() -> None:
    code = (
        "import logging, verl\n"
        "from verl.trainer.ppo import core_algos\n"
        "core_algos.register_adv_est('ia_passk_loo')(lambda **kw: None)  # taken by someone else\n"
        "try:\n"
        "    import trainer_client.integrations.verl_plugin\n"
        "except ValueError:\n"
        "    print('raised')\n"
    )
    done = run_python(code, VERL_USE_EXTERNAL_PLUGINS="none")
    assert done.stdout.strip() == "raised", done.stderr
    assert "registering the ia_* advantage estimators failed" in done.stderr


def test_the_trainer_modes_register_through_verl_use_external_modules() -> None:
    pytest.importorskip("transfer_queue")  # verl's V1 trainer needs it (verl's extra verl-core)
    code = (
        "import verl\n"
        "from verl.trainer.ppo.v1 import get_trainer_cls\n"
        "modes = ('ia_sync', 'ia_colocate_async', 'ia_separate_async')\n"
        "print([get_trainer_cls(m).__name__ for m in modes])\n"
    )
    done = run_python(code, VERL_USE_EXTERNAL_MODULES="trainer_client.integrations.verl_trainer")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(
        [
            "AnswerClassesPPOTrainerSync",
            "AnswerClassesPPOTrainerColocateAsync",
            "AnswerClassesPPOTrainerSeparateAsync",
        ]
    )


# --------------------------------------------------------------------------------------------------------
# Advantages through verl's compute_advantage


def ragged_batch(seed: int = 0) -> tuple[DataProto, torch.Tensor, list[list[int]], torch.Tensor]:
    """A verl batch of 5 prompts, groups of 5, 3 (filtered), 5, 4 and 1, rows shuffled, 3 NaN samples.

    Returns the DataProto, the scores [bs], the rows of each group, and random answer classes [bs].
    """
    generator = torch.Generator().manual_seed(seed)
    sizes = [5, 3, 5, 4, 1]
    uids = [f"prompt-{g}" for g, size in enumerate(sizes) for _ in range(size)]
    order = torch.randperm(len(uids), generator=generator).tolist()
    uids = [uids[i] for i in order]
    scores = torch.randint(0, 2, (len(uids),), generator=generator).float() * 2 - 1
    scores[[2, 7, 11]] = math.nan
    length = 8
    valid = torch.randint(1, length + 1, (len(uids),), generator=generator)
    mask = (torch.arange(length).unsqueeze(0) < valid.unsqueeze(1)).to(torch.int64)
    rewards = torch.zeros(len(uids), length)
    rewards[torch.arange(len(uids)), valid - 1] = scores
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": mask},
        non_tensors={"uid": np.array(uids, dtype=object)},
    )
    groups: dict[str, list[int]] = {}
    for row, uid in enumerate(uids):
        groups.setdefault(uid, []).append(row)
    classes = torch.randint(-1, 3, (len(uids),), generator=generator)
    return data, scores, list(groups.values()), classes


def expected_advantages(
    scores: torch.Tensor,
    groups: list[list[int]],
    name: str,
    classes: torch.Tensor | None,
    params: dict[str, Any],
) -> torch.Tensor:
    """compute_advantages on the re-grouped [G, n_max] matrix (NaN-padded), scattered back by hand."""
    n_max = max(len(rows) for rows in groups)
    matrix = torch.full((len(groups), n_max), math.nan, dtype=torch.float64)
    class_matrix = torch.full((len(groups), n_max), -1, dtype=torch.int64)
    for g, rows in enumerate(groups):
        matrix[g, : len(rows)] = scores[rows].double()
        if classes is not None:
            class_matrix[g, : len(rows)] = classes[rows]
    grouped = compute_advantages(
        matrix, name, classes=class_matrix if classes is not None else None, **params
    )
    out = torch.zeros(scores.shape[0], dtype=torch.float64)
    for g, rows in enumerate(groups):
        out[rows] = grouped[g, : len(rows)]
    return out


@pytest.mark.parametrize("verl_name", NAMES)
def test_compute_advantage_equals_compute_advantages(verl_name: str) -> None:
    name = verl_name.removeprefix("ia_")
    data, scores, groups, classes = ragged_batch()
    params = PARAMS.get(name, {})
    config = OmegaConf.create({"adv_estimator": verl_name, "inference_aware": params})
    majority = name in ("maj_loo", "maj_biased")
    if majority:
        with answer_classes(data.non_tensor_batch["uid"], classes):
            out = compute_advantage(data, adv_estimator=verl_name, config=config)
    else:
        out = compute_advantage(data, adv_estimator=verl_name, config=config)
    expected = expected_advantages(scores, groups, name, classes if majority else None, params)
    mask = data.batch["response_mask"]
    torch.testing.assert_close(out.batch["advantages"], expected.float().unsqueeze(-1) * mask)
    torch.testing.assert_close(out.batch["returns"], out.batch["advantages"])
    assert not torch.isnan(out.batch["advantages"]).any()
    assert out.batch["advantages"][torch.isnan(scores)].eq(0).all()


def test_majority_vote_without_classes_fails_with_an_explanation() -> None:
    data, *_ = ragged_batch()
    with pytest.raises(MissingAnswerClasses, match="trainer_mode=ia_sync"):
        compute_advantage(data, adv_estimator="ia_maj_loo", config=OmegaConf.create({}))


def test_mean_loo_is_verls_rloo_divided_by_n() -> None:
    """A cross-check against verl's own estimator: RLOO = n * mean_loo on full NaN-free groups."""
    n, prompts, length = 4, 6, 5
    generator = torch.Generator().manual_seed(1)
    uids = np.array([f"p{i % prompts}" for i in range(n * prompts)], dtype=object)
    rewards = torch.zeros(n * prompts, length)
    rewards[:, -1] = torch.rand(n * prompts, generator=generator)
    mask = torch.ones(n * prompts, length)

    def advantages(estimator: str) -> torch.Tensor:
        data = DataProto.from_dict(
            tensors={"token_level_rewards": rewards.clone(), "response_mask": mask},
            non_tensors={"uid": uids},
        )
        return compute_advantage(data, adv_estimator=estimator, config=OmegaConf.create({})).batch[
            "advantages"
        ]

    torch.testing.assert_close(advantages("ia_mean_loo") * n, advantages("rloo"), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------------
# A live reward server


@pytest.fixture(scope="module")
def live_server() -> Iterator[ServerProcess]:
    """One server for math and code (the process sandbox: no Docker)."""
    process = ServerProcess(
        {
            "REWARD_MATH_WORKERS": "2",
            "REWARD_MATH_TIMEOUT_S": "5",
            "REWARD_SANDBOX_BACKEND": "process",
            "REWARD_CODE_MAX_PARALLEL": "2",
        }
    )
    yield process
    process.stop()


@pytest.fixture
async def coalescers() -> AsyncIterator[dict[Any, Any]]:
    """The test loop's coalescers (one per settings), closed after the test."""
    yield verl_reward._COALESCERS.setdefault(asyncio.get_running_loop(), {})
    await verl_reward.aclose_coalescers()


class CharTokenizer:
    """Token id = code point + 1; 0 is the pad token, which decoding skips like a special token."""

    pad_token_id = 0

    def encode(self, text: str) -> list[int]:
        return [ord(char) + 1 for char in text]

    def decode(self, ids: Any, skip_special_tokens: bool = True) -> str:
        values = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return "".join(chr(i - 1) for i in values if not (skip_special_tokens and i == 0))


def verl_sample(
    tokenizer: CharTokenizer, response: str, ground_truth: Any, data_source: str, length: int = 400
) -> DataProto:
    """One row as verl's reward loop hands it to `run_single`: left-padded prompt, right-padded response."""
    prompt = torch.tensor([[0, 0] + tokenizer.encode("Q?")])
    ids = tokenizer.encode(response)
    assert len(ids) <= length
    responses = torch.tensor([ids + [0] * (length - len(ids))])
    attention = torch.cat(
        [torch.tensor([[0, 0, 1, 1]]), torch.tensor([[1] * len(ids) + [0] * (length - len(ids))])], dim=1
    )
    return DataProto.from_dict(
        tensors={"prompts": prompt, "responses": responses, "attention_mask": attention},
        non_tensors={
            "data_source": np.array([data_source], dtype=object),
            "reward_model": np.array([{"ground_truth": ground_truth, "style": "rule"}], dtype=object),
            "extra_info": np.array([{"index": 0}], dtype=object),
        },
    )


def reward_config(url: str, **reward_kwargs: Any) -> Any:
    return OmegaConf.create(
        {
            "reward": {
                "num_workers": 1,
                "custom_reward_function": {
                    "path": "pkg://trainer_client.integrations.verl_reward",
                    "name": "compute_score",
                    "reward_kwargs": {"url": url, **reward_kwargs},
                },
            }
        }
    )


ADD_TESTS = json.dumps({"inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "10\n"]})
SAMPLES = [
    # (response, ground truth, data source, status, score)
    ("We get $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}", "lighteval/MATH", "correct", 1.0),
    ("So the answer is $\\boxed{0.5}$", "\\frac{1}{2}", "DigitalLearningGmbH/MATH-lighteval", "correct", 1.0),
    ("The answer is $\\boxed{3}$.", "\\frac{1}{2}", "lighteval/MATH", "incorrect", -1.0),
    ("I do not know.", "\\frac{1}{2}", "lighteval/MATH", "no_answer", -1.0),
    ("48 / 2 = 24 and 48 + 24 = 72\n#### 72", "Natalia sold ... #### 72", "openai/gsm8k", "correct", 1.0),
    (
        "```python\na, b = map(int, input().split())\nprint(a + b)\n```",
        ADD_TESTS,
        "codecontests",
        "correct",
        1.0,
    ),
    ("```python\nprint(0)\n```", ADD_TESTS, "taco", "incorrect", -1.0),
]


async def test_naive_reward_manager_grades_through_the_live_server(
    live_server: ServerProcess, coalescers: dict[Any, Any]
) -> None:
    config = reward_config(live_server.url)
    compute_score = get_custom_reward_fn(config)  # verl's own loading: pkg:// path, reward_kwargs merged
    assert compute_score is not None
    tokenizer = CharTokenizer()
    manager = get_reward_manager_cls("naive")(config, tokenizer, compute_score)
    assert manager.is_async_reward_score
    outputs = await asyncio.gather(
        *(manager.run_single(verl_sample(tokenizer, text, gt, source)) for text, gt, source, *_ in SAMPLES)
    )
    for output, (_, _, _, status, score) in zip(outputs, SAMPLES, strict=True):
        assert output["reward_score"] == score, output
        extra = output["reward_extra_info"]
        assert tuple(extra) == RESULT_KEYS  # one key set, whatever the verdict
        assert extra["status"] == status and extra["acc"] == (1.0 if status == "correct" else 0.0)
    assert outputs[0]["reward_extra_info"]["pred"] and outputs[3]["reward_extra_info"]["pred"] == ""
    # Concurrent calls went out together: the math and code samples in one or two requests, not seven.
    (coalescer,) = coalescers.values()
    assert coalescer.requests_sent <= 2


async def test_the_reward_lands_on_the_last_response_token_and_nan_survives(
    live_server: ServerProcess, coalescers: dict[Any, Any]
) -> None:
    config = reward_config(live_server.url, on_error="nan")
    tokenizer = CharTokenizer()
    manager = get_reward_manager_cls("naive")(config, tokenizer, get_custom_reward_fn(config))
    rows = [verl_sample(tokenizer, "$\\boxed{2}$", "2", "math", length=16) for _ in range(2)]
    out = await manager.run_single(rows[0])
    batch = DataProto.concat(rows)
    scores = manager.assemble_rm_scores(batch, [out["reward_score"], math.nan])
    assert scores[0].tolist() == [0.0] * 10 + [1.0] + [0.0] * 5  # "$\boxed{2}$" is 11 tokens
    assert math.isnan(scores[1, 10])


async def test_a_refused_request_raises_the_servers_message(
    live_server: ServerProcess, coalescers: dict[Any, Any]
) -> None:
    """An unknown backend is refused with a 4xx: the call raises it (the run fails loudly)."""
    compute_score = get_custom_reward_fn(reward_config(live_server.url, backend="nope"))
    assert compute_score is not None
    with pytest.raises(RewardRequestError, match="nope"):
        await compute_score(data_source="math", solution_str="$\\boxed{2}$", ground_truth="2", extra_info={})


def test_group_answer_classes_against_the_live_server(live_server: ServerProcess) -> None:
    uids = ["a", "b", "a", "a", "b", "a"]
    completions = ["$\\boxed{3}$", "$\\boxed{1}$", "$\\boxed{0.5}$", "$\\boxed{3.0}$", "?", "$\\boxed{1/2}$"]
    classes = group_answer_classes(
        uids, completions, ["math"] * 6, ["\\frac{1}{2}"] * 4 + ["1", "\\frac{1}{2}"], url=live_server.url
    )
    # Group a: 3 opens class 0, 0.5 is correct (class 1), 3.0 joins 3, 1/2 joins the correct class.
    assert classes == [0, 0, 1, 0, -1, 1]


# --------------------------------------------------------------------------------------------------------
# The V1 trainer's own _compute_advantage with majority voting


class FakeTransferQueue:
    """The two calls of `transfer_queue` that `_compute_advantage` makes, over a dict of per-sample rows
    stored as verl's agent loop stores them (`list_of_dict_to_tensordict` of per-sample dicts)."""

    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self.rows = rows

    def kv_batch_get(self, keys: list[str], partition_id: str, select_fields: list[str]) -> Any:
        from verl.utils.tensordict_utils import list_of_dict_to_tensordict

        return list_of_dict_to_tensordict(
            [{f: self.rows[key][f] for f in select_fields if f in self.rows[key]} for key in keys]
        )

    def kv_batch_put(self, keys: list[str], partition_id: str, fields: Any) -> Any:
        from transfer_queue import KVBatchMeta

        for i, key in enumerate(keys):
            for field in fields.keys():
                self.rows[key][field] = fields[field][i]
        return KVBatchMeta(partition_id=partition_id, keys=list(keys), tags=[{}] * len(keys))


def test_ia_sync_trainer_gives_majority_vote_the_servers_group_classes(
    live_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("transfer_queue")
    from transfer_queue import KVBatchMeta
    from verl.trainer.ppo.v1 import trainer_base

    from trainer_client.integrations import verl_trainer

    tokenizer = CharTokenizer()
    # Two prompts, rows interleaved as the replay buffer may hand them over; rewards as the reward
    # function gave them (+1 correct, -1 otherwise).
    samples = [
        ("q1", "$\\boxed{3}$", "\\frac{1}{2}", -1.0),
        ("q2", "$\\boxed{7}$", "7", 1.0),
        ("q1", "$\\boxed{0.5}$", "\\frac{1}{2}", 1.0),
        ("q1", "$\\boxed{3.0}$", "\\frac{1}{2}", -1.0),
        ("q2", "no idea", "7", -1.0),
        ("q1", "$\\boxed{1/2}$", "\\frac{1}{2}", 1.0),
        ("q2", "$\\boxed{7}$", "7", 1.0),
        ("q1", "$\\boxed{3}$", "\\frac{1}{2}", -1.0),
    ]
    rows, keys = {}, []
    for i, (uid, text, gold, score) in enumerate(samples):
        ids = torch.tensor(tokenizer.encode(text))
        rm_scores = torch.zeros(len(ids))
        rm_scores[-1] = score
        keys.append(f"{uid}_{i}_0")
        rows[keys[-1]] = {
            "uid": uid,
            "responses": ids,
            "response_mask": torch.ones(len(ids), dtype=torch.int64),
            "rm_scores": rm_scores,
            "data_source": "lighteval/MATH",
            "reward_model": {"ground_truth": gold, "style": "rule"},
        }
    fake = FakeTransferQueue(rows)
    monkeypatch.setattr(trainer_base, "tq", fake)
    monkeypatch.setattr(verl_trainer, "tq", fake)
    trainer = object.__new__(verl_trainer.TRAINER_MODES["ia_sync"])
    trainer.tokenizer = tokenizer
    trainer.config = OmegaConf.create(
        {
            "algorithm": {
                "adv_estimator": "ia_maj_loo",
                "gamma": 1.0,
                "lam": 1.0,
                "use_kl_in_reward": False,
                "norm_adv_by_std_in_grpo": True,
            },
            "actor_rollout_ref": {"rollout": {"n": 4}},
            "reward": {"custom_reward_function": {"reward_kwargs": {"url": live_server.url}}},
        }
    )
    trainer._compute_advantage(KVBatchMeta(partition_id="train", keys=keys, tags=[{}] * len(keys)), {})
    got = torch.stack([rows[key]["advantages"][-1] for key in keys]).double()

    # The same through compute_advantages, with the classes of each prompt graded as one group.
    groups = {"q1": [0, 2, 3, 5, 7], "q2": [1, 4, 6]}
    classes = torch.tensor(
        group_answer_classes(
            [s[0] for s in samples], [s[1] for s in samples], ["math"] * 8, [s[2] for s in samples],
            url=live_server.url,
        )
    )  # fmt: skip
    assert classes[groups["q1"]].tolist() == [0, 1, 0, 1, 0]  # 3, 0.5, 3.0, 1/2, 3: wrong majority
    scores = torch.tensor([s[3] for s in samples])
    expected = expected_advantages(scores, list(groups.values()), "maj_loo", classes, {})
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert got.abs().sum() > 0
    # Advantages are broadcast over each response.
    for key in keys:
        assert torch.equal(
            rows[key]["advantages"], rows[key]["advantages"][-1].expand_as(rows[key]["advantages"])
        )


def test_ia_sync_trainer_leaves_other_estimators_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transfer_queue")
    from verl.trainer.ppo.v1 import trainer_base

    from trainer_client.integrations import verl_trainer

    calls = []
    monkeypatch.setattr(
        trainer_base.PPOTrainer, "_compute_advantage", lambda self, b, m: calls.append(b) or b
    )
    monkeypatch.setattr(verl_trainer, "group_answer_classes", lambda *a, **k: pytest.fail("graded"))
    trainer = object.__new__(verl_trainer.TRAINER_MODES["ia_sync"])
    trainer.config = OmegaConf.create({"algorithm": {"adv_estimator": "ia_passk_loo"}})
    assert trainer._compute_advantage("batch", {}) == "batch" and calls == ["batch"]


# --------------------------------------------------------------------------------------------------------
# examples/verl


EXAMPLES = REPO / "examples" / "verl"


def script_overrides(script: Path) -> list[str]:
    """The Hydra overrides of an example script's `python -m verl.trainer.main_ppo` command."""
    lines = script.read_text().split("python -m verl.trainer.main_ppo \\\n", 1)[1].split('"$@"', 1)[0]
    env = {"DATA": "/data", "MODEL": "Qwen/Qwen2.5-1.5B", "REWARD_URL": "http://rs:8000", "N_GPUS": "8"}
    text = " ".join(line.rstrip(" \\") for line in lines.splitlines())
    for name, value in env.items():
        text = text.replace(f"${name}", value)
    return shlex.split(text)


@pytest.mark.parametrize("script", ["math_passk.sh", "code_passk.sh", "math_majority.sh"])
def test_example_commands_compose_with_verls_own_config(script: str) -> None:
    from hydra import compose, initialize_config_dir

    overrides = script_overrides(EXAMPLES / script)
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)  # an unknown key raises here
    assert config.algorithm.adv_estimator in core_algos.ADV_ESTIMATOR_REGISTRY
    assert config.trainer.use_v1
    function = config.reward.custom_reward_function
    assert get_custom_reward_fn(config) is not None and function.reward_kwargs.url == "http://rs:8000"
    if "majority" in script:
        assert config.trainer.v1.trainer_mode == "ia_sync"
        text = (EXAMPLES / script).read_text()
        assert "VERL_USE_EXTERNAL_MODULES=trainer_client.integrations.verl_trainer" in text


async def test_prepared_code_data_is_graded_through_verl(
    live_server: ServerProcess, coalescers: dict[Any, Any], tmp_path: Path
) -> None:
    """prepare_data.py's parquet row, as verl's dataset hands it on, through the naive manager."""
    import pandas as pd

    out, problems = tmp_path / "code.parquet", DATA / "code/dev_problems.jsonl"
    prepare = [sys.executable, str(EXAMPLES / "prepare_data.py"), "code", str(problems), str(out)]
    subprocess.run(prepare, check=True, capture_output=True)
    row = pd.read_parquet(out).iloc[0]
    solutions = json.loads(problems.read_text().splitlines()[0])["solutions"]
    right, wrong = (next(s["code"] for s in solutions if s["expected"] == want) for want in ("pass", "fail"))
    config = reward_config(live_server.url)
    tokenizer = CharTokenizer()
    manager = get_reward_manager_cls("naive")(config, tokenizer, get_custom_reward_fn(config))
    ground_truth = row.reward_model["ground_truth"]
    results = []
    for code in (right, wrong):
        sample = verl_sample(tokenizer, f"```python\n{code}\n```", ground_truth, row.data_source, 4000)
        results.append(await manager.run_single(sample))
    assert [r["reward_extra_info"]["status"] for r in results] == ["correct", "incorrect"]
