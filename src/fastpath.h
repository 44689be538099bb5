/* The inline fast paths of malloc and free: a thread-local pop or push
 * with one unlikely branch into the noinline generic path.  No lock, no
 * atomic, no "initialised?" test: an uninitialised thread's heap is the
 * empty sentinel, whose bins always miss.
 *
 * Double frees: free stores a mark (hak__mark) in a block's second
 * word and never loads from the block, whose line is usually cold by then;
 * malloc checks the mark of the block it hands out (the line it was about
 * to touch anyway), so a block freed twice, or written after its free, is
 * caught before it can be handed out twice.  A block freed twice in a row
 * is caught at once: it is the top of the cache. */
#ifndef HAK_FASTPATH_H
#define HAK_FASTPATH_H
#include "internal.h"
#include "l25.h"

/* Build switch HAK_NO_CHECKS (make CHECKS=0): drops the misuse checks of
 * the fast paths (free mark at reuse, interior pointer, immediate double
 * free), only to measure what they cost; never for use. */
#ifdef HAK_NO_CHECKS
#define HAK_CHECK(x) 0
#define HAK_CHECK_OK(x) 1
#else
#define HAK_CHECK(x) (x)
#define HAK_CHECK_OK(x) (x)
#endif

HAK_INLINE void* hak__malloc_fast(size_t n) {
  hak_heap_t* h = hak__tls_heap;
  if (hak_likely(n <= HAK_MID_MAX)) {
    PoolTLSBin* b = hak__bin_at(h, hak__small_bin_off(n));
    void** p = b->head;
    if (hak_likely(p != NULL)) {
      if (hak_unlikely(HAK_CHECK(!hak__marked(p)))) return hak__bad_block_ret(p);
      void* next = p[0];
      b->head = next;
      __builtin_prefetch(next);          /* the next pop of this class checks its mark */
      hak__mark_clear(p);
      HAK_BUMP(b->fmax, 1);              /* the alloc; no req_bytes: the slow path samples them (stats.h) */
      return p;
    }
  } else if (n <= HAK_LARGE_MAX) {
    void* p = hak__l25_pop(h, n);
    if (hak_likely(p != NULL)) return p;
  }
  return hak__malloc_generic(n);
}

HAK_INLINE void hak__free_fast(void* p) {
  uintptr_t a = (uintptr_t)p;
  int kind = hak__seg_kind(a);
  if (hak_likely(kind == HAK_SEG_SMALL)) {
    hak_segment_t* s = hak__seg_of(a);
    hak_ptag_t* t = hak__ptag_of(s, a);
    hak_heap_t* h = hak__tls_heap;
    uintptr_t* w = (uintptr_t*)p;
    uintptr_t mark = hak__mark(a);
    /* own page or ownerless page (both common, interleaved at random: one
     * branch, as two would mispredict), then the start of a block, with
     * the constants of the bin the block goes to (a branch of its own:
     * folding it into the first cost the Tiny and Mid bands 4-6%, for the
     * setcc and or before the one branch) */
    uintptr_t bad = atomic_load_explicit(&t->owner, memory_order_relaxed) & h->ntoken;
    size_t off = t->bin_off;
    if (hak_likely(bad == 0)) {
      PoolTLSBin* b = hak__bin_at(h, off);
      if (hak_likely(HAK_CHECK_OK(hak__div_is_start(b->div, a, t->ccolor))) &&
          hak_likely(hak__bin_room(b) && HAK_CHECK_OK(b->head != p))) {
        w[0] = (uintptr_t)b->head;
        /* a separate 8-byte store: a 16-byte one would not forward to
         * the 8-byte load of the mark when the block is reused at once */
        *(volatile uintptr_t*)&w[1] = mark;
        b->head = p;
        HAK_BUMP(b->frees, 1);
        return;
      }
    }
  } else if (kind == HAK_SEG_LARGE && hak_likely(hak__l25_push(hak__tls_heap, p))) {
    return;
  }
  hak__free_generic(p);
}
#endif
