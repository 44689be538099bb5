/* HAKMEM_SECURE=1, the hardened mode.  The thread's heap is kept out of
 * the fast path (its TLS pointer stays the empty sentinel), so every
 * malloc and free comes here; the default mode pays nothing for it.
 *
 *  - Every small and Large block carries a trailer in its last 8 bytes:
 *    the requested size, encoded with the cookie and the address.  The
 *    slack between the request and the trailer is filled with a pattern.
 *    free checks both: an overflow past the request is caught.
 *    malloc_usable_size reports the request exactly.
 *  - Freed blocks are poisoned (all but the free mark in word 1) and wait
 *    in a per-thread FIFO of HAK_QUAR_N blocks before they can be reused
 *    (delayed reuse); the poison is checked when they leave it: a write
 *    after free is caught.  A block freed twice while it waits is caught by
 *    its free mark.
 *  - Once out of the FIFO, a block's free-list link is stored encoded and
 *    checked when read (link.h): a write after free that forges it aborts
 *    instead of steering malloc to the attacker's address.
 *  - Huge blocks get a PROT_NONE guard page after them and are unmapped
 *    at free (no reuse), so overflows and late reads fault at once. */
#define _GNU_SOURCE
#include "internal.h"
#include <errno.h>
#include <string.h>

#define SEC_SLACK  0xAB      /* between the request and the trailer */
#define SEC_POISON 0xDF      /* a freed block, but for the free mark (word 1) */
#define SEC_POISON_MAX 4096  /* poison at most this much of a block */

HAK_INLINE uintptr_t sec_trailer(const void* p, size_t n) {
  return hak__cookie ^ ((uintptr_t)p * 0x9E3779B97F4A7C15ull) ^ (uintptr_t)n;
}

//! Size of the block that holds p, and where its trailer is.
static uintptr_t* sec_trailer_of(const void* p, size_t* bs) {
  *bs = hak__block_size(p);
  return (uintptr_t*)((char*)p + *bs - 8);
}

//! 1 if bytes [from, to) of p all equal c (a word at a time where aligned).
static int sec_all(const void* p, size_t from, size_t to, unsigned char c) {
  const unsigned char* b = p;
  uint64_t w = 0x0101010101010101ull * c;
  size_t i = from;
  for (; i < to && (i & 7); i++) if (b[i] != c) return 0;
  for (; i + 8 <= to; i += 8) if (*(const uint64_t*)(b + i) != w) return 0;
  for (; i < to; i++) if (b[i] != c) return 0;
  return 1;
}

//! The stats class of a small or Large block, for messages.
static int sec_cls(const void* p) {
  if (hak__seg_kind((uintptr_t)p) == HAK_SEG_SMALL) return hak__page_of((uintptr_t)p)->cls;
  size_t bs = hak__block_size(p);
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++)
    if (hak__large_size[c] == bs) return HAK_STAT_LARGE0 + (int)c;
  return -1;
}

//! The request recorded in p's trailer; aborts if the trailer or the slack
//! was overwritten.
static size_t sec_check(const void* p) {
  size_t bs;
  uintptr_t* t = sec_trailer_of(p, &bs);
  size_t n = (size_t)(*t ^ sec_trailer(p, 0));
  if (n > bs - 8) hak__misuse("heap overflow, or a free of a block never handed out (block trailer overwritten)", p, sec_cls(p));
  if (!sec_all(p, n, bs - 8, SEC_SLACK)) hak__misuse("heap overflow (past the requested size)", p, sec_cls(p));
  return n;
}

//! Checks the poison of a waiting block (its first max bytes).
static void sec_check_poison(void* p, size_t max) {
  size_t bs = hak__block_size(p);
  size_t lim = bs < SEC_POISON_MAX ? bs : SEC_POISON_MAX;
  if (lim > max) lim = max;
  const uintptr_t* w = p;
  if (w[0] != 0x0101010101010101ull * SEC_POISON || !hak__marked(p))
    hak__misuse("write after free", p, sec_cls(p));
  if (!sec_all(p, 16, lim, SEC_POISON)) hak__misuse("write after free", p, sec_cls(p));
}

