/* The shared slow paths of Tiny and Mid ("small" classes): the sharded
 * central lists, the remote inbox, carving pages by bump pointer, page
 * refill batches (seed phase 6.25), and the scavenger that gives wholly
 * free pages beyond CAP back to the OS.
 *
 * Page accounting costs the fast path nothing: a page only learns it is
 * free when the scavenger, holding every block of the class's central
 * lists, counts the page's blocks and finds all of its carved blocks. */
#define _GNU_SOURCE
#include "internal.h"
#include "policy.h"
#include "link.h"
#include <string.h>

static hak_freelist_t central[HAK_SMALL_CLASSES][HAK_SHARDS];
static _Atomic int scav_busy[HAK_SMALL_CLASSES];
static uint32_t scav_gen[HAK_SMALL_CLASSES];           /* under scav_busy */
static _Atomic uint64_t scav_last_ns[HAK_SMALL_CLASSES];
static _Atomic int64_t scav_low[HAK_SMALL_CLASSES];     /* low water of the central count */
static _Atomic int scav_popped[HAK_SMALL_CLASSES];      /* a pop or fresh pages since the last upkeep tick */
_Static_assert(HAK_SMALL_CLASSES <= 64, "scav_over is one word");
static _Atomic uint64_t scav_over;   /* bit c: class c's lists held more than CAP and 4 pages at a push */

/* A walk that released little (under an eighth of the blocks it walked) is
 * not repeated until the lists have doubled, the keep is lowered, or its
 * backoff has passed (4 s doubling to 64 s while walks stay fruitless).
 * Blocks of pages that each keep a block in use cannot be released, and
 * walking them on every 100 ms tick kept the background thread busy: 2.1 s
 * of CPU in 3 s of an idle program holding 2M of them.  Rewalking after an
 * eighth more still cost sqlite3 (1M rows and an index) 35% of its time
 * while its lists grew: doubling bounds the walks to twice what arrives.
 * But a class whose last live blocks were freed just after a fruitless walk
 * may have grown by less than double (blocks freed in two passes: half,
 * then the rest): its pages are now whole, and waiting 4 s for them held
 * 25 MB (tests/release).  So the floor on whole pages (small_whole_floor)
 * rewalks too, once it has grown and promises a walk that is not fruitless:
 * only a walk to the warm stash (an idle class's, a reclaim's), whose pages
 * another class may still take.  Early decay walks, which give pages to the
 * OS, cost a phased program (py_phases) 7% more CPU in refaults. */
typedef struct scav_memo { int64_t count, floor; uint32_t keep; uint64_t next_ns, backoff_ns; } scav_memo_t;
static scav_memo_t scav_memo[HAK_SMALL_CLASSES];        /* under scav_busy */
#define SCAV_BACKOFF_MIN_NS 4000000000ull
#define SCAV_BACKOFF_MAX_NS 64000000000ull

void hak__small_init(void) {
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++)
    for (unsigned s = 0; s < HAK_SHARDS; s++) hak__freelist_init(&central[c][s]);
}

void hak__small_fork_child(void) {
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) atomic_store(&scav_busy[c], 0);
  memset(scav_memo, 0, sizeof scav_memo);   /* a parent's walk may have been mid-update */
#ifdef HAK_CENTRAL_MUTEX
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++)
    for (unsigned s = 0; s < HAK_SHARDS; s++) pthread_mutex_init(&central[c][s].lock, NULL);
#endif
}

static inline uint32_t small_bpp(unsigned cls) { return hak__class_cap[cls]; }

//! Marks class cls in use since the last upkeep tick (not idle): a load
//! first, so a busy class does not write the shared line each time.
static inline void small_mark_used(unsigned cls) {
  if (!atomic_load_explicit(&scav_popped[cls], memory_order_relaxed))
    atomic_store_explicit(&scav_popped[cls], 1, memory_order_relaxed);
}

uint64_t hak__small_cached_blocks(unsigned cls) {
  int64_t n = 0;
  for (unsigned s = 0; s < HAK_SHARDS; s++) n += atomic_load_explicit(&central[cls][s].count, memory_order_relaxed);
  return n > 0 ? (uint64_t)n : 0;
}

//! Decay: the scavenger releases only what sat idle.  Each class keeps the
//! low-water mark of its central lists over a window of HAKMEM_DECAY_MS;
//! at the window's end, blocks that were never needed during it (the low
//! water, less CAP pages) are surplus, and the wholly free pages among them
//! go back to the OS.  A class in churn drains its lists to near zero in
//! every window and so keeps what it will need again.
static int small_maybe_scavenge(unsigned cls, uint64_t now) {
  int64_t count = (int64_t)hak__small_cached_blocks(cls);
  int64_t bpp = small_bpp(cls);
  int64_t capb = (int64_t)hak__policy_cap(cls) * bpp;
  if (count <= capb + 4 * bpp) return 0;
  if (!(atomic_load_explicit(&scav_over, memory_order_relaxed) >> cls & 1))
    atomic_fetch_or_explicit(&scav_over, (uint64_t)1 << cls, memory_order_relaxed);
  if (!now) now = hak__os_now_ns();
  uint64_t start = atomic_load_explicit(&scav_last_ns[cls], memory_order_relaxed);
  if (now - start < (uint64_t)hak__opt.decay_ms * 1000000ull) return 0;
  if (!atomic_compare_exchange_strong(&scav_last_ns[cls], &start, now)) return 0;
  int64_t low = atomic_exchange_explicit(&scav_low[cls], count, memory_order_relaxed);
  if (low > count) low = count;
  if (low - capb < 4 * bpp) return 0;
  int64_t keep = (capb + (count - low)) / bpp;
  int walked = hak__small_scavenge(cls, (uint32_t)(keep < 0x7fffffff ? keep : 0x7fffffff), 0);
  atomic_store_explicit(&scav_low[cls], (int64_t)hak__small_cached_blocks(cls), memory_order_relaxed);
  return walked;                        /* the scavenges counter counts walks */
}

