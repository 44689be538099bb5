#!/usr/bin/env bash
# The learner on a load that changes phase (bench/phases), end to end:
#
#   scripts/learner_phases.sh
#
# 1. The headline run: bench/phases (PHASE_S seconds per phase, default 18,
#    ORDER default ABCA) under hakmem with HAKMEM_LEARN=1 and the learner's
#    defaults, logging to $OUT/phases-learn.csv (+ .phases).
# 2. The convergence table (scripts/learner_convergence.sh --md) of that log,
#    to $OUT/phases-convergence.md.
# 3. The chart: scripts/plot_learner.sh with the phase marks, to $CHART
#    (default docs/learner-phases.svg).
# 4. With REPEAT > 0 (default 3): REPEAT interleaved rounds of every variant
#    (VARIANTS, default "learn0 learn1"; the order rotates each round), and
#    per phase the median throughput and mean RSS of each variant, to
#    $OUT/phases-$TAG-ab.md (the ratio column: the second variant over the
#    first); the rounds with a learner also log (kept in
#    $OUT/phases-$TAG-rounds), and their convergence times per phase (as in
#    2.) are listed there too.  Variants: learn0 = HAKMEM_LEARN=0, learn1 =
#    HAKMEM_LEARN=1, base1 = HAKMEM_LEARN=1 with the library built from
#    git revision BASE_REV (the learner before a change), mimalloc.
# REPORT_ONLY=1 rebuilds the tables and the chart from the saved files.
# Env: OUT (default bench/results), BUILD (default build), EXTRA_ENV (more
# HAKMEM_* settings for every hakmem run, e.g. for a second, non-headline
# figure), TAG (file name part, default learn).
# Every run checks that the meant allocator served malloc (BENCH_EXPECT_MALLOC).
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE_S=${PHASE_S:-18} ORDER=${ORDER:-ABCA} REPEAT=${REPEAT:-3}
VARIANTS=${VARIANTS:-learn0 learn1}
OUT=${OUT:-bench/results} BUILD=${BUILD:-build} TAG=${TAG:-learn}
CHART=${CHART:-docs/learner-phases.svg}
EXTRA_ENV=${EXTRA_ENV:-}
BIN=$BUILD/bench/phases
[ -x "$BIN" ] || { echo "learner_phases: $BIN missing: run 'make benches'" >&2; exit 2; }
# shellcheck source=bench/tools/allocators.sh
. bench/tools/allocators.sh
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hakphases.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# one library for every run, as run_bench_suite.sh does
HAK_SO=$WORK/libhakmem.so
cp "$(alloc_so hakmem)" "$HAK_SO"
mkdir -p "$OUT"
read -r -a EXTRA <<<"$EXTRA_ENV"

if [[ " $VARIANTS " == *" base1 "* ]] && [ "${REPORT_ONLY:-0}" != 1 ]; then
  [ -n "${BASE_REV:-}" ] || { echo "learner_phases: variant base1 needs BASE_REV" >&2; exit 2; }
  mkdir -p "$WORK/base"
  git archive "$BASE_REV" | tar -x -C "$WORK/base"
  make -C "$WORK/base" -j2 lib >/dev/null
  BASE_SO=$WORK/base/build/libhakmem.so
fi

# run LABEL LOG PHASES: one bench/phases run; prints its RESULT line
run() {
  local v=$1 log=$2 ph=$3 so=$HAK_SO expect=libhakmem
  local -a envs=(env -u LD_PRELOAD)
  case $v in
    learn0) envs+=(HAKMEM_LEARN=0 "${EXTRA[@]}") ;;
    learn1) envs+=(HAKMEM_LEARN=1 "${EXTRA[@]}") ;;
    base1)  envs+=(HAKMEM_LEARN=1 "${EXTRA[@]}"); so=$BASE_SO ;;
    mimalloc) so=$(alloc_so mimalloc); expect=$(alloc_expect mimalloc)
              for x in $(compgen -e | grep '^HAKMEM_' || true); do envs+=(-u "$x"); done ;;
    *) echo "learner_phases: unknown variant $v" >&2; exit 2 ;;
  esac
  [ -n "$log" ] && envs+=("HAKMEM_LEARN_LOG=$log")
  "${envs[@]}" LD_PRELOAD="$so" BENCH_EXPECT_MALLOC="$expect" "$BIN" "$PHASE_S" "$ORDER" "$ph" 2>"$WORK/err" |
    grep '^RESULT ' || { cat "$WORK/err" >&2; echo "learner_phases: $v failed" >&2; exit 1; }
}

LOG=$OUT/phases-$TAG.csv
ROUNDS=$OUT/phases-$TAG-rounds

# The convergence summary of one log: "phase,name,time" lines, "n/s (t)" if not settled.
conv_of() {
  ( for kv in "${EXTRA[@]}"; do export "${kv?}"; done
    bash scripts/learner_convergence.sh "$1" "$1.phases" ) |
    sed -n 's/^phase \([0-9]*\) \([A-C]\) .*active classes converged in \([0-9.-]*\) s.*/\1,\2,\3/p
            s/^phase \([0-9]*\) \([A-C]\) .*active classes NOT SETTLED.* from \([0-9.-]*\) s).*/\1,\2,n\/s (\3)/p'
}

