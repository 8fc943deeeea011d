"""Sandboxed execution of untrusted code: run one program against many tests under hard limits.

    async with sandbox.session(Program(code=...), Limits(...)) as session:  # sandbox.runners.base
        run = await session.run(TestInput(stdin=...))  # TestRun: outcome, stdout, result_json, ...

Backends: `process` (sandbox.runners.process, the embedded default: warm runners on this machine) and
`docker` (sandbox.runners.docker: hardened containers). Both run the package `sandbox/runner` (standard
library only, run as a folder), which forks one process per test from a warm interpreter, and both are one
kind of slot for the same pool (sandbox.runners.pool): warm slots, one session per slot, a broken slot
replaced and never reused.

Threat model
============
The adversary is the program: model-written Python that may do anything Python can (os, subprocess,
ctypes, threads, signals, sockets), by malice or by accident (fork bombs, endless loops, huge output).
What it must not get:

1. A pass it did not earn. Expected outputs never enter the sandbox: a test is only its stdin or call
   arguments, and the caller compares what came out. A test passes only with outcome `ok` (exit status 0
   within every limit); for call programs the return value travels on a result channel of its own as
   plain JSON built from the values themselves (tuples as lists; subclasses count as their base type, so
   an overridden `__eq__` changes nothing; anything that is not JSON, no value at all (`os._exit`), or a
   garbled channel is a `runtime_error`). The harness shares the program's process, so a program can
   forge its own result or exit status; that is no easier than computing the answer, since the answer is
   not in the sandbox to copy.
2. The host. Processes of the sandbox are killed as a whole at the deadline and after every test; nothing
   a test starts outlives it (double-forked orphans included). The server's environment is never passed
   on: runners start with PATH and LANG only, tests get PATH, HOME, TMPDIR, LANG, LC_ALL.
3. Other programs. Each session has its own private /tmp and its own pid namespace; one program cannot
   see, signal or read another's processes or files, at the same time or later.
4. Availability. Limits per test: wall time (SIGKILL to everything at the deadline), CPU time (of all
   the test's processes together; RLIMIT_CPU per process), address space (RLIMIT_AS), processes and
   threads (RLIMIT_NPROC under a uid of the test's own), open files (RLIMIT_NOFILE), file size
   (RLIMIT_FSIZE), output (stdout + stderr; killed past the cap), and with a memory cgroup (below) the
   memory of all its processes together. A runner that dies or hangs is replaced and the session raises
   SandboxCrashed, which the caller must report as an infrastructure error (never as a wrong answer).
5. Its own verdict turned into someone else's failure, or the reverse. A test cannot signal its runner
   (another uid, or the init of its pid namespace), so what it does to its own session is its
   `runtime_error` or `timeout`. Memory that no process's RSS shows (SysV shared memory, memfds) is refused
   by a seccomp filter on every test, and every test process raises its OOM score to 1000, so the OOM
   killer takes a test before a runner, the server or anything else. An outcome a neighbour could have
   caused (out of wall time with CPU time to spare; an OOM kill in a cgroup shared with other programs) is
   marked `certain=False`: callers do not cache it.

Memory and CPU cgroups (sandbox.cgroups): the process backend makes one per slot where the server may
(root, or a delegated cgroup v2); a slot's tests join it, so the program's memory is bounded as a whole
(its children, /tmp and kernel memory included: `memory_mb` + `workdir_mb` + 64 MiB), an OOM kill there is
graded `memory`, its CPU time is read live, and each slot gets an equal CPU weight. Elsewhere (e.g. inside
a container with a read-only /sys/fs/cgroup) the host's own cgroup is only observed (an OOM kill there is
not certainly the program's) and memory is bounded per process. The Docker backend's container holds one
session at a time and is that session's cgroup.

Process backend: what is enforced (the start-up log line and `ProcessSandbox.isolation` say which level)
--------------------------------------------------------------------------------------------------
- `userns` (running as real root, the CI case; kernel allowing user namespaces): each runner lives in
  new user, pid, net, mount, ipc and uts namespaces. Its root maps to an unprivileged host uid
  (`uid_base + 2*slot`); tests run as uid 1000 inside, host uid `uid_base + 2*slot + 1`, with no
  capabilities and no_new_privs, so RLIMIT_NPROC applies (root ignores it: that is why tests never run
  as root) and fork/thread bombs stop at `max_processes`. Nested user namespaces are disabled.
  The filesystem is a new, read-only root (pivot_root) holding only /usr, /bin, /sbin, /lib*, /etc (the
  `expose_paths` setting), the Python installation and its site-packages, /dev/{null,zero,full,random,
  urandom}, the session's own /proc, and a private tmpfs /tmp (`workdir_mb`, noexec) as the work dir.
  The network namespace has no interface: no loopback of the host, no abstract unix sockets of the host.
- `userns-unprivileged` (the server runs as an ordinary user): the same namespaces and root, but only one
  uid can be mapped, so tests keep uid 0 of the namespace with every capability dropped for good; they
  still cannot signal the runner (it is the init of their pid namespace) nor pass RLIMIT_NPROC.
- `namespaces` (real root, user namespaces refused): pid, net, mount, ipc, uts namespaces and the same
  root; tests run as the host uid `uid_base + 2*slot + 1`.
- `none` (namespaces refused or `use_namespaces=off`; logged as a warning): rlimits only, plus a uid switch
  when running as root. The program then sees the host's filesystem (what its uid may read: world-
  readable files, e.g. a dataset file of expected outputs, ARE readable), the host's network and
  processes; writable places of the host (/tmp, /dev/shm) are writable; without a uid switch a program
  can kill its own runner (kill -9 -1), which surfaces as SandboxCrashed.

Not contained (all levels)
--------------------------
- Kernel bugs: the seccomp filter on tests refuses only namespaces, mounts, SysV IPC, memfds, keyrings,
  io_uring, bpf, perf_event_open, userfaultfd and ptrace; a local privilege escalation in the kernel
  escapes.
- Memory across processes without a cgroup of the sandbox's own: RLIMIT_AS is per process, so a test may
  then use up to `max_processes` x `memory_mb` at once. Each session's tmpfs takes up to `workdir_mb` of RAM.
- What is world-readable inside the exposed paths (/etc, /usr, site-packages) is readable, e.g. the host
  name and /etc/passwd; the installed Python packages are importable. Keep secrets and datasets of
  expected outputs out of them (files mode 600, or outside the exposed paths).
- Timing and resource side channels between concurrent programs (CPU contention).
"""
