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
# on free 127.0.0.1 ports, each stopped when its test ends); Go with sprig, ghodss/yaml and
# gojsonschema for scripts/chart-render, the stand-in for `helm template`/`helm lint` that the
# chart tests use (no helm binary is reachable; its packages are built offline, GOPATH mode).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# lua5.4 runs the Argo CD health check (deploy/gitops/argocd-health.lua) on real statuses in
# tests/tests/cluster.rs.
command -v lua5.4 >/dev/null 2>&1 || missing+=(lua5.4)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
gocode=/usr/share/gocode/src/github.com
[ -d "$gocode/Masterminds/sprig" ] || missing+=(golang-github-masterminds-sprig-dev)
[ -d "$gocode/ghodss/yaml" ] || missing+=(golang-github-ghodss-yaml-dev)
[ -d "$gocode/xeipuuv/gojsonschema" ] || missing+=(golang-github-xeipuuv-gojsonschema-dev)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian starts a system redis on 6379; the tests need none, so leave the machine as found.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop redis-server 2>/dev/null || true; fi
fi

# Python packages the tests use, pinned (tests/requirements.txt): botocore, the real SigV4
# signer, Powertools for AWS Lambda (the Lambda example's handler and authorizer, and the calc
# function, run end to end by tests/tests/lambda.rs and sdk.rs), openapi-spec-validator and
# openapi-python-client (the exports are validated, and an SDK generated from one calls the
# gateway). A no-op once installed.
step "pip install -r tests/requirements.txt"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r tests/requirements.txt

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

# Builds scripts/chart-render once (cached under target/chart-render/) for the chart tests.
step "helm lint (scripts/chart-render.sh, a stand-in for helm)"
scripts/chart-render.sh lint charts/causeway --strict

step "the proxy has no Kubernetes client in its dependency tree"
if cargo tree -p causeway-proxy -e normal --prefix none | grep -E '^kube(-client|-core|-runtime)? ' ; then
  echo "error: causeway-proxy depends on kube" >&2
  exit 1
fi

# The cluster test needs a real kube-apiserver: kube-local, next to the repository. ensure.sh
# builds it once per machine (about 8 minutes) and returns at once afterwards.
KUBE_LOCAL_TOOLS="${KUBE_LOCAL_TOOLS:-$(cd .. && pwd)/shared/tools/kube-local}"
if [ -x "$KUBE_LOCAL_TOOLS/ensure.sh" ] || [ -f "$KUBE_LOCAL_TOOLS/ensure.sh" ]; then
  step "kube-local (a real kube-apiserver for the cluster test)"
  bash "$KUBE_LOCAL_TOOLS/ensure.sh" >/dev/null
  export KUBE_LOCAL_TOOLS CAUSEWAY_KUBE_E2E=1
else
  echo "note: $KUBE_LOCAL_TOOLS not found; the cluster test will be skipped" >&2
fi

# The end-to-end tests run the real binaries (`causeway`, `petstore-backend`); nextest builds
# only test targets, so build the binaries first (else each test would start its own build).
step "cargo build --workspace --bins"
cargo build --workspace --bins --quiet

step "cargo nextest run --workspace"
cargo nextest run --workspace --no-fail-fast "$@"
