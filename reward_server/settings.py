"""Settings of the reward server: every field is an environment variable with the prefix `REWARD_`.

Example: `REWARD_REDIS_URL=redis://localhost:6379/0 REWARD_MATH_WORKERS=4 reward-server serve`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class RewardSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REWARD_", env_nested_delimiter="__", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface `reward-server serve` binds to.")
    port: int = Field(8000, ge=1, le=65535)
    reward_correct: float = Field(1.0, description="Default reward of a correct completion.")
    reward_incorrect: float = Field(-1.0, description="Default reward of an incorrect or unanswered one.")
    max_body_mb: float = Field(64.0, gt=0, description="Largest request body accepted, in MiB.")
    max_completions_per_request: int = Field(100_000, ge=1)

    redis_url: SecretStr | None = Field(
        None, description="Redis for the shared result cache; in-memory LRU cache when unset."
    )
    cache_size: int = Field(200_000, ge=0, description="Entries of the in-memory LRU cache.")
    cache_ttl_s: int = Field(7 * 24 * 3600, ge=1, description="Lifetime of a Redis cache entry.")

    math_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="Math grading worker processes."
    )
    math_timeout_s: float = Field(5.0, gt=0, description="Hard deadline per graded answer.")
    math_timeout_status: Literal["incorrect", "error"] = Field(
        "incorrect",
        description="Verdict of an answer whose grading hits the deadline. The clock runs only while a "
        "worker grades that answer, so a timeout is the answer's doing, not the server's load.",
    )

    math_problems_path: Path | None = Field(
        None, description='JSONL of problems (`unique_id` or `id`, and `answer`) for `{"problem_id": ...}`.'
    )

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        return None if value == "" else value


@lru_cache
def get_settings() -> RewardSettings:
    """The process-wide settings; tests override the FastAPI dependency instead of this cache."""
    return RewardSettings()
