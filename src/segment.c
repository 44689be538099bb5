/* Segments and pages.  A segment is a naturally aligned 4 MiB chunk; the
 * segment map (one byte per chunk of the 47-bit address space, in .bss so
 * untouched parts cost nothing) says what each chunk holds, which is how
 * free() finds a block's page in O(1) and rejects foreign pointers.
 * Small segments hold 64 KiB pages; page 0 is the header with the page
 * descriptors.  Free pages wait in one pool; segments are never unmapped,
 * only decommitted, so a racing reader of a stale free-list link still
 * reads mapped memory. */
#define _GNU_SOURCE
#include "internal.h"
#include "valgrind.h"
#include <errno.h>

uint8_t hak__segmap[HAK_SEGMAP_N];
_Static_assert(sizeof(hak_segment_t) <= HAK_PAGE_SIZE, "a small segment's header is its page 0");

static pthread_mutex_t seg_lock = PTHREAD_MUTEX_INITIALIZER;
static hak_segment_t* seg_avail;                /* segments with free pages, under seg_lock */
static hak_segment_t* seg_all;                  /* every small segment, under seg_lock */
static _Atomic uint64_t seg_pages_in_use[HAK_SMALL_CLASSES];
_Atomic int hak__anon_pops;

/* Partly carved pages that exiting threads left, per class, under seg_lock.
 * The next thread to need a page of the class carves on where the dead one
 * stopped: retired, each exit stranded the uncarved tails (about half a
 * page per slot and class) until every carved block came back, and a
 * program whose threads come and go kept mapping more (remote_burst). */
#define SEG_ORPHANS_MAX 16
#define SEG_ORPHAN_AGE_NS 200000000ull      /* unadopted this long: retired */
static hak_page_t* seg_orphans[HAK_SMALL_CLASSES];
static _Atomic uint32_t seg_orphan_n[HAK_SMALL_CLASSES];

static void page_to_segment(hak_page_t* pg);

/* Warm pages: wholly free pages taken from one class's lists for another
 * class that needed fresh ones (hak__small_reclaim), kept committed so the
 * next page a class takes costs no page faults.  Newest first; those
 * unused for HAKMEM_DECAY_MS go back to the OS (hak__page_warm_decay). */
static hak_page_t* seg_warm;                    /* under seg_lock */
static _Atomic uint32_t seg_warm_n[2];          /* by the layer they were last in */
static _Atomic uint64_t seg_warm_taken;         /* pages ever taken warm */
/* Both change under seg_lock only (others read them without it): a load
 * and a store, not a locked add, whose barrier would wait for the stores
 * of the carve before it (a page taken or stashed paid 14 of them). */
#define SEG_LOCKED_ADD(x, d) \
  atomic_store_explicit(&(x), atomic_load_explicit(&(x), memory_order_relaxed) + (d), memory_order_relaxed)
/* Pages between their class (or the warm stash) and their segment's mask,
 * their memory on its way to the OS, and segments between seg_avail and
 * munmap: an allocation out of memory waits for them, or fails while most
 * of the heap is free (tests/oom/transit).  A page's count falls under
 * seg_lock, with the mask's update; a segment's after its munmap.  Signed:
 * a child forked inside a release starts at 0, and its release takes one
 * off.  seg_returned counts every arrival, so that one between an
 * allocation's last look and its reading of seg_transit is not missed. */
static _Atomic int32_t seg_transit;
static _Atomic uint32_t seg_returned;
/* Pages in use whose memory past their blocks is still resident from a
 * class that ended later (page_take). */
static _Atomic uint32_t seg_stale_n;

//! The arrivals so far: an out-of-memory retry loop starts from here.
static uint32_t segment_returned(void) { return atomic_load_explicit(&seg_returned, memory_order_acquire); }

//! A page or segment sets out for the OS (or its segment's mask).
static void segment_transit_leave(void) { atomic_fetch_add_explicit(&seg_transit, 1, memory_order_relaxed); }

