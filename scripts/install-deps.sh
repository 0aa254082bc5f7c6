#!/usr/bin/env bash
# Installs the Debian packages a Slipway target needs, only those missing.
#   scripts/install-deps.sh build   # compile: OpenSSL and SQLite headers
#   scripts/install-deps.sh test    # + what the tests drive (sqlite3 CLI)
#   scripts/install-deps.sh system  # the real parts system tests drive: dockerd, registry, git
#   scripts/install-deps.sh bench   # + the load generator and the peer daemon
set -euo pipefail

build=(libsqlite3-dev libssl-dev pkg-config)
test=("${build[@]}" sqlite3 curl)
system=(git docker.io docker-registry busybox-static apache2-utils python3 curl debootstrap util-linux openssl chromium openssh-server openssh-client)
bench=("${test[@]}" wrk webhook openssl procps bc python3)

case "${1:-build}" in
  build) wanted=("${build[@]}") ;;
  test) wanted=("${test[@]}") ;;
  system) wanted=("${system[@]}") ;;
  bench) wanted=("${bench[@]}") ;;
  *) echo "usage: $0 build|test|system|bench" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
