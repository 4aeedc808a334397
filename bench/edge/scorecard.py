#!/usr/bin/env python3
"""Edge scorecard: hostile-client cases against several proxies on 127.0.0.1, one table.

Run by bench/edge-scorecard.sh, which starts the proxies; this script runs the recording
backend itself. Every case talks raw bytes over real sockets (no HTTP library smooths
anything over), and judges the proxy by what it answered and by what reached the backend.

    scorecard.py --backend-port P --proxy NAME=H1PORT[,H2PORT][,PID] ... --out FILE

A verdict is `clean`, `FAIL: why`, or `n/a: why` (the proxy has no such feature).
"""

import argparse
import http.server
import json
import os
import socket
import struct
import threading
import time
import urllib.parse

HOST = "edge.test"
TIMEOUT_S = 5.0  # every proxy is configured with 5 s head/body/idle timeouts
GRACE_S = 4.0  # slack for timers and a loaded machine


# ---------------------------------------------------------------- the recording backend

class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.seen = []

    def add(self, method, path, headers):
        with self.lock:
            self.seen.append({"method": method, "path": path, "headers": headers})

    def mark(self):
        with self.lock:
            return len(self.seen)

    def since(self, mark):
        with self.lock:
            return list(self.seen[mark:])


RECORDER = Recorder()
BIG = b"x" * (8 * 1024 * 1024)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_one(self):
        RECORDER.add(self.command, self.path, [(k.lower(), v) for k, v in self.headers.items()])
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = BIG if self.path.startswith("/public/big") else b"ok"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.send_header("content-type", "text/plain")
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except OSError:
                pass

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_one


def start_backend(port):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------- raw HTTP/1.1 helpers

def connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def exchange(port, raw, wait=3.0):
    """Sends raw bytes, reads until the peer closes or `wait` passes; returns the bytes."""
    s = connect(port)
    try:
        s.sendall(raw)
        s.settimeout(0.3)
        out = b""
        end = time.time() + wait
        while time.time() < end:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                if out and b"\r\n\r\n" in out and len(out) > 12:
                    # One answer is in; give a smuggled second answer a moment to appear.
                    end = min(end, time.time() + 0.5)
                continue
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def statuses(raw):
    """Status codes of every HTTP/1.1 response head found in `raw`."""
    codes = []
    for part in raw.split(b"HTTP/1.")[1:]:
        try:
            codes.append(int(part[2:5]))
        except ValueError:
            pass
    return codes


def ok_request(port, path="/public/ok", extra=b""):
    return (f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n").encode() + extra + b"Connection: close\r\n\r\n"


def responsive(port):
    try:
        return 200 in statuses(exchange(port, ok_request(port), wait=3.0))
    except OSError:
        return False


def closed_within(port, send, limit_s):
    """Opens a connection, runs `send(sock)` (which may keep writing), and measures how long
    until the proxy closes it. Returns the seconds, or None if still open at `limit_s`."""
    s = connect(port, timeout=limit_s + 5)
    start = time.time()
    stop = threading.Event()
    writer = threading.Thread(target=send, args=(s, stop), daemon=True)
    writer.start()
    s.settimeout(0.5)
    try:
        while time.time() - start < limit_s:
            try:
                chunk = s.recv(65536)
                if not chunk:
                    return time.time() - start
            except socket.timeout:
                continue
            except OSError:
                return time.time() - start
        return None
    finally:
        stop.set()
        s.close()


# ---------------------------------------------------------------- raw HTTP/2 helpers

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def settings(**values):
    ids = {"initial_window": 4, "max_frame": 5, "enable_push": 2}
    payload = b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items())
    return frame(4, 0, 0, payload)


