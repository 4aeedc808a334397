#!/usr/bin/env python3
"""The chat's backend: a plain HTTP service. Causeway POSTs each WebSocket event to it (headers
connectionId, eventType, routeKey); it keeps the open connection ids and pushes messages to
every client with a SigV4-signed POST to the gateway's @connections API.

    python3 chat_backend.py PORT GATEWAY_STAGE_URL   # e.g. 9090 http://chat.default.localhost:8080/prod
"""
import http.client
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY = "AKIDCAUSEWAYCHAT"
SECRET_KEY = "causeway/chat/demo/secret/not/for/production"
PORT, STAGE_URL = int(sys.argv[1]), sys.argv[2].rstrip("/")
connections = set()


def push(connection_id, data):
    url = f"{STAGE_URL}/@connections/{connection_id}"
    request = AWSRequest(method="POST", url=url, data=data)
    botocore.auth.SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "execute-api", "us-east-1").add_auth(request)
    parsed = urllib.parse.urlsplit(url)
    # The gateway runs on this machine: connect to loopback, name the host in the header
    # (`*.localhost` names do not resolve everywhere).
    connection = http.client.HTTPConnection("127.0.0.1", parsed.port or 80, timeout=5)
    headers = dict(request.headers.items())
    headers["Host"] = parsed.netloc
    connection.request("POST", parsed.path, body=data, headers=headers)
    status = connection.getresponse().status
    connection.close()
    if status == 410:  # gone: forget it
        connections.discard(connection_id)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        connection_id = self.headers.get("connectionId")
        event = self.headers.get("eventType")
        answer = b""
        if event == "CONNECT":
            connections.add(connection_id)
        elif event == "DISCONNECT":
            connections.discard(connection_id)
        elif self.path == "/sendmessage":
            message = json.loads(body or b"{}").get("message", "")
            for other in list(connections):
                try:
                    push(other, message.encode())
                except OSError as error:
                    print(f"push to {other} failed: {error}", file=sys.stderr)
        elif self.path == "/whoami":
            answer = json.dumps({"connectionId": connection_id}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
