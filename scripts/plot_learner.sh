#!/usr/bin/env bash
# Draws a learner log (HAKMEM_LEARN_LOG=LOG.csv) as an SVG with gnuplot:
#   scripts/plot_learner.sh LOG.csv OUT.svg [CLASSES]
# Panels: CAP per class over time (steps), hit rate per class, and RSS with
# the ACE waste estimate (MiB).  CLASSES is a space-separated list of class
# sizes to draw (default: the 8 classes with the most allocations).
# PHASES=phases.csv (what bench/phases writes: phase,name,start_s,...)
# marks each phase's start with a dashed line and its letter; TITLE=...
# replaces the title.
# Installs gnuplot (gnuplot-nox) with scripts/need.sh when it is missing.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 LOG.csv OUT.svg [CLASSES]" >&2; exit 2; }
LOG=$1 OUT=$2
[ -s "$LOG" ] || { echo "plot_learner: $LOG is empty or missing" >&2; exit 1; }
bash "$(dirname "$0")/need.sh" gnuplot:gnuplot-nox
command -v gnuplot >/dev/null || { echo "plot_learner: gnuplot is not installed" >&2; exit 1; }
MARKS=""
if [ -n "${PHASES:-}" ]; then
  head -1 "$PHASES" | grep -q '^phase,name,start_s,end_s' ||
    { echo "plot_learner: $PHASES is not a phases file" >&2; exit 1; }
  MARKS=$(awk -F, 'NR > 1 { printf "set arrow from first %s, graph 0 to first %s, graph 1 nohead lw 1.5 lc rgb \"#555555\"\n", $3, $3
                            printf "set label \"%s\" at first %s + 0.4, graph 0.93 tc rgb \"#555555\"\n", $2, $3 }' "$PHASES")
fi
head -1 "$LOG" | grep -q '^time_s,class_size,layer,allocs,hit_rate,cap,wmax,waste_bytes,rss_bytes' ||
  { echo "plot_learner: $LOG does not look like a learner log" >&2; exit 1; }
CLASSES=${3:-$(awk -F, 'NR > 1 { a[$2] += $4 } END { for (c in a) if (a[c] > 0) print a[c], c }' "$LOG" |
               sort -rn | head -8 | awk '{ print $2 }' | sort -n | tr '\n' ' ')}
# per class a file of CAP (every row) and one of hit rate (windows that
# allocated), so each line is drawn on its own; then RSS and total waste
# per window
TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT
# the window: the most common gap between consecutive row times
WIN=$(awk -F, 'NR > 1 && $1 != last { if (last != "") g[sprintf("%.1f", $1 - last)]++; last = $1 }
               END { for (k in g) if (g[k] > best) { best = g[k]; w = k }; print (w > 0 ? w : 1) }' "$LOG")
HAVE=""
for c in $CLASSES; do
  awk -F, -v c="$c" 'NR > 1 && $2 == c { print $1, $6, $3 }' "$LOG" > "$TMPD/c$c"
  # hit rate: windows that allocated; a gap of more than 1.5 windows breaks the line
  awk -F, -v c="$c" 'NR > 1 && $2 == c && $4 > 0 { if (n++ && $1 - last > 1.5 * win) print ""; last = $1
                                                   print $1, $5 }' win="$WIN" "$LOG" > "$TMPD/h$c"
  if [ -s "$TMPD/c$c" ]; then HAVE+="$c "; else echo "plot_learner: class $c has no rows" >&2; fi
done
CLASSES=$HAVE
[ -n "$CLASSES" ] || { echo "plot_learner: no class to draw" >&2; exit 1; }
LABELS=$(for c in $CLASSES; do printf '%s(%s) ' "$c" "$(awk 'NR == 1 { print $3 }' "$TMPD/c$c")"; done)
awk -F, 'NR > 1 { w[$1] += $8; r[$1] = $9 } END { for (t in r) print t, r[t] / 1048576, w[t] / 1048576 }' "$LOG" |
  sort -n > "$TMPD/tot"
gnuplot <<GP
set terminal svg size 1000,900 dynamic font "sans,11"
set output "$OUT"
set termoption noenhanced
set multiplot layout 3,1 title "${TITLE:-hakmem learner: $(basename "$LOG")}"
$MARKS
set key outside right
set grid
set xlabel "time (s)"
classes = "$CLASSES"
labels = "$LABELS"
set ylabel "CAP (pages; Large: blocks)"
set logscale y
plot for [i = 1:words(classes)] "$TMPD/c".word(classes, i) using 1:2 with steps lw 2 title word(labels, i)
unset logscale y
set ylabel "hit rate"
set yrange [0:1.05]
plot for [i = 1:words(classes)] "$TMPD/h".word(classes, i) using 1:2 with linespoints pt 7 ps 0.4 title word(labels, i)
set autoscale y
set ylabel "MiB"
plot "$TMPD/tot" using 1:2 with lines lw 2 title "RSS", "$TMPD/tot" using 1:3 with lines lw 2 title "waste (ACE)"
unset multiplot
GP
echo "plot_learner: wrote $OUT (classes: $CLASSES)"
