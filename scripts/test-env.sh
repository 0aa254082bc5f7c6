#!/usr/bin/env bash
# Starts the real parts Slipway's system tests drive, and writes their addresses to .test-env/env:
#   dockerd (vfs, no iptables, no bridge) on its own socket,
#   Debian's docker-registry on 127.0.0.1 with htpasswd (bcrypt) auth,
#   a git smart-HTTP server (git http-backend) that requires basic auth under /private/,
#   a busybox base image made with `docker import` from busybox-static,
#   a Debian 12 image with systemd (debootstrap) for the install test.
# Idempotent: parts already running are reused. `scripts/test-env.sh stop` stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/.test-env"
run="$root/run"                  # pid files: per checkout
sock=/run/slipway-test/docker.sock  # short path: unix socket paths are limited to 108 bytes
registry_port=5077
git_port=5078

stop() {
  for name in git registry dockerd dockerd-tls sshd; do
    if [ -f "$run/$name.pid" ]; then kill "$(cat "$run/$name.pid")" 2>/dev/null || true; rm -f "$run/$name.pid"; fi
  done
}
[ "${1:-start}" = stop ] && { stop; exit 0; }

scripts/install-deps.sh system
mkdir -p "$root" "$run" /run/slipway-test
export DOCKER_HOST="unix://$sock"
docker=/usr/bin/docker   # Debian's 20.10 CLI: it has BuildKit without buildx

alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }
wait_for() { for _ in $(seq 150); do eval "$2" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "$1 did not start; see $root/$1.log" >&2; tail -20 "$root/$1.log" >&2; exit 1; }
# A service that answers but is not ours (another checkout's, with other credentials) makes every test fail oddly.
ours() { sleep 0.3; alive "$1" || { echo "$1: port taken by a process that is not this checkout's (another checkout's test environment? run 'make test-env-stop' there); see $root/$1.log" >&2; exit 1; }; }

if ! alive dockerd || ! $docker info >/dev/null 2>&1; then
  stop
  dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --data-root /var/lib/slipway-test-docker --exec-root /run/slipway-test/exec \
    --host "unix://$sock" --pidfile /run/slipway-test/docker.pid > "$root/dockerd.log" 2>&1 &
  echo $! > "$run/dockerd.pid"
  wait_for dockerd "$docker info"
fi

# Registry credentials and git token: generated once per machine, files only.
[ -s "$root/registry-password" ] || (umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$root/registry-password")
[ -s "$root/git-token" ] || (umask 077; echo "ghp_$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" > "$root/git-token")
htpasswd -Bbc "$root/htpasswd" slipway-ci "$(cat "$root/registry-password")" 2>/dev/null
cat > "$root/registry.yml" <<YAML
version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: $root/registry-data }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$registry_port, secret: slipway-test }
auth: { htpasswd: { realm: slipway-test, path: $root/htpasswd } }
YAML
if ! alive registry; then
  docker-registry serve "$root/registry.yml" > "$root/registry.log" 2>&1 &
  echo $! > "$run/registry.pid"
  wait_for registry "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$registry_port/v2/ | grep -q 401"
  ours registry
fi

mkdir -p "$root/git/public" "$root/git/private"
if ! alive git; then
  python3 scripts/git-http-server.py --root "$root/git" --port "$git_port" --token-file "$root/git-token" > "$root/git.log" 2>&1 &
  echo $! > "$run/git.pid"
  wait_for git "curl -s -o /dev/null http://127.0.0.1:$git_port/public/"
  ours git
fi

if ! $docker image inspect slipway-test/busybox:latest >/dev/null 2>&1; then
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs/bin" "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in sh echo cat ls sleep true false env test grep wc mkdir rm cp; do ln -s busybox "$rootfs/bin/$applet"; done
  tar -C "$rootfs" -c . | $docker import - slipway-test/busybox:latest >/dev/null
  rm -rf "$rootfs"
fi

# The Debian 12 image with systemd that the install test boots (debootstrap + docker import).
DOCKER=$docker scripts/systemd-image.sh

