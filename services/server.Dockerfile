# The reward server and the sandbox worker: one image, two commands.
#
#   reward-server serve     the HTTP API (the image's default command; REWARD_HOST=0.0.0.0 is set here)
#   reward-server worker    consumes code jobs from the Redis stream (REWARD_REDIS_URL) and runs them
#                           with the local process sandbox, REWARD_CODE_MAX_PARALLEL at once
#
# The build needs no network: the wheels of `.[server]` (and of pip itself) are built on the host by
# services/build_server_image.sh and are the whole build context besides this file:
#
#   bash services/build_server_image.sh [TAG]                 # -> iarl/reward-server:latest
#   BASE_IMAGE=iarl/python-base:bookworm bash services/build_server_image.sh   # no registry (CI)
#
# The host's Python must have the base image's minor version (3.11), since binary wheels (pydantic-core,
# uvloop, ...) are built for it. Any base with python3 on PATH, `useradd` and the stdlib `venv` module works:
# the official python:3.11-slim and services/build_base_image.sh's debootstrap image (Debian's python3,
# without pip or ensurepip: pip runs from its own wheel, `python pip.whl/pip`, into a venv made
# `--without-pip`).
#
# Both commands run as an unprivileged user (uid 10001). The worker runs untrusted solutions with the
# process sandbox (sandbox/runners/process.py): the sandbox's user/pid/net/mount namespaces (which keep
# solutions away from Redis and the worker's own processes) need only a seccomp profile that allows unshare,
# mount, umount2 and pivot_root (sandbox/seccomp.json): no capability, no systempaths=unconfined
# (under Docker's /proc masks the sandbox runs with no /proc inside); docker-compose.yml and docs/deploy.md
# give the least privilege that works and why.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
COPY wheels/deps/ /tmp/wheels/deps/
RUN set -- /tmp/wheels/deps/pip-*.whl \
    && python3 -m venv --without-pip /opt/venv \
    && /opt/venv/bin/python "$1/pip" install --no-index --no-deps --no-cache-dir --disable-pip-version-check \
        --quiet /tmp/wheels/deps/*.whl

FROM ${BASE_IMAGE}
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" reward \
    && useradd --system --uid "${APP_UID}" --gid reward --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin reward
COPY --from=build /opt/venv /opt/venv
# The project last and on its own (a small layer): a code change rebuilds only this.
COPY wheels/project/ /tmp/wheels/
RUN /opt/venv/bin/pip install --no-index --no-deps --no-cache-dir --disable-pip-version-check --quiet \
        /tmp/wheels/*.whl \
    && /opt/venv/bin/pip check \
    && rm -rf /tmp/wheels \
    && /opt/venv/bin/reward-server --help >/dev/null

# HOME and TMPDIR are /tmp: compose mounts a tmpfs there and keeps the root file system read-only.
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp TMPDIR=/tmp \
    REWARD_HOST=0.0.0.0 REWARD_PORT=8000
WORKDIR /tmp
USER reward:reward
EXPOSE 8000
LABEL org.opencontainers.image.title="iarl reward server" \
      org.opencontainers.image.description="Reward server (reward-server serve) and sandbox worker (reward-server worker)"
ENTRYPOINT ["reward-server"]
CMD ["serve"]
