#!/usr/bin/env bash
# Installs an already-built slipway as a systemd service.
#   scripts/install.sh [--binary PATH]     (default .build/release/slipway; `make install` builds it)
# Creates the slipway system user and group (in group docker when it exists), installs the binary,
# the unit, a config that is never overwritten, and a webhook secret (0600) when none exists.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=.build/release/slipway
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }
[ -x "$binary" ] || { echo "no executable at $binary: build it first (make install does)" >&2; exit 1; }

getent group slipway >/dev/null || groupadd --system slipway
getent passwd slipway >/dev/null || useradd --system --gid slipway --home-dir /var/lib/slipway --no-create-home --shell /usr/sbin/nologin slipway
if getent group docker >/dev/null; then usermod -aG docker slipway; else echo "note: no 'docker' group yet; after installing docker run: usermod -aG docker slipway" >&2; fi

install -m 0755 "$binary" /usr/local/bin/slipway
install -m 0644 systemd/slipway.service /etc/systemd/system/slipway.service
install -d -m 0755 /usr/local/share/doc/slipway
install -m 0644 README.md /usr/local/share/doc/slipway/README.md
install -d -m 0750 -o root -g slipway /etc/slipway /etc/slipway/tasks.d
install -d -m 0750 -o slipway -g slipway /etc/slipway/secrets
if [ ! -e /etc/slipway/slipway.yaml ]; then
  install -m 0640 -o root -g slipway config/slipway.yaml /etc/slipway/slipway.yaml
  echo "installed /etc/slipway/slipway.yaml"
else
  echo "kept the existing /etc/slipway/slipway.yaml"
fi
if [ ! -s /etc/slipway/secrets/webhook ]; then
  # Written to a root-only temporary file, then installed: `install` replaces whatever is at the
  # destination instead of writing through it, so a planted symlink is never followed.
  secret_tmp=$(umask 077; mktemp)
  (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$secret_tmp")
  install -m 0600 -o slipway -g slipway "$secret_tmp" /etc/slipway/secrets/webhook
  rm -f "$secret_tmp"
  chown -h slipway:slipway /etc/slipway/secrets/webhook
  echo "generated the webhook secret /etc/slipway/secrets/webhook (0600)"
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

cat <<NEXT

Slipway is installed. Next:
  1. Add tasks and registries to /etc/slipway/slipway.yaml (or: slipway task create ...),
     then check it:            slipway config check
  2. Start it:                 systemctl enable --now slipway
  3. Point GitHub at it:       https://<your host>/webhooks/github, content type application/json,
     secret:                   the contents of /etc/slipway/secrets/webhook
  4. Watch it:                 journalctl -u slipway -f     (one run: journalctl -u slipway RUN_ID=sw1)
  Operators who use the CLI join the slipway group: usermod -aG slipway <user>
NEXT