void hak__small_central_push(hak_heap_t* h, unsigned cls, void* first, void* last, uint32_t n) {
  hak__freelist_push_chain(&central[cls][h->id % HAK_SHARDS], first, last, n, h);
  HAK_CSTAT(h, cls, central_push, n);
  if (!hak__opt.keep && small_maybe_scavenge(cls, 0)) HAK_TSTAT(h, scavenges, 1);
  hak__bg_kick();
}

static int small_walk(hak_heap_t* h, unsigned cls, uint32_t keep_pages, int force, int stash);
static _Atomic uint64_t tick_last_ns;

//! Whether free pages may go warm: not under HAKMEM_VALGRIND (memcheck
//! tracks each block's memory) nor HAKMEM_SECURE (a warm page's uncarved
//! part holds the old class's free marks, which its link check would take
//! for free blocks of the new class: fresh pages read zero).
static int small_warm_ok(void) { return !hak__opt.valgrind && !hak__opt.secure; }

//! Periodic upkeep from slow paths (at most every 100 ms): release surplus
//! pages of idle classes and decay the huge-mapping cache.
void hak__maintenance_tick(void) {
  uint64_t now = hak__os_now_ns();
  uint64_t last = atomic_load_explicit(&tick_last_ns, memory_order_relaxed);
  if (now - last < 100000000ull || !atomic_compare_exchange_strong(&tick_last_ns, &last, now)) return;
  hak__maintenance_run(now);
}

//! A class whose central lists hold surplus and were not popped at all
//! since the last tick is idle: its surplus leaves now, not at the end of
//! the window (a burst freed, then a quiet program).  Its wholly free pages
//! go warm, and to the OS a decay window later unless another class takes
//! them first: a program whose sizes change round after round (bench/shift)
//! left each size idle for a tick, and refaulted 600-1100 pages a second.
static _Atomic uint64_t scav_idle_since[HAK_SMALL_CLASSES];   /* upkeep (a tick and the bg thread may overlap) */
static void small_idle_scavenge(unsigned cls, uint64_t now) {
  int popped = atomic_exchange_explicit(&scav_popped[cls], 0, memory_order_relaxed);
  uint32_t keep = hak__idle_keep(&scav_idle_since[cls], popped, now, hak__policy_cap(cls));
  if (popped || (int64_t)hak__small_cached_blocks(cls) <= ((int64_t)keep + 4) * small_bpp(cls)) return;
  small_walk(NULL, cls, keep, 0, small_warm_ok());
  atomic_store_explicit(&scav_low[cls], (int64_t)hak__small_cached_blocks(cls), memory_order_relaxed);
}

//! One round of upkeep: every class's decay window, the huge cache.
void hak__maintenance_run(uint64_t now) {
  if (!hak__opt.keep)
    for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) {
      hak__page_orphans_age(c, now);
      small_idle_scavenge(c, now);
      small_maybe_scavenge(c, now);
    }
  uint64_t decay = (uint64_t)hak__opt.decay_ms * 1000000ull;
  hak__small_released_add(hak__page_warm_decay(now > decay ? now - decay : 0));
  hak__page_tails_trim(now);
  hak__l25_decay(now);
  hak__os_scratch_decay();
  if (!hak__opt.keep) hak__huge_trim(0);
}

static void* small_central_pop_once(hak_heap_t* h, unsigned cls, uint32_t max, uint32_t* got, void** last,
                                    unsigned s0);

//! Pops a batch from the central lists, own shard first.
void* hak__small_central_pop(hak_heap_t* h, unsigned cls, uint32_t max, uint32_t* got, void** last) {
  /* nothing cached and no scavenger holding it: the refill goes on to
   * pages at once (the pass below, with the tick's clock, cost 200
   * instructions a refill of a class that carves, as every new size does) */
  if (hak__small_cached_blocks(cls) == 0 && !atomic_load_explicit(&scav_busy[cls], memory_order_relaxed)) {
    *got = 0;
    return NULL;
  }
  hak__maintenance_tick();
  unsigned s0 = h->id % HAK_SHARDS;
  /* a scavenger holds the class's blocks for a moment: rather than take
   * fresh pages at once, back off (yields, then short sleeps; about 40 ms
   * at most) while it works, and look again */
  for (unsigned tries = 0, split = 0; tries < 40;) {
    void* chain = small_central_pop_once(h, cls, max, got, last, s0);
    if (chain) return chain;
    /* blocks are counted but none came: another popper is splitting a
     * chain (it holds all of it while it walks); look again, twice */
    if (!atomic_load_explicit(&scav_busy[cls], memory_order_relaxed) &&
        (split++ >= 2 || hak__small_cached_blocks(cls) == 0))
      return NULL;
    hak__os_backoff(&tries);
  }
  *got = 0;
  return NULL;
}

