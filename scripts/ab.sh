#!/usr/bin/env bash
# A/B test of two hakmem configurations, interleaved run by run.
#
#   scripts/ab.sh 'ENV_A' 'ENV_B'
#   e.g. scripts/ab.sh 'HAKMEM_POOL_REFILL_BATCH=1' 'HAKMEM_POOL_REFILL_BATCH=2'
#
# ENV_A / ENV_B are space-separated VAR=value lists applied to hakmem only.
# Both sides use the same build; the runs alternate A, B (order rotating),
# REPEAT times (default 5), and the table gives the medians and B/A
# (>1: B faster; for lower-is-better rows A/B).
# Two builds: BENCH_SO_A=/path/a/libhakmem.so BENCH_SO_B=... (e.g. a
# `make CENTRAL_MUTEX=1 BUILD=build-mutex` library against build/), with
# ENV_A / ENV_B then as plain as 'HAKMEM_STATS=0'.
# Env: RUNTIME (default 1), THREADS, WORKLOADS (default the Mid/Tiny set
# below), REPEAT, BUILD, OUT (default bench/results/ab).  Also runs the
# fastpath callgrind rows if WORKLOADS includes fastpath.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 'ENV_A' 'ENV_B'" >&2; exit 2; }
for kv in $1 $2; do
  [[ $kv == *=* ]] || { echo "ab.sh: '$kv' is not VAR=value" >&2; exit 2; }
done
export BENCH_VARIANT_A=$1 BENCH_VARIANT_B=$2
export ALLOCATORS=hakmem:A,hakmem:B SUBJECT=hakmem:B
export REPEAT=${REPEAT:-5} RUNTIME=${RUNTIME:-1}
export WORKLOADS=${WORKLOADS:-larson_mid,mid,larson_tiny,tiny,prodcons_mid,large}
export OUT=${OUT:-bench/results/ab}
echo "ab.sh: A = $1"
echo "ab.sh: B = $2"
exec bash scripts/run_bench_suite.sh
