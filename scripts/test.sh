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

# Debian packages the tests use: redis-server (quota tests start their own throw-away servers
# on free 127.0.0.1 ports, each stopped when its test ends).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian starts a system redis on 6379; the tests need none, so leave the machine as found.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop redis-server 2>/dev/null || true; fi
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
