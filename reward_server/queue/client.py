"""The server side of the code job queue: admit a request, release its programs fairly, wait for verdicts.

Clock: a job's run clock starts when a worker takes it (the worker's "taken" notice), never while it waits
for a worker, so a busy queue cannot turn a program's verdict into `error`. What the server waits for, and
how long at most:

- for a worker to take the job: as long as some worker is alive (heartbeat within REWARD_QUEUE_CLAIM_AFTER_S).
  When none has been alive for REWARD_QUEUE_MAX_WAIT_S, the waiting jobs are answered `error` (and deleted
  from the stream). How long a job waits while workers are alive is bounded by back-pressure (the depth
  limit) and by fair sharing, not by a deadline.
- for the run: its budget (tests x time limit, capped, plus a margin) from the "taken" notice, plus the time
  another worker needs to take over from a dead one. A job whose worker died is waiting again; one whose
  worker is alive but has not answered past its budget is `error`.

Back-pressure: a request is admitted as a whole (`admission`), before any of it is enqueued: 429 when the
queue is too deep, 503 when Redis is unreachable or out of memory. Fairness: each request has at most its
fair share of the live workers' slots queued or running (`tracking.fair_share`); the rest of its jobs wait in
this server, so the stream never holds more than about one spare job per request beyond the slots.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import Any, cast

from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from reward_server.code_execution.local import run_time_bound_s
from reward_server.code_grading import CodeProblem
from reward_server.errors import Overloaded, QueueFull, QueueStorageFull, QueueUnavailable
from reward_server.metrics import COMPONENTS, QUEUE_PHASES
from reward_server.queue.admission import Admission
from reward_server.queue.protocol import (
    REDIS_DOWN,
    Job,
    QueueKeys,
    as_text,
    connect,
    decode_reply,
    ensure_group,
    is_out_of_memory,
    problem_key,
    retry_redis,
)
from reward_server.queue.tracking import RequestState, TrackedJob, fair_share
from reward_server.redis_memory import RedisMemory
from reward_server.request_scope import current_scope
from reward_server.schemas import Status
from reward_server.settings import RewardSettings
from reward_server.verdict import Verdict

log = logging.getLogger(__name__)

# Seconds a job may take beyond its tests' time limits once taken: session start, transfers, the reply.
RUN_MARGIN_S = 10.0
READ_BLOCK_MS = 1000  # one XREAD of the reply stream blocks this long, then the reader looks up again
TICK_S = 1.0  # the watchdog: liveness of workers, fair share, registry refresh, stalls
CHECK_S = 5.0  # lost and overrunning jobs, Redis memory: checked this often
REQUEST_STALE_S = 15.0  # a request its server has not refreshed this long is dead (no longer counted)
PROBLEM_TTL_S = 3600  # a stored problem lives this long after its last job was released or refreshed
PROBLEM_REFRESH_S = 600


class QueueExecutor:
    """Runs programs through the Redis queue (see `reward_server.queue`); one per server process.

    `backend_name` is the backend whose completions a request scope counts for admission.
    """

    def __init__(self, settings: RewardSettings, backend_name: str = "code") -> None:
        if settings.redis_url is None:  # RewardSettings refuses code_executor=queue without one
            raise ValueError("the code job queue needs REWARD_REDIS_URL")
        self.settings = settings
        self.backend_name = backend_name
        self.keys = QueueKeys(settings.queue_prefix)
        self.server_id = uuid.uuid4().hex
        self.reply_stream = self.keys.replies(self.server_id)
        url = settings.redis_url.get_secret_value()
        self.redis = connect(url)
        self.reader_redis = connect(url, blocking=True)  # XREAD BLOCK holds its connection
        self.admission = Admission(self.redis, self.keys)
        self.memory = RedisMemory(self.redis, "queue", interval_s=CHECK_S)
        self.jobs: dict[str, TrackedJob] = {}  # unanswered jobs of this server, by job id
        self.requests: dict[str, RequestState] = {}
        self.quota = fair_share(0, 1)
        self.workers_alive = 0
        self._last_worker_seen = float("-inf")  # unix time of the latest heartbeat of any worker
        self._next_check = 0.0
        self._next_problem_refresh = 0.0
        self._stopping = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._redis_ok = False
        COMPONENTS.queue_max_depth.set(settings.queue_max_depth)

    @property
    def description(self) -> str:
        return f"Redis job queue {self.keys.jobs} (reply stream {self.reply_stream})"

    async def start(self) -> None:
        try:
            await ensure_group(self.redis, self.keys)
            self._redis_ok = True
        except REDIS_DOWN as exc:  # start anyway: math still works, and the queue recovers by itself
            log.warning("job queue: Redis unreachable at start (%s); will keep trying", exc)
        self._reader = asyncio.create_task(self._read_replies(), name="queue-replies")
        self._watcher = asyncio.create_task(self._watch(), name="queue-watch")

    async def close(self) -> None:
        self._stopping.set()
        tasks = [task for task in (self._reader, self._watcher, *self._tasks) if task is not None]
        if tasks:
            # The reader leaves after its current XREAD (<= READ_BLOCK_MS). Cancelled tasks are not awaited:
            # redis-py can swallow the cancellation of a blocked read, and the wait would never end.
            _done, late = await asyncio.wait(tasks, timeout=3)
            for task in late:
                task.cancel()
        queued = [t.entry_id for t in self.jobs.values() if t.entry_id is not None and t.taken_at is None]
        for tracked in list(self.jobs.values()):
            tracked.future.cancel()
        self.jobs.clear()
        cleanup = asyncio.ensure_future(self._cleanup(queued, list(self.requests)))
        await asyncio.wait({cleanup}, timeout=3)  # workers need not run what nobody waits for
        for client in (self.redis, self.reader_redis):
            await asyncio.wait({asyncio.ensure_future(client.aclose())}, timeout=2)

    async def _cleanup(self, entries: list[str], request_keys: list[str]) -> None:
        await self._delete_entries(entries)
        await self._unregister(request_keys)
        try:
            await self.redis.delete(self.reply_stream)
        except REDIS_DOWN:
            pass

    @property
    def ready(self) -> bool:
        return (
            self._redis_ok
            and all(task is not None and not task.done() for task in (self._reader, self._watcher))
            and not self._stopping.is_set()
        )

    # ---- A group's programs ---------------------------------------------------------------------------

    async def run_all(self, problem: CodeProblem, codes: Sequence[str]) -> list[Verdict]:
        if not codes:
            return []
        request, own_request = await self._request(len(codes))
        key, payload = problem_key(problem)
        budget_s = run_time_bound_s(problem, self.settings) + RUN_MARGIN_S
        now = time.time()
        loop = asyncio.get_running_loop()
        tracked = [
            TrackedJob(
                job=Job(
                    job_id=uuid.uuid4().hex,
                    reply_to=self.reply_stream,
                    problem_key=key,
                    code=code,
                    run_budget_s=budget_s,
                    accepted_at=now,
                ),
                payload=payload,
                future=loop.create_future(),
                request=request,
                waiting_since=now,
            )
            for code in codes
        ]
        for job in tracked:
            self.jobs[job.job.job_id] = job
        request.backlog.extend(tracked)
        try:
            await self._pump(request, from_caller=True)
            results = await asyncio.gather(*(job.future for job in tracked), return_exceptions=True)
        finally:
            self._forget(tracked)
            if own_request:
                self._end_request(request)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return cast(list[Verdict], results)

    def _forget(self, tracked: list[TrackedJob]) -> None:
        """Jobs nobody waits for any more (the caller was cancelled or failed): out of the queue too."""
        orphans = []
        for job in tracked:
            if self.jobs.pop(job.job.job_id, None) is None:
                continue  # settled
            job.future.cancel()
            job.request.in_flight.discard(job)
            if job.entry_id is not None and job.taken_at is None:
                orphans.append(job.entry_id)
        if orphans:
            self._background(self._delete_entries(orphans))

    # ---- Admission: a request as a whole --------------------------------------------------------------

    async def _request(self, jobs: int) -> tuple[RequestState, bool]:
        """The request these jobs belong to, admitted (or refused) once for all its groups; True if it is
        this call's own (no request scope: the call is the request)."""
        scope = current_scope()
        if scope is None:
            return await self._admit(f"{self.server_id}:{uuid.uuid4().hex}", jobs), True
        admitted = cast("asyncio.Future[RequestState] | None", scope.state.get(self))
        if admitted is None:
            estimate = max(scope.completions_for(self.backend_name), jobs)
            admitted = asyncio.ensure_future(self._admit(f"{self.server_id}:{scope.key}", estimate))
            scope.state[self] = admitted
            scope.on_close(lambda: admitted.add_done_callback(self._admission_over))
        return await asyncio.shield(admitted), False

    def _admission_over(self, admitted: asyncio.Future[RequestState]) -> None:
        if not admitted.cancelled() and admitted.exception() is None:
            self._end_request(admitted.result())

    async def _admit(self, key: str, jobs: int) -> RequestState:
        now = time.time()
        try:
            admitted, depth = await self.admission.reserve(
                key, jobs, self.settings.queue_max_depth, now, now - REQUEST_STALE_S
            )
        except Exception as exc:
            refusal = self._refusal(exc)
            if refusal is None:
                raise
            raise refusal from None
        self._redis_ok = True
        if not admitted:
            limit = self.settings.queue_max_depth
            advice = "" if jobs <= limit else "; this request alone is larger than the limit: split it"
            raise QueueFull(
                f"the code job queue holds {depth} jobs; this request's {jobs} more would pass its limit of "
                f"{limit} (REWARD_QUEUE_MAX_DEPTH){advice}",
                retry_after_s=self.settings.queue_retry_after_s,
            )
        request = RequestState(key=key, estimate=jobs)
        self.requests[key] = request
        return request

    def _end_request(self, request: RequestState) -> None:
        if self.requests.pop(request.key, None) is not None:
            self._background(self._unregister([request.key]))

    async def _unregister(self, request_keys: list[str]) -> None:
        if not request_keys:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hdel(self.keys.reservations, *request_keys)
                pipe.zrem(self.keys.requests, *request_keys)
                await pipe.execute()
        except (*REDIS_DOWN, ResponseError):
            pass  # the registry drops requests that are not refreshed (REQUEST_STALE_S)

    def _refusal(self, exc: BaseException) -> Overloaded | None:
        """The client-facing refusal for a Redis failure (nothing graded, come back later); None if `exc` is
        not one."""
        if is_out_of_memory(exc):
            return self._storage_full()
        if isinstance(exc, REDIS_DOWN):
            self._redis_ok = False
            return QueueUnavailable(f"the code job queue (Redis) is unreachable: {exc}", retry_after_s=2)
        return None

    def _storage_full(self) -> QueueStorageFull:
        return QueueStorageFull(
            "the code job queue's Redis is out of memory (maxmemory reached, noeviction); nothing was lost, "
            "retry later",
            retry_after_s=self.settings.queue_retry_after_s,
        )

    # ---- Release: each request's fair share on the stream ---------------------------------------------

    async def _pump(self, request: RequestState, from_caller: bool = False) -> None:
        """Put `request`'s waiting jobs on the stream while it has less than its fair share in flight.

        From the caller (a group's first release) a Redis failure refuses the whole request (503); in the
        background it is retried on the next tick, except a full Redis, which refuses the request too.
        """
        while not self._stopping.is_set():
            batch: list[TrackedJob] = []
            while request.backlog and len(request.in_flight) + len(batch) < self.quota:
                job = request.backlog.popleft()
                if not job.future.done():
                    batch.append(job)
            if not batch:
                return
            request.in_flight.update(batch)  # before the await: concurrent pumps see the room taken
            try:
                await self._release(batch)
            except Exception as exc:
                request.in_flight.difference_update(batch)
                request.backlog.extendleft(reversed(batch))
                refusal = self._refusal(exc)
                if refusal is None:
                    raise
                if from_caller or isinstance(refusal, QueueStorageFull):
                    self._fail_request(request, refusal)
                if from_caller:
                    raise refusal from None
                return

    async def _release(self, batch: list[TrackedJob]) -> None:
        problems = {job.job.problem_key: job.payload for job in batch}
        # A transaction: a full Redis refuses the batch as a whole, so no job of it is left on the stream
        # that nobody waits for.
        async with self.redis.pipeline(transaction=True) as pipe:
            # The problem first: a worker that sees a job finds its problem. Re-storing an equal problem only
            # extends its life.
            for key, payload in problems.items():
                pipe.set(self.keys.problem(key), payload, ex=PROBLEM_TTL_S)
            for job in batch:
                pipe.xadd(self.keys.jobs, job.job.to_fields())  # type: ignore[arg-type]
            entry_ids = (await pipe.execute())[len(problems) :]
        self._redis_ok = True
        now = time.time()
        for job, entry_id in zip(batch, entry_ids, strict=True):
            job.entry_id = as_text(entry_id)
            job.released_at = now
            job.missing = 0

    def _requeue(self, job: TrackedJob, event: str) -> None:
        """The job's entry is gone from Redis (lost): it waits again, at the head of its request's line."""
        log.warning("job queue: job %s lost from Redis (%s); enqueuing it again", job.job.job_id, event)
        COMPONENTS.queue_job_events.labels(event).inc()
        job.entry_id = None
        job.taken_at = None
        job.missing = 0
        job.waiting_since = time.time()
        job.request.in_flight.discard(job)
        job.request.backlog.appendleft(job)

    # ---- Outcomes -------------------------------------------------------------------------------------

    def _settle(
        self, job: TrackedJob, verdict: Verdict | None = None, error: BaseException | None = None
    ) -> None:
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(cast(Verdict, verdict))
        self.jobs.pop(job.job.job_id, None)
        job.request.in_flight.discard(job)
        job.request.answered += 1

    def _fail_request(self, request: RequestState, error: Overloaded) -> None:
        """Refuse what is left of a request (its groups raise `error`: HTTP 503/429 with Retry-After)."""
        queued = []
        for job in [*request.backlog, *request.in_flight]:
            if job.entry_id is not None and job.taken_at is None:
                queued.append(job.entry_id)
            self._settle(job, error=error)
        request.backlog.clear()
        if queued:
            self._background(self._delete_entries(queued))

    async def _delete_entries(self, entry_ids: list[str]) -> None:
        """Take jobs nobody waits for off the stream (a worker that already has one answers into the void)."""
        if not entry_ids:
            return
        try:
            await self.redis.xdel(self.keys.jobs, *entry_ids)
        except (*REDIS_DOWN, ResponseError) as exc:
            log.info("job queue: could not delete %d abandoned jobs: %s", len(entry_ids), exc)

    # ---- Replies ---------------------------------------------------------------------------------------

    async def _read_replies(self) -> None:
        """Wake each waiting request as its verdicts arrive; survive Redis outages (back off, go on)."""
        last_id: bytes | str = "0-0"
        while not self._stopping.is_set():
            try:
                # This task must outlive any Redis trouble: back off (up to 5 s) until Redis answers or we
                # close.
                answer: Any = await retry_redis(
                    partial(
                        self.reader_redis.xread, {self.reply_stream: last_id}, block=READ_BLOCK_MS, count=512
                    ),
                    lambda exc: isinstance(exc, (*REDIS_DOWN, ResponseError)),
                    max_backoff_s=5.0,
                    stop=lambda _state: self._stopping.is_set(),
                    on_failure=self._reply_stream_failed,
                    sleep=self._sleep,
                )
            except (*REDIS_DOWN, ResponseError):
                return  # still failing when the executor closed
            answered: dict[str, RequestState] = {}
            for _stream, entries in answer:
                for entry_id, fields in entries:
                    last_id = entry_id
                    request = self._deliver(fields)
                    if request is not None:
                        answered[request.key] = request
            for request in answered.values():
                self._background(self._pump(request))  # their share has room again
            if answer:
                await self._trim(last_id)

    def _reply_stream_failed(self, exc: BaseException, retry_in_s: float) -> None:
        self._redis_ok = False
        log.warning("job queue: reply stream unreadable (%s); retrying in %.1f s", exc, retry_in_s)

    def _deliver(self, fields: dict[bytes, bytes]) -> RequestState | None:
        try:
            job_id, verdict = decode_reply(fields)
        except (KeyError, ValueError, TypeError) as exc:
            log.error("job queue: malformed reply dropped: %s", exc)
            return None
        job = self.jobs.get(job_id)
        if job is None or job.future.done():
            return None  # a second answer to the same job (it ran twice), or nobody waits any more
        if verdict is None:  # a worker took it: its run clock starts now
            now = time.time()
            if not job.ever_taken:
                COMPONENTS.queue_wait_seconds.observe(max(0.0, now - job.job.accepted_at))
                job.ever_taken = True
            job.taken_at = now
            return None
        COMPONENTS.queue_job_events.labels("answered").inc()
        self._settle(job, verdict)
        return job.request

    async def _trim(self, last_id: bytes | str) -> None:
        """Replies already read are of no further use."""
        try:
            await self.redis.xtrim(self.reply_stream, minid=last_id)
        except (*REDIS_DOWN, ResponseError):
            pass

    # ---- The watchdog ------------------------------------------------------------------------------------

    async def _watch(self) -> None:
        while not self._stopping.is_set():
            await self._sleep(TICK_S)
            try:
                await self._tick()
            except Exception:  # the watchdog must outlive any surprise
                log.exception("job queue: watchdog tick failed")

    async def _tick(self) -> None:
        now = time.time()
        requests = list(self.requests.values())
        for request in requests:
            if any(job.future.done() for job in request.backlog):
                request.backlog = deque(job for job in request.backlog if not job.future.done())
        claim_after = self.settings.queue_claim_after_s
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrangebyscore(self.keys.workers_alive, now - claim_after, "+inf")
                pipe.zrevrange(self.keys.workers_alive, 0, 0, withscores=True)
                pipe.hgetall(self.keys.worker_slots)
                pipe.zrangebyscore(self.keys.requests, now - REQUEST_STALE_S, "+inf")
                pipe.hgetall(self.keys.reservations)
                pipe.xlen(self.keys.jobs)
                if requests:  # "still in flight", and what each holds against the depth limit
                    pipe.zadd(self.keys.requests, {request.key: now for request in requests})
                    pipe.hset(self.keys.reservations, mapping={r.key: r.charge() for r in requests})
                results: list[Any] = await pipe.execute(raise_on_error=False)
        except REDIS_DOWN as exc:
            self._redis_ok = False
            log.debug("job queue: watchdog cannot reach Redis: %s", exc)
            self._expire_stalled(now, redis_down=True)
            return
        failures = [result for result in results if isinstance(result, Exception)]
        if any(is_out_of_memory(failure) for failure in failures):
            self._out_of_memory()
        live, last, slots, live_requests, reservations, stream_length = results[:6]
        if not isinstance(last, Exception) and last:
            self._last_worker_seen = max(self._last_worker_seen, float(last[0][1]))
        if not any(isinstance(part, Exception) for part in (live, slots, live_requests, reservations)):
            self._redis_ok = True
            capacity = sum(int(slots.get(name, 1)) for name in live)
            ours = {request.key for request in requests}
            active = len({as_text(key) for key in live_requests} | ours)
            self.quota = fair_share(capacity, active)
            self.workers_alive = len(live)
            live_keys = {as_text(key) for key in live_requests}
            depth = sum(int(jobs) for key, jobs in reservations.items() if as_text(key) in live_keys)
            COMPONENTS.queue_workers_alive.set(len(live))
            COMPONENTS.queue_worker_slots.set(capacity)
            COMPONENTS.queue_active_requests.set(active)
            COMPONENTS.queue_fair_share.set(self.quota)
            COMPONENTS.queue_depth.set(depth)
        if not isinstance(stream_length, Exception):
            COMPONENTS.queue_stream_length.set(stream_length)
        phases = dict.fromkeys(QUEUE_PHASES, 0)
        for job in self.jobs.values():
            phases[job.phase] += 1
        for phase, count in phases.items():
            COMPONENTS.queue_jobs.labels(phase).set(count)
        self._expire_stalled(now)
        if now >= self._next_check:
            self._next_check = now + CHECK_S
            await self.memory.poll(force=True)
            await self._check_running(now)
            await self._check_queued(now)
        if now >= self._next_problem_refresh:
            self._next_problem_refresh = now + PROBLEM_REFRESH_S
            await self._refresh_problems()
        for request in list(self.requests.values()):
            await self._pump(request)

    def _expire_stalled(self, now: float, redis_down: bool = False) -> None:
        """`error` for jobs that waited REWARD_QUEUE_MAX_WAIT_S while no worker was alive (or, with Redis
        unreachable, also running jobs that long past their budget: their answers cannot come)."""
        claim_after = self.settings.queue_claim_after_s
        max_wait = self.settings.queue_max_wait_s
        gone_at = self._last_worker_seen + claim_after  # no heartbeat since: no worker alive
        if gone_at > now and not redis_down:
            return
        stale: list[str] = []
        for job in list(self.jobs.values()):
            if job.taken_at is None:
                if now - max(gone_at, job.waiting_since) < max_wait:
                    continue
            elif not redis_down or now < job.taken_at + job.job.run_budget_s + 1.5 * claim_after + max_wait:
                continue
            if job.entry_id is not None and job.taken_at is None:
                stale.append(job.entry_id)
            seen = "never" if self._last_worker_seen < 0 else f"{now - self._last_worker_seen:.0f} s ago"
            reason = "Redis unreachable" if redis_down else "no worker alive"
            detail = (
                f"no sandbox worker answered: {reason} for {max_wait:.0f} s (REWARD_QUEUE_MAX_WAIT_S; "
                f"{self.workers_alive if not redis_down else 0} worker(s) alive, last seen {seen})"
            )
            self._settle(job, Verdict(Status.ERROR, detail=detail))
            COMPONENTS.queue_job_events.labels("error_no_worker").inc()
        if stale:
            self._background(self._delete_entries(stale))

    async def _check_running(self, now: float) -> None:
        """Jobs past their run budget: their worker died (they wait for another), Redis lost them (enqueued
        again), or they really overran (`error`: the sandbox should have stopped them)."""
        claim_after = self.settings.queue_claim_after_s
        slack = 1.5 * claim_after + TICK_S  # a dead worker's job is taken over within this
        overdue = [
            job
            for job in self.jobs.values()
            if job.taken_at is not None and now > job.taken_at + job.job.run_budget_s + slack
        ]
        if not overdue:
            return
        pending = await self._per_entry(
            overdue,
            lambda pipe, entry: pipe.xpending_range(
                self.keys.jobs, self.keys.group, min=entry, max=entry, count=1
            ),
        )
        if pending is None:
            return
        for job, found in zip(overdue, pending, strict=True):
            if job.future.done():
                continue
            if isinstance(found, Exception) or not found:
                job.missing += 1  # answered (the reply is on its way) or lost: lost if still so next time
                if job.missing >= 2:
                    self._requeue(job, "requeued_lost")
            elif int(found[0]["time_since_delivered"]) >= claim_after * 1000:
                job.taken_at = None  # its worker fell silent: it waits for another one
                job.waiting_since = now
                COMPONENTS.queue_job_events.labels("requeued_abandoned").inc()
            else:
                budget = job.job.run_budget_s
                self._settle(
                    job,
                    Verdict(
                        Status.ERROR, detail=f"the job ran past its budget of {budget:.0f} s on a live worker"
                    ),
                )
                COMPONENTS.queue_job_events.labels("error_overran").inc()

    async def _check_queued(self, now: float) -> None:
        """Queued jobs whose entry is gone from the stream twice in a row (Redis restarted empty, flushed):
        enqueued again. Nothing is lost while this server lives."""
        queued = [
            job
            for job in self.jobs.values()
            if job.entry_id is not None and job.taken_at is None and now - job.released_at >= CHECK_S
        ]
        if not queued:
            return
        found = await self._per_entry(
            queued, lambda pipe, entry: pipe.xrange(self.keys.jobs, min=entry, max=entry, count=1)
        )
        if found is None:
            return
        for job, entries in zip(queued, found, strict=True):
            if isinstance(entries, Exception) or job.future.done() or job.phase != "queued":
                continue
            if entries:
                job.missing = 0
                continue
            job.missing += 1
            if job.missing >= 2:
                self._requeue(job, "requeued_lost")

    async def _per_entry(
        self, jobs: list[TrackedJob], command: Callable[[Pipeline, str], object]
    ) -> list[Any] | None:
        """`command(pipe, entry id)` for each job's stream entry, in one round trip: the replies in order
        (an error as a value), or None when Redis is unreachable (the caller tries again next check)."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for job in jobs:
                    command(pipe, job.entry_id or "0-0")
                replies: list[Any] = await pipe.execute(raise_on_error=False)
        except REDIS_DOWN:
            return None
        return replies

    async def _refresh_problems(self) -> None:
        keys = {job.job.problem_key for job in self.jobs.values() if job.entry_id is not None}
        if not keys:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.expire(self.keys.problem(key), PROBLEM_TTL_S)
                await pipe.execute(raise_on_error=False)
        except REDIS_DOWN:
            pass

    def _out_of_memory(self) -> None:
        """The queue's Redis refuses writes: no job can be enqueued or answered, so every request in flight
        is refused (503 + Retry-After; verdicts already cached stay) instead of waiting to become `error`."""
        if not self.requests:
            return
        log.error("job queue: Redis is out of memory; refusing %d request(s) in flight", len(self.requests))
        for request in list(self.requests.values()):
            self._fail_request(request, self._storage_full())

    # ---- Plumbing ----------------------------------------------------------------------------------------

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("job queue: background work failed", exc_info=task.exception())

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the executor closes."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass
