#!/usr/bin/env bash
# Token-bucket accuracy of one real proxy (issue #5): closed-loop load at 3× a stage's rate for
# 30 s at 10, 100, 1,000 and 5,000 req/s from an in-process load generator (64 keep-alive
# connections, paced); asserts admitted ÷ (rate × seconds + burst) within [0.98, 1.00] and
# writes the table to bench/results/.
#
#   bench/throttle-accuracy.sh            # all four rates, 30 s each (about 2.5 min)
#   RATES=10,100 SECS=10 bench/throttle-accuracy.sh
#
# Not part of the test suite (the test is #[ignore]d).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
echo "building the release binary..." >&2
cargo build --release --quiet -p causeway
out="bench/results/throttle-accuracy-$(date -u +%Y-%m-%dT%H-%M-%SZ).md"
{
  echo "# Token-bucket accuracy, one proxy, 3× load"
  echo
  echo "$(date -u +%FT%TZ), $(nproc) cores, commit $(git rev-parse --short HEAD)."
  echo "Command: \`bench/throttle-accuracy.sh\` (RATES=${RATES:-10,100,1000,5000} SECS=${SECS:-30})"
  echo
} > "$out"
set +e
CAUSEWAY_BIN="$PWD/$TARGET/release/causeway" CAUSEWAY_ACCURACY_RATES=${RATES:-10,100,1000,5000} \
  CAUSEWAY_ACCURACY_SECS=${SECS:-30} \
  cargo test --release -q -p causeway-e2e --test throttle_accuracy -- --ignored --nocapture 2>&1 \
  | tee /dev/stderr | grep -E '^\||panicked|test result' >> "$out"
status=${PIPESTATUS[0]}
echo "results in $out" >&2
exit "$status"
