"""The app in-process (httpx.ASGITransport, lifespan run by hand): `/v1/backends` and every grade response
name the rules version of the backend, and the trainer's client reads them."""

from __future__ import annotations

import re

import pytest

from reward_server.schemas import BackendsResponse, GradeResponse, Status
from tests.unit.reward_server.conftest import InProcessApp

# One app for the module: the real math backend and the code backend over `PassingExecutor` (conftest.py):
# what is tested here is the version, not the run.
pytestmark = pytest.mark.asyncio(loop_scope="module")

VERSION = re.compile(r"^0\.1\.0\+rules\.[0-9a-f]{8}$")


def versions(app: InProcessApp) -> dict[str, str]:
    return {name: backend.version for name, backend in app.backends.items()}


async def test_backends_lists_each_rules_version(app: InProcessApp) -> None:
    response = await app.http.get("/v1/backends")
    assert response.status_code == 200, response.text
    listed = {
        info.name: info.version for info in BackendsResponse.model_validate_json(response.content).backends
    }
    assert listed == versions(app)
    assert all(VERSION.match(version) for version in listed.values()), listed
    assert listed["math"] != listed["code"]


async def test_every_group_names_the_version_that_graded_it(app: InProcessApp) -> None:
    expected = versions(app)
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
    response = await app.http.post("/v1/grade", json=body)
    assert response.status_code == 200, response.text
    raw = response.json()
    assert [group["backend_version"] for group in raw["groups"]] == [expected["math"], expected["code"]]
    assert raw["backends"] == expected
    # The trainer's client reads the wire schemas: the field parses there too.
    graded = GradeResponse.model_validate_json(response.content)
    assert [(g.backend_version, g.results[0].status) for g in graded.groups] == [
        (expected["math"], Status.CORRECT),
        (expected["code"], Status.CORRECT),
    ]