# A second engine: dockerd on 127.0.0.1 over TCP with TLS (--tlsverify), certificates made here by
# openssl (a CA, a server certificate for 127.0.0.1, a client certificate), its own data and exec root.
tls="$root/tls"
tls_port=5080
if [ ! -s "$tls/client-key.pem" ]; then
  mkdir -p "$tls" && chmod 700 "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=slipway-test-ca" -keyout "$tls/ca-key.pem" -out "$tls/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$tls/server-key.pem" -out "$tls/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$tls/server.ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" -CAcreateserial -days 30 -extfile "$tls/server.ext" -out "$tls/server.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=slipway" -keyout "$tls/client-key.pem" -out "$tls/client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$tls/client.ext"
  openssl x509 -req -in "$tls/client.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" -CAcreateserial -days 30 -extfile "$tls/client.ext" -out "$tls/client.pem" 2>/dev/null
  chmod 600 "$tls"/*-key.pem
fi
tls_env() { DOCKER_HOST="tcp://127.0.0.1:$tls_port" DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$tls/client-dir" "$@"; }
mkdir -p "$tls/client-dir"
ln -sf "$tls/ca.pem" "$tls/client-dir/ca.pem"; ln -sf "$tls/client.pem" "$tls/client-dir/cert.pem"; ln -sf "$tls/client-key.pem" "$tls/client-dir/key.pem"
if ! alive dockerd-tls || ! tls_env $docker info >/dev/null 2>&1; then
  [ -f "$run/dockerd-tls.pid" ] && { kill "$(cat "$run/dockerd-tls.pid")" 2>/dev/null || true; sleep 1; }
  dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --data-root /var/lib/slipway-test-docker-tls --exec-root /run/slipway-test/exec-tls \
    --host "tcp://127.0.0.1:$tls_port" --tlsverify --tlscacert "$tls/ca.pem" --tlscert "$tls/server.pem" --tlskey "$tls/server-key.pem" \
    --pidfile /run/slipway-test/docker-tls.pid > "$root/dockerd-tls.log" 2>&1 &
  echo $! > "$run/dockerd-tls.pid"
  wait_for dockerd-tls "tls_env $docker info"
fi
if ! tls_env $docker image inspect slipway-test/busybox:latest >/dev/null 2>&1; then
  $docker save slipway-test/busybox:latest | tls_env $docker load -q >/dev/null
fi

# An engine over ssh: a loopback sshd (key-only, root) whose sessions see the test dockerd, for
# the docker CLI's ssh transport (ssh://root@127.0.0.1:$ssh_port → `docker system dial-stdio`).
ssh_dir="$root/ssh"
ssh_port=5081
if [ ! -s "$ssh_dir/client-key" ]; then
  mkdir -p "$ssh_dir" && chmod 700 "$ssh_dir"
  ssh-keygen -q -t ed25519 -N "" -f "$ssh_dir/host-key"
  ssh-keygen -q -t ed25519 -N "" -f "$ssh_dir/client-key"
fi
cp "$ssh_dir/client-key.pub" "$ssh_dir/authorized_keys"; chmod 600 "$ssh_dir/authorized_keys"
printf '[127.0.0.1]:%s %s\n' "$ssh_port" "$(cut -d' ' -f1,2 "$ssh_dir/host-key.pub")" > "$ssh_dir/known_hosts"
cat > "$ssh_dir/sshd_config" <<SSHD
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $ssh_dir/host-key
PidFile $run/sshd.pid
AuthorizedKeysFile $ssh_dir/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
SetEnv DOCKER_HOST=unix://$sock
SSHD
mkdir -p /run/sshd
if ! alive sshd; then
  /usr/sbin/sshd -f "$ssh_dir/sshd_config" -E "$root/sshd.log"
  wait_for sshd "[ -s $run/sshd.pid ]"
fi

cat > "$root/env" <<ENV
SLIPWAY_TEST_DOCKER_HOST=unix://$sock
SLIPWAY_TEST_DOCKER=$docker
SLIPWAY_TEST_REGISTRY=127.0.0.1:$registry_port
SLIPWAY_TEST_REGISTRY_USER=slipway-ci
SLIPWAY_TEST_REGISTRY_PASSWORD_FILE=$root/registry-password
SLIPWAY_TEST_REGISTRY_CONFIG=$root/registry.yml
SLIPWAY_TEST_GIT_URL=http://127.0.0.1:$git_port
SLIPWAY_TEST_GIT_ROOT=$root/git
SLIPWAY_TEST_GIT_TOKEN_FILE=$root/git-token
SLIPWAY_TEST_BASE_IMAGE=slipway-test/busybox:latest
SLIPWAY_TEST_SYSTEMD_IMAGE=slipway-test/systemd:bookworm
SLIPWAY_TEST_TLS_DOCKER_HOST=tcp://127.0.0.1:$tls_port
SLIPWAY_TEST_TLS_DIR=$tls
SLIPWAY_TEST_SSH_DOCKER_HOST=ssh://root@127.0.0.1:$ssh_port
SLIPWAY_TEST_SSH_DIR=$ssh_dir
ENV
echo "test environment ready: $root/env" >&2
