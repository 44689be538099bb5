#!/usr/bin/env bash
# Draws a learner log (HAKMEM_LEARN_LOG=LOG.csv) as an SVG with gnuplot:
#   scripts/plot_learner.sh LOG.csv OUT.svg [CLASSES]
# Panels: CAP per class over time (steps), hit rate per class, and RSS with
# the ACE waste estimate (MiB).  CLASSES is a space-separated list of class
# sizes to draw (default: the 8 classes with the most allocations).
# Installs gnuplot-nox with apt-get when it is missing and we are root.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 LOG.csv OUT.svg [CLASSES]" >&2; exit 2; }
LOG=$1 OUT=$2
[ -s "$LOG" ] || { echo "plot_learner: $LOG is empty or missing" >&2; exit 1; }
if ! command -v gnuplot >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq gnuplot-nox >/dev/null
  else
    echo "plot_learner: gnuplot is not installed" >&2; exit 1
  fi
fi
head -1 "$LOG" | grep -q '^time_s,class_size,layer,allocs,hit_rate,cap,wmax,waste_bytes,rss_bytes' ||
  { echo "plot_learner: $LOG does not look like a learner log" >&2; exit 1; }
CLASSES=${3:-$(awk -F, 'NR > 1 { a[$2] += $4 } END { for (c in a) print a[c], c }' "$LOG" |
               sort -rn | head -8 | awk '{ print $2 }' | sort -n | tr '\n' ' ')}
# per window: RSS and total waste (one value per time stamp)
TOT=$(mktemp)
trap 'rm -f "$TOT"' EXIT
awk -F, 'NR > 1 { w[$1] += $8; r[$1] = $9 } END { for (t in r) print t, r[t] / 1048576, w[t] / 1048576 }' "$LOG" |
  sort -n > "$TOT"
gnuplot <<GP
set terminal svg size 1000,900 dynamic font "sans,11"
set output "$OUT"
set datafile separator ","
set termoption noenhanced
set multiplot layout 3,1 title "hakmem learner: $(basename "$LOG")"
set key outside right
set grid
set xlabel "time (s)"
classes = "$CLASSES"
set ylabel "CAP (pages; Large: blocks)"
set logscale y
plot for [c in classes] "$LOG" using 1:(strcol(2) eq c ? \$6 : NaN) with steps lw 2 title c
unset logscale y
set ylabel "hit rate"
set yrange [0:1.05]
plot for [c in classes] "$LOG" using 1:(strcol(2) eq c ? \$5 : NaN) with linespoints pt 7 ps 0.4 title c
set autoscale y
set ylabel "MiB"
set datafile separator whitespace
plot "$TOT" using 1:2 with lines lw 2 title "RSS", "$TOT" using 1:3 with lines lw 2 title "waste (ACE)"
unset multiplot
GP
echo "plot_learner: wrote $OUT (classes: $CLASSES)"
