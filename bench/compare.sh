#!/usr/bin/env bash
# Causeway against nginx and HAProxy doing the same job, and the backend direct, in one run on
# 127.0.0.1: an x-api-key check, a per-key rate limit that never trips, pooled keep-alive
# upstream connections, access log off, ONE worker each (Causeway --workers 1, nginx
# worker_processes 1, HAProxy nbthread 1).
#
#   bench/compare.sh [--duration 10] [--connections 50] [--rounds 3] [--perf] [--skip-build]
#
# Closed loop: HTTP/1.1 with wrk, HTTP/1.1 and HTTP/2 over TLS with oha (it sends SNI for the
# custom domain and connects to 127.0.0.1; wrk cannot do both); each target is
# measured --rounds times, interleaved, and the table shows medians. CPU per request is the
# server's own CPU time (utime + stime from /proc, all its processes) over the requests it
# answered, split into user and kernel shares. Open loop: oha at half of nginx's closed-loop
# HTTP/1.1 rate with latency correction (coordinated omission), p50/p99 per target.
# TLS: TLS 1.3 only, each server follows the client's order, so all three negotiate the same
# suite (printed in the results). With --perf, `perf record` samples Causeway during one more
# closed-loop HTTP/1.1 run and the top of the profile goes into the results too.
#
# Not part of the test suite. Installs nginx, haproxy, wrk (Debian) and oha (crates.io) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=10; CONNECTIONS=50; ROUNDS=3; PERF=0; BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2;;
    --connections) CONNECTIONS=$2; shift 2;;
    --rounds) ROUNDS=$2; shift 2;;
    --perf) PERF=1; shift;;
    --skip-build) BUILD=0; shift;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
for tool in nginx haproxy wrk; do
  command -v "$tool" >/dev/null || { echo "installing nginx haproxy wrk (Debian)" >&2; apt-get update -qq && apt-get install -y -qq nginx haproxy wrk >/dev/null; break; }
done
command -v oha >/dev/null || { echo "installing oha (cargo install --locked oha)" >&2; cargo install --locked --quiet oha; }
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null; then
  apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null
fi
BIN=${CARGO_TARGET_DIR:-target}/release
if [ "$BUILD" = 1 ]; then
  echo "building release binaries..." >&2
  cargo build --release --quiet -p causeway -p causeway-example-backend
fi

work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
BACKEND_PORT=19180; CAUSEWAY_PORT=19181; CAUSEWAY_TLS_PORT=19191; ADMIN_PORT=19199
NGINX_PORT=19182; NGINX_TLS_PORT=19192; HAPROXY_PORT=19183; HAPROXY_TLS_PORT=19193
KEY=bench-key-0123456789; HOST=bench.localhost

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" > "$work/haproxy.pem"

"$BIN/petstore-backend" --listen 127.0.0.1:$BACKEND_PORT 2>/dev/null & pids+=($!)
mkdir -p "$work/causeway"
sed "s/BACKEND_PORT/$BACKEND_PORT/" bench/compare/causeway.yaml > "$work/causeway/bench.yaml"
{
  echo "---"
  echo "apiVersion: v1"
  echo "kind: Secret"
  echo "metadata: {name: bench-tls, namespace: bench}"
  echo "type: kubernetes.io/tls"
  echo "stringData:"
  echo "  tls.crt: |"; sed 's/^/    /' "$work/cert.pem"
  echo "  tls.key: |"; sed 's/^/    /' "$work/key.pem"
} >> "$work/causeway/bench.yaml"
"$BIN/causeway" standalone -f "$work/causeway" --workers 1 \
  --listen 127.0.0.1:$CAUSEWAY_PORT --https-listen 127.0.0.1:$CAUSEWAY_TLS_PORT \
  --admin-listen 127.0.0.1:$ADMIN_PORT --access-log off --log warn 2>"$work/causeway.log" & pids+=($!)
CAUSEWAY_PID=$!
fill() { sed -e "s#WORK#$work#g" -e "s/BACKEND_PORT/$BACKEND_PORT/" \
  -e "s/NGINX_TLS_PORT/$NGINX_TLS_PORT/" -e "s/NGINX_PORT/$NGINX_PORT/" \
  -e "s/HAPROXY_TLS_PORT/$HAPROXY_TLS_PORT/" -e "s/HAPROXY_PORT/$HAPROXY_PORT/" "$1"; }
