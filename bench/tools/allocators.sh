# shellcheck shell=bash
# Allocator table shared by the bench scripts (sourced, not run).
# Needs $BUILD (default build); honours BENCH_<NAME>_SO overrides and
# BENCH_HAKMEM_EXPECT (the dladdr substring for hakmem, default libhakmem).
# "hakmem:LABEL" is hakmem with extra env (see run_bench_suite.sh), and with
# BENCH_SO_LABEL=path another build of it (A/B of two builds: scripts/ab.sh).
BUILD=${BUILD:-build}
ARCH=${ARCH:-$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)}
LIBDIR=${LIBDIR:-/usr/lib/$ARCH}

# alloc_so NAME: the library to LD_PRELOAD (empty for glibc)
# alloc_expect NAME: substring of the dladdr path of malloc when it worked
# alloc_pkg NAME: how to get it
alloc_so() {
  case ${1%%:*} in
    hakmem)   # hakmem:LABEL may run another build: BENCH_SO_LABEL=/path/libhakmem.so
              local v="BENCH_SO_${1#*:}"
              if [[ $1 == *:* && -n "${!v:-}" ]]; then echo "${!v}"
              else echo "${BENCH_HAKMEM_SO:-$PWD/$BUILD/libhakmem.so}"; fi ;;
    glibc)    echo "" ;;
    mimalloc) echo "${BENCH_MIMALLOC_SO:-$LIBDIR/libmimalloc.so.2}" ;;
    jemalloc) echo "${BENCH_JEMALLOC_SO:-$LIBDIR/libjemalloc.so.2}" ;;
    tcmalloc) echo "${BENCH_TCMALLOC_SO:-$LIBDIR/libtcmalloc_minimal.so.4}" ;;
    *) echo "unknown allocator '$1'" >&2; exit 2 ;;
  esac
}
alloc_expect() {
  case ${1%%:*} in
    hakmem) echo "${BENCH_HAKMEM_EXPECT:-libhakmem}" ;; glibc) echo libc.so ;; mimalloc) echo libmimalloc ;;
    jemalloc) echo libjemalloc ;; tcmalloc) echo libtcmalloc ;;
  esac
}
alloc_pkg() {
  case ${1%%:*} in
    hakmem) echo "(run 'make lib')" ;; mimalloc) echo "apt-get install libmimalloc2.0" ;;
    jemalloc) echo "apt-get install libjemalloc2" ;; tcmalloc) echo "apt-get install libtcmalloc-minimal4" ;;
  esac
}

