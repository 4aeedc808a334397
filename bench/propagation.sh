#!/usr/bin/env bash
# Propagation benchmark: time from a resource change to every one of 3 proxies serving it, at
# several route counts, in two modes:
#
#   file: `causeway controller --from-dir` (50 ms polling) reads YAML files; a change is a file
#         rewritten. Measured from the rename of the file.
#   kube: a real kube-apiserver (../shared/tools/kube-local) with the CRDs; `causeway controller`
#         watches it; a change is a merge PATCH of the probe Route sent to the API server.
#         Measured from just before the PATCH: API server write, watch event, debounce,
#         compile, push, apply in each proxy, and the first request that sees the new body.
#
#   bench/propagation.sh [--modes "file kube"] [--sizes "1000 10000"] [--changes 30]
#                        [--debounce 50] [--load wrk|none] [--debug]
#
# Load: with --load wrk (the default), wrk (1 thread, 10 connections) drives requests at the
# first proxy for the whole measurement, so compile and push compete with traffic for the two
# cores. The changes are made and timed by bench/propagation-driver.py, one process per row: the
# PATCH goes over a kept-alive connection, and every proxy is asked over its own kept-alive
# connection, by its own thread, every 2 ms. (Until 2026-12-03 a curl per PATCH and a curl per poll, one proxy
# after the other, added a process start and a TLS handshake to each change and about 20 ms per
# proxy after the first to see each change; see propagation-2026-12-03T11-03Z.md.) Results
# (p50/p99/max per size and mode) go to bench/results/propagation-<UTC timestamp>.md. Not part
# of the test suite. KEEP_LOGS=DIR keeps the logs of the controller, the proxies and wrk of each
# row, and changes.log (when each proxy served each change, ms after it), in DIR/<mode>-<routes>/
# (with CAUSEWAY_LOG=info,causeway_controller=debug the controller logs each watched change,
# the inventory read, the compile and the status passes with their timings).
set -euo pipefail
cd "$(dirname "$0")/.."
MODES="file kube"; SIZES="1000 10000"; CHANGES=30; PROFILE=release; DEBOUNCE=50; LOAD=wrk
while [ $# -gt 0 ]; do
  case "$1" in
    --modes) MODES=$2; shift 2;;
    --sizes) SIZES=$2; shift 2;;
    --changes) CHANGES=$2; shift 2;;
    --debounce) DEBOUNCE=$2; shift 2;;
    --load) LOAD=$2; shift 2;;
    --debug) PROFILE=debug; shift;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
if [ -z "${CAUSEWAY_BIN:-}" ]; then
  if [ "$PROFILE" = release ]; then cargo build --release --quiet -p causeway; else cargo build --quiet -p causeway; fi
  CAUSEWAY_BIN="${CARGO_TARGET_DIR:-target}/$PROFILE/causeway"
