"""P, the runner process, and Z, the zygote: set up isolation once, then serve sessions. Stdlib only.

Processes
---------
    P  runner (started by the host)          reads "hello", sets up isolation, then only waits for C
    └─ C  setup process                       enters the namespaces, builds the read-only root, pivots
       └─ Z  zygote (pid 1 of the slot)      serves the protocol between sessions (or hands it over)
          └─ S  session process (pid 1 of a pid namespace of its own, private tmpfs /tmp; see session)
             └─ G  one per test: setsid, rlimits, unprivileged uid, no_new_privs, runs the solution

Spare session processes (with a pid namespace and "spare_session"): Z forks the next S (its namespaces,
/proc and tmpfs /tmp made, streams set up) while the current one serves; the spare waits on a pipe of its
own and is handed the protocol only once the current S has exited and Z has sent "closed". From then on it
answers "ping"/"hello" itself and becomes the session on "open". So every session still gets a process and
namespaces that nothing ran in before; opening one only no longer waits for them to be made.
"""

from __future__ import annotations

import builtins
import errno
import os
import signal
import sys

from .isolation import TEST_ID_IN_NS, Config, Isolation, enter_level, mount_points, plan_levels
from .linux import (
    CLONE_NEWIPC,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    MNT_DETACH,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_NO_NEW_PRIVS,
    describe_exit,
    die_with_parent,
    install_filter,
    mount,
    prctl,
    reap_all,
    reset_signals,
    set_non_dumpable,
    solution_filter,
    umount2,
    unshare,
)
from .protocol import answer_idle, read_frame, ready_message, write_frame
from .session import EXIT_END_OF_INPUT, EXIT_REPORTED, Session

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


# ---------------------------------------------------------------------------------------------------------
# P: the runner process


