"""The trainer's reward client against the app in-process (conftest.py; the client over
`httpx.ASGITransport`): a group into tensors, batches split in order, a refusal naming its field.

Over a socket (the server down, the sync client) in tests/integration/test_client_server.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from reward_server.schemas import GradeGroup, RewardSpec, Status
from tests.unit.reward_server.conftest import InProcessApp
from trainer_client.client import AsyncRewardClient
from trainer_client.errors import RewardRequestError

pytestmark = pytest.mark.asyncio(loop_scope="module")

COMPLETIONS = ["so $\\boxed{0.5}$", "$\\boxed{2}$", "no answer here"]
Connect = Callable[..., AbstractAsyncContextManager[AsyncRewardClient]]


def half_group(group_id: str = "half", backend: str = "math") -> GradeGroup:
    return GradeGroup(
        group_id=group_id, backend=backend, reference={"answer": "\\frac{1}{2}"}, completions=COMPLETIONS
    )


@pytest.fixture
def connect(app: InProcessApp) -> Connect:
    """`connect(**options)`: an `AsyncRewardClient` with those options, of the module's app."""

    @asynccontextmanager
    async def client(**options: Any) -> AsyncIterator[AsyncRewardClient]:
        transport = httpx.ASGITransport(app=app.app)
        async with AsyncRewardClient("http://test", transport=transport, **options) as reward_client:
            yield reward_client

    return client


async def test_grades_a_math_group_into_tensors(connect: Connect) -> None:
    async with connect(timeout_s=60, connect_timeout_s=5) as client:
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


async def test_large_batches_are_split_and_kept_in_order(connect: Connect) -> None:
    groups = [half_group(f"g{i}") for i in range(5)]
    async with connect(max_groups_per_request=2, max_in_flight=2, timeout_s=60) as client:
        batch = await client.grade_rewards(groups, request_id="split")
    assert batch.group_ids == [f"g{i}" for i in range(5)]
    assert batch.rewards.tolist() == [[1.0, -1.0, -1.0]] * 5


async def test_unknown_backend_raises_request_error_naming_the_field(connect: Connect) -> None:
    async with connect(timeout_s=60) as client:
        with pytest.raises(RewardRequestError) as info:
            await client.grade([half_group("ok"), half_group("bad", backend="no-such-backend")])
    err = info.value
    assert err.status_code == 422 and err.error == "unknown_backend"
    assert "no-such-backend" in err.message
    assert err.fields[0]["loc"] == ["body", "groups", 1, "backend"]
    assert "body.groups.1.backend" in str(err)
