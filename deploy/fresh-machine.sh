#!/usr/bin/env bash
# Runs a command — by default README's first command, ./deploy/quickstart.sh — as on a fresh
# machine: no Docker image, no registry data, no broker or Redis state, no OSBS state. The
# command runs in new mount, network and PID namespaces where every such state directory is
# an empty tmpfs (owned as its package made it) and loopback is a loopback of its own, so
# deploy/setup.sh starts RabbitMQ, Redis, a Docker Engine and the registry from nothing on the
# usual ports — beside the machine's own, which neither see nor lose anything. When the
# command ends, every process it started ends with the PID namespace, and the tmpfs with the
# mount namespace. The Debian packages and the Rust toolchain are the machine's (a fresh
# machine gets them from deploy/setup.sh).
#
#   deploy/fresh-machine.sh [COMMAND ARGS...]
#
# OSBS_QUICKSTART_PROFILE=dev has the quickstart use the debug binaries `cargo test` built.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
log() { printf 'fresh-machine: %s\n' "$*" >&2; }

# What a fresh machine has empty: the state of every service the quickstart starts.
state_dirs=(
  /run
  /var/lib/docker
  /var/lib/osbs
  /var/log/osbs
  /var/lib/rabbitmq
  /var/log/rabbitmq
  /var/lib/redis
  /var/log/redis
)

if [ "${1:-}" != --inside ]; then
  [ "$(id -u)" -eq 0 ] || { log "run me as root (I make namespaces and mount tmpfs)"; exit 1; }
  command -v unshare >/dev/null || { log "unshare is missing: apt-get install -y util-linux"; exit 1; }
  exec unshare --mount --net --pid --fork --mount-proc --propagation private \
    "$root/deploy/fresh-machine.sh" --inside "$@"
fi
shift
[ $# -gt 0 ] || set -- "$root/deploy/quickstart.sh"

ip link set lo up
for dir in "${state_dirs[@]}"; do
  # The owner and mode the package gave the directory; root's 0755 where there is none yet.
  owner=$(stat -c %u:%g "$dir" 2>/dev/null || echo 0:0)
  mode=$(stat -c %a "$dir" 2>/dev/null || echo 755)
  mkdir -p "$dir"
  mount -t tmpfs -o "mode=$mode" tmpfs "$dir"
  chown "$owner" "$dir"
done
mkdir -p /run/lock

# Stops the engine before the namespace goes: its containers and mounts end cleanly.
stop_engine() {
  if [ -f /run/docker.pid ]; then
    kill -TERM "$(cat /run/docker.pid)" 2>/dev/null || true
    for _ in $(seq 1 100); do [ -f /run/docker.pid ] || break; sleep 0.1; done
  fi
}
trap stop_engine EXIT

log "running $* with empty ${state_dirs[*]}"
started=$(date +%s)
status=0
"$@" || status=$?
log "$1 ended with status $status after $(( $(date +%s) - started )) s"
exit "$status"