//! It arrived: counted before it stops counting as in transit, so a waiter
//! that sees the transit count fall also sees the arrival.
static void segment_transit_arrive(void) {
  atomic_fetch_add_explicit(&seg_returned, 1, memory_order_release);
  atomic_fetch_sub_explicit(&seg_transit, 1, memory_order_release);
}

//! Out of memory: 1 if a retry may succeed (something came back since
//! *seen, or is on its way, after a backoff), 0 if none can.
static int segment_transit_wait(unsigned* waits, uint32_t* seen) {
  uint32_t now = segment_returned();
  if (now != *seen) {
    *seen = now;
    return 1;
  }
  if (atomic_load_explicit(&seg_transit, memory_order_acquire) <= 0) return 0;
  hak__os_backoff(waits);
  return 1;
}

void hak__segment_lock(void) { pthread_mutex_lock(&seg_lock); }
void hak__segment_unlock(void) { pthread_mutex_unlock(&seg_lock); }
//! The child has no thread that would bring pages in transit home.
void hak__segment_fork_child(void) {
  pthread_mutex_init(&seg_lock, NULL);
  atomic_store_explicit(&seg_transit, 0, memory_order_relaxed);
}

//! Maps size bytes aligned to align; out of memory, trims and tries again,
//! then waits for memory on its way back (NULL only when none is).
void* hak__map_or_reclaim(size_t size, size_t align) {
  uint32_t seen = segment_returned();
  void* p = hak__os_map_aligned(size, align);
  if (!p && hak__trim_all()) p = hak__os_map_aligned(size, align);
  for (unsigned w = 0; !p && segment_transit_wait(&w, &seen);) p = hak__os_map_aligned(size, align);
  return p;
}

//! Maps a new aligned segment and registers it in the segment map.
void* hak__segment_alloc(int kind) {
  hak_segment_t* s = hak__map_or_reclaim(HAK_SEG_SIZE, HAK_SEG_SIZE);
  if (!s) return NULL;
  hak__os_nohuge(s, HAK_SEG_SIZE);
  s->magic = HAK_SEG_MAGIC;
  s->kind = (uint8_t)kind;
  /* HAKMEM_VALGRIND: blocks and free blocks are no memory of memcheck's
   * until handed out (the header, in the first 64 KiB for both kinds, stays
   * visible: the inline free path reads it) */
  if (hak__opt.valgrind) hak__vg_hide((char*)s + HAK_PAGE_SIZE, HAK_SEG_SIZE - HAK_PAGE_SIZE);
  /* every page free to the fast path before the map says "small" (a zero
   * tag would read as ownerless) */
  if (kind == HAK_SEG_SMALL)
    for (size_t i = 0; i < HAK_PAGES_PER_SEG; i++)
      atomic_store_explicit(&hak__ptag_of(s, (uintptr_t)s + (i << HAK_PAGE_SHIFT))->owner, HAK_TOKEN_SENTINEL,
                            memory_order_relaxed);
  __atomic_store_n(&hak__segmap[(uintptr_t)s >> HAK_SEG_SHIFT], (uint8_t)kind, __ATOMIC_RELEASE);
  return s;
}

static void heap_wait_pop(hak_heap_t* h, void* arg) {
  (void)arg;
  unsigned n = 0;
  while (atomic_load(&h->in_pop)) hak__os_backoff(&n);
}

//! Waits until every central-list walk that began before now has ended.
//! Used before unmapping: a popper may hold a link into the memory.
void hak__grace_wait(void) {
  atomic_thread_fence(memory_order_seq_cst);
  hak__heap_each_unlocked(heap_wait_pop, NULL);   /* a popper may be preempted: no lock held */
  unsigned n = 0;
  while (atomic_load(&hak__anon_pops)) hak__os_backoff(&n);
}

