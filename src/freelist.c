/* Central freelists (seed phase 6.26).  Lock-free Treiber stacks: the head
 * packs a block address (>>4, 43 bits) with a 21-bit generation that every
 * successful CAS bumps, so a head that was popped and pushed back (ABA)
 * fails the CAS.  A popper walks links of blocks it does not own yet; the
 * memory stays mapped (segments are never unmapped) and each link is
 * checked against the segment map, so a stale link costs a retry, never a
 * fault.  Build switch HAK_CENTRAL_MUTEX swaps in a mutex for A/B runs.
 *
 * Links go through link.h (encoded in hardened mode).  A popper decodes
 * links it may be reading stale, so a link that fails its check is only
 * corruption if the head did not move meanwhile; otherwise it retries. */
#define _GNU_SOURCE
#include "internal.h"
#include "link.h"

#define FL_PTR_BITS 43
#define FL_PTR_MASK ((UINT64_C(1) << FL_PTR_BITS) - 1)
#define FL_BACKOFF_AFTER 4

HAK_INLINE uint64_t fl_pack(void* p, uint64_t tag) {
  return ((uint64_t)(uintptr_t)p >> 4) | (tag << FL_PTR_BITS);
}
HAK_INLINE void* fl_ptr(uint64_t h) { return (void*)(uintptr_t)((h & FL_PTR_MASK) << 4); }
HAK_INLINE uint64_t fl_tag(uint64_t h) { return h >> FL_PTR_BITS; }

void hak__freelist_init(hak_freelist_t* fl) {
  atomic_store(&fl->head, 0);
  atomic_store(&fl->count, 0);
#ifdef HAK_CENTRAL_MUTEX
  pthread_mutex_init(&fl->lock, NULL);
#endif
}

//! Counts a CAS and its failures; after a few failures in a row, yields.
HAK_INLINE void fl_retry(hak_heap_t* h, int* fails) {
  if (h) HAK_TSTAT(h, cas_retry, 1);
  if (++*fails >= FL_BACKOFF_AFTER) { unsigned n = (unsigned)(*fails - FL_BACKOFF_AFTER); hak__os_backoff(&n); }
}

//! Reads the raw link of a block that another thread may own by now.
__attribute__((no_sanitize("thread"))) static uintptr_t fl_link(void* blk) {
  return __atomic_load_n((uintptr_t*)blk, __ATOMIC_RELAXED);
}

//! The class of a list's blocks, for the link checks: that of its head
//! (hardened mode only; a stale head's class fails the CAS anyway).
HAK_INLINE int fl_class(void* first) { return hak__link_secure() ? hak__block_class(first) : -1; }

#ifndef HAK_CENTRAL_MUTEX

void hak__freelist_push_batch_lockfree(hak_freelist_t* fl, void* first, void* last, uint32_t n,
                                       hak_heap_t* h) {
  uint64_t old = atomic_load_explicit(&fl->head, memory_order_relaxed);
  int fails = 0;
  for (;;) {
    hak__link_set(last, fl_ptr(old));
    uint64_t nw = fl_pack(first, fl_tag(old) + 1);
    if (atomic_compare_exchange_weak_explicit(&fl->head, &old, nw, memory_order_release,
                                              memory_order_relaxed))
      break;
    fl_retry(h, &fails);
  }
  if (h) HAK_TSTAT(h, cas_ops, 1);
  atomic_fetch_add_explicit(&fl->count, n, memory_order_relaxed);
}

void hak__freelist_push_lockfree(hak_freelist_t* fl, void* blk, hak_heap_t* h) {
  hak__freelist_push_batch_lockfree(fl, blk, blk, 1, h);
}

//! Marks a walk of central links in progress, so that no segment is
//! unmapped under it (see hak__grace_wait).
HAK_INLINE void fl_enter(hak_heap_t* h) {
  if (h) atomic_store_explicit(&h->in_pop, 1, memory_order_seq_cst);
  else atomic_fetch_add(&hak__anon_pops, 1);
}
HAK_INLINE void fl_leave(hak_heap_t* h) {
  if (h) atomic_store_explicit(&h->in_pop, 0, memory_order_release);
  else atomic_fetch_sub(&hak__anon_pops, 1);
}

static void* fl_pop(hak_freelist_t* fl, uint32_t max, uint32_t* got, hak_heap_t* h);
void* hak__freelist_pop_lockfree(hak_freelist_t* fl, uint32_t max, uint32_t* got, hak_heap_t* h) {
  fl_enter(h);
  void* r = fl_pop(fl, max, got, h);
  fl_leave(h);
  return r;
}

