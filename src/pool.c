/* The Mid Pool (1 KiB < n <= 52 KiB), as the seed designs it: per class a
 * PoolTLSRing (array stack, no atomics) inside a PoolTLSBin with a LIFO
 * overflow list, PoolTLSPage active pages carved by bump pointer, sharded
 * lock-free central lists, a remote inbox per owner, refill batching.
 *
 * Refill order when the ring is empty: the overflow list, the remote
 * inbox, a W_MAX borrow from a larger class's ring, a central batch, and
 * last the active pages (taking HAKMEM_POOL_REFILL_BATCH fresh pages). */
#define _GNU_SOURCE
#include "internal.h"
#include "policy.h"
#include <errno.h>

//! Moves a chain into the ring; what does not fit goes to the overflow list.
static void pool_fill_ring(PoolTLSBin* b, void* chain) {
  PoolTLSRing* r = &b->ring;
  while (chain && r->top < r->cap) {
    r->items[r->top++] = chain;
    chain = *(void**)chain;
  }
  if (!chain) return;
  void* last = chain;
  uint32_t n = 1;
  while (*(void**)last) { last = *(void**)last; n++; }
  *(void**)last = b->lo_head;
  if (!b->lo_head) b->lo_tail = last;
  b->lo_head = chain;
  b->lo_count += n;
}

//! Refills the ring from the overflow list: up to half the ring.
static void pool_ring_from_lo(PoolTLSBin* b) {
  PoolTLSRing* r = &b->ring;
  uint32_t want = r->cap / 2;
  while (b->lo_head && r->top < want) {
    void* p = b->lo_head;
    b->lo_head = *(void**)p;
    b->lo_count--;
    r->items[r->top++] = p;
  }
  if (!b->lo_head) b->lo_tail = NULL;
}

//! W_MAX: take a cached block of a larger class when it wastes little enough.
static void* pool_borrow(hak_heap_t* h, unsigned cls, size_t req) {
  uint64_t limit = (uint64_t)req * hak__policy_wmax_milli();
  for (unsigned c2 = cls + 1; c2 < HAK_SMALL_CLASSES; c2++) {
    if ((uint64_t)hak__class_size[c2] * 1000 > limit) break;
    PoolTLSRing* r2 = &h->mid[c2 - HAK_TINY_CLASSES].ring;
    if (r2->top) {
      void** p = r2->items[--r2->top];
      hak__take(p);
      HAK_CSTAT(h, c2, alloc, 1);
      HAK_CSTAT(h, c2, req_bytes, req);
      HAK_CSTAT(h, cls, borrow, 1);
      return p;
    }
  }
  return NULL;
}

void* hak__pool_alloc_slow(hak_heap_t* h, unsigned cls, size_t req, int borrow) {
  PoolTLSBin* b = &h->mid[cls - HAK_TINY_CLASSES];
  PoolTLSRing* r = &b->ring;
  if (!r->top) {
    uint32_t n;
    if (b->lo_head) {
      pool_ring_from_lo(b);
    } else {
      void* chain = hak__drain_remote_lockfree(h, cls, &n);
      if (chain) {
        pool_fill_ring(b, chain);
      } else {
        void* p = borrow ? pool_borrow(h, cls, req) : NULL;
        if (p) return p;
        chain = hak__small_central_pop(h, cls, r->cap / 2, &n);
        if (chain) {
          pool_fill_ring(b, chain);
        } else {
          uintptr_t run = hak__small_carve(h, cls, r->cap / 2 ? r->cap / 2 : 1, &n);
          uint32_t bs = hak__class_size[cls];
          /* push in reverse so the ring pops the run in address order */
          for (uint32_t i = n; i > 0; i--) {
            void* q = (void*)(run + (uintptr_t)(i - 1) * bs);
            hak__mark_free(q);
            r->items[r->top++] = q;
          }
        }
      }
    }
    if (!r->top) { errno = ENOMEM; return NULL; }
  }
  void** p = r->items[--r->top];
  hak__take(p);
  HAK_CSTAT(h, cls, alloc, 1);
  HAK_CSTAT(h, cls, req_bytes, req);
  return p;
}

//! Free when the ring is full (or an adopted block): overflow list, and past
//! its bound the whole list goes to the central shard in one CAS.
void hak__pool_free_slow(hak_heap_t* h, unsigned cls, void* p) {
  PoolTLSBin* b = &h->mid[cls - HAK_TINY_CLASSES];
  uintptr_t* w = p;
  w[1] = hak__cookie ^ (uintptr_t)p;
  HAK_CSTAT(h, cls, free, 1);
  if (b->ring.top < b->ring.cap) { b->ring.items[b->ring.top++] = p; return; }
  w[0] = (uintptr_t)b->lo_head;
  if (!b->lo_head) b->lo_tail = p;
  b->lo_head = p;
  if (++b->lo_count <= b->lo_limit) return;
  void* first = b->lo_head;
  void* last = b->lo_tail;
  uint32_t n = b->lo_count;
  b->lo_head = b->lo_tail = NULL;
  b->lo_count = 0;
  hak__small_central_push(h, cls, first, last, n);
}

//! Hands every cached Mid block to the central lists.
void hak__pool_flush(hak_heap_t* h) {
  for (unsigned c = HAK_TINY_CLASSES; c < HAK_SMALL_CLASSES; c++) {
    PoolTLSBin* b = &h->mid[c - HAK_TINY_CLASSES];
    PoolTLSRing* r = &b->ring;
    while (r->top) {
      void* p = r->items[--r->top];
      *(void**)p = b->lo_head;
      if (!b->lo_head) b->lo_tail = p;
      b->lo_head = p;
      b->lo_count++;
    }
    if (!b->lo_head) continue;
    void* first = b->lo_head;
    void* last = b->lo_tail;
    uint32_t n = b->lo_count;
    b->lo_head = b->lo_tail = NULL;
    b->lo_count = 0;
    hak__small_central_push(h, c, first, last, n);
  }
}
