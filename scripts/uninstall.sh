#!/usr/bin/env bash
# Removes the slipway service and binary. Keeps /etc/slipway and /var/lib/slipway (config, secrets,
# event log, run logs) unless --purge, which also removes them and the slipway user and group.
set -euo pipefail
purge=false
[ "${1:-}" = "--purge" ] && purge=true
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
if [ -d /run/systemd/system ]; then systemctl disable --now slipway 2>/dev/null || true; fi
rm -f /etc/systemd/system/slipway.service /usr/local/bin/slipway
rm -rf /usr/local/share/doc/slipway
if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
if $purge; then
  rm -rf /etc/slipway /var/lib/slipway /run/slipway
  getent passwd slipway >/dev/null && userdel slipway
  getent group slipway >/dev/null && groupdel slipway 2>/dev/null || true
  echo "slipway removed, with its config and data"
else
  echo "slipway removed; config kept in /etc/slipway, data in /var/lib/slipway (use --purge to remove them)"
fi