static void* fl_pop(hak_freelist_t* fl, uint32_t max, uint32_t* got, hak_heap_t* h) {
  int fails = 0;
  for (;;) {
    uint64_t old = atomic_load_explicit(&fl->head, memory_order_acquire);
    void* first = fl_ptr(old);
    if (!first) { *got = 0; return NULL; }
    int cls = fl_class(first);
    void* last = first;
    uint32_t n = 1;
    void* next;
    int ok = hak__link_try(first, fl_link(first), cls, &next);
    while (ok && next && n < max) {
      last = next;
      n++;
      ok = hak__link_try(last, fl_link(last), cls, &next);
    }
    if (!ok) {
      /* the list changed under us (a stale link), or a free block was
       * written to: if the head has not moved since we read it, nothing
       * was popped meanwhile, so every link we read was current */
      atomic_thread_fence(memory_order_acquire);
      if (atomic_load_explicit(&fl->head, memory_order_relaxed) == old)
        hak__link_corrupt(last, cls >= 0 ? cls : hak__block_class(last));
      fl_retry(h, &fails);
      continue;
    }
    uint64_t nw = fl_pack(next, fl_tag(old) + 1);
    if (atomic_compare_exchange_weak_explicit(&fl->head, &old, nw, memory_order_acquire,
                                              memory_order_relaxed)) {
      hak__link_set(last, NULL);
      atomic_fetch_sub_explicit(&fl->count, n, memory_order_relaxed);
      if (h) HAK_TSTAT(h, cas_ops, 1);
      *got = n;
      return first;
    }
    fl_retry(h, &fails);
  }
}

void* hak__freelist_take_all(hak_freelist_t* fl, uint32_t* got) {
  uint64_t old = atomic_load_explicit(&fl->head, memory_order_acquire);
  while (!atomic_compare_exchange_weak_explicit(&fl->head, &old, fl_pack(NULL, fl_tag(old) + 1),
                                                memory_order_acquire, memory_order_relaxed)) {}
  void* first = fl_ptr(old);
  int cls = fl_class(first);
  uint32_t n = 0;
  for (void* p = first; p; p = hak__link_get(p, cls)) n++;
  atomic_fetch_sub_explicit(&fl->count, n, memory_order_relaxed);
  *got = n;
  return first;
}

#else  /* HAK_CENTRAL_MUTEX: the pre-6.26 baseline */

void hak__freelist_push_batch_lockfree(hak_freelist_t* fl, void* first, void* last, uint32_t n,
                                       hak_heap_t* h) {
  pthread_mutex_lock(&fl->lock);
  hak__link_set(last, fl_ptr(atomic_load_explicit(&fl->head, memory_order_relaxed)));
  atomic_store_explicit(&fl->head, fl_pack(first, 0), memory_order_relaxed);
  atomic_fetch_add_explicit(&fl->count, n, memory_order_relaxed);
  pthread_mutex_unlock(&fl->lock);
  if (h) HAK_TSTAT(h, cas_ops, 1);
}

void hak__freelist_push_lockfree(hak_freelist_t* fl, void* blk, hak_heap_t* h) {
  hak__freelist_push_batch_lockfree(fl, blk, blk, 1, h);
}

void* hak__freelist_pop_lockfree(hak_freelist_t* fl, uint32_t max, uint32_t* got, hak_heap_t* h) {
  pthread_mutex_lock(&fl->lock);
  void* first = fl_ptr(atomic_load_explicit(&fl->head, memory_order_relaxed));
  int cls = first ? fl_class(first) : -1;
  uint32_t n = 0;
  void* last = NULL;
  for (void* p = first; p && n < max; p = hak__link_get(p, cls)) { last = p; n++; }
  if (last) {
    atomic_store_explicit(&fl->head, fl_pack(hak__link_get(last, cls), 0), memory_order_relaxed);
    hak__link_set(last, NULL);
    atomic_fetch_sub_explicit(&fl->count, n, memory_order_relaxed);
  }
  pthread_mutex_unlock(&fl->lock);
  if (h) HAK_TSTAT(h, cas_ops, 1);
  *got = n;
  return first;
}

void* hak__freelist_take_all(hak_freelist_t* fl, uint32_t* got) {
  pthread_mutex_lock(&fl->lock);
  void* first = fl_ptr(atomic_load_explicit(&fl->head, memory_order_relaxed));
  atomic_store_explicit(&fl->head, 0, memory_order_relaxed);
  int cls = first ? fl_class(first) : -1;
  uint32_t n = 0;
  for (void* p = first; p; p = hak__link_get(p, cls)) n++;
  atomic_fetch_sub_explicit(&fl->count, n, memory_order_relaxed);
  pthread_mutex_unlock(&fl->lock);
  *got = n;
  return first;
}
#endif
