#!/usr/bin/env bash
# Builds the sandbox image from a minimal context (the Dockerfile and the modules of sandbox/runner only), so
# it is fast whatever else the checkout holds (virtual environments, data) and needs no .dockerignore:
#
#   bash services/build_sandbox_image.sh [TAG]
#
# Environment: SANDBOX_IMAGE_TAG (default iarl/sandbox:latest); BASE_IMAGE (default: the Dockerfile's,
# python:3.11-slim-bookworm; CI uses iarl/python-base:bookworm from services/build_base_image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-${SANDBOX_IMAGE_TAG:-iarl/sandbox:latest}}
# The runner's hash as a label: the backend warns when the image and the server's runner differ. It is the
# hash of `sha256sum` over the package's modules, names in byte order (sandbox/runners/docker.py computes
# the same, in _runner_sha256).
runner_sha256=$(cd sandbox/runner && LC_ALL=C sha256sum -- *.py | sha256sum | cut -d' ' -f1)
args=(--label "io.iarl.sandbox.runner-sha256=$runner_sha256")
[ -z "${BASE_IMAGE:-}" ] || args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")

# `docker build -` with a tar on stdin: the context is exactly the Dockerfile and the runner's modules.
tar -c services/sandbox.Dockerfile sandbox/runner/*.py \
    | docker build -q "${args[@]}" -f services/sandbox.Dockerfile -t "$TAG" - >/dev/null
echo "build_sandbox_image: built $TAG"
