/* Encoded free-list links (HAKMEM_SECURE=1): the key, the checked decode
 * and the report.  The inline parts and the rule are in link.h. */
#define _GNU_SOURCE
#include "link.h"
#include <sys/auxv.h>
#include <sys/random.h>
#include <string.h>

hak_link_key_t hak__link_key;

//! A 64-bit finalizer: every input bit flips about half the output bits.
static uint64_t link_mix64(uint64_t x) {
  x ^= x >> 30; x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27; x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

//! Draws the key in hardened mode; in default mode it stays zero, so links
//! stay plain (the fast path writes them raw).  Independent of the cookie:
//! a free mark (cookie ^ address) that leaks gives the cookie away, and must
//! not give the link key with it.
void hak__link_init(void) {
  if (!hak__opt.secure) return;
  uint64_t r[3] = {0, 0, 0};
  if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
    /* no entropy pool yet (early boot) or no syscall: the kernel's
     * AT_RANDOM bytes the cookie does not use, the clock, and ASLR */
    const unsigned char* rnd = (const unsigned char*)getauxval(AT_RANDOM);
    uint64_t a = 0;
    if (rnd) memcpy(&a, rnd, sizeof a);
    r[0] ^= a;
    r[1] ^= hak__os_clock_ns();
    r[2] ^= (uint64_t)(uintptr_t)&r ^ (uint64_t)(uintptr_t)&hak__link_key;
  }
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 3; i++) { s = link_mix64(s + r[i]); r[i] = s; }
  hak__link_key.mix = r[1];
  hak__link_key.rot = 1 + (unsigned)(r[2] % 63);
  hak__link_key.add = r[0] | 1;      /* non-zero: it also says "encoded" */
}

//! 1 if p is a free block of class cls.  A lock-free pop may call this on a
//! stale link, naming a block that another thread owns by now: the reads
//! are racy by design (the memory stays mapped, see hak__grace_wait, and a
//! stale view fails the pop's CAS), hence no TSan instrumentation in the
//! functions that inline it.
HAK_INLINE int link_valid(uintptr_t p, int cls) {
  if (p & 15) return 0;
  int kind = hak__seg_kind(p);
  if (hak_likely(cls >= 0 && cls < HAK_SMALL_CLASSES)) {
    if (kind != HAK_SEG_SMALL) return 0;
    hak_page_t* pg = hak__page_of(p);
    uint8_t st = atomic_load_explicit(&pg->state, memory_order_relaxed);
    if (st != HAK_PAGE_ACTIVE && st != HAK_PAGE_FULL) return 0;
    if (pg->cls != cls || !hak__is_block_start(pg, p)) return 0;
    /* every free small block carries its mark (tiny, pool, remote frees) */
    return __atomic_load_n(&((uintptr_t*)p)[1], __ATOMIC_RELAXED) == hak__mark(p);
  }
  if (cls >= HAK_STAT_LARGE0 && cls < HAK_STAT_HUGE)
    return kind == HAK_SEG_LARGE && hak__l25_link_ok((const void*)p, (unsigned)(cls - HAK_STAT_LARGE0));
  return 0;
}

//! Out-of-line form, for hak__link_try.
__attribute__((no_sanitize("thread"))) int hak__link_valid(uintptr_t p, int cls) { return link_valid(p, cls); }

//! Decodes and checks the link at slot; aborts on a corrupted one.  (The
//! slot is the caller's own block; the target's mark is read racily only
//! when the list itself is corrupted.)
__attribute__((no_sanitize("thread"))) void* hak__link_get_secure(const void* slot, int cls) {
  void* p = hak__link_decode(slot, *(const uintptr_t*)slot);
  if (p && hak_unlikely(!link_valid((uintptr_t)p, cls))) hak__link_corrupt(slot, cls);
  return p;
}

//! The stats class of a small or Large block (for checks and messages), -1
//! if p is in neither kind of segment.  Never aborts.
__attribute__((no_sanitize("thread"))) int hak__block_class(const void* p) {
  uintptr_t a = (uintptr_t)p;
  int kind = hak__seg_kind(a);
  if (kind == HAK_SEG_SMALL) {
    unsigned c = hak__page_of(a)->cls;
    return c < HAK_SMALL_CLASSES ? (int)c : -1;
  }
  if (kind == HAK_SEG_LARGE) {
    int c = hak__l25_block_class(p);
    return c >= 0 ? HAK_STAT_LARGE0 + c : -1;
  }
  return -1;
}

//! Reports the block at slot, whose link does not name a free block of cls.
void hak__link_corrupt(const void* slot, int cls) {
  hak__misuse_at("corrupted free list link", slot, cls);
}
