"""The app in-process (httpx.ASGITransport, lifespan run by hand): `/v1/backends` and every grade response
name the rules version of the backend, and the trainer's client reads them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest

from reward_server.api import app as app_module
from reward_server.backends.base import RewardBackend, Verdict
from reward_server.backends.code_sandbox import CodeBackend
from reward_server.backends.math_sympy import MathBackend
from reward_server.code_grading import CodeProblem
from reward_server.schemas import BackendsResponse, GradeResponse, Status
from reward_server.settings import RewardSettings

VERSION = re.compile(r"^0\.1\.0\+rules\.[0-9a-f]{8}$")


class PassingExecutor:
    """Every program passes: no sandbox is started (what is tested here is the version, not the run)."""

    description = "test double"
    ready = True

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def run_all(self, problem: CodeProblem, codes: Sequence[str]) -> list[Verdict]:
        return [Verdict(Status.CORRECT) for _ in codes]


@pytest.fixture
async def client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A client of the app with the real math backend and the code backend over `PassingExecutor`, and the
    backends' versions."""
    settings = RewardSettings(math_workers=1)
    backends: dict[str, RewardBackend] = {
        "math": MathBackend(settings),
        "code": CodeBackend(settings, executor=PassingExecutor()),
    }
    monkeypatch.setattr(app_module, "create_backends", lambda _settings: backends)
    app = app_module.create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http, {name: backend.version for name, backend in backends.items()}


async def test_backends_lists_each_rules_version(client: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    http, versions = client
    response = await http.get("/v1/backends")
    assert response.status_code == 200, response.text
    listed = {
        info.name: info.version for info in BackendsResponse.model_validate_json(response.content).backends
    }
    assert listed == versions
    assert all(VERSION.match(version) for version in listed.values()), listed
    assert listed["math"] != listed["code"]


async def test_every_group_names_the_version_that_graded_it(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, versions = client
    body = {
        "groups": [
            {"group_id": "m", "backend": "math", "reference": {"answer": "4"}, "completions": ["\\boxed{4}"]},
            {
                "group_id": "c",
                "backend": "code",
                "reference": {"tests": [{"input": "1\n", "output": "1\n"}]},
                "completions": ["```python\nprint(input())\n```"],
            },
        ]
    }
    response = await http.post("/v1/grade", json=body)
    assert response.status_code == 200, response.text
    raw = response.json()
    assert [group["backend_version"] for group in raw["groups"]] == [versions["math"], versions["code"]]
    assert raw["backends"] == versions
    # The trainer's client reads the wire schemas: the field parses there too.
    graded = GradeResponse.model_validate_json(response.content)
    assert [(g.backend_version, g.results[0].status) for g in graded.groups] == [
        (versions["math"], Status.CORRECT),
        (versions["code"], Status.CORRECT),
    ]
