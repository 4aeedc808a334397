#!/usr/bin/env bash
# Edge scorecard: request smuggling, path confusion, header spoofing, slow clients and HTTP/2
# abuse, run against Causeway, nginx and HAProxy on 127.0.0.1 in one run, one table.
# Every proxy forwards /public/ to the same recording backend with 5 s timeouts for request
# heads, bodies and idle connections. Writes bench/results/edge-scorecard-<time>.md and exits
# non-zero when Causeway's column is not clean.
#
#   bench/edge-scorecard.sh [--only TEXT]     # --only: the cases whose name contains TEXT
#
# Not part of the test suite (it takes a few minutes). Needs nginx and haproxy (installed from
# Debian if missing) and Python 3.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in nginx haproxy; do
  command -v "$tool" >/dev/null || { echo "installing nginx haproxy" >&2; apt-get update -qq && apt-get install -y -qq nginx haproxy >/dev/null; break; }
done
echo "building causeway (release)..." >&2
cargo build --release --quiet -p causeway
BIN=${CARGO_TARGET_DIR:-target}/release

work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
BACKEND_PORT=19180; CAUSEWAY_PORT=19181; ADMIN_PORT=19191; NGINX_PORT=19182; NGINX_H2_PORT=19183
HAPROXY_PORT=19184; HAPROXY_H2_PORT=19185

mkdir -p "$work/causeway"
sed "s/BACKEND_PORT/$BACKEND_PORT/" bench/edge/causeway.yaml > "$work/causeway/edge.yaml"
"$BIN/causeway" standalone -f "$work/causeway" --listen 127.0.0.1:$CAUSEWAY_PORT \
  --admin-listen 127.0.0.1:$ADMIN_PORT --access-log off --log warn --workers 1 \
  --header-read-timeout-ms 5000 --body-idle-timeout-ms 5000 ${CAUSEWAY_EDGE_ARGS:-} \
  2>"$work/causeway.log" & pids+=($!); causeway_pid=$!
sed -e "s/BACKEND_PORT/$BACKEND_PORT/" -e "s/NGINX_PORT/$NGINX_PORT/" -e "s/NGINX_H2_PORT/$NGINX_H2_PORT/" \
  -e "s#PIDFILE#$work/nginx.pid#" -e "s#ERRLOG#$work/nginx.err#" bench/edge/nginx.conf > "$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" -g 'daemon off;' & pids+=($!); nginx_pid=$!
sed -e "s/BACKEND_PORT/$BACKEND_PORT/" -e "s/HAPROXY_PORT/$HAPROXY_PORT/" -e "s/HAPROXY_H2_PORT/$HAPROXY_H2_PORT/" \
  bench/edge/haproxy.cfg > "$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db 2>"$work/haproxy.log" & pids+=($!); haproxy_pid=$!
sleep 2
stamp=$(date -u +%Y-%m-%dT%H-%MZ)
out=bench/results/edge-scorecard-$stamp.md
status=0
python3 bench/edge/scorecard.py --backend-port $BACKEND_PORT \
  --proxy "causeway=$CAUSEWAY_PORT,$CAUSEWAY_PORT,$causeway_pid" \
  --proxy "nginx=$NGINX_PORT,$NGINX_H2_PORT,$nginx_pid" \
  --proxy "haproxy=$HAPROXY_PORT,$HAPROXY_H2_PORT,$haproxy_pid" \
  --out "$work/table.md" "$@" || status=$?
{
  echo "# Edge scorecard $stamp"
  echo
  echo "Command: \`bench/edge-scorecard.sh $*\`. Causeway $(git rev-parse --short HEAD) (release, one worker),"
  echo "$(nginx -v 2>&1 | head -1), $(haproxy -v 2>&1 | head -1 | cut -d' ' -f1-3); every proxy with 5 s"
  echo "head/body/idle timeouts, forwarding /public/ to one recording backend on 127.0.0.1."
  echo "\`clean\`: refused or handled without harm; \`(kept serving)\`: the flood did not end the"
  echo "connection but the proxy stayed responsive and bounded."
  echo
  cat "$work/table.md"
} > "$out"
echo "wrote $out"
exit $status
