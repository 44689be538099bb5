#!/usr/bin/env bash
# hakmem benchmark suite: every workload under every allocator, interleaved.
#
# Environment (all optional):
#   RUNTIME=1            seconds per run (fractions allowed)
#   THREADS=1,N          thread counts (N = nproc); single-thread workloads run once
#   ALLOCATORS=hakmem,glibc,mimalloc,jemalloc,tcmalloc
#                        also hakmem:LABEL, a hakmem run with the extra env
#                        BENCH_VARIANT_LABEL="K=V K=V" (used by scripts/ab.sh)
#   REPEAT=3             runs per (workload, threads, allocator); medians reported
#   WORKLOADS=...        comma list, default all (see wl_cmd below); "fastpath"
#                        is the callgrind instruction count (needs valgrind)
#   SUBJECT=hakmem       the allocator whose ratio to the best other one is shown
#   OUT=bench/results/latest   output prefix (.csv .md .svg -rss.svg .summary.tsv .paired.tsv)
#   BUILD=build          where the workload binaries are
#   BENCH_HAKMEM_SO, BENCH_MIMALLOC_SO, BENCH_JEMALLOC_SO, BENCH_TCMALLOC_SO
#                        override library paths
#   REPORT_ONLY=1        only rebuild .md/.svg from an existing OUT.csv
#   HAKMEM_*             passed to hakmem runs only (removed for the peers)
# Every run's RESULT line names the shared object that provided malloc; if it
# is not the allocator meant, the suite stops at once with exit status 2.
# Runs that crash or time out are marked in the table and make the exit status 1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME=${RUNTIME:-1}
NPROC=$(nproc 2>/dev/null || echo 2)
THREADS=${THREADS:-$([ "$NPROC" -gt 1 ] && echo "1,$NPROC" || echo 1)}
ALLOCATORS=${ALLOCATORS:-hakmem,glibc,mimalloc,jemalloc,tcmalloc}
REPEAT=${REPEAT:-3}
ALL_WORKLOADS=larson_tiny,larson_mid,tiny,mid,large,huge,mlarge,prodcons_64,prodcons_tiny,prodcons_mid,batch16,realloc,burst,shift,replay_python,replay_sqlite,replay_gcc,fastpath
EXTRA_WORKLOADS=mixed,edge   # only when named in WORKLOADS (bench/bands.c says why)
WORKLOADS=${WORKLOADS:-$ALL_WORKLOADS}
SUBJECT=${SUBJECT:-hakmem}
OUT=${OUT:-bench/results/latest}
BUILD=${BUILD:-build}
BIN=$BUILD/bench

die() { echo "run_bench_suite: FATAL: $*" >&2; exit 2; }

# ---- allocators (alloc_so, alloc_expect, alloc_pkg)
# shellcheck source=bench/tools/allocators.sh
. bench/tools/allocators.sh

# ---- workloads: wl_cmd NAME THREADS -> the command line (empty = skip this T)
single_thread() { case $1 in mlarge|shift|replay_*|fastpath) return 0 ;; esac; return 1; }
wl_cmd() {
  local w=$1 t=$2 rt=$RUNTIME pc=$(( $2 < 2 ? 2 : $2 ))
  case $w in
    larson_tiny)   echo "$BIN/larson $rt 8 1000 5000 100 4141 $t" ;;
    larson_mid)    echo "$BIN/larson $rt 2048 32768 10000 1 12345 $t" ;;
    tiny|mid|large|huge|mixed|edge) echo "$BIN/bands $w $rt $t" ;;
    mlarge)        echo "$BIN/bands mlarge $rt 1" ;;
    prodcons_64)   echo "$BIN/prodcons $rt $pc 64 64" ;;
    prodcons_tiny) echo "$BIN/prodcons $rt $pc 8 2048" ;;
    prodcons_mid)  echo "$BIN/prodcons $rt $pc 2048 32768" ;;
    batch16)       echo "$BIN/batch $rt $t 16 32 10000" ;;
    realloc)       echo "$BIN/realloc_grow $rt $t 256" ;;
    burst)         echo "$BIN/burst $rt 256 $t 4096" ;;
    shift)         echo "$BIN/shift $rt" ;;
    replay_*)      echo "$BIN/replay bench/traces/${w#replay_}.trace.xz $rt" ;;
    *) die "unknown workload '$w' (known: $ALL_WORKLOADS,$EXTRA_WORKLOADS)" ;;
  esac
}
# threads actually used (prodcons needs a producer and a consumer)
wl_threads() { case $1 in prodcons_*) echo $(( $2 < 2 ? 2 : $2 )) ;; *) echo "$2" ;; esac; }

