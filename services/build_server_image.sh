#!/usr/bin/env bash
# Builds the reward-server/worker image (services/server.Dockerfile) with no network inside the build, for
# air-gapped hosts and CI (.ci/run): the wheels of `.[server]`, pip and setuptools are built here on the host
# (PyPI, or the host's pip configuration) into services/wheelhouse/ (git-ignored), and the build reads only
# them (PIP_NO_INDEX=1; `--network none` proves it). The same Dockerfile and tag as `docker compose up
# --build`, which downloads instead.
#
#   bash services/build_server_image.sh [TAG]
#
# Environment: SERVER_IMAGE_TAG (default iarl/reward-server:latest); BASE_IMAGE (default: the Dockerfile's,
# python:3.11-slim-bookworm; CI uses iarl/python-base:bookworm from services/build_base_image.sh); PYTHON
# (the host interpreter that builds the wheels, default python3; it must have the base image's minor
# version, 3.11). Idempotent: the wheels are rebuilt from pip's cache and Docker reuses its layers when
# nothing changed.
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
WHEELHOUSE=services/wheelhouse
find "$WHEELHOUSE" -name '*.whl' -delete
# pip itself too: the debootstrap base has neither pip nor ensurepip (the Dockerfile runs pip from its
# wheel); setuptools: the build backend that pip needs to build the project inside the image.
# async-timeout: redis needs it below Python 3.11.3 (Debian bookworm has 3.11.2), a marker that the host's
# newer 3.11 skips.
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$WHEELHOUSE" \
    '.[server]' pip 'setuptools>=77' async-timeout 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
# The project itself is built inside the image, from the sources (as in an ordinary build).
rm -f "$WHEELHOUSE"/inference_aware_verifier-*.whl
# (setuptools leaves a build/ folder behind in the checkout; it is git-ignored.)

args=(--network none --build-arg PIP_NO_INDEX=1
    --label "io.iarl.source-sha256=$(git ls-files -s reward_server sandbox pyproject.toml | sha256sum | cut -d' ' -f1)")
[ -z "${BASE_IMAGE:-}" ] || args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
# The context is the repository root, cut down by .dockerignore to the sources and the wheelhouse.
docker build -q "${args[@]}" -f services/server.Dockerfile -t "$TAG" . >/dev/null \
    2> >(grep -v -e DEPRECATED -e buildx -e BuildKit -e '^ *$' >&2)
echo "build_server_image: built $TAG in $(( $(date +%s) - start )) s"
