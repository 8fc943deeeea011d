"""Settings of the reward server: every field is an environment variable with the prefix `REWARD_`.

Example: `REWARD_REDIS_URL=redis://localhost:6379/0 REWARD_MATH_WORKERS=4 reward-server serve`.

Combinations that cannot work (e.g. the job queue without a Redis) fail when the settings are read, at
start-up, with a message naming the variables; nothing downstream re-checks them.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sandbox.schemas import MAX_MEMORY_MB, MAX_TIME_LIMIT_S, MIN_MEMORY_MB


class RewardSettings(BaseSettings):
    # Errors never echo a value: some are secrets (API keys, a Redis URL with its password).
    model_config = SettingsConfigDict(
        env_prefix="REWARD_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    host: str = Field("127.0.0.1", description="Interface `reward-server serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port `reward-server serve` listens on.")
    # Authentication (see reward_server.api.auth). Keys are secrets: never logged, repr'd as '**********'.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer keys (comma-separated, or a JSON list) that every route but /healthz requires "
        "(`Authorization: Bearer <key>`); unset and no REWARD_API_KEYS_FILE: no authentication. A key is 16+ "
        "characters of A-Z a-z 0-9 - . _ ~ + / (and trailing =), e.g. `openssl rand -hex 32`.",
    )
    api_keys_file: Path | None = Field(
        None,
        description="A file of more bearer keys, one per line (blank lines and # comments ignored), e.g. a "
        "Docker secret; read at start-up.",
    )
    allow_unauthenticated: bool = Field(
        False,
        description="Let `reward-server serve` bind beyond loopback (e.g. 0.0.0.0) without any key; without "
        "it that is refused. Anyone who reaches the port can then make the server grade (and run code).",
    )
    reward_correct: float = Field(
        1.0, allow_inf_nan=False, description="Default reward of a correct completion (finite)."
    )
    reward_incorrect: float = Field(
        -1.0, allow_inf_nan=False, description="Default reward of an incorrect or unanswered one (finite)."
    )
    max_body_mb: float = Field(64.0, gt=0, description="Largest request body accepted, in MiB.")
    read_timeout_s: float = Field(
        60.0,
        gt=0,
        description="A client must send a whole request (headers and body) within this many seconds of "
        "connecting or of starting it; else 408 and the connection is closed. Grading time does not count.",
    )
    shutdown_grace_s: float = Field(
        15.0,
        ge=0,
        description="On SIGTERM, requests in flight get this long to finish; then they are cut (clients "
        "retry). Code jobs waiting on workers could otherwise hold the server up to their deadlines.",
    )
    max_completions_per_request: int = Field(
        100_000, ge=1, description="Completions in one request at most (all groups); more is a 422."
    )
    max_groups_per_request: int = Field(
        10_000, ge=1, description="Groups in one request at most; more is a 422."
    )
    parse_workers: int = Field(
        1,
        ge=1,
        description="Processes that parse and validate request bodies over 1 MiB, so that the event loop "
        "never does (the densest 64 MiB of JSON takes seconds and about 1.5 GiB there).",
    )

    redis_url: SecretStr | None = Field(
        None,
        description="Redis for the code job queue (read by `reward-server worker`) and, unless "
        "REWARD_CACHE_REDIS_URL is set, the shared result cache; unset: in-memory LRU cache and code run in "
        "this process. The queue needs durability: `noeviction` (a full Redis refuses work with 503, never "
        "drops queued jobs) and an append-only file.",
    )
    cache_redis_url: SecretStr | None = Field(
        None,
        description="Redis of the result cache when it should not share the queue's (recommended: its own "
        "`allkeys-lru` Redis without persistence, so that verdicts are evicted instead of filling the "
        "queue's memory); unset: REWARD_REDIS_URL.",
    )
    cache_size: int = Field(200_000, ge=0, description="Entries of the in-memory LRU cache.")
    cache_ttl_s: int = Field(7 * 24 * 3600, ge=1, description="Lifetime of a Redis cache entry.")
    cache_max_fill: float = Field(
        0.8,
        gt=0,
        le=1,
        description="In a Redis that does not evict (`noeviction`, e.g. one Redis for the queue and the "
        "cache) the cache stops writing above this fraction of `maxmemory`, leaving the rest to the queue "
        "(grading goes on uncached). No effect on an evicting Redis.",
    )

    math_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="Math grading worker processes."
    )
    math_timeout_s: float = Field(5.0, gt=0, description="Hard deadline per graded answer.")
    math_timeout_status: Literal["incorrect", "error"] = Field(
        "incorrect",
        description="Verdict of an answer whose grading hits the deadline. The clock runs only while a "
        "worker grades that answer, so a timeout is the answer's doing, not the server's load.",
    )

    math_worker_memory_mb: int = Field(
        4096,
        ge=0,
        description="Address-space limit (RLIMIT_AS) of each math worker process, in MiB: a runaway "
        "expansion fails there with MemoryError (the answer gets `no_answer`) instead of swapping the "
        "machine. 0: none. Part of the math backend's version, since it can change a verdict.",
    )

    math_problems_path: Path | None = Field(
        None, description='JSONL of problems (`unique_id` or `id`, and `answer`) for `{"problem_id": ...}`.'
    )

    sandbox_backend: Literal["process", "docker"] = Field(
        "process",
        description="Sandbox that runs code: `process` (local, no Docker needed) or `docker` (container "
        "pool). Its own settings are `SANDBOX_*` (see `sandbox.settings`).",
    )
    code_max_parallel: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Solutions run at once by this server (all requests together); tests of one run in turn.",
    )
    code_stop_on_first_failure: bool = Field(
        True, description="Stop a solution at its first failing test (its reward is decided)."
    )
    code_default_time_limit_s: float = Field(
        4.0,
        gt=0,
        le=MAX_TIME_LIMIT_S,
        description="Time limit per test (CPU time) when the reference gives none.",
    )
    code_default_memory_mb: int = Field(
        1024,
        ge=MIN_MEMORY_MB,
        le=MAX_MEMORY_MB,
        description="Address space per test when the reference gives none.",
    )
    code_max_run_s: float = Field(
        600.0,
        gt=0,
        description="Wall time one program's run may take over all its tests: past it, it stops before its "
        "next test and fails as a `timeout` (not cached: a busy machine may have caused it). Bounds how long "
        "a request or a queued job waits for one program.",
    )
    code_wall_time_factor: float = Field(
        2.0,
        ge=1.0,
        le=10.0,
        description="A test's time limit is on CPU time (all the program's processes together, so a busy "
        "machine does not make it miss); the wall clock stops a program that sleeps or blocks at this "
        "multiple of the limit plus 1 s.",
    )
    code_time_limit_factor: float = Field(
        1.0, gt=0, description="Multiplies a reference's own time limit (CodeContests set them for C++)."
    )
    code_memory_headroom_mb: int = Field(
        32, ge=0, description="Added to a reference's own memory limit for the interpreter (as CodeContests)."
    )
    code_max_time_limit_s: float = Field(
        60.0,
        gt=0,
        le=MAX_TIME_LIMIT_S,
        description="Cap on any time limit per test: a request's reference asking for more is refused (422); "
        "a limit scaled by the factor is clamped to it.",
    )
    code_max_memory_mb: int = Field(
        4096,
        ge=MIN_MEMORY_MB,
        le=MAX_MEMORY_MB,
        description="Cap on any memory limit per test: a request's reference asking for more is refused "
        "(422); a limit plus its headroom is clamped to it.",
    )
    code_max_tests: int = Field(
        10_000, ge=1, description="Tests in one code reference of a request at most; more is a 422."
    )
    code_max_test_mb: float = Field(
        64.0,
        gt=0,
        description="Test data (inputs and expected outputs) in one code reference of a request at most, in "
        "MiB; every JSON value counts 64 bytes plus a string's length. More is a 422.",
    )
    code_problems_path: Path | None = Field(
        None,
        description='JSONL of code problems for `{"problem_id": ...}`: `id` plus one reference form '
        "(e.g. dev_problems.jsonl: `format`, `fn_name`, `tests`).",
    )

    code_executor: Literal["auto", "local", "queue"] = Field(
        "auto",
        description="Where code runs: `local` (this process's sandbox), `queue` (a Redis stream read by "
        "`reward-server worker` processes), or `auto`: the queue when REWARD_REDIS_URL is set.",
    )
    queue_prefix: str = Field("iarl", min_length=1, description="Prefix of every Redis key of the queue.")
    queue_max_depth: int = Field(
        4096,
        ge=1,
        description="Code jobs accepted and not yet answered, all servers together. A request whose code "
        "completions would pass it is refused as a whole, before anything is enqueued: 429 + Retry-After.",
    )
    queue_max_wait_s: float = Field(
        120.0,
        gt=0,
        description="How long jobs wait while no worker is alive (none heartbeated within "
        "REWARD_QUEUE_CLAIM_AFTER_S) before they are answered `error`. While workers live, a waiting job "
        "is never expired: its run clock starts when a worker takes it.",
    )
    queue_claim_after_s: float = Field(
        30.0,
        gt=0,
        description="A job whose worker fell silent this long (no heartbeat: it died) goes to another "
        "worker.",
    )
    queue_max_deliveries: int = Field(
        3, ge=1, description="Workers a job may take down before it is answered `error` instead of retried."
    )
    queue_retry_after_s: int = Field(5, ge=1, description="Retry-After of a 429 for a full queue.")
    worker_name: str | None = Field(None, description="Consumer name of `reward-server worker` (host-pid).")
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="A port of its own for the Prometheus metrics of `reward-server serve` or `worker` "
        "(/metrics on REWARD_HOST, WITHOUT authentication: for a private network, e.g. compose's, never "
        "published); 0: none. The server's /metrics on its HTTP port needs an API key like every route.",
    )
    worker_shutdown_grace_s: float = Field(
        8.0, ge=0, description="On SIGTERM a worker finishes its jobs this long; the rest go to others."
    )

    @property
    def use_queue(self) -> bool:
        """Code jobs go to the Redis queue (see `code_executor`)."""
        if self.code_executor == "auto":
            return self.redis_url is not None
        return self.code_executor == "queue"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else [k for k in re.split(r"[\s,]+", text) if k]
        return value

    @field_validator("api_keys")
    @classmethod
    def _bearer_tokens(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for number, key in enumerate(keys, 1):
            _check_key(key.get_secret_value(), f"key {number} of {len(keys)}")
        return keys

    @model_validator(mode="after")
    def _read_keys_file(self) -> RewardSettings:
        if self.api_keys_file is not None:
            self.api_keys = [*self.api_keys, *_read_keys(self.api_keys_file)]
        return self

    @model_validator(mode="after")
    def _queue_needs_redis(self) -> RewardSettings:
        if self.code_executor == "queue" and self.redis_url is None:
            raise ValueError(
                "REWARD_CODE_EXECUTOR=queue needs REWARD_REDIS_URL (the Redis of the code job queue); "
                "set it, or REWARD_CODE_EXECUTOR=local to run code in this process"
            )
        return self

    @model_validator(mode="after")
    def _metrics_port_is_not_the_http_port(self) -> RewardSettings:
        if self.metrics_port == self.port:
            raise ValueError(
                f"REWARD_METRICS_PORT and REWARD_PORT are both {self.port}: the unauthenticated metrics "
                "listener needs a port of its own (or REWARD_METRICS_PORT=0 for none)"
            )
        return self

    @field_validator("redis_url", "cache_redis_url", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        return None if value == "" else value


# RFC 6750's b64token (what a bearer token may hold), at least 16 characters.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]{16,}=*")


def _check_key(key: str, which: str) -> None:
    """Raise ValueError (never showing the key) unless `key` can be a bearer token."""
    if _BEARER_TOKEN.fullmatch(key) is None:
        raise ValueError(
            f"{which} is not a usable bearer token: 16 or more characters of A-Z a-z 0-9 - . _ ~ + / "
            "(and trailing =)"
        )


def _read_keys(path: Path) -> list[SecretStr]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"REWARD_API_KEYS_FILE {path}: cannot read it: {type(exc).__name__}") from None
    keys = []
    for number, line in enumerate(lines, 1):
        key = line.strip()
        if key and not key.startswith("#"):
            _check_key(key, f"REWARD_API_KEYS_FILE {path}, line {number}:")
            keys.append(SecretStr(key))
    return keys


@lru_cache
def get_settings() -> RewardSettings:
    """The process-wide settings; tests override the FastAPI dependency instead of this cache."""
    return RewardSettings()