human() { awk -v v="$1" 'BEGIN{a=v<0?-v:v; if(a>=1e9)printf "%.2fG",v/1e9; else if(a>=1e6)printf "%.2fM",v/1e6; else if(a>=1e3)printf "%.1fk",v/1e3; else printf "%.1f",v}'; }

# ---- one run; appends a CSV line; prints a progress line
CSV=$OUT.csv  # during a run: $WORK/runs.csv, published to $OUT.csv at the end
FAILED=0
run_one() {  # run_one INDEX TOTAL REP WORKLOAD T ALLOC CMD
  local idx=$1 total=$2 rep=$3 w=$4 t=$5 a=$6 cmd=$7
  local so expect label=${6#*:}
  so=$(alloc_so "$a"); expect=$(alloc_expect "$a")
  local -a envs=(env -u LD_PRELOAD)
  if [[ $a == hakmem* ]]; then
    if [[ $a == *:* ]]; then
      local var="BENCH_VARIANT_$label"
      local -a extra
      read -r -a extra <<<"${!var:-}"
      envs+=("${extra[@]}")
    fi
  else
    local v
    for v in $(compgen -e | grep '^HAKMEM_' || true); do envs+=(-u "$v"); done
  fi
  [ -n "$so" ] && envs+=("LD_PRELOAD=$so")
  envs+=("BENCH_EXPECT_MALLOC=$expect")
  local tmo t0 t1 rc=0 out
  tmo=$(awk -v r="$RUNTIME" 'BEGIN{printf "%d", r*10+60}')
  t0=$(date +%s.%N)
  out=$(timeout "$tmo" "${envs[@]}" $cmd 2>"$WORK/stderr") || rc=$?
  t1=$(date +%s.%N)
  local line val unit peak steady over mso status=ok
  line=$(grep '^RESULT ' <<<"$out" | tail -1 || true)
  kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $line"; }
  val=$(kv value); unit=$(kv unit); peak=$(kv peak_rss_kb); steady=$(kv steady_rss_kb); over=$(kv over_live_kb); mso=$(kv malloc_so)
  if [ "$rc" -eq 3 ] || { [ -n "$mso" ] && [[ $mso != *"$expect"* ]]; }; then
    cat "$WORK/stderr" >&2
    die "the preload did not take effect: allocator '$a' (LD_PRELOAD=${so:-none}) but malloc came from '${mso:-?}'. Command: $cmd"
  fi
  if [ "$rc" -ne 0 ] || [ -z "$val" ]; then
    status=$([ "$rc" -eq 124 ] && echo timeout || echo "fail_rc$rc")
    FAILED=1
    echo "!! $w T=$t $a: $status; command: ${envs[*]} $cmd" >&2
    sed 's/^/!!   /' "$WORK/stderr" | tail -5 >&2
    val=""; peak=""; steady=""; over=""
  fi
  echo "$idx,$rep,$w,$(wl_threads "$w" "$t"),$a,$val,$unit,higher,$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}'),$peak,$steady,$status,$mso,\"$cmd\"" >>"$CSV"
  if [ -n "$steady" ]; then  # burst: the steady-phase RSS is a result of its own
    echo "$idx,$rep,$w.steady_rss,$(wl_threads "$w" "$t"),$a,$steady,kB,lower,0,$peak,$steady,$status,$mso,\"$cmd\"" >>"$CSV"
  fi
  if [ -n "$over" ]; then  # prodcons: peak RSS beyond the bytes the benchmark held live
    echo "$idx,$rep,$w.over_live,$(wl_threads "$w" "$t"),$a,$over,kB,lower,0,$peak,,$status,$mso,\"$cmd\"" >>"$CSV"
  fi
  printf '[%4d/%d] rep %d %-14s T=%-2s %-10s %9s %-9s peak %6s MB  (%ss)%s\n' "$idx" "$total" "$rep" "$w" "$(wl_threads "$w" "$t")" "$a" \
    "$( [ -n "$val" ] && human "$val" || echo '-')" "$unit" "$( [ -n "$peak" ] && echo $((peak / 1024)) || echo '-')" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')" "$( [ "$status" = ok ] || echo "  <-- $status")"
}

# ---- report: medians -> summary TSV -> markdown (+ charts)
report() {
  local sum=$OUT.summary.tsv
  # workload threads allocator median_value unit better median_peak_kb n_ok n_all
  # last_failure spread_pct ((max-min)/median of the value over the repeats)
  # med(list): the median of a space-separated list; SPREAD: its (max-min)/median in %
  local awk_med='
    function med(s,   a, n, i, j, x, m) { n = split(s, a, " "); SPREAD = ""; if (!n) return "";
      for (i = 2; i <= n; i++) { x = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
      m = n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      if (n > 1 && m + 0 > 0) SPREAD = sprintf("%.0f", 100 * (a[n] - a[1]) / m)
      return m }'
  awk -F, "$awk_med"'
    NR > 1 { k = $3 SUBSEP $4 SUBSEP $5; if (!(k in all)) { order[++no] = k }
      all[k]++; unit[k] = unit[k] ? unit[k] : $7; better[k] = $8
      if ($12 == "ok" && $6 != "") { v[k] = v[k] " " $6; ok[k]++; if ($10 != "") p[k] = p[k] " " $10 }
      else st[k] = $12 }
    END { for (i = 1; i <= no; i++) { k = order[i]; split(k, f, SUBSEP)
      mv = med(v[k]); sp = SPREAD
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", f[1], f[2], f[3], mv, unit[k], better[k], med(p[k]), ok[k], all[k], st[k], sp } }' "$CSV" >"$sum"
  # paired: workload threads allocator median over the repeats of the
  # subject's ratio to the allocator within one repeat (a row's allocators
  # run back to back, so a drift of the host's load cancels out)
  awk -F, -v subj="$SUBJECT" "$awk_med"'
    NR > 1 && $12 == "ok" && $6 != "" { v[$3 SUBSEP $4 SUBSEP $5 SUBSEP $2] = $6; low[$3 SUBSEP $4] = ($8 == "lower") }
    END { for (x in v) { split(x, f, SUBSEP); if (f[3] == subj) continue
        s = f[1] SUBSEP f[2] SUBSEP subj SUBSEP f[4]; if (!(s in v)) continue
        key = f[1] "\t" f[2] "\t" f[3]; a = v[x] + 0; b = v[s] + 0
        if (a <= 0 || b <= 0) { bad[key] = 1; continue }   # no ratio there: none for the row
        L[key] = L[key] " " (low[f[1] SUBSEP f[2]] ? a / b : b / a) }
      for (key in L) if (!(key in bad)) printf "%s\t%s\n", key, med(L[key]) }' "$CSV" | sort >"$OUT.paired.tsv"
  write_md "$sum" "$OUT.paired.tsv" >"$OUT.md"
  if command -v gnuplot >/dev/null; then
    bash scripts/plot_bench.sh "$sum" "$OUT" "$SUBJECT" "$ALLOCATORS" || echo "run_bench_suite: plotting failed" >&2
  else
    echo "run_bench_suite: gnuplot not found, no charts (apt-get install gnuplot-nox)" >&2
  fi
}

write_md() {
  local sum=$1 paired=$2
  local cpu
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
  echo "# hakmem benchmark results"
  echo
  echo "Taken $RUN_DATE on $(uname -m), ${cpu:-unknown CPU}, $NPROC cores, Linux $(uname -r);"
  echo "git ${GIT_REV:-?}. RUNTIME=$RUNTIME s per run, REPEAT=$REPEAT (median shown), THREADS=$THREADS."
  local henv
  henv=$(compgen -e | grep '^HAKMEM_' | while read -r v; do printf '%s=%s ' "$v" "${!v}"; done || true)
  [ -n "$henv" ] && echo "hakmem env: $henv"
  [ -n "$HAK_ID" ] && echo "$HAK_ID"
  local v
  for v in $(compgen -e | grep '^BENCH_VARIANT_' || true); do echo "variant hakmem:${v#BENCH_VARIANT_} = ${!v}"; done
  for v in $(compgen -e | grep "^BENCH_SO_" || true); do echo "build hakmem:${v#BENCH_SO_} = ${!v}"; done
  echo
  echo "Each cell: median throughput (or value) and median peak RSS. Ratio: $SUBJECT against the best of the others,"
  echo "as a speed-up (>1 means $SUBJECT is better; for lower-is-better rows it is best/$SUBJECT)."
  echo "Rows ending in .steady_rss are the RSS during the steady phase after a 256 MB burst (lower is better)."
  echo "Rows ending in .over_live are peak RSS minus the most bytes the benchmark held live (kB, lower is"
  echo "better): a faster producer keeps prodcons's queue fuller, so peak RSS alone favours a slower allocator."
  echo "fastpath rows are callgrind instructions per malloc+free pair (lower is better). FAIL = crash or timeout."
  echo "paired: the median over the repeats of $SUBJECT's ratio to the allocator named in the previous column"
  echo "within each repeat (a row's allocators run back to back, so a drift of the host's load cancels out);"
  echo "the per-allocator table below uses it too (- where no repeat gives a pair of positive results)."
  echo "spread: the largest (max-min)/median over the repeats among the allocators of the row; a ratio"
  echo "closer to 1 than about half the spread may be noise."
  echo
  awk -F'\t' -v allocs="$ALLOCATORS" -v subj="$SUBJECT" -v pairedf="$paired" '
    function pr(k, a) { return ((k, a) in P) ? sprintf("%.2f", P[k, a]) : "-" }
    function h(v,   a) { a = v < 0 ? -v : v; if (v == "") return "-";
      if (a >= 1e9) return sprintf("%.2fG", v / 1e9); if (a >= 1e6) return sprintf("%.2fM", v / 1e6);
      if (a >= 1e4) return sprintf("%.1fk", v / 1e3); return sprintf("%.4g", v) }
    function mb(k) { return k == "" ? "" : sprintf(" (%s MB)", k >= 10240 ? sprintf("%d", k / 1024) : sprintf("%.1f", k / 1024)) }
    function rat(s, b, lower) { if (s == "" || b == "" || s + 0 == 0 || b + 0 == 0) return "-"
      return sprintf("%.2f", lower ? b / s : s / b) }
    FILENAME == pairedf { P[$1 SUBSEP $2, $3] = $4; next }
    { key = $1 SUBSEP $2; if (!(key in seen)) { seen[key] = 1; rows[++nr] = key; wl[key] = $1; th[key] = $2 }
      val[key, $3] = $4; unit[key] = $5; lower[key] = ($6 == "lower"); pk[key, $3] = $7; okn[key, $3] = $8
      if ($11 != "" && $11 + 0 > spr[key] + 0) spr[key] = $11 }
    END {
      na = split(allocs, A, ",")
      printf "| workload | T | unit |"; for (i = 1; i <= na; i++) printf " %s |", A[i]; printf " %s / best other | paired | spread |\n", subj
      printf "|---|---|---|"; for (i = 1; i <= na; i++) printf "---|"; printf "---|---|---|\n"
      for (r = 1; r <= nr; r++) { k = rows[r]; best = ""; bestn = ""
        printf "| %s | %s | %s |", wl[k], th[k], unit[k]
        for (i = 1; i <= na; i++) { a = A[i]; have = ((k, a) in val); v = have ? val[k, a] : ""
          cell = have ? (v == "" ? "FAIL" : h(v) (unit[k] == "kB" ? "" : mb(pk[k, a]))) : "n/a"
          printf " %s |", cell
          if (a != subj && v != "") if (best == "" || (lower[k] ? v + 0 < best + 0 : v + 0 > best + 0)) { best = v; bestn = a } }
        r2 = rat(val[k, subj], best, lower[k])
        printf " %s%s | %s | %s |\n", r2, (r2 == "-" ? "" : " vs " bestn), (bestn == "" ? "-" : pr(k, bestn)), (k in spr) ? spr[k] "%" : "-" }
      printf "\n## %s against each other allocator\n\n", subj
      printf "Speed ratio, paired (>1: %s faster or leaner), then peak-RSS ratio %s/other, of the medians (<1: %s uses less).\n\n", subj, subj, subj
      printf "| workload | T |"; for (i = 1; i <= na; i++) if (A[i] != subj) printf " vs %s |", A[i]; printf "\n|---|---|"
      for (i = 1; i <= na; i++) if (A[i] != subj) printf "---|"; printf "\n"
      for (r = 1; r <= nr; r++) { k = rows[r]; printf "| %s | %s |", wl[k], th[k]
        for (i = 1; i <= na; i++) { a = A[i]; if (a == subj) continue
          s = pr(k, a); m = rat(pk[k, subj], pk[k, a], 0)
          printf " %s%s |", s, (m == "-" || unit[k] == "kB" || wl[k] ~ /^fastpath/) ? "" : " / rss " m }
        printf "\n" } }' "$paired" "$sum"
}

# Snapshot the hakmem library: it may be rebuilt while the suite runs, and
# every hakmem run must use the same build.  The copy keeps its file name, so
# the dladdr check still sees libhakmem.
# private scratch space (the library snapshot, each run's stderr): nothing
# transient is written under bench/results
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hakbench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
HAK_SO=$(alloc_so hakmem)
HAK_ID=""
RUN_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo none)
if [[ ,$ALLOCATORS, == *,hakmem* ]] && [ -f "$HAK_SO" ] && [ "${REPORT_ONLY:-0}" != 1 ]; then
  HAK_ID="hakmem: $HAK_SO, built $(date -u -r "$HAK_SO" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$HAK_SO" | cut -c1-12)."
  cp "$HAK_SO" "$WORK/$(basename "$HAK_SO")"
  BENCH_HAKMEM_SO="$WORK/$(basename "$HAK_SO")"
  export BENCH_HAKMEM_SO
fi
mkdir -p "$(dirname "$OUT")"
IFS=, read -r -a WLS <<<"$WORKLOADS"
IFS=, read -r -a TS <<<"$THREADS"
IFS=, read -r -a AS <<<"$ALLOCATORS"

if [ "${REPORT_ONLY:-0}" = 1 ]; then
  # settings of the run that wrote the CSV, not of this shell
  # shellcheck disable=SC1090
  [ -f "$OUT.meta" ] && . "$OUT.meta"
  report; cat "$OUT.md"; exit 0
fi

# drop allocators whose library is missing, saying how to get them
USE=()
for a in "${AS[@]}"; do
  so=$(alloc_so "$a")
  if [ -n "$so" ] && [ ! -f "$so" ]; then
    echo "run_bench_suite: skipping $a: $so not found; install with: $(alloc_pkg "$a")" >&2
  else
    USE+=("$a")
  fi
done
[ ${#USE[@]} -gt 0 ] || die "no allocator available"
ALLOCATORS=$(IFS=,; echo "${USE[*]}")
for b in larson bands prodcons batch realloc_grow burst shift replay fastpath; do
  [ -x "$BIN/$b" ] || die "$BIN/$b missing: run 'make benches' (or 'make all') first"
done

# configurations: (workload, threads) pairs, fastpath handled apart
CONFS=()
DO_FASTPATH=0
for w in "${WLS[@]}"; do
  [ "$w" = fastpath ] && { DO_FASTPATH=1; continue; }
  wl_cmd "$w" 1 >/dev/null
  seen=" "
  for t in "${TS[@]}"; do
    single_thread "$w" && t=1
    tt=$(wl_threads "$w" "$t")
    [[ $seen == *" $tt "* ]] && continue
    seen+="$tt "
    CONFS+=("$w $t")
  done
done

CSV=$WORK/runs.csv
{ for v in RUNTIME REPEAT THREADS ALLOCATORS SUBJECT HAK_ID RUN_DATE GIT_REV; do printf '%s=%q\n' "$v" "${!v}"; done
  compgen -e | grep -E '^(HAKMEM|BENCH_VARIANT)_' | while read -r v; do printf 'export %s=%q\n' "$v" "${!v}"; done || true
} >"$WORK/meta"
echo "csv_index,repeat,workload,threads,allocator,value,unit,better,wall_s,peak_rss_kb,steady_rss_kb,status,malloc_so,command" >"$CSV"
total=$(( ${#CONFS[@]} * ${#USE[@]} * REPEAT ))
echo "run_bench_suite: ${#CONFS[@]} configurations x ${#USE[@]} allocators ($ALLOCATORS) x $REPEAT repeats = $total runs of ~${RUNTIME}s"
idx=0
for ((rep = 1; rep <= REPEAT; rep++)); do
  c=0
  for conf in "${CONFS[@]}"; do
    read -r w t <<<"$conf"
    cmd=$(wl_cmd "$w" "$t")
    # rotate the allocator order so none always runs first (or after a hog)
    n=${#USE[@]}
    for ((j = 0; j < n; j++)); do
      a=${USE[$(( (j + rep + c) % n ))]}
      idx=$((idx + 1))
      run_one "$idx" "$total" "$rep" "$w" "$t" "$a" "$cmd"
    done
    c=$((c + 1))
  done
done

if [ "$DO_FASTPATH" = 1 ]; then
  if command -v valgrind >/dev/null; then
    ALLOCATORS=$ALLOCATORS BUILD=$BUILD bash scripts/callgrind_fastpath.sh --csv >>"$CSV" || FAILED=1
  else
    echo "run_bench_suite: valgrind not found, skipping fastpath (apt-get install valgrind)" >&2
  fi
fi
# publish only now, so bench/results never holds a half-finished run
cp "$CSV" "$OUT.csv"
cp "$WORK/meta" "$OUT.meta"
CSV=$OUT.csv
report
echo
cat "$OUT.md"
echo
echo "run_bench_suite: wrote $OUT.csv $OUT.md $OUT.summary.tsv $OUT.paired.tsv $( [ -f "$OUT.svg" ] && echo "$OUT.svg $OUT-rss.svg")"
[ "$FAILED" = 0 ] || { echo "run_bench_suite: some runs FAILED (see lines marked !! above and FAIL in the table)" >&2; exit 1; }
