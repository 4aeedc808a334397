#!/usr/bin/env bash
# Response-cache benchmark on 127.0.0.1: the same backend route through Causeway, once served
# from the stage cache and once forwarded every time, measured in the same run with wrk. Prints
# req/s of both and their ratio, the proxy's CPU time per request on each route (and its
# ratio), and the backend's own rate without the gateway (the most this machine and this load
# generator get from an HTTP server), and writes them to bench/results/.
#
#   bench/cache.sh [--duration 10] [--connections 64] [--threads 2] [--skip-build]
#
# Not part of the test suite. Needs wrk (installed from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=10; CONNECTIONS=64; THREADS=2; BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2;;
    --connections) CONNECTIONS=$2; shift 2;;
    --threads) THREADS=$2; shift 2;;
    --skip-build) BUILD=0; shift;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
command -v wrk >/dev/null || { echo "installing wrk" >&2; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [ "$BUILD" = 1 ]; then
  echo "building release binaries..." >&2
  cargo build --release --quiet -p causeway -p causeway-example-backend
fi
TARGET=${CARGO_TARGET_DIR:-target}

work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# Copy the binaries at once: a shared target directory may be rebuilt from another tree.
cp "$TARGET/release/causeway" "$TARGET/release/petstore-backend" "$work/"
BACKEND_PORT=19180; CAUSEWAY_PORT=19181; ADMIN_PORT=19191
HOST="bench.bench.localhost"

"$work/petstore-backend" --listen 127.0.0.1:$BACKEND_PORT 2>/dev/null & pids+=($!)
mkdir -p "$work/config"
sed "s/BACKEND_PORT/$BACKEND_PORT/" bench/cache/causeway.yaml > "$work/config/bench.yaml"
"$work/causeway" standalone -f "$work/config" --listen 127.0.0.1:$CAUSEWAY_PORT \
  --admin-listen 127.0.0.1:$ADMIN_PORT --access-log off --log warn 2>"$work/causeway.log" & pids+=($!)
CAUSEWAY_PID=$!
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$CAUSEWAY_PID/stat"; }

wait_ok() { for _ in $(seq 100); do curl -fsS -o /dev/null "$@" 2>/dev/null && return 0; sleep 0.1; done; echo "not answering: $*" >&2; exit 1; }
wait_ok http://127.0.0.1:$BACKEND_PORT/v1/pets
wait_ok -H "Host: $HOST" http://127.0.0.1:$CAUSEWAY_PORT/prod/pets
wait_ok -H "Host: $HOST" http://127.0.0.1:$CAUSEWAY_PORT/prod/cached/pets

run() { # name url -> "name rps p99 non2xx proxy_cpu_us_per_request"
  local t0 t1 n rps p99 errors
  t0=$(ticks)
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Host: $HOST" \
    "$2" > "$work/$1.wrk" 2>&1
  t1=$(ticks)
  n=$(awk '/requests in/ {print $1}' "$work/$1.wrk")
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$work/$1.wrk")
  errors=$(awk '/Non-2xx/ {print $5}' "$work/$1.wrk"); errors=${errors:-0}
  echo "$1 $rps $p99 $errors $(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')"
}

echo "running: ${DURATION}s each, $CONNECTIONS connections, $THREADS wrk threads" >&2
uncached=$(run uncached "http://127.0.0.1:$CAUSEWAY_PORT/prod/pets")
cached=$(run cached "http://127.0.0.1:$CAUSEWAY_PORT/prod/cached/pets")
direct=$(run "backend-direct" "http://127.0.0.1:$BACKEND_PORT/v1/pets")
hits=$(curl -fsS http://127.0.0.1:$ADMIN_PORT/metrics | awk '/^causeway_proxy_cache_hits_total/ {print $2}')
u_rps=$(echo "$uncached" | awk '{print $2}'); c_rps=$(echo "$cached" | awk '{print $2}')
d_rps=$(echo "$direct" | awk '{print $2}')
ratio=$(awk -v c="$c_rps" -v u="$u_rps" 'BEGIN { printf "%.2f", c / u }')
ceiling=$(awk -v c="$c_rps" -v d="$d_rps" 'BEGIN { printf "%.2f", c / d }')
cpu_ratio=$(awk -v c="$(echo "$cached" | awk '{print $5}')" -v u="$(echo "$uncached" | awk '{print $5}')" 'BEGIN { printf "%.2f", (c > 0 ? u / c : 0) }')
stamp=$(date -u +%Y-%m-%dT%H-%M-%SZ)
mkdir -p bench/results
out="bench/results/cache-$stamp.md"
{
  echo "# Response-cache benchmark, $stamp"
  echo
  echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on $(nproc) cores (load generator, proxy and backend share them); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo
  echo "| route | req/s | p99 | non-2xx | proxy CPU µs/req |"
  echo "|---|---:|---:|---:|---:|"
  for r in "$uncached" "$cached"; do echo "$r" | awk '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}'; done
  echo "$direct" | awk '{printf "| %s (no gateway) | %s | %s | %s | – |\n", $1, $2, $3, $4}'
  echo
  echo "cached ÷ uncached req/s: **$ratio** (cache hits: ${hits:-0}); the proxy's CPU per request, uncached ÷ cached: **$cpu_ratio**; cached ÷ the backend without the gateway: $ceiling."
} | tee "$out"
echo "written to $out" >&2
