"""`reward-server worker`: runs code jobs from the Redis queue in this machine's sandbox.

Each worker is one consumer of the group `iarl:workers` and runs up to `REWARD_CODE_MAX_PARALLEL` jobs at
once in its `LocalExecutor` (the process sandbox by default). How jobs are delivered, taken over from dead
workers and answered is described in `reward_server.queue`. Taking a job, the worker tells its server
("taken"): the job's run clock starts then, not when it was queued. Its heartbeat also publishes its slots,
from which servers compute each request's fair share. With REWARD_METRICS_PORT it serves Prometheus
metrics (its jobs, its sandbox's test outcomes) on that port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cachetools import LRUCache
from pydantic import ValidationError
from redis.exceptions import ResponseError
from tenacity import stop_before_delay

from reward_server.code_execution.local import LocalExecutor
from reward_server.code_grading import CodeProblem
from reward_server.metrics import WorkerMetrics, metrics_port
from reward_server.queue.protocol import (
    REDIS_DOWN,
    Job,
    QueueKeys,
    as_text,
    connect,
    encode_reply,
    encode_taken,
    ensure_group,
    is_out_of_memory,
    retry_redis,
)
from reward_server.schemas import Status
from reward_server.settings import RewardSettings
from reward_server.verdict import Verdict

log = logging.getLogger(__name__)

T = TypeVar("T")

READ_BLOCK_MS = 1000  # XREADGROUP waits this long, then the loop checks for shutdown and abandoned jobs
REPLY_STREAM_TTL_S = 3600  # a server that died leaves its reply stream behind this long at most
REPLY_STREAM_MAXLEN = 100_000


class SandboxWorker:
    """One consumer of the job queue. `rules_version` is the code backend's version under this worker's code
    and settings (`backends.code_sandbox.code_rules_version`, which `reward-server worker` passes): every
    verdict is stamped with it, so that the server caches it under the rules that made it."""

    def __init__(
        self, settings: RewardSettings, rules_version: str, executor: LocalExecutor | None = None
    ) -> None:
        if settings.redis_url is None:
            raise ValueError("a worker needs REWARD_REDIS_URL (the Redis of the reward server's job queue)")
        self.settings = settings
        self.keys = QueueKeys(settings.queue_prefix)
        self.name = settings.worker_name or f"{socket.gethostname()}-{os.getpid()}"
        self.executor = executor or LocalExecutor(settings)
        # Its verdicts' rules: this worker's code and settings, not those of the server that queued the job.
        self.rules_version = rules_version
        self.slots = settings.code_max_parallel
        url = settings.redis_url.get_secret_value()
        self.redis = connect(url)
        self.reader_redis = connect(url, blocking=True)
        self.running: dict[str, asyncio.Task[None]] = {}  # stream entry id -> the job's task
        self._next_claim = 0.0  # monotonic time of the next look for abandoned jobs
        self.problems: LRUCache[str, CodeProblem] = LRUCache(maxsize=32)
        self.stopping = asyncio.Event()
        self.jobs_done = 0
        self.metrics = WorkerMetrics()
        self.metrics.slots.set(self.slots)

    def stop(self) -> None:
        """Take no more jobs; `run` returns once the running ones finish (or the grace period ends)."""
        self.stopping.set()

    async def run(self) -> None:
        await self.executor.start()
        log.info(
            "worker %s: %s; queue %s; code rules %s",
            self.name,
            self.executor.description,
            self.keys.jobs,
            self.rules_version,
        )
        heartbeat = asyncio.create_task(self._heartbeat(), name="worker-heartbeat")
        try:
            with metrics_port(self.settings.metrics_port, self.settings.host, self.metrics.registry):
                await self._consume()
        finally:
            await self._drain()
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.zrem(self.keys.workers_alive, self.name)
                    pipe.hdel(self.keys.worker_slots, self.name)
                    await pipe.execute()
            except (*REDIS_DOWN, ResponseError):
                pass
            await self.executor.close()
            await self.redis.aclose()
            await self.reader_redis.aclose()
            log.info("worker %s: stopped after %d jobs", self.name, self.jobs_done)

    async def _consume(self) -> None:
        while not self.stopping.is_set():
            if len(self.running) >= self.slots:
                await asyncio.wait(
                    list(self.running.values()), timeout=1, return_when=asyncio.FIRST_COMPLETED
                )
                continue
            try:
                # Redis unreachable or refusing: back off (up to 5 s) until it answers or the worker stops.
                taken = await retry_redis(
                    self._take_jobs,
                    lambda exc: isinstance(exc, (*REDIS_DOWN, ResponseError)),
                    max_backoff_s=5.0,
                    stop=lambda _state: self.stopping.is_set(),
                    on_failure=self._log_redis_failure,
                )
            except (*REDIS_DOWN, ResponseError):
                return  # Redis still failing when the worker was told to stop
            await self._start(taken)

    async def _take_jobs(self) -> list[tuple[str, dict[Any, Any], int, int]]:
        """Take over abandoned jobs when it is time to (and start them), then read new ones (waiting up to
        READ_BLOCK_MS); returns the new ones."""
        try:
            if time.monotonic() >= self._next_claim:
                self._next_claim = time.monotonic() + self.settings.queue_claim_after_s / 2
                await self._take_over_abandoned()
                if len(self.running) >= self.slots:
                    return []
            answer: Any = await self.reader_redis.xreadgroup(
                self.keys.group,
                self.name,
                {self.keys.jobs: ">"},
                count=self.slots - len(self.running),
                block=READ_BLOCK_MS,
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await ensure_group(self.redis, self.keys)  # Redis came back empty
            return []
        return [
            (as_text(entry_id), fields, 0, 1)
            for _stream, entries in answer or []
            for entry_id, fields in entries
        ]

    def _log_redis_failure(self, exc: BaseException, retry_in_s: float) -> None:
        if isinstance(exc, REDIS_DOWN):
            log.warning("worker %s: Redis unreachable (%s); retrying in %.1f s", self.name, exc, retry_in_s)
        else:
            log.error(
                "worker %s: Redis refused a queue command (%s); retrying in %.1f s",
                self.name,
                exc,
                retry_in_s,
            )

    async def _take_over_abandoned(self) -> None:
        """XAUTOCLAIM jobs whose worker fell silent (no heartbeat for `queue_claim_after_s`)."""
        answer: Any = await self.redis.xautoclaim(
            self.keys.jobs,
            self.keys.group,
            self.name,
            min_idle_time=int(self.settings.queue_claim_after_s * 1000),
            start_id="0-0",
            count=self.slots - len(self.running),
        )
        taken: list[tuple[str, dict[Any, Any], int, int]] = []
        for entry_id, fields in answer[1]:  # [cursor, claimed entries, deleted ids]
            entry = as_text(entry_id)
            pending: Any = await self.redis.xpending_range(self.keys.jobs, self.keys.group, entry, entry, 1)
            deliveries = int(pending[0]["times_delivered"]) if pending else 1
            if not fields:  # deleted meanwhile (answered by a stalled worker): nothing to do
                await self.redis.xack(self.keys.jobs, self.keys.group, entry)
                continue
            if deliveries > self.settings.queue_max_deliveries:
                log.error(
                    "worker %s: job %s abandoned %d times; answering error", self.name, entry, deliveries - 1
                )
                taken.append((entry, fields, deliveries - 1, deliveries))
                continue
            log.warning(
                "worker %s: took over job %s from a silent worker (delivery %d)", self.name, entry, deliveries
            )
            taken.append((entry, fields, 0, deliveries))
        await self._start(taken)

    async def _start(self, taken: list[tuple[str, dict[Any, Any], int, int]]) -> None:
        """Run jobs just taken: (entry id, fields, workers it took down so far if given up, delivery)."""
        # (Not our own jobs re-delivered after a stall of ours.)
        new = [item for item in taken if item[0] not in self.running]
        await self._notify_taken(new)
        for entry_id, fields, give_up, _delivery in new:
            task = asyncio.create_task(self._process(entry_id, fields, give_up), name=f"job-{entry_id}")
            self.running[entry_id] = task
            task.add_done_callback(functools.partial(self._finished, entry_id))

    def _finished(self, entry_id: str, _task: asyncio.Task[None]) -> None:
        self.running.pop(entry_id, None)

    async def _process(self, entry_id: str, fields: dict[Any, Any], give_up: int) -> None:
        try:
            job = Job.from_fields(fields)
        except ValidationError as exc:
            log.error("worker %s: malformed job %s dropped: %s", self.name, entry_id, exc)
            await self._retrying(lambda: self._acknowledge(entry_id), until=time.time() + 60)
            return
        taken = time.time()
        # The server waits for the answer until the job's budget (from `taken`) has passed, and a while more.
        until = max(taken + job.run_budget_s + 2 * self.settings.queue_claim_after_s, time.time() + 30)
        self.metrics.running.inc()
        try:
            graded = await self._grade(job, give_up, until)
            verdict = dataclasses.replace(graded, backend_version=self.rules_version)
        except Exception:  # e.g. Redis gone for good: leave the job pending for another try
            log.exception("worker %s: job %s failed", self.name, entry_id)
            return
        finally:
            self.metrics.running.dec()
        await self._retrying(lambda: self._answer(entry_id, job, verdict), until=until)
        self.metrics.jobs.labels(verdict.status.value).inc()
        self.metrics.job_seconds.observe(time.time() - taken)
        self.jobs_done += 1

    async def _notify_taken(self, taken: list[tuple[str, dict[Any, Any], int, int]]) -> None:
        """Tell each job's server that its run clock starts now, in one round trip (best effort: without the
        notice the server still takes the answer, it only knows less about the job meanwhile)."""
        notices = []
        for entry_id, fields, _give_up, delivery in taken:
            try:
                job = Job.from_fields(fields)
            except ValidationError:
                continue  # `_process` drops it
            notices.append((job, entry_id, delivery))
        if not notices:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for job, _entry_id, delivery in notices:
                    pipe.xadd(
                        job.reply_to,
                        encode_taken(job.job_id, self.name, delivery),  # type: ignore[arg-type]
                        maxlen=REPLY_STREAM_MAXLEN,
                        approximate=True,
                    )
                for reply_to in {job.reply_to for job, _entry_id, _delivery in notices}:
                    pipe.expire(reply_to, REPLY_STREAM_TTL_S)
                await pipe.execute()
        except (*REDIS_DOWN, ResponseError) as exc:
            log.warning("worker %s: could not say %d job(s) were taken (%s)", self.name, len(notices), exc)

    async def _grade(self, job: Job, give_up: int, until: float) -> Verdict:
        if give_up:
            return Verdict(
                Status.ERROR,
                detail=f"the job was abandoned by {give_up} worker(s) that died or were killed running it",
            )
        problem = await self._problem(job, until)
        if problem is None:
            return Verdict(Status.ERROR, detail="the job's problem is no longer in Redis (expired or lost)")
        (verdict,) = await self.executor.run_all(problem, [job.code])
        return verdict

    async def _problem(self, job: Job, until: float) -> CodeProblem | None:
        problem = self.problems.get(job.problem_key)
        if problem is None:
            payload = await self._retrying(
                lambda: self.redis.get(self.keys.problem(job.problem_key)), until=until
            )
            if payload is None:
                return None
            problem = CodeProblem.model_validate_json(payload)
            self.problems[job.problem_key] = problem
        return problem

    async def _answer(self, entry_id: str, job: Job, verdict: Verdict) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(
                job.reply_to,
                encode_reply(job.job_id, verdict, self.name),  # type: ignore[arg-type]
                maxlen=REPLY_STREAM_MAXLEN,
                approximate=True,
            )
            pipe.expire(job.reply_to, REPLY_STREAM_TTL_S)
            pipe.xack(self.keys.jobs, self.keys.group, entry_id)
            pipe.xdel(self.keys.jobs, entry_id)  # the stream's length counts only waiting or running jobs
            replied, *_ = await pipe.execute(raise_on_error=False)
        # Only the reply matters (and is retried when Redis is down or full); the acknowledgement can fail
        # harmlessly, e.g. NOGROUP when Redis lost the queue meanwhile (the server enqueues the job again).
        if isinstance(replied, Exception):
            raise replied

    async def _acknowledge(self, entry_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.keys.jobs, self.keys.group, entry_id)
            pipe.xdel(self.keys.jobs, entry_id)
            await pipe.execute()

    async def _heartbeat(self) -> None:
        """Say we are alive, and re-claim our running jobs so that nobody takes them over (idle -> 0)."""
        while True:
            try:
                # Workers silent for an hour (killed) leave the registry, their slot counts with them.
                silent_since = time.time() - 3600
                gone: Any = await self.redis.zrangebyscore(self.keys.workers_alive, "-inf", silent_since)
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.zadd(self.keys.workers_alive, {self.name: time.time()})
                    pipe.hset(self.keys.worker_slots, self.name, self.slots)
                    if gone:
                        pipe.zrem(self.keys.workers_alive, *gone)
                        pipe.hdel(self.keys.worker_slots, *gone)
                    if self.running:
                        pipe.xclaim(
                            self.keys.jobs,
                            self.keys.group,
                            self.name,
                            min_idle_time=0,
                            message_ids=list(self.running),
                            justid=True,
                        )
                    await pipe.execute()
            except REDIS_DOWN as exc:
                log.warning("worker %s: heartbeat failed (%s)", self.name, exc)
            await asyncio.sleep(self.settings.queue_claim_after_s / 3)

    async def _drain(self) -> None:
        """Let running jobs finish for the grace period; the rest stay pending and go to other workers."""
        if not self.running:
            return
        log.info("worker %s: finishing %d running job(s)", self.name, len(self.running))
        tasks = list(self.running.values())
        _done, late = await asyncio.wait(tasks, timeout=self.settings.worker_shutdown_grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def _retrying(self, action: Callable[[], Awaitable[T]], until: float) -> T:
        """`action` again and again while Redis is unreachable or out of memory, until unix time `until`
        (the last error is raised when the next try would come after it)."""
        return await retry_redis(
            action,
            lambda exc: isinstance(exc, REDIS_DOWN) or is_out_of_memory(exc),
            max_backoff_s=2.0,
            stop=stop_before_delay(until - time.time()),
            on_failure=self._log_redis_failure,
        )


async def run_worker(settings: RewardSettings, rules_version: str) -> None:
    """Run one worker until SIGTERM or SIGINT; see `SandboxWorker` for `rules_version`."""
    worker = SandboxWorker(settings, rules_version)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    await worker.run()
