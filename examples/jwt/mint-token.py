#!/usr/bin/env python3
"""Mints a demo token for the jwt example: `mint-token.py [scope ...]` (needs pyjwt, cryptography)."""
import os
import sys
import time

import jwt

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "demo-signing-key.pem"), "rb") as f:
    key = f.read()
now = int(time.time())
claims = {
    "iss": "https://issuer.causeway.example",
    "aud": "pets-api",
    "sub": "user-42",
    "email": "user42@example.com",
    "scope": " ".join(sys.argv[1:]),
    "iat": now,
    "exp": now + 600,
}
print(jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "demo-1"}))
