"""S, the session process: holds one program and forks one test process G per test. Standard library only.

S owns the protocol while its session is open; a test's process G never sees the protocol pipes. After each
test S kills whatever the test left behind (S is the init of the session's pid namespace, or a child
subreaper without namespaces); when S exits the kernel kills everything in the session's namespace.

Per test: G is forked ahead of time (right after the previous result is sent) and sets itself up, then
waits on a "go" pipe for its arguments while stdin waits in a memfd; S starts the wall clock at "go".
G's fds: 0 stdin (memfd), 1 stdout and 2 stderr (pipes, capped together), 3 the result channel (records:
tag b"R" result JSON, b"E" exception name, or from the compile probe b"C" the marshalled code object;
4-byte length, body), 4 "k" once set up (closed before the solution runs: a test whose G dies before "k" is
our failure, never the program's), 5 the go pipe. Before it drops its privileges G joins the test cgroup,
raises its OOM score to 1000, and loads the seccomp filter (linux.solution_filter). How the finished test
is judged: see outcome.
"""

from __future__ import annotations

import fcntl
import gc
import json
import linecache
import marshal
import math
import os
import resource
import select
import signal
import sys
import time
import types

from .harness import probe_compile, run_solution
from .linux import (
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    children_of_self,
    die_with_parent,
    drop_capabilities,
    install_filter,
    mount,
    prctl,
    reap_all,
    set_non_dumpable,
)
from .outcome import STDERR_TAIL_BYTES, judge, static_result
from .protocol import MAX_FRAME_BYTES, SWEEP_TIMEOUT_S, answer_idle, read_frame, write_all, write_frame

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from .isolation import Config, Isolation

CGROUP_CHECK_S = 0.05  # how often a running test's CPU time and OOM kills are read from its cgroup
OOM_SCORE_ADJ_TEST = b"1000"  # every test process is the OOM killer's first choice
TEST_PATH = "/usr/local/bin:/usr/bin:/bin"
EXIT_SETUP_FAILED = 125  # the harness failed before the solution ran
EXIT_REPORTED = 3  # a session process that already sent its own error frame
EXIT_END_OF_INPUT = 4  # a spare session process that read the end of the protocol instead of a request


class Limits:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.wall_time_s = float(raw.get("wall_time_s", 4.0))
        cpu = raw.get("cpu_time_s")
        self.cpu_time_s = float(cpu) if cpu is not None else self.wall_time_s
        self.memory_mb = int(raw.get("memory_mb", 512))
        self.max_processes = int(raw.get("max_processes", 16))
        self.max_output_bytes = int(raw.get("max_output_bytes", 8 << 20))
        self.max_open_files = int(raw.get("max_open_files", 64))
        self.max_file_bytes = int(raw.get("max_file_bytes", 16 << 20))


class _Child:
    """A forked test process and our ends of its pipes."""

    def __init__(
        self, pid: int, stdin_fd: int, go_w: int, out_r: int, err_r: int, res_r: int, ok_r: int
    ) -> None:
        self.pid = pid
        self.stdin_fd = stdin_fd
        self.go_w = go_w
        self.out_r = out_r
        self.err_r = err_r
        self.res_r = res_r
        self.ok_r = ok_r
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None

    def close(self) -> None:
        for fd in (self.stdin_fd, self.go_w, self.out_r, self.err_r, self.res_r, self.ok_r, self.pidfd):
            if fd is not None and fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.stdin_fd = self.go_w = self.out_r = self.err_r = self.res_r = self.ok_r = -1
        self.pidfd = None