//! One pass over the shards, own shard first.
static void* small_central_pop_once(hak_heap_t* h, unsigned cls, uint32_t max, uint32_t* got, void** last,
                                    unsigned s0) {
  for (unsigned i = 0; i < HAK_SHARDS; i++) {
    hak_freelist_t* fl = &central[cls][(s0 + i) % HAK_SHARDS];
    if (atomic_load_explicit(&fl->count, memory_order_relaxed) <= 0 && hak__freelist_empty(fl))
      continue;
    void* chain = hak__freelist_pop_chains(fl, max, got, last, h);
    if (chain) {
      HAK_CSTAT(h, cls, central_pop, *got);
      small_mark_used(cls);
      int64_t now = (int64_t)hak__small_cached_blocks(cls);
      if (now < atomic_load_explicit(&scav_low[cls], memory_order_relaxed))
        atomic_store_explicit(&scav_low[cls], now, memory_order_relaxed);
      return chain;
    }
  }
  *got = 0;
  return NULL;
}

//! drain_remote_lockfree: the owner takes its whole inbox in one exchange;
//! the count rides in the low bits, so nothing is walked.
void* hak__drain_remote_lockfree(hak_heap_t* h, unsigned cls, uint32_t* got) {
  if (!atomic_load_explicit(&h->inbox[cls], memory_order_relaxed)) { *got = 0; return NULL; }
  uintptr_t v = atomic_exchange_explicit(&h->inbox[cls], 0, memory_order_acquire);
  HAK_TSTAT(h, drains, 1);
  HAK_TSTAT(h, drained_blocks, v & HAK_INBOX_MAX);
  *got = (uint32_t)(v & HAK_INBOX_MAX);
  return (void*)(v & ~(uintptr_t)HAK_INBOX_MAX);
}

//! A free by a thread that does not own the page.  The owner's inbox holds
//! at most HAK_INBOX_MAX blocks: the free that finds it full takes them all
//! to the central list in one batch, so an owner that stops allocating
//! strands nothing, and remote frees reach central 16 at a time.
void hak__small_remote_free(hak_heap_t* h, hak_page_t* pg, void* p) {
  uintptr_t tok = hak__page_owner(pg);
  hak_heap_t* owner = hak__heap_of_token(tok);
  unsigned cls = pg->cls;
  hak__mark_free(p);
  if (owner && __atomic_load_n(&owner->token, __ATOMIC_ACQUIRE) == tok) {
    _Atomic uintptr_t* box = &owner->inbox[cls];
    uintptr_t old = atomic_load_explicit(box, memory_order_relaxed);
    HAK_CSTAT(h, cls, remote_free, 1);
    for (;;) {
      uintptr_t n = old & HAK_INBOX_MAX;
      if (n == HAK_INBOX_MAX) {
        if (!atomic_compare_exchange_weak_explicit(box, &old, 0, memory_order_acquire, memory_order_relaxed))
          continue;
        void* chain = (void*)(old & ~(uintptr_t)HAK_INBOX_MAX);
        void* last = hak__link_last(chain, (int)cls, NULL);
        hak__link_set(p, chain);
        hak__small_central_push(h, cls, p, last, (uint32_t)n + 1);
        return;
      }
      hak__link_set(p, (void*)(old & ~(uintptr_t)HAK_INBOX_MAX));
      if (atomic_compare_exchange_weak_explicit(box, &old, (uintptr_t)p | (n + 1), memory_order_release,
                                                memory_order_relaxed))
        return;
    }
  }
  /* no live owner (carved out, or its thread exited): the page becomes
   * ownerless and the block joins this thread's cache */
  if (tok != HAK_TOKEN_NONE && atomic_compare_exchange_strong(&pg->owner, &tok, HAK_TOKEN_NONE))
    hak__page_set_tag(pg, HAK_TOKEN_NONE);
  hak__bin_free_slow(h, cls, p);
}

/* Blocks carved from each class's pages now in the class: a slot adds what
 * it carved when it retires, and a page that leaves with carved blocks
 * (only ever by its class's walker) takes its count off.  The counted
 * reclaim's first filter (small_whole).  Added at each carve, its lock add
 * waited for the stores before it (a program's memset of the blocks it
 * just got): bench/shift ran 2.2% faster without it.  So the count leaves
 * out the active slots' carves: small_whole adds its own thread's, and
 * another thread's active page of the class fails its proof anyway. */
static _Atomic int64_t small_carved_n[HAK_SMALL_CLASSES];

//! The blocks h's active slot s of its class has carved.
static uint32_t small_slot_carved(const PoolTLSPage* s) {
  return (uint32_t)((s->bump - hak__page_first(s->page)) / s->page->block_size);
}

//! Those of them not yet in small_carved_n: carved since the slot's fill.
static uint32_t small_slot_uncounted(const PoolTLSPage* s) { return small_slot_carved(s) - s->from; }

//! Retires an exhausted or abandoned active page: its carved count is final.
//! A thread that exits (orphan set) leaves a partly carved page for adoption.
static void small_slot_retire(PoolTLSPage* s, int orphan) {
  hak_page_t* pg = s->page;
  if (!pg) return;
  uint32_t carved = small_slot_carved(s), fresh = small_slot_uncounted(s);
  if (fresh) atomic_fetch_add_explicit(&small_carved_n[pg->cls], (int64_t)fresh, memory_order_relaxed);
  s->page = NULL;
  s->bump = s->end = 0;
  if (!carved) { hak__page_release(pg); return; }   /* untouched: no block will ever return */
  if (orphan && carved < pg->capacity) hak__page_orphan(pg, carved);
  else hak__page_retire(pg, carved);
}

