#!/usr/bin/env bash
# Reverse-proxy benchmark on 127.0.0.1: the backend direct, Causeway, nginx and HAProxy doing the
# same job, measured in the same run with wrk (fixed connections and duration). Prints a table
# with ratios against direct and against nginx, and writes it to bench/results/.
#
#   bench/proxy.sh [--duration 10] [--connections 64] [--threads 2] [--rounds 1]
#
# With --rounds N the four targets are measured N times, interleaved, and the table shows the
# median of each column (the load generator shares the cores: medians tame other load).
#
# Not part of the test suite. Needs: nginx, haproxy, wrk (installed from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=10; CONNECTIONS=64; THREADS=2; ROUNDS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2;;
    --connections) CONNECTIONS=$2; shift 2;;
    --threads) THREADS=$2; shift 2;;
    --rounds) ROUNDS=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
for tool in nginx haproxy wrk; do
  command -v "$tool" >/dev/null || { echo "installing $tool" >&2; apt-get update -qq && apt-get install -y -qq nginx haproxy wrk >/dev/null; break; }
done
echo "building release binaries..." >&2
cargo build --release --quiet -p causeway -p causeway-example-backend
BIN=${CARGO_TARGET_DIR:-target}/release

work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
BACKEND_PORT=19080; CAUSEWAY_PORT=19081; ADMIN_PORT=19901; NGINX_PORT=19082; HAPROXY_PORT=19083
KEY=bench-key-0123456789

"$BIN/petstore-backend" --listen 127.0.0.1:$BACKEND_PORT 2>/dev/null & pids+=($!)
mkdir -p "$work/causeway"
sed "s/BACKEND_PORT/$BACKEND_PORT/" bench/proxy/causeway.yaml > "$work/causeway/bench.yaml"
"$BIN/causeway" standalone -f "$work/causeway" --listen 127.0.0.1:$CAUSEWAY_PORT \
  --admin-listen 127.0.0.1:$ADMIN_PORT --access-log off --log warn 2>"$work/causeway.log" & pids+=($!)
sed -e "s/BACKEND_PORT/$BACKEND_PORT/" -e "s/NGINX_PORT/$NGINX_PORT/" -e "s#PIDFILE#$work/nginx.pid#" \
  -e "s#ERRLOG#$work/nginx.err#" bench/proxy/nginx.conf > "$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)
sed -e "s/BACKEND_PORT/$BACKEND_PORT/" -e "s/HAPROXY_PORT/$HAPROXY_PORT/" bench/proxy/haproxy.cfg > "$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db 2>"$work/haproxy.log" & pids+=($!)

wait_ok() { for _ in $(seq 100); do curl -fsS -o /dev/null "$@" 2>/dev/null && return 0; sleep 0.1; done; echo "not answering: $*" >&2; exit 1; }
wait_ok http://127.0.0.1:$BACKEND_PORT/v1/pets
wait_ok -H "Host: bench.bench.localhost" -H "x-api-key: $KEY" http://127.0.0.1:$CAUSEWAY_PORT/prod/pets
wait_ok -H "x-api-key: $KEY" http://127.0.0.1:$NGINX_PORT/prod/pets
wait_ok -H "x-api-key: $KEY" http://127.0.0.1:$HAPROXY_PORT/prod/pets

to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'; }
run() { # name url [headers...]
  local name=$1 url=$2; shift 2
  local args=(); for h in "$@"; do args+=(-H "$h"); done
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${args[@]}" "$url" > "$work/$name.wrk" 2>&1
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$name.wrk")
  p50=$(awk '$1=="50%" {print $2}' "$work/$name.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$work/$name.wrk")
  errors=$(awk '/Non-2xx/ {print $5}' "$work/$name.wrk"); errors=${errors:-0}
  echo "$name $rps $(to_ms "$p50") $(to_ms "$p99") $errors"
}
median() { sort -n | awk '{v[NR]=$1} END { if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2 }'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "running: ${DURATION}s each, $CONNECTIONS connections, $THREADS wrk threads, $ROUNDS round(s)" >&2
: > "$work/all"
for round in $(seq "$ROUNDS"); do
  run direct http://127.0.0.1:$BACKEND_PORT/v1/pets >> "$work/all"
  run causeway http://127.0.0.1:$CAUSEWAY_PORT/prod/pets "Host: bench.bench.localhost" "x-api-key: $KEY" >> "$work/all"
  run nginx http://127.0.0.1:$NGINX_PORT/prod/pets "x-api-key: $KEY" >> "$work/all"
  run haproxy http://127.0.0.1:$HAPROXY_PORT/prod/pets "x-api-key: $KEY" >> "$work/all"
done
results=()
for name in direct causeway nginx haproxy; do
  col() { awk -v n="$name" -v c="$1" '$1==n {print $c}' "$work/all" | median; }
  errors=$(awk -v n="$name" '$1==n {s+=$5} END {print s+0}' "$work/all")
  results+=("$name $(col 2) $(col 3) $(col 4) $errors")
done

direct_rps=$(echo "${results[0]}" | awk '{print $2}')
nginx_rps=$(echo "${results[2]}" | awk '{print $2}')
nginx_p99=$(echo "${results[2]}" | awk '{print $4}')
stamp=$(date -u +%Y-%m-%dT%H-%M-%SZ)
mkdir -p bench/results
out="bench/results/proxy-$stamp.md"
{
  echo "# Reverse-proxy benchmark, $stamp"
  echo
  echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, median of $ROUNDS interleaved round(s), on $(nproc) cores (load generator, proxy and backend share them); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo
  echo "Causeway runs \`causeway standalone\` with its defaults (one worker thread per CPU, access log off)."
  echo "All three proxies do the same job: an \`x-api-key\` check and a per-key rate limit too high to trigger (Causeway: a UsagePlan with one key)."
  echo
  echo "| target | req/s | p50 ms | p99 ms | non-2xx | req/s ÷ direct | req/s ÷ nginx | p99 ÷ nginx p99 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for line in "${results[@]}"; do
    read -r name rps p50ms p99ms errors <<<"$line"
    awk -v n="$name" -v r="$rps" -v a="$p50ms" -v b="$p99ms" -v e="$errors" -v d="$direct_rps" -v g="$nginx_rps" -v gp="$nginx_p99" \
      'BEGIN { printf "| %s | %.0f | %.3f | %.3f | %s | %.2f | %.2f | %.2f |\n", n, r, a, b, e, r/d, r/g, b/gp }'
  done
} | tee "$out"
{
  echo
  echo "Load average before/after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee -a "$out"
echo "written to $out" >&2
