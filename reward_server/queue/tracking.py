"""What a server knows about its own code jobs and requests (in memory), and the fair share of the workers.

A job goes through three phases on its server:

    backlog  accepted, held back in the server because its request already has its fair share in flight
    queued   on the Redis stream, waiting for a worker (its entry id is known)
    running  a worker said it took the job ("taken" notice): the job's run clock started then

Only the `running` phase is the program's time. A job found abandoned (its worker died) or lost (Redis lost
its entry) goes back to waiting; the server gives up on a waiting job only when no worker has been alive for
REWARD_QUEUE_MAX_WAIT_S (`QueueExecutor._expire_stalled`).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from reward_server.queue.protocol import Job
from reward_server.verdict import Verdict

# Jobs a request may have in flight beyond its share of the worker slots: one spare job waits on the stream,
# so that a slot that frees up finds work at once instead of after a round trip through this server.
SPARE_JOBS = 1


def fair_share(worker_slots: int, requests: int) -> int:
    """Jobs one request may have queued or running at once: an equal share of the live workers' slots.

    A lone request may use every slot; a new request gets its share as soon as slots free up, since the
    others cannot put more on the stream while they hold their share. The stream holds at most
    `worker_slots + requests * SPARE_JOBS` waiting jobs, so a new request waits behind about one job per
    other request, however large their batches (round-robin between requests).
    """
    return math.ceil(max(worker_slots, 1) / max(requests, 1)) + SPARE_JOBS


@dataclass(eq=False)
class RequestState:
    """One request's code jobs on this server; `key` is its member in the Redis registry of requests."""

    key: str
    estimate: int  # code jobs it may add at most (admitted against REWARD_QUEUE_MAX_DEPTH)
    backlog: deque[TrackedJob] = field(default_factory=deque)
    in_flight: set[TrackedJob] = field(default_factory=set)  # queued or running, not answered
    answered: int = 0

    def charge(self) -> int:
        """What it counts against the queue's depth: its estimate, less what has been answered, and never
        less than what it holds."""
        return max(self.estimate - self.answered, len(self.backlog) + len(self.in_flight))


@dataclass(eq=False)
class TrackedJob:
    job: Job
    payload: str  # the problem's JSON, stored again if Redis lost it
    future: asyncio.Future[Verdict]
    request: RequestState
    waiting_since: float  # unix time it began waiting for a worker (accepted, or found abandoned or lost)
    entry_id: str | None = None  # its stream entry while queued or running
    released_at: float = 0.0
    taken_at: float | None = None  # unix time of the latest "taken" notice, while running
    ever_taken: bool = False
    missing: int = 0  # consecutive checks that did not find its entry on the stream

    @property
    def phase(self) -> Literal["backlog", "queued", "running"]:
        if self.entry_id is None:
            return "backlog"
        return "queued" if self.taken_at is None else "running"
