#!/usr/bin/env bash
# Control-plane scale benchmark: compile time, incremental compile time, `causeway validate`
# time, and the memory of a standalone gateway, on generated configurations of
# 100 Apis x 100 Routes (10,000 routes), without keys and with 100,000 API keys.
#
#   bench/compile.sh [--runs 7] [--apis 100] [--routes 100] [--keys 100000]
#
# Release build. Each time is the median of --runs runs (min and max beside it). The RSS is the
# standalone process's VmRSS once it serves the configuration (and VmHWM, its peak while
# loading). Results go to bench/results/compile-<UTC timestamp>.md. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=7; APIS=100; ROUTES=100; KEYS=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2;;
    --apis) APIS=$2; shift 2;;
    --routes) ROUTES=$2; shift 2;;
    --keys) KEYS=$2; shift 2;;
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
out=bench/results/compile-$stamp.md
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

"$BENCH" gen "$work/routes" --apis "$APIS" --routes "$ROUTES" --keys 0
"$BENCH" gen "$work/keys" --apis "$APIS" --routes "$ROUTES" --keys "$KEYS"

validate_ms() { # dir
  local times=()
  for _ in $(seq 1 "$RUNS"); do
    t0=$(now_ms); "$CAUSEWAY" validate -f "$1" > /dev/null; times+=($(( $(now_ms) - t0 )))
  done
  printf '%s\n' "${times[@]}" | median
}

rss() { # dir -> "rss_mb hwm_mb ready_ms"
  local port=19971 admin=19972 t0
  t0=$(now_ms)
  "$CAUSEWAY" --log-format json standalone -f "$1" --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$admin \
    --access-log off 2> "$work/standalone.log" & pid=$!
  until [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$admin/readyz)" = 200 ]; do
    sleep 0.1
    kill -0 "$pid" 2>/dev/null || { tail "$work/standalone.log" >&2; exit 1; }
  done
  local ready=$(( $(now_ms) - t0 ))
  sleep 2   # let the allocator settle after the build of the tables
  local rss hwm
  rss=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$pid/status")
  hwm=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  echo "$rss $hwm $ready"
}

{
  echo "# Control-plane scale — $stamp"
  echo
  echo "Command: \`bench/compile.sh --runs $RUNS --apis $APIS --routes $ROUTES --keys $KEYS\`, release build,"
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (+ uncommitted changes)'), $(nproc) cores,"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared; other builds may run)."
  echo "Times are medians of $RUNS runs (min | max beside them), in milliseconds."
  echo
  echo "## compile ($APIS Apis x $ROUTES routes, no keys)"
  echo
  r=$("$BENCH" time "$work/routes" --runs "$RUNS")
  echo '```'; echo "$r" | head -1; echo '```'; echo "$r" | tail -n +2
  echo
  echo "## compile ($APIS Apis x $ROUTES routes, $KEYS API keys in 10 usage plans)"
  echo
  r=$("$BENCH" time "$work/keys" --runs "$RUNS")
  echo '```'; echo "$r" | head -1; echo '```'; echo "$r" | tail -n +2
  echo
  echo "## causeway validate (whole process: read, parse, compile, print)"
  echo
  echo "| configuration | median ms |"
  echo "|---|---|"
  echo "| $APIS x $ROUTES routes | $(validate_ms "$work/routes") |"
  echo "| $APIS x $ROUTES routes + $KEYS keys | $(validate_ms "$work/keys") |"
  echo
  echo "## standalone memory (serving, after the tables are built)"
  echo
  echo "| configuration | VmRSS MB | VmHWM MB | ready after ms |"
  echo "|---|---|---|---|"
  read -r r h t < <(rss "$work/routes"); echo "| $APIS x $ROUTES routes | $r | $h | $t |"
  read -r r h t < <(rss "$work/keys"); echo "| $APIS x $ROUTES routes + $KEYS keys | $r | $h | $t |"
} | tee "$out"
echo "wrote $out"