//! Maps a new small segment; all its pages start free (seg_lock held).
static hak_segment_t* segment_grow_locked(void) {
  pthread_mutex_unlock(&seg_lock);      /* mapping may trim, which takes the lock */
  hak_segment_t* s = hak__segment_alloc(HAK_SEG_SMALL);
  pthread_mutex_lock(&seg_lock);
  if (!s) return NULL;
  s->pages[0].state = HAK_PAGE_META;
  for (size_t i = 1; i < HAK_PAGES_PER_SEG; i++) s->pages[i].state = HAK_PAGE_FREE;
  s->free_mask = ~(uint64_t)1;
  s->nfree = HAK_PAGES_PER_SEG - 1;
  s->in_avail = 1;
  s->next_avail = seg_avail;
  seg_avail = s;
  s->next_all = seg_all;
  seg_all = s;
  return s;
}

//! Calls fn on each page of every small segment, under the segment lock,
//! until fn returns 0 (the counted reclaim's scan, small.c).
void hak__page_each(int (*fn)(hak_page_t* pg, void* arg), void* arg) {
  int go = 1;
  pthread_mutex_lock(&seg_lock);
  for (hak_segment_t* s = seg_all; s && go; s = s->next_all)
    for (size_t i = 1; i < HAK_PAGES_PER_SEG && go; i++) go = fn(&s->pages[i], arg);
  pthread_mutex_unlock(&seg_lock);
}

//! The exact-division check's constants for block size d (see
//! hak__is_block_start): Newton's iteration for the inverse of the odd part.
void hak__div_magic(uint32_t d, uint32_t* mul, uint8_t* shift) {
  uint32_t k = (uint32_t)__builtin_ctz(d), m = d >> k, inv = m;
  for (int i = 0; i < 5; i++) inv *= 2 - m * inv;
  *mul = inv;
  *shift = (uint8_t)k;
}

static _Atomic uint32_t seg_color_next[HAK_SMALL_CLASSES];

/* The class's next colour steps 67 lines through its colours (no class
 * has a multiple of 67 colours: test_pool_colour), so that a few pages
 * already differ in the colour's upper bits, not in its low lines only.
 * A warm page takes the colour's part under 4 KiB: the old class's memory
 * before a higher first block would stay resident and unused, where a
 * fresh page's is never touched. */
#define SEG_COLOR_STEP 67u

//! Sets a page's block geometry, its colour (color < 0: the class's next,
//! in turn; under 4 KiB if the page is still committed, i.e. warm) and its
//! packed class (what free reads).
static void page_init_class(hak_page_t* pg, unsigned cls, int color) {
  uint32_t d = hak__class_size[cls];
  if (color < 0) {
    /* a load and a store, not a locked add: threads that race may repeat
     * colours (a thread preempted between the two even rewinds the turn by
     * the pages taken meanwhile), which costs a little spread, no more */
    uint32_t n = atomic_load_explicit(&seg_color_next[cls], memory_order_relaxed);
    atomic_store_explicit(&seg_color_next[cls], n + 1, memory_order_relaxed);
    color = (int)((uint64_t)n * SEG_COLOR_STEP % hak__class_colors[cls] * 64);
    if (pg->committed) color &= 4095;
  }
  pg->block_size = d;
  __atomic_store_n(&pg->cls, (uint16_t)cls, __ATOMIC_RELAXED);   /* hak__page_each's callers read it */
  pg->capacity = hak__class_cap[cls];
  pg->color = (uint32_t)color;
  pg->scav_gen = 0;
  hak_ptag_t* t = hak__ptag_of(hak__seg_of((uintptr_t)pg), hak__page_start(pg));
  t->bin_off = cls << HAK_BIN_SHIFT;
  t->ccolor = pg->color * hak__class_div[cls].c;
}

static hak_page_t* page_take(hak_page_t* pg, unsigned cls, hak_heap_t* owner, int color, int from);
static unsigned page_layer(const hak_page_t* pg);

