#!/usr/bin/env python3
"""Makes the changes of bench/propagation.sh and times each until every proxy serves it.

One process for the whole row, so that neither the change nor the polling pays for starting a
process or a TLS handshake: the PATCH goes over one kept-alive HTTPS connection to the API
server (kube mode), or the probe file is written and renamed (file mode); then each proxy is
asked for the probe route over its own kept-alive connection, by its own thread, every 2 ms,
until it answers with the new body (so a proxy slow to answer, such as the one under load,
does not delay seeing the others). A change's time runs from just before its PATCH is sent (or its file
renamed) to the first answer with the new body from the last proxy to serve it.

Writes one line per change to --times (milliseconds) and to --log:
`change K t0 EPOCH_MS written MS seen MS_P1 MS_P2 ...` (when the PATCH was answered, or the
file renamed, and when each proxy first served the change, in ms after t0).
"""

import argparse
import http.client
import json
import os
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit

ROUTE_DOC = """---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {{name: probe, namespace: bench}}
spec:
  apiRef: {{name: bench}}
  routeKey: GET /probe
  integration: {{type: MOCK, mock: {{statusCode: 200, body: "{body}"}}}}
"""


class Proxy:
    def __init__(self, port, host):
        self.port, self.host, self.conn = port, host, None

    def body(self):
        """The probe route's body, or None if the proxy did not answer."""
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self.conn.request("GET", "/prod/probe", headers={"host": self.host})
            return self.conn.getresponse().read().decode(errors="replace")
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None


class ApiServer:
    def __init__(self, url, token, cacert):
        parts = urlsplit(url)
        self.path, self.token = parts.path, token
        context = ssl.create_default_context(cafile=cacert)
        self.connect = lambda: http.client.HTTPSConnection(
            parts.hostname, parts.port, context=context, timeout=30
        )
        self.conn = self.connect()
        self.request("GET", None)  # the TLS handshake, before any change is timed

    def request(self, method, body):
        headers = {"authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["content-type"] = "application/merge-patch+json"
        for attempt in (0, 1):
            try:
                self.conn.request(method, self.path, body=body, headers=headers)
                response = self.conn.getresponse()
                text = response.read()
                if response.status >= 300:
                    sys.exit(f"{method} {self.path}: {response.status} {text[:300]!r}")
                return
            except (OSError, http.client.HTTPException):
                self.conn.close()
                if attempt:
                    raise
                self.conn = self.connect()

    def patch(self, body):
        doc = {"spec": {"integration": {"mock": {"body": body}}}}
        self.request("PATCH", json.dumps(doc))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--changes", type=int, required=True)
    p.add_argument("--ports", required=True, help="proxy ports, comma-separated")
    p.add_argument("--host", required=True)
    p.add_argument("--times", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--file", help="file mode: the probe Route's file")
    p.add_argument("--url", help="kube mode: the probe Route's URL")
    p.add_argument("--token")
    p.add_argument("--cacert")
    a = p.parse_args()
    proxies = [Proxy(int(port), a.host) for port in a.ports.split(",")]
    api = ApiServer(a.url, a.token, a.cacert) if a.url else None
    with open(a.times, "w") as times, open(a.log, "a") as log:
        for k in range(1, a.changes + 1):
            body = f"v{k}"
            if api is not None:
                t0_wall, t0 = time.time(), time.monotonic()
                api.patch(body)
                written = time.monotonic() - t0
            else:
                tmp = a.file + ".tmp"
                with open(tmp, "w") as f:
                    f.write(ROUTE_DOC.format(body=body))
                t0_wall, t0 = time.time(), time.monotonic()
                os.rename(tmp, a.file)
                written = time.monotonic() - t0
            seen = [None] * len(proxies)

            def watch(i, proxy):
                while time.monotonic() - t0 < a.timeout:
                    if proxy.body() == body:
                        seen[i] = time.monotonic() - t0
                        return
                    time.sleep(0.002)

            threads = [threading.Thread(target=watch, args=p) for p in enumerate(proxies)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if None in seen:
                sys.exit(f"change {k} never arrived at every proxy (seen: {seen})")
            ms = [round(s * 1000) for s in seen]
            times.write(f"{max(ms)}\n")
            log.write(
                f"change {k} t0 {round(t0_wall * 1000)} written {round(written * 1000)} "
                f"seen {' '.join(map(str, ms))}\n"
            )
            log.flush()


if __name__ == "__main__":
    main()
