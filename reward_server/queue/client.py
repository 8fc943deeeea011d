"""The server side of the code job queue: enqueue a group's programs, wait for the workers' verdicts."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from reward_server.backends.base import Verdict
from reward_server.code_grading import CodeProblem
from reward_server.errors import QueueFull, QueueUnavailable
from reward_server.queue.protocol import (
    REDIS_DOWN,
    Job,
    QueueKeys,
    connect,
    decode_reply,
    ensure_group,
    problem_key,
)
from reward_server.schemas import Status
from reward_server.settings import RewardSettings

log = logging.getLogger(__name__)

# Seconds a job may take beyond its tests' time limits: session start, transfers, the reply.
RUN_MARGIN_S = 10.0
# How long one XREAD of the reply stream blocks before it is issued again (ms).
READ_BLOCK_MS = 1000


class QueueExecutor:
    """Runs programs through the Redis queue (see `reward_server.queue`); one per server process."""

    def __init__(self, settings: RewardSettings) -> None:
        assert settings.redis_url is not None, "the code job queue needs REWARD_REDIS_URL"
        self.settings = settings
        self.keys = QueueKeys(settings.queue_prefix)
        self.server_id = uuid.uuid4().hex
        self.reply_stream = self.keys.replies(self.server_id)
        url = settings.redis_url.get_secret_value()
        self.redis = connect(url)
        self.reader_redis = connect(url, blocking=True)  # XREAD BLOCK holds its connection
        self.waiting: dict[str, asyncio.Future[Verdict]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._redis_ok = False

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

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        for future in self.waiting.values():
            future.cancel()
        try:
            await self.redis.delete(self.reply_stream)
        except REDIS_DOWN:
            pass
        await self.redis.aclose()
        await self.reader_redis.aclose()

    @property
    def ready(self) -> bool:
        return self._redis_ok and self._reader is not None and not self._reader.done()

    async def run_all(self, problem: CodeProblem, codes: Sequence[str]) -> list[Verdict]:
        key, payload = problem_key(problem)
        budget_s = (
            min(len(problem.tests) * problem.time_limit_s, self.settings.queue_max_run_s) + RUN_MARGIN_S
        )
        budget_s += self.settings.queue_max_wait_s
        deadline = time.time() + budget_s
        jobs = [
            Job(
                job_id=uuid.uuid4().hex,
                reply_to=self.reply_stream,
                problem_key=key,
                code=code,
                deadline=deadline,
            )
            for code in codes
        ]
        loop = asyncio.get_running_loop()
        futures = {job.job_id: loop.create_future() for job in jobs}
        self.waiting.update(futures)
        try:
            await self._enqueue(key, payload, jobs, ttl_s=int(budget_s) + 60)
            return list(
                await asyncio.gather(*(self._wait(job, futures[job.job_id], budget_s) for job in jobs))
            )
        finally:
            for job_id in futures:
                self.waiting.pop(job_id, None)

    async def _enqueue(self, key: str, payload: str, jobs: list[Job], ttl_s: int) -> None:
        try:
            depth = await self.redis.xlen(self.keys.jobs)
            if depth + len(jobs) > self.settings.queue_max_depth:
                raise QueueFull(
                    f"the code job queue holds {depth} jobs; {len(jobs)} more would pass its limit of "
                    f"{self.settings.queue_max_depth} (REWARD_QUEUE_MAX_DEPTH)",
                    retry_after_s=self.settings.queue_retry_after_s,
                )
            async with self.redis.pipeline(transaction=False) as pipe:
                # The problem first: a worker that sees a job finds its problem. Kept as long as any job of it
                # can still be waited for; re-storing an equal problem only extends its life.
                pipe.set(self.keys.problem(key), payload, ex=ttl_s)
                for job in jobs:
                    pipe.xadd(self.keys.jobs, job.to_fields())  # type: ignore[arg-type]
                await pipe.execute()
            self._redis_ok = True
        except REDIS_DOWN as exc:
            self._redis_ok = False
            raise QueueUnavailable(
                f"the code job queue (Redis) is unreachable: {exc}", retry_after_s=2
            ) from None

    async def _wait(self, job: Job, future: asyncio.Future[Verdict], budget_s: float) -> Verdict:
        try:
            return await asyncio.wait_for(future, timeout=max(job.deadline - time.time(), 0.0))
        except TimeoutError:
            alive = await self._workers_alive()
            return Verdict(
                Status.ERROR,
                detail=f"no sandbox worker answered within {budget_s:.0f} s "
                f"({alive} worker(s) seen in the last minute)",
            )

    async def _workers_alive(self) -> str:
        try:
            return str(await self.redis.zcount(self.keys.workers_alive, time.time() - 60, "+inf"))
        except REDIS_DOWN:
            return "unknown: Redis unreachable"

    async def _read_replies(self) -> None:
        """Wake each waiting request as its verdicts arrive; survive Redis outages (back off, go on)."""
        last_id = "0-0"
        backoff = 0.1
        while True:
            try:
                answer: Any = await self.reader_redis.xread(
                    {self.reply_stream: last_id}, block=READ_BLOCK_MS, count=512
                )
                backoff = 0.1
                self._redis_ok = True
            except (*REDIS_DOWN, ResponseError) as exc:  # this task must outlive any Redis trouble
                self._redis_ok = False
                log.warning("job queue: reply stream unreadable (%s); retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for _stream, entries in answer:
                for entry_id, fields in entries:
                    last_id = entry_id
                    self._deliver(fields)
            if answer:
                await self._trim(last_id)

    def _deliver(self, fields: dict[bytes, bytes]) -> None:
        try:
            job_id, verdict = decode_reply(fields)
        except (KeyError, ValueError) as exc:
            log.error("job queue: malformed reply dropped: %s", exc)
            return
        future = self.waiting.get(job_id)
        if future is not None and not future.done():
            future.set_result(verdict)  # a second answer to the same job (it ran twice) is dropped here

    async def _trim(self, last_id: bytes | str) -> None:
        """Replies already read are of no further use."""
        try:
            await self.redis.xtrim(self.reply_stream, minid=last_id)
        except (*REDIS_DOWN, ResponseError):
            pass
