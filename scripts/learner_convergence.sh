#!/usr/bin/env bash
# How long the learner's CAP takes to settle after each phase change.
#
#   scripts/learner_convergence.sh LOG.csv PHASES.csv [--md] [--check]
#
# LOG.csv: HAKMEM_LEARN_LOG of the run; PHASES.csv: what bench/phases wrote
# (phase,name,start_s,end_s,...).  A log row belongs to the phase in which
# its window ended (start < time <= end).  For each phase and class:
#   final F      CAP in the class's last row of the phase;
#   converged    the time, from the phase's start, of the row from which on
#                every row of the phase has |CAP - F| <= one step (Tiny and
#                Mid: HAKMEM_CAP_STEP_MID, default 4 pages; Large:
#                HAKMEM_CAP_STEP_LARGE, default 2 blocks).  0 if CAP was
#                already within a step of F when the phase began;
#   settled      how long CAP then stayed within that step before the phase
#                ended; under two dwells (HAKMEM_CAP_DWELL_SEC_MID, default
#                3 s) the figure is marked '?' (F may not be final) and the
#                phase is NOT SETTLED; so it is when CAP still steps one way:
#                its last two moves in one direction, the last of them less
#                than two dwells before the end.
# A class "matters" in a phase when it is active (at least
# HAKMEM_LEARN_MIN_SAMPLES allocations, Large an eighth of it, in at least
# half of the phase's windows): the headline is the largest converged time
# over those.  Idle classes whose CAP decays are listed too (kind "idle"):
# their decay waits out 10 idle windows by design (classes never active in
# the run, decaying from their start CAP, are only counted).
# --md prints a markdown table; --check exits 1 if an active class took
# longer than TARGET_S (default 10) or did not settle.
# Start CAPs (a class's CAP before its first row) come from HAKMEM_CAP_TINY,
# HAKMEM_CAP_MID and HAKMEM_CAP_LARGE as the allocator reads them: run the
# script with the environment of the run.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 LOG.csv PHASES.csv [--md] [--check]" >&2; exit 2; }
LOG=$1 PH=$2
shift 2
MD=0 CHECK=0
for a in "$@"; do
  case $a in --md) MD=1 ;; --check) CHECK=1 ;; *) echo "unknown option $a" >&2; exit 2 ;; esac
done
[ -s "$LOG" ] && [ -s "$PH" ] || { echo "learner_convergence: missing $LOG or $PH" >&2; exit 1; }
head -1 "$LOG" | grep -q '^time_s,class_size,layer,allocs,hit_rate,cap' ||
  { echo "learner_convergence: $LOG is not a learner log" >&2; exit 1; }
head -1 "$PH" | grep -q '^phase,name,start_s,end_s' ||
  { echo "learner_convergence: $PH is not a phases file" >&2; exit 1; }
