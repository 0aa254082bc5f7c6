#!/usr/bin/env bash
# Fuzzes everything Slipway parses from outside with libFuzzer + AddressSanitizer.
#   Fuzz/run.sh [SECONDS] [TARGET...]     default: 30 s each, every target (make test runs this)
#   Fuzz/run.sh 600 intake payload        the long mode
# Targets: signature intake form payload context config template (Fuzz/Sources/FuzzTargets.swift).
# The checked-in corpus (Fuzz/corpus/TARGET) seeds each run; new inputs go to .build-fuzz/corpus.
# A crash, a hang over 10 s, a broken property or more than 2 GB of memory fails the run; the
# input is kept in .build-fuzz/artifacts/ — reproduce with:
#   SLIPWAY_FUZZ_TARGET=TARGET .build-fuzz/debug/slipway-fuzz .build-fuzz/artifacts/crash-…
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(signature intake form payload context config template)

SLIPWAY_FUZZ=1 swift build --build-path .build-fuzz --product slipway-fuzz 2>&1 | grep -v "Cannot export local symbol" | tail -3
bin=.build-fuzz/debug/slipway-fuzz
mkdir -p .build-fuzz/artifacts
failed=()
for target in "${targets[@]}"; do
  [ -d "Fuzz/corpus/$target" ] || { echo "unknown fuzz target '$target' (no Fuzz/corpus/$target)" >&2; exit 2; }
  work=".build-fuzz/corpus/$target"; mkdir -p "$work"
  log=".build-fuzz/$target.log"
  printf 'fuzz %-10s %4ss ... ' "$target" "$seconds"
  if SLIPWAY_FUZZ_TARGET="$target" ASAN_OPTIONS=detect_leaks=0 SWIFT_BACKTRACE=enable=no "$bin" "$work" "Fuzz/corpus/$target" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 \
      -artifact_prefix=".build-fuzz/artifacts/$target-" -print_final_stats=1 > "$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    peak=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "ok: $runs inputs, peak RSS ${peak} MB, corpus $(ls "$work" | wc -l) files"
  else
    echo "FAILED (log: $log)"; tail -30 "$log" >&2; failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then echo "fuzzing found problems in: ${failed[*]}" >&2; exit 1; fi
