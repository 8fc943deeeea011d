"""Server settings that guard what the server may do: finite default rewards."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reward_server.settings import RewardSettings


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
@pytest.mark.parametrize("name", ["REWARD_REWARD_CORRECT", "REWARD_REWARD_INCORRECT"])
def test_default_rewards_must_be_finite(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("REWARD_").lower()):
        RewardSettings()
