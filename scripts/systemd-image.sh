#!/usr/bin/env bash
# Builds the image the systemd install test boots: a Debian 12 rootfs made with debootstrap,
# imported with `docker import` as slipway-test/systemd:bookworm. Reused when it exists.
set -euo pipefail
image=slipway-test/systemd:bookworm
docker=${DOCKER:-/usr/bin/docker}
if $docker image inspect "$image" >/dev/null 2>&1; then exit 0; fi
command -v debootstrap >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq debootstrap >/dev/null; }
rootfs=/var/lib/slipway-test-rootfs/bookworm
if [ ! -x "$rootfs/lib/systemd/systemd" ]; then
  rm -rf "$rootfs"
  mkdir -p "$(dirname "$rootfs")"
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,libsqlite3-0,libssl3,git,ca-certificates,procps,curl,openssl,passwd,adduser \
    bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" > /tmp/slipway-debootstrap.log 2>&1 \
    || { tail -20 /tmp/slipway-debootstrap.log >&2; exit 1; }
fi
# No getty or udev noise in a container; journald keeps everything.
tar -C "$rootfs" -c . | $docker import -c 'ENV container=docker' -c 'CMD ["/sbin/init"]' - "$image" >/dev/null
echo "built $image" >&2
