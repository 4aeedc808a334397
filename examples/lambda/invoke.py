"""A tiny stand-in for the AWS Lambda Runtime Interface Emulator: POST an event to
/2015-03-31/functions/function/invocations, get the handler's result back (or an error with
X-Amz-Function-Error, as the emulator does). In a cluster, use the function's own container image.

    python3 invoke.py [PORT]    (default 9000)
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from handler import handler

PATH = "/2015-03-31/functions/function/invocations"


class Context:
    function_name = "orders"
    aws_request_id = "local"


class Invoke(BaseHTTPRequestHandler):
    def do_POST(self):
        if self.path != PATH:
            self.send_response(404)
            self.end_headers()
            return
        event = json.loads(self.rfile.read(int(self.headers["content-length"])))
        try:
            body = json.dumps(handler(event, Context())).encode()
            self.send_response(200)
        except Exception as e:  # noqa: BLE001 - reported to the gateway like the emulator does
            body = json.dumps({"errorMessage": str(e), "errorType": type(e).__name__}).encode()
            self.send_response(200)
            self.send_header("X-Amz-Function-Error", "Unhandled")
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
ThreadingHTTPServer(("127.0.0.1", port), Invoke).serve_forever()