# Tables from the saved files: the headline's convergence and chart, the
# per-phase medians of the rounds, the rounds' convergence.
report() {
  ( for kv in "${EXTRA[@]}"; do export "${kv?}"; done
    bash scripts/learner_convergence.sh "$LOG" "$LOG.phases" --md ) | tee "$OUT/phases-$TAG-convergence.md"
  PHASES="$LOG.phases" TITLE="hakmem learner, bench/phases $ORDER x $PHASE_S s (HAKMEM_LEARN=1 ${EXTRA_ENV:-defaults})" \
    bash scripts/plot_learner.sh "$LOG" "$CHART" "${CLASSES:-8192 32768 64 262144}"
  [ -s "$OUT/phases-$TAG-ab.csv" ] || return 0
  # variant,round,phase,name,start,end,ops,rss_mean,rss_last,rss_max -> medians per (phase, variant)
  awk -F, -v vs="$VARIANTS" '
    function med(s,   a, n, i, j, x) { n = split(s, a, " ")
      for (i = 2; i <= n; i++) { x = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    function spread(s,   a, n, i, lo, hi, m) { n = split(s, a, " "); lo = hi = a[1] + 0
      for (i = 2; i <= n; i++) { if (a[i] + 0 < lo) lo = a[i] + 0; if (a[i] + 0 > hi) hi = a[i] + 0 }
      m = med(s); return m > 0 ? 100 * (hi - lo) / m : 0 }
    { k = $3 SUBSEP $1; ops[k] = ops[k] " " $7; rss[k] = rss[k] " " $8; last[k] = last[k] " " $9; name[$3] = $4
      if ($3 + 1 > np) np = $3 + 1 }
    END { nv = split(vs, V, " ")
      printf "| phase |"; for (i = 1; i <= nv; i++) printf " %s ops/s | %s RSS mean / last (MiB) |", V[i], V[i]
      printf " %s / %s ops | spread |\n|---|", V[2], V[1]; for (i = 1; i <= nv; i++) printf "---|---|"; printf "---|---|\n"
      for (p = 0; p < np; p++) { printf "| %d %s |", p, name[p]; sp = 0
        for (i = 1; i <= nv; i++) { k = p SUBSEP V[i]
          printf " %.3gM |", med(ops[k]) / 1e6; printf " %.1f / %.1f |", med(rss[k]) / 1024, med(last[k]) / 1024
          if (spread(ops[k]) > sp) sp = spread(ops[k]) }
        a = med(ops[p SUBSEP V[1]]); b = med(ops[p SUBSEP V[2]])
        printf " %.2f | %.0f%% |\n", (a > 0 ? b / a : 0), sp } }' "$OUT/phases-$TAG-ab.csv" | tee "$OUT/phases-$TAG-ab.md"
  local f v r
  : >"$WORK/conv.csv"
  for f in "$ROUNDS"/*.csv; do
    [ -f "$f" ] || continue
    v=$(basename "$f" .csv); r=${v##*-}; v=${v%-*}
    conv_of "$f" | awk -v v="$v" -v r="$r" '{ print v "," r "," $0 }' >>"$WORK/conv.csv"
  done
  [ -s "$WORK/conv.csv" ] || return 0
  { echo
    echo "Convergence of the active classes per phase, every logged round, in seconds (n/s (t): not settled:"
    echo "within a step of the final CAP only from t on, less than two dwells before the phase ended, or"
    echo "still stepping one way):"
    echo
    # variant,round,phase,name,time -> | phase | variant: t1, t2, t3 |
    sort -t, -k1,1 -k2,2n "$WORK/conv.csv" |
      awk -F, '{ k = $3 SUBSEP $1; t[k] = t[k] (t[k] == "" ? "" : ", ") $5; name[$3] = $4
                 if (!($1 in seenv)) { seenv[$1] = 1; V[++nv] = $1 }; if ($3 + 1 > np) np = $3 + 1 }
        END { printf "| phase |"; for (i = 1; i <= nv; i++) printf " %s |", V[i]; printf "\n|---|"
              for (i = 1; i <= nv; i++) printf "---|"; printf "\n"
              for (p = 0; p < np; p++) { printf "| %d %s |", p, name[p]; for (i = 1; i <= nv; i++) printf " %s |", t[p SUBSEP V[i]]
                                         printf "\n" } }'
  } | tee -a "$OUT/phases-$TAG-ab.md"
}

if [ "${REPORT_ONLY:-0}" = 1 ]; then report; exit 0; fi
echo "learner_phases: headline run, HAKMEM_LEARN=1 ${EXTRA_ENV:-(defaults)}, $ORDER x $PHASE_S s"
run learn1 "$LOG" "$LOG.phases"
rm -rf "$ROUNDS" "$OUT/phases-$TAG-ab.csv"
if [ "$REPEAT" -gt 0 ]; then
  read -r -a VS <<<"$VARIANTS"
  echo "learner_phases: $REPEAT rounds of ${VS[*]}, interleaved"
  : >"$WORK/all.csv"
  for ((r = 0; r < REPEAT; r++)); do
    for ((j = 0; j < ${#VS[@]}; j++)); do
      v=${VS[$(( (j + r) % ${#VS[@]} ))]}
      lg=""
      # the learner's runs log too (kept), for their convergence
      [[ $v == *1 ]] && { mkdir -p "$ROUNDS"; lg=$ROUNDS/$v-$((r + 1)).csv; }
      run "$v" "$lg" "$WORK/ph.csv" >/dev/null
      [ -n "$lg" ] && cp "$WORK/ph.csv" "$lg.phases"
      awk -F, -v v="$v" -v r="$r" 'NR > 1 { print v "," r "," $0 }' "$WORK/ph.csv" >>"$WORK/all.csv"
      echo "  round $((r + 1)) $v done"
    done
  done
  cp "$WORK/all.csv" "$OUT/phases-$TAG-ab.csv"
fi
report