void hak__small_page_retire(hak_heap_t* h, unsigned cls) {
  for (int i = 0; i < HAK_TLS_PAGES; i++) small_slot_retire(&h->pages[cls][i], 1);
}

//! Points an empty slot at pg, resuming after its first `from` blocks.
static void small_slot_fill(PoolTLSPage* s, hak_page_t* pg, uint32_t from) {
  uintptr_t start = hak__page_first(pg);
  s->page = pg;
  s->from = from;
  s->bump = start + (uintptr_t)from * pg->block_size;
  s->end = start + (uintptr_t)pg->capacity * pg->block_size;
}

//! An exited thread's partly carved page into an empty slot: no fresh
//! memory, so it comes before a W_MAX borrow and before fresh pages.
static int small_adopt(hak_heap_t* h, unsigned cls) {
  for (int i = 0; i < HAK_TLS_PAGES; i++) {
    PoolTLSPage* s = &h->pages[cls][i];
    if (s->page && s->bump < s->end) continue;
    hak_page_t* pg = hak__page_adopt(cls, h);
    if (!pg) return 0;
    small_slot_retire(s, 0);
    small_slot_fill(s, pg, atomic_load_explicit(&pg->carved, memory_order_relaxed));
    HAK_CSTAT(h, cls, refill, 1);
    HAK_CSTAT(h, cls, refill_pages, 1);
    return 1;
  }
  return 0;
}

//! Counts `got` fresh pages taken by one refill (a miss each).
static void small_fresh_counted(hak_heap_t* h, unsigned cls, int got) {
  /* in use: a class that frees a round it carved is not idle (its pages
   * went to the OS at the tick, just before the next round, of another
   * size, would have taken them warm: 1149 pages a second refaulted) */
  small_mark_used(cls);
  hak__maintenance_tick();
  HAK_CSTAT(h, cls, refill, 1);
  HAK_CSTAT(h, cls, refill_pages, got);
  HAK_CSTAT(h, cls, miss, got);     /* a miss: fresh pages were needed */
}

//! A floor on the pages of cls that a walk would find wholly free, with
//! cached blocks in its central lists: each carved block not in them pins
//! one page at most (the threads' active pages aside, which no walk takes).
//! Not quite a floor: small_carved_n leaves out the active pages' carves,
//! so their live blocks pin nothing here; it errs by those few pages, and
//! a walk it asks for too early finds them pinned.
static int64_t small_whole_floor(unsigned cls, int64_t cached) {
  int64_t out = atomic_load_explicit(&small_carved_n[cls], memory_order_relaxed) - cached;
  return (int64_t)hak__small_pages_in_use(cls) - (out > 0 ? out : 0);
}

//! The next n blocks of an active slot (n fit), retiring it when carved out.
static uintptr_t small_slot_take(PoolTLSPage* s, uint32_t n) {
  uintptr_t run = s->bump;
  s->bump += (uintptr_t)n * s->page->block_size;
  if (s->bump >= s->end) small_slot_retire(s, 0);
  return run;
}

//! alloc_tls_page_batch: takes up to `batch` fresh pages into empty slots
//! (seed phase 6.25).  Over CAP it takes one page at a time (soft CAP).
static int alloc_tls_page_batch(hak_heap_t* h, unsigned cls, int batch) {
  uint64_t in_use = hak__small_pages_in_use(cls), cap = hak__policy_cap(cls);
  if (in_use >= cap) batch = 1;                                  /* soft CAP: one at a time */
  else if (in_use + (uint64_t)batch > cap) batch = (int)(cap - in_use);
  hak__small_reclaim(h, cls);
  PoolTLSPage* empty[HAK_TLS_PAGES];
  hak_page_t* pgs[HAK_TLS_PAGES];
  uint32_t want = 0;
  for (int i = 0; i < HAK_TLS_PAGES && want < (uint32_t)batch; i++) {
    PoolTLSPage* s = &h->pages[cls][i];
    if (s->page && s->bump < s->end) continue;
    small_slot_retire(s, 0);
    empty[want++] = s;
  }
  uint32_t got = hak__page_acquire_n(cls, h, pgs, want);   /* one hold of the lock */
  for (uint32_t i = 0; i < got; i++) small_slot_fill(empty[i], pgs[i], 0);
  if (got) small_fresh_counted(h, cls, (int)got);
  return (int)got;
}

//! Carves up to max blocks from the active pages, then (from HAK_CARVE_ADOPT
//! on) from an orphan, then (HAK_CARVE_FRESH) from fresh pages.  Returns the
//! first block of a contiguous run; *got counts it, and *left says whether
//! its page has blocks past it.
uintptr_t hak__small_carve(hak_heap_t* h, unsigned cls, uint32_t max, uint32_t* got, int* left, int from) {
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < HAK_TLS_PAGES; i++) {
      PoolTLSPage* s = &h->pages[cls][i];
      if (!s->page || s->bump >= s->end) continue;
      uint32_t bs = s->page->block_size;
      uint32_t avail = (uint32_t)((s->end - s->bump) / bs);
      uint32_t n = avail < max ? avail : max;
      uintptr_t run = small_slot_take(s, n);
      *got = n;
      *left = s->page != NULL;           /* a take that reaches the end retires the slot */
      return run;
    }
    if (round) break;
    if (from == HAK_CARVE_ACTIVE) break;
    if (small_adopt(h, cls)) continue;
    if (from < HAK_CARVE_FRESH || !alloc_tls_page_batch(h, cls, hak__opt.pool_refill_batch)) break;
  }
  *got = 0;
  *left = 0;
  return 0;
}

