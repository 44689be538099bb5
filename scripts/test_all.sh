#!/usr/bin/env bash
# `make test`: the main suite (tests/run_tests.sh), then the reliability
# suite (sanitizers, valgrind, stress, fuzz, real programs), then one
# closing line that counts both.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
bash scripts/need.sh gcc:gcc make:make python3:python3 sort:coreutils awk:gawk
t0=$SECONDS
log=$(mktemp)
bash tests/run_tests.sh "$BUILD" 2>&1 | tee "$log"
main=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
if [ "${SKIP_RELIABILITY:-0}" != 1 ]; then
  make --no-print-directory test-reliability BUILD="$BUILD" 2>&1 | tee "$log"
  rel=$(grep -E '^reliability: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
else
  rel="reliability: 0 passed, 0 failed"
fi
rm -f "$log"
p1=$(echo "$main" | awk '{print $1}'); f1=$(echo "$main" | awk '{print $3}')
p2=$(echo "$rel" | awk '{print $2}'); f2=$(echo "$rel" | awk '{print $4}')
[ -n "$p1" ] || { p1=0; f1=1; echo "test: the main suite printed no summary"; }
[ -n "$p2" ] || { p2=0; f2=1; echo "test: the reliability suite printed no summary"; }
# the README's options table is generated from src/options.c: it must match
if bash scripts/options_table.sh --check; then p1=$((p1 + 1)); echo "PASS docs/options_table";
else f1=$((f1 + 1)); echo "FAIL docs/options_table"; fi
echo "test: main suite $main; $rel; $((SECONDS - t0))s in all"
echo "$((p1 + p2)) passed, $((f1 + f2)) failed"
[ $((f1 + f2)) -eq 0 ]
