#!/usr/bin/env bash
# Runs the Lambda-style chat on a laptop: handler.py behind ../../lambda/invoke.py on
# 127.0.0.1:9002, and Causeway on 127.0.0.1:8080 serving this directory. Then, in another
# terminal (see api.yaml):
#
#   websocat -H 'Sec-WebSocket-Protocol: chat.v1' ws://chat-fn.default.localhost:8080/prod
set -euo pipefail
cd "$(dirname "$0")"
if ! python3 -c 'import aws_lambda_powertools.utilities.parser' 2>/dev/null; then
  echo "run.sh: Powertools for AWS Lambda (with its parser) is missing: python3 -m pip install -r $(pwd)/requirements.txt" >&2
  exit 1
fi
PYTHONPATH="$(pwd)" python3 ../../lambda/invoke.py 9002 handler.handler & fn=$!
trap 'kill $fn' EXIT
cargo run -q -p causeway -- standalone -f . --listen 127.0.0.1:8080
