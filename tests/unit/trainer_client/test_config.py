"""The trainer config: estimator parameters checked against the estimator and the group size at load time
(with compute_advantages' own rules), and every field documented."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from tests.conftest import REPO
from trainer_client.cli import app
from trainer_client.config import EstimatorConfig, TrainConfig, load_config
from trainer_client.config_doc import config_markdown
from trainer_client.estimators import compute_advantages


def _load(**estimator: Any) -> TrainConfig:
    """A config with the group size `n` (sampling.k) and the given estimator fields."""
    n = estimator.pop("n")
    overrides = ["data.path=prompts.jsonl", f"sampling.k={n}"]
    overrides += [f"estimator.{field}={value}" for field, value in estimator.items()]
    return load_config(None, overrides)


# (n, estimator fields): combinations that load.
VALID = [
    (4, {"name": "passk_loo"}),
    (4, {"name": "passk_loo", "k": 4}),
    (8, {"name": "passk_biased", "k": 8}),
    (4, {"name": "mean_loo", "k": 2}),  # mean_loo ignores any 1 <= k <= n
    (4, {"name": "maj_loo"}),
    (4, {"name": "maj_biased", "k": 4}),
    (8, {"name": "pkpo", "k": 4}),
    (8, {"name": "pkpo_loo1", "k": 8}),
    (8, {"name": "pkpo_loo1", "k": 1}),
    (4, {"name": "leave_p_out", "p": 1}),
    (4, {"name": "leave_p_out", "p": 3}),
    (4, {"name": "softmax_loo", "beta": 0}),
    (4, {"name": "passk_softmax_baseline", "beta": 2.5}),
    (1, {"name": "reward"}),
]

# (n, estimator fields, words the message must hold): combinations that fail at load.
INVALID = [
    (8, {"name": "pkpo"}, ["estimator.name='pkpo'", "sampling.k=8", "requires k"]),
    (8, {"name": "pkpo", "k": 9}, ["estimator.k=9", "sampling.k=8", "exceeds the group size"]),
    (8, {"name": "pkpo_loo1", "k": 0}, ["estimator.k=0", "positive"]),
    (4, {"name": "passk_loo", "k": 2}, ["estimator.name='passk_loo'", "estimator.k=2", "sampling.k=4"]),
    (4, {"name": "maj_loo", "k": 8}, ["estimator.k=8", "sampling.k=4"]),
    (4, {"name": "leave_p_out"}, ["estimator.name='leave_p_out'", "requires p"]),
    (4, {"name": "leave_p_out", "p": 4}, ["estimator.p=4", "sampling.k=4", "n - 1 = 3"]),
    (4, {"name": "leave_p_out", "p": 0}, ["estimator.p=0", "1 <= p"]),
    (4, {"name": "softmax_loo"}, ["estimator.name='softmax_loo'", "requires beta"]),
    (4, {"name": "softmax_loo", "beta": -1}, ["estimator.beta=-1.0", "beta must be finite and >= 0"]),
    (4, {"name": "passk_softmax_baseline", "beta": ".inf"}, ["estimator.beta=inf", "finite"]),
    (4, {"name": "passk_at_k"}, ["estimator.name='passk_at_k' is not an estimator", "passk_loo", "reward"]),
    (4, {"name": "passk_loo", "p": 2}, ["estimator.p set", "estimator.name='passk_loo' does not use it"]),
    (8, {"name": "pkpo", "k": 4, "beta": 1}, ["estimator.beta set", "'pkpo' does not use it"]),
    (4, {"name": "reward", "k": 4}, ["estimator.k set", "'reward' does not use it"]),
    (4, {"name": "reward", "p": 1, "beta": 1}, ["estimator.p and estimator.beta set", "use them"]),
]


@pytest.mark.parametrize(("n", "estimator"), VALID)
def test_valid_estimator_parameters_load(n: int, estimator: dict[str, Any]) -> None:
    config = _load(n=n, **estimator)
    assert config.sampling.k == n
    assert config.estimator.name == estimator["name"]


@pytest.mark.parametrize(("n", "estimator", "words"), INVALID)
def test_invalid_estimator_parameters_fail_at_load(
    n: int, estimator: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(ValidationError) as info:
        _load(n=n, **estimator)
    [error] = info.value.errors()
    assert error["loc"] == ("estimator",)
    for word in words:
        assert word in error["msg"]


# Beyond compute_advantages' rules the config refuses only parameters that its estimator does not use.
UNUSED_PARAMETER = [(n, e) for n, e, words in INVALID if any("does not use" in word for word in words)]


@pytest.mark.parametrize(
    ("n", "estimator"),
    [(n, e) for n, e in VALID if e["name"] != "reward"]
    + [(n, e) for n, e, _ in INVALID if e["name"] != "reward" and (n, e) not in UNUSED_PARAMETER],
)
def test_load_time_check_agrees_with_compute_advantages(n: int, estimator: dict[str, Any]) -> None:
    """The config accepts what compute_advantages accepts for groups of n: the same rules, from one place."""
    params = {field: value for field, value in estimator.items() if field != "name"}
    if params.get("beta") == ".inf":
        params["beta"] = math.inf
    rewards = torch.rand(3, n)
    classes = torch.randint(-1, 3, (3, n))
    try:
        compute_advantages(rewards, estimator["name"], classes=classes, **params)
        accepted = True
    except ValueError:
        accepted = False
    try:
        _load(n=n, **estimator)
        loaded = True
    except ValidationError:
        loaded = False
    assert loaded == accepted


def test_an_invalid_group_size_is_reported_alone() -> None:
    """sampling.k < 1 is reported as such; the estimator is not checked against that group size."""
    with pytest.raises(ValidationError) as info:
        _load(n=0, name="pkpo", k=4)
    assert [error["loc"] for error in info.value.errors()] == [("sampling", "k")]


def test_the_check_runs_for_yaml_files_too(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("data:\n  path: p.jsonl\nsampling:\n  k: 4\nestimator:\n  name: pkpo\n  k: 6\n")
    with pytest.raises(ValidationError, match="estimator.k=6"):
        load_config(path)
    assert load_config(path, ["estimator.k=4"]).estimator.k == 4


def test_the_command_line_names_the_fields_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("data:\n  path: p.jsonl\nestimator:\n  name: leave_p_out\n")
    result = CliRunner().invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == 2
    assert "estimator: Value error, estimator.name='leave_p_out'" in result.output
    assert "requires p" in result.output


def test_the_example_config_loads() -> None:
    config = load_config(REPO / "examples" / "train_toy.yaml")
    assert config.estimator.name == "passk_biased"


def test_estimator_check_on_its_own() -> None:
    EstimatorConfig(name="pkpo", k=4).check(n=4)
    with pytest.raises(ValueError, match="exceeds the group size n=3"):
        EstimatorConfig(name="pkpo", k=4).check(n=3)


def _sections(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    fields = []
    for name, field in model.model_fields.items():
        fields.append((prefix + name, field.description))
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields += _sections(annotation, f"{prefix}{name}.")
    return fields


def test_every_field_has_a_description() -> None:
    fields = _sections(TrainConfig)
    assert len(fields) > 40
    assert [name for name, description in fields if not description] == []


def test_docs_trainer_config_md_is_current() -> None:
    current = (REPO / "docs" / "trainer-config.md").read_text()
    assert current == config_markdown(), "regenerate: trainer-client config-doc > docs/trainer-config.md"


def test_the_config_doc_command_prints_it() -> None:
    result = CliRunner().invoke(app, ["config-doc"])
    assert result.exit_code == 0
    assert result.output == config_markdown()
    for name, field in TrainConfig.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            assert f"\n## `{name}`\n" in result.output
            chapter = result.output.split(f"\n## `{name}`\n")[1].split("\n## ")[0]
            for sub_name, sub_field in section.model_fields.items():
                assert f"| `{sub_name}` |" in chapter
                assert str(sub_field.description).replace("|", "\\|") in chapter
        else:
            assert f"| `{name}` |" in result.output.split("\n## Top level\n")[1]
