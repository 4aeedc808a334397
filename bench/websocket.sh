#!/usr/bin/env bash
# WebSocket Apis: proxy memory per idle connection, and message round trips per second through
# the proxy (client → `$default` two-way MOCK → client) against a direct echo in the same run.
#
#   bench/websocket.sh [CONNECTIONS=10000] [SECONDS=10]
#
# Needs the built binary (cargo build --release -p causeway) and python3. Writes
# bench/results/websocket-<date>.md. Raise `ulimit -n` above 2×CONNECTIONS first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-10000}"; secs="${2:-10}"
bin="${CAUSEWAY_BIN:-$root/target/release/causeway}"
work="$(mktemp -d)"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/api.yaml" <<'YAML'
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: bench, namespace: default}
spec: {protocol: WEBSOCKET}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: bench-default, namespace: default}
spec:
  apiRef: {name: bench}
  routeKey: $default
  routeResponseSelectionExpression: $default
  integration: {type: MOCK, mock: {statusCode: 200, body: pong}}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: bench-prod, namespace: default}
spec: {apiRef: {name: bench}, stageName: prod, autoDeploy: true}
YAML
"$bin" standalone -f "$work" --listen 127.0.0.1:18180 --admin-listen 127.0.0.1:19181 \
  --access-log off --workers 1 > "$work/proxy.log" 2>&1 &
proxy=$!
sleep 1
python3 - "$n" "$secs" "$proxy" > "$work/result.md" <<'PY'
import base64, os, socket, struct, sys, threading, time
n, secs, pid = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1])
def upgrade(port, host):
    s = socket.create_connection(("127.0.0.1", port)); key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET /prod HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head: head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    return s
def frame(text):
    data = text.encode(); mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))
def read_frame(s):
    b = s.recv(2); n = b[1] & 0x7f
    out = b""
    while len(out) < n: out += s.recv(n - len(out))
    return out
host = "bench.default.localhost:18180"
before = rss_kib(pid)
held = [upgrade(18180, host) for _ in range(n)]
time.sleep(1)
after = rss_kib(pid)
per = (after - before) * 1024 / max(n, 1)
for s in held: s.close()
# Round trips through the proxy.
s = upgrade(18180, host); ping = frame("ping"); count = 0; end = time.time() + secs
while time.time() < end:
    s.sendall(ping); read_frame(s); count += 1
proxy_rate = count / secs
# Baseline: a direct TCP echo of the same frame, same client code.
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1); port = srv.getsockname()[1]
def echo():
    c, _ = srv.accept()
    while True:
        d = c.recv(65536)
        if not d: return
        c.sendall(bytes([0x81, 4]) + b"pong")
threading.Thread(target=echo, daemon=True).start()
d = socket.create_connection(("127.0.0.1", port)); count = 0; end = time.time() + secs
while time.time() < end:
    d.sendall(ping); read_frame(d); count += 1
direct_rate = count / secs
print(f"| measure | value |\n|---|---|")
print(f"| idle connections | {n} |")
print(f"| proxy RSS before / after | {before} KiB / {after} KiB |")
print(f"| RSS per idle connection | {per/1024:.1f} KiB (target ≤ 16 KiB) |")
print(f"| round trips/s through the proxy (one client, MOCK $default) | {proxy_rate:.0f} |")
print(f"| round trips/s direct TCP echo (baseline) | {direct_rate:.0f} |")
PY
mkdir -p "$root/bench/results"
out="$root/bench/results/websocket-$(date +%Y%m%d).md"
{ echo "# WebSocket bench $(date -u +%FT%TZ), $n connections, ${secs}s"; echo; cat "$work/result.md"; } > "$out"
cat "$out"