//! A free page off the warm stash, else off the first segment with one,
//! under seg_lock; NULL if neither has one.  *from is the layer a warm
//! page's bytes are counted in (-1: a segment's page, counted in none).
static hak_page_t* page_pick_locked(int* from) {
  hak_page_t* pg = seg_warm;
  if (pg) {
    seg_warm = pg->next_free;
    *from = (int)page_layer(pg);
    SEG_LOCKED_ADD(seg_warm_n[*from], (uint32_t)-1);
    SEG_LOCKED_ADD(seg_warm_taken, 1);
    return pg;
  }
  hak_segment_t* s = seg_avail;
  if (!s) return NULL;
  unsigned i = (unsigned)__builtin_ctzll(s->free_mask);
  s->free_mask &= s->free_mask - 1;
  s->nfree--;
  if (!s->free_mask) {            /* full: off the list (it is the head) */
    seg_avail = s->next_avail;
    s->in_avail = 0;
  }
  *from = -1;
  return &s->pages[i];
}

//! Takes a free page for class cls, owned by owner, of colour color (a
//! multiple of 64 the class allows), or of the class's next if color < 0.
hak_page_t* hak__page_acquire(unsigned cls, hak_heap_t* owner, int color) {
  for (unsigned waits = 0;;) {
    pthread_mutex_lock(&seg_lock);
    uint32_t seen = segment_returned();    /* under the lock: no arrival slips past the looks below */
    int from;
    hak_page_t* pg = page_pick_locked(&from);
    /* a failed mapping trims, which may have freed pages meanwhile */
    if (!pg && (segment_grow_locked() || seg_avail)) pg = page_pick_locked(&from);
    if (pg) {
      pthread_mutex_unlock(&seg_lock);
      return page_take(pg, cls, owner, color, from);
    }
    /* out of memory, but pages on their way to the OS (a decay, a walk's
     * release) come back to their segments in a moment: wait for them, or
     * a second fill of a freed heap fails short (tests/oom/transit) */
    int warm = seg_warm != NULL;
    pthread_mutex_unlock(&seg_lock);
    if (!warm && !segment_transit_wait(&waits, &seen)) {
      errno = ENOMEM;
      return NULL;
    }
  }
}

//! Up to n pages for class cls under one hold of the lock (a refill's
//! batch), in pgs.  With none at hand, the first as hak__page_acquire takes
//! it (mapping a segment, or waiting for pages on their way back), and the
//! rest from what that left; with some, a batch that runs out maps one
//! segment for the rest.  One mapping tried per call when none is at hand,
//! as before (tests/faults fails one mapping an allocation).  Returns how
//! many (0: out of memory).
uint32_t hak__page_acquire_n(unsigned cls, hak_heap_t* owner, hak_page_t** pgs, uint32_t n) {
  int from[HAK_TLS_PAGES];
  uint32_t got = 0, first = 0;
  if (n > HAK_TLS_PAGES) n = HAK_TLS_PAGES;
  if (!n) return 0;
  pthread_mutex_lock(&seg_lock);
  if (!seg_warm && !seg_avail) {
    pthread_mutex_unlock(&seg_lock);
    if ((pgs[0] = hak__page_acquire(cls, owner, -1)) == NULL) return 0;
    got = first = 1;
    pthread_mutex_lock(&seg_lock);
  }
  for (int grown = first; got < n;) {
    if ((pgs[got] = page_pick_locked(&from[got])) != NULL) { got++; continue; }
    /* the pages at hand ran out mid-batch: one new segment for the rest
     * (the pages taken are off every list while it unlocks to map) */
    if (grown++ || !segment_grow_locked()) break;
  }
  pthread_mutex_unlock(&seg_lock);
  for (uint32_t i = first; i < got; i++) page_take(pgs[i], cls, owner, -1, from[i]);
  return got;
}

