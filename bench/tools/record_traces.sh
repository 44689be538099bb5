#!/usr/bin/env bash
# Record the allocation traces kept in bench/traces/ (sizes and lifetimes
# only).  Needs build/bench/trace_rec.so (make benches-tools), python3,
# sqlite3 and gcc.  Usage: bench/tools/record_traces.sh [BUILD]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
REC=$PWD/$BUILD/bench/trace_rec.so
OUT=bench/traces
MAX=${HAKTRACE_MAX:-1500000}
[ -f "$REC" ] || { echo "missing $REC: run 'make bench-tools' first" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# rec NAME CMD...: record CMD (and its children); keep the largest per-process trace.
rec() {
  local name=$1; shift
  mkdir -p "$tmp/$name"
  HAKTRACE_DIR="$tmp/$name" HAKTRACE_MAX=$MAX LD_PRELOAD="$REC" "$@" >/dev/null
  local big
  big=$(ls -S "$tmp/$name"/trace.*.txt | head -1)
  xz -9e -c "$big" > "$OUT/$name.trace.xz"
  echo "$name: $(wc -l < "$big") events -> $(stat -c %s "$OUT/$name.trace.xz") bytes"
}

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
PYTHONMALLOC=malloc rec python "$PY" bench/tools/py_workload.py

cat > "$tmp/idx.sql" <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, note TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 60000)
INSERT INTO t SELECT x, hex(randomblob(8 + x % 24)), random() % 1000, substr(hex(randomblob(40)), 1, x % 80) FROM c;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_score_note ON t(score, note);
SELECT count(*), sum(length(note)) FROM t WHERE name > 'A';
SQL
rec sqlite sqlite3 "$tmp/db.sqlite" ".read $tmp/idx.sql"

# The compiler proper (cc1) is the largest process of a gcc run.
rec gcc gcc -O2 -std=gnu11 -Ibench -c bench/replay.c -o "$tmp/replay.o"
ls -la "$OUT"
