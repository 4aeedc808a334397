#!/usr/bin/env bash
# WebSocket Apis: proxy memory per idle connection, and message round trips per second through
# the proxy to an HTTP backend and back through `@connections`, against a direct WebSocket echo
# in the same run (and a two-way MOCK route for reference).
#
#   cargo build --release -p causeway -p causeway-e2e --bins
#   bench/websocket.sh [CONNECTIONS=10000] [SECONDS=10] [CLIENTS=16]
#
# The client and the HTTP backend are `ws-bench` (tests/src/bin/ws_bench.rs). Binaries come from
# ${CARGO_TARGET_DIR:-target}/release. Raises `ulimit -n` (needs a hard limit above
# CONNECTIONS + a few hundred). Writes bench/results/websocket-<UTC timestamp>.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-10000}"; secs="${2:-10}"; clients="${3:-16}"
release="${CARGO_TARGET_DIR:-$root/target}/release"
bin="${CAUSEWAY_BIN:-$release/causeway}"
bench="${WS_BENCH_BIN:-$release/ws-bench}"
for b in "$bin" "$bench"; do
  [ -x "$b" ] || { echo "websocket.sh: $b is missing: cargo build --release -p causeway -p causeway-e2e --bins" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((n + 500)) ]; then
  echo "websocket.sh: ulimit -n is $(ulimit -n); $n connections need more" >&2; exit 1
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
traffic="$(free_port)"; admin="$(free_port)"; backend="$(free_port)"
work="$(mktemp -d)"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
access_key=AKIDCAUSEWAYBENCH; secret_key=causeway/bench/not/a/secret
cat > "$work/api.yaml" <<YAML
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: bench, namespace: default}
spec: {protocol: WEBSOCKET, connectionsAuthorizerRef: {name: bench-management}}
---
apiVersion: v1
kind: Secret
metadata: {name: bench-management, namespace: default}
stringData: {$access_key: $secret_key}
---
apiVersion: causeway.dev/v1alpha1
kind: Authorizer
metadata: {name: bench-management, namespace: default}
spec: {apiRef: {name: bench}, type: SIGV4, sigv4: {credentialsSecretRef: {name: bench-management}}}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: bench-default, namespace: default}
spec:
  apiRef: {name: bench}
  routeKey: \$default
  integration: {type: HTTP_PROXY, backendRef: {name: bench-backend, port: 80}}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: bench-mock, namespace: default}
spec:
  apiRef: {name: bench}
  routeKey: mock
  routeResponseSelectionExpression: \$default
  integration: {type: MOCK, mock: {statusCode: 200, body: pong}}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: bench-prod, namespace: default}
spec: {apiRef: {name: bench}, stageName: prod, autoDeploy: true}
---
apiVersion: v1
kind: Service
metadata: {name: bench-backend, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: $backend}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: bench-backend-static
  namespace: default
  labels: {kubernetes.io/service-name: bench-backend}
addressType: IPv4
endpoints: [{addresses: ["127.0.0.1"]}]
ports: [{name: http, port: $backend}]
YAML
"$bin" standalone -f "$work" --listen "127.0.0.1:$traffic" --admin-listen "127.0.0.1:$admin" \
  --access-log off --workers 1 --max-connections $((n + 1000)) --ws-new-connections-per-second 0 > "$work/proxy.log" 2>&1 &
proxy=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break; sleep 0.1
done
"$bench" --proxy "127.0.0.1:$traffic" --pid "$proxy" --host bench.default.localhost --stage prod \
  --backend "127.0.0.1:$backend" --access-key "$access_key" --secret-key "$secret_key" \
  --connections "$n" --seconds "$secs" --clients "$clients" > "$work/result.md"
stamp="$(date -u +%Y-%m-%dT%H-%M-%SZ)"
mkdir -p "$root/bench/results"
out="$root/bench/results/websocket-$stamp.md"
{
  echo "# WebSocket bench, $stamp"
  echo
  profile="release"; case "$bin" in */debug/*) profile="debug";; esac
  echo "Command: \`bench/websocket.sh $n $secs $clients\` ($profile build of the proxy, \`causeway standalone --workers 1 --access-log off\`;"
  echo "client and HTTP backend: \`ws-bench\`, on the same machine: $(nproc) CPUs, $(uname -r))."
  echo
  echo "| measure | value |"
  echo "|---|---|"
  cat "$work/result.md"
} > "$out"
cat "$out"