//! The end of the blocks a page's geometry can hold, rounded up to an OS
//! page: nothing past it is written while the page is in its class.
static uintptr_t page_blocks_end(const hak_page_t* pg) {
  uintptr_t end = pg->color + (uintptr_t)pg->capacity * pg->block_size;
  return (end + 4095) & ~(uintptr_t)4095;
}

//! Counts a page's stale tail in (d = 1) or out (d = -1): the upkeep
//! walks only the segments that have one.
static void page_stale_count(hak_page_t* pg, int d) {
  atomic_fetch_add_explicit(&hak__seg_of((uintptr_t)pg)->stale_n, (uint32_t)d, memory_order_relaxed);
  atomic_fetch_add_explicit(&seg_stale_n, (uint32_t)d, memory_order_relaxed);
}

//! Forgets a free page's stale tail (its memory is going to the OS, or a
//! new class's blocks cover it); the trimmer may race to do the same.
static void page_stale_clear(hak_page_t* pg) {
  if (atomic_load_explicit(&pg->stale_end, memory_order_relaxed) &&
      atomic_exchange_explicit(&pg->stale_end, 0, memory_order_relaxed))
    page_stale_count(pg, -1);
}

//! A free page becomes class cls's, owned by owner.  A warm page taken by
//! a class whose blocks end earlier keeps the old class's memory past them,
//! resident and unused (bench/prodcons 2-32 KiB: 3-4 MB of its peak RSS).
//! The page notes it, and upkeep drops it once the page kept its class for
//! a while (hak__page_tails_trim): dropped at once, a program whose sizes
//! change every few milliseconds (bench/shift) refaulted it (-30%).
//! from is the layer a warm page's bytes were counted in (-1: none).
static hak_page_t* page_take(hak_page_t* pg, unsigned cls, hak_heap_t* owner, int color, int from) {
  uintptr_t old_end = 0;
  if (pg->committed) {
    old_end = page_blocks_end(pg);
    uintptr_t st = (uintptr_t)atomic_load_explicit(&pg->stale_end, memory_order_relaxed) << 12;
    if (st > old_end) old_end = st;
  }
  page_stale_clear(pg);
  page_init_class(pg, cls, color);
  if (old_end > page_blocks_end(pg)) {
    pg->stale_ms = (uint16_t)(hak__os_now_ns() / 1000000u);
    atomic_store_explicit(&pg->stale_end, (uint8_t)(old_end >> 12), memory_order_relaxed);
    page_stale_count(pg, 1);
  }
  hak__page_set_owner(pg, owner->token);
  pg->committed = 1;
  atomic_store_explicit(&pg->carved, 0, memory_order_relaxed);
  atomic_store_explicit(&pg->state, HAK_PAGE_ACTIVE, memory_order_release);
  atomic_fetch_add_explicit(&seg_pages_in_use[cls], 1, memory_order_relaxed);
  int to = (int)page_layer(pg);
  if (from != to) {                     /* a warm page of the same layer stays counted */
    if (from >= 0) hak__layer_mapped_add(from, -(int64_t)HAK_PAGE_SIZE);
    hak__layer_mapped_add(to, HAK_PAGE_SIZE);
  }
  return pg;
}

//! The layer a page's class is in (HAK_LAYER_TINY 0, HAK_LAYER_MID 1).
static unsigned page_layer(const hak_page_t* pg) { return (unsigned)hak__class_layer(pg->cls); }

//! A page leaves its class: free to the fast path; the caller counts it
//! out of the class's pages in use.
static void page_unclass_only(hak_page_t* pg) {
  atomic_store_explicit(&pg->owner, HAK_TOKEN_NONE, memory_order_relaxed);
  hak__page_set_tag(pg, HAK_TOKEN_SENTINEL);      /* free: the fast path declines */
  atomic_store_explicit(&pg->state, HAK_PAGE_FREE, memory_order_release);
}

