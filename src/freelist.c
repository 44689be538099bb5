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
#include "os.h"

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
  atomic_store(&fl->chains, 0);
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
__attribute__((no_sanitize("thread"), unused)) static uintptr_t fl_link(void* blk) {
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

static void* fl_take_plain(hak_freelist_t* fl, uint32_t* got) {
  uint64_t old = atomic_load_explicit(&fl->head, memory_order_acquire);
  while (!atomic_compare_exchange_weak_explicit(&fl->head, &old, fl_pack(NULL, fl_tag(old) + 1),
                                                memory_order_acquire, memory_order_relaxed)) {}
  void* first = fl_ptr(old);
  int cls = fl_class(first);
  uint32_t n = 0;
  hak_walk_t w = HAK_WALK_INIT(first);
  for (void* p = first; p; p = hak__link_get(p, cls)) {
    if (n++) hak__walk_step(&w, p, cls);
  }
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

static void* fl_take_plain(hak_freelist_t* fl, uint32_t* got) {
  pthread_mutex_lock(&fl->lock);
  void* first = fl_ptr(atomic_load_explicit(&fl->head, memory_order_relaxed));
  atomic_store_explicit(&fl->head, 0, memory_order_relaxed);
  int cls = first ? fl_class(first) : -1;
  uint32_t n = 0;
  hak_walk_t w = HAK_WALK_INIT(first);
  for (void* p = first; p; p = hak__link_get(p, cls)) {
    if (n++) hak__walk_step(&w, p, cls);
  }
  atomic_fetch_sub_explicit(&fl->count, n, memory_order_relaxed);
  pthread_mutex_unlock(&fl->lock);
  *got = n;
  return first;
}
#endif

/* ---- chains ----------------------------------------------------------------
 * Popping N blocks from a plain stack walks N links of blocks that other
 * threads freed long ago: serial cache misses before the CAS (a third of
 * the python replay's time went there).  So the small classes' central
 * lists keep each pushed chain whole, as a descriptor (first, last, n) on a
 * second tagged stack: a pop takes whole chains, in one CAS, and touches
 * no block but the tails it links to the next chains.  Descriptors come from
 * slabs that are never unmapped, so a popper may read a stale descriptor's
 * next (its CAS then fails on the tag); each heap keeps a few spares.
 * Without memory for a descriptor, a chain goes to the plain stack. */

//! Adds run to the list first[] (k of max used), or when it is full joins
//! run to the last one, whose last block is *tail if known (else found).
static void runs_add(void** first, uint32_t* k, uint32_t max, void** tail, void* run) {
  if (*k < max) {
    first[(*k)++] = run;
    *tail = NULL;
    return;
  }
  if (!*tail) *tail = hak__link_last(first[max - 1], fl_class(first[max - 1]), NULL);
  hak__link_set(*tail, run);
  *tail = NULL;
}

int hak__freelist_empty(hak_freelist_t* fl) {
  return !fl_ptr(atomic_load_explicit(&fl->chains, memory_order_relaxed)) &&
         !fl_ptr(atomic_load_explicit(&fl->head, memory_order_relaxed));
}

#ifndef HAK_CENTRAL_MUTEX

struct hak_chain {
  void* first;
  void* last;                 /* spare: the link in its batch or cache (plain: no stale popper reads it) */
  struct hak_chain* next;     /* atomic access: a stale popper may read it */
  uint32_t n;                 /* likewise */
};

#define CHAIN_SLAB  (64 * 1024)
#define CHAIN_CACHE 32          /* spare descriptors per heap */
#define CHAIN_BATCH 16          /* moved between a heap and the pool at once */
/* Longest chain kept whole: a popper that splits a chain holds all of it
 * while it walks, and the list looks empty to the others meanwhile, so a
 * thread's whole cache (exit, trim) or the scavenger's kept blocks go in
 * pieces.  Spills (Tiny at most 1024, Mid at most 257) stay whole. */
#define CHAIN_MAX   1024
#define CHAIN_WALK  32           /* most chains one pop takes: its walk is the CAS's window */

/* Spare descriptors: the pool is a tagged stack (by next) of batches, and
 * a batch's head counts it (n) and links its members by `last`, as a
 * heap's cache does, so a heap takes a batch in one CAS with no walk (it
 * gives one back by walking its cache, lines it has just written).  Popped
 * by next links, a batch of 16 was a chase through cold lines (bench/shift:
 * 2.5% of its time, 92% of that on the one load of the walk). */
static _Atomic uint64_t chain_pool;
static pthread_mutex_t chain_grow_lock = PTHREAD_MUTEX_INITIALIZER;

HAK_INLINE hak_chain_t* chain_next(hak_chain_t* d) { return __atomic_load_n(&d->next, __ATOMIC_RELAXED); }
HAK_INLINE void chain_set_next(hak_chain_t* d, hak_chain_t* n) { __atomic_store_n(&d->next, n, __ATOMIC_RELAXED); }
//! A spare descriptor's link to the next of its batch (or heap cache).
HAK_INLINE hak_chain_t* chain_link(hak_chain_t* d) { return (hak_chain_t*)d->last; }
//! A batch's count, in its head (a stale chains popper may read n).
HAK_INLINE void chain_set_n(hak_chain_t* d, uint32_t n) { __atomic_store_n(&d->n, n, __ATOMIC_RELAXED); }

//! Pops the top descriptor of a tagged stack of them.  Its next link may be
//! changing under a stale popper (descriptors are never unmapped); the tag,
//! bumped by every CAS on the stack, makes the CAS fail after any change.
static hak_chain_t* cs_pop(_Atomic uint64_t* top, hak_heap_t* h) {
  int fails = 0;
  uint64_t old = atomic_load_explicit(top, memory_order_acquire);
  for (;;) {
    hak_chain_t* d = fl_ptr(old);
    if (!d) return NULL;
    uint64_t nw = fl_pack(chain_next(d), fl_tag(old) + 1);
    if (atomic_compare_exchange_weak_explicit(top, &old, nw, memory_order_acquire, memory_order_acquire)) {
      chain_set_next(d, NULL);
      return d;
    }
    fl_retry(h, &fails);
  }
}

//! Pushes the descriptors first..last (linked by next) in one CAS.
static void cs_push(_Atomic uint64_t* top, hak_chain_t* first, hak_chain_t* last, hak_heap_t* h) {
  int fails = 0;
  uint64_t old = atomic_load_explicit(top, memory_order_relaxed);
  for (;;) {
    chain_set_next(last, fl_ptr(old));
    if (atomic_compare_exchange_weak_explicit(top, &old, fl_pack(first, fl_tag(old) + 1),
                                              memory_order_release, memory_order_relaxed))
      return;
    fl_retry(h, &fails);
  }
}

//! Maps a slab of descriptors into the pool; 0 if the OS has no memory.
static int chain_grow(void) {
  pthread_mutex_lock(&chain_grow_lock);
  int ok = 1;
  if (!fl_ptr(atomic_load_explicit(&chain_pool, memory_order_acquire))) {
    hak_chain_t* s = hak__os_map(CHAIN_SLAB);
    if (s) {
      size_t n = CHAIN_SLAB / sizeof *s, head = 0;
      for (size_t i = 0; i < n; i++) {
        s[i].last = (i + 1) % CHAIN_BATCH && i + 1 < n ? &s[i + 1] : NULL;
        if (i % CHAIN_BATCH) continue;
        head = i;
        chain_set_n(&s[i], (uint32_t)(n - i < CHAIN_BATCH ? n - i : CHAIN_BATCH));
        chain_set_next(&s[i], i + CHAIN_BATCH < n ? &s[i + CHAIN_BATCH] : NULL);
      }
      cs_push(&chain_pool, &s[0], &s[head], NULL);
    } else {
      ok = 0;
    }
  }
  pthread_mutex_unlock(&chain_grow_lock);
  return ok;
}

//! A spare descriptor: the heap's, else the pool's (a batch of them for a
//! heap: a consumer takes descriptors that its producer gives back, and one
//! pool CAS each put producer-consumer's retry rate over 5%); NULL without
//! memory.
static hak_chain_t* chain_get(hak_heap_t* h) {
  if (h && h->chain_cache) {
    hak_chain_t* d = h->chain_cache;
    hak_chain_t* nx = chain_link(d);
    h->chain_cache = nx;
    h->chain_cached--;
    d->last = NULL;
    /* the next get reads its link: a spare's line is cold by now (a
     * chain spilled long ago), and a load miss stalls where a store's
     * would not */
    if (nx) __builtin_prefetch(nx, 1);
    return d;
  }
  for (;;) {
    hak_chain_t* d = cs_pop(&chain_pool, h);
    if (!d) {
      if (!chain_grow()) return NULL;
      continue;
    }
    hak_chain_t* rest = chain_link(d);
    uint32_t n = __atomic_load_n(&d->n, __ATOMIC_RELAXED);
    d->last = NULL;
    if (h) {                                      /* the rest of the batch is the heap's */
      if (rest) __builtin_prefetch(rest, 1);
      h->chain_cache = rest;
      h->chain_cached = n - 1;
    } else if (rest) {                            /* no heap: the rest goes back, one batch */
      chain_set_n(rest, n - 1);
      cs_push(&chain_pool, rest, rest, NULL);
    }
    return d;
  }
}

//! Gives a descriptor back.  Its block pointers are cleared (last then links
//! the cache or batch it joins): under HAKMEM_VALGRIND a stale one would
//! make a leaked block look reachable.
static void chain_put(hak_heap_t* h, hak_chain_t* d) {
  d->first = NULL;
  if (h && h->chain_cached >= CHAIN_CACHE) {      /* full: a batch goes back in one CAS */
    hak_chain_t* first = h->chain_cache;
    hak_chain_t* last = first;
    for (unsigned i = 1; i < CHAIN_BATCH; i++) last = chain_link(last);
    h->chain_cache = chain_link(last);
    h->chain_cached -= CHAIN_BATCH;
    last->last = NULL;
    chain_set_n(first, CHAIN_BATCH);
    cs_push(&chain_pool, first, first, h);
  }
  if (h) {
    d->last = h->chain_cache;
    h->chain_cache = d;
    h->chain_cached++;
    return;
  }
  d->last = NULL;
  chain_set_n(d, 1);
  cs_push(&chain_pool, d, d, h);
}

/* Descriptors a walk gives back (no heap): gathered into batches, so that
 * a heap that takes one later gets a batch, not a lone descriptor. */
typedef struct { hak_chain_t* head; uint32_t n; } chain_gather_t;

//! Pushes the batch gathered so far to the pool.
static void chain_gather_end(chain_gather_t* g) {
  if (!g->head) return;
  chain_set_n(g->head, g->n);
  cs_push(&chain_pool, g->head, g->head, NULL);
  g->head = NULL;
  g->n = 0;
}

//! Adds d (given back) to the batch being gathered; a full batch goes.
static void chain_gather(chain_gather_t* g, hak_chain_t* d) {
  d->first = NULL;
  d->last = g->head;
  g->head = d;
  if (++g->n == CHAIN_BATCH) chain_gather_end(g);
}

//! One descriptor for a whole chain (the plain stack without memory for one).
static void chain_push_one(hak_freelist_t* fl, void* first, void* last, uint32_t n, hak_heap_t* h) {
  hak_chain_t* d = chain_get(h);
  if (hak_unlikely(!d)) { hak__freelist_push_batch_lockfree(fl, first, last, n, h); return; }
  hak__link_set(last, NULL);         /* callers may hand over a list's prefix */
  d->first = first;
  d->last = last;
  __atomic_store_n(&d->n, n, __ATOMIC_RELAXED);   /* a stale popper may read it */
  cs_push(&fl->chains, d, d, h);
  if (h) HAK_TSTAT(h, cas_ops, 1);
  atomic_fetch_add_explicit(&fl->count, n, memory_order_relaxed);
}

void hak__freelist_push_chain(hak_freelist_t* fl, void* first, void* last, uint32_t n, hak_heap_t* h) {
  int cls = n > CHAIN_MAX ? fl_class(first) : -1;
  while (n > CHAIN_MAX) {
    void* rest;
    chain_push_one(fl, first, hak__link_nth(first, CHAIN_MAX, cls, &rest), CHAIN_MAX, h);
    first = rest;
    n -= CHAIN_MAX;
  }
  chain_push_one(fl, first, last, n, h);
}

//! Pops whole chains until max blocks (CHAIN_WALK chains at most), in one
//! CAS: the walk reads the counts of descriptors that others may be popping
//! (never unmapped; the tag fails the CAS then).
static hak_chain_t* chains_pop_upto(hak_freelist_t* fl, uint32_t max, hak_heap_t* h) {
  int fails = 0;
  uint64_t old = atomic_load_explicit(&fl->chains, memory_order_acquire);
  for (;;) {
    hak_chain_t* d = fl_ptr(old);
    if (!d) return NULL;
    hak_chain_t* last = d;
    uint64_t total = __atomic_load_n(&d->n, __ATOMIC_RELAXED);
    hak_chain_t* q;
    for (unsigned k = 1; total < max && k < CHAIN_WALK && (q = chain_next(last)) != NULL; k++) {
      total += __atomic_load_n(&q->n, __ATOMIC_RELAXED);
      last = q;
    }
    uint64_t nw = fl_pack(chain_next(last), fl_tag(old) + 1);
    if (atomic_compare_exchange_weak_explicit(&fl->chains, &old, nw, memory_order_acquire,
                                              memory_order_acquire)) {
      chain_set_next(last, NULL);
      if (h) HAK_TSTAT(h, cas_ops, 1);
      return d;
    }
    fl_retry(h, &fails);
  }
}

//! Whole chains until max blocks, joined; the chain that would take the
//! total past 2 * max is split (a walk of the blocks taken, which are ours
//! by then) and its rest pushed back.  The plain stack only if no chain is
//! left.
void* hak__freelist_pop_chains(hak_freelist_t* fl, uint32_t max, uint32_t* got, void** lastp, hak_heap_t* h) {
  void* first = NULL;
  void* last = NULL;
  uint32_t total = 0;
  if (!max) max = 1;
  for (hak_chain_t* d = chains_pop_upto(fl, max, h); d;) {
    hak_chain_t* next = chain_next(d);
    void* cf = d->first;
    void* cl = d->last;
    uint32_t cn = d->n;
    if ((uint64_t)total + cn > 2 * (uint64_t)max) {   /* the walk's last: total < max */
      uint32_t take = max - total;
      void* t = hak__link_nth(cf, take, fl_class(cf), &d->first);
      __atomic_store_n(&d->n, cn - take, __ATOMIC_RELAXED);
      hak__link_set(t, NULL);
      cs_push(&fl->chains, d, d, h);
      cl = t;
      cn = take;
    } else {
      chain_put(h, d);
    }
    if (last) hak__link_set(last, cf);
    else first = cf;
    last = cl;
    total += cn;
    d = next;
  }
  if (total) {
    atomic_fetch_sub_explicit(&fl->count, total, memory_order_relaxed);
  } else if (fl_ptr(atomic_load_explicit(&fl->head, memory_order_relaxed))) {
    first = hak__freelist_pop_lockfree(fl, max, &total, h);
    if (first && lastp) last = hak__link_last(first, fl_class(first), NULL);
  }
  *got = total;
  if (lastp) *lastp = last;
  return first;
}

//! Takes the chain stack whole, its descriptors kept for hak__runs_fill;
//! returns how many chains, their blocks in *got.
static uint32_t chains_take_runs(hak_freelist_t* fl, hak_chain_t** chains, uint32_t* got) {
  uint64_t old = atomic_load_explicit(&fl->chains, memory_order_acquire);
  while (!atomic_compare_exchange_weak_explicit(&fl->chains, &old, fl_pack(NULL, fl_tag(old) + 1),
                                                memory_order_acquire, memory_order_relaxed)) {}
  uint32_t k = 0, n = 0;
  for (hak_chain_t* d = fl_ptr(old); d; d = chain_next(d)) {
    k++;
    n += d->n;
  }
  atomic_fetch_sub_explicit(&fl->count, n, memory_order_relaxed);
  *chains = fl_ptr(old);
  *got = n;
  return k;
}

//! The first blocks of the chains taken, into first[] from *k (see
//! hak__runs_fill); the descriptors go back.  *tail: the last run's last
//! block, if known.
static void chains_fill_runs(hak_chain_t* d, void** first, uint32_t* k, uint32_t max, void** tail) {
  chain_gather_t g = {NULL, 0};
  while (d) {
    hak_chain_t* next = chain_next(d);
    runs_add(first, k, max, tail, d->first);
    *tail = d->last;
    chain_gather(&g, d);
    d = next;
  }
  chain_gather_end(&g);
}

//! Takes the chain stack whole as one chain, counted (hak__freelist_take_all).
static void* chains_take_all(hak_freelist_t* fl, void** lastp, uint32_t* got) {
  hak_chain_t* d;
  chains_take_runs(fl, &d, got);
  void* first = NULL;
  void* last = NULL;
  chain_gather_t g = {NULL, 0};
  while (d) {
    hak_chain_t* next = chain_next(d);
    if (last) hak__link_set(last, d->first);
    else first = d->first;
    last = d->last;
    chain_gather(&g, d);
    d = next;
  }
  chain_gather_end(&g);
  *lastp = last;
  return first;
}

void hak__freelist_fork_child(void) { pthread_mutex_init(&chain_grow_lock, NULL); }

#else  /* HAK_CENTRAL_MUTEX: chains are plain batches under the lock */

void hak__freelist_fork_child(void) {}

void hak__freelist_push_chain(hak_freelist_t* fl, void* first, void* last, uint32_t n, hak_heap_t* h) {
  hak__freelist_push_batch_lockfree(fl, first, last, n, h);
}

void* hak__freelist_pop_chains(hak_freelist_t* fl, uint32_t max, uint32_t* got, void** lastp, hak_heap_t* h) {
  void* first = hak__freelist_pop_lockfree(fl, max ? max : 1, got, h);
  if (lastp) *lastp = first ? hak__link_last(first, fl_class(first), NULL) : NULL;
  return first;
}

static void* chains_take_all(hak_freelist_t* fl, void** lastp, uint32_t* got) {
  (void)fl;
  *lastp = NULL;
  *got = 0;
  return NULL;
}

static uint32_t chains_take_runs(hak_freelist_t* fl, hak_chain_t** chains, uint32_t* got) {
  (void)fl;
  *chains = NULL;
  *got = 0;
  return 0;
}

static void chains_fill_runs(hak_chain_t* d, void** first, uint32_t* k, uint32_t max, void** tail) {
  (void)d; (void)first; (void)k; (void)max; (void)tail;
}
#endif

//! Takes both stacks whole, for a walk that follows their chains apart
//! (the scavenger): returns how many NULL-terminated runs they make, which
//! hak__runs_fill lists.
uint32_t hak__freelist_take_runs(hak_freelist_t* fl, hak_runs_t* r, uint64_t* blocks) {
  uint32_t n1, n2;
  uint32_t k = chains_take_runs(fl, &r->chains, &n1);
  r->plain = fl_take_plain(fl, &n2);
  *blocks += (uint64_t)n1 + n2;
  return k + (r->plain != NULL);
}

//! The first block of each run taken into first[] from *k, at most max in
//! all (max >= 1): later ones join the last run (a walker short of memory
//! for the list of runs).
void hak__runs_fill(hak_runs_t* r, void** first, uint32_t* k, uint32_t max) {
  void* tail = NULL;
  chains_fill_runs(r->chains, first, k, max, &tail);
  if (r->plain) runs_add(first, k, max, &tail, r->plain);
  r->chains = NULL;
  r->plain = NULL;
}

void* hak__freelist_take_all(hak_freelist_t* fl, uint32_t* got) {
  void* last;
  uint32_t n1, n2;
  void* first = chains_take_all(fl, &last, &n1);
  void* plain = fl_take_plain(fl, &n2);
  if (first) hak__link_set(last, plain);
  else first = plain;
  *got = n1 + n2;
  return first;
}