def hpack_literal(name, value):
    """A literal header field without indexing, new name, no Huffman."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def request_headers(path):
    return (b"\x82\x86"  # :method GET, :scheme http
            + b"\x04" + bytes([len(path)]) + path.encode()  # :path, literal, indexed name 4
            + b"\x01" + bytes([len(HOST)]) + HOST.encode())  # :authority, indexed name 1


def h2_open(port, extra_settings=b""):
    s = connect(port)
    s.sendall(PREFACE + (extra_settings or settings(enable_push=0)))
    return s


def h2_goaway_or_closed(s, wait):
    """Reads frames for `wait` seconds; True if the server sent GOAWAY or closed."""
    s.settimeout(0.3)
    buf = b""
    end = time.time() + wait
    while time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return True
        if not chunk:
            return True
        buf += chunk
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            if buf[3] == 7:
                return True
            buf = buf[9 + length:]
    return False


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- the cases

def escaped(path):
    """Whether a path the backend received is outside /public/ once decoded and normalized."""
    decoded = urllib.parse.unquote(path.split("?")[0], errors="replace").replace("\\", "/")
    parts = []
    for seg in decoded.split("/"):
        if seg == "..":
            if parts:
                parts.pop()
        elif seg not in ("", "."):
            parts.append(seg)
    return not parts or parts[0] != "public"


def smuggle(body_headers, body):
    def case(p):
        mark = RECORDER.mark()
        raw = (f"POST /public/a HTTP/1.1\r\nHost: {HOST}\r\n").encode() + body_headers + b"\r\n" + body
        got = exchange(p.h1, raw, wait=3.0)
        seen = RECORDER.since(mark)
        smuggled = [r for r in seen if "admin" in r["path"]]
        if smuggled:
            return f"FAIL: backend got a smuggled {smuggled[0]['method']} {smuggled[0]['path']}"
        codes = statuses(got)
        if len(codes) > 1:
            return f"FAIL: {len(codes)} answers to one request ({codes})"
        if codes and codes[0] < 400 and seen:
            return f"FAIL: ambiguous request forwarded ({codes[0]})"
        return "clean"
    return case


SMUGGLED = b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n"


def path_case(path):
    def case(p):
        mark = RECORDER.mark()
        exchange(p.h1, ok_request(p.h1, path), wait=2.0)
        bad = [r["path"] for r in RECORDER.since(mark) if escaped(r["path"])]
        return f"FAIL: backend got {bad[0]!r}" if bad else "clean"
    return case


def header_case(extra, judge):
    def case(p):
        mark = RECORDER.mark()
        exchange(p.h1, ok_request(p.h1, "/public/h", extra), wait=2.0)
        seen = RECORDER.since(mark)
        if not seen:
            return "clean"
        return judge(p, dict(seen[0]["headers"]), seen[0]["headers"])
    return case


def judge_xff(p, h, _all):
    xff = h.get("x-forwarded-for", "")
    return f"FAIL: backend trusts X-Forwarded-For {xff!r}" if "6.6.6.6" in xff else "clean"


def judge_underscore(p, h, _all):
    hit = [k for k in h if "_" in k]
    return f"FAIL: forwarded {hit[0]}" if hit else "clean"


def judge_connection_nominated(p, h, _all):
    return "clean" if "x-forwarded-for" in h else "FAIL: client removed the gateway's X-Forwarded-For"


def judge_request_id(p, h, _all):
    rid = h.get("x-request-id")
    if rid is None:
        return "n/a: sets no request id"
    return "FAIL: forged x-request-id forwarded" if rid == "forged-id" else "clean"


def slowloris(p):
    def send(s, stop):
        try:
            s.sendall(f"GET /public/slow HTTP/1.1\r\nHost: {HOST}\r\n".encode())
            i = 0
            while not stop.is_set():
                s.sendall(b"X-Drip-%d: a\r\n" % i)
                i += 1
                time.sleep(1.0)
        except OSError:
            pass
    took = closed_within(p.h1, send, TIMEOUT_S + GRACE_S + 2)
    return "clean" if took is not None else f"FAIL: open after {TIMEOUT_S + GRACE_S + 2:.0f} s"


def idle_tcp(p):
    took = closed_within(p.h1, lambda s, stop: None, TIMEOUT_S + GRACE_S + 2)
    return "clean" if took is not None else f"FAIL: open after {TIMEOUT_S + GRACE_S + 2:.0f} s"


def slow_body(p):
    def send(s, stop):
        try:
            s.sendall(f"POST /public/body HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100000\r\n\r\n".encode())
            while not stop.is_set():
                s.sendall(b"a")
                time.sleep(6.0)  # slower than the body idle timeout
        except OSError:
            pass
    took = closed_within(p.h1, send, 30.0)
    return "clean" if took is not None else "FAIL: open after 30 s"


def idle_h2(p):
    if not p.h2:
        return "n/a: no h2c listener"
    s = h2_open(p.h2)
    start = time.time()
    try:
        s.sendall(frame(4, 1, 0))  # ack their settings, whatever they were
        limit = 30.0
        while time.time() - start < limit:
            try:
                s.sendall(frame(6, 0, 0, b"12345678"))  # PING: traffic, but no stream
            except OSError:
                return "clean"
            if h2_goaway_or_closed(s, 1.0):
                return "clean"
        return "FAIL: open after 30 s of PINGs and no stream"
    finally:
        s.close()


def h2_flood(build, check_rss=False, count=20000):
    def case(p):
        if not p.h2:
            return "n/a: no h2c listener"
        before = rss_kib(p.pid) if p.pid else None
        s = h2_open(p.h2, settings(initial_window=0) if check_rss else b"")
        cut = False
        try:
            for i in range(count):
                try:
                    s.sendall(build(i))
                except OSError:
                    cut = True
                    break
            stopped = cut or h2_goaway_or_closed(s, 2.0)
            after = rss_kib(p.pid) if p.pid else None
        finally:
            s.close()
        if not responsive(p.h1):
            return "FAIL: not answering afterwards"
        if check_rss and before and after and after - before > 64 * 1024:
            return f"FAIL: RSS grew {(after - before) // 1024} MiB"
        return "clean" + ("" if stopped else " (kept serving)")
    return case


def rapid_reset(i):
    stream = 2 * i + 1
    return frame(1, 0x5, stream, request_headers("/public/rr")) + frame(3, 0, stream, struct.pack(">I", 8))


def continuation_flood():
    sent = {"first": True}

    def build(i):
        if sent["first"]:
            sent["first"] = False
            return frame(1, 0x1, 1, request_headers("/public/cf"))  # END_STREAM, no END_HEADERS
        return frame(9, 0, 1, hpack_literal("x-c%d" % (i % 100), "a" * 100))
    return build


def zero_window(i):
    stream = 2 * i + 1
    return frame(1, 0x5, stream, request_headers("/public/big"))


CASES = [
    ("smuggling", "CL.TE (Content-Length and chunked)", smuggle(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", SMUGGLED)),
    ("smuggling", "TE.CL (chunked, then a short Content-Length)", smuggle(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", SMUGGLED)),
    ("smuggling", "obfuscated TE (xchunked)", smuggle(b"Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n", SMUGGLED)),
    ("smuggling", "TE with a space before the colon", smuggle(b"Transfer-Encoding : chunked\r\nContent-Length: 4\r\n", SMUGGLED)),
    ("smuggling", "two different Content-Lengths", smuggle(b"Content-Length: 4\r\nContent-Length: 40\r\n", SMUGGLED)),
    ("smuggling", "malformed chunk size", smuggle(b"Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n")),
    ("path", "/public/../admin", path_case("/public/../admin")),
    ("path", "/public/%2e%2e/admin", path_case("/public/%2e%2e/admin")),
    ("path", "/public/..%2fadmin", path_case("/public/..%2fadmin")),
    ("path", "/public/..%5cadmin", path_case("/public/..%5cadmin")),
    ("path", "/public/%c0%ae%c0%ae/admin (overlong UTF-8)", path_case("/public/%c0%ae%c0%ae/admin")),
    ("path", "/public;/../admin", path_case("/public;/../admin")),
    ("headers", "client X-Forwarded-For", header_case(b"X-Forwarded-For: 6.6.6.6\r\n", judge_xff)),
    ("headers", "X_Forwarded_For (underscore)", header_case(b"X_Forwarded_For: 6.6.6.6\r\n", judge_underscore)),
    ("headers", "Connection: X-Forwarded-For", header_case(b"Connection: X-Forwarded-For\r\n", judge_connection_nominated)),
    ("headers", "forged X-Request-Id", header_case(b"X-Request-Id: forged-id\r\n", judge_request_id)),
    ("slow", "slowloris (a header line a second)", slowloris),
    ("slow", "idle TCP connection", idle_tcp),
    ("slow", "slow body (a byte every 6 s)", slow_body),
    ("slow", "idle HTTP/2 connection sending PINGs", idle_h2),
    ("http2", "rapid reset (20,000 streams)", h2_flood(rapid_reset)),
    ("http2", "CONTINUATION flood", h2_flood(continuation_flood())),
    ("http2", "SETTINGS flood", h2_flood(lambda i: settings(initial_window=65535))),
    ("http2", "PING flood", h2_flood(lambda i: frame(6, 0, 0, b"12345678"))),
    ("http2", "zero window, 8 MiB answers", h2_flood(zero_window, check_rss=True, count=100)),
]


class Proxy:
    def __init__(self, spec):
        name, ports = spec.split("=", 1)
        parts = ports.split(",")
        self.name = name
        self.h1 = int(parts[0])
        self.h2 = int(parts[1]) if len(parts) > 1 and parts[1] else None
        self.pid = int(parts[2]) if len(parts) > 2 and parts[2] else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend-port", type=int, required=True)
    ap.add_argument("--proxy", action="append", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    start_backend(args.backend_port)
    proxies = [Proxy(s) for s in args.proxy]
    for p in proxies:
        if not responsive(p.h1):
            raise SystemExit(f"{p.name} does not answer on {p.h1}")
    rows = []
    for group, name, case in CASES:
        if args.only and args.only not in name:
            continue
        verdicts = []
        for p in proxies:
            try:
                verdict = case(p)
            except Exception as e:  # a case that crashes is a finding about the case
                verdict = f"error: {type(e).__name__}: {e}"
            verdicts.append(verdict)
            print(f"{group:9} {name:45} {p.name:9} {verdict}", flush=True)
        rows.append((group, name, verdicts))
    lines = ["| group | case | " + " | ".join(p.name for p in proxies) + " |",
             "|---|---|" + "---|" * len(proxies)]
    for group, name, verdicts in rows:
        lines.append(f"| {group} | {name} | " + " | ".join(verdicts) + " |")
    table = "\n".join(lines)
    print()
    print(table)
    with open(args.out, "w") as f:
        f.write(table + "\n")
    causeway = [v for _, _, vs in rows for p, v in zip(proxies, vs) if p.name == "causeway"]
    dirty = [v for v in causeway if not (v.startswith("clean") or v.startswith("n/a"))]
    print(f"\ncauseway: {len(causeway) - len(dirty)} clean, {len(dirty)} not clean")
    raise SystemExit(1 if dirty else 0)


if __name__ == "__main__":
    main()
