#!/usr/bin/env bash
# README's second command: brings up the real services (deploy/setup.sh), runs every test of
# the workspace against them — unit, integration and end-to-end — then README's first command
# as on a fresh machine (deploy/fresh-machine.sh: no Docker image, no registry data, no
# broker, Redis or OSBS state; the base image made from scratch and the example built through
# it), beside this machine's services, which it neither sees nor changes. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./deploy/setup.sh
# rustup's toolchain, when setup.sh just installed it.
export PATH="$HOME/.cargo/bin:$PATH"
status=0
cargo test --workspace --all-targets --locked --no-fail-fast -- --test-threads="${OSBS_TEST_THREADS:-4}" \
  || status=$?
# The debug binaries the tests built: the quickstart's own release build is not what is
# checked here.
OSBS_QUICKSTART_PROFILE=dev ./deploy/fresh-machine.sh || status=$?
exit "$status"
