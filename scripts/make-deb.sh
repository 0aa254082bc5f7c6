#!/usr/bin/env bash
# Builds dist/slipway_<version>_amd64.deb from a release binary, with the layout of install.sh:
# /usr/local/bin/slipway, the unit, the config template, and a postinst that creates the user,
# the directories, the config (never overwriting) and the webhook secret.
#   scripts/make-deb.sh [--binary PATH] [--version V] [--output DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
binary=.build/release/slipway
version=0.1.0
output=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --output) output="$2"; shift 2 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
[ -x "$binary" ] || { echo "no executable at $binary: run make release first" >&2; exit 1; }
root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$binary" "$root/usr/local/bin/slipway"
install -D -m 0644 systemd/slipway.service "$root/lib/systemd/system/slipway.service"
install -D -m 0644 config/slipway.yaml "$root/usr/share/slipway/slipway.yaml"
install -D -m 0644 config/slipway.example.yaml "$root/usr/share/slipway/slipway.example.yaml"
install -D -m 0644 README.md "$root/usr/local/share/doc/slipway/README.md"
mkdir -p "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: slipway
Version: $version
Architecture: amd64
Maintainer: Slipway developers <slipway@localhost>
Depends: libsqlite3-0, libssl3, git, adduser
Recommends: docker.io
Section: devel
Priority: optional
Description: self-hosted container build service for GitHub push webhooks
 Receives signed GitHub push webhooks, records every delivery in an append-only
 SQLite log, builds the pushed commit with docker and pushes the images.
CONTROL
cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  getent group slipway >/dev/null || addgroup --system slipway
  getent passwd slipway >/dev/null || adduser --system --ingroup slipway --home /var/lib/slipway --no-create-home --shell /usr/sbin/nologin slipway
  if getent group docker >/dev/null; then adduser slipway docker >/dev/null; fi
  install -d -m 0750 -o root -g slipway /etc/slipway /etc/slipway/tasks.d
  install -d -m 0750 -o slipway -g slipway /etc/slipway/secrets
  [ -e /etc/slipway/slipway.yaml ] || install -m 0640 -o root -g slipway /usr/share/slipway/slipway.yaml /etc/slipway/slipway.yaml
  if [ ! -s /etc/slipway/secrets/webhook ]; then
    # Written to a root-only temporary file, then installed: `install` replaces whatever is at the
    # destination instead of writing through it, so a planted symlink is never followed.
    secret_tmp=$(umask 077; mktemp)
    (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$secret_tmp")
    install -m 0600 -o slipway -g slipway "$secret_tmp" /etc/slipway/secrets/webhook
    rm -f "$secret_tmp"
    chown -h slipway:slipway /etc/slipway/secrets/webhook
  fi
  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
  echo "slipway: edit /etc/slipway/slipway.yaml, then: systemctl enable --now slipway"
fi
POSTINST
cat > "$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then systemctl disable --now slipway || true; fi
PRERM
cat > "$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
  rm -rf /etc/slipway /var/lib/slipway
  getent passwd slipway >/dev/null && deluser --system slipway >/dev/null || true
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
POSTRM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
mkdir -p "$output"
dpkg-deb --root-owner-group --build "$root" "$output/slipway_${version}_amd64.deb" >/dev/null
echo "$output/slipway_${version}_amd64.deb"