//! A page leaves its class: free to the fast path, not in use.
static void page_unclass(hak_page_t* pg) {
  page_unclass_only(pg);
  atomic_fetch_sub_explicit(&seg_pages_in_use[pg->cls], 1, memory_order_relaxed);
}

//! A free page's memory goes back to the OS, and the page to its segment.
static void page_decommit(hak_page_t* pg) {
  page_stale_clear(pg);
  hak__os_decommit((void*)hak__page_start(pg), HAK_PAGE_SIZE);
  pg->committed = 0;
  hak__layer_mapped_add(page_layer(pg), -(int64_t)HAK_PAGE_SIZE);
  page_to_segment(pg);
}

//! A wholly free page goes back to the OS and to its segment.
void hak__page_release(hak_page_t* pg) {
  segment_transit_leave();
  page_unclass(pg);
  page_decommit(pg);
}

//! A free page back in its segment's mask (its memory already decommitted).
static void page_to_segment(hak_page_t* pg) {
  hak_segment_t* s = (hak_segment_t*)((uintptr_t)pg & ~HAK_SEG_MASK);
  unsigned i = (unsigned)(pg - s->pages);
  pthread_mutex_lock(&seg_lock);
  s->free_mask |= (uint64_t)1 << i;
  s->nfree++;
  segment_transit_arrive();
  if (!s->in_avail) {
    s->in_avail = 1;
    s->next_avail = seg_avail;
    seg_avail = s;
  }
  pthread_mutex_unlock(&seg_lock);
}

//! Wholly free pages, still committed, wait for the next pages any class
//! takes, pgs[0] on top.  Their memory holds the old class's blocks and
//! free marks: a carve writes the link and mark of every block it lists,
//! and clears the mark of one it hands out unlisted (tiny.c, and the
//! aligned carve).  They stay counted in their layer's mapped bytes, and
//! as cached pages, until then.
//! One hold of the lock and one count a class for the lot: a class that
//! gives up a round's pages gave up 400-600 at a time (bench/shift).
void hak__page_stash_n(hak_page_t** pgs, uint32_t n) {
  if (!n) return;
  uint64_t now = hak__os_now_ns();
  uint32_t warm[2] = {0, 0};
  for (uint32_t i = 0, run = 0; i < n; i++) {
    hak_page_t* pg = pgs[i];
    page_unclass_only(pg);
    pg->orphan_ns = now;
    warm[page_layer(pg)]++;
    run++;
    if (i + 1 == n || pgs[i + 1]->cls != pg->cls) {
      atomic_fetch_sub_explicit(&seg_pages_in_use[pg->cls], run, memory_order_relaxed);
      run = 0;
    }
  }
  pthread_mutex_lock(&seg_lock);
  for (uint32_t i = n; i-- > 0;) {
    pgs[i]->next_free = seg_warm;
    seg_warm = pgs[i];
  }
  for (int l = 0; l < 2; l++)
    if (warm[l]) SEG_LOCKED_ADD(seg_warm_n[l], warm[l]);
  pthread_mutex_unlock(&seg_lock);
}

//! Warm pages stashed before `before` (every one if UINT64_MAX) go back to
//! the OS; returns how many.  The list is newest first (stash and take
//! at the head), so the old ones are its tail.
uint32_t hak__page_warm_decay(uint64_t before) {
  if (!hak__page_warm_count()) return 0;
  pthread_mutex_lock(&seg_lock);
  hak_page_t** pp = &seg_warm;
  while (*pp && before != UINT64_MAX && (*pp)->orphan_ns >= before) pp = &(*pp)->next_free;
  hak_page_t* old = *pp;
  *pp = NULL;
  for (hak_page_t* pg = old; pg; pg = pg->next_free) {
    SEG_LOCKED_ADD(seg_warm_n[page_layer(pg)], (uint32_t)-1);
    segment_transit_leave();
  }
  pthread_mutex_unlock(&seg_lock);
  uint32_t n = 0;
  while (old) {
    hak_page_t* pg = old;
    old = pg->next_free;
    page_decommit(pg);
    n++;
  }
  return n;
}

