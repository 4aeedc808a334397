#!/usr/bin/env bash
# Runs scripts/chart-render (a stand-in for `helm template` / `helm lint`; no `helm` binary is
# reachable here), building it first when its source is newer than the binary.
#
#   scripts/chart-render.sh template causeway charts/causeway -n causeway-system
#   scripts/chart-render.sh lint charts/causeway
#
# Built offline in GOPATH mode from Debian's Go packages (scripts/test.sh installs them):
#   apt-get install golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev \
#     golang-github-xeipuuv-gojsonschema-dev
# The binary goes to ${CARGO_TARGET_DIR:-target}/chart-render/ (CHART_RENDER_BIN overrides).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/scripts/chart-render/main.go"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="${CHART_RENDER_BIN:-$target/chart-render/chart-render}"

if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "chart-render: 'go' not found; install: apt-get install golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev golang-github-xeipuuv-gojsonschema-dev" >&2
    exit 127
  fi
  mkdir -p "$(dirname "$bin")"
  tmp="$bin.tmp.$$"
  # GOPATH mode against Debian's /usr/share/gocode: no network, no module download.
  # Debian installs sprig v3 and semver v3 without the /v3 suffix (its packages import them so).
  if ! (cd "$root/scripts/chart-render" &&
        GO111MODULE=off GOPATH="${CHART_RENDER_GOPATH:-/usr/share/gocode}" GOPROXY=off GOFLAGS= \
        GOCACHE="${GOCACHE:-$target/chart-render/gocache}" CGO_ENABLED=0 \
        go build -o "$tmp" .); then
    rm -f "$tmp"
    echo "chart-render: build failed; the Debian packages: apt-get install golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev golang-github-xeipuuv-gojsonschema-dev" >&2
    exit 1
  fi
  mv -f "$tmp" "$bin"   # atomic: concurrent callers never run a half-written binary
fi
exec "$bin" "$@"
