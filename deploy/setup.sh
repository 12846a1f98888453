#!/usr/bin/env bash
# Installs and starts, on loopback, whatever this Debian machine lacks for OSBS: RabbitMQ,
# Redis, the Docker Engine, a registry on 127.0.0.1:5000, the tools the tests use, and the
# Rust toolchain (rustup's stable, into ~/.cargo: Debian's rustc is older than the workspace's
# rust-version).
# Also what the multi-arch builds need on an x86_64 host: qemu-user-static registered in
# binfmt_misc for aarch64 with the F (fix-binary) flag, so that arm64 containers run under
# emulation inside the engine's namespaces, and Debian's arm64 busybox-static unpacked into
# /var/cache/osbs/arm64 (outside the state directories fresh-machine.sh empties: a fresh
# machine's namespace has no network) for deploy/base-image.sh's aarch64 base.
# Idempotent: what is installed is not reinstalled, what runs is not restarted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=/var/lib/osbs
mkdir -p "$state" /var/log/osbs

log() { printf 'setup: %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port name seconds
  for _ in $(seq 1 $(( $3 * 5 ))); do port_open "$1" && return 0; sleep 0.2; done
  log "$2 did not come up on 127.0.0.1:$1; see /var/log/osbs/$2.log"; return 1
}

[ "$(id -u)" -eq 0 ] || { log "run me as root (I install Debian packages and start daemons)"; exit 1; }

packages=()
need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || packages+=("$1"); }
command -v rabbitmq-server >/dev/null || need rabbitmq-server
command -v redis-server >/dev/null || need redis-server
need docker.io
need docker-registry
need busybox-static
need rpm
need gnupg
need git
need curl
need python3-venv
need build-essential   # the C compiler and linker that Rust builds need
need ca-certificates
need chromium          # the web view's browser test (issue 14)
need chromium-driver
need qemu-user-static  # arm64 builds under emulation (issue 12)
need binfmt-support
if [ ${#packages[@]} -gt 0 ]; then
  log "installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || log "apt-get update failed; trying with the current package lists"
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# binfmt_misc: mounted where it is not (no systemd here to do it), and qemu-aarch64
# registered from the package's binfmt.d line, whose flags (OPF) include F: the kernel opens
# the interpreter at registration, so it runs in a container that does not have it.
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
  log "mounting binfmt_misc on $binfmt"
  mount -t binfmt_misc binfmt_misc "$binfmt"
fi
if [ -e "$binfmt/qemu-aarch64" ] && ! grep -q '^flags:.*F' "$binfmt/qemu-aarch64"; then
  log "qemu-aarch64 is registered without the F flag; registering it again with it"
  echo -1 >"$binfmt/qemu-aarch64"
fi
if [ ! -e "$binfmt/qemu-aarch64" ]; then
  log "registering qemu-aarch64 in binfmt_misc"
  if [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
    cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$binfmt/register"
  else
    update-binfmts --enable qemu-aarch64
  fi
fi
grep -q '^enabled' "$binfmt/qemu-aarch64" || { log "qemu-aarch64 is not enabled in $binfmt"; exit 1; }

# Debian's arm64 busybox-static, unpacked (not installed) for the aarch64 base image.
arm64_busybox=/var/cache/osbs/arm64/bin/busybox
if [ ! -x "$arm64_busybox" ]; then
  log "fetching busybox-static:arm64 into /var/cache/osbs/arm64"
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt-get update -qq || log "apt-get update failed; trying with the current package lists"
  download=$(mktemp -d)
  chmod 0755 "$download" # apt-get download fetches as _apt
  (cd "$download" && apt-get download -qq busybox-static:arm64)
  mkdir -p /var/cache/osbs/arm64
  dpkg-deb -x "$download"/busybox-static_*_arm64.deb /var/cache/osbs/arm64
  rm -rf "$download"
fi
[ "$("$arm64_busybox" uname -m)" = aarch64 ] \
  || { log "$arm64_busybox does not run as aarch64: is qemu-aarch64 registered in $binfmt?"; exit 1; }

if ! command -v cargo >/dev/null && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  log "installing the Rust toolchain (rustup: stable, minimal profile, rustfmt and clippy)"
  curl -fsSL --proto '=https' --tlsv1.2 https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --component rustfmt,clippy >/dev/null
fi

if ! port_open 5672; then
  log "starting RabbitMQ"
  rabbitmq-server -detached >/var/log/osbs/rabbitmq.log 2>&1 || true
  wait_port 5672 rabbitmq 60
fi

if ! port_open 6379; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  # An append-only file: records, live logs and locks survive a restart of Redis (the
  # services would rebuild lost records from their messages, but not the history of
  # finished builds).
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly yes \
    --dir /var/lib/redis --logfile /var/log/osbs/redis.log
  wait_port 6379 redis 15
fi

if ! docker version >/dev/null 2>&1; then
  log "starting dockerd"
  nohup dockerd >/var/log/osbs/dockerd.log 2>&1 &
  for _ in $(seq 1 150); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
  docker version >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/osbs/dockerd.log"; exit 1; }
fi

if ! port_open 5000; then
  log "starting the registry on 127.0.0.1:5000"
  mkdir -p "$state/registry"
  nohup docker-registry serve "$here/registry.yml" >/var/log/osbs/registry.log 2>&1 &
  wait_port 5000 registry 15
fi

log "RabbitMQ :5672, Redis :6379, Docker $(docker version --format '{{.Server.Version}}'), registry :5000 are up"
