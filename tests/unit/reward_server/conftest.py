"""The app in-process: `create_app()` behind `httpx.ASGITransport`, its lifespan run by hand.

What the request/response logic decides (status codes, error bodies, verdicts, authentication) is tested
here, without a socket or a server process; tests/integration keeps what needs them.

`in_process_app(**settings)` starts one app; the `app` fixture shares one per module (its event loop is the
module's: such a module sets `pytestmark = pytest.mark.asyncio(loop_scope="module")`), with the settings of
the `app_settings` fixture, which a module overrides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from reward_server.api import app as app_module
from reward_server.backends.base import AnyBackend, Verdict
from reward_server.backends.code_sandbox import CodeBackend
from reward_server.backends.math_sympy import MathBackend
from reward_server.code_execution.base import ProgramExecutor
from reward_server.code_grading import CodeProblem
from reward_server.schemas import Status
from reward_server.settings import RewardSettings
from tests.conftest import clear_our_environ


class PassingExecutor:
    """Every program passes: no sandbox is started (for tests of what surrounds the run, not the run)."""

    description = "test double"
    ready = True

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def run_all(self, problem: CodeProblem, codes: Sequence[str]) -> list[Verdict]:
        return [Verdict(Status.CORRECT) for _ in codes]


@dataclass
class InProcessApp:
    http: httpx.AsyncClient  # base URL http://test
    app: FastAPI
    backends: Mapping[str, AnyBackend]


@asynccontextmanager
async def in_process_app(
    executor: ProgramExecutor | None = None, **settings: Any
) -> AsyncIterator[InProcessApp]:
    """The app with the real math backend and the code backend over `executor` (default `PassingExecutor`).

    Args:
        executor: what runs the code backend's programs.
        **settings: `RewardSettings` fields; the rest are the defaults, whatever the shell's environment.
    """
    with pytest.MonkeyPatch.context() as patch:
        clear_our_environ(patch)  # a module-scoped app is built before the autouse `clean_environ`
        config = RewardSettings(**settings)
        backends: dict[str, AnyBackend] = {
            "math": MathBackend(config),
            "code": CodeBackend(config, executor=executor or PassingExecutor()),
        }
        patch.setattr(app_module, "create_backends", lambda _settings: backends)
        app = app_module.create_app(config)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
                yield InProcessApp(http, app, backends)


@pytest.fixture(scope="module")
def app_settings() -> dict[str, Any]:
    """The `RewardSettings` fields of the module's `app`; override it in a module for others."""
    return {"math_workers": 1}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(app_settings: dict[str, Any]) -> AsyncIterator[InProcessApp]:
    """One app for the module's tests (starting one spawns the math and body-reading worker processes)."""
    async with in_process_app(**app_settings) as running:
        yield running
