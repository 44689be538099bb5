#!/usr/bin/env bash
# Real programs under LD_PRELOAD=$BUILD/libhakmem.so HAKMEM_STATS=1: each
# runs once plainly (glibc) and once preloaded; the outputs must be equal
# and the stats table each preloaded process prints at exit must show that
# hakmem served the calls (its "total" row's allocs above a threshold).
# Env: BUILD (absolute build dir), ROOT (repo root); exit 0 = pass.
set -u
BUILD=${BUILD:-$(cd "$(dirname "$0")/../../build" && pwd)}
LIB="$BUILD/libhakmem.so"
[ -f "$LIB" ] || { echo "FAIL: $LIB not built"; exit 1; }

# Tools the programs need; install only what is missing (Debian).
need() {  # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "installing $2 for $1"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y "$2" >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y "$2" >/dev/null 2>&1; })
  fi
  command -v "$1" >/dev/null 2>&1 || { echo "FAIL: $1 missing and could not be installed"; exit 1; }
}
need sort coreutils
need awk mawk
need gcc gcc
need g++ g++
need tar tar
need gzip gzip
need xargs findutils
need md5sum coreutils
# The system python (not a pyenv shim, which is a shell script around it).
PY=/usr/bin/python3
[ -x "$PY" ] || { need python3 python3; PY=$(command -v python3); }

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
pass=0; fail=0

# allocs in the "total" row of every stats table in a stderr file, one line
# per table.  The column comes from the header row that names "allocs".
table_totals() {
  awk '
    /^hakmem stats/ { intable = 1; col = 0; next }
    intable && col == 0 { for (i = 1; i <= NF; i++) if ($i == "allocs") col = i; next }
    intable && $1 == "total" {
      # header "layer allocs ..." lines up with "total <allocs> ..."
      print $col; intable = 0
    }' "$1"
}

# check NAME MIN_ALLOCS MIN_TABLES CMD...: runs CMD plainly and preloaded
# (stdin from $W/in if it exists), compares stdout, checks the tables.
check() {
  local name=$1 min=$2 ntab=$3; shift 3
  local in=/dev/null; [ -f "$W/in" ] && in="$W/in"
  local t0=$SECONDS
  if ! "$@" <"$in" >"$W/plain.out" 2>"$W/plain.err"; then
    echo "FAIL $name: the plain run failed (rc=$?):"; head -5 "$W/plain.err"; fail=$((fail+1)); return
  fi
  env LD_PRELOAD="$LIB" HAKMEM_STATS=1 "$@" <"$in" >"$W/hak.out" 2>"$W/hak.err"
  local rc=$?
  local why=""
  if [ $rc -ne 0 ]; then why="exit status $rc under hakmem"
  elif ! cmp -s "$W/plain.out" "$W/hak.out"; then why="output differs from the plain run"
  fi
  local totals n best
  totals=$(table_totals "$W/hak.err")
  n=$(printf '%s\n' "$totals" | grep -c '^[0-9]')
  best=$(printf '%s\n' "$totals" | sort -n | tail -1)
  if [ -z "$why" ]; then
    if [ "$n" -lt "$ntab" ]; then why="expected $ntab stats table(s) on stderr (one per process), found $n"
    elif [ -z "$best" ] || [ "$best" -lt "$min" ]; then why="stats show ${best:-no} allocs, expected at least $min"
    elif grep -q '^hakmem: ' "$W/hak.err"; then why="hakmem complained on stderr"
    fi
  fi
  if [ -n "$why" ]; then
    fail=$((fail+1))
    echo "FAIL $name: $why"
    if [ -s "$W/hak.out" ] || [ -s "$W/plain.out" ]; then
      diff "$W/plain.out" "$W/hak.out" | head -10 | sed 's/^/    diff: /'
    fi
    grep -v '^  ' "$W/hak.err" | head -20 | sed 's/^/    stderr: /'
  else
    pass=$((pass+1))
    echo "ok   $name ($((SECONDS-t0))s; $n table(s), most allocs $best)"
  fi
  rm -f "$W/in"
}

# --- sort on a big generated file: 200k lines, also with 2 threads and a
# small buffer (temp files and merges)
awk 'BEGIN { srand(42); for (i = 0; i < 200000; i++) printf "%08d %s line-%d\n", int(rand()*1e8), substr("abcdefghijklmnopqrstuvwxyz", 1 + i % 26, 1 + i % 17), i }' >"$W/big.txt"
check "sort 200k lines" 10 1 env LC_ALL=C sort "$W/big.txt"
check "sort --parallel=2 -S 2M -k2,2 -k1,1n" 50 1 env LC_ALL=C sort --parallel=2 -S 2M -T "$W" -k2,2 -k1,1n "$W/big.txt"
check "sort -u -r (locale C.UTF-8)" 10 1 env LC_ALL=C.UTF-8 sort -u -r "$W/big.txt"