//! One block aligned to align (a power of two above 64, dividing the class
//! size), or 0.  Colours are multiples of 64 (classes.c): a page's blocks
//! are all so aligned or none are, as its colour is.  From an active page
//! that has them, else from a fresh page of colour 0 in a free slot (or in
//! place of slot 0, which is left for adoption).
uintptr_t hak__small_carve_aligned(hak_heap_t* h, unsigned cls, size_t align) {
  PoolTLSPage* s = NULL;
  for (int i = 0; i < HAK_TLS_PAGES && !s; i++) {
    PoolTLSPage* t = &h->pages[cls][i];
    if (t->page && t->bump < t->end && (t->bump & (align - 1)) == 0) s = t;
  }
  if (!s) {
    s = &h->pages[cls][0];
    for (int i = 0; i < HAK_TLS_PAGES; i++) {
      PoolTLSPage* t = &h->pages[cls][i];
      if (!t->page || t->bump >= t->end) { s = t; break; }
    }
    small_slot_retire(s, 1);
    hak_page_t* pg = hak__page_acquire(cls, h, 0);
    if (!pg) return 0;
    small_slot_fill(s, pg, 0);
    small_fresh_counted(h, cls, 1);
  }
  uintptr_t p = small_slot_take(s, 1);
  hak__mark_clear((void*)p);        /* a warm page's old free mark would read as a double free */
  return p;
}

/* ---- scavenger ---------------------------------------------------------- */

/* A walk reads one cold block per link.  Followed one after another, the
 * misses are serial: walking a 100-byte class's 250k free blocks took 20 ms
 * a pass.  So the walk follows the lists' chains side by side, a block of
 * each in turn, and prefetches each lane's next block when it learns of
 * it, 16 steps before it reads it (bench/shift: the walk's time against
 * memset's 1.13 serial, 0.59 in lanes, 0.35 with the prefetch). */
#define WALK_RUNS  256   /* chains listed on the stack; more take a mapping */
#define WALK_LANES 16    /* chains followed side by side */
typedef struct walk_lanes {
  void** run;
  uint32_t nrun, next;   /* runs, and the first not yet started */
  unsigned live, i;      /* lanes still walking, and the next to step */
  unsigned at;           /* the lane of the block lanes_next returned */
  void* lane[WALK_LANES]; /* NULL: done */
} walk_lanes_t;

//! Starts the lanes on the first runs.
static void lanes_start(walk_lanes_t* w, void** run, uint32_t nrun) {
  w->run = run;
  w->nrun = nrun;
  w->next = w->live = w->i = 0;
  for (unsigned k = 0; k < WALK_LANES; k++) {
    w->lane[k] = w->next < nrun ? run[w->next++] : NULL;
    w->live += w->lane[k] != NULL;
  }
}

//! The next block of the walk, the lanes taken in turn, or NULL at the end.
//! Its link is read already: the caller may rewrite it.
static inline void* lanes_next(walk_lanes_t* w, unsigned cls) {
  if (!w->live) return NULL;
  while (!w->lane[w->i]) w->i = (w->i + 1) % WALK_LANES;
  unsigned i = w->i;
  void* p = w->lane[i];
  void* q = hak__link_get(p, (int)cls);
  if (!q && w->next < w->nrun) q = w->run[w->next++];
  if (q) __builtin_prefetch(q);      /* read when this lane's turn comes again */
  else w->live--;
  w->lane[i] = q;
  w->at = i;
  w->i = (i + 1) % WALK_LANES;
  return p;
}

/* A class wholly free, found by counting instead of walking.  Each page
 * counts the blocks carved from it.  If the blocks in hand (the class's
 * central lists, taken, and this thread's list) are as many as every page
 * of the class has carved, none is live or elsewhere, and every page is
 * wholly free: no block need be read (a walk reads each one, cold: 15% of
 * bench/shift's time).  A page with carved blocks leaves its class only by
 * the class's walker, which is us (scav_busy), so every page whose blocks
 * we hold is still the class's and is seen by the scan below; a page seen
 * half-way through a change of class is checked again before it goes. */
#define WHOLE_STACK 256          /* pages listed on the stack; more take a mapping */
typedef struct small_scan {
  hak_heap_t* h;
  unsigned cls;
  int ok;
  uint32_t n, max;               /* FULL pages listed */
  uint64_t sum;                  /* blocks carved from the class's pages */
  hak_page_t** pg;
  uint32_t* carved;
} small_scan_t;


//! One page of the scan (hak__page_each): lists the class's FULL pages and
//! counts their carved blocks and those of h's own active pages; any other
//! active page of the class (another thread's, or an orphan) may still
//! carve, so the scan ends unproven.
static int small_whole_visit(hak_page_t* pg, void* arg) {
  small_scan_t* w = arg;
  uint8_t st = atomic_load_explicit(&pg->state, memory_order_acquire);
  if ((st != HAK_PAGE_FULL && st != HAK_PAGE_ACTIVE) || __atomic_load_n(&pg->cls, __ATOMIC_RELAXED) != w->cls) return 1;
  if (st == HAK_PAGE_ACTIVE) {
    for (int i = 0; i < HAK_TLS_PAGES; i++) {
      PoolTLSPage* s = &w->h->pages[w->cls][i];
      if (s->page == pg) { w->sum += small_slot_carved(s); return 1; }
    }
    return w->ok = 0;
  }
  if (w->n == w->max) return w->ok = 0;
  uint32_t c = atomic_load_explicit(&pg->carved, memory_order_relaxed);
  w->pg[w->n] = pg;
  w->carved[w->n++] = c;
  w->sum += c;
  return 1;
}

