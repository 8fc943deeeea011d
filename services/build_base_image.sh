#!/usr/bin/env bash
# Builds a minimal Debian bookworm image with python3, for machines that cannot pull `python:3.11-slim`
# (no image registry, only Debian mirrors). The sandbox image then builds on it:
#
#   bash services/build_base_image.sh                       # -> iarl/python-base:bookworm
#   docker build -f services/sandbox.Dockerfile \
#       --build-arg BASE_IMAGE=iarl/python-base:bookworm -t iarl/sandbox:latest .
#
# Idempotent: does nothing when the image already exists (FORCE=1 rebuilds). Needs root (debootstrap),
# debootstrap and a Docker engine. Takes about a minute. Environment:
#   BASE_IMAGE_TAG   image to make (default iarl/python-base:bookworm)
#   DEBIAN_MIRROR    mirror to bootstrap from (default http://deb.debian.org/debian)
#   SUITE            Debian suite (default bookworm)
set -euo pipefail

TAG=${1:-${BASE_IMAGE_TAG:-iarl/python-base:bookworm}}
SUITE=${SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "build_base_image: $TAG exists, nothing to do"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "build_base_image: debootstrap is not installed" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "build_base_image: debootstrap needs root" >&2; exit 1; }

ROOTFS=$(mktemp -d /tmp/iarl-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT

start=$(date +%s)
# minbase: essential packages and apt only; python3 is all the sandbox runner needs (stdlib only).
debootstrap --variant=minbase --include=python3 "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || {
    tail -n 30 "$ROOTFS.log" >&2
    rm -f "$ROOTFS.log"
    exit 1
}
rm -f "$ROOTFS.log"

# Trim what a container never uses: apt lists and caches, docs, man pages, locales.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/*
# The `python` name that the official image has, so the same commands work on both bases.
[ -e "$ROOTFS/usr/bin/python" ] || ln -s python3 "$ROOTFS/usr/bin/python"

tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap --variant=minbase --include=python3 $SUITE" \
    - "$TAG" >/dev/null
echo "build_base_image: built $TAG in $(( $(date +%s) - start )) s"
