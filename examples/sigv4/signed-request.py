#!/usr/bin/env python3
"""Sends one SigV4-signed request to the sigv4 example (needs `pip install botocore`).

Usage: signed-request.py [port]   (default 8080, Causeway standalone's listener)
"""
import http.client
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
host = f"iam.default.localhost:{port}"
path = "/prod/orders?size=2"
body = b'{"item":"kibble"}'
request = AWSRequest(method="POST", url=f"http://{host}{path}", data=body,
                     headers={"content-type": "application/json"})
credentials = Credentials("AKIDCAUSEWAYDEMO", "causeway/demo/secret/key/not/for/production")
SigV4Auth(credentials, "execute-api", "us-east-1").add_auth(request)
# *.localhost names resolve to loopback; connect there directly and send the signed Host.
connection = http.client.HTTPConnection("127.0.0.1", port)
connection.request("POST", path, body=body, headers={"host": host, **dict(request.headers.items())})
response = connection.getresponse()
print(response.status, response.read().decode())
