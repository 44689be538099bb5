/* The Mid Pool (1 KiB < n <= 52 KiB), as the seed designs it: per class a
 * PoolTLSRing (array stack, no atomics) inside a PoolTLSBin with a LIFO
 * overflow list, PoolTLSPage active pages carved by bump pointer, sharded
 * lock-free central lists, a remote inbox per owner, refill batching.
 *
 * Refill order when the ring is empty: the overflow list, the remote
 * inbox, a central batch, the active pages; only then, instead of a fresh
 * page, a W_MAX borrow from a larger class's ring; last, fresh pages
 * (HAKMEM_POOL_REFILL_BATCH at a time). */
#define _GNU_SOURCE
#include "internal.h"
#include "policy.h"
#include "link.h"
#include <errno.h>

//! Moves a chain of n blocks into the ring; what does not fit goes to the
//! overflow list (last: the chain's last block, or NULL if not known).
static void pool_fill_ring(PoolTLSBin* b, unsigned cls, void* chain, uint32_t n, void* last) {
  PoolTLSRing* r = &b->ring;
  while (chain && r->top < r->cap) {
    r->items[r->top++] = chain;
    chain = hak__link_get(chain, (int)cls);
    n--;
  }
  if (!chain) return;
  if (!last) last = hak__link_last(chain, (int)cls, &n);
  hak__link_set(last, b->lo_head);
  if (!b->lo_head) b->lo_tail = last;
  b->lo_head = chain;
  b->lo_count += n;
}