fi
KUBE_LOCAL_TOOLS=${KUBE_LOCAL_TOOLS:-$(cd .. && pwd)/shared/tools/kube-local}
KUBE_LOCAL_HOME=${KUBE_LOCAL_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-local}
KUBECTL=${KUBECTL:-$KUBE_LOCAL_HOME/bin/kubectl}
work=$(mktemp -d); pids=(); kube_env=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
kube_down() {
  if [ ${#kube_env[@]} -gt 0 ]; then env "${kube_env[@]}" bash "$KUBE_LOCAL_TOOLS/down.sh" >/dev/null 2>&1 || true; kube_env=(); fi
}
cleanup() { stop_load; stop_all; kube_down; rm -rf "$work"; }
trap cleanup EXIT
HOST=bench.bench.localhost
PROXIES=3
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
percentile() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((NR*p+99)/100); if (i<1) i=1; print a[i]}'; }
stamp=$(date -u +%Y-%m-%dT%H-%MZ)
out=bench/results/propagation-$stamp.md

route_doc() { # name key body
  printf -- '---\napiVersion: causeway.dev/v1alpha1\nkind: Route\nmetadata: {name: %s, namespace: bench}\nspec:\n  apiRef: {name: bench}\n  routeKey: GET %s\n  integration: {type: MOCK, mock: {statusCode: 200, body: "%s"}}\n' "$1" "$2" "$3"
}
write_config() { # dir routes
  local dir=$1 n=$2
  mkdir -p "$dir"
  cat > "$dir/api.yaml" <<YAML
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: bench, namespace: bench}
spec: {}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: bench-prod, namespace: bench}
spec: {apiRef: {name: bench}, stageName: prod, autoDeploy: true}
YAML
  local i
  for i in $(seq 1 $((n - 1))); do route_doc "r$i" "/r/$i" "r$i"; done > "$dir/routes.yaml"
  route_doc probe /probe v0 > "$dir/probe.yaml"
}
wait_body() { # port body timeout_s
  local deadline=$(( $(now_ms) + $3 * 1000 ))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    [ "$(curl -s -H "host: $HOST" "http://127.0.0.1:$1/prod/probe" 2>/dev/null)" = "$2" ] && return 0
    sleep 0.01
  done
  return 1
}
wait_all() { # body timeout_s
  local i
  for i in $(seq 1 $PROXIES); do wait_body "1981$i" "$1" "$2" || return 1; done
}
start_proxies() { # tls dir
  local i
  for i in $(seq 1 $PROXIES); do
    "$CAUSEWAY_BIN" proxy --controller https://127.0.0.1:19800 --tls-dir "$1" --state-file "$work/p$i.json" \
      --listen 127.0.0.1:1981$i --admin-listen 127.0.0.1:1991$i --proxy-id "p$i" --access-log off 2> "$work/p$i.log" & pids+=($!)
  done
}
wrk_pid=
start_load() {
  [ "$LOAD" = wrk ] || return 0
  wrk -t1 -c10 -d3600s -H "host: $HOST" "http://127.0.0.1:19811/prod/r/1" > "$work/wrk.log" 2>&1 & wrk_pid=$!
}
stop_load() { # SIGINT: wrk prints its summary
  [ -n "$wrk_pid" ] || return 0
  kill -INT "$wrk_pid" 2>/dev/null || true; wait "$wrk_pid" 2>/dev/null || true; wrk_pid=
}

drive() { # driver arguments: makes the changes, writes $work/times and $work/changes.log
  python3 bench/propagation-driver.py --changes "$CHANGES" --ports "$(seq -s, 19811 $((19810 + PROXIES)))" \
    --host "$HOST" --times "$work/times" --log "$work/changes.log" "$@"
}

file_mode() { # routes
  local n=$1
  rm -rf "$work/config" "$work/tls" "$work"/p*.json
  write_config "$work/config" "$n"
  "$CAUSEWAY_BIN" --log-format json controller --from-dir "$work/config" --tls-dir "$work/tls" \
    --push-listen 127.0.0.1:19800 --admin-listen 127.0.0.1:19802 --debounce-millis "$DEBOUNCE" 2> "$work/controller.log" & pids+=($!)
  until [ -f "$work/tls/proxy/tls.key" ]; do sleep 0.05; done
  start_proxies "$work/tls/proxy"
  wait_all v0 180 || { echo "proxies never served $n routes" >&2; tail "$work"/*.log >&2; exit 1; }
  start_load
  drive --file "$work/config/probe.yaml" || { tail "$work"/*.log >&2; exit 1; }
  stop_load; stop_all
}

kube_mode() { # routes
  local n=$1 state=$work/kube api_port=26443
  stop_all; kube_down; rm -rf "$state" "$work/config" "$work/tls" "$work"/p*.json
  mkdir -p "$state"
  kube_env=(KUBE_LOCAL_STATE="$state" KUBE_LOCAL_API_PORT=$api_port KUBE_LOCAL_ETCD_PORT=22379 KUBE_LOCAL_ETCD_PEER_PORT=22380)
  env "${kube_env[@]}" bash "$KUBE_LOCAL_TOOLS/up.sh" > "$work/up.log" 2>&1 || { cat "$work/up.log" >&2; exit 1; }
  local kc=$state/kubeconfig k8s=("$KUBECTL" --kubeconfig "$state/kubeconfig")
  "${k8s[@]}" apply --validate=false -f deploy/crds/causeway.dev.yaml > /dev/null
  "${k8s[@]}" wait --for=condition=Established crd --all --timeout=60s > /dev/null
  "${k8s[@]}" create namespace causeway-system > /dev/null
  "${k8s[@]}" create namespace bench > /dev/null
  write_config "$work/config" "$n"
  "${k8s[@]}" create -f "$work/config/api.yaml" -f "$work/config/probe.yaml" > /dev/null
  # Many objects per request batch: kubectl create sends one request per object.
  "${k8s[@]}" create -f "$work/config/routes.yaml" > /dev/null
  "$CAUSEWAY_BIN" --log-format json controller --kubeconfig "$kc" --leader-elect false --identity bench \
    --push-listen 127.0.0.1:19800 --admin-listen 127.0.0.1:19802 --debounce-millis "$DEBOUNCE" \
    --service-account-keys-refresh-seconds 0 2> "$work/controller.log" & pids+=($!)
  mkdir -p "$work/tls"
  until "${k8s[@]}" -n causeway-system get secret causeway-proxy-tls > /dev/null 2>&1; do sleep 0.2; done
  for key in ca.crt tls.crt tls.key; do
    "${k8s[@]}" -n causeway-system get secret causeway-proxy-tls -o "go-template={{index .data \"$key\" | base64decode}}" > "$work/tls/$key"
  done
  start_proxies "$work/tls"
  wait_all v0 300 || { echo "proxies never served $n routes" >&2; tail "$work"/*.log >&2; exit 1; }
  # Measure in steady state: after the controller wrote the first status of every Route.
  until [ "$("${k8s[@]}" -n bench get routes -o go-template='{{range .items}}{{if .status}}x{{end}}{{end}}' | wc -c)" -ge "$n" ]; do sleep 2; done
  sleep 2
  start_load
  drive --url "https://127.0.0.1:$api_port/apis/causeway.dev/v1alpha1/namespaces/bench/routes/probe" \
    --token "$(cut -d, -f1 "$state/pki/tokens.csv")" --cacert "$state/pki/ca.crt" || { tail "$work"/*.log >&2; exit 1; }
  stop_load; stop_all; kube_down
}

{
  echo "# Propagation — $stamp"
  echo
  echo "Command: \`bench/propagation.sh --modes \"$MODES\" --sizes \"$SIZES\" --changes $CHANGES --debounce $DEBOUNCE --load $LOAD\`"
  echo "($PROFILE build, commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + uncommitted changes'), $(nproc) cores,"
  echo "load average at start $(cut -d' ' -f1-3 /proc/loadavg); the machine is shared with other builds)."
  echo "Change → all $PROXIES proxies serve it, $CHANGES changes per row, milliseconds."
  [ "$LOAD" = wrk ] && echo "Own load during each measurement: wrk -t1 -c10 against proxy 1 (a MOCK route)."
  echo
  echo "| mode | routes | p50 ms | p99 ms | max ms | own load req/s |"
  echo "|---|---|---|---|---|---|"
} | tee "$out"
for mode in $MODES; do
  for n in $SIZES; do
    "${mode}_mode" "$n"
    if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS/$mode-$n"; cp "$work"/*.log "$KEEP_LOGS/$mode-$n/" 2>/dev/null || true; fi
    p50=$(percentile 50 < "$work/times"); p99=$(percentile 99 < "$work/times"); max=$(sort -n "$work/times" | tail -1)
    rps=$(awk '/Requests\/sec/ {print int($2)}' "$work/wrk.log" 2>/dev/null || true)
    echo "| $mode | $n | $p50 | $p99 | $max | ${rps:-n/a} |" | tee -a "$out"
    rm -f "$work/wrk.log" "$work/changes.log"
  done
done
echo "wrote $out"