fill bench/compare/nginx.conf > "$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" 2>>"$work/nginx.err" & pids+=($!)
NGINX_MASTER=$!
fill bench/compare/haproxy.cfg > "$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db 2>"$work/haproxy.log" & pids+=($!)
HAPROXY_PID=$!

wait_ok() { for _ in $(seq 150); do curl -fsSk -o /dev/null "$@" 2>/dev/null && return 0; sleep 0.1; done; echo "not answering: $*" >&2; cat "$work"/*.log "$work"/*.err >&2 2>/dev/null; exit 1; }
wait_ok http://127.0.0.1:$BACKEND_PORT/v1/pets
for port in $CAUSEWAY_PORT $NGINX_PORT $HAPROXY_PORT; do
  wait_ok -H "Host: $HOST" -H "x-api-key: $KEY" http://127.0.0.1:$port/prod/pets
done
for port in $CAUSEWAY_TLS_PORT $NGINX_TLS_PORT $HAPROXY_TLS_PORT; do
  wait_ok --resolve "$HOST:$port:127.0.0.1" -H "x-api-key: $KEY" "https://$HOST:$port/prod/pets"
done
NGINX_PIDS="$NGINX_MASTER $(pgrep -P "$NGINX_MASTER" | tr '\n' ' ')"

# The server processes of each target, and the TLS suite each negotiates.
pids_of() { case "$1" in direct) pgrep -f "petstore-backend --listen 127.0.0.1:$BACKEND_PORT";; causeway) echo "$CAUSEWAY_PID";; nginx) echo "$NGINX_PIDS";; haproxy) echo "$HAPROXY_PID";; esac; }
port_of() { case "$1/$2" in direct/h1) echo $BACKEND_PORT;; causeway/h1) echo $CAUSEWAY_PORT;; nginx/h1) echo $NGINX_PORT;; haproxy/h1) echo $HAPROXY_PORT;;
  causeway/*) echo $CAUSEWAY_TLS_PORT;; nginx/*) echo $NGINX_TLS_PORT;; haproxy/*) echo $HAPROXY_TLS_PORT;; esac; }
url_of() { # target protocol
  local port; port=$(port_of "$1" "$2")
  case "$1/$2" in direct/h1) echo "http://127.0.0.1:$port/v1/pets";; */h1) echo "http://127.0.0.1:$port/prod/pets";; *) echo "https://$HOST:$port/prod/pets";; esac; }
suite_of() { echo | openssl s_client -connect "127.0.0.1:$1" -servername "$HOST" 2>/dev/null | awk -F': *' '/Cipher is|^ *Cipher *:/ {print $NF; exit}'; }

# CPU ticks (user, system) of a set of processes.
ticks() { local u=0 s=0; for p in $1; do read -r a b < <(awk '{print $14, $15}' "/proc/$p/stat" 2>/dev/null || echo "0 0"); u=$((u+a)); s=$((s+b)); done; echo "$u $s"; }
HZ=$(getconf CLK_TCK)