class _Quitter:
    """`exit()` and `quit()` as the site module defines them (the runner runs with -S)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Use {self.name}() or Ctrl-D (i.e. EOF) to exit"

    def __call__(self, code: Any = None) -> NoReturn:
        raise SystemExit(code)


def prepare_interpreter() -> None:
    """What `site` would have given the solutions, without importing the .pth files of site-packages."""
    if sys.flags.no_site:
        import site  # with -S, importing site does not run its main()

        for path in site.getsitepackages():
            if os.path.isdir(path) and path not in sys.path:
                sys.path.append(path)
        builtins.exit = _Quitter("exit")  # type: ignore[assignment]
        builtins.quit = _Quitter("quit")  # type: ignore[assignment]


def runner_main() -> NoReturn:
    reset_signals()
    set_non_dumpable()
    prepare_interpreter()
    try:
        hello = read_frame(0)
        if hello is None:
            os._exit(0)
        if hello.get("op") != "hello":
            raise ValueError(f"expected hello, got {hello.get('op')!r}")
        config = Config(hello.get("config"))
    except Exception as exc:  # noqa: BLE001 - reported to the host
        write_frame(1, {"op": "error", "message": f"bad hello: {exc}"})
        os._exit(1)
    failures: list[str] = []
    for level in plan_levels(config):
        reason = _try_level(level, config, failures)
        if reason is None:
            os._exit(0)  # unreachable: _try_level waits for the slot to end
        failures.append(f"{level}: {reason}")
    write_frame(1, {"op": "error", "message": "no isolation could be set up: " + "; ".join(failures)})
    os._exit(1)


def _try_level(level: str, config: Config, failures: list[str]) -> str | None:
    """Start C at `level`. On success wait for it and exit with its status; else return why it failed."""
    status_r, status_w = os.pipe()
    go_r, go_w = os.pipe()
    me = os.getpid()
    child = os.fork()
    if child == 0:
        os.close(status_r)
        os.close(go_w)
        _setup_main(level, config, failures, me, status_w, go_r)
    os.close(status_w)
    os.close(go_r)
    lines = os.fdopen(status_r, "rb")
    try:
        for raw in lines:
            line = raw.decode().rstrip("\n")
            if line == "unshared":
                _write_id_maps(child, config)
                os.write(go_w, b"m")
            elif line == "ok":
                lines.close()
                os.close(go_w)
                _, status = os.waitpid(child, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            elif line.startswith("fail "):
                reason = line[5:]
                break
        else:
            reason = "setup process died"
    except OSError as exc:
        reason = f"{exc}"
    lines.close()
    os.close(go_w)
    try:
        os.kill(child, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(child, 0)
    return reason


def _write_id_maps(child: int, config: Config) -> None:
    assert config.runner_uid is not None and config.test_uid is not None
    for name, base in (("uid_map", config.runner_uid), ("gid_map", config.runner_uid)):
        test = config.test_uid
        with open(f"/proc/{child}/{name}", "w") as handle:
            handle.write(f"0 {base} 1\n{TEST_ID_IN_NS} {test} 1\n")


def _setup_main(
    level: str, config: Config, failures: list[str], parent: int, status_w: int, go_r: int
) -> NoReturn:
    """C: enter the level, start the zygote, then wait for it."""
    try:
        die_with_parent(parent)
        iso = enter_level(level, config, status_w, go_r)
        die_with_parent(parent)  # credentials changed above, which clears the parent-death signal
        iso.warnings.extend(f"refused {f}" for f in failures)
        os.close(go_r)
        me = os.getpid()
        zygote = os.fork()
        if zygote == 0:
            Zygote(iso, config, me, status_w).serve()
        os.close(status_w)
        _, status = os.waitpid(zygote, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    except BaseException as exc:  # noqa: BLE001 - reported to P, which tries the next level
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        try:
            os.write(status_w, f"fail {message}\n".encode())
        finally:
            os._exit(1)


# ---------------------------------------------------------------------------------------------------------
# Z: the zygote


class Zygote:
    def __init__(self, iso: Isolation, config: Config, parent: int, status_w: int) -> None:
        self.iso = iso
        self.config = config
        self.parent = parent
        self.status_w = status_w

    def serve(self) -> NoReturn:
        try:
            die_with_parent(self.parent)
            prctl(PR_SET_CHILD_SUBREAPER, 1)
            set_non_dumpable()
            self._load_filter(self._block_nested_userns() if self.iso.userns else None)
            if self.config.cgroup is not None:
                self.iso.cgroup = self.config.cgroup.describe()
            if self.iso.pid_ns:
                self._settle_proc()
            os.write(self.status_w, b"ok\n")
            os.close(self.status_w)
        except BaseException as exc:  # noqa: BLE001
            os.write(self.status_w, f"fail zygote: {exc}\n".encode())
            os._exit(1)
        # The first compile in a process builds the compiler's state (~1.5 ms); done here once, every
        # session process and test process inherits it.
        compile("pass\n", "<warm-up>", "exec", dont_inherit=True)
        write_frame(1, ready_message(self.iso))
        if self.iso.pid_ns and self.config.spare_session:
            self._serve_with_spares()
        while True:
            message = self._read_request()
            if message["op"] == "open":
                self._session(message)
            else:
                answer_idle(self.iso, message)

    def _read_request(self) -> dict[str, Any]:
        try:
            message = read_frame(0)
        except (OSError, ValueError, EOFError) as exc:
            self._error(f"bad request: {exc}")
            os._exit(1)
        if message is None:
            os._exit(0)
        return message

    def _serve_with_spares(self) -> NoReturn:
        """Serve through spare session processes: each is set up while the one before it serves.

        A spare S is forked (new mount, pid and ipc namespaces, its own proc and tmpfs /tmp) as soon as the
        previous one is handed the protocol, and waits on its go pipe. It is handed the protocol only after
        the previous S has exited, so it never serves next to a session, and it is never reused: each
        session still gets a process and namespaces of its own, only made earlier.
        """
        spare = self._spawn(None)
        while True:
            if isinstance(spare, tuple) and self._exited(spare[0]):
                os.close(spare[1])
                spare = "the spare session process died"
            if isinstance(spare, str):
                # No spare to hand over: answer one request here (an open gets the error), then retry.
                reason = spare if isinstance(spare, str) else "the spare session process died"
                message = self._read_request()
                if message["op"] == "open":
                    self._error(f"cannot start a session: {reason}")
                else:
                    answer_idle(self.iso, message)
                spare = self._spawn(None)
                continue
            current, go_w = spare
            try:
                os.write(go_w, b"g")
            except OSError:
                pass  # it died just now: judged by its exit status below
            os.close(go_w)
            spare = self._spawn(None)
            _, status = os.waitpid(current, 0)
            code = os.waitstatus_to_exitcode(status)
            if code == EXIT_END_OF_INPUT:
                os._exit(0)  # (the spare reads end of file on its go pipe, or dies with the slot)
            if code == 0:
                write_frame(1, {"op": "closed"})
            elif code != EXIT_REPORTED:
                self._error(f"session process died ({describe_exit(code)})")

    @staticmethod
    def _exited(pid: int) -> bool:
        """Whether a child has exited (it is reaped if so)."""
        try:
            return os.waitpid(pid, os.WNOHANG)[0] != 0
        except ChildProcessError:
            return True

    def _error(self, message: str) -> None:
        write_frame(1, {"op": "error", "message": message})

    def _block_nested_userns(self) -> str | None:
        """Per user namespace: tests (unprivileged in ours) may not create user namespaces of their own.

        Returns why the sysctl could not be set (Docker binds /proc/sys read-only): the seccomp filter of
        the tests refuses them instead (see _load_filter).
        """
        try:
            with open("/proc/sys/user/max_user_namespaces", "w") as handle:
                handle.write("0")
        except OSError as exc:
            return f"{exc}"
        self.iso.nested_userns_blocked = "max_user_namespaces"
        return None

    def _load_filter(self, sysctl_refused: str | None) -> None:
        """The seccomp filter of every test (see solution_filter), tried once here before it is relied on."""
        block_namespaces = sysctl_refused is not None
        program = solution_filter(block_namespaces)
        problem = (
            "no seccomp filter for this machine"
            if program is None
            else _filter_problem(program, block_namespaces)
        )
        if problem is None:
            self.iso.seccomp_program = program
            if block_namespaces:
                self.iso.nested_userns_blocked = "seccomp"
            return
        self.iso.warnings.append(f"SysV IPC and memfds stay allowed: {problem}")
        if block_namespaces:
            self.iso.warnings.append(f"nested user namespaces stay allowed: {sysctl_refused}; {problem}")

    def _settle_proc(self) -> None:
        """Keep the outer /proc only under sessions that can mount their own; else no /proc at all.

        The outer proc (bound by build_root) lists the processes outside the slot, so it must never be what
        a session sees: if a throwaway session cannot mount a fresh proc (or mount_proc is off), it goes.
        """
        iso = self.iso
        if self.config.mount_proc == "off":
            iso.no_proc_reason = "turned off: mount_proc=off"
        else:
            problem = _fresh_proc_problem()
            if problem is None:
                return
            masks = sum(1 for point in mount_points() if point.startswith("/proc/"))
            # (mount_too_revealing: a user namespace gets a new proc only where one is fully visible)
            cause = f"the host masks /proc ({masks} mounts on its paths): " if masks else ""
            iso.no_proc_reason = f"{cause}fresh proc mount refused: {problem}"
        iso.proc = False
        iso.outer_proc_fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            umount2("/proc", MNT_DETACH)
        except OSError:
            # Locked (bound before the user namespace was made, at the userns level): cover it instead.
            mount("tmpfs", "/proc", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=555")
        if os.listdir("/proc"):
            raise OSError("the outer /proc is still visible")

    def _spawn(self, message: dict[str, Any] | None) -> tuple[int, int] | str:
        """Start S in new mount, pid and ipc namespaces: (its pid, its go pipe), or why it failed.

        With a message S opens that session at once; without, S is a spare: it sets itself up, then waits
        for a byte on its go pipe before it reads requests itself.
        """
        me = os.getpid()
        # An intermediate process enters the namespaces, so that S is the init of its own pid namespace and
        # nothing of a session (files in /tmp, SysV IPC objects) outlives it.
        go_r, go_w = os.pipe()
        pid_r, pid_w = os.pipe()
        middle = os.fork()
        if middle == 0:
            os.close(pid_r)
            os.close(go_w)
            try:
                unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC)
                session = os.fork()
                if session == 0:
                    os.close(pid_w)
                    Session(self.iso, self.config, me).main(message, go_r)
                os.write(pid_w, f"{session}".encode())
                os._exit(0)
            except BaseException as exc:  # noqa: BLE001
                os.write(pid_w, f"E{exc}".encode())
                os._exit(1)
        os.close(pid_w)
        os.close(go_r)
        with os.fdopen(pid_r, "rb") as handle:
            text = handle.read().decode()
        os.waitpid(middle, 0)
        if not text.isdigit():
            os.close(go_w)
            return text[1:] or "no pid"
        return int(text), go_w  # S was re-parented to us (we are the slot's init and a subreaper)

    def _session(self, message: dict[str, Any]) -> None:
        me = os.getpid()
        if self.iso.pid_ns:
            spawned = self._spawn(message)
            if isinstance(spawned, str):
                self._error(f"cannot start a session: {spawned}")
                return
            session, go_w = spawned
            os.close(go_w)
        else:
            session = os.fork()
            if session == 0:
                Session(self.iso, self.config, me).main(message, -1)
        _, status = os.waitpid(session, 0)
        reap_all()
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            write_frame(1, {"op": "closed"})
        elif code != EXIT_REPORTED:
            self._error(f"session process died ({describe_exit(code)})")


def _filter_problem(program: Any, block_namespaces: bool) -> str | None:
    """Why the tests could not run under `program` (None: they can), tried in a throwaway child."""
    child = os.fork()
    if child == 0:
        code = 3
        try:
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            install_filter(program)
            code = 9
            try:
                os.close(os.memfd_create("probe"))
            except OSError as exc:
                code = 0 if exc.errno == errno.EPERM else 9
            if code == 0 and block_namespaces:
                code = 4
                try:
                    unshare(CLONE_NEWUSER)
                except OSError as exc:
                    code = 5 if exc.errno != errno.EPERM else 0
            if code == 0:  # refused as they should be; fork and threads (clone3 -> clone) must still work
                import _thread

                done = _thread.allocate_lock()
                done.acquire()
                _thread.start_new_thread(done.release, ())
                code = 0 if done.acquire(timeout=5) else 8
                grandchild = os.fork()
                if grandchild == 0:
                    os._exit(0)
                if os.waitpid(grandchild, 0)[1] != 0:
                    code = 7
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    reasons = {
        3: "the seccomp filter was refused",
        4: "unshare still allowed under the seccomp filter",
        9: "memfd_create still allowed under the seccomp filter",
    }
    return None if code == 0 else reasons.get(code, f"the seccomp filter broke the test ({code})")


def _fresh_proc_problem() -> str | None:
    """Why a session process could not mount a proc of its own (None: it can), tried in throwaway children.

    The child stands in for the intermediate of Zygote._spawn, its child for S (pid 1 of a new pid
    namespace in a mount namespace of its own); both vanish with their namespaces.
    """
    read_r, write_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_r)
        try:
            unshare(CLONE_NEWNS | CLONE_NEWPID)
            grandchild = os.fork()
            if grandchild == 0:
                try:
                    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                except BaseException as exc:  # noqa: BLE001 - reported through the pipe
                    os.write(write_w, f"{exc}".encode())
                os._exit(0)
            os.waitpid(grandchild, 0)
        except BaseException as exc:  # noqa: BLE001
            os.write(write_w, f"{exc}".encode())
        os._exit(0)
    os.close(write_w)
    with os.fdopen(read_r, "rb") as handle:
        problem = handle.read().decode(errors="replace")
    os.waitpid(child, 0)
    return problem or None