#ifdef HAK_DEBUG
//! DEBUG: what the proof trusts, block by block: each block in hand lies on
//! a counted page of the class (a listed FULL page, or an own slot below its
//! bump pointer), and each counted page holds as many as it carved.
static void small_whole_check(hak_heap_t* h, unsigned cls, const small_scan_t* w, void** runs, uint32_t nrun) {
  uint32_t gen = ++scav_gen[cls];                 /* ours: scav_busy */
  if (gen == 0) gen = ++scav_gen[cls];
  void* list = hak__bin(h, cls)->head;
  for (uint32_t r = 0; r <= nrun; r++)
    for (void* p = r < nrun ? runs[r] : list; p; p = hak__link_get(p, (int)cls)) {
      hak_page_t* pg = hak__page_of((uintptr_t)p);
      if (pg->cls != cls) hak__misuse("internal: a block in hand is not on a page of its class", p, (int)cls);
      if (pg->scav_gen != gen) { pg->scav_gen = gen; pg->scav_count = 0; }
      pg->scav_count++;
    }
  for (uint32_t i = 0; i < w->n; i++) {
    hak_page_t* pg = w->pg[i];
    uint32_t got = pg->scav_gen == gen ? pg->scav_count : 0;
    if (got != w->carved[i]) hak__misuse("internal: a counted page's blocks are off", (void*)hak__page_start(pg), (int)cls);
  }
  for (int i = 0; i < HAK_TLS_PAGES; i++) {
    const PoolTLSPage* s = &h->pages[cls][i];
    if (!s->page) continue;
    uint32_t got = s->page->scav_gen == gen ? s->page->scav_count : 0;
    if (got != small_slot_carved(s)) hak__misuse("internal: an own page's blocks are off", (void*)s->bump, (int)cls);
  }
}
#endif

//! With the class's central blocks taken (`central` of them, in runs[]):
//! if the counts prove the class wholly free, forgets the blocks and gives
//! every page with a carved block to the warm stash; 1 if so.
static int small_whole(hak_heap_t* h, unsigned cls, uint64_t central, void** runs, uint32_t nrun) {
  PoolTLSBin* b = hak__bin(h, cls);
  if (atomic_load_explicit(&h->inbox[cls], memory_order_relaxed)) return 0;
  uint64_t hands = central + hak__bin_count(b);
  /* the class's carve count first: unequal, some block is live or
   * elsewhere, and the scan (under the segment lock) would be for nothing */
  int64_t carved = atomic_load_explicit(&small_carved_n[cls], memory_order_relaxed);
  for (int i = 0; i < HAK_TLS_PAGES; i++)
    if (h->pages[cls][i].page) carved += small_slot_uncounted(&h->pages[cls][i]);
  if (!hands || (int64_t)hands != carved) return 0;
  uint64_t in_use = hak__small_pages_in_use(cls);
  hak_page_t* stack_pg[WHOLE_STACK];
  uint32_t stack_carved[WHOLE_STACK];
  small_scan_t w = {h, cls, 1, 0, WHOLE_STACK, 0, stack_pg, stack_carved};
  size_t map_bytes = 0;
  if (in_use + 16 > WHOLE_STACK) {
    w.max = (uint32_t)(in_use + 16);
    map_bytes = (size_t)w.max * (sizeof(hak_page_t*) + sizeof(uint32_t));
    void* m = hak__os_scratch_get(map_bytes);
    if (!m) return 0;
    w.pg = m;
    w.carved = (uint32_t*)(w.pg + w.max);
  }
  hak__page_each(small_whole_visit, &w);
  int ok = w.ok && w.sum == hands;
  for (uint32_t i = 0; ok && i < w.n; i++) {     /* each still the class's, unchanged: from now on, ours */
    hak_page_t* pg = w.pg[i];
    ok = atomic_load_explicit(&pg->state, memory_order_acquire) == HAK_PAGE_FULL &&
         __atomic_load_n(&pg->cls, __ATOMIC_RELAXED) == cls &&
         atomic_load_explicit(&pg->carved, memory_order_relaxed) == w.carved[i];
  }
#ifdef HAK_DEBUG
  if (ok) small_whole_check(h, cls, &w, runs, nrun);
#else
  (void)runs; (void)nrun;
#endif
  if (ok) {
    hak__bin_drop(h, cls);
    hak_page_t* slot_pg[HAK_TLS_PAGES];
    uint32_t nslot = 0;
    for (int i = 0; i < HAK_TLS_PAGES; i++) {
      PoolTLSPage* s = &h->pages[cls][i];
      if (!s->page || !small_slot_carved(s)) continue;
      slot_pg[nslot++] = s->page;
      small_slot_retire(s, 0);
    }
    hak__page_stash_n(slot_pg, nslot);
    /* the first page on top: the stash hands out its top first, so the
     * next class carves upward through each segment as it would fresh
     * pages (carved downward, bench/shift ran 2-5% slower, alternating
     * rounds of 100 and 500 bytes 7-9%) */
    hak__page_stash_n(w.pg, w.n);
    atomic_fetch_sub_explicit(&small_carved_n[cls], (int64_t)hands, memory_order_relaxed);
    HAK_TSTAT(h, counted_reclaims, 1);
  }
  if (map_bytes) hak__os_scratch_put(w.pg);
  return ok;
}

