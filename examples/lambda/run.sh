#!/usr/bin/env bash
# Runs the Lambda example on a laptop: the orders function (handler.py) behind invoke.py on
# 127.0.0.1:9000, the customers authorizer (authorizer.py) on 127.0.0.1:9001, both written with
# Powertools for AWS Lambda (Python), and Causeway on 127.0.0.1:8080 serving this directory.
# Then, in another terminal:
#
#   curl -i -H 'x-customer: ada' 'http://shop.default.localhost:8080/prod/orders/7?expand=items'  # 2.0, X-Cache: Miss
#   curl -i -H 'x-customer: ada' 'http://shop.default.localhost:8080/prod/orders/7?expand=items'  # X-Cache: Hit
#   curl -i -H 'x-customer: grace' -b 'theme=dark' http://shop.default.localhost:8080/prod/me     # cookies in and out
#   curl -i -H 'x-customer: ada' 'http://shop.default.localhost:8080/prod/orders?status=open&status=shipped'  # 1.0
#   curl -s -H 'x-customer: ada' http://shop.default.localhost:8080/prod/orders/7/label -o label.png       # binary
#   curl -i -H 'x-customer: ada' -H 'content-type: application/json' \
#        -d '{"item":"tea","quantity":2}' http://shop.default.localhost:8080/prod/orders # 201
#   curl -i -H 'x-customer: ada' -H 'content-type: application/json' \
#        -d '{"item":"tea","quantity":0}' http://shop.default.localhost:8080/prod/orders # 400
#   curl -i -H 'x-customer: eve' http://shop.default.localhost:8080/prod/me                # 403
set -euo pipefail
cd "$(dirname "$0")"
if ! python3 -c 'import aws_lambda_powertools' 2>/dev/null; then
  echo "run.sh: Powertools for AWS Lambda is missing: python3 -m pip install -r $(pwd)/requirements.txt" >&2
  exit 1
fi
python3 invoke.py 9000 handler.handler & fn=$!
python3 invoke.py 9001 authorizer.handler & authz=$!
trap 'kill $fn $authz' EXIT
cargo run -q -p causeway -- standalone -f . --listen 127.0.0.1:8080