//! How long a page keeps its stale tail: a quarter of the decay window, an
//! upkeep round's length (50 ms at least, a minute at most: the stamp wraps).
unsigned hak__page_tail_age_ms(void) {
  unsigned q = (unsigned)hak__opt.decay_ms / 4;
  return q < 50 ? 50 : q > 60000 ? 60000 : q;
}

//! Upkeep: a page in use that was taken warm hak__page_tail_age_ms() ago
//! or more loses the stale memory past its blocks.  Under seg_lock, so the
//! page cannot change class meanwhile: to take another class's blocks past
//! its end it would go through the warm stash or its segment, both under
//! the lock.
void hak__page_tails_trim(uint64_t now_ns) {
  if (!atomic_load_explicit(&seg_stale_n, memory_order_relaxed)) return;
  uint16_t now = (uint16_t)(now_ns / 1000000u);
  uint16_t age = (uint16_t)hak__page_tail_age_ms();
  pthread_mutex_lock(&seg_lock);
  for (hak_segment_t* s = seg_all; s; s = s->next_all)
    for (size_t i = 1; i < HAK_PAGES_PER_SEG && atomic_load_explicit(&s->stale_n, memory_order_relaxed); i++) {
      hak_page_t* pg = &s->pages[i];
      if (atomic_load_explicit(&pg->state, memory_order_acquire) == HAK_PAGE_FREE ||
          !atomic_load_explicit(&pg->stale_end, memory_order_relaxed) || (uint16_t)(now - pg->stale_ms) < age)
        continue;
      uintptr_t end = page_blocks_end(pg);
      uintptr_t old = (uintptr_t)atomic_exchange_explicit(&pg->stale_end, 0, memory_order_relaxed) << 12;
      if (!old) continue;                          /* a release cleared it meanwhile */
      page_stale_count(pg, -1);
      if (old > end) hak__os_decommit((void*)(hak__page_start(pg) + end), old - end);
    }
  pthread_mutex_unlock(&seg_lock);
}

uint32_t hak__page_warm_count(void) {
  return atomic_load_explicit(&seg_warm_n[0], memory_order_relaxed) + atomic_load_explicit(&seg_warm_n[1], memory_order_relaxed);
}
uint32_t hak__page_warm_layer(unsigned layer) { return atomic_load_explicit(&seg_warm_n[layer], memory_order_relaxed); }
uint64_t hak__page_warm_taken(void) { return atomic_load_explicit(&seg_warm_taken, memory_order_relaxed); }

//! Marks a page carved out at `carved` blocks: blocks freed from now on go
//! to the freeing thread's cache, and once all are back it may be released.
//! The orphan list calls it under seg_lock, so a fork never sees an orphan
//! between two states.
void hak__page_retire(hak_page_t* pg, uint32_t carved) {
  atomic_store_explicit(&pg->carved, carved, memory_order_relaxed);
  atomic_store_explicit(&pg->state, HAK_PAGE_FULL, memory_order_release);
  hak__page_set_owner(pg, HAK_TOKEN_NONE);
}

