#!/usr/bin/env bash
# Runs the Lambda example on a laptop: the handler behind invoke.py on 127.0.0.1:9000 and
# Causeway on 127.0.0.1:8080 serving this directory. Then, in another terminal:
#
#   curl -i -H 'x-customer: ada' http://shop.default.localhost:8080/prod/orders/7      # X-Cache: Miss
#   curl -i -H 'x-customer: ada' http://shop.default.localhost:8080/prod/orders/7      # X-Cache: Hit
#   curl -i -H 'x-customer: ada' -H 'content-type: application/json' \
#        -d '{"item":"tea","quantity":2}' http://shop.default.localhost:8080/prod/orders # 201
#   curl -i -H 'x-customer: ada' -H 'content-type: application/json' \
#        -d '{"item":"tea","quantity":0}' http://shop.default.localhost:8080/prod/orders # 400
set -euo pipefail
cd "$(dirname "$0")"
python3 invoke.py 9000 & fn=$!
trap 'kill $fn' EXIT
cargo run -q -p causeway -- standalone -f . --listen 127.0.0.1:8080
