#!/usr/bin/env python3
"""A demo authorizer function for the request-authorizer example, on 127.0.0.1:9090.

REQUEST events (simple answers): x-token `let-me-in` is allowed, anything else denied.
TOKEN events (IAM answers): `Bearer admin-token` gets a policy allowing every route of the
stage; anything else a Deny.
"""
import json
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        event = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if event.get("type") == "TOKEN":
            allowed = event.get("authorizationToken") == "Bearer admin-token"
            stage_arn = "/".join(event["methodArn"].split("/")[:2])
            answer = {
                "principalId": "admin" if allowed else "anonymous",
                "policyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Action": "execute-api:Invoke",
                        "Effect": "Allow" if allowed else "Deny",
                        "Resource": stage_arn + "/*",
                    }],
                },
            }
        else:
            allowed = event.get("identitySource") == ["let-me-in"]
            answer = {"isAuthorized": allowed, "context": {"user": "demo-user"}}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("127.0.0.1", 9090), Handler).serve_forever()
