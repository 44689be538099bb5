#!/usr/bin/env bash
# Paired ratios of an A/B run (scripts/ab.sh): the runs of A and B of one
# repeat follow each other, so they share the machine's load; the ratio of
# each pair cancels most of what the other engineers' builds do to both.
#
#   scripts/ab_paired.sh OUT.csv [A_LABEL B_LABEL]     (labels default hakmem:A hakmem:B)
#
# Per workload and thread count: the median of the per-repeat ratios B/A
# (>1: B faster; for lower-is-better rows A/B, >1: B leaner), their lowest
# and highest, the number of pairs, and the medians of each side's value
# and peak RSS.  A markdown table on stdout.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUT.csv [A_LABEL B_LABEL]" >&2; exit 2; }
CSV=$1 A=${2:-hakmem:A} B=${3:-hakmem:B}
[ -s "$CSV" ] || { echo "ab_paired: $CSV missing" >&2; exit 1; }
head -1 "$CSV" | grep -q '^csv_index,repeat,workload,threads,allocator,value,unit,better,wall_s,peak_rss_kb' ||
  { echo "ab_paired: $CSV is not a run_bench_suite CSV" >&2; exit 1; }
awk -F, -v A="$A" -v B="$B" '
  function sortn(s, a,   n, i, j, x) { n = split(s, a, " ")
    for (i = 2; i <= n; i++) { x = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
    return n }
  function med(s,   a, n) { n = sortn(s, a); if (!n) return ""; return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  function lo(s,   a, n) { n = sortn(s, a); return n ? a[1] : "" }
  function hi(s,   a, n) { n = sortn(s, a); return n ? a[n] : "" }
  function h(v,   x) { x = v < 0 ? -v : v; if (v == "") return "-"; if (x >= 1e9) return sprintf("%.2fG", v / 1e9)
    if (x >= 1e6) return sprintf("%.2fM", v / 1e6); if (x >= 1e4) return sprintf("%.1fk", v / 1e3); return sprintf("%.4g", v) }
  NR > 1 && $12 == "ok" && $6 != "" {
    k = $3 SUBSEP $4; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    lower[k] = $8 == "lower"
    if ($5 == A) { va[k, $2] = $6; sa[k] = sa[k] " " $6; if ($10 != "") pa[k] = pa[k] " " $10 }
    if ($5 == B) { vb[k, $2] = $6; sb[k] = sb[k] " " $6; if ($10 != "") pb[k] = pb[k] " " $10 }
    reps[k, $2] = 1; if ($2 + 0 > maxrep) maxrep = $2 + 0 }
  END {
    printf "| workload | T | %s | %s | paired %s/%s: median | low | high | pairs | peak RSS MB %s / %s |\n", A, B, B, A, A, B
    print "|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) { k = order[i]; r = ""; np = 0
      for (j = 1; j <= maxrep; j++)
        if ((k, j) in va && (k, j) in vb && va[k, j] + 0 > 0 && vb[k, j] + 0 > 0) {
          r = r " " (lower[k] ? va[k, j] / vb[k, j] : vb[k, j] / va[k, j]); np++ }
      split(k, f, SUBSEP)
      printf "| %s | %s | %s | %s | %s | %s | %s | %d | %s |\n", f[1], f[2], h(med(sa[k])), h(med(sb[k])),
             np ? sprintf("%.3f", med(r)) : "-", np ? sprintf("%.2f", lo(r)) : "-", np ? sprintf("%.2f", hi(r)) : "-", np,
             (pa[k] == "" ? "-" : sprintf("%.0f / %.0f", med(pa[k]) / 1024, med(pb[k]) / 1024)) } }' "$CSV"
