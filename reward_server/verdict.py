"""A verdict on one completion: what backends return, executors and queue workers produce, and the cache
stores.

It sits below the backends, the code executors and the job queue, which all speak it and none of which
should import another for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from reward_server.schemas import Status

__all__ = ["Verdict"]


@dataclass(frozen=True)
class Verdict:
    """A backend's verdict on one completion; JSON-serializable so that it can be cached.

    `answer` is the canonical form shown to users; `answer_key` is what the backend compares to decide
    classes (for math, the raw extracted LaTeX). `certain` is False when something outside the completion
    may have decided the verdict (for code: a timeout or kill under others' load). `error` verdicts and
    uncertain ones are never cached. `backend_version` is set when another process graded under its own
    rules (a queue worker, which may run other rules than the server during an upgrade): the verdict is
    cached under that version, never under the server's; None means the grading backend's own version.
    """

    status: Status
    answer: str | None = None
    answer_key: str | None = None
    detail: str | None = None
    tests: dict[str, Any] | None = None
    certain: bool = True
    backend_version: str | None = None

    @property
    def cacheable(self) -> bool:
        return self.certain and self.status is not Status.ERROR

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["backend_version"] is None:
            del data["backend_version"]  # the usual case: not stored in each of millions of cache entries
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        """From `to_json`'s output; fields this version does not know (a newer server's cache entry, a newer
        worker's reply) are ignored, missing ones take their defaults."""
        known = {name: value for name, value in data.items() if name in cls.__dataclass_fields__}
        return cls(**{**known, "status": Status(data["status"])})
