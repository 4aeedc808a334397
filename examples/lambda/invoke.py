"""A tiny stand-in for the AWS Lambda Runtime Interface Emulator: POST an event to
/2015-03-31/functions/function/invocations, get the handler's result back (or an error with
X-Amz-Function-Error, as the emulator does). In a cluster, use the function's own container image.

    python3 invoke.py [PORT] [MODULE.FUNCTION]    (defaults: 9000 handler.handler)

MODULE.FUNCTION names the handler as a Lambda function's handler setting does; the module is
looked up next to this file and on PYTHONPATH. PORT 0 takes a free port. Once it accepts
invocations it prints "listening role=function addr=127.0.0.1:PORT" on stderr (the shape of the
causeway binaries' `listening` event, for scripts and tests to read).
"""
import importlib
import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/2015-03-31/functions/function/invocations"
TIMEOUT_MS = 30_000


class Context:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, function_name: str):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.memory_limit_in_mb = "128"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + TIMEOUT_MS / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load(name: str):
    module, _, function = name.rpartition(".")
    return getattr(importlib.import_module(module), function)


class Invoke(BaseHTTPRequestHandler):
    handler = None
    function_name = "function"

    def log_message(self, *args):  # quiet, like the emulator's data path
        pass

    def do_POST(self):
        if self.path != PATH:
            self.send_response(404)
            self.end_headers()
            return
        event = json.loads(self.rfile.read(int(self.headers["content-length"])))
        try:
            body = json.dumps(type(self).handler(event, Context(self.function_name))).encode()
            self.send_response(200)
        except Exception as e:  # noqa: BLE001 - reported to the gateway like the emulator does
            body = json.dumps({"errorMessage": str(e), "errorType": type(e).__name__}).encode()
            self.send_response(200)
            self.send_header("X-Amz-Function-Error", "Unhandled")
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    name = sys.argv[2] if len(sys.argv) > 2 else "handler.handler"
    Invoke.handler = staticmethod(load(name))
    Invoke.function_name = name.rpartition(".")[0]
    server = ThreadingHTTPServer(("127.0.0.1", port), Invoke)
    print(
        f"listening role=function addr=127.0.0.1:{server.server_address[1]}",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()
