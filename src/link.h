/* Free-list links: the first word of a free block names the next free block
 * of its list.  Outside the inline fast path (fastpath.h) every read or
 * write of such a word goes through hak__link_set / hak__link_get (or
 * hak__link_try in the lock-free pop): no slow path touches a link raw.
 *
 * Default mode: the key is all zero, set and get are a plain store and load
 * behind one predicted branch on a global.  That is required, not only
 * cheap: the fast path stores raw links into the Tiny lists and the slow
 * paths read them back.
 *
 * HAKMEM_SECURE=1 (the fast path never runs: see heap.c): a link p stored
 * in the block at slot is kept as
 *
 *     rotl(p ^ slot ^ mix, rot) + add        (add, mix, rot: per-process random)
 *
 * and reading it decodes and checks that the result is NULL or a free block
 * of the list's class (small: a block start of an in-use page of that class
 * carrying the free mark; Large: a block of that class whose state byte says
 * free).  Anything else aborts with "hakmem: corrupted free list link at
 * <slot> (<class>)".  docs/DESIGN.md ("Encoded free-list links") gives the
 * reasons for this form and what it does not stop. */
#ifndef HAK_LINK_H
#define HAK_LINK_H
#include "internal.h"

#pragma GCC visibility push(hidden)

typedef struct hak_link_key {
  uintptr_t add;    /* non-zero exactly in hardened mode */
  uintptr_t mix;
  unsigned  rot;    /* 1..63 */
} hak_link_key_t;
extern hak_link_key_t hak__link_key;

void  hak__link_init(void);                    /* draws the key if HAKMEM_SECURE */
int   hak__link_valid(uintptr_t p, int cls);   /* p is a free block of class cls */
void* hak__link_get_secure(const void* slot, int cls);
int   hak__block_class(const void* p);         /* stats class of a block, or -1 */
int   hak__l25_link_ok(const void* p, unsigned lcls);   /* l25.c: a free block of Large class lcls */
__attribute__((noreturn, cold)) void hak__link_corrupt(const void* slot, int cls);
__attribute__((noreturn, cold)) void hak__link_loop(const void* p, int cls);

/* A walk to the end of a list meets a loop only after a double free that
 * no check caught (free checks only the top of the cache; malloc checks
 * each block it hands out).  Brent's check turns that hang into an abort:
 * one compare per link, against a block that jumps ahead at powers of two. */
typedef struct hak_walk { const void* seen; uint32_t steps, lim; } hak_walk_t;
#define HAK_WALK_INIT(first) {(first), 0, 1}
//! The walk reached q: aborts if q was seen before.
HAK_INLINE void hak__walk_step(hak_walk_t* w, const void* q, int cls) {
  if (hak_unlikely(q == w->seen)) hak__link_loop(q, cls);
  if (++w->steps == w->lim) {
    w->seen = q;
    w->lim <<= 1;
    w->steps = 0;
  }
}

//! 1 in hardened mode (links encoded); the one predicted branch of default mode.
HAK_INLINE int hak__link_secure(void) { return hak_unlikely(hak__link_key.add != 0); }

//! The stored form of a link to p in the block at slot (hardened mode).
HAK_INLINE uintptr_t hak__link_encode(const void* slot, const void* p) {
  unsigned r = hak__link_key.rot;
  uintptr_t x = (uintptr_t)p ^ (uintptr_t)slot ^ hak__link_key.mix;
  return ((x << r) | (x >> ((64 - r) & 63))) + hak__link_key.add;
}
//! The inverse of hak__link_encode; unchecked.
HAK_INLINE void* hak__link_decode(const void* slot, uintptr_t v) {
  unsigned r = hak__link_key.rot;
  uintptr_t x = v - hak__link_key.add;
  x = (x >> r) | (x << ((64 - r) & 63));
  return (void*)(x ^ (uintptr_t)slot ^ hak__link_key.mix);
}

//! Stores the link to p in the free block at slot.
HAK_INLINE void hak__link_set(void* slot, const void* p) {
  uintptr_t v = (uintptr_t)p;
  if (hak__link_secure()) v = hak__link_encode(slot, p);
  *(uintptr_t*)slot = v;
}

//! The link stored in the free block at slot, whose list holds class cls
//! (a stats class: small 0.., Large HAK_STAT_LARGE0..); checked when encoded.
HAK_INLINE void* hak__link_get(const void* slot, int cls) {
  if (hak__link_secure()) return hak__link_get_secure(slot, cls);
  return (void*)*(const uintptr_t*)slot;
}

//! The last block of a chain of class cls; its length goes to *n if n.
HAK_INLINE void* hak__link_last(void* chain, int cls, uint32_t* n) {
  void* last = chain;
  uint32_t k = 1;
  hak_walk_t w = HAK_WALK_INIT(chain);
  for (void* q; (q = hak__link_get(last, cls)) != NULL; k++) {
    hak__walk_step(&w, q, cls);
    last = q;
  }
  if (n) *n = k;
  return last;
}

//! The k-th block (k >= 1) of a chain of class cls; the block after it goes
//! to *rest.  The chain is not cut: callers end the prefix as they need.
HAK_INLINE void* hak__link_nth(void* chain, uint32_t k, int cls, void** rest) {
  void* t = chain;
  for (uint32_t i = 1; i < k; i++) t = hak__link_get(t, cls);
  *rest = hak__link_get(t, cls);
  return t;
}

//! For a reader that may see a stale value (the lock-free pop): decodes raw,
//! read from slot, into *out and says whether it is a valid link; never
//! aborts.  Default mode: only that it is NULL or 16-aligned inside a
//! segment (reading its link then cannot fault).
HAK_INLINE int hak__link_try(const void* slot, uintptr_t raw, int cls, void** out) {
  if (hak__link_secure()) {
    void* p = hak__link_decode(slot, raw);
    *out = p;
    return !p || hak__link_valid((uintptr_t)p, cls);
  }
  *out = (void*)raw;
  int kind = hak__seg_kind(raw);
  return !raw || ((raw & 15) == 0 && kind != HAK_SEG_NONE && kind <= HAK_SEG_LARGE);
}

#pragma GCC visibility pop
#endif