# --- python3, allocation heavy, with threads; PYTHONMALLOC=malloc sends
# every object through malloc
cat >"$W/alloc.py" <<'EOF'
import hashlib, json, random, threading, re, collections
random.seed(7)
h = hashlib.sha256()
d = {}
for i in range(200000):
    d["k%d" % i] = [i, str(i) * (i % 7), {"x": i % 13}]
for i in range(0, 200000, 3):
    del d["k%d" % i]
s = json.dumps(d, sort_keys=True)
h.update(s.encode())
back = json.loads(s)
assert back == d
words = re.findall(r"[a-z]+", " ".join(random.choice(["alpha", "beta", "gamma", "delta"]) * random.randint(1, 5) for _ in range(50000)))
h.update(repr(collections.Counter(words).most_common(10)).encode())
out = [None] * 4
def work(k):
    acc = []
    for j in range(30000):
        acc.append(bytes([j % 256]) * (j % 700))
        if len(acc) > 500:
            acc = acc[250:]
    out[k] = sum(len(a) for a in acc)
ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
for t in ts: t.start()
for t in ts: t.join()
h.update(repr(out).encode())
big = [bytearray(random.randint(1, 3000000)) for _ in range(20)]
h.update(repr([len(b) for b in big]).encode())
print(h.hexdigest(), len(d), len(words), out)
EOF
check "python3 allocation-heavy (PYTHONMALLOC=malloc)" 100000 1 env PYTHONMALLOC=malloc PYTHONHASHSEED=0 "$PY" "$W/alloc.py"

# --- a shell pipeline: every process in it is preloaded and prints a table
check "seq | awk | sort | uniq -c | sort -rn | head" 5 4 sh -c \
  'seq 1 300000 | awk "{ print \$1 % 977, \$1 % 13 }" | LC_ALL=C sort | uniq -c | LC_ALL=C sort -k1,1nr -k2,2n -k3,3n | head -50'

# --- the compiler: gcc -O2 -c of a generated C file; objects must be equal
{
  echo '#include <stdio.h>'
  echo '#include <stdlib.h>'
  echo '#include <string.h>'
  for i in $(seq 1 300); do
    echo "struct s$i { int a[$((i % 17 + 1))]; double d; char* n; };"
    echo "static int f$i(struct s$i* p, int k) { int r = 0; for (int j = 0; j < $((i % 17 + 1)); j++) r += p->a[j] * k + j; if (r % $((i % 5 + 2))) r ^= (int)p->d; return r + (p->n ? (int)strlen(p->n) : 0); }"
  done
  echo 'int main(int argc, char** argv) { long t = 0;'
  for i in $(seq 1 300); do echo "  { struct s$i v; memset(&v, argc, sizeof v); v.n = argv[0]; t += f$i(&v, $i); }"; done
  echo '  printf("%ld\n", t); return 0; }'
} >"$W/gen.c"
check "gcc -O2 -c (cc1, as)" 10000 2 sh -c "gcc -O2 -c '$W/gen.c' -o '$W/gen.o' && od -An -tx1 '$W/gen.o' | md5sum"

# --- C++: new/delete go through libstdc++'s operator new, which calls malloc
cat >"$W/cxx.cc" <<'CXX'
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>
int main() {
  std::map<std::string, std::vector<int>> m;
  for (int i = 0; i < 100000; i++) m["key" + std::to_string(i % 5000)].push_back(i);
  std::unordered_map<int, std::unique_ptr<std::string>> u;
  for (int i = 0; i < 100000; i++) u[i % 7000] = std::make_unique<std::string>(std::to_string(i) + std::string(i % 300, 'x'));
  std::vector<std::thread> ts;
  std::vector<unsigned long> sums(4);
  for (int t = 0; t < 4; t++)
    ts.emplace_back([t, &sums] {
      std::vector<std::unique_ptr<char[]>> v;
      for (int i = 0; i < 50000; i++) {
        v.emplace_back(new char[(i * 31) % 5000 + 1]);
        if (v.size() > 300) v.erase(v.begin(), v.begin() + 150);
      }
      sums[t] = v.size();
    });
  for (auto& th : ts) th.join();
  unsigned long h = 0;
  for (auto& kv : m) h = h * 31 + kv.first.size() + kv.second.size();
  for (auto& kv : u) h += kv.second->size();
  std::printf("%lu %zu %zu %lu %lu\n", h, m.size(), u.size(), sums[0], sums[3]);
  return 0;
}
CXX
if g++ -O2 -pthread "$W/cxx.cc" -o "$W/cxx" 2>"$W/cxx.err"; then
  check "C++ new/delete, std containers, threads" 100000 1 "$W/cxx"
else
  echo "FAIL C++: could not compile the test program:"; head -5 "$W/cxx.err"; fail=$((fail+1))
fi

# --- a few everyday tools
check "tar | gzip | md5sum of /usr/include" 10 1 sh -c 'tar -C /usr/include -cf - . 2>/dev/null | gzip -1 | md5sum'
check "find | xargs grep -c" 100 2 sh -c 'find /usr/include -name "*.h" | LC_ALL=C sort | head -400 | xargs grep -c define | LC_ALL=C sort | md5sum'

echo "preload: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
