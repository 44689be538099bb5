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

//! Finds the segment and block index of p; -1 if p is not a block start.
HAK_INLINE int hak__l25_index(const void* p, l25_seg_t** sp) {
  uintptr_t a = (uintptr_t)p;
  l25_seg_t* s = (l25_seg_t*)(a & ~HAK_SEG_MASK);
  *sp = s;
  uintptr_t off = a - (uintptr_t)s;
  if (off < s->first) return -1;
  uint32_t x = (uint32_t)(off - s->first) * s->div_mul;
  x = (x >> s->div_shift) | (x << ((32 - s->div_shift) & 31));
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
#endif
