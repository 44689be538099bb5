/* The Large (L2.5) segment's header: l25.c's, and read inline by the
 * realloc check (alloc.c), where a call to l25.c was 5.7% of the realloc
 * benchmark's time (a string grown by appends asks at every append). */
#ifndef HAK_L25_H
#define HAK_L25_H
#include "internal.h"

#define L25_FIRST   ((uintptr_t)64 * 1024)
#define L25_MAXBLK  64
enum { L25_UNUSED = 0, L25_LIVE = 1, L25_FREE = 2, L25_COLD = 3 };

typedef struct l25_seg {
  uint32_t magic;
  uint8_t  kind;
  uint8_t  cls;
  uint16_t nblocks;
  uint32_t block_size;
  uint32_t div_mul, div_lim;
  uint8_t  div_shift;
  uint32_t first;                         /* block 0's offset: L25_FIRST plus the colour (l25.c) */
  uint32_t trim_gen, trim_count;          /* scratch of the reclaimer, under l25_lock */
  struct l25_seg* next_dead;
  _Atomic uint8_t state[L25_MAXBLK];
  uint32_t req[L25_MAXBLK];               /* a live block's request, for realloc (hak__l25_keep) */
} l25_seg_t;

//! The index of block start p in its segment s, unchecked: exact division
//! of its offset past the first block, with a rotate that makes any other
//! offset (or one before the first block) a number above div_lim.
HAK_INLINE uint32_t hak__l25_slot(const l25_seg_t* s, const void* p) {
  uint32_t x = (uint32_t)((uintptr_t)p - (uintptr_t)s - s->first) * s->div_mul;
  return (x >> s->div_shift) | (x << ((32 - s->div_shift) & 31));
}

//! Finds the segment and block index of p; -1 if p is not a block start.
HAK_INLINE int hak__l25_index(const void* p, l25_seg_t** sp) {
  uintptr_t a = (uintptr_t)p;
  l25_seg_t* s = (l25_seg_t*)(a & ~HAK_SEG_MASK);
  *sp = s;
  if (a - (uintptr_t)s < s->first) return -1;
  uint32_t x = hak__l25_slot(s, p);
  return x <= s->div_lim ? (int)x : -1;      /* x is the index */
}

//! The usable size of p if it is a live Large block, else 0 (the caller's
//! checked path then says what is wrong with it).
HAK_INLINE size_t hak__l25_usable_quick(const void* p) {
  l25_seg_t* s;
  int idx = hak__l25_index(p, &s);
  if (idx < 0 || atomic_load_explicit(&s->state[idx], memory_order_relaxed) != L25_LIVE) return 0;
  return s->block_size;
}

//! 1 if live Large block p (of usable size >= n) serves n in place because
//! n is at least its request (the one it was handed out for, or the last
//! this kept it for), which becomes n.  A block lent by a larger class
//! (l25_borrow) is up to 3x its request, so "wastes at most half" moved a
//! string built by appends at every append until it was half full.
HAK_INLINE int hak__l25_keep(void* p, size_t n) {
  l25_seg_t* s;
  int idx = hak__l25_index(p, &s);
  if (idx < 0 || n < s->req[idx]) return 0;
  s->req[idx] = (uint32_t)n;
  return 1;
}
//! Marks p, a block of class cls, live for request req and counts the alloc.
//! p comes from a cache or a carve: a block start, so its index needs no check.
HAK_INLINE void* hak__l25_hand_out(hak_heap_t* h, unsigned cls, void* p, size_t req) {
  l25_seg_t* s = (l25_seg_t*)((uintptr_t)p & ~HAK_SEG_MASK);
  uint32_t idx = hak__l25_slot(s, p);
  atomic_store_explicit(&s->state[idx], L25_LIVE, memory_order_relaxed);
  s->req[idx] = (uint32_t)req;
  HAK_CSTAT(h, HAK_STAT_LARGE0 + cls, alloc, 1);
  HAK_CSTAT(h, HAK_STAT_LARGE0 + cls, req_bytes, req);
  return p;
}

/* The thread's Large bins, reached from the inline malloc and free
 * (fastpath.h) behind their small branch, before the generic paths (no
 * heap lookup, no errno save): a hit took 246 instructions a malloc+free
 * pair through those paths' layered calls.  The empty sentinel's bins
 * have no block and no room, so an uninitialised, secure or valgrind
 * thread misses and takes the checked path. */

//! A block for n (Large) off the thread's bin, or NULL if it is empty.
HAK_INLINE void* hak__l25_pop(hak_heap_t* h, size_t n) {
  unsigned cls = hak__large_class(n);
  hak_large_bin_t* b = &h->large[cls];
  if (hak_unlikely(b->count == 0)) return NULL;
  return hak__l25_hand_out(h, cls, b->items[--b->count], n);
}

//! Frees p onto the thread's bin: 0 if p is not a live Large block's start
//! or the bin is full (the caller's checked path then deals with it).
HAK_INLINE int hak__l25_push(hak_heap_t* h, void* p) {
  l25_seg_t* s;
  int idx = hak__l25_index(p, &s);
  if (hak_unlikely(idx < 0)) return 0;
  hak_large_bin_t* b = &h->large[s->cls];
  if (hak_unlikely(b->count >= b->limit ||
                   atomic_load_explicit(&s->state[idx], memory_order_relaxed) != L25_LIVE))
    return 0;
  atomic_store_explicit(&s->state[idx], L25_FREE, memory_order_relaxed);
  HAK_CSTAT(h, HAK_STAT_LARGE0 + s->cls, free, 1);
  b->items[b->count++] = p;
  return 1;
}
#endif