//! Refills the ring from the overflow list: up to half the ring.
static void pool_ring_from_lo(PoolTLSBin* b, unsigned cls) {
  PoolTLSRing* r = &b->ring;
  uint32_t want = r->cap / 2;
  while (b->lo_head && r->top < want) {
    void* p = b->lo_head;
    b->lo_head = hak__link_get(p, (int)cls);
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
    PoolTLSRing* r2 = &hak__mid_bin(h, c2)->ring;
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

//! Pushes a carved run onto the ring, in reverse so it pops in address order.
static void pool_ring_from_run(PoolTLSRing* r, uintptr_t run, uint32_t n, uint32_t bs) {
  for (uint32_t i = n; i > 0; i--) {
    void* q = (void*)(run + (uintptr_t)(i - 1) * bs);
    hak__mark_free(q);
    r->items[r->top++] = q;
  }
}

//! Refills an empty ring from what the class already has, cheapest first:
//! the overflow list, the remote inbox, a central batch, the active pages.
//! Takes no fresh page.  Returns 0 if all of them were empty.
static int pool_refill_cached(hak_heap_t* h, unsigned cls, PoolTLSBin* b) {
  PoolTLSRing* r = &b->ring;
  uint32_t n, want = r->cap / 2;      /* HAKMEM_POOL_TLS_RING >= 4: never 0 */
  if (b->lo_head) { pool_ring_from_lo(b, cls); return 1; }
  void* last = NULL;
  void* chain = hak__drain_remote_lockfree(h, cls, &n);
  if (!chain) chain = hak__small_central_pop(h, cls, want, &n, &last);
  if (chain) { pool_fill_ring(b, cls, chain, n, last); return 1; }
  uintptr_t run = hak__small_carve(h, cls, want, &n, 0);
  if (!run) return 0;
  pool_ring_from_run(r, run, n, hak__class_size[cls]);
  return 1;
}

/* A class that keeps borrowing refills after this many borrows in a row:
 * borrowing only trades waste for a fresh page, and a class whose own
 * cache stays empty would otherwise take the slow path on every request. */
#define POOL_BORROW_RUN 8

void* hak__pool_alloc_slow(hak_heap_t* h, unsigned cls, size_t req, int borrow) {
  PoolTLSBin* b = hak__mid_bin(h, cls);
  PoolTLSRing* r = &b->ring;
  if (!r->top) r->cap = b->cap_full;      /* it allocates again: the whole ring */
  if (!r->top && !pool_refill_cached(h, cls, b)) {
    /* the next step is a fresh page: W_MAX lets a larger cached block
     * serve instead (waste traded for a hit), a few times in a row */
    if (borrow && b->borrow_run < POOL_BORROW_RUN) {
      void* p = pool_borrow(h, cls, req);
      if (p) { b->borrow_run++; return p; }
    }
    uint32_t n;
    uintptr_t run = hak__small_carve(h, cls, r->cap / 2, &n, 1);
    if (!run && borrow) {
      void* p = pool_borrow(h, cls, req);      /* out of memory: any fit will do */
      if (p) return p;
    }
    if (!run) { errno = ENOMEM; return NULL; }
    pool_ring_from_run(r, run, n, hak__class_size[cls]);
  }
  b->borrow_run = 0;
  void** p = r->items[--r->top];
  hak__take(p);
  HAK_CSTAT(h, cls, alloc, 1);
  HAK_CSTAT(h, cls, req_bytes, req);
  return p;
}

//! The overflow list goes to the central shard in one CAS.
static void pool_lo_flush(hak_heap_t* h, unsigned cls, PoolTLSBin* b) {
  void* first = b->lo_head;
  void* last = b->lo_tail;
  uint32_t n = b->lo_count;
  b->lo_head = b->lo_tail = NULL;
  b->lo_count = 0;
  hak__small_central_push(h, cls, first, last, n);
}

/* A ring that stays full while its overflow list fills and flushes belongs
 * to a thread that frees more of the class than it allocates (a consumer,
 * a thread freeing what others made): the ring drops to HAK_RING_FREEING
 * blocks, its oldest blocks go to central for the threads that allocate,
 * and it is whole again when the thread next finds it empty.  Full rings
 * held up to 18 MB per free-only thread in remote_burst's classes. */

//! Sends all but the newest HAK_RING_FREEING blocks of a full ring to the
//! central shard as one chain, and lowers the ring's capacity to that.
static void pool_ring_shrink(hak_heap_t* h, unsigned cls, PoolTLSBin* b) {
  PoolTLSRing* r = &b->ring;
  uint32_t n = r->top - HAK_RING_FREEING;
  hak__link_set(r->items[0], NULL);
  for (uint32_t i = 1; i < n; i++) hak__link_set(r->items[i], r->items[i - 1]);
  void* first = r->items[n - 1];
  void* last = r->items[0];
  for (uint32_t i = 0; i < HAK_RING_FREEING; i++) r->items[i] = r->items[n + i];
  r->top = r->cap = HAK_RING_FREEING;
  hak__small_central_push(h, cls, first, last, n);
}

//! Free when the ring is full (or an adopted block): overflow list, and past
//! its bound the whole list goes to the central shard in one CAS.
void hak__pool_free_slow(hak_heap_t* h, unsigned cls, void* p) {
  PoolTLSBin* b = hak__mid_bin(h, cls);
  hak__mark_free(p);
  HAK_CSTAT(h, cls, free, 1);
  if (b->ring.top < b->ring.cap) { b->ring.items[b->ring.top++] = p; return; }
  hak__link_set(p, b->lo_head);
  if (!b->lo_head) b->lo_tail = p;
  b->lo_head = p;
  if (++b->lo_count > b->lo_limit) {
    pool_lo_flush(h, cls, b);
    if (b->ring.top > HAK_RING_FREEING) pool_ring_shrink(h, cls, b);
  }
}

//! Hands every cached Mid block to the central lists: the overflow list and
//! the ring as two chains, each one a ring refill takes whole.
void hak__pool_flush(hak_heap_t* h) {
  for (unsigned c = HAK_TINY_CLASSES; c < HAK_SMALL_CLASSES; c++) {
    PoolTLSBin* b = hak__mid_bin(h, c);
    PoolTLSRing* r = &b->ring;
    r->cap = b->cap_full;
    if (b->lo_head) pool_lo_flush(h, c, b);
    if (!r->top) continue;
    void* last = r->items[0];
    hak__link_set(last, NULL);
    for (uint32_t i = 1; i < r->top; i++) hak__link_set(r->items[i], r->items[i - 1]);
    uint32_t n = r->top;
    r->top = 0;
    hak__small_central_push(h, c, r->items[n - 1], last, n);
  }
}
