#!/usr/bin/env bash
# Builds the reward-server/worker image (services/server.Dockerfile) with no network inside the build:
# the wheels of `.[server]` and of pip are built here on the host (PyPI, or the host's pip configuration)
# into services/.build/server/wheels (git-ignored), and that folder plus the Dockerfile is the whole context.
#
#   bash services/build_server_image.sh [TAG]
#
# Environment: SERVER_IMAGE_TAG (default iarl/reward-server:latest); BASE_IMAGE (default: the Dockerfile's,
# python:3.11-slim; CI uses iarl/python-base:bookworm from services/build_base_image.sh); PYTHON (the host
# interpreter that builds the wheels, default python3; it must have the base image's minor version, 3.11).
# Idempotent: the wheels are rebuilt from pip's cache and Docker reuses its layers when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-${SERVER_IMAGE_TAG:-iarl/reward-server:latest}}
PYTHON=${PYTHON:-python3}
WANT_PY=${WANT_PY:-3.11}
have=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$have" != "$WANT_PY" ]; then
    echo "build_server_image: $PYTHON is Python $have; the image's binary wheels need $WANT_PY (set PYTHON)" >&2
    exit 1
fi

start=$(date +%s)
CONTEXT=services/.build/server
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/wheels/deps" "$CONTEXT/wheels/project"
cp services/server.Dockerfile "$CONTEXT/Dockerfile"
# pip itself too: the debootstrap base has neither pip nor ensurepip (the Dockerfile runs pip from its wheel).
# async-timeout: redis needs it below Python 3.11.3 (Debian bookworm has 3.11.2), a marker that the host's
# newer 3.11 skips.
# SOURCE_DATE_EPOCH: the same sources give the same project wheel, so Docker's layer cache holds.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 315532800) \
    "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$CONTEXT/wheels/deps" \
    '.[server]' pip async-timeout 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
mv "$CONTEXT"/wheels/deps/inference_aware_verifier-*.whl "$CONTEXT/wheels/project/"
# (setuptools leaves a build/ folder behind in the checkout; it is git-ignored.)

args=(--label "io.iarl.source-sha256=$(git ls-files -s reward_server sandbox pyproject.toml | sha256sum | cut -d' ' -f1)")
[ -z "${BASE_IMAGE:-}" ] || args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
docker build -q "${args[@]}" -t "$TAG" "$CONTEXT" >/dev/null 2> >(grep -v -e DEPRECATED -e buildx -e BuildKit -e '^ *$' >&2)
echo "build_server_image: built $TAG in $(( $(date +%s) - start )) s"
