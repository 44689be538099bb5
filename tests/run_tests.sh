#!/usr/bin/env bash
# Runs every test: each folder tests/<behaviour>/ is one behaviour.
#  - a folder with run.sh runs that script (env BUILD, ROOT set; exit 0 = pass);
#  - otherwise each binary built from its *.c under $BUILD/tests/<behaviour>/ runs.
# A folder with a file named MANUAL is skipped (it has its own make target).
# TEST_FILTER=regex runs only matching test names. Prints "N passed, M failed".
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && mkdir -p "$BUILD" && cd "$BUILD" && pwd)
export BUILD ROOT
TIMEOUT=${TEST_TIMEOUT:-300}
pass=0; fail=0; failed=()
run_one() {  # name, command...
  local name=$1; shift
  if [ -n "${TEST_FILTER:-}" ] && ! [[ $name =~ $TEST_FILTER ]]; then return; fi
  local log; log=$(mktemp)
  local t0=$SECONDS
  if timeout "$TIMEOUT" "$@" >"$log" 2>&1; then
    pass=$((pass+1)); echo "PASS $name ($((SECONDS-t0))s)"
  else
    local rc=$?
    fail=$((fail+1)); failed+=("$name"); echo "FAIL $name (rc=$rc, $((SECONDS-t0))s)"
    tail -n 30 "$log" | sed 's/^/    | /'
  fi
  rm -f "$log"
}
for dir in "$ROOT"/tests/*/; do
  b=$(basename "$dir")
  [ -e "$dir/MANUAL" ] && continue
  if [ -f "$dir/run.sh" ]; then
    run_one "$b" bash "$dir/run.sh"
  else
    for src in "$dir"/*.c; do
      [ -e "$src" ] || continue
      n=$(basename "$src" .c)
      exe="$BUILD/tests/$b/$n"
      if [ -x "$exe" ]; then run_one "$b/$n" "$exe"
      else fail=$((fail+1)); failed+=("$b/$n"); echo "FAIL $b/$n (not built: $exe)"; fi
    done
  fi
done
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
