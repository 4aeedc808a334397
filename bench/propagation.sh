#!/usr/bin/env bash
# Propagation benchmark: time from a resource change to every proxy serving it, with the
# controller in file mode (`causeway controller --from-dir`, 50 ms polling) and two proxies on
# 127.0.0.1, at several route counts. Also prints compile time and snapshot size per size.
#
#   bench/propagation.sh [--sizes "10 1000 10000"] [--changes 20] [--debug]
#
# The measured time includes the file poll (up to 50 ms), compile, the push over HTTP/2 + mTLS,
# the proxies' apply and one curl round trip per 10 ms poll. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES="10 1000 10000"; CHANGES=20; PROFILE=release
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES=$2; shift 2;;
    --changes) CHANGES=$2; shift 2;;
    --debug) PROFILE=debug; shift;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
if [ -z "${CAUSEWAY_BIN:-}" ]; then
  if [ "$PROFILE" = release ]; then cargo build --release --quiet -p causeway; else cargo build --quiet -p causeway; fi
  CAUSEWAY_BIN="${CARGO_TARGET_DIR:-target}/$PROFILE/causeway"
fi
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
HOST=bench.default.localhost
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

write_config() { # routes body
  local n=$1 body=$2 dir=$work/config
  mkdir -p "$dir"
  cat > "$dir/api.yaml" <<YAML
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: bench, namespace: default}
spec: {}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: bench-prod, namespace: default}
spec: {apiRef: {name: bench}, stageName: prod, autoDeploy: true}
YAML
  # At most 1,000 documents per file (the YAML reader's per-file budget is 1,024).
  for i in $(seq 1 $((n - 1))); do
    printf -- '---\napiVersion: causeway.dev/v1alpha1\nkind: Route\nmetadata: {name: r%d, namespace: default}\nspec:\n  apiRef: {name: bench}\n  routeKey: GET /r/%d\n  integration: {type: MOCK, mock: {statusCode: 200, body: "r%d"}}\n' "$i" "$i" "$i" >> "$dir/routes-$((i / 1000)).yaml"
  done
  write_probe "$body"
}
write_probe() { # the route that changes
  printf -- 'apiVersion: causeway.dev/v1alpha1\nkind: Route\nmetadata: {name: probe, namespace: default}\nspec:\n  apiRef: {name: bench}\n  routeKey: GET /probe\n  integration: {type: MOCK, mock: {statusCode: 200, body: "%s"}}\n' "$1" > "$work/config/probe.tmp"
  mv "$work/config/probe.tmp" "$work/config/probe.yaml"
}
wait_body() { # port body timeout_s
  local deadline=$(( $(now_ms) + $3 * 1000 ))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    [ "$(curl -s -H "host: $HOST" "http://127.0.0.1:$1/prod/probe" 2>/dev/null)" = "$2" ] && return 0
    sleep 0.01
  done
  return 1
}
percentile() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((NR*p+99)/100); if (i<1) i=1; print a[i]}'; }

printf '%-8s %12s %14s %10s %10s %10s\n' routes compile_ms snapshot_bytes p50_ms p99_ms max_ms
for n in $SIZES; do
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=()
  rm -rf "$work/config" "$work/tls" "$work"/*.json "$work"/*.log
  write_config "$n" v0
  "$CAUSEWAY_BIN" --log-format json controller --from-dir "$work/config" --tls-dir "$work/tls" \
    --push-listen 127.0.0.1:19800 --admin-listen 127.0.0.1:19802 --debounce-millis 50 2> "$work/controller.log" & pids+=($!)
  for i in 1 2; do
    until [ -f "$work/tls/proxy/tls.key" ]; do sleep 0.05; done
    "$CAUSEWAY_BIN" proxy --controller https://127.0.0.1:19800 --tls-dir "$work/tls/proxy" --state-file "$work/p$i.json" \
      --listen 127.0.0.1:1981$i --admin-listen 127.0.0.1:1991$i --proxy-id "p$i" --access-log off 2> "$work/p$i.log" & pids+=($!)
  done
  wait_body 19811 v0 120 && wait_body 19812 v0 120 || { echo "proxies never served $n routes" >&2; tail "$work"/*.log >&2; exit 1; }
  times=()
  for k in $(seq 1 "$CHANGES"); do
    t0=$(now_ms); write_probe "v$k"
    wait_body 19811 "v$k" 60 && wait_body 19812 "v$k" 60 || { echo "change $k never arrived" >&2; exit 1; }
    times+=($(( $(now_ms) - t0 )))
  done
  compile_ms=$(grep '"compiled"' "$work/controller.log" | tail -1 | sed 's/.*"compile_ms":"\([0-9.]*\)".*/\1/')
  bytes=$(grep '"compiled"' "$work/controller.log" | tail -1 | sed 's/.*"snapshot_bytes":\([0-9]*\).*/\1/')
  p50=$(printf '%s\n' "${times[@]}" | percentile 50)
  p99=$(printf '%s\n' "${times[@]}" | percentile 99)
  max=$(printf '%s\n' "${times[@]}" | sort -n | tail -1)
  printf '%-8s %12s %14s %10s %10s %10s\n' "$n" "$compile_ms" "$bytes" "$p50" "$p99" "$max"
done
