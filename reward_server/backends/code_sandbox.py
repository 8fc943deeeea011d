"""The `code` backend: CodeContests/TACO-style Python solutions, run against their tests in a sandbox.

Flow for one group: take the program out of every completion (`code_grading.extract_code`, off the event
loop: `backends.program_extractor`; none -> status `no_answer`) and hand each distinct program once (equal
code in a group is graded once) to an executor (`reward_server.code_execution`), which runs it test after
test and returns its verdict:

- `LocalExecutor`, the embedded default: a sandbox in this process (`REWARD_SANDBOX_BACKEND`: `process`
  or `docker`, configured by its own `SANDBOX_*` settings), `REWARD_CODE_MAX_PARALLEL` sessions at once;
- `QueueExecutor` (`reward_server.queue`), when `REWARD_REDIS_URL` is set (or `REWARD_CODE_EXECUTOR=queue`):
  every program is a job on a Redis stream, run by `reward-server worker` processes anywhere.

Answer classes: none (every completion gets class None). Majority voting needs a decidable equivalence
of answers; two programs' equivalence is not decidable, and classing by identical code or by identical
outputs on the tests would make maj@k meaningless for code, so code groups have no classes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from reward_server.backends.base import Memo, Verdict
from reward_server.backends.program_extractor import ProgramExtractor
from reward_server.backends.registry import register_backend
from reward_server.backends.rules_version import rules_version
from reward_server.code_execution.base import ProgramExecutor
from reward_server.code_execution.local import LocalExecutor
from reward_server.code_grading import (
    CodeProblem,
    CodeReference,
    LimitPolicy,
    load_problems,
    normalize_reference,
    request_context,
)
from reward_server.settings import RewardSettings
from sandbox.runners.base import Sandbox

__all__ = ["CodeBackend", "build_executor", "code_rules_version"]

log = logging.getLogger(__name__)
# What decides a code verdict, hashed into the backend's version (see `code_rules_version`).
HUMAN_VERSION = "0.1.0"
RULES_MODULES = (
    "reward_server.code_grading",  # extraction, references, output comparison, one test's verdict
    __name__,
    "reward_server.code_execution.local",  # a program's verdict from its tests' runs (reruns, first failure)
    "reward_server.backends.program_extractor",  # `no_answer` for a completion whose extraction fails
    # The in-sandbox runner package, every module of it: a test's outcome (timeout, memory, runtime_error,
    # ...) and whether it is certain.
    "sandbox.runner",
    "sandbox.runners.session",  # the protocol: a runner's reply read as a TestRun
    "sandbox.schemas",  # the per-test limits a reference does not set (processes, output, files)
)


def code_rules_version(settings: RewardSettings) -> str:
    """The code backend's version under `settings`; each queue worker stamps its verdicts with its own.

    Settings not hashed, because the cache key holds them already or they decide no cached verdict: the
    limit policy (REWARD_CODE_TIME_LIMIT_FACTOR, REWARD_CODE_MEMORY_HEADROOM_MB, the defaults and caps)
    makes the limits of the normalized reference, which the key hashes; REWARD_CODE_WALL_TIME_FACTOR and
    REWARD_CODE_MAX_RUN_S only end runs as uncertain timeouts, which are never cached.
    """
    return rules_version(
        HUMAN_VERSION,
        RULES_MODULES,
        # A failing program's test summary (tests passed) depends on whether it stopped at its first failure.
        {"stop_on_first_failure": settings.code_stop_on_first_failure},
    )


def build_executor(settings: RewardSettings, sandbox: Sandbox | None = None) -> ProgramExecutor:
    """The queue when Redis is configured (or asked for), else a sandbox in this process.

    The one place the backends reach the job queue (imported here only: a server without Redis never loads
    it); the queue itself never imports a backend.
    """
    if settings.use_queue and sandbox is None:
        from reward_server.queue.client import QueueExecutor

        return QueueExecutor(settings)
    return LocalExecutor(settings, sandbox)


@register_backend("code")
class CodeBackend:
    name = "code"
    description = (
        "Python solutions (CodeContests/TACO) run in a sandbox: last fenced Python block, stdin/stdout "
        "tests compared by the CodeContests token rule (1e-5), call tests by JSON return value; "
        "correct only if every test passes."
    )
    reference_model = CodeReference

    def __init__(
        self,
        settings: RewardSettings,
        sandbox: Sandbox | None = None,
        executor: ProgramExecutor | None = None,
    ) -> None:
        """`sandbox` or `executor` are for tests and benches; by default both come from the settings."""
        self.settings = settings
        self.version = code_rules_version(settings)
        self.policy = LimitPolicy.from_settings(settings)
        self.executor = executor or build_executor(settings, sandbox)
        self.problems = (
            load_problems(settings.code_problems_path, self.policy) if settings.code_problems_path else {}
        )
        self.extractor = ProgramExtractor()
        self._started = False

    async def start(self) -> None:
        await self.executor.start()
        self._started = True
        log.info("code backend: %s; %d problems loaded", self.executor.description, len(self.problems))

    async def close(self) -> None:
        await self.extractor.close()
        if self._started:
            self._started = False
            await self.executor.close()

    @property
    def ready(self) -> bool:
        return self._started and self.executor.ready

    @property
    def reference_context(self) -> dict[str, Any]:
        """Validation context of a request's reference: the caps it is held to (see `backends.base`)."""
        return request_context(self.policy)

    def parse_reference(self, raw: dict[str, Any]) -> CodeProblem:
        return normalize_reference(raw, self.policy, self.problems)

    async def grade(self, reference: CodeProblem, completions: Sequence[str]) -> list[Verdict]:
        programs = await self.extractor.programs(completions)
        distinct = list(dict.fromkeys(program for program in programs if isinstance(program, str)))
        verdicts = await self.executor.run_all(reference, distinct) if distinct else []
        by_code = dict(zip(distinct, verdicts, strict=True))
        return [by_code[program] if isinstance(program, str) else program for program in programs]

    async def answer_classes(
        self, reference: CodeProblem, verdicts: Sequence[Verdict], memo: Memo
    ) -> list[int | None]:
        """No classes for code (see the module docstring): None for every verdict."""
        return [None] * len(verdicts)
