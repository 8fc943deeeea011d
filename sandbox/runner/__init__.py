"""The in-sandbox runner: a warm process that forks once per test. Standard library only, Linux only.

Run this folder as `python3 -I -S -B path/to/runner` (as both backends do: the process backend from the
checkout, the Docker image from its copy in /opt/sandbox/runner), or as `python3 -m sandbox.runner` where
the project is installed; it imports nothing from the project. `-S` keeps the .pth files of site-packages
out of every test process (the runner adds the site-packages directories to sys.path itself, and
`exit`/`quit` to builtins). The process backend (`sandbox.runners.process`) keeps one runner per slot; the
Docker backend runs the same folder inside its containers. The host imports `protocol` (the frame codec)
and `cgroup` alone.

Modules, one role each (the process letters are those of zygote's tree):

- protocol: frames on stdin/stdout and the messages (the protocol is documented there);
- linux: system calls through libc (namespaces, mounts, capabilities), the seccomp filter of the tests;
- cgroup: what the runner reads of the cgroups the host made for its tests;
- isolation: the hello's Config, the isolation levels, the read-only root, what is in force (Isolation);
- zygote: P (the runner process) and Z (the zygote, which serves between sessions);
- session: S (one program, many tests), which forks and watches one test process G per test;
- outcome: how S judges a finished test;
- harness: what runs in G around the solution (stdin and call modes, the result record);
- __main__: the entry point, which imports every module before isolation starts.

/proc: with a pid namespace each session mounts a proc of its own (showing only the session's processes).
Where the kernel refuses that (mount_too_revealing: Docker masks paths of the container's /proc with bind
mounts, and a user namespace may mount a new proc only where one is fully visible), or with "mount_proc":
"off", the namespaces and the minimal root stay, with no proc inside at all (an empty /proc: the outer
one is unmounted, or covered where it is locked, never shown, as it would list outer processes). Nothing
in the runner needs /proc after the pivot: S is pid 1 of its pid namespace, so kill(-1) from it reaches
every other process of the session, reaping until ECHILD finds them gone, and the kernel kills the whole
namespace when S dies. Solutions run as before, except that /proc/self/..., /dev/fd and /dev/std* (links
into /proc) do not resolve.

Every module imported by the runner is in the memory of each test process: typing (and tempfile, which
pulls in random, whose reseeding runs on every fork) stay out; the modules name their types under
`TYPE_CHECKING` (which mypy treats as true). This file imports nothing.
"""
