"""Bearer-key authentication in-process (conftest.py): which requests get a 401, and what it says.

Keys from REWARD_API_KEYS (two) and from REWARD_API_KEYS_FILE (one). What needs a server process (a large
body refused before it is read, the client over the wire, `serve` refusing an open port, `probe`) is in
tests/integration/test_server_auth.py.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import httpx
import pytest

from tests.unit.reward_server.conftest import InProcessApp

pytestmark = pytest.mark.asyncio(loop_scope="module")

ENV_KEY, SECOND_KEY, FILE_KEY = "env-key-" + "1" * 24, "env-key-" + "2" * 24, "file-key-" + "3" * 24
MATH = {"group_id": "g", "backend": "math", "reference": {"answer": "1"}, "completions": ["$\\boxed{1}$"]}
GUARDED = [
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/backends"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
    ("POST", "/v1/grade"),
    ("GET", "/no-such-route"),
    ("GET", "/healthz/"),
]


@pytest.fixture(scope="module")
def app_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    keys_file = tmp_path_factory.mktemp("secrets") / "api_keys"
    keys_file.write_text(f"# one key per line\n{FILE_KEY}\n")
    return {"math_workers": 1, "api_keys": [ENV_KEY, SECOND_KEY], "api_keys_file": keys_file}


async def call(app: InProcessApp, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    content = json.dumps({"groups": [MATH]}).encode() if method == "POST" else None
    return await app.http.request(method, path, content=content, headers=headers)


async def test_healthz_is_open(app: InProcessApp) -> None:
    assert (await app.http.get("/healthz")).json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("authorization", "invalid"),
    [
        (None, False),
        (f"Bearer {ENV_KEY[:-1]}", True),
        (f"Bearer {ENV_KEY}x", True),
        (f"Basic {ENV_KEY}", False),
        ("Bearer", False),
        (ENV_KEY, False),
    ],
)
@pytest.mark.parametrize(("method", "path"), GUARDED)
async def test_every_other_route_needs_a_valid_key(
    app: InProcessApp, method: str, path: str, authorization: str | None, invalid: bool
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    response = await call(app, method, path, headers)
    assert response.status_code == 401, response.text[:300]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert ('error="invalid_token"' in response.headers["www-authenticate"]) is invalid
    error = response.json()
    assert error["error"] == "unauthorized"
    assert error["fields"] == [
        {"loc": ["header", "authorization"], "msg": "invalid" if invalid else "missing"}
    ]
    assert ENV_KEY[:20] not in response.text


@pytest.mark.parametrize("key", [ENV_KEY, SECOND_KEY, FILE_KEY])
@pytest.mark.parametrize(("method", "path"), GUARDED[:7])
async def test_each_key_opens_every_route(app: InProcessApp, key: str, method: str, path: str) -> None:
    response = await call(
        app, method, path, {"authorization": f"bearer {key}"}
    )  # the scheme is case-insensitive
    assert response.status_code == 200, response.text[:300]


@pytest.mark.parametrize("token", [ENV_KEY, FILE_KEY, ENV_KEY[:-1], "short-" + "0" * 10])
async def test_a_token_is_compared_with_every_key_in_constant_time(
    app: InProcessApp, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    """Equal-length digests, and no stop at the first match: the time taken tells neither which key matched
    nor a key's length."""
    compared: list[tuple[int, int]] = []
    compare_digest = hmac.compare_digest

    def spy(given: bytes, key: bytes) -> bool:
        compared.append((len(given), len(key)))
        return compare_digest(given, key)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # reward_server.api.auth calls hmac.compare_digest
    response = await app.http.get("/v1/backends", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == (200 if token in (ENV_KEY, FILE_KEY) else 401)
    assert compared == [(32, 32)] * 3
