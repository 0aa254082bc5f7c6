#!/usr/bin/env bash
# Creates the development webhook secret (0600) used by config/slipway.dev.yaml, if missing.
set -euo pipefail
secret="${1:-.dev/secrets/webhook}"
if [ ! -s "$secret" ]; then
  mkdir -p "$(dirname "$secret")"
  (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$secret")
  echo "created webhook secret $secret" >&2
fi
