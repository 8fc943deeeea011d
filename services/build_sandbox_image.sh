#!/usr/bin/env bash
# Builds the sandbox image from a minimal context (the Dockerfile and sandbox/runner.py only), so it is
# fast whatever else the checkout holds (virtual environments, data) and needs no .dockerignore:
#
#   bash services/build_sandbox_image.sh [TAG]
#
# Environment: SANDBOX_IMAGE_TAG (default iarl/sandbox:latest); BASE_IMAGE (default: the Dockerfile's,
# python:3.11-slim-bookworm; CI uses iarl/python-base:bookworm from services/build_base_image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-${SANDBOX_IMAGE_TAG:-iarl/sandbox:latest}}
# The runner's hash as a label: the backend warns when the image and the server's runner differ.
args=(--label "io.iarl.sandbox.runner-sha256=$(sha256sum sandbox/runner.py | cut -d' ' -f1)")
[ -z "${BASE_IMAGE:-}" ] || args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")

# `docker build -` with a tar on stdin: the context is exactly these two files.
tar -c services/sandbox.Dockerfile sandbox/runner.py \
    | docker build -q "${args[@]}" -f services/sandbox.Dockerfile -t "$TAG" - >/dev/null
echo "build_sandbox_image: built $TAG"
