#!/usr/bin/env bash
# Writes deploy/causeway.yaml: the plain manifests rendered from charts/causeway with its
# default values (release "causeway", namespace "causeway-system", `helm template` without the
# `helm test` Pod), after a Namespace object. `--check` renders to a temporary file and fails
# with a diff when deploy/causeway.yaml is stale (tests/tests/chart.rs runs that).
#
# The renderer is scripts/chart-render.sh, a stand-in for `helm template` (no helm here);
# with helm installed the equivalent is:
#   helm template causeway charts/causeway -n causeway-system --skip-tests
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/deploy/causeway.yaml"
ns=causeway-system

render() {
  cat <<HEADER
# Causeway: CRDs, controller and proxies in the namespace $ns, with the chart's default values.
# Generated from charts/causeway by scripts/render-deploy.sh; do not edit by hand.
# Install: kubectl apply -f deploy/causeway.yaml
---
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
  labels:
    app.kubernetes.io/name: causeway
    pod-security.kubernetes.io/enforce: restricted
HEADER
  "$root/scripts/chart-render.sh" template causeway "$root/charts/causeway" \
    --namespace "$ns" --skip-tests
}

if [ "${1:-}" = "--check" ]; then
  tmp="$(mktemp)"
  trap 'rm -f "$tmp"' EXIT
  render >"$tmp"
  if ! diff -u "$out" "$tmp" >&2; then
    echo "deploy/causeway.yaml is stale (the diff above: - committed, + rendered now); regenerate: scripts/render-deploy.sh" >&2
    exit 1
  fi
  echo "deploy/causeway.yaml is current"
else
  tmp="$out.tmp.$$"
  render >"$tmp"
  mv -f "$tmp" "$out"
  echo "wrote ${out#"$root"/}"
fi
