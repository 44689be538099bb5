#!/usr/bin/env bash
# Real programs on hakmem (issue 6, item 8): each runs plainly and under
# LD_PRELOAD=$BUILD/libhakmem.so, outputs are compared, and a HAKMEM_STATS=1
# run must show a "hakmem stats" table whose "total" row counts allocations.
# Missing programs are installed with apt-get.  Prints "N passed, M failed".
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
LIB=$BUILD/libhakmem.so
[ -f "$LIB" ] || make -C "$ROOT" lib BUILD="$BUILD" >/dev/null || { echo "cannot build $LIB"; exit 1; }
T=$(mktemp -d /tmp/hakmem-real.XXXXXX)
trap 'rm -rf "$T"; [ -n "${RPID:-}" ] && kill $RPID 2>/dev/null' EXIT
pass=0; fail=0; failed=()

need() {  # command package...
  command -v "$1" >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || { echo "missing $1 (not root)"; return 1; }
  shift
  # a fresh Debian machine has no package lists: update once, first
  [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq >/dev/null 2>&1; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}
ok()  { pass=$((pass+1)); echo "PASS $1"; }
bad() { fail=$((fail+1)); failed+=("$1"); echo "FAIL $1: $2"; }

# stats: the stderr file must hold a table with a total row and allocs > 0
stats_ok() {  # file
  awk '/^hakmem stats/ {t=1} t && /allocs/ && !col {for (i=1;i<=NF;i++) if ($i=="allocs") col=i}
       t && $1=="total" && col {if ($col+0 > 0) found=1}
       END {exit found ? 0 : 1}' "$1"
}
total_allocs() { awk '/^hakmem stats/ {t=1} t && /allocs/ && !col {for (i=1;i<=NF;i++) if ($i=="allocs") col=i}
       t && $1=="total" && col {s+=$col} END {print s+0}' "$1"; }

# run NAME CMD...: plain vs preloaded (stdout compared), then preloaded with stats
run() {
  local name=$1; shift
  local d=$T/$name; mkdir -p "$d"
  (cd "$d" && mkdir -p plain hak && cd plain && "$@") >"$d/plain.out" 2>"$d/plain.err"; local rc0=$?
  (cd "$d/hak" && LD_PRELOAD=$LIB HAKMEM_STATS=1 "$@") >"$d/hak.out" 2>"$d/hak.err"; local rc1=$?
  if [ $rc0 -ne $rc1 ]; then bad "$name" "exit $rc1 on hakmem, $rc0 plain"; tail -5 "$d/hak.err" | sed 's/^/    | /'; return; fi
  if ! cmp -s "$d/plain.out" "$d/hak.out"; then bad "$name" "output differs"; diff "$d/plain.out" "$d/hak.out" | head -10 | sed 's/^/    | /'; return; fi
  if ! stats_ok "$d/hak.err"; then bad "$name" "no hakmem stats table with allocations on stderr"; tail -5 "$d/hak.err" | sed 's/^/    | /'; return; fi
  ok "$name (rc $rc0, $(wc -l <"$d/plain.out") lines identical, hakmem allocs $(total_allocs "$d/hak.err"))"
}

# ---- python3 ----------------------------------------------------------------
need /usr/bin/python3 python3
cat >"$T/alloc.py" <<'PY'
import json, random, threading, hashlib, collections
random.seed(6)
d = {}
for i in range(200000):
    d["k%d" % i] = [i, str(i) * (i % 7), {"x": i}]
for i in range(0, 200000, 3):
    del d["k%d" % i]
s = json.dumps(d, sort_keys=True)
back = json.loads(s)
big = [bytearray(random.randrange(1, 3 << 20)) for _ in range(40)]
words = collections.Counter("".join(random.choice("abcdefgh") for _ in range(6)) for _ in range(100000))
out = []
def work(n):
    l = [str(x) * 3 for x in range(n)]
    l.sort(key=lambda z: z[::-1])
    out.append(hashlib.sha256("".join(l).encode()).hexdigest())
ts = [threading.Thread(target=work, args=(20000 + k,)) for k in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(len(d), len(s), hashlib.sha256(s.encode()).hexdigest(), len(back))
print(sum(len(b) for b in big), words.most_common(3))
print(sorted(out))
PY
run python3 env PYTHONMALLOC=malloc PYTHONHASHSEED=0 /usr/bin/python3 "$T/alloc.py"

# the test modules: libpython3.11-stdlib ships test/ with regrtest and
# support only, so the directory alone does not mean they are there
PYTM=/usr/lib/python3.11/test/test_dict.py
[ -f $PYTM ] || need $PYTM libpython3.11-testsuite 2>/dev/null || true
if [ -f $PYTM ]; then
  PYT="test_dict test_list test_set test_json test_re test_bytes test_collections test_functools test_itertools test_sort test_string test_struct test_deque test_heapq test_unicode"
  pyreg() { env PYTHONMALLOC=malloc /usr/bin/python3 -m test -q $PYT 2>&1 | grep -E "^(Total tests|Result|== Tests result)" | sed 's/ in [0-9.]* *[a-z]*sec.*//'; return ${PIPESTATUS[0]}; }
  d=$T/pyregr; mkdir -p "$d"
  (cd "$d" && pyreg) >"$d/plain.out"; rc0=$?
  # no HAKMEM_STATS here: some tests assert that their subprocesses print nothing on stderr
  (cd "$d" && LD_PRELOAD=$LIB env PYTHONMALLOC=malloc /usr/bin/python3 -m test -q $PYT) >"$d/hak.full" 2>&1; rc1=$?
  grep -E "^(Total tests|Result|== Tests result)" "$d/hak.full" | sed 's/ in [0-9.]* *[a-z]*sec.*//' >"$d/hak.out"
  if [ $rc0 -eq 0 ] && [ $rc1 -eq 0 ] && cmp -s "$d/plain.out" "$d/hak.out"; then
    ok "python3 regrtest ($(echo $PYT | wc -w) test modules: $(tr '\n' ' ' <"$d/hak.out"))"
  else bad "python3 regrtest" "rc plain $rc0 hakmem $rc1"; diff "$d/plain.out" "$d/hak.out" | head; grep -E "(failed|FAIL|Error|error)" "$d/hak.full" | grep -v "^  *\(tiny|mid|large|huge\)" | head -30 | sed "s/^/    | /"; fi
else
  echo "SKIP python3 regrtest (libpython3.11-testsuite not installable)"
fi

# ---- sqlite3 ------------------------------------------------------------------
need sqlite3 sqlite3
cat >"$T/db.sql" <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INT, name TEXT, payload BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<200000)
INSERT INTO t SELECT x, x % 97, 'name' || (x * 7919 % 100003), zeroblob(x % 3000) FROM c;
CREATE INDEX t_grp ON t(grp, name);
CREATE TABLE u AS SELECT grp, count(*) AS n, sum(length(payload)) AS bytes, max(name) AS mx FROM t GROUP BY grp;
SELECT grp, n, bytes, mx FROM u ORDER BY bytes DESC LIMIT 20;
SELECT count(*), sum(id) FROM t JOIN u USING(grp) WHERE t.name > u.mx || '';
SELECT name, count(*) FROM t GROUP BY name HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT 10;
DELETE FROM t WHERE id % 3 = 0;
VACUUM;
PRAGMA integrity_check;
SELECT count(*), total(length(payload)) FROM t;
SQL
run sqlite3 sh -c "sqlite3 db.sqlite < '$T/db.sql' && sqlite3 db.sqlite 'select count(*) from t'"

# ---- perl ---------------------------------------------------------------------
need perl perl
cat >"$T/p.pl" <<'PL'
use strict; use warnings;
my %h; my @a;
for my $i (1..300000) { $h{"key$i"} = [$i, "v" x ($i % 50)]; push @a, sprintf("%08d-%s", $i * 7919 % 1000003, "x" x ($i % 13)); }
delete $h{"key$_"} for grep { $_ % 2 } 1..300000;
my @s = sort @a;
my $txt = join(",", @s[0..999]);
(my $r = $txt) =~ s/(\d+)-(x*)/$2$1/g;
my $big = "ab" x 5_000_000; my $n = () = $big =~ /ba/g;
print scalar(keys %h), " ", length($txt), " ", length($r), " ", $n, "\n";
print join(" ", map { $h{$_}[0] } (sort keys %h)[0..9]), "\n";
PL
run perl env PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0 perl "$T/p.pl"

# ---- git ----------------------------------------------------------------------
need git git
cat >"$T/git.sh" <<'SH'
set -e
export HOME=$PWD GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@e
git init -q -b main repo; cd repo
for i in $(seq 1 60); do
  export GIT_AUTHOR_DATE="2020-01-01T00:00:$((i % 60))Z" GIT_COMMITTER_DATE="2020-01-01T00:00:$((i % 60))Z"
  mkdir -p d$((i % 7)); seq $i $((i * 50)) > d$((i % 7))/f$i.txt; echo "line $i" >> common.txt
  git add -A; git commit -q -m "commit $i"
  [ $i = 30 ] && git checkout -q -b side HEAD~5 && echo side > side.txt && git add side.txt && git commit -q -m side && git checkout -q main
done
git merge -q --no-edit side
git gc -q
git log --stat --format='%H %s' | head -300
git fsck --no-progress 2>/dev/null; echo "fsck exit $?"
git rev-list --count HEAD
SH
run git bash "$T/git.sh"

# ---- redis ----------------------------------------------------------------------
if need redis-server redis-server && need redis-cli redis-tools; then
  redis_session() {  # label preload
    local port=$1 pre=$2 d=$T/redis-$1; mkdir -p "$d"
    if [ -n "$pre" ]; then
      (cd "$d" && LD_PRELOAD=$LIB HAKMEM_STATS=1 exec redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --daemonize no) >"$d/server.out" 2>"$d/server.err" &
    else
      (cd "$d" && exec redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --daemonize no) >"$d/server.out" 2>"$d/server.err" &
    fi
    RPID=$!
    for _ in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
    timeout 120 redis-benchmark -h 127.0.0.1 -p $port -n 20000 -c 8 -q -t set,get,incr,lpush,lpop,sadd,hset,lrange_100 -d 512 >"$d/bench.out" 2>&1 || echo "benchmark failed" >>"$d/bench.out"
    redis-cli -p $port flushall >/dev/null
    { for i in $(seq 1 3000); do echo "SET key:$i $(printf 'v%.0s' $(seq 1 $((i % 40 + 1))))$i"; done
      for i in $(seq 1 500); do echo "RPUSH list $i"; echo "HSET h f$i $((i * i))"; echo "SADD s m$((i % 200))"; done
      echo "SET big $(head -c 300000 /dev/zero | tr '\0' 'z')"
      for i in $(seq 1 3000 | awk 'NR%3==0'); do echo "DEL key:$i"; done; } | redis-cli -p $port >/dev/null
    { redis-cli -p $port dbsize; redis-cli -p $port --raw mget key:1 key:2 key:1000 key:2999 key:3000;
      redis-cli -p $port llen list; redis-cli -p $port lrange list 100 105; redis-cli -p $port hget h f300;
      redis-cli -p $port scard s; redis-cli -p $port strlen big; redis-cli -p $port debug digest;
      for i in 1 2 4 5 7 8 1000 1001 2999; do redis-cli -p $port get key:$i | md5sum; done; } >"$d/data.out" 2>&1
    redis-cli -p $port info memory | grep -E '^mem_allocator' >"$d/alloc.out"
    redis-cli -p $port shutdown nosave >/dev/null 2>&1
    wait $RPID; local rc=$?; RPID=
    echo $rc >"$d/rc"
  }
  redis_session 16379 ""
  redis_session 16380 1
  p=$T/redis-16379; h=$T/redis-16380
  if grep -q "benchmark failed" "$h/bench.out"; then bad redis "redis-benchmark failed on hakmem"; tail "$h/bench.out"
  elif ! cmp -s "$p/data.out" "$h/data.out"; then bad redis "data differs"; diff "$p/data.out" "$h/data.out" | head
  elif [ "$(cat "$h/rc")" != 0 ]; then bad redis "server exit $(cat "$h/rc")"; tail "$h/server.err"
  elif ! stats_ok "$h/server.err"; then bad redis "no hakmem stats with allocations"; tail "$h/server.err"
  else ok "redis ($(grep -c . "$h/bench.out") benchmark lines, $(head -1 "$h/data.out") keys identical, $(cat "$h/alloc.out" | tr -d '\r'), hakmem allocs $(total_allocs "$h/server.err"))"; fi
else
  bad redis "redis-server not installable"
fi

# ---- make -j2 building hakmem itself -------------------------------------------------
d=$T/self; mkdir -p "$d"
if make -C "$ROOT" -j2 BUILD="$d/plain" lib >"$d/plain.log" 2>&1 &&
   LD_PRELOAD=$LIB HAKMEM_STATS=1 make -C "$ROOT" -j2 BUILD="$d/hak" lib >"$d/hak.log" 2>"$d/hak.err"; then
  diffs=0
  for o in "$d"/plain/obj/*.o "$d/plain/libhakmem.a"; do cmp -s "$o" "${o/\/plain\//\/hak\/}" || diffs=$((diffs+1)); done
  if [ $diffs -ne 0 ]; then bad "make -j2 (self-host)" "$diffs build outputs differ from the plain build"
  elif ! stats_ok "$d/hak.err"; then bad "make -j2 (self-host)" "no hakmem stats"
  elif ! LD_PRELOAD=$d/hak/libhakmem.so /bin/sh -c 'echo ok' >/dev/null; then bad "make -j2 (self-host)" "self-built library does not run"
  else ok "make -j2 (self-host: $(ls "$d"/hak/obj/*.o | wc -l) objects + libhakmem.a identical to the plain build, hakmem allocs $(total_allocs "$d/hak.err"))"; fi
else bad "make -j2 (self-host)" "build failed"; tail "$d/hak.log" "$d/hak.err" 2>/dev/null | tail -20; fi

[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "test-real: $pass passed, $fail failed"
[ $fail -eq 0 ]
