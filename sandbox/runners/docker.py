"""The Docker backend: a warm pool of hardened, long-lived containers, each running `sandbox/runner`.

    sandbox = DockerSandbox(SandboxSettings(docker_pool_size=4))
    await sandbox.start()     # removes a crashed server's leftovers, starts the pool, logs the isolation
    async with sandbox.session(Program(code="print(input())"), Limits(wall_time_s=2)) as session:
        run = await session.run(TestInput(stdin="hi\\n"))      # TestRun(outcome="ok", stdout="hi\\n", ...)
    await sandbox.close()     # removes every container of the pool

The image comes from `services/sandbox.Dockerfile` (`bash services/build_sandbox_image.sh`); it holds the
runner and a Python, nothing else. Settings: `SANDBOX_DOCKER_*` (see `sandbox.settings`).

Containers
----------
Pool slot i is one container, started once and reused by session after session, with: `--network none`,
a read-only root, a tmpfs /tmp (nosuid, nodev, noexec, `workdir_mb`), `--ipc none` (no /dev/shm),
`--cap-drop ALL`, `no-new-privileges`, the seccomp profile `sandbox/seccomp.json` (Docker's default plus
unshare, mount, umount2 and pivot_root, for the runner's namespaces), a pids limit, a memory limit equal to
its memory+swap limit (set for each session to what its test may use), uid:gid `docker_uid_base + i`
(never root: and one uid per container, because RLIMIT_NPROC counts the processes of a uid), logging
driver `none` (program output never lands on the host's disk) and auto-remove. A container that dies,
hangs past a test's deadline plus `protocol_margin_s`, or answers nonsense is removed and replaced in the
background (the shared pool's lifecycle, sandbox.runners.pool); the session it served raises SandboxCrashed.

Transport
---------
The runner's own protocol (length-prefixed JSON frames; see `sandbox/runner/protocol.py`) over the
container's attached stdin/stdout. The attach connection is opened before the container starts (nothing
is lost), then handed to asyncio; a reader task strips Docker's 8-byte stream headers and logs the runner's
stderr. A round trip through dockerd costs ~0.1 ms, so a test costs what the runner's fork costs plus that;
nothing is `docker exec`ed per test (~125 ms). No shared directory is needed, so the engine may be local
(unix socket) or remote over plain tcp (not TLS). The container is created with StdinOnce: if this process
dies, its connection closes, the runner reads end of file and exits, and Docker removes the container.

Isolation inside the container: the runner's namespaces
--------------------------------------------------------
The runner sets up the same levels as the process backend, and requires namespaces: unprivileged (the
container's uid), so `userns-unprivileged`, with no /proc inside (Docker masks /proc paths, so the kernel
refuses a fresh proc mount). Each session is pid 1 of a pid namespace of its own, in its own mount (a
private tmpfs /tmp) and IPC namespaces: a test cannot signal its session or the runner (`kill -9` of its
parent, `kill -1`, SIGSTOP: the init of a pid namespace gets no signal from inside it), so whatever a
program does to its own session is its own `runtime_error` or `timeout`, never an infrastructure `error`;
nothing of one session (files, processes, IPC objects) outlives it, so no clean-up is needed between
sessions. The runner's own seccomp filter refuses the tests nested namespaces, mounts, SysV IPC and memfds.
The container's memory cgroup holds one session at a time: the tests raise their OOM score above the
runner's, and the runner reads the container's `oom_kill` count, so a session killed for memory is graded
`memory`. The cost: the seccomp profile lets the runner (not the tests) make user namespaces, and on hosts
that enforce AppArmor, Docker's default AppArmor profile refuses the mounts: there the pool does not start
(SandboxUnavailable says why) unless `docker_security_opt` adds e.g. `apparmor=unconfined` (docs/deploy.md).

Leftovers
---------
Every container has the labels `io.iarl.sandbox=runner` and `io.iarl.sandbox.owner=<hostname>/<pid>/<token>`.
`start()` removes the containers of this hostname whose owner process is gone (a crashed server) and
`close()` removes all of its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import os
import socket
import ssl
import struct
import uuid
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import docker  # type: ignore[import-untyped]
import requests
from docker import errors as docker_errors
from docker.types import LogConfig  # type: ignore[import-untyped]

from sandbox.errors import SandboxCrashed, SandboxError, SandboxUnavailable
from sandbox.runner import protocol
from sandbox.runners.pool import PooledSandbox, SlotPool
from sandbox.runners.session import CLOSE_TIMEOUT_S, exchange
from sandbox.schemas import Limits
from sandbox.settings import SandboxSettings

logger = logging.getLogger(__name__)

LABEL = "io.iarl.sandbox"
OWNER_LABEL = "io.iarl.sandbox.owner"
RUNNER_HASH_LABEL = "io.iarl.sandbox.runner-sha256"  # set by services/build_sandbox_image.sh
RUNNER_DIR = Path(protocol.__file__).resolve().parent  # the runner package, copied into the image
RUNNER_OVERHEAD_MB = 192  # the runner's own processes beside a test: added to its limit and /tmp
OPEN_ATTEMPTS = 3  # containers a session may try when the one it got died while idle
REMOVE_TIMEOUT_S = 30
STDOUT, STDERR = 1, 2  # stream ids of Docker's multiplexed attach stream
SECCOMP_PROFILE = Path(__file__).resolve().parents[1] / "seccomp.json"
_LIVE_OWNERS: set[str] = set()  # pools alive in this process: never removed as leftovers

_T = TypeVar("_T")


async def _in_thread(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """A blocking Docker SDK call, off the event loop."""
    return await asyncio.to_thread(function, *args, **kwargs)


def _remove_container(container: Any) -> None:
    """Kill and remove the container; returns once it is gone (also when Docker was removing it already)."""
    try:
        container.remove(force=True)
        return
    except docker_errors.NotFound:
        return
    except docker_errors.APIError as exc:
        if exc.status_code != 409:  # 409: being removed already (auto-remove after the runner exited)
            raise
    with contextlib.suppress(docker_errors.NotFound, requests.RequestException):
        container.wait(condition="removed", timeout=REMOVE_TIMEOUT_S)


class _Container:
    """One pool slot: a container, its attach stream and the runner's frames. Not for concurrent use."""

    @property
    def label(self) -> str:
        return f"container {self.index}"

    def __init__(self, index: int, generation: int, sandbox: DockerSandbox) -> None:
        self.index = index
        self.generation = generation
        self.settings = sandbox.settings
        self._client = sandbox._client
        self._owner = sandbox._owner
        self.uid = self.settings.docker_uid_base + index
        self.memory_mb = self.settings.docker_memory_mb
        self.container: Any = None
        self.ready: dict[str, Any] = {}
        self.broken = False
        self._closing = False
        self._stdout = asyncio.StreamReader()
        self._writer: asyncio.StreamWriter | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)

    @property
    def name(self) -> str:
        return f"iarl-sandbox-{self._owner.rsplit('/', 1)[-1]}-{self.index}-{self.generation}"

    @property
    def id(self) -> str | None:
        return None if self.container is None else str(self.container.id)

    def _create(self) -> tuple[Any, socket.socket]:
        settings = self.settings
        memory = f"{self.memory_mb}m"
        options: dict[str, Any] = {
            "image": settings.docker_image,
            "name": self.name,
            "user": f"{self.uid}:{self.uid}",
            "stdin_open": True,  # with attach (not detached): StdinOnce, so our end of file ends it
            "tty": False,
            "network_mode": "none",
            "read_only": True,
            "ipc_mode": "none",
            "tmpfs": {
                "/tmp": f"rw,nosuid,nodev,noexec,size={settings.workdir_mb}m,uid={self.uid},gid={self.uid},"
                "mode=0700"
            },
            "cap_drop": ["ALL"],
            "security_opt": [
                "no-new-privileges",
                f"seccomp={_seccomp_profile()}",
                *settings.docker_security_opt,
            ],
            "pids_limit": settings.docker_pids_limit,
            "mem_limit": memory,
            "memswap_limit": memory,
            # (where the kernel has no swap accounting, Docker drops memswap_limit with a warning: without
            # swappiness 0 the container would page its excess out instead of being killed at its limit)
            "mem_swappiness": 0,
            "labels": {LABEL: "runner", OWNER_LABEL: self._owner},
            "log_config": LogConfig(type="none"),
            "auto_remove": True,
            "hostname": "sandbox",
            "working_dir": "/tmp",
            "environment": {"HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8"},
        }
        if settings.docker_cpus is not None:
            options["nano_cpus"] = int(settings.docker_cpus * 1e9)
        container = self._client.containers.create(**options)
        try:
            # Attach before start, so that not a byte of the runner's output can be missed.
            attached = container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            raw = getattr(attached, "_sock", attached)
            if isinstance(raw, ssl.SSLSocket) or not isinstance(raw, socket.socket):
                attached.close()
                raise SandboxUnavailable(
                    "the Docker backend needs a unix-socket or plain-tcp engine (no TLS or ssh DOCKER_HOST)"
                )
            sock = raw.dup()  # ours alone; the SDK's objects are closed right away
            attached.close()
            raw.close()
            try:
                container.start()
            except BaseException:
                sock.close()
                raise
        except BaseException:
            with contextlib.suppress(docker_errors.DockerException):
                _remove_container(container)
            raise
        return container, sock

    async def start(self) -> None:
        # The thread cannot be cancelled: if we are, it finishes on its own and its socket is closed then
        # (the runner reads end of file, exits, and Docker removes the container).
        create = asyncio.ensure_future(_in_thread(self._create))
        try:
            self.container, sock = await asyncio.shield(create)
        except asyncio.CancelledError:
            create.add_done_callback(_close_created)
            raise
        except docker_errors.DockerException as exc:
            raise SandboxUnavailable(f"container {self.index} could not start: {exc}") from exc
        reader, self._writer = await asyncio.open_connection(sock=sock)
        self._pump_task = asyncio.create_task(self._pump(reader))
        hello = {
            "op": "hello",
            "version": protocol.PROTOCOL_VERSION,
            # The container's memory cgroup holds one session at a time: observed, not joined.
            "config": {"namespaces": "require", "workdir_mb": self.settings.workdir_mb, "cgroup": "own"},
        }
        try:
            reply = await self.request(hello, self.settings.start_timeout_s)
            if reply.get("op") != "ready":
                raise SandboxCrashed(f"unexpected reply {reply.get('op')!r} to 'hello'")
            if reply.get("version") != protocol.PROTOCOL_VERSION:
                raise SandboxCrashed(
                    f"the image's runner speaks protocol {reply.get('version')}, this server "
                    f"{protocol.PROTOCOL_VERSION}: rebuild the image (services/build_sandbox_image.sh)"
                )
            self.ready = reply
        except (SandboxError, ValueError, KeyError, TypeError) as exc:
            await asyncio.sleep(0.05)  # let the reader collect the runner's last words
            await self.discard()
            detail = " | ".join(self._stderr)
            raise SandboxUnavailable(
                f"container {self.index} ({self.settings.docker_image}) did not start: {exc}"
                + (f"; stderr: {detail}" if detail else "")
            ) from exc

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        """Split the attach stream: stdout feeds the protocol, stderr is logged."""
        try:
            while True:
                header = await reader.readexactly(8)
                (size,) = struct.unpack(">I", header[4:])
                data = await reader.readexactly(size) if size else b""
                if header[0] == STDERR:
                    for line in data.decode(errors="replace").splitlines():
                        self._stderr.append(line)
                        logger.warning("sandbox container %d: %s", self.index, line)
                else:
                    self._stdout.feed_data(data)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            if not self._closing and not self.broken:
                logger.warning("sandbox container %d (%s) ended", self.index, self.id)
            self.broken = True
            self._stdout.feed_eof()

    async def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one frame and read the reply; any failure leaves the container broken (SandboxCrashed)."""
        if self.broken or self._writer is None:
            raise SandboxCrashed(f"container {self.index} is not usable")
        return await exchange(self, self._writer, self._stdout, message, timeout_s)

    async def prepare(self, limits: Limits) -> None:
        """Set the container's memory limit to what this session may use: its test's limit, /tmp and the
        runner's own. The container holds one session, so that bounds the program's memory as a whole
        (every process, shared memory included): past it the OOM killer takes a test process (they raise
        their score), and the runner grades the test `memory`."""
        needed = limits.memory_mb + self.settings.workdir_mb + RUNNER_OVERHEAD_MB
        if needed == self.memory_mb:
            return
        memory = f"{needed}m"
        try:
            await _in_thread(self.container.update, mem_limit=memory, memswap_limit=memory)
        except docker_errors.DockerException as exc:
            self.broken = True  # replaced, never reused with a limit that is not this session's
            raise SandboxCrashed(f"container {self.index}: cannot set its memory limit: {exc}") from exc
        self.memory_mb = needed

    async def discard(self) -> None:
        """Close the stream and remove the container (it is gone when this returns)."""
        self.broken = True
        self._closing = True
        await self._close_stream()
        if self.container is not None:
            with contextlib.suppress(docker_errors.DockerException):
                await _in_thread(_remove_container, self.container)

    async def stop(self) -> None:
        await self.discard()

    async def _close_stream(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task


class DockerSandbox(PooledSandbox[_Container]):
    """Sandbox backend of warm, hardened containers (see the module docstring): the slots of a SlotPool,
    and the Docker client and owner label they share."""

    name = "docker"
    slot_noun = "container"

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or SandboxSettings()
        self.pool_size = self.settings.docker_pool_size or self.settings.slots
        self._owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"
        self._client: Any = None
        self._generation = 0
        self.pool = SlotPool(
            self,
            self.pool_size,
            acquire_timeout_s=self.settings.acquire_timeout_s,
            protocol_margin_s=self.settings.protocol_margin_s,
            open_attempts=OPEN_ATTEMPTS,
            # A container's start runs in a thread that cannot be cancelled: let it finish and clean up.
            close_grace_s=CLOSE_TIMEOUT_S,
        )

    @property
    def container_ids(self) -> list[str]:
        """Ids of the pool's current containers (for inspection; a replaced one gets a new id)."""
        return [s.id for s in self.pool.slots if s.id is not None]

    # The pool's SlotFactory: the Docker client the containers share, and the containers themselves.

    async def open_host(self) -> None:
        self._client = await self._connect()
        _LIVE_OWNERS.add(self._owner)
        removed = await _in_thread(self._remove_leftovers)
        if removed:
            logger.warning("docker sandbox: removed %d containers left by a crashed server", removed)

    async def _connect(self) -> Any:
        image = self.settings.docker_image
        try:
            client = await _in_thread(docker.from_env)
        except docker_errors.DockerException as exc:
            raise SandboxUnavailable(f"no Docker engine: {exc}") from exc
        try:
            await _in_thread(client.ping)
            found = await _in_thread(client.images.get, image)
        except docker_errors.ImageNotFound as exc:
            client.close()
            raise SandboxUnavailable(
                f"image {image!r} not found; build it with `bash services/build_sandbox_image.sh {image}`"
            ) from exc
        except docker_errors.DockerException as exc:
            client.close()
            raise SandboxUnavailable(f"Docker engine not usable: {exc}") from exc
        built_from = (found.labels or {}).get(RUNNER_HASH_LABEL)
        if built_from is not None and built_from != _runner_sha256():
            logger.warning(
                "docker sandbox: image %s holds another version of sandbox/runner than this server; "
                "rebuild it (bash services/build_sandbox_image.sh)",
                image,
            )
        return client

    def _remove_leftovers(self) -> int:
        """Remove containers of this host whose owning process is gone (a crashed server)."""
        host = socket.gethostname()
        removed = 0
        for container in self._client.containers.list(all=True, filters={"label": LABEL}):
            if container.status == "removing":
                continue
            owner = str(container.labels.get(OWNER_LABEL, ""))
            parts = owner.split("/")
            if len(parts) != 3 or parts[0] != host or owner in _LIVE_OWNERS or not parts[1].isdigit():
                continue
            pid = int(parts[1])
            if pid != os.getpid() and _process_alive(pid):
                continue  # another live server on this host
            with contextlib.suppress(docker_errors.DockerException):
                _remove_container(container)
                removed += 1
        return removed

    def new_slot(self, index: int) -> _Container:
        self._generation += 1
        return _Container(index, self._generation, self)

    def note_isolation(self, ready: dict[str, Any]) -> None:
        s = self.settings
        self._info = dict(ready.get("isolation") or {})
        cpus = f", {s.docker_cpus:g} CPUs" if s.docker_cpus is not None else ""
        self._summary = (
            f"docker: {self.pool_size} containers of {s.docker_image}; network none, read-only root, "
            f"tmpfs /tmp {s.workdir_mb} MiB (noexec), ipc none, cap-drop ALL, no-new-privileges, "
            f"seccomp sandbox/seccomp.json, pids <= {s.docker_pids_limit}, "
            f"memory set per session (test limit + /tmp + runner) without swap{cpus}, "
            f"uid {s.docker_uid_base}+slot (non-root); inside: {ready.get('summary', 'unknown')}"
        )
        logger.info("docker sandbox: %s", self._summary)

    async def close_host(self) -> None:
        if self._client is not None:
            # Anything of ours that survived (a replacement interrupted mid-start).
            with contextlib.suppress(docker_errors.DockerException):
                for container in await _in_thread(
                    self._client.containers.list, all=True, filters={"label": f"{OWNER_LABEL}={self._owner}"}
                ):
                    await _in_thread(_remove_container, container)
        _LIVE_OWNERS.discard(self._owner)
        if self._client is not None:
            await _in_thread(self._client.close)
        self._client = None


def _close_created(future: asyncio.Future[tuple[Any, socket.socket]]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result()[1].close()


@cache
def _seccomp_profile() -> str:
    """The containers' seccomp profile as Docker's API takes it (the JSON text, not a path)."""
    return json.dumps(json.loads(SECCOMP_PROFILE.read_text()), separators=(",", ":"))


def _runner_sha256() -> str:
    """The runner's hash as services/build_sandbox_image.sh labels the image: the SHA-256 of what
    `sha256sum *.py` prints in the runner package's folder (its modules, names in byte order)."""
    listing = "".join(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
        for path in sorted(RUNNER_DIR.glob("*.py"))
    )
    return hashlib.sha256(listing.encode()).hexdigest()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
