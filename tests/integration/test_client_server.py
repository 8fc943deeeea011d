"""The reward client over a socket: a server that is down, and the sync client against a real
`reward-server serve` process (the `server` fixture). The async client's grading against the app
in-process is in tests/unit/reward_server/test_api_client.py.
"""

from __future__ import annotations

import time

import pytest

from reward_server.schemas import GradeGroup
from tests.conftest import ServerProcess, free_port
from trainer_client.client import AsyncRewardClient, RewardClient
from trainer_client.errors import RewardServerUnavailable

pytestmark = pytest.mark.slow

COMPLETIONS = ["so $\\boxed{0.5}$", "$\\boxed{2}$", "no answer here"]


def half_group(group_id: str = "half", backend: str = "math") -> GradeGroup:
    return GradeGroup(
        group_id=group_id, backend=backend, reference={"answer": "\\frac{1}{2}"}, completions=COMPLETIONS
    )


async def test_server_down_raises_unavailable_quickly() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    started = time.monotonic()
    async with AsyncRewardClient(url, max_retries=2, backoff_base_s=0.01, connect_timeout_s=2) as client:
        with pytest.raises(RewardServerUnavailable) as info:
            await client.grade([half_group()])
    assert time.monotonic() - started < 5
    assert info.value.attempts == 3 and info.value.last_status is None
    assert info.value.last_error is not None


def test_sync_client_against_the_server(server: ServerProcess) -> None:
    with RewardClient(server.url, timeout_s=60) as client:
        batch = client.grade_rewards([half_group()])
    assert batch.rewards.tolist() == [[1.0, -1.0, -1.0]]
