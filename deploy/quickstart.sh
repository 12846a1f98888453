#!/usr/bin/env bash
# README's first command. On a fresh Debian machine (as root): installs and starts what is
# missing (deploy/setup.sh), builds OSBS, (re)starts the dispatcher, a worker and the
# koji-bridge on loopback, pushes a commit of the example repository (deploy/example/hello)
# to a local dist-git whose hook announces it, follows the build, and prints the pullspec of
# the image and where its log is. Idempotent: each run restarts the services and builds a
# new commit (the next release).
#
# OSBS_QUICKSTART_PROFILE=dev builds and runs the debug binaries (`cargo test` builds them
# too) instead of the release ones.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=/var/lib/osbs
config=$state/osbs.toml
profile=${OSBS_QUICKSTART_PROFILE:-release}
case "$profile" in
  release) bin=$root/target/release ;;
  dev) bin=$root/target/debug ;;
  *) printf 'quickstart: OSBS_QUICKSTART_PROFILE is release or dev, not %s\n' "$profile" >&2; exit 2 ;;
esac
log() { printf 'quickstart: %s\n' "$*" >&2; }

"$root/deploy/setup.sh"
# rustup's toolchain, when setup.sh just installed it.
export PATH="$HOME/.cargo/bin:$PATH"

command -v cargo >/dev/null || { log "cargo is missing: install a Rust toolchain (rustup, Rust >= 1.90)"; exit 1; }
log "building OSBS ($profile)"
(cd "$root" && cargo build --profile "$profile" --locked --bins -q \
  -p osbs-dispatcher -p osbs-worker -p osbs-koji-bridge -p osbs-cli)

mkdir -p "$state"/{run,artifacts,work,koji-bundles,dist-git/container,checkouts} /var/log/osbs
install -m 0644 "$root/deploy/osbs.toml" "$config"

# The example's base image, as deploy/base-image.sh makes it: (re)made and pushed to the local
# registry whenever the engine or the registry lacks it or holds another image under its name.
"$root/deploy/base-image.sh" ensure 127.0.0.1:5000/osbs/busybox:latest >/dev/null

# (Re)start the services with this build of OSBS.
for service in osbs-dispatcher osbs-worker osbs-koji-bridge; do
  pidfile=$state/run/$service.pid
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "stopping the previous $service"
    kill -TERM "$(cat "$pidfile")"
    for _ in $(seq 1 100); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
  fi
done
for service in osbs-dispatcher osbs-worker osbs-koji-bridge; do
  nohup "$bin/$service" --config "$config" >>"/var/log/osbs/$service.log" 2>&1 &
  echo $! >"$state/run/$service.pid"
done
for port in 9101 9102 9103; do
  for _ in $(seq 1 150); do curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.2; done
  curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" \
    || { log "a service is not healthy on :$port; see /var/log/osbs/osbs-*.log"; exit 1; }
done
log "dispatcher :9101, worker :9102, koji-bridge :9103 are up (logs in /var/log/osbs/)"

# dist-git: a bare repository whose post-receive hook publishes git.receive, like Fedora's.
bare=$state/dist-git/container/hello.git
if [ ! -d "$bare" ]; then
  git init -q --bare --initial-branch=main "$bare"
fi
cat >"$bare/hooks/post-receive" <<HOOK
#!/bin/sh
exec env OSBS_CONFIG=$config $bin/osbs git-hook
HOOK
chmod +x "$bare/hooks/post-receive"
checkout=$state/checkouts/hello
[ -d "$checkout/.git" ] || git clone -q "$bare" "$checkout"
cp "$root"/deploy/example/hello/* "$checkout/"
cd "$checkout"
git checkout -q -B main
git add -A
git -c user.name="OSBS quickstart" -c user.email=quickstart@localhost \
  commit -q --allow-empty -m "quickstart build $(date -u +%Y-%m-%dT%H:%M:%SZ)"
rev=$(git rev-parse HEAD)
log "pushing $rev to dist-git container/hello (branch main)"
git push -q origin main

export OSBS_CONFIG=$config
id=""
for _ in $(seq 1 100); do
  id=$("$bin/osbs" list --repo hello --json | python3 -c '
import json, sys
rev = sys.argv[1]
for build in json.load(sys.stdin):
    if build.get("commit") == rev:
        print(build["id"]); break
' "$rev") && [ -n "$id" ] && break
  sleep 0.2
done
[ -n "$id" ] || { log "the dispatcher recorded no build for $rev; see /var/log/osbs/osbs-dispatcher.log"; exit 1; }
log "build $id: following its log"
"$bin/osbs" watch-logs "$id" || true
# After `complete` the koji-bridge imports the build (here: writes its import bundle).
for _ in $(seq 1 300); do
  "$bin/osbs" status "$id" --json >"$state/last-build.json"
  grep -Eq '"state": *"(imported|import_failed|failed|canceled|superseded)"' "$state/last-build.json" && break
  sleep 0.2
done
python3 - "$state/last-build.json" <<'PY'
import json, sys
build = json.load(open(sys.argv[1]))
state = build["state"]
if state != "imported":
    print(f"quickstart: build {build['id']} ended {state}: {build.get('error')}", file=sys.stderr)
    sys.exit(1)
by_digest = [p for p in build["pullspecs"] if "@sha256:" in p]
print("build:    ", build["id"], build.get("nvr", ""), state)
print("pullspec: ", (by_digest or build["pullspecs"])[0])
print("log:      ", build.get("log_path") or "(see osbs watch-logs %s)" % build["id"])
nvr = build.get("nvr", "").replace("/", "-")
print("koji:      import bundle in /var/lib/osbs/koji-bundles/%s" % nvr)
PY
