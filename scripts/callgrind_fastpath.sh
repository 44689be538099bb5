#!/usr/bin/env bash
# Fast-path cost: instructions per malloc+free pair, counted by callgrind.
#
#   scripts/callgrind_fastpath.sh [--csv]
#
# For each allocator and size, runs build/bench/fastpath under
# valgrind --tool=callgrind twice, with PAIRS pairs and with 0, and prints
# (Ir(PAIRS) - Ir(0)) / PAIRS.  Start-up and warm-up cancel out; the loop's own
# ~5 instructions per pair are included for every allocator alike.  Callgrind
# does not replace malloc (only memcheck-style tools do), so the LD_PRELOADed
# allocator is what runs; the workload's dladdr line proves it, and a
# mismatch stops the script (exit 2).
# Env: ALLOCATORS, SIZES (default 16,256,4096,16384,65536), PAIRS (200000),
# BUILD, HAKMEM_* (hakmem only), BENCH_VARIANT_<LABEL> for hakmem:LABEL.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ALLOCATORS=${ALLOCATORS:-hakmem,glibc,mimalloc,jemalloc,tcmalloc}
SIZES=${SIZES:-16,256,4096,16384,65536}
PAIRS=${PAIRS:-200000}
CSV=0
[ "${1:-}" = --csv ] && CSV=1
# shellcheck source=bench/tools/allocators.sh
. bench/tools/allocators.sh
command -v valgrind >/dev/null || { echo "callgrind_fastpath: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
BIN=$BUILD/bench/fastpath
[ -x "$BIN" ] || { echo "callgrind_fastpath: $BIN missing: run 'make benches'" >&2; exit 1; }

# ir ALLOC SIZE N -> "instructions malloc_so"
ir() {
  local a=$1 so expect out
  so=$(alloc_so "$a"); expect=$(alloc_expect "$a")
  local -a envs=(env -u LD_PRELOAD)
  if [[ $a == hakmem* ]]; then
    if [[ $a == *:* ]]; then local var="BENCH_VARIANT_${a#*:}"; local -a extra; read -r -a extra <<<"${!var:-}"; envs+=("${extra[@]}"); fi
  else
    local v; for v in $(compgen -e | grep '^HAKMEM_' || true); do envs+=(-u "$v"); done
  fi
  [ -n "$so" ] && envs+=("LD_PRELOAD=$so")
  out=$("${envs[@]}" BENCH_EXPECT_MALLOC="$expect" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$BIN" "$2" "$3" 2>&1) || { echo "$out" | tail -5 >&2; echo "FAIL -"; return 0; }
  local mso n
  mso=$(sed -n 's/.* malloc_so=\([^ ]*\).*/\1/p' <<<"$out")
  if [[ $mso != *"$expect"* ]]; then
    echo "callgrind_fastpath: FATAL: allocator '$a' but malloc came from '${mso:-?}'; the preload did not take effect" >&2
    exit 2
  fi
  n=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' <<<"$out")
  echo "${n:-FAIL} $mso"
}

IFS=, read -r -a AS <<<"$ALLOCATORS"
IFS=, read -r -a SZ <<<"$SIZES"
[ "$CSV" = 1 ] || printf '%-10s' alloc; [ "$CSV" = 1 ] || { printf ' %10s' "${SZ[@]}"; echo "   (Ir per malloc+free pair)"; }
for a in "${AS[@]}"; do
  so=$(alloc_so "$a")
  if [ -n "$so" ] && [ ! -f "$so" ]; then echo "callgrind_fastpath: skipping $a ($so missing)" >&2; continue; fi
  [ "$CSV" = 1 ] || printf '%-10s' "$a"
  for s in "${SZ[@]}"; do
    read -r base mso < <(ir "$a" "$s" 0)
    read -r full _ < <(ir "$a" "$s" "$PAIRS")
    if [ "$base" = FAIL ] || [ "$full" = FAIL ]; then
      per=""; status=fail
    else
      per=$(awk -v a="$full" -v b="$base" -v n="$PAIRS" 'BEGIN{printf "%.1f", (a-b)/n}'); status=ok
    fi
    if [ "$CSV" = 1 ]; then
      echo "0,1,fastpath_$s,1,$a,$per,Ir/pair,lower,0,,,$status,$mso,\"callgrind $BIN $s $PAIRS minus $BIN $s 0\""
    else
      printf ' %10s' "${per:-FAIL}"
    fi
  done
  [ "$CSV" = 1 ] || echo
done
