#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a set time and writes what happened to
# bench/results/fuzz-<time>.md (executions, corpus size, findings).
#
#   bench/fuzz.sh                 # 60 s per target
#   FUZZ_SECONDS=600 bench/fuzz.sh
#   FUZZ_SECONDS=5 FUZZ_REPORT=0 bench/fuzz.sh   # a few seconds, no report
#
# .ci/run does not build these (a libFuzzer build takes most of an hour on 2 cores): it runs
# the same properties (fuzz/src/lib.rs) over each corpus plus seconds of mutations on stable
# (tests/tests/fuzz_corpus.rs).
#
# Needs cargo-fuzz (`cargo install --locked cargo-fuzz`). Runs on the project's pinned stable
# toolchain without sanitizers (`--sanitizer none`; RUSTC_BOOTSTRAP lets stable accept the
# flags cargo-fuzz passes): libFuzzer's coverage guidance and every assertion in the targets
# still apply, memory errors are not what safe Rust needs a sanitizer for.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
report="${FUZZ_REPORT:-1}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "error: cargo-fuzz is missing; install it with: cargo install --locked cargo-fuzz" >&2
  exit 1
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target/fuzz}"
targets=(path_routing request_head compile_yaml lambda_answer sigv4 openapi_import)
stamp="$(date -u +%Y-%m-%dT%H-%MZ)"
out="bench/results/fuzz-$stamp.md"
rows=()
failed=0
echo "==> cargo fuzz build (release, no sanitizer)"
(cd fuzz && cargo fuzz build --sanitizer none --release)
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  # A scratch copy of the corpus: new inputs found in a short run are not committed.
  work="$(mktemp -d)"
  cp -r "fuzz/corpus/$t/." "$work/"
  log="$(mktemp)"
  echo "==> fuzz $t for ${seconds}s"
  if (cd fuzz && cargo fuzz run --sanitizer none --release "$t" "$work" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1) >"$log" 2>&1; then
    result="no finding"
  else
    result="FINDING (see fuzz/artifacts/$t)"
    failed=1
    tail -40 "$log" >&2
  fi
  execs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)"
  corpus="$(find "$work" -type f | wc -l)"
  rows+=("| $t | ${seconds} | ${execs:-?} | $corpus | $result |")
  echo "    ${execs:-?} executions, corpus $corpus, $result"
  rm -rf "$work" "$log"
done
if [ "$report" = 1 ]; then
  {
    echo "# Fuzz run $stamp"
    echo
    echo "Command: \`FUZZ_SECONDS=$seconds bench/fuzz.sh\` (cargo-fuzz, libFuzzer, --sanitizer none, release)"
    echo "Machine: $(nproc) cores, load while running: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| target | seconds | executions | corpus after | result |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
  } >"$out"
  echo "wrote $out"
fi
exit "$failed"
