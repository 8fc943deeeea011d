# The reward server and the sandbox worker: one image, two commands.
#
#   reward-server serve     the HTTP API (the image's default command; REWARD_HOST=0.0.0.0 is set here)
#   reward-server worker    consumes code jobs from the Redis stream (REWARD_REDIS_URL) and runs them
#                           with the local process sandbox, REWARD_CODE_MAX_PARALLEL at once
#
# An ordinary build from the repository root (.dockerignore keeps the context to the package's sources):
#
#   docker compose up --build                                  # what docker-compose.yml does
#   docker build -f services/server.Dockerfile -t iarl/reward-server:latest .
#
# pip installs the repository (`.[server]`) into /opt/venv, from PyPI, plus any wheels found in
# services/wheelhouse/ (git-ignored; empty in a clean clone). With no network in the build (air-gapped hosts,
# CI), services/build_server_image.sh builds those wheels on the host and passes PIP_NO_INDEX=1: the same
# Dockerfile, the same image and tag, nothing downloaded inside the build.
#
# BASE_IMAGE: any image with python3 3.11 on PATH, `useradd` and the stdlib `venv` module. pip for the
# venv comes from the base's ensurepip (the official python images), else from pip's wheel in the
# wheelhouse, else from apt (python3-venv; Debian bases such as services/build_base_image.sh's debootstrap
# image, which has neither pip nor ensurepip). Only /opt/venv leaves the build stage.
#
# Both commands run as an unprivileged user (uid 10001). The worker runs untrusted solutions with the
# process sandbox (sandbox/runners/process.py): the sandbox's user/pid/net/mount namespaces (which keep
# solutions away from Redis and the worker's own processes) need only a seccomp profile that allows unshare,
# mount, umount2 and pivot_root (sandbox/seccomp.json): no capability, no systempaths=unconfined
# (under Docker's /proc masks the sandbox runs with no /proc inside); docker-compose.yml and docs/deploy.md
# give the least privilege that works and why.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# 1 where the build has no network: pip then reads services/wheelhouse/ only.
ARG PIP_NO_INDEX=0
COPY services/wheelhouse/ /tmp/wheelhouse/
RUN set -eu; \
    if python3 -c 'import ensurepip' 2>/dev/null; then \
        python3 -m venv /opt/venv; \
    elif ls /tmp/wheelhouse/pip-*.whl >/dev/null 2>&1; then \
        python3 -m venv --without-pip /opt/venv; \
        set -- /tmp/wheelhouse/pip-*.whl; \
        /opt/venv/bin/python "$1/pip" install --no-index --no-cache-dir --disable-pip-version-check --quiet "$1"; \
    else \
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            python3-venv >/dev/null; \
        python3 -m venv /opt/venv; \
    fi
# The sources last: a code change reinstalls from here (the wheelhouse or pip's downloads).
COPY pyproject.toml README.md /src/
COPY reward_server/ /src/reward_server/
COPY sandbox/ /src/sandbox/
COPY trainer_client/ /src/trainer_client/
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --quiet --find-links /tmp/wheelhouse \
        '/src[server]' \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/reward-server --help >/dev/null

FROM ${BASE_IMAGE}
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" reward \
    && useradd --system --uid "${APP_UID}" --gid reward --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin reward
COPY --from=build /opt/venv /opt/venv

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
