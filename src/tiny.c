/* Tiny (<= 1 KiB): per-thread LIFO lists per class, refilled in batches
 * from the remote inbox, the central lists, then fresh pages; spilled to
 * the central lists in batches when a list passes its limit. */
#define _GNU_SOURCE
#include "internal.h"
#include "policy.h"
#include "link.h"
#include <errno.h>

//! Links a carved run of n blocks into a list of marked (free) blocks.
static void tiny_link_run(uintptr_t run, uint32_t n, uint32_t bs) {
  for (uint32_t i = 0; i < n; i++) {
    void* q = (void*)(run + (uintptr_t)i * bs);
    hak__link_set(q, i + 1 < n ? (void*)(run + (uintptr_t)(i + 1) * bs) : NULL);
    hak__mark_free(q);
  }
}

/* The list's limit adapts like a slow start: each refill from the central
 * lists (the list ran dry while its blocks sat in central: a batch larger
 * than the list moves to and fro) raises it by its base, up to 16384 blocks
 * or 512 KiB; every fourth spill without a refill in between lowers it by
 * its base, so a thread that mostly frees holds little. */

//! A refill from central: the list was too short.
static void tiny_grow_limit(hak_tiny_bin_t* b, unsigned cls) {
  uint32_t most = HAK_TINY_LIMIT_BYTES / hak__class_size[cls];
  if (most > HAK_TINY_LIMIT_MAX) most = HAK_TINY_LIMIT_MAX;
  if (b->limit + b->base <= most) b->limit += b->base;
  b->overages = 0;
}

//! A spill: after a few in a row the list was longer than needed.
static void tiny_shrink_limit(hak_tiny_bin_t* b) {
  if (++b->overages < 4) return;
  b->overages = 0;
  if (b->limit >= 2 * b->base) b->limit -= b->base;
}

void* hak__tiny_alloc_slow(hak_heap_t* h, unsigned cls, size_t req) {
  hak_tiny_bin_t* b = &h->tiny[cls];
  if (!b->head) {
    /* half the limit, but no more than the 256 KiB limit's half: a large
     * limit is for holding a batch a thread frees and reallocates (batch16);
     * a thread that only allocates (a producer) should not take 256 KiB per
     * refill (prodcons_tiny peak RSS 19 -> 22 MB) */
    uint32_t most = HAK_TINY_REFILL_BYTES / hak__class_size[cls];
    uint32_t n, want = b->limit / 2 < most ? b->limit / 2 : most;
    void* chain = hak__drain_remote_lockfree(h, cls, &n);
    if (!chain && (chain = hak__small_central_pop(h, cls, want, &n, NULL)) != NULL) tiny_grow_limit(b, cls);
    if (!chain) {
      uintptr_t run = hak__small_carve(h, cls, want, &n, 1);
      if (run) { tiny_link_run(run, n, hak__class_size[cls]); chain = (void*)run; }
    }
    if (!chain) { errno = ENOMEM; return NULL; }
    b->head = chain;
    b->count = n;
  }
  void** p = b->head;
  hak__take(p);
  b->head = hak__link_get(p, (int)cls);
  b->count--;
  HAK_CSTAT(h, cls, alloc, 1);
  HAK_CSTAT(h, cls, req_bytes, req);    /* a sample: the inline path counts none */
  HAK_CSTAT(h, cls, req_n, 1);
  return p;
}

//! Spills an over-full list's newest blocks to the central lists: a base's
//! worth, not half (a long list that overflows by a little should not send
//! thousands of blocks through central).  Out of line: its link walk makes
//! calls in hardened mode, and the push stays a leaf.
static HAK_NOINLINE void tiny_spill(hak_heap_t* h, unsigned cls, hak_tiny_bin_t* b) {
  tiny_shrink_limit(b);
  uint32_t n = b->count / 2 < b->base ? b->count / 2 : b->base;
  if (!n) n = 1;
  void* first = b->head;
  void* last = hak__link_nth(first, n, (int)cls, &b->head);
  b->count -= n;
  hak__small_central_push(h, cls, first, last, n);
}

//! Pushes p even past the limit, then spills a batch to central.
void hak__tiny_free_slow(hak_heap_t* h, unsigned cls, void* p) {
  hak_tiny_bin_t* b = &h->tiny[cls];
  hak__link_set(p, b->head);
  hak__mark_free(p);
  b->head = p;
  b->count++;
  HAK_CSTAT(h, cls, free, 1);
  if (b->count > b->limit) tiny_spill(h, cls, b);
}

//! Hands every cached Tiny block to the central lists (thread exit, trim).
void hak__tiny_flush(hak_heap_t* h) {
  for (unsigned c = 0; c < HAK_TINY_CLASSES; c++) {
    hak_tiny_bin_t* b = &h->tiny[c];
    if (!b->head) continue;
    uint32_t n;
    void* last = hak__link_last(b->head, (int)c, &n);
    void* first = b->head;
    b->head = NULL;
    b->count = 0;
    hak__small_central_push(h, c, first, last, n);
  }
}
