#!/usr/bin/env bash
# Memory of a gateway with a large configuration, 100 Apis x 100 Routes without keys and with
# 100,000 API keys in ten UsagePlans (bench_compile's generator, as bench/compile.sh), in two
# shapes: `causeway standalone` (the compiler, with its memo and parsed files, and the proxy in
# one process) and `causeway proxy` alone (as in a cluster: the compiled snapshot, loaded from
# its state file; the controller it names does not answer).
#
#   bench/memory.sh [--apis 100] [--routes 100] [--keys 100000] [--rounds 3]
#
# Release build. Per configuration and round: start the process, wait for /readyz, send
# requests with one of the API keys (and one without, which must be refused) so that the key
# table, the usage plan's limits and a bucket are really used, wait 2 s, then read VmRSS and
# VmHWM from /proc. Results go to bench/results/memory-<UTC timestamp>.md. Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
APIS=100; ROUTES=100; KEYS=100000; ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --apis) APIS=$2; shift 2;;
    --routes) ROUTES=$2; shift 2;;
    --keys) KEYS=$2; shift 2;;
    --rounds) ROUNDS=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
TARGET=${CARGO_TARGET_DIR:-target}
# CAUSEWAY_BIN and BENCH_COMPILE_BIN (both set) skip the build.
if [ -z "${CAUSEWAY_BIN:-}" ] || [ -z "${BENCH_COMPILE_BIN:-}" ]; then
  cargo build --release --quiet -p causeway --bin causeway
  cargo build --release --quiet -p causeway-compile --example bench_compile
fi
BENCH=${BENCH_COMPILE_BIN:-$TARGET/release/examples/bench_compile}
CAUSEWAY=${CAUSEWAY_BIN:-$TARGET/release/causeway}
work=$(mktemp -d); pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
stamp=$(date -u +%Y-%m-%dT%H-%MZ)
out=${MEMORY_OUT:-bench/results/memory-$stamp.md}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

"$BENCH" gen "$work/routes" --apis "$APIS" --routes "$ROUTES" --keys 0
"$BENCH" gen "$work/keys" --apis "$APIS" --routes "$ROUTES" --keys "$KEYS"
"$BENCH" snapshot "$work/routes" "$work/routes.snapshot.json"
"$BENCH" snapshot "$work/keys" "$work/keys.snapshot.json"
# `causeway proxy` wants a client certificate for the controller; a self-signed one will do.
mkdir -p "$work/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=bench \
  -keyout "$work/tls/tls.key" -out "$work/tls/tls.crt" 2>/dev/null
cp "$work/tls/tls.crt" "$work/tls/ca.crt"

# Route 1 of every Api needs an API key (HTTP_PROXY to a backend nobody listens on: past the
# key and usage-plan steps it answers 502). Key 0 of plan 0 is bound to the stages of team0.
HOST=api0.team0.localhost
KEY=key-00-00000000-0123456789abcdef

measure() { # standalone|proxy dir-or-snapshot keyed(0|1) -> "rss_mb hwm_mb ready_ms"
  local port=19981 admin=19982 t0 code
  t0=$(now_ms)
  if [ "$1" = standalone ]; then
    "$CAUSEWAY" --log-format json standalone -f "$2" --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$admin \
      --access-log off 2> "$work/standalone.log" & pid=$!
  else
    cp "$2" "$work/state.json"
    "$CAUSEWAY" --log-format json proxy --controller https://127.0.0.1:9 --tls-dir "$work/tls" \
      --state-file "$work/state.json" --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$admin \
      --access-log off 2> "$work/standalone.log" & pid=$!
  fi
  until [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$admin/readyz)" = 200 ]; do
    sleep 0.1
    kill -0 "$pid" 2>/dev/null || { tail "$work/standalone.log" >&2; exit 1; }
  done
  local ready=$(( $(now_ms) - t0 ))
  if [ "$3" = 1 ]; then
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" http://127.0.0.1:$port/prod/items1/7)
    [ "$code" = 403 ] || { echo "a request without a key answered $code, not 403" >&2; exit 1; }
    for _ in 1 2 3; do
      code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" -H "x-api-key: $KEY" http://127.0.0.1:$port/prod/items1/7)
      [ "$code" = 502 ] || { echo "a request with a key answered $code, not 502" >&2; exit 1; }
    done
  else
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" http://127.0.0.1:$port/prod/items0)
    [ "$code" = 200 ] || { echo "the MOCK route answered $code, not 200" >&2; exit 1; }
  fi
  sleep 2   # let the allocator settle after the build of the tables
  local rss hwm
  rss=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$pid/status")
  hwm=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  echo "$rss $hwm $ready"
}

{
  echo "# Gateway memory — $stamp"
  echo
  echo "Command: \`bench/memory.sh --apis $APIS --routes $ROUTES --keys $KEYS --rounds $ROUNDS\`, release build,"
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (+ uncommitted changes)'), $(nproc) cores,"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared; other builds may run)."
  echo "VmRSS 2 s after /readyz and the requests (with keys: one refused without a key, three with"
  echo "key 0 of plan 0, answered 502 by the absent backend after the key and usage-plan steps);"
  echo "one row per round. \`standalone\`: compiler and proxy in one process; \`proxy\`: \`causeway proxy\`"
  echo "serving the compiled snapshot from its state file."
  echo
  echo "| process | configuration | VmRSS MB | VmHWM MB | ready after ms |"
  echo "|---|---|---|---|---|"
  for mode in standalone proxy; do
    if [ "$mode" = standalone ]; then routes="$work/routes" keys="$work/keys"
    else routes="$work/routes.snapshot.json" keys="$work/keys.snapshot.json"; fi
    for _ in $(seq 1 "$ROUNDS"); do
      read -r r h t < <(measure $mode "$routes" 0); echo "| $mode | $APIS x $ROUTES routes | $r | $h | $t |"
    done
    for _ in $(seq 1 "$ROUNDS"); do
      read -r r h t < <(measure $mode "$keys" 1); echo "| $mode | $APIS x $ROUTES routes + $KEYS keys | $r | $h | $t |"
    done
  done
} | tee "$out"
echo "wrote $out"