to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'; }
# One closed-loop run; prints: target protocol rps p50ms p99ms cpu_us_per_req user_share non2xx
closed() { # target protocol
  local target=$1 proto=$2 url; url=$(url_of "$target" "$proto")
  local before after requests rps p50 p99 bad
  local hostargs=(-H "Host: $HOST" -H "x-api-key: $KEY")
  before=$(ticks "$(pids_of "$target")")
  case "$proto" in
    h1)
      wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${hostargs[@]}" "$url" > "$work/run.out" 2>&1
      requests=$(awk '/requests in/ {print $1}' "$work/run.out")
      rps=$(awk '/Requests\/sec/ {print $2}' "$work/run.out")
      p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$work/run.out")")
      p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$work/run.out")")
      bad=$(awk '/Non-2xx/ {print $5}' "$work/run.out"); bad=${bad:-0};;
    tls|h2)
      local version=(--http-version 1.1); [ "$proto" = h2 ] && version=(--http2)
      oha --no-tui --insecure "${version[@]}" -z "${DURATION}s" -c "$CONNECTIONS" --output-format json \
        -H "x-api-key: $KEY" --connect-to "$HOST:$(port_of "$target" h2):127.0.0.1:$(port_of "$target" h2)" "$url" > "$work/run.out" 2>"$work/run.err"
      read -r requests rps p50 p99 bad < <(python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
codes=d.get("statusCodeDistribution",{})
n=sum(codes.values()); ok=sum(v for k,v in codes.items() if k.startswith("2"))
lp=d["latencyPercentiles"]
print(n, d["summary"]["requestsPerSec"], lp["p50"]*1000, lp["p99"]*1000, n-ok)' "$work/run.out");;
  esac
  after=$(ticks "$(pids_of "$target")")
  read -r u0 s0 <<<"$before"; read -r u1 s1 <<<"$after"
  awk -v t="$target" -v p="$proto" -v r="$rps" -v a="$p50" -v b="$p99" -v n="$requests" -v u=$((u1-u0)) -v s=$((s1-s0)) -v hz="$HZ" -v e="$bad" \
    'BEGIN { cpu = (n > 0) ? (u + s) / hz * 1e6 / n : 0; share = (u + s > 0) ? u / (u + s) : 0; printf "%s %s %.0f %.3f %.3f %.1f %.2f %d\n", t, p, r, a, b, cpu, share, e }'
}
# One open-loop run at RATE req/s; prints: target rate p50ms p99ms non2xx
open_loop() { # target rate
  local target=$1 rate=$2 url; url=$(url_of "$target" h1)
  oha --no-tui -z "${DURATION}s" -c "$CONNECTIONS" -q "$rate" --latency-correction --output-format json \
    -H "Host: $HOST" -H "x-api-key: $KEY" "$url" > "$work/open.out" 2>"$work/open.err"
  python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
codes=d.get("statusCodeDistribution",{})
n=sum(codes.values()); ok=sum(v for k,v in codes.items() if k.startswith("2"))
lp=d["latencyPercentiles"]
print(sys.argv[2], d["summary"]["requestsPerSec"], lp["p50"]*1000, lp["p99"]*1000, n-ok)' "$work/open.out" "$target"
}
median() { sort -g | awk '{v[NR]=$1} END { if (NR==0) print 0; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2 }'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "closed loop: ${DURATION}s per run, $CONNECTIONS connections, $ROUNDS round(s)" >&2
: > "$work/closed"
for round in $(seq "$ROUNDS"); do
  for proto in h1 tls h2; do
    for target in direct causeway nginx haproxy; do
      [ "$target" = direct ] && [ "$proto" != h1 ] && continue
      closed "$target" "$proto" | tee -a "$work/closed" >&2
    done
  done
done
col() { awk -v t="$1" -v p="$2" -v c="$3" '$1==t && $2==p {print $c}' "$work/closed" | median; }
nginx_h1=$(col nginx h1 3)
RATE=$(awk -v r="$nginx_h1" 'BEGIN { printf "%d", r / 2 }')
echo "open loop at $RATE req/s (half of nginx's closed-loop HTTP/1.1 rate)" >&2
: > "$work/open"
for round in $(seq "$ROUNDS"); do
  for target in direct causeway nginx haproxy; do
    open_loop "$target" "$RATE" | tee -a "$work/open" >&2
  done
done
ocol() { awk -v t="$1" -v c="$2" '$1==t {print $c}' "$work/open" | median; }

if [ "$PERF" = 1 ]; then
  echo "perf: sampling Causeway during one more closed-loop HTTP/1.1 run" >&2
  perf record -F 999 -g -o "$work/perf.data" -p "$CAUSEWAY_PID" -- sleep "$DURATION" >"$work/perf.log" 2>&1 &
  perf_pid=$!
  closed causeway h1 > "$work/perf-run"
  wait "$perf_pid" || true
  [ -s "$work/perf.data" ] || { echo "perf recorded nothing:" >&2; cat "$work/perf.log" >&2; }
  perf report -i "$work/perf.data" --no-children -g none --sort dso,symbol --stdio 2>/dev/null \
    | grep -v '^#' | grep '%' | sed 's/ *$//' | cut -c1-150 | sed "s/ *$//" | head -40 > "$work/perf-top" || true
  perf report -i "$work/perf.data" --no-children -g none --sort dso --stdio 2>/dev/null \
    | grep -v '^#' | grep '%' | sed 's/ *$//' | head -12 > "$work/perf-dso" || true
fi

stamp=$(date -u +%Y-%m-%dT%H-%MZ)
mkdir -p bench/results
out="bench/results/compare-$stamp.md"
{
  echo "# Causeway, nginx, HAProxy and the backend direct, $stamp"
  echo
  echo "\`bench/compare.sh --duration $DURATION --connections $CONNECTIONS --rounds $ROUNDS$([ "$PERF" = 1 ] && echo " --perf")\` on $(nproc) cores shared by the load generator, the server and the backend; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo "Same job everywhere: x-api-key check, per-key rate limit that never trips, pooled keep-alive upstream, access log off, one worker each."
  echo "Versions: $(nginx -v 2>&1 | sed 's/.*: //'), HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}'), $(oha --version)."
  echo "TLS 1.3 suites negotiated: Causeway $(suite_of $CAUSEWAY_TLS_PORT), nginx $(suite_of $NGINX_TLS_PORT), HAProxy $(suite_of $HAPROXY_TLS_PORT)."
  echo
  echo "## Closed loop (median of $ROUNDS)"
  echo
  echo "CPU µs/req: the server's CPU time per request answered; user share: its user time ÷ (user + kernel)."
  echo
  echo "| protocol | target | req/s | ÷ nginx | p50 ms | p99 ms | CPU µs/req | user share | non-2xx |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  for proto in h1 tls h2; do
    base=$(col nginx "$proto" 3)
    for target in direct causeway nginx haproxy; do
      [ "$target" = direct ] && [ "$proto" != h1 ] && continue
      label=$proto; [ "$proto" = h1 ] && label="HTTP/1.1"; [ "$proto" = tls ] && label="HTTP/1.1 + TLS"; [ "$proto" = h2 ] && label="HTTP/2 + TLS"
      awk -v p="$label" -v t="$target" -v r="$(col "$target" "$proto" 3)" -v b="$base" -v a="$(col "$target" "$proto" 4)" \
        -v q="$(col "$target" "$proto" 5)" -v c="$(col "$target" "$proto" 6)" -v s="$(col "$target" "$proto" 7)" \
        -v e="$(awk -v t="$target" -v p="$proto" '$1==t && $2==p {n+=$8} END {print n+0}' "$work/closed")" \
        'BEGIN { printf "| %s | %s | %.0f | %.2f | %.3f | %.3f | %.1f | %.2f | %d |\n", p, t, r, (b > 0 ? r / b : 0), a, q, c, s, e }'
    done
  done
  echo
  echo "## Open loop at $RATE req/s, HTTP/1.1, latency corrected (median of $ROUNDS)"
  echo
  echo "| target | achieved req/s | p50 ms | p99 ms | p99 ÷ nginx p99 | non-2xx |"
  echo "|---|---:|---:|---:|---:|---:|"
  np99=$(ocol nginx 4)
  for target in direct causeway nginx haproxy; do
    awk -v t="$target" -v r="$(ocol "$target" 2)" -v a="$(ocol "$target" 3)" -v q="$(ocol "$target" 4)" -v n="$np99" \
      -v e="$(awk -v t="$target" '$1==t {n+=$5} END {print n+0}' "$work/open")" \
      'BEGIN { printf "| %s | %.0f | %.3f | %.3f | %.2f | %d |\n", t, r, a, q, (n > 0 ? q / n : 0), e }'
  done
  if [ "$PERF" = 1 ]; then
    echo
    echo "## Causeway profile (perf record -F 999 -g, closed-loop HTTP/1.1: $(awk '{printf "%s req/s, %s CPU µs/req, user share %s", $3, $6, $7}' "$work/perf-run"))"
    echo
    echo "By object:"
    echo
    echo '```'; cat "$work/perf-dso"; echo '```'
    echo
    echo "Top symbols (self time):"
    echo
    echo '```'; cat "$work/perf-top"; echo '```'
  fi
  echo
  echo "Load average before/after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee "$out"
echo "written to $out" >&2
