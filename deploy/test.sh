#!/usr/bin/env bash
# README's second command: brings up the real services (deploy/setup.sh), then runs every
# test of the workspace against them — unit, integration and end-to-end. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./deploy/setup.sh
# rustup's toolchain, when setup.sh just installed it.
export PATH="$HOME/.cargo/bin:$PATH"
cargo test --workspace --all-targets --locked --no-fail-fast -- --test-threads="${OSBS_TEST_THREADS:-4}"