//! Leaves the quarantine: the poison must be intact, then the real free.
static void sec_release(hak_heap_t* h, void* p) {
  sec_check_poison(p, SEC_POISON_MAX);
  ((uintptr_t*)p)[1] = 0;            /* the real free sets its own mark */
  hak__free_with(h, p);
}

//! Each allocation also checks the newest and the oldest waiting blocks,
//! so a write after free is caught soon even if the queue moves slowly.
static void sec_spot_check(hak_heap_t* h) {
  if (!h || !h->quar_count) return;
  sec_check_poison(h->quar[(h->quar_head + h->quar_count - 1) % HAK_QUAR_N], 256);
  sec_check_poison(h->quar[h->quar_head], 256);
}

void* hak__secure_alloc(hak_heap_t* h, size_t n, size_t align) {
  if (n > (size_t)PTRDIFF_MAX - 16) { errno = ENOMEM; return NULL; }
  size_t need = n + 8;
  sec_spot_check(h);
  if (need > HAK_LARGE_MAX || align > 65536) return hak__huge_alloc(n, align, 0);
  void* p;
  if (align > 16) {
    p = hak__alloc_aligned_with(h, align, need);
  } else if (h) {
    p = hak__alloc_with(h, need);
  } else {
    hak_heap_t* g = hak__global_heap_lock();
    p = g ? hak__alloc_with(g, need) : NULL;
    hak__global_heap_unlock();
  }
  if (!p) return NULL;
  if (hak__seg_kind((uintptr_t)p) > HAK_SEG_LARGE) return p;      /* huge: guarded instead */
  size_t bs;
  uintptr_t* t = sec_trailer_of(p, &bs);
  memset((char*)p + n, SEC_SLACK, bs - 8 - n);
  *t = sec_trailer(p, 0) ^ (uintptr_t)n;
  return p;
}

size_t hak__secure_usable(const void* p) {
  int kind = hak__seg_kind((uintptr_t)p);
  if (kind == HAK_SEG_NONE) hak__misuse("invalid pointer", p, -1);
  if (kind != HAK_SEG_SMALL && kind != HAK_SEG_LARGE) return hak__huge_usable(p);
  return sec_check(p);
}

void hak__secure_free(hak_heap_t* h, void* p) {
  sec_check(p);
  size_t bs = hak__block_size(p);
  memset(p, SEC_POISON, bs < SEC_POISON_MAX ? bs : SEC_POISON_MAX);
  hak__mark_free(p);                 /* a second free while it waits: caught by the mark */
  /* at most HAK_QUAR_N blocks and 8 MiB wait: older ones go first */
  h->quar_bytes += bs;
  while (h->quar_count && h->quar_bytes > ((size_t)8 << 20)) {
    void* old = h->quar[h->quar_head];
    h->quar_head = (h->quar_head + 1) % HAK_QUAR_N;
    h->quar_count--;
    h->quar_bytes -= hak__block_size(old);
    sec_release(h, old);
  }
  if (h->quar_count == HAK_QUAR_N) {
    void* old = h->quar[h->quar_head];
    h->quar[h->quar_head] = p;
    h->quar_head = (h->quar_head + 1) % HAK_QUAR_N;
    h->quar_bytes -= hak__block_size(old);
    sec_release(h, old);
    return;
  }
  h->quar[(h->quar_head + h->quar_count) % HAK_QUAR_N] = p;
  h->quar_count++;
}

void hak__secure_flush(hak_heap_t* h) {
  while (h->quar_count) {
    void* p = h->quar[h->quar_head];
    h->quar_head = (h->quar_head + 1) % HAK_QUAR_N;
    h->quar_count--;
    h->quar_bytes -= hak__block_size(p);
    sec_release(h, p);
  }
}
