#!/usr/bin/env bash
# Builds a Redis image for machines that cannot pull `redis:7-alpine` (no image registry, only Debian mirrors):
# the base image's root file system (services/build_base_image.sh) plus Debian's redis-server, installed with
# apt in a chroot on this host (so no network is needed inside a container), then `docker import`ed.
#
#   bash services/build_redis_image.sh [TAG]                  # -> iarl/redis:bookworm
#
# docker-compose.yml runs `${REDIS_IMAGE:-redis:7-alpine}`; set REDIS_IMAGE=iarl/redis:bookworm to use this one.
# It answers the compose file's command (`redis-server --appendonly yes ...`) like the official image, runs as
# the `redis` user and keeps its data in /data. Idempotent: does nothing when the image exists (FORCE=1
# rebuilds). Needs root (chroot, mounts) and a Docker engine. Environment: REDIS_IMAGE_TAG (default
# iarl/redis:bookworm), BASE_IMAGE (default iarl/python-base:bookworm; any Debian-based image with apt works).
set -euo pipefail

TAG=${1:-${REDIS_IMAGE_TAG:-iarl/redis:bookworm}}
BASE=${BASE_IMAGE:-iarl/python-base:bookworm}

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "build_redis_image: $TAG exists, nothing to do"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "build_redis_image: the chroot needs root" >&2; exit 1; }
docker image inspect "$BASE" >/dev/null 2>&1 || { echo "build_redis_image: no $BASE (build_base_image.sh)" >&2; exit 1; }

start=$(date +%s)
ROOTFS=$(mktemp -d /tmp/iarl-redis-rootfs.XXXXXX)
CID=""
cleanup() {
    umount "$ROOTFS/proc" 2>/dev/null || true
    [ -z "$CID" ] || docker rm -f "$CID" >/dev/null 2>&1 || true
    rm -rf "$ROOTFS"
}
trap cleanup EXIT

CID=$(docker create "$BASE" true)
docker export "$CID" | tar -x -C "$ROOTFS"
docker rm "$CID" >/dev/null && CID=""

# What apt and the maintainer scripts need in a chroot: name resolution, /dev/null, /proc, and no daemon start.
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
[ -e "$ROOTFS/dev/null" ] || mknod -m 666 "$ROOTFS/dev/null" c 1 3
[ -e "$ROOTFS/dev/urandom" ] || mknod -m 666 "$ROOTFS/dev/urandom" c 1 9
mount -t proc proc "$ROOTFS/proc"
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d" && chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
LOG=$(mktemp)
chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive sh -ec '
    apt-get -o APT::Sandbox::User=root update -qq
    apt-get -o APT::Sandbox::User=root install -y -qq --no-install-recommends redis-server
    mkdir -p /data && chown redis:redis /data && chmod 0750 /data
' >"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; rm -f "$LOG"; exit 1; }
rm -f "$LOG"
umount "$ROOTFS/proc"
rm -f "$ROOTFS/usr/sbin/policy-rc.d" "$ROOTFS/etc/resolv.conf"
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/*
version=$(chroot "$ROOTFS" redis-server --version | sed -E 's/.* v=([^ ]+).*/\1/')

tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'USER redis' \
    --change 'WORKDIR /data' \
    --change 'VOLUME /data' \
    --change 'EXPOSE 6379' \
    --change 'CMD ["redis-server", "--protected-mode", "no", "--dir", "/data"]' \
    --message "$BASE + Debian redis-server $version" \
    - "$TAG" >/dev/null
echo "build_redis_image: built $TAG (redis $version) in $(( $(date +%s) - start )) s"
