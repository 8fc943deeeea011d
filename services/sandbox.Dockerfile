# The sandbox image: the `sandbox/runner` package (standard library only) on a plain Python base, run by the
# Docker backend (`sandbox/runners/docker.py`) as a pool of long-lived, hardened containers.
#
#   docker build -f services/sandbox.Dockerfile -t iarl/sandbox:latest .
#   # no registry (e.g. CI): bash services/build_base_image.sh, then
#   bash services/build_sandbox_image.sh          # --build-arg BASE_IMAGE=iarl/python-base:bookworm
#
# Any image with python3 (3.11 or newer) on PATH works as BASE_IMAGE; the solutions run on its interpreter, so
# pick the Python version they are graded with. Nothing is pip-installed: the runner needs the stdlib only.
#
# Isolation: the backend starts every container with --network none, a read-only root, a tmpfs /tmp,
# --ipc none (no /dev/shm), cap-drop ALL, no-new-privileges, pids and memory limits, a non-root uid
# (distinct per pool slot, so RLIMIT_NPROC counts one container only), and the seccomp profile
# sandbox/seccomp.json: Docker's default plus unshare, mount, umount2 and pivot_root, so that the runner
# gives every session its own user, pid, mount, ipc, net and uts namespaces inside the container. A program
# then cannot signal its runner or its session (the init of its pid namespace), and nothing of one session
# outlives it. The tests themselves get those calls refused again by the runner's own seccomp filter.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# The default user; the backend runs each pool slot under its own uid (the user need not exist in
# /etc/passwd: the runner never looks its user up).
ARG SANDBOX_UID=61000
RUN groupadd --system --gid "${SANDBOX_UID}" sandbox \
    && useradd --system --uid "${SANDBOX_UID}" --gid sandbox --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin sandbox \
    && mkdir -p /opt/sandbox

# The runner's folder, run as `python3 /opt/sandbox/runner` (its __main__.py imports the package from
# /opt/sandbox). Started once here without a hello, it imports every module and exits: a check that this
# Python runs it with the standard library alone.
COPY sandbox/runner/ /opt/sandbox/runner/
RUN chmod 0555 /opt/sandbox/runner && chmod 0444 /opt/sandbox/runner/*.py \
    && python3 -I -S -B /opt/sandbox/runner </dev/null

ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp TMPDIR=/tmp
WORKDIR /tmp
USER sandbox:sandbox
LABEL org.opencontainers.image.title="iarl sandbox runner" \
      org.opencontainers.image.description="Warm, fork-per-test runner for untrusted Python (see sandbox/runner)"
# The runner speaks length-prefixed JSON frames on stdin/stdout; closing stdin ends it (and the container).
ENTRYPOINT ["python3", "-I", "-B", "/opt/sandbox/runner"]
