# The sandbox image: `sandbox/runner.py` (standard library only) on a plain Python base, run by the Docker
# backend (`sandbox/runners/docker.py`) as a pool of long-lived, hardened containers.
#
#   docker build -f services/sandbox.Dockerfile -t iarl/sandbox:latest .
#   # no registry (e.g. CI): bash services/build_base_image.sh, then
#   bash services/build_sandbox_image.sh          # --build-arg BASE_IMAGE=iarl/python-base:bookworm
#
# Any image with python3 (3.11 or newer) on PATH works as BASE_IMAGE; the solutions run on its interpreter, so
# pick the Python version they are graded with. Nothing is pip-installed: the runner needs the stdlib only.
#
# Isolation decision: the container is the boundary; the runner runs WITHOUT namespaces inside it.
# The backend starts every container with --network none, a read-only root, a tmpfs /tmp (the only
# writable place), --ipc none (no /dev/shm), cap-drop ALL, no-new-privileges, pids and memory limits, a
# non-root uid (distinct per pool slot, so RLIMIT_NPROC counts one container only), and Docker's default
# seccomp profile. That profile refuses unshare/clone of namespaces to unprivileged processes, so
# the runner's `auto` level falls back to rlimits + its subreaper sweep, which is all a container needs:
# network, filesystem, pid and IPC isolation from the host and from other containers already come from
# Docker. Nested namespaces would need (1) a custom seccomp profile allowing unshare/mount/umount2/pivot_root
# (services/seccomp/worker.json; under Docker's masked /proc paths the runner then has no /proc inside), and
# on AppArmor hosts (2) an unconfined AppArmor profile. Each of these widens the kernel attack surface seen by
# untrusted code (unprivileged user namespaces are the entry point of most container escapes) more than
# namespaces inside would narrow it, so we ship none of them. What one session could leave for the next in
# the same container (files in /tmp, SysV IPC, stray processes) is checked by the backend after every
# session, and the container is cleaned or replaced.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# The default user; the backend runs each pool slot under its own uid (the user need not exist in
# /etc/passwd: the runner never looks its user up).
ARG SANDBOX_UID=61000
RUN groupadd --system --gid "${SANDBOX_UID}" sandbox \
    && useradd --system --uid "${SANDBOX_UID}" --gid sandbox --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin sandbox \
    && mkdir -p /opt/sandbox

COPY sandbox/runner.py /opt/sandbox/runner.py
RUN chmod 0444 /opt/sandbox/runner.py && python3 -I -B -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" /opt/sandbox/runner.py

ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp TMPDIR=/tmp
WORKDIR /tmp
USER sandbox:sandbox
LABEL org.opencontainers.image.title="iarl sandbox runner" \
      org.opencontainers.image.description="Warm, fork-per-test runner for untrusted Python (see sandbox/runner.py)"
# The runner speaks length-prefixed JSON frames on stdin/stdout; closing stdin ends it (and the container).
ENTRYPOINT ["python3", "-I", "-B", "/opt/sandbox/runner.py"]
