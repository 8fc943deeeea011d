"""Bearer-key authentication of every route but /healthz, and the refusal to serve an open port unguarded.

The keys are `REWARD_API_KEYS` plus the lines of `REWARD_API_KEYS_FILE` (`settings.RewardSettings`). A
request needs `Authorization: Bearer <key>`; without a valid one it gets 401 with `WWW-Authenticate:
Bearer` and the project's JSON error body, before its body is read. The token is compared with every key
in constant time: `hmac.compare_digest` of SHA-256 digests (equal lengths, so not even a key's length
leaks), and never stops at the first match. No key is ever logged.

Routes under /compat/ serve trainers that are given a URL and nothing else (OpenRLHF's remote reward model
sends no header of its own). There the key may also come as the password of HTTP Basic auth, which HTTP
clients send for a URL with credentials: `http://<any user>:<key>@host:8000/compat/...` (a `/` or `+` in the
key percent-encoded). Such a URL holds the key: whatever records the trainer's arguments records it too.

`check_exposure`: `reward-server serve` refuses to bind beyond loopback without a key, unless the operator
sets `REWARD_ALLOW_UNAUTHENTICATED=true` (then a loud warning).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import logging
from collections.abc import Sequence

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from reward_server.settings import RewardSettings

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz"})  # liveness probes carry no key
BASIC_AUTH_PREFIX = "/compat/"  # routes whose clients may send the key as a Basic-auth password


class BearerAuth:
    """ASGI middleware: 401 unless the request carries one of `keys` as a bearer token."""

    def __init__(self, app: ASGIApp, keys: Sequence[SecretStr]) -> None:
        self.app = app
        self._digests = [_digest(key.get_secret_value().encode()) for key in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only "http" carries requests here: "lifespan" is the server's own, and there is no websocket route
        # (a websocket route added one day would need this check too).
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._accepts(scope):
            await self.app(scope, receive, send)
            return
        given = _token(scope) is not None
        service = getattr(scope["app"].state, "service", None) if "app" in scope else None
        if service is not None:
            service.metrics.rejected.labels("unauthorized").inc()
        body = json.dumps(
            {
                "error": "unauthorized",
                "message": "invalid API key" if given else _missing_key_message(scope["path"]),
                "fields": [{"loc": ["header", "authorization"], "msg": "invalid" if given else "missing"}],
            }
        ).encode()
        challenge = b'Bearer realm="reward-server"' + (b', error="invalid_token"' if given else b"")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", challenge),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _accepts(self, scope: Scope) -> bool:
        token = _token(scope)
        if token is None:
            return False
        digest = _digest(token)
        matched = False
        for key in self._digests:  # every key, always: the time taken says nothing about which matched
            matched |= hmac.compare_digest(digest, key)
        return matched


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def _token(scope: Scope) -> bytes | None:
    """The key the request offers: its bearer token, or on /compat/ routes its Basic-auth password."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, given = value.strip().partition(b" ")
            token: bytes = given.strip()
            if not token:
                return None
            if scheme.lower() == b"bearer":
                return token
            if scheme.lower() == b"basic" and scope["path"].startswith(BASIC_AUTH_PREFIX):
                return _basic_password(token)
            return None
    return None


def _basic_password(credentials: bytes) -> bytes | None:
    """The password of Basic-auth `credentials` (base64 of `user:password`); None if unreadable or empty."""
    try:
        _, colon, password = base64.b64decode(credentials, validate=True).partition(b":")
    except binascii.Error:
        return None
    return password if colon and password else None


def _missing_key_message(path: str) -> str:
    message = "missing API key: send `Authorization: Bearer <key>`"
    if path.startswith(BASIC_AUTH_PREFIX):
        message += " (a client that only takes a URL: http://user:<key>@host/...)"
    return message


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; any other name or address counts as reachable."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class UnguardedExposure(Exception):
    """`reward-server serve` would listen beyond loopback with no key and no explicit opt-out."""


def check_exposure(settings: RewardSettings) -> None:
    """Raise UnguardedExposure, or warn loudly when the operator opted out; nothing to do otherwise."""
    if settings.api_keys or is_loopback(settings.host):
        return
    where = f"{settings.host}:{settings.port}"
    if not settings.allow_unauthenticated:
        raise UnguardedExposure(
            f"refusing to serve on {where} without authentication: anyone who reaches it could make this "
            "server grade and run code. Set REWARD_API_KEYS (or REWARD_API_KEYS_FILE), or listen on "
            "127.0.0.1 (REWARD_HOST), or set REWARD_ALLOW_UNAUTHENTICATED=true to accept the risk."
        )
    log.warning(
        "SERVING ON %s WITHOUT AUTHENTICATION (REWARD_ALLOW_UNAUTHENTICATED=true): anyone who reaches this "
        "port can make this server grade and run code. Set REWARD_API_KEYS unless a firewall guards it.",
        where,
    )
