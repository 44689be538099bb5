#!/usr/bin/env bash
# Make sure the peer allocators and tools of the benchmark suite are there.
# As root with apt-get: installs what is missing (apt-get update first).
# Otherwise: says what is missing and how to install it; never fails, the
# suite then skips the missing peers.
set -euo pipefail
ARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
L=/usr/lib/$ARCH
missing=()
[ -f "$L/libmimalloc.so.2" ] || missing+=(libmimalloc2.0)
[ -f "$L/libjemalloc.so.2" ] || missing+=(libjemalloc2)
[ -f "$L/libtcmalloc_minimal.so.4" ] || missing+=(libtcmalloc-minimal4)
command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v xz >/dev/null || missing+=(xz-utils)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "bench: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq "${missing[@]}" || echo "bench: apt-get install failed; the suite will skip what is missing" >&2
else
  echo "bench: missing ${missing[*]}; the suite skips them." >&2
  echo "bench: to install: sudo apt-get install -y ${missing[*]}" >&2
fi