//! Before class cls takes fresh pages: every class whose central lists hold
//! more than its CAP (and four pages) gives all its wholly free pages to the
//! warm stash, where cls (and any class after it) takes them committed: no
//! page faults, and no new memory.  Only the class with the most, as it
//! was, left the others' pages where they were, and a class used now and
//! then kept the most it had ever needed (bench/shift, whose sizes near a
//! class edge fall in a second class: 674 pages in use after 500 rounds,
//! 869 after 3000; every class: 636 and 637).  CAP is a budget, not a
//! floor: keeping it here held a page budget for every size a program had
//! ever used (10 sizes in turn: peak RSS 63 MB where one round is 24).  A
//! class's blocks go back to its own lists, never to their pages, so
//! without this a program whose sizes change carved fresh pages for each
//! new size while the old size's pages waited for their decay (peak RSS
//! 137 MB).  Only the classes whose pushes marked them over (scav_over)
//! are looked at, and not only once the warm stash is empty: the stash
//! hands out its last pages first, and those are the ones just freed, still
//! in the cache.  Waiting for an empty stash took 40% of a round's pages
//! from two rounds before (bench/shift), a memory the cache no longer held;
//! now 5%.  Looking at every class cost 400 instructions a fresh page.
//! After a walk that found few whole pages, the scavenger's memo keeps that
//! class from being walked again before its lists have doubled.
void hak__small_reclaim(hak_heap_t* h, unsigned cls) {
  if (hak__opt.keep || !small_warm_ok()) return;
  uint64_t over = atomic_load_explicit(&scav_over, memory_order_relaxed) & ~((uint64_t)1 << cls);
  if (!over) return;
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) {
    if (!(over >> c & 1) || atomic_load_explicit(&scav_busy[c], memory_order_relaxed)) continue;
    atomic_fetch_and_explicit(&scav_over, ~((uint64_t)1 << c), memory_order_relaxed);
    int64_t bpp = small_bpp(c);
    int64_t surplus = (int64_t)hak__small_cached_blocks(c) - ((int64_t)hak__policy_cap(c) + 4) * bpp;
    if (surplus > 0) small_walk(h, c, 0, 0, 1);
  }
}

int hak__small_scavenge(unsigned cls, uint32_t keep_pages, int force) {
  return small_walk(NULL, cls, keep_pages, force, 0);
}

