"""Server settings that guard what the server may do: finite default rewards, API keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from reward_server.api.auth import is_loopback
from reward_server.settings import RewardSettings


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
@pytest.mark.parametrize("name", ["REWARD_REWARD_CORRECT", "REWARD_REWARD_INCORRECT"])
def test_default_rewards_must_be_finite(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("REWARD_").lower()):
        RewardSettings()


KEY_A, KEY_B, KEY_C = "a" * 16, "B-._~+/" * 3 + "==", "c" * 64


@pytest.mark.parametrize("given", [f"{KEY_A},{KEY_B}", f" {KEY_A} , {KEY_B}\n", f'["{KEY_A}", "{KEY_B}"]'])
def test_api_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("REWARD_API_KEYS", given)
    keys = RewardSettings().api_keys
    assert [key.get_secret_value() for key in keys] == [KEY_A, KEY_B]
    assert KEY_A not in repr(RewardSettings())  # secrets


def test_api_keys_file_adds_its_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# the trainer\n{KEY_B}\n\n  {KEY_C}  \n")
    monkeypatch.setenv("REWARD_API_KEYS", KEY_A)
    monkeypatch.setenv("REWARD_API_KEYS_FILE", str(keys_file))
    assert [key.get_secret_value() for key in RewardSettings().api_keys] == [KEY_A, KEY_B, KEY_C]


@pytest.mark.parametrize("bad", ["too-short", "a" * 15, "semi;colon" * 3, "é" * 20, 'quote"' * 4])
def test_unusable_keys_are_refused_without_showing_them(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("REWARD_API_KEYS", f"{KEY_A},{bad}")
    with pytest.raises(ValidationError, match="key 2 of 2 is not a usable bearer token") as info:
        RewardSettings()
    assert bad not in str(info.value)


def test_a_bad_keys_file_is_named_without_its_content(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REWARD_API_KEYS_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="cannot read it"):
        RewardSettings()
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"{KEY_A}\nnot a key\n")
    monkeypatch.setenv("REWARD_API_KEYS_FILE", str(keys_file))
    with pytest.raises(ValidationError, match="line 2") as info:
        RewardSettings()
    assert "not a key" not in str(info.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.org", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_queue_without_redis_is_refused_naming_both_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWARD_CODE_EXECUTOR", "queue")
    with pytest.raises(ValidationError, match="REWARD_CODE_EXECUTOR=queue needs REWARD_REDIS_URL"):
        RewardSettings()
    monkeypatch.setenv("REWARD_REDIS_URL", "redis://127.0.0.1:6379/0")
    assert RewardSettings().use_queue


def test_the_metrics_port_must_not_be_the_http_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWARD_METRICS_PORT", "8000")
    with pytest.raises(ValidationError, match="REWARD_METRICS_PORT and REWARD_PORT are both 8000"):
        RewardSettings()
    assert RewardSettings(port=8001).metrics_port == 8000


def test_the_math_worker_memory_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RewardSettings().math_worker_memory_mb == 4096
    monkeypatch.setenv("REWARD_MATH_WORKER_MEMORY_MB", "0")  # no limit
    assert RewardSettings().math_worker_memory_mb == 0
    monkeypatch.setenv("REWARD_MATH_WORKER_MEMORY_MB", "-1")
    with pytest.raises(ValidationError, match="math_worker_memory_mb"):
        RewardSettings()
