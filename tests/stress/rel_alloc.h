/* Allocation API used by the reliability suite (tests/stress, faults,
 * lifecycle, security, fuzz).  Header-only.
 *
 *  - default build: the test binary is linked with libhakmem.a, so plain
 *    malloc/free ARE hakmem; the tests call them (the real entry points).
 *  - -DHAK_NO_OVERRIDE=1 (the ASan/TSan/fuzz builds, where the sanitizer
 *    runtime owns malloc): the tests call the hak_* API instead.
 *  - -DREL_GLIBC=1: hand-check of a harness against glibc, no hakmem at all.
 *
 * Also: sanitizer detection, /proc readers, the fault-injection hook, a fast
 * PRNG and the block pattern stamp used to verify contents at free. */
#ifndef REL_ALLOC_H
#define REL_ALLOC_H

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if !defined(REL_GLIBC)
#include "hakmem.h"
#endif

#if defined(REL_GLIBC)
#define A_MALLOC(n) malloc(n)
#define A_FREE(p) free(p)
#define A_CALLOC(n, s) calloc(n, s)
#define A_REALLOC(p, n) realloc(p, n)
#define A_MEMALIGN(a, n) memalign(a, n)
#define A_USABLE(p) malloc_usable_size(p)
#define A_OWNS(p) ((p) != NULL)
#define A_TRIM() ((size_t)malloc_trim(0))
#define REL_API_NAME "glibc"
#elif defined(HAK_NO_OVERRIDE)
#define A_MALLOC(n) hak_malloc(n)
#define A_FREE(p) hak_free(p)
#define A_CALLOC(n, s) hak_calloc(n, s)
#define A_REALLOC(p, n) hak_realloc(p, n)
#define A_MEMALIGN(a, n) hak_memalign(a, n)
#define A_USABLE(p) hak_usable_size(p)
#define A_OWNS(p) hak_owns(p)
#define A_TRIM() hak_trim()
#define REL_API_NAME "hak_* API (HAK_NO_OVERRIDE)"
#else
#define A_MALLOC(n) malloc(n)
#define A_FREE(p) free(p)
#define A_CALLOC(n, s) calloc(n, s)
#define A_REALLOC(p, n) realloc(p, n)
#define A_MEMALIGN(a, n) memalign(a, n)
#define A_USABLE(p) malloc_usable_size(p)
#define A_OWNS(p) hak_owns(p)
#define A_TRIM() hak_trim()
#define REL_API_NAME "malloc (hakmem override)"
#endif

/* ---- sanitizers ---------------------------------------------------------- */
#if defined(__SANITIZE_ADDRESS__)
#define REL_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define REL_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(REL_ASAN)
#define REL_ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(REL_TSAN)
#define REL_TSAN 1
#endif
#endif
#if defined(REL_ASAN) || defined(REL_TSAN)
#define REL_SANITIZED 1
#endif

/* ---- fault injection hook (HAK_FAULT_INJECT builds) ------------------------
 * Weak, so a test built without -DHAK_FAULT_INJECT still links against a
 * library without the hook, and can see at run time whether it is there. */
#if defined(HAK_FAULT_INJECT)
extern void hak_fault_inject_mmap(long nth);
#define REL_FAULT_HOOK() (&hak_fault_inject_mmap)
#elif !defined(REL_GLIBC)
extern void hak_fault_inject_mmap(long nth) __attribute__((weak));
#define REL_FAULT_HOOK() (&hak_fault_inject_mmap)
#else
#define REL_FAULT_HOOK() ((void (*)(long))0)
#endif

/* ---- /proc ------------------------------------------------------------------ */
/* field 0 = VmSize pages, 1 = resident pages */
static inline size_t rel_statm(int field) {
  FILE* f = fopen("/proc/self/statm", "r");
  unsigned long v[2] = {0, 0};
  if (!f) return 0;
  if (fscanf(f, "%lu %lu", &v[0], &v[1]) != 2) v[0] = v[1] = 0;
  fclose(f);
  return (size_t)v[field & 1] * (size_t)sysconf(_SC_PAGESIZE);
}
static inline size_t rel_vm_bytes(void) { return rel_statm(0); }
static inline size_t rel_rss_bytes(void) { return rel_statm(1); }