//! Takes every block of the class, gives back its wholly free pages beyond
//! keep_pages (to the OS, or with stash to the warm stash), and puts the
//! rest back.  If another thread is walking this class it returns at once,
//! except when forced (trim, out of memory), and unforced it skips a walk
//! its last fruitless one says is pointless (scav_memo).  1 if it walked.
static int small_walk(hak_heap_t* h, unsigned cls, uint32_t keep_pages, int force, int stash) {
  int expect = 0;
  unsigned waits = 0;
  while (!atomic_compare_exchange_strong(&scav_busy[cls], &expect, 1)) {
    if (!force) return 0;
    expect = 0;
    hak__os_backoff(&waits);    /* trim and out-of-memory: the other scavenge will not be long */
  }
  scav_memo_t* m = &scav_memo[cls];
  int64_t bpp = small_bpp(cls);
  int64_t cached = (int64_t)hak__small_cached_blocks(cls), floor = small_whole_floor(cls, cached);
  if (!force && m->count) {
    int64_t more = m->count > 4 * bpp ? m->count : 4 * bpp;
    int whole_grew = stash && floor > m->floor && (floor - (int64_t)keep_pages) * bpp * 8 >= cached;
    if (cached < m->count + more && keep_pages >= m->keep && hak__os_now_ns() < m->next_ns && !whole_grew) {
      atomic_store(&scav_busy[cls], 0);
      return 0;
    }
  }
  hak_runs_t taken[HAK_SHARDS];
  uint32_t all = 0, nrun = 0;
  uint64_t blocks = 0;
  for (unsigned s = 0; s < HAK_SHARDS; s++) all += hak__freelist_take_runs(&central[cls][s], &taken[s], &blocks);
  void* stack_runs[WALK_RUNS];
  size_t map_bytes = all > WALK_RUNS ? (size_t)all * sizeof(void*) : 0;
  void** runs = map_bytes ? hak__os_scratch_get(map_bytes) : NULL;
  uint32_t max = runs ? all : WALK_RUNS;     /* without memory, later chains join the last run */
  if (!runs) runs = stack_runs;
  for (unsigned s = 0; s < HAK_SHARDS; s++) hak__runs_fill(&taken[s], runs, &nrun, max);
  /* the blocks taken were needed (by another class): the decay window's
   * low water falls with them, as at a pop, or the class's next window
   * takes what it left in the lists for surplus (bench/shift: 600 pages
   * a second to the OS, refaulted a round later); only a reclaim's (h):
   * the decay's own walks and trim set the low water themselves */
  if (h) atomic_store_explicit(&scav_low[cls], 0, memory_order_relaxed);
  if (h && stash && !keep_pages && small_whole(h, cls, blocks, runs, nrun)) {
    if (runs != stack_runs) hak__os_scratch_put(runs);
    m->count = 0;
    m->backoff_ns = 0;
    atomic_store(&scav_busy[cls], 0);
    return 1;
  }
  uint32_t gen = ++scav_gen[cls];
  if (gen == 0) gen = ++scav_gen[cls];
  walk_lanes_t w;
  lanes_start(&w, runs, nrun);
  hak_page_t* pages = NULL;               /* each page seen, once */
  uint64_t seen = 0;
  for (void* p; (p = lanes_next(&w, cls)) != NULL;) {
    /* more blocks than the lists counted: one loops (a double free) */
    if (hak_unlikely(++seen > 2 * blocks + 64)) hak__link_loop(p, (int)cls);
    hak_page_t* pg = hak__page_of((uintptr_t)p);
    if (pg->scav_gen != gen) {
      pg->scav_gen = gen;
      pg->scav_count = 0;
      pg->next_free = pages;
      pages = pg;
    }
    pg->scav_count++;
  }
  /* decide per page: DROP (whole, beyond keep_pages), or keep it in one of
   * three runs, in the order blocks will be handed out again: pages mostly
   * in use first, then mostly free ones, then whole ones, so the mostly
   * free pages get the chance to become whole */
  const uint32_t DROP = 0x40000000u, KEEP = 0x80000000u;
  uint32_t kept_pages = 0, released = 0, keeping = 0;
  hak_page_t* drop = NULL;
  for (hak_page_t *pg = pages, *next; pg; pg = next) {
    next = pg->next_free;
    uint32_t sc = pg->scav_count, carved = atomic_load_explicit(&pg->carved, memory_order_relaxed);
    int whole = atomic_load_explicit(&pg->state, memory_order_acquire) == HAK_PAGE_FULL && sc == carved;
    if (whole && (force || kept_pages >= keep_pages)) {
      pg->scav_count = DROP;
      pg->next_free = drop;
      drop = pg;
    } else {
      if (whole) kept_pages++;
      pg->scav_count = KEEP | (whole ? 2 : 2 * sc > carved ? 1 : 0);
      keeping++;
    }
  }
  /* kept blocks in the order each lane walked them: blocks of one page
   * mostly sit together in a chain, and handing them out together lets
   * pages fill and empty whole (interleaved, a class's cache shrank less:
   * tests/learner/test_learner_live) */
  void* head[WALK_LANES][3] = {{NULL}}; void* tail[WALK_LANES][3] = {{NULL}};
  uint32_t keep_n = 0;
  if (keeping) lanes_start(&w, runs, nrun);   /* no page kept: no block to relink */
  else w.live = 0;
  for (void* p; (p = lanes_next(&w, cls)) != NULL;) {
    uint32_t sc = hak__page_of((uintptr_t)p)->scav_count;
    if (sc & KEEP) {
      unsigned run = sc & 3;
      hak__link_set(p, NULL);
      unsigned l = w.at;
      if (tail[l][run]) hak__link_set(tail[l][run], p); else head[l][run] = p;
      tail[l][run] = p;
      keep_n++;
    }
  }
  if (runs != stack_runs) hak__os_scratch_put(runs);
  void* keep_head = NULL; void* keep_tail = NULL;
  for (int r = 2; r >= 0; r--)            /* run 0 ends up on top, lane 0 first */
    for (int l = WALK_LANES - 1; l >= 0; l--) {
      if (!head[l][r]) continue;
      if (keep_head) hak__link_set(tail[l][r], keep_head); else keep_tail = tail[l][r];
      keep_head = head[l][r];
    }
  if (keep_head) hak__freelist_push_chain(&central[cls][0], keep_head, keep_tail, keep_n, NULL);
  int64_t gone = 0;
  while (drop) {
    hak_page_t* pg = drop;
    drop = pg->next_free;
    gone += atomic_load_explicit(&pg->carved, memory_order_relaxed);
    if (stash) hak__page_stash_n(&pg, 1); else hak__page_release(pg);
    released++;
  }
  atomic_fetch_sub_explicit(&small_carved_n[cls], gone, memory_order_relaxed);
  if (!stash) hak__small_released_add(released);
  uint64_t walked = keep_n + (uint64_t)released * (uint64_t)bpp;
  if ((uint64_t)released * (uint64_t)bpp * 8 >= walked) {
    m->count = 0;
    m->backoff_ns = 0;
  } else {
    m->count = keep_n;                   /* > 0: a fruitless walk kept most of what it walked */
    m->floor = floor;
    m->keep = keep_pages;
    m->backoff_ns = m->backoff_ns ? m->backoff_ns * 2 : SCAV_BACKOFF_MIN_NS;
    if (m->backoff_ns > SCAV_BACKOFF_MAX_NS) m->backoff_ns = SCAV_BACKOFF_MAX_NS;
    m->next_ns = hak__os_now_ns() + m->backoff_ns;
  }
  atomic_store(&scav_busy[cls], 0);
  return 1;
}

static _Atomic uint64_t small_pages_released;
void hak__small_released_add(uint32_t n) { atomic_fetch_add_explicit(&small_pages_released, n, memory_order_relaxed); }
uint64_t hak__small_pages_released(void) { return atomic_load_explicit(&small_pages_released, memory_order_relaxed); }

//! Releases every wholly free page of every class; returns bytes released.
size_t hak__small_trim(void) {
  uint64_t before = atomic_load(&small_pages_released);
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) hak__small_scavenge(c, 0, 1);
  hak__small_released_add(hak__page_warm_decay(UINT64_MAX));
  return (size_t)(atomic_load(&small_pages_released) - before) * HAK_PAGE_SIZE;
}
