#!/usr/bin/env bash
# Quota benchmark on 127.0.0.1: the same keyed route with a quota on every request, counted
# (a) locally by one replica and (b) in a real redis-server shared by replicas (exact quotas),
# measured in the same run with wrk. Prints req/s and p99 of both and the ratio (target ≥ 0.7),
# and writes them to bench/results/.
#
#   bench/quota.sh [--duration 10] [--connections 64] [--threads 2]
#
# Not part of the test suite. Needs wrk and redis-server (installed from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=10; CONNECTIONS=64; THREADS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2;;
    --connections) CONNECTIONS=$2; shift 2;;
    --threads) THREADS=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
for tool in wrk redis-server; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk redis-server >/dev/null; break; }
done
echo "building the release binary..." >&2
cargo build --release --quiet -p causeway
TARGET=${CARGO_TARGET_DIR:-target}

work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cp "$TARGET/release/causeway" "$work/"
REDIS_PORT=19379; LOCAL_PORT=19281; SHARED_PORT=19282
HOST="bench.bench.localhost"; KEY="bench-key-0123456789"
mkdir -p "$work/config" "$work/redis"
cp bench/quota/causeway.yaml "$work/config/"

redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly yes --dir "$work/redis" >/dev/null & pids+=($!)
"$work/causeway" standalone -f "$work/config" --listen 127.0.0.1:$LOCAL_PORT \
  --admin-listen 127.0.0.1:19291 --access-log off --log warn 2>"$work/local.log" & pids+=($!)
"$work/causeway" standalone -f "$work/config" --listen 127.0.0.1:$SHARED_PORT \
  --admin-listen 127.0.0.1:19292 --access-log off --log warn \
  --redis-url "redis://127.0.0.1:$REDIS_PORT/" 2>"$work/shared.log" & pids+=($!)

wait_ok() { for _ in $(seq 100); do curl -fsS -o /dev/null "$@" 2>/dev/null && return 0; sleep 0.1; done; echo "not answering: $*" >&2; exit 1; }
wait_ok -H "Host: $HOST" -H "x-api-key: $KEY" http://127.0.0.1:$LOCAL_PORT/prod/orders
wait_ok -H "Host: $HOST" -H "x-api-key: $KEY" http://127.0.0.1:$SHARED_PORT/prod/orders

run() { # name port
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Host: $HOST" -H "x-api-key: $KEY" \
    "http://127.0.0.1:$2/prod/orders" > "$work/$1.wrk" 2>&1
  local rps p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$work/$1.wrk")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$work/$1.wrk"); non2xx=${non2xx:-0}
  echo "$1 $rps $p99 $non2xx"
}
echo "running: ${DURATION}s each, $CONNECTIONS connections" >&2
local_line=$(run local $LOCAL_PORT)
shared_line=$(run redis $SHARED_PORT)
counted=$(redis-cli -p $REDIS_PORT --scan --pattern 'causeway:quota:*' | head -1 | xargs -r redis-cli -p $REDIS_PORT GET)
stamp=$(date -u +%Y-%m-%dT%H-%M-%SZ)
mkdir -p bench/results
out="bench/results/quota-$stamp.md"
{
  echo "# Quota benchmark, $stamp"
  echo
  echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, one keyed MOCK route with a daily quota on every request; $(nproc) cores shared by wrk, Causeway and Redis; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); load average $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| counting | req/s | p99 | non-2xx |"
  echo "|---|---:|---:|---:|"
  for line in "$local_line" "$shared_line"; do
    read -r name rps p99 non2xx <<<"$line"
    echo "| $name | $rps | $p99 | $non2xx |"
  done
  awk -v a="$(echo "$shared_line" | awk '{print $2}')" -v b="$(echo "$local_line" | awk '{print $2}')" \
    'BEGIN { printf "\nRedis-backed ÷ local-only req/s: **%.2f** (target ≥ 0.7)\n", a/b }'
  echo
  echo "Quota units leased from Redis by the shared replica (granted, including unspent leases): ${counted:-unknown}."
} | tee "$out"
echo "written to $out" >&2