//! An exiting thread's active page, carved up to `carved` blocks: kept for
//! adoption (still ACTIVE, so the scavenger leaves it), or retired when the
//! class already has enough orphans.
void hak__page_orphan(hak_page_t* pg, uint32_t carved) {
  unsigned cls = pg->cls;
  uint64_t now = hak__os_now_ns();
  pthread_mutex_lock(&seg_lock);
  if (atomic_load_explicit(&seg_orphan_n[cls], memory_order_relaxed) >= SEG_ORPHANS_MAX) {
    hak__page_retire(pg, carved);
  } else {
    atomic_store_explicit(&pg->carved, carved, memory_order_relaxed);
    hak__page_set_owner(pg, HAK_TOKEN_NONE);    /* frees go to the freeing thread's cache */
    pg->orphan_ns = now;
    pg->next_orphan = seg_orphans[cls];
    seg_orphans[cls] = pg;
    atomic_fetch_add_explicit(&seg_orphan_n[cls], 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&seg_lock);
}

//! Takes the newest orphan of class cls for owner (its lines are the
//! likeliest to be cached); its carved count says where the bump pointer
//! resumes.
hak_page_t* hak__page_adopt(unsigned cls, hak_heap_t* owner) {
  if (!atomic_load_explicit(&seg_orphan_n[cls], memory_order_relaxed)) return NULL;
  pthread_mutex_lock(&seg_lock);
  hak_page_t* pg = seg_orphans[cls];
  if (pg) {
    seg_orphans[cls] = pg->next_orphan;
    pg->next_orphan = NULL;
    atomic_fetch_sub_explicit(&seg_orphan_n[cls], 1, memory_order_relaxed);
    hak__page_set_owner(pg, owner->token);
  }
  pthread_mutex_unlock(&seg_lock);
  return pg;
}

//! Retires the orphans of class cls left before `before` (every one if
//! before is UINT64_MAX): a class no longer in use, or a trim, must be able
//! to give their pages back.
void hak__page_orphans_age(unsigned cls, uint64_t before) {
  if (!atomic_load_explicit(&seg_orphan_n[cls], memory_order_relaxed)) return;
  if (before != UINT64_MAX) before = before > SEG_ORPHAN_AGE_NS ? before - SEG_ORPHAN_AGE_NS : 0;
  pthread_mutex_lock(&seg_lock);
  for (hak_page_t** pp = &seg_orphans[cls]; *pp;) {
    hak_page_t* pg = *pp;
    if (pg->orphan_ns >= before) { pp = &pg->next_orphan; continue; }
    *pp = pg->next_orphan;
    pg->next_orphan = NULL;
    atomic_fetch_sub_explicit(&seg_orphan_n[cls], 1, memory_order_relaxed);
    hak__page_retire(pg, atomic_load_explicit(&pg->carved, memory_order_relaxed));
  }
  pthread_mutex_unlock(&seg_lock);
}

//! Unmaps every small segment whose pages are all free; returns bytes.
size_t hak__segment_trim(void) {
  hak_segment_t* dead = NULL;
  pthread_mutex_lock(&seg_lock);
  for (hak_segment_t** pp = &seg_avail; *pp;) {
    hak_segment_t* s = *pp;
    if (s->nfree == HAK_PAGES_PER_SEG - 1) {
      *pp = s->next_avail;
      s->in_avail = 0;
      s->next_avail = dead;
      dead = s;
      s->kind = HAK_SEG_NONE;              /* off seg_all below */
      segment_transit_leave();
    } else {
      pp = &s->next_avail;
    }
  }
  if (dead)
    for (hak_segment_t** pp = &seg_all; *pp;) {
      if ((*pp)->kind == HAK_SEG_NONE) *pp = (*pp)->next_all;
      else pp = &(*pp)->next_all;
    }
  pthread_mutex_unlock(&seg_lock);
  size_t bytes = 0;
  if (!dead) return 0;
  for (hak_segment_t* s = dead; s; s = s->next_avail)
    __atomic_store_n(&hak__segmap[(uintptr_t)s >> HAK_SEG_SHIFT], HAK_SEG_NONE, __ATOMIC_SEQ_CST);
  hak__grace_wait();
  while (dead) {
    hak_segment_t* s = dead;
    dead = s->next_avail;
    hak__os_unmap(s, HAK_SEG_SIZE);
    segment_transit_arrive();
    bytes += HAK_SEG_SIZE;
  }
  return bytes;
}

uint64_t hak__small_pages_in_use(unsigned cls) {
  return atomic_load_explicit(&seg_pages_in_use[cls], memory_order_relaxed);
}
