#!/usr/bin/env bash
# Builds every image the compose stack (and the Docker sandbox backend) needs, with no image registry:
#
#   sudo bash services/build_images.sh          # then: REDIS_IMAGE=iarl/redis:bookworm \
#                                               #   SERVER_IMAGE=iarl/reward-server:latest docker-compose up -d
#
#   iarl/python-base:bookworm   debootstrap + docker import (services/build_base_image.sh)
#   iarl/sandbox:latest         the Docker backend's runner image (services/build_sandbox_image.sh)
#   iarl/reward-server:latest   server + worker, from wheels built on this host (services/build_server_image.sh)
#   iarl/redis:bookworm         the base plus Debian's redis-server (services/build_redis_image.sh)
#
# Idempotent: the base and Redis images are skipped while they exist, the others reuse Docker's layer cache;
# FORCE=1 rebuilds the base and Redis images too. Needs root (debootstrap, chroot), debootstrap, a Docker
# engine, Debian mirrors and PyPI (or the host's pip configuration), and Python 3.11 (PYTHON) for the wheels.
# With a registry at hand, none of this is needed: `docker compose up --build` builds the same server image
# (services/server.Dockerfile) on the official python:3.11-slim-bookworm, and compose pulls redis:7-alpine.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${BASE_IMAGE:-iarl/python-base:bookworm}
step() {
    local name=$1
    shift
    local t0
    t0=$(date +%s)
    "$@"
    echo "build_images: $name took $(( $(date +%s) - t0 )) s"
}
step base bash services/build_base_image.sh "$BASE"
step sandbox env BASE_IMAGE="$BASE" bash services/build_sandbox_image.sh "${SANDBOX_IMAGE_TAG:-iarl/sandbox:latest}"
step server env BASE_IMAGE="$BASE" bash services/build_server_image.sh "${SERVER_IMAGE_TAG:-iarl/reward-server:latest}"
step redis env BASE_IMAGE="$BASE" bash services/build_redis_image.sh "${REDIS_IMAGE_TAG:-iarl/redis:bookworm}"
