"""The trade-off report: tradeoff.json's schema, the Markdown table and the plot, from synthetic runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainer_client.reproduce.report import summarise, write_report
from trainer_client.reproduce.tradeoff import MAX_K, TradeoffConfig, quick_config

KS = [str(k) for k in range(1, MAX_K + 1)]
MAJ_KS = ["1", "2", "4", "8", "16", "32", "64", "100"]


def fake_run(seed: int, pass1: float) -> dict[str, Any]:
    passes = {k: 1 - (1 - pass1) ** int(k) for k in KS}
    curve = {"step": [0, 10], "kl": [0.0, 0.1 + seed], "pass@1": [0.3, pass1], "pass@8": [0.7, 0.8]}
    return {
        "seed": seed,
        "pass_at_k": passes,
        "pass_at_k_sampled": passes,
        "maj_at_k": {k: pass1 for k in MAJ_KS},
        "kl": 0.1 + seed,
        "curve": curve,
    }


def check_schema(result: dict[str, Any], names: list[str], seeds: int) -> None:
    """The keys issue 11 asks for (shared with the end-to-end test)."""
    assert set(result) >= {"config", "initial", "estimators"}
    assert set(result["initial"]["pass_at_k"]) == set(KS)
    assert list(result["estimators"]) == names
    for entry in result["estimators"].values():
        assert set(entry) >= {"pass_at_k", "pass_at_k_se", "maj_at_k", "curves", "seeds"}
        assert set(entry["pass_at_k"]) == set(KS) == set(entry["pass_at_k_se"])
        assert entry["seeds"] == seeds
        assert {"step", "kl", "pass@1"} <= set(entry["curves"])
        assert all(0 <= v <= 1 for v in entry["pass_at_k"].values())


def test_summary_schema_and_report_files(tmp_path: Path) -> None:
    config = json.loads(TradeoffConfig().model_dump_json())
    initial = fake_run(0, 0.3) | {"kl": 0.0}
    runs = {
        "mean_loo": [fake_run(0, 0.4), fake_run(1, 0.42)],
        "passk_loo": [fake_run(0, 0.24), fake_run(1, 0.25)],
    }
    result = summarise(config, initial, runs)
    check_schema(result, ["mean_loo", "passk_loo"], 2)
    mean = result["estimators"]["mean_loo"]
    assert mean["pass_at_k"]["1"] == pytest.approx(0.41)
    assert mean["pass_at_k_se"]["1"] == pytest.approx(0.01)  # stdev 0.01414 / sqrt(2)
    assert mean["curves"]["kl"] == pytest.approx([0.0, 0.6])
    write_report(result, tmp_path)
    assert json.loads((tmp_path / "tradeoff.json").read_text()) == result
    table = (tmp_path / "tradeoff.md").read_text()
    assert "| mean PG (mean_loo) | 41.0 ± 1.0 |" in table and "| warm start (SFT) | 30.0 |" in table
    assert (tmp_path / "tradeoff.png").stat().st_size > 10_000


def test_one_seed_has_no_standard_error(tmp_path: Path) -> None:
    result = summarise({}, fake_run(0, 0.3), {"passk_biased": [fake_run(0, 0.25)]})
    assert result["estimators"]["passk_biased"]["pass_at_k_se"]["1"] is None
    assert (
        "25.0 |"
        in (
            write_report(result | {"config": json.loads(quick_config().model_dump_json())}, tmp_path)[1]
        ).read_text()
    )


def test_quick_is_one_seed_unless_told() -> None:
    assert quick_config().seeds == 1 and quick_config(seeds=2).seeds == 2
    assert TradeoffConfig().seeds == 3
