"""The reward client against a real `reward-server serve` process over HTTP (the `server` fixture)."""

from __future__ import annotations

import time

import pytest

from reward_server.schemas import GradeGroup, RewardSpec, Status
from tests.conftest import ServerProcess, free_port
from trainer_client.client import AsyncRewardClient, RewardClient
from trainer_client.errors import RewardRequestError, RewardServerUnavailable

pytestmark = pytest.mark.slow

COMPLETIONS = ["so $\\boxed{0.5}$", "$\\boxed{2}$", "no answer here"]


def half_group(group_id: str = "half", backend: str = "math") -> GradeGroup:
    return GradeGroup(
        group_id=group_id, backend=backend, reference={"answer": "\\frac{1}{2}"}, completions=COMPLETIONS
    )


async def test_grades_a_math_group_into_tensors(server: ServerProcess) -> None:
    async with AsyncRewardClient(server.url, timeout_s=60, connect_timeout_s=5) as client:
        response = await client.grade([half_group()], request_id="it-1")
        batch = await client.grade_rewards([half_group()], reward=RewardSpec(correct=1, incorrect=-1))
    assert response.request_id == "it-1"
    assert [r.status for r in response.groups[0].results] == [
        Status.CORRECT,
        Status.INCORRECT,
        Status.NO_ANSWER,
    ]
    assert batch.rewards.tolist() == [[1.0, -1.0, -1.0]]
    assert batch.classes.tolist() == [[0, 1, -1]]
    assert batch.correct.tolist() == [[True, False, False]]


async def test_large_batches_are_split_and_kept_in_order(server: ServerProcess) -> None:
    groups = [half_group(f"g{i}") for i in range(5)]
    async with AsyncRewardClient(
        server.url, max_groups_per_request=2, max_in_flight=2, timeout_s=60
    ) as client:
        batch = await client.grade_rewards(groups, request_id="split")
    assert batch.group_ids == [f"g{i}" for i in range(5)]
    assert batch.rewards.tolist() == [[1.0, -1.0, -1.0]] * 5


async def test_unknown_backend_raises_request_error_naming_the_field(server: ServerProcess) -> None:
    async with AsyncRewardClient(server.url, timeout_s=60) as client:
        with pytest.raises(RewardRequestError) as info:
            await client.grade([half_group("ok"), half_group("bad", backend="no-such-backend")])
    err = info.value
    assert err.status_code == 422 and err.error == "unknown_backend"
    assert "no-such-backend" in err.message
    assert err.fields[0]["loc"] == ["body", "groups", 1, "backend"]
    assert "body.groups.1.backend" in str(err)


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
