#!/usr/bin/env bash
# Runs the pet store example on this machine, no cluster needed:
#   the example backend on 127.0.0.1:9080, and Causeway in standalone mode on 127.0.0.1:8080
#   (admin on 127.0.0.1:9901). Edit the YAML files while it runs: Causeway recompiles.
# Then:  curl http://petstore.default.localhost:8080/prod/pets
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "building causeway and the example backend (first time: a few minutes)..." >&2
cargo build --quiet -p causeway -p causeway-example-backend
target/debug/petstore-backend --listen 127.0.0.1:9080 &
backend=$!
trap 'kill $backend 2>/dev/null || true' EXIT INT TERM
cat >&2 <<'MSG'

Try:
  curl http://petstore.default.localhost:8080/prod/pets        # proxied, stage variable version=v1
  curl http://petstore.default.localhost:8080/beta/pets/2      # proxied, version=v2
  curl http://petstore.default.localhost:8080/prod/health      # MOCK route
  curl http://127.0.0.1:9901/metrics                           # Prometheus metrics

MSG
target/debug/causeway standalone -f examples/petstore "$@"