awk -F, -v step_mid="${HAKMEM_CAP_STEP_MID:-4}" -v step_large="${HAKMEM_CAP_STEP_LARGE:-2}" \
    -v dwell="${HAKMEM_CAP_DWELL_SEC_MID:-3}" -v minsamp="${HAKMEM_LEARN_MIN_SAMPLES:-256}" \
    -v target="${TARGET_S:-10}" -v md="$MD" -v cap_tiny="${HAKMEM_CAP_TINY:-16}" \
    -v cap_mid="${HAKMEM_CAP_MID:-16}" -v cap_large="${HAKMEM_CAP_LARGE:-4}" '
  FNR == 1 { next }
  FILENAME == ARGV[1] {                       # phases
    np++; pname[np] = $2; ps[np] = $3 + 0; pe[np] = $4 + 0; next }
  {                                            # log rows, in time order
    n++; t[n] = $1 + 0; c[n] = $2; lay[n] = $3; al[n] = $4 + 0; cap[n] = $6 + 0
    layer[$2] = $3
    if (al[n] >= ($3 == "large" ? (int(minsamp / 8) ? int(minsamp / 8) : 1) : minsamp)) ever[$2] = 1 }
  function phase_of(x,   i) { for (i = 1; i <= np; i++) if (x > ps[i] && x <= pe[i]) return i; return 0 }
  END {
    for (i = 1; i <= n; i++) ph[i] = phase_of(t[i])
    # windows per phase (distinct row times), for the activity rule
    for (i = 1; i <= n; i++) if (ph[i] && !((ph[i], t[i]) in seen)) { seen[ph[i], t[i]] = 1; nw[ph[i]]++ }
    if (md) { print "| phase | class | layer | kind | CAP start | CAP final | changes | converged (s) | settled (s) |"
              print "|---|---|---|---|---|---|---|---|---|" }
    else printf "%-7s %8s %-6s %-6s %9s %9s %7s %13s %11s\n", "phase", "class", "layer", "kind", "cap_start",
                "cap_final", "changes", "converged_s", "settled_s"
    bad = 0
    for (p = 1; p <= np; p++) {
      delete cls; delete act; delete fin; delete last_bad; delete first_t; delete prev; delete chg; delete lastcap
      delete ldir; delete pdir; delete lastchg
      # CAP of each class when the phase began: its last row before, else
      # the start value (src/policy.c: Large counts blocks of a 1 MiB budget)
      for (k in layer) {
        if (layer[k] == "tiny") prev[k] = cap_tiny
        else if (layer[k] == "mid") prev[k] = cap_mid
        else { prev[k] = int(cap_large * 1048576 / k); if (!prev[k] && cap_large) prev[k] = 1 }
      }
      for (i = 1; i <= n && t[i] <= ps[p]; i++) prev[c[i]] = cap[i]
      for (i = 1; i <= n; i++) {
        if (ph[i] != p) continue
        k = c[i]; cls[k] = 1; fin[k] = cap[i]
        if (!(k in first_t)) first_t[k] = t[i]
        ms = lay[i] == "large" ? (int(minsamp / 8) ? int(minsamp / 8) : 1) : minsamp
        if (al[i] >= ms) act[k]++
        before = (k in lastcap) ? lastcap[k] : prev[k]
        if (cap[i] != before) {                        # a move: its time and direction, and the one before
          chg[k]++; pdir[k] = ldir[k]; ldir[k] = cap[i] > before ? 1 : -1; lastchg[k] = t[i] }
        lastcap[k] = cap[i]
      }
      worst = -1; worstk = ""; worst_all = -1; unsettled = 0
      for (k in cls) {
        st = layer[k] == "large" ? step_large : step_mid
        d0 = prev[k] - fin[k]
        if (d0 < 0) d0 = -d0
        conv = -1                      # time (from phase start) of the row from which all are in step
        for (i = 1; i <= n; i++) {
          if (ph[i] != p || c[i] != k) continue
          d = cap[i] - fin[k]; if (d < 0) d = -d
          if (d > st) conv = -2        # out of step: converged only after a later row
          else if (conv == -2) conv = t[i] - ps[p]
        }
        if (conv == -1) conv = d0 > st ? first_t[k] - ps[p] : 0
        kind = (2 * act[k] >= nw[p]) ? "active" : "idle"
        if (kind == "idle" && (!chg[k] || !(k in ever))) { if (chg[k]) unused++; continue }
        setl = pe[p] - ps[p] - conv                     # time within a step of F before the end
        # not settled: within a step of F only lately, or still stepping the
        # same way (two moves in one direction, the last in the last two dwells)
        trend = (k in lastchg) && pe[p] - lastchg[k] < 2 * dwell && chg[k] >= 2 && ldir[k] == pdir[k]
        mark = (setl < 2 * dwell || trend) ? "?" : ""
        if (md) printf "| %d %s | %s | %s | %s | %s | %d | %d | %.1f%s | %.1f |\n", p - 1, pname[p], k, layer[k], kind,
                       prev[k], fin[k], chg[k], conv, mark, setl
        else printf "%-7s %8s %-6s %-6s %9s %9d %7d %12.1f%1s %11.1f\n", (p - 1) " " pname[p], k, layer[k], kind,
                    prev[k], fin[k], chg[k], conv, mark, setl
        if (kind == "active") {
          if (mark == "?") unsettled = 1
          if (conv > worst) { worst = conv; worstk = k }
          if (conv > target || mark == "?") bad = 1
        }
        if (conv > worst_all) worst_all = conv
      }
      w = worst < 0 ? "-" : sprintf("%.1f", worst)
      fig = unsettled ? "NOT SETTLED (within a step of the final CAP, or still stepping, from " w " s)" : "converged in " w " s"
      summ[p] = sprintf("phase %d %s (%.1f-%.1f s): active classes %s%s; with idle classes %s s", p - 1, pname[p], ps[p],
                        pe[p], fig, worstk == "" ? "" : " (slowest: " worstk ")", worst_all < 0 ? "-" : sprintf("%.1f", worst_all))
    }
    print ""
    for (p = 1; p <= np; p++) print (md ? "- " : "") summ[p]
    if (unused) printf "%s(%d decays of classes never active in the run not listed)\n", md ? "- " : "", unused
    printf "%starget %s s for active classes: %s\n", md ? "- " : "", target, bad ? "MISSED" : "met"
    exit bad ? 3 : 0
  }' "$PH" "$LOG" && rc=0 || rc=$?
[ "$rc" -eq 3 ] && { [ "$CHECK" = 1 ] && exit 1 || exit 0; }
exit "$rc"
