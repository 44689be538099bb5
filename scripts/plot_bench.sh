#!/usr/bin/env bash
# Charts for the benchmark suite, drawn with gnuplot (SVG).
#
#   scripts/plot_bench.sh SUMMARY.tsv OUT_PREFIX [SUBJECT] [ALLOCATOR_ORDER]
#
# OUT_PREFIX.svg: each allocator's result normalised to the best allocator
#   other than SUBJECT (default hakmem) on that row; 1.0 = best peer, higher
#   is better (lower-is-better rows such as fastpath are inverted).
# OUT_PREFIX-rss.svg: median peak RSS in MB (log scale); for *.steady_rss
#   rows, the RSS during the steady phase after the burst; for *.over_live
#   rows, peak RSS minus the bytes the benchmark held live.
set -euo pipefail
SUM=$1 OUT=$2 SUBJ=${3:-hakmem} ORDER=${4:-}
command -v gnuplot >/dev/null || { echo "plot_bench: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# perf.dat / rss.dat: a header line of allocator names, then one line per row
awk -F'\t' -v subj="$SUBJ" -v dir="$tmp" -v order="$ORDER" '
  BEGIN { n = split(order, o, ","); for (i = 1; i <= n; i++) { ai[o[i]] = ++na; A[na] = o[i] } }
  { key = $1 "/T" $2; if (!(key in seen)) { seen[key] = 1; rows[++nr] = key; steady[key] = ($1 ~ /(steady_rss|over_live)$/) }
    if (!($3 in ai)) { ai[$3] = ++na; A[na] = $3 }
    v[key, $3] = $4; low[key] = ($6 == "lower"); pk[key, $3] = $7 }
  END {
    pf = dir "/perf.dat"; rf = dir "/rss.dat"
    printf "row"  > pf; for (i = 1; i <= na; i++) printf " %s", A[i] > pf; printf "\n" > pf
    printf "row"  > rf; for (i = 1; i <= na; i++) printf " %s", A[i] > rf; printf "\n" > rf
    for (r = 1; r <= nr; r++) { k = rows[r]; best = ""
      for (i = 1; i <= na; i++) { x = v[k, A[i]]; if (A[i] == subj || x == "" || x + 0 <= 0) continue
        if (best == "" || (low[k] ? x + 0 < best + 0 : x + 0 > best + 0)) best = x }
      if (!steady[k]) { printf "\"%s\"", k > pf
        for (i = 1; i <= na; i++) { x = v[k, A[i]]
          printf " %s", (x == "" || best == "" || x + 0 <= 0) ? "?" : sprintf("%.4f", low[k] ? best / x : x / best) > pf }
        printf "\n" > pf }
      if (k ~ /^fastpath/) continue
      printf "\"%s\"", k > rf
      for (i = 1; i <= na; i++) { x = steady[k] ? v[k, A[i]] : pk[k, A[i]]
        printf " %s", (x == "" || x + 0 <= 0) ? "?" : sprintf("%.2f", x / 1024) > rf }
      printf "\n" > rf } }' "$SUM"

ncol=$(head -1 "$tmp/perf.dat" | wc -w)
nrow=$(($(wc -l < "$tmp/perf.dat") - 1))
width=$(( nrow * 45 + 200 )); [ $width -lt 900 ] && width=900
common="set terminal svg size $width,560 dynamic noenhanced font 'sans,11' background rgb 'white'
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top left horizontal
set xtics rotate by 45 right nomirror
set bmargin 9
set grid ytics
set key autotitle columnheader"
gnuplot <<GP
$common
set output '$OUT.svg'
set title "Throughput normalised to the best peer of $SUBJ (1.0 = best peer; higher is better)"
set ylabel 'relative to best peer'
set yrange [0:*]
plot for [i=2:$ncol] '$tmp/perf.dat' using i:xtic(1), 1 with lines lt -1 dt 2 notitle
GP
gnuplot <<GP
$common
set output '$OUT-rss.svg'
set title 'Peak RSS in MB, log scale (steady_rss rows: RSS in the steady phase after the burst; over_live rows: peak RSS beyond the live bytes; lower is better)'
set ylabel 'MB'
set logscale y
plot for [i=2:$ncol] '$tmp/rss.dat' using i:xtic(1)
GP
echo "plot_bench: wrote $OUT.svg $OUT-rss.svg"
