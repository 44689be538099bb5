/* The Mid Pool (1 KiB < n <= 52 KiB), as the seed designs it: per class a
 * PoolTLSBin (a LIFO list with an adaptive limit; tiny.c keeps the lists of
 * both layers), PoolTLSPage active pages carved by bump pointer, sharded
 * lock-free central lists, a remote inbox per owner, refill batching and
 * soft CAP (small.c).  What is the Mid Pool's own is here: the sizes of its
 * lists, and the W_MAX borrow.
 *
 * Refill order when a list is empty: the remote inbox, a central batch,
 * the active pages; only then, instead of a fresh page, a W_MAX borrow from
 * a larger class's list; last, fresh pages (HAKMEM_POOL_REFILL_BATCH at a
 * time). */
#define _GNU_SOURCE
#include "internal.h"
#include "policy.h"

/* A Mid list starts at HAKMEM_POOL_TLS_RING blocks (64: the seed's ring),
 * grows to 512 KiB of blocks but at most twice its base (what a ring and
 * its overflow list held), and a refill takes half a base (at least 128 KiB
 * of blocks), as a ring refill took half a ring. */

uint32_t hak__pool_base(unsigned cls) {
  (void)cls;
  return (uint32_t)hak__opt.pool_tls_ring;
}

uint32_t hak__pool_most(unsigned cls) {
  uint32_t most = (uint32_t)((512 * 1024) / hak__class_size[cls]);
  uint32_t base = hak__pool_base(cls);
  return most < base ? base : most > 2 * base ? 2 * base : most;
}

uint32_t hak__pool_refill_most(unsigned cls) {
  uint32_t most = (uint32_t)((128 * 1024) / hak__class_size[cls]);
  uint32_t half = hak__pool_base(cls) / 2;
  return most > half ? most : half;
}

//! W_MAX: takes a cached block of a larger class when it wastes little
//! enough.  The lender counts the allocation (alloc, and exactly, lent and
//! lent_req); the borrower counts a borrow.
void* hak__pool_borrow(hak_heap_t* h, unsigned cls, size_t req) {
  uint64_t limit = (uint64_t)req * hak__policy_wmax_milli();
  for (unsigned c2 = cls + 1; c2 < HAK_SMALL_CLASSES; c2++) {
    if ((uint64_t)hak__class_size[c2] * 1000 > limit) break;
    void* p = hak__bin_pop(hak__bin(h, c2), c2);
    if (!p) continue;                   /* the pop counted c2's alloc */
    HAK_CSTAT(h, c2, lent, 1);
    HAK_CSTAT(h, c2, lent_req, req);
    HAK_CSTAT(h, cls, borrow, 1);
    return p;
  }
  return NULL;
}