class Session:
    """S: holds one program; forks one test process per test.

    The next test's process is forked and set up (uid, rlimits, streams) as soon as a result is sent, so it
    waits, ready, for its input while the host reads the result and sends the next test. A spare S (see
    zygote.Zygote._serve_with_spares) sets itself up before its "open" arrives.
    """

    def __init__(self, iso: Isolation, config: Config, parent: int) -> None:
        self.iso = iso
        self.config = config
        self.parent = parent
        self.code = ""
        self.mode = "stdin"
        self.fn_name: str | None = None
        self.limits = Limits({})
        self.workdir = "/tmp"
        self.compiled: types.CodeType | None = None
        self.static_result: dict[str, Any] | None = None  # every test's result when compilation failed
        self.nproc_extra = 0
        self.spare: _Child | None = None
        self.rfd, self.wfd = 0, 1  # the protocol (moved off 0-2 by _set_up_streams)
        self.streams: tuple[Any, Any, Any] = (sys.stdin, sys.stdout, sys.stderr)

    # -- lifetime --

    def main(self, message: dict[str, Any] | None, go_r: int) -> NoReturn:
        """Serve the session `message` opens; without one (a spare), first wait on go_r for the protocol."""
        setup_error: str | None = None
        try:
            self._setup()
        except BaseException as exc:  # noqa: BLE001 - an infrastructure failure, reported on "open"
            setup_error = f"session setup failed: {type(exc).__name__}: {exc}"
        if message is None:
            message = self._wait_for_open(go_r)
        elif go_r >= 0:
            os.close(go_r)
        if setup_error is not None:
            self._fail(setup_error)
        try:
            self._load(message)
            write_frame(self.wfd, {"op": "opened", "compile_error": self._compile()})
            self._refill()
        except BaseException as exc:  # noqa: BLE001 - an infrastructure failure
            self._fail(f"session setup failed: {type(exc).__name__}: {exc}")
        while True:
            try:
                message = read_frame(self.rfd)
            except (OSError, ValueError, EOFError) as exc:
                self._fail(f"bad request: {exc}")
            if message is None or message["op"] == "close":
                self._cleanup()
                os._exit(0)
            if message["op"] != "run":
                self._fail(f"unexpected op {message['op']!r} in a session")
            try:
                result = self._run(message)
                write_frame(self.wfd, {"op": "result", **result})
                self._refill()
            except BaseException as exc:  # noqa: BLE001
                self._fail(f"test failed to run: {type(exc).__name__}: {exc}")

    def _wait_for_open(self, go_r: int) -> dict[str, Any]:
        """A spare: wait to be handed the protocol, answer requests until an "open" (returned)."""
        go = os.read(go_r, 1)
        os.close(go_r)
        if not go:
            os._exit(EXIT_END_OF_INPUT)  # the zygote is gone
        while True:
            try:
                message = read_frame(self.rfd)
            except (OSError, ValueError, EOFError) as exc:
                self._fail(f"bad request: {exc}")
            if message is None:
                os._exit(EXIT_END_OF_INPUT)
            if message["op"] == "open":
                return message
            answer_idle(self.iso, message, self.wfd)

    def _load(self, message: dict[str, Any]) -> None:
        program = message.get("program") or {}
        self.code = str(program.get("code", ""))
        self.mode = str(program.get("mode", "stdin"))
        fn_name = program.get("fn_name")
        self.fn_name = str(fn_name) if fn_name else None
        self.limits = Limits(message.get("limits") or {})

    def _fail(self, message: str) -> NoReturn:
        try:
            write_frame(self.wfd, {"op": "error", "message": message})
            self._drop_spare()
            self._sweep()
        finally:
            os._exit(EXIT_REPORTED)

    def _setup(self) -> None:
        if self.iso.pid_ns:
            # We are pid 1 of the session's pid namespace, in a mount namespace of our own.
            if self.iso.proc:
                mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            mount(
                "tmpfs",
                "/tmp",
                "tmpfs",
                MS_NOSUID | MS_NODEV | MS_NOEXEC,
                f"size={self.config.workdir_mb}m,nr_inodes=16384,mode=0700",
            )
            self.workdir = "/tmp"
        else:
            die_with_parent(self.parent)
            prctl(PR_SET_CHILD_SUBREAPER, 1)
            import tempfile

            self.workdir = tempfile.mkdtemp(prefix="sandbox-session-", dir=self.config.work_root)
        set_non_dumpable()
        if self.iso.test_uid is not None:
            os.chown(
                self.workdir, self.iso.test_uid, self.iso.test_gid if self.iso.test_gid is not None else -1
            )
        else:
            # The test shares our uid, and RLIMIT_NPROC counts every process of a uid (per user namespace):
            # in ours the setup process, the zygote and this one (and with spares the next session process
            # and, while it starts, its intermediate); without namespaces all of the host's.
            if self.iso.pid_ns:
                self.nproc_extra = 5 if self.config.spare_session else 3
            else:
                self.nproc_extra = _count_processes_of(os.getuid())
        # What every test process starts with, set here once so that forking inherits it.
        os.environ.clear()
        os.environ.update(
            {
                "PATH": TEST_PATH,
                "HOME": self.workdir,
                "TMPDIR": self.workdir,
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
            }
        )
        sys.path[:] = [p for p in sys.path if p and os.path.exists(p)]
        sys.argv[:] = ["solution.py"]
        os.chdir(self.workdir)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as python has it (writes past RLIMIT_FSIZE fail)
        self._set_up_streams()

    def _set_up_streams(self) -> None:
        """Make the tests' sys.stdin/stdout/stderr here, once, so that no test process pays for it.

        The protocol moves off fds 0-2; in their place go files of the kinds the tests will have (a memfd for
        stdin, pipes for stdout and stderr), on which the three stream objects are opened. Each test process
        then only puts its own files on fds 0-2 and takes these pristine objects (its own copies, by fork).
        """
        self.rfd = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 10)
        self.wfd = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 10)
        placeholder_in = os.memfd_create("stdin", os.MFD_CLOEXEC)
        placeholder_r, placeholder_w = os.pipe()
        os.dup2(placeholder_in, 0)
        os.dup2(placeholder_w, 1)
        os.dup2(placeholder_w, 2)
        for fd in (placeholder_in, placeholder_r, placeholder_w):
            os.close(fd)
        self.streams = (
            open(0, encoding="utf-8", errors="surrogateescape", closefd=False),
            open(1, "w", encoding="utf-8", errors="surrogateescape", closefd=False),
            open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1),
        )

    def _cleanup(self) -> None:
        self._drop_spare()
        self._sweep()
        self._kill_test_uid()
        if not self.iso.mount_ns:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)

    def _refill(self) -> None:
        if self.spare is None and self.static_result is None:
            self.spare = self._fork(probe=False)

    def _drop_spare(self) -> None:
        if self.spare is not None:
            self.spare.close()  # it reads end of file instead of a test, and exits
            self.spare = None

    # -- compilation --

    def _compile(self) -> str | None:
        if self.mode == "call" and not self.fn_name:
            self.static_result = static_result("runtime_error", "call mode needs fn_name\n", exit_code=1)
            return "call mode needs fn_name"
        # Compile once in a limited child first: a pathological source must not take this process down.
        # It sends back the code object (marshal), so that a huge source is compiled once, within the test's
        # limits, and never again here outside any deadline.
        probe = self._execute(self._fork(probe=True), b"", None, probe=True)
        compiled = probe.pop("compiled", None)
        if probe["outcome"] != "ok":
            self.static_result = probe
            return str(probe["stderr_tail"] or probe["outcome"])
        try:
            self.compiled = marshal.loads(compiled) if compiled is not None else None
        except (EOFError, ValueError, TypeError):
            self.compiled = None
        if not isinstance(self.compiled, types.CodeType):
            self.compiled = compile(self.code, "<solution>", "exec", dont_inherit=True)
        # Tracebacks of the solution show its lines.
        linecache.cache["<solution>"] = (len(self.code), None, self.code.splitlines(True), "<solution>")
        return None

    # -- one test --

    def _run(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.static_result is not None:
            return dict(self.static_result)
        stdin = str(message.get("stdin") or "").encode("utf-8", "surrogatepass")
        args = message.get("args")
        if args is not None and not isinstance(args, list):
            raise ValueError("args must be a list")
        child, self.spare = self.spare or self._fork(probe=False), None
        return self._execute(child, stdin, args, probe=False)

    def _kill_everything(self, pid: int) -> None:
        if self.iso.pid_ns:
            try:
                os.kill(-1, signal.SIGKILL)  # as the namespace's init: every other process in it
            except ProcessLookupError:
                pass
            return
        for target in (-pid, pid):
            try:
                os.kill(target, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _sweep(self) -> None:
        """Kill and reap everything the tests left behind; raise if something survives."""
        deadline = time.monotonic() + SWEEP_TIMEOUT_S
        while not reap_all():
            if time.monotonic() > deadline:
                raise RuntimeError("processes of the test survive SIGKILL")
            if self.iso.pid_ns:
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                for child in children_of_self():
                    for target in (-child, child):
                        try:
                            os.kill(target, signal.SIGKILL)
                        except (ProcessLookupError, PermissionError):
                            pass
            time.sleep(0.0005)

    def _kill_test_uid(self) -> None:
        """Without a pid namespace: kill(-1) as the test uid reaches exactly the processes of that uid."""
        if self.iso.pid_ns or self.iso.test_uid is None or os.geteuid() != 0:
            return
        helper = os.fork()
        if helper == 0:
            try:
                gid = self.iso.test_gid if self.iso.test_gid is not None else self.iso.test_uid
                os.setresgid(gid, gid, gid)
                os.setresuid(self.iso.test_uid, self.iso.test_uid, self.iso.test_uid)
                os.kill(-1, signal.SIGKILL)
            except BaseException:  # noqa: BLE001, S110
                pass
            os._exit(0)
        os.waitpid(helper, 0)

    def _fork(self, *, probe: bool) -> _Child:
        gc.freeze()  # the child's collections then leave our objects (and their memory pages) alone
        stdin_fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
        go_r, go_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        ok_r, ok_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            self._child(stdin_fd, go_r, out_w, err_w, res_w, ok_w, probe)
        for fd in (go_r, out_w, err_w, res_w, ok_w):
            os.close(fd)
        return _Child(pid, stdin_fd, go_w, out_r, err_r, res_r, ok_r)

    def _execute(self, child: _Child, stdin: bytes, args: list[Any] | None, *, probe: bool) -> dict[str, Any]:
        """Hand a test to a forked child, enforce the deadline and the output cap, and judge the outcome."""
        try:
            return self._watch(child, stdin, args, probe)
        finally:
            child.close()

    def _watch(self, child: _Child, stdin: bytes, args: list[Any] | None, probe: bool) -> dict[str, Any]:
        limits = self.limits
        write_all(child.stdin_fd, stdin)
        os.lseek(child.stdin_fd, 0, os.SEEK_SET)
        go = (
            b"G"
            if args is None
            else b"A" + json.dumps(args, ensure_ascii=False).encode("utf-8", "surrogatepass")
        )
        cgroup = self.config.cgroup
        oom_kills_before = cgroup.oom_kills() if cgroup is not None else None
        # A cgroup of the test's own is read while it runs (see _over_budget).
        watched = cgroup is not None and (cgroup.cpu_fd is not None or not cgroup.shared)
        cpu_before = self._tree_cpu_s()
        start = time.monotonic()
        next_check = start + CGROUP_CHECK_S
        try:
            write_all(child.go_w, go)
        except BrokenPipeError:
            pass  # it died during its set-up: judged below
        os.close(child.go_w)
        child.go_w = -1
        pid = child.pid
        readers = {
            child.out_r: bytearray(),
            child.err_r: bytearray(),
            child.res_r: bytearray(),
            child.ok_r: bytearray(),
        }
        poller = select.poll()
        for fd in readers:
            os.set_blocking(fd, False)
            poller.register(fd, select.POLLIN)
        if child.pidfd is not None:
            poller.register(child.pidfd, select.POLLIN)
        open_fds = set(readers)
        deadline = start + limits.wall_time_s
        killed: str | None = None
        exited = False
        status = 0
        end = start
        output_bytes = 0
        drain_deadline = 0.0
        while not exited or open_fds:
            now = time.monotonic()
            if not exited and killed is None and now >= deadline:
                killed = "timeout"
                self._kill_everything(pid)
            if not exited and killed is None and watched and now >= next_check:
                next_check = now + CGROUP_CHECK_S
                killed = self._over_budget(cpu_before, oom_kills_before)
                if killed is not None:
                    self._kill_everything(pid)
            if exited and now >= drain_deadline:
                break  # something we cannot kill holds a pipe; give up on it
            wait_s = (drain_deadline if exited else (deadline if killed is None else now + 0.05)) - now
            if watched and not exited and killed is None:
                wait_s = min(wait_s, next_check - now)
            if child.pidfd is None and not exited:
                wait_s = min(wait_s, 0.002)
            events = poller.poll(max(0, math.ceil(wait_s * 1000)))
            if child.pidfd is None and not exited:
                done, status = _wait_for_exit(pid, os.WNOHANG)
                if done:
                    events.append((-1, select.POLLIN))
            for fd, _ in events:
                if fd == child.pidfd or fd == -1:
                    if fd == child.pidfd:
                        _, status = _wait_for_exit(pid, 0)
                        poller.unregister(fd)
                    end = time.monotonic()
                    exited = True
                    drain_deadline = end + 2.0
                    self._sweep()  # anything still running dies now, so every pipe reaches EOF
                    continue
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    continue
                buffer = readers[fd]
                if fd in (child.out_r, child.err_r):
                    output_bytes += len(data)
                    if output_bytes > limits.max_output_bytes:
                        if killed is None:
                            killed = "output_limit"
                            self._kill_everything(pid)
                        continue
                    buffer += data
                    if fd == child.err_r and len(buffer) > 8 * STDERR_TAIL_BYTES:
                        del buffer[:-STDERR_TAIL_BYTES]
                elif len(buffer) <= (MAX_FRAME_BYTES if probe else limits.max_output_bytes + 16):
                    buffer += data  # (the probe's channel carries the compiled program)
                elif killed is None:
                    killed = "output_limit"
                    self._kill_everything(pid)
        # Everything the test started has been reaped by now (swept at its exit).
        cpu_s = self._tree_cpu_s() - cpu_before
        oom_kills = None
        if oom_kills_before is not None and cgroup is not None:
            oom_kills = (cgroup.oom_kills() or 0) - oom_kills_before
        return judge(
            status,
            cpu_s,
            oom_kills,
            killed,
            end - start,
            readers[child.out_r],
            readers[child.err_r],
            bytes(readers[child.res_r]),
            bytes(readers[child.ok_r]),
            probe=probe,
            expect_result=self.mode == "call" and not probe,
            cpu_time_s=limits.cpu_time_s,
            cgroup_shared=None if cgroup is None else cgroup.shared,
        )

    def _over_budget(self, cpu_before: float, oom_kills_before: int | None) -> str | None:
        """While a test runs, from its own cgroup: "timeout" once all its processes together have used its
        CPU time (RLIMIT_CPU counts one process), "memory" once the OOM killer took any of them (the whole
        test then goes, as cgroup v2's memory.oom.group would have it); else None."""
        cgroup = self.config.cgroup
        assert cgroup is not None
        if cgroup.cpu_fd is not None and self._tree_cpu_s() - cpu_before >= self.limits.cpu_time_s:
            return "timeout"
        if (
            oom_kills_before is not None
            and not cgroup.shared
            and (cgroup.oom_kills() or 0) > oom_kills_before
        ):
            return "memory"
        return None

    def _tree_cpu_s(self) -> float:
        """CPU seconds used so far by the tests' processes: the test cgroup's count, live; else what the
        reaped children used (every process a test starts is reaped by this one, its init or subreaper)."""
        cgroup = self.config.cgroup
        if cgroup is not None and cgroup.cpu_fd is not None:
            used = cgroup.cpu_seconds()
            if used is not None:
                return used
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return float(usage.ru_utime + usage.ru_stime)

    # -- G: the test process --

    def _child(
        self,
        stdin_fd: int,
        go_r: int,
        out_w: int,
        err_w: int,
        res_w: int,
        ok_w: int,
        probe: bool,
        _exit: Callable[[int], NoReturn] = os._exit,
    ) -> NoReturn:
        """Set up, wait for the go (fd 5), report "k" on fd 4, then run the solution. Never returns."""
        try:
            if self.config.cgroup is not None:
                self.config.cgroup.join()  # (while still privileged: the runner's root may move it)
            self._raise_oom_score()
            os.setsid()
            # Out of the way first, so that no dup2 below overwrites a source it still needs.
            high = [
                fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64)
                for fd in (stdin_fd, out_w, err_w, res_w, ok_w, go_r)
            ]
            for target, fd in enumerate(high):
                os.dup2(fd, target, inheritable=target < 3)
            os.closerange(6, 1 << 20)
            self._limit()
            self._drop_privileges()
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            if self.iso.seccomp_program is not None:
                install_filter(self.iso.seccomp_program)
            if not self.iso.pid_ns:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # (after the uid switch, which clears it)
            signal.signal(signal.SIGINT, signal.default_int_handler)  # (the rest are as python has them)
            sys.stdin = sys.__stdin__ = self.streams[0]  # type: ignore[misc]
            sys.stdout = sys.__stdout__ = self.streams[1]  # type: ignore[misc]
            sys.stderr = sys.__stderr__ = self.streams[2]  # type: ignore[misc]
            go = bytearray()
            while chunk := os.read(5, 1 << 16):
                go += chunk
            os.close(5)
            if not go:
                os._exit(0)  # the session ended before this spare was needed
            args = json.loads(bytes(go[1:]).decode("utf-8", "surrogatepass")) if go[:1] == b"A" else None
            os.write(4, b"k")  # set up: from here on, whatever happens is the solution's doing
            os.close(4)
        except BaseException:  # noqa: BLE001
            os._exit(EXIT_SETUP_FAILED)
        status = 1
        try:
            if probe:
                status = probe_compile(self.code)
            else:
                assert self.compiled is not None
                status = run_solution(self.compiled, self.mode, self.fn_name, args)
        finally:
            _exit(status)  # whatever the solution raised or patched, this process ends here

    def _raise_oom_score(self) -> None:
        """Make this test process the OOM killer's first choice: never the runner, a neighbour or the server.

        Anyone may raise their own score. Without a /proc inside, through the outer one the zygote kept.
        """
        directory = self.iso.outer_proc_fd
        path = "self/oom_score_adj" if directory is not None else "/proc/self/oom_score_adj"
        # A non-dumpable process's /proc files belong to the host's root, out of reach of our user namespace:
        # dumpable for the moment of the open (only the runner's own processes share our uid meanwhile).
        prctl(PR_SET_DUMPABLE, 1)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC, dir_fd=directory)
        except OSError:
            return  # no /proc at all: the score stays as inherited
        finally:
            set_non_dumpable()
        try:
            os.write(fd, OOM_SCORE_ADJ_TEST)
        finally:
            os.close(fd)

    def _limit(self) -> None:
        limits = self.limits
        cpu = max(1, math.ceil(limits.cpu_time_s))
        memory = limits.memory_mb * (1 << 20)  # the interpreter's own ~20 MiB included, as the caller expects
        for which, value in (
            (resource.RLIMIT_AS, memory),
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_NOFILE, limits.max_open_files),
            (resource.RLIMIT_FSIZE, limits.max_file_bytes),
            (resource.RLIMIT_NPROC, limits.max_processes + self.nproc_extra),
            (resource.RLIMIT_CORE, 0),
        ):
            soft, hard = value if isinstance(value, tuple) else (value, value)
            resource.setrlimit(which, (soft, hard))

    def _drop_privileges(self) -> None:
        iso = self.iso
        if iso.test_uid is not None:
            gid = iso.test_gid if iso.test_gid is not None else iso.test_uid
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(iso.test_uid, iso.test_uid, iso.test_uid)
        elif iso.drop_caps:
            drop_capabilities()


def _wait_for_exit(pid: int, options: int) -> tuple[int, int]:
    """os.waitpid for an exit only: a test process that made us its tracer (PTRACE_TRACEME, where no
    seccomp filter refuses it) is reported at each of its ptrace-stops too, which is no exit (and no status
    that os.waitstatus_to_exitcode takes). (0, 0) while it has not exited, with WNOHANG."""
    while True:
        done, status = os.waitpid(pid, options)
        if not done or not os.WIFSTOPPED(status):
            return done, status
        if options & os.WNOHANG:
            return 0, 0  # stopped, not exited: it stays so until the deadline's SIGKILL


def _count_processes_of(uid: int) -> int:
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count