/* bytes of address space hakmem holds from the OS (0 under REL_GLIBC) */
static inline unsigned long long rel_hak_mapped(void) {
#if defined(REL_GLIBC)
  return 0;
#else
  hak_stats_t st;
  memset(&st, 0, sizeof st);
  hak_stats_get(&st);
  return st.bytes_mapped;
#endif
}

/* this program's own path, for re-executing itself: the resolved link, not
 * "/proc/self/exe" itself, which under valgrind names valgrind's tool binary */
static inline const char* rel_self_path(void) {
  static char self[4096];
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  if (k <= 0) return "/proc/self/exe";
  self[k] = 0;
  return self;
}

static inline long rel_env_long(const char* name, long dflt) {
  const char* s = getenv(name);
  if (!s || !*s) return dflt;
  char* end;
  long v = strtol(s, &end, 10);
  return (*end || v < 0) ? dflt : v;
}

/* ---- PRNG (xorshift64*) ------------------------------------------------------ */
static inline uint64_t rel_rand(uint64_t* s) {
  uint64_t x = *s;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* ---- pattern stamps ----------------------------------------------------------
 * Word i of a block holds mix(seed, i).  Blocks up to REL_FULL_STAMP bytes are
 * stamped whole; larger ones get the first and last 4 KiB plus one 64-byte
 * stripe in every 4 KiB (so an 8 MiB block costs ~130 KiB of writes).  The
 * verify function returns the offset of the first bad byte, or -1. */
#define REL_FULL_STAMP ((size_t)64 * 1024)
static inline uint64_t rel_mix(uint64_t seed, uint64_t i) {
  uint64_t z = seed + i * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  return z ^ (z >> 31);
}
static inline void rel_stamp_range(unsigned char* p, size_t from, size_t to, uint64_t seed) {
  for (size_t off = from; off < to; off++) {
    size_t w = off >> 3;
    p[off] = (unsigned char)(rel_mix(seed, w) >> ((off & 7) * 8));
  }
}
static inline long rel_check_range(const unsigned char* p, size_t from, size_t to, uint64_t seed) {
  for (size_t off = from; off < to;) {
    size_t w = off >> 3;
    uint64_t m = rel_mix(seed, w);
    if ((off & 7) == 0 && off + 8 <= to) {
      uint64_t got;
      memcpy(&got, p + off, 8);
      if (got != m) {
        for (int b = 0; b < 8; b++)
          if (p[off + b] != (unsigned char)(m >> (b * 8))) return (long)(off + b);
      }
      off += 8;
    } else {
      if (p[off] != (unsigned char)(m >> ((off & 7) * 8))) return (long)off;
      off++;
    }
  }
  return -1;
}
/* calls fn(from, to) for each stamped range of a block of n bytes */
#define REL_FOR_STAMPED(n, FROM, TO, BODY)                                      \
  do {                                                                          \
    size_t n_ = (n);                                                            \
    if (n_ <= REL_FULL_STAMP) { size_t FROM = 0, TO = n_; BODY; }               \
    else {                                                                      \
      { size_t FROM = 0, TO = 4096; BODY; }                                     \
      for (size_t s_ = 4096; s_ + 4096 < n_; s_ += 4096) {                      \
        size_t FROM = s_ + 1024, TO = s_ + 1088; BODY;                          \
      }                                                                         \
      { size_t FROM = n_ - 4096, TO = n_; BODY; }                               \
    }                                                                           \
  } while (0)
static inline void rel_stamp(void* p, size_t n, uint64_t seed) {
  REL_FOR_STAMPED(n, a, b, rel_stamp_range((unsigned char*)p, a, b, seed));
}
/* like rel_stamp but only for bytes [0, upto) of a block of n (after realloc) */
static inline long rel_verify_prefix(const void* p, size_t n, size_t upto, uint64_t seed) {
  long bad = -1;
  REL_FOR_STAMPED(n, a, b, {
    if (bad < 0 && a < upto) {
      size_t e = b < upto ? b : upto;
      bad = rel_check_range((const unsigned char*)p, a, e, seed);
    }
  });
  return bad;
}
static inline long rel_verify(const void* p, size_t n, uint64_t seed) {
  return rel_verify_prefix(p, n, n, seed);
}

#endif
