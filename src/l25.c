/* Large, or L2.5 (52 KiB < n <= 1 MiB).  Each 4 MiB segment serves one
 * class: a header in the first 64 KiB (with one state byte per block, for
 * double-free detection), then blocks of the class size.  A thread keeps a
 * few blocks per class; the rest wait in a lock-free central "hot" list.
 * Decay trims the hot list toward CAP, and past 8 CAP + 8 a free trims it
 * to 4 CAP: blocks are decommitted (RSS back to the OS, no munmap) and wait
 * in a "cold" list.  Wholly free segments are unmapped by trim, and by decay
 * once their class has gone deep idle. */
#define _GNU_SOURCE
#include "internal.h"
#include "policy.h"
#include "link.h"
#include "l25.h"
#include <errno.h>

static hak_freelist_t l25_hot[HAK_LARGE_CLASSES], l25_cold[HAK_LARGE_CLASSES];
static pthread_mutex_t l25_lock = PTHREAD_MUTEX_INITIALIZER;   /* carving new blocks */
static l25_seg_t* l25_cur[2][HAK_LARGE_CLASSES];     /* [0] plain requests, [1] aligned (colour 0) */
static uint32_t l25_next[2][HAK_LARGE_CLASSES];
static _Atomic int l25_trimming[HAK_LARGE_CLASSES];
static _Atomic int64_t l25_low[HAK_LARGE_CLASSES];        /* low water of the hot list, this window */
static _Atomic int l25_popped[HAK_LARGE_CLASSES];         /* popped since the last upkeep tick */
static _Atomic uint64_t l25_win_ns;

void hak__l25_init(void) {
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++) {
    hak__freelist_init(&l25_hot[c]);
    hak__freelist_init(&l25_cold[c]);
  }
}
void hak__l25_lock(void) { pthread_mutex_lock(&l25_lock); }
void hak__l25_unlock(void) { pthread_mutex_unlock(&l25_lock); }
void hak__l25_fork_child(void) {
  pthread_mutex_init(&l25_lock, NULL);
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++) atomic_store(&l25_trimming[c], 0);
#ifdef HAK_CENTRAL_MUTEX
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++) {
    pthread_mutex_init(&l25_hot[c].lock, NULL);
    pthread_mutex_init(&l25_cold[c].lock, NULL);
  }
#endif
}

uint64_t hak__l25_cached_blocks(unsigned cls) {
  int64_t n = atomic_load_explicit(&l25_hot[cls].count, memory_order_relaxed);
  return n > 0 ? (uint64_t)n : 0;
}


/* Cache colours, as for small pages (classes.c): a segment's blocks start
 * at one of 64 line offsets past L25_FIRST, taken in turn.  Every block
 * start was a multiple of 16 KiB, so the lines a program touches at the
 * same offset in each block (a header, or a byte per page) fell in a few
 * L2 sets: the Large band ran 1.10x faster with the colours.  An aligned
 * request above 64 bytes needs a colour the alignment divides: 0, so each
 * class carves from two current segments, one of colour 0 for those. */
static uint32_t l25_colour_next;                  /* under l25_lock */

//! Shapes segment s for class cls with its first block `colour` bytes
//! past L25_FIRST.
static void l25_seg_shape(l25_seg_t* s, unsigned cls, uint32_t colour) {
  uint32_t d = hak__large_size[cls];
  s->cls = (uint8_t)cls;
  s->block_size = d;
  s->first = (uint32_t)L25_FIRST + colour;
  s->nblocks = (uint16_t)((HAK_SEG_SIZE - s->first) / d);
  hak__div_magic(d, &s->div_mul, &s->div_shift);
  s->div_lim = (uint32_t)s->nblocks - 1;
}

//! Carves a never-used block, mapping a new segment when needed; with
//! align (above 64), from the class's other current segment, of colour 0.
//! The mapping happens without the lock: on failure it trims, which takes
//! other locks (the fork handler takes them in the other order).
static void* l25_carve(unsigned cls, size_t align) {
  unsigned k = align ? 1 : 0;                     /* aligned requests: their own cursor, colour 0 */
  l25_seg_t* spare = NULL;
  pthread_mutex_lock(&l25_lock);
  for (;;) {
    l25_seg_t* s = l25_cur[k][cls];
    if (s && l25_next[k][cls] < s->nblocks) {
      uint32_t idx = l25_next[k][cls]++;
      pthread_mutex_unlock(&l25_lock);
      if (spare) {            /* another thread installed one meanwhile; ours was never used */
        __atomic_store_n(&hak__segmap[(uintptr_t)spare >> HAK_SEG_SHIFT], HAK_SEG_NONE, __ATOMIC_RELEASE);
        hak__os_unmap(spare, HAK_SEG_SIZE);
      }
      return (char*)s + s->first + (uintptr_t)idx * s->block_size;
    }
    if (spare) {
      l25_seg_shape(spare, cls, k ? 0 : l25_colour_next++ % 64 * 64);
      l25_cur[k][cls] = spare;
      l25_next[k][cls] = 0;
      spare = NULL;
      hak__layer_mapped_add(HAK_LAYER_LARGE, HAK_SEG_SIZE);
      continue;
    }
    pthread_mutex_unlock(&l25_lock);
    spare = hak__segment_alloc(HAK_SEG_LARGE);
    if (!spare) return NULL;
    pthread_mutex_lock(&l25_lock);
  }
}

//! Records a pop for the decay: the low water and the idle flag.  Cold
//! pops and carves count too: a class back in use took only cold blocks,
//! looked idle, and decay walked its lists at every tick (l25_unmap_idle).
static void l25_note_pop(unsigned cls) {
  int64_t now = atomic_load_explicit(&l25_hot[cls].count, memory_order_relaxed);
  if (now < atomic_load_explicit(&l25_low[cls], memory_order_relaxed))
    atomic_store_explicit(&l25_low[cls], now, memory_order_relaxed);
  if (!atomic_load_explicit(&l25_popped[cls], memory_order_relaxed))
    atomic_store_explicit(&l25_popped[cls], 1, memory_order_relaxed);
}

/* Classes do not share blocks, and each keeps the most it ever cached: on
 * random sizes over 64 KiB - 1 MiB the sum came to 2.9x the live bytes.
 * So a class that runs dry first takes a cached block of one of the next
 * six classes (at most 3x its size: 192 KiB for 64 KiB), from this
 * thread's bins, then from the hot lists: resident memory reused beats
 * fresh pages.  On the Large band, peak RSS went 51.9 -> 39.3 MB
 * (mimalloc 40.3) at one thread and 92 -> 70 MB (mimalloc 78) at two, at
 * the same speed. */
#define L25_BORROW_SPAN 6

//! A cached block of a larger class, or NULL (see above).
static void* l25_borrow(hak_heap_t* h, unsigned cls) {
  for (unsigned c2 = cls + 1; c2 < HAK_LARGE_CLASSES && c2 <= cls + L25_BORROW_SPAN; c2++) {
    hak_large_bin_t* b2 = &h->large[c2];
    if (b2->count) {
      HAK_CSTAT(h, HAK_STAT_LARGE0 + cls, borrow, 1);
      return b2->items[--b2->count];
    }
  }
  for (unsigned c2 = cls + 1; c2 < HAK_LARGE_CLASSES && c2 <= cls + L25_BORROW_SPAN; c2++) {
    if (atomic_load_explicit(&l25_hot[c2].count, memory_order_relaxed) <= 0) continue;
    uint32_t n;
    void* p = hak__freelist_pop_lockfree(&l25_hot[c2], 1, &n, h);
    if (p) {
      HAK_CSTAT(h, HAK_STAT_LARGE0 + cls, borrow, 1);
      l25_note_pop(c2);
      return p;
    }
  }
  return NULL;
}

//! The bin is empty: a batch from the hot list (the rest of it fills the
//! bin), a borrow (*cls becomes the lender's class), the cold list, or a
//! fresh block.  Out of line, so that the bin hit path stays short.
static HAK_NOINLINE void* l25_refill(hak_heap_t* h, hak_large_bin_t* b, unsigned* clsp, int borrow) {
  unsigned cls = *clsp;
  uint32_t n;
  hak__maintenance_tick();
  void* p = hak__freelist_pop_lockfree(&l25_hot[cls], b->limit ? b->limit : 1, &n, h);
  if (p) {
    int lc = HAK_STAT_LARGE0 + (int)cls;
    for (void* q = hak__link_get(p, lc); q; q = hak__link_get(q, lc)) b->items[b->count++] = q;
    HAK_CSTAT(h, HAK_STAT_LARGE0 + cls, central_pop, n);
    l25_note_pop(cls);
  } else if (borrow && (p = l25_borrow(h, cls))) {
    *clsp = ((l25_seg_t*)((uintptr_t)p & ~HAK_SEG_MASK))->cls;
  } else {
    p = hak__freelist_pop_lockfree(&l25_cold[cls], 1, &n, h);
    if (!p) p = l25_carve(cls, 0);
    if (!p) { errno = ENOMEM; return NULL; }
    HAK_CSTAT(h, HAK_STAT_LARGE0 + cls, miss, 1);
    l25_note_pop(cls);                   /* in use: a cold pop or a carve is not idle */
  }
  return p;
}

void* hak__l25_alloc(hak_heap_t* h, unsigned cls, size_t req, int borrow) {
  hak_large_bin_t* b = &h->large[cls];
  void* p;
  if (b->count) {
    p = b->items[--b->count];
  } else {
    p = l25_refill(h, b, &cls, borrow);
    if (!p) return NULL;
  }
  return hak__l25_hand_out(h, cls, p, req);
}

//! An align-aligned block from the top of central list fl, or NULL: the
//! others popped go to bin b while it has room (NULL: none), else back to fl.
//! Without it, aligned blocks freed by another thread (or spilled past the
//! bin) were never found again, and every aligned request carved.
static void* l25_pop_aligned(hak_heap_t* h, hak_large_bin_t* b, hak_freelist_t* fl, unsigned cls, size_t align) {
  if (atomic_load_explicit(&fl->count, memory_order_relaxed) <= 0) return NULL;
  uint32_t n;
  int lc = HAK_STAT_LARGE0 + (int)cls;
  void* chain = hak__freelist_pop_lockfree(fl, HAK_LARGE_TLS_MAX, &n, h);
  if (!chain) return NULL;
  l25_note_pop(cls);
  void* p = NULL;
  while (chain) {
    void* next = hak__link_get(chain, lc);
    if (!p && ((uintptr_t)chain & (align - 1)) == 0) p = chain;
    else if (b && b->count < b->limit) b->items[b->count++] = chain;
    else hak__freelist_push_lockfree(fl, chain, h);
    chain = next;
  }
  return p;
}

//! A block of class cls aligned to align (above 64, dividing the class
//! size): one in the thread's bin (an aligned block freed and asked for
//! again), else one of the first popped from the hot or the cold list, else
//! one carved from a segment of colour 0 (l25_carve).
void* hak__l25_alloc_aligned(hak_heap_t* h, unsigned cls, size_t req, size_t align) {
  hak_large_bin_t* b = &h->large[cls];
  void* p = NULL;
  for (uint32_t i = b->count; i-- > 0;) {
    if (((uintptr_t)b->items[i] & (align - 1)) == 0) {
      p = b->items[i];
      b->items[i] = b->items[--b->count];
      break;
    }
  }
  if (!p) {
    hak__maintenance_tick();
    p = l25_pop_aligned(h, b, &l25_hot[cls], cls, align);
    if (!p) p = l25_pop_aligned(h, NULL, &l25_cold[cls], cls, align);
  }
  if (!p) {
    if (!(p = l25_carve(cls, align))) { errno = ENOMEM; return NULL; }
    HAK_CSTAT(h, HAK_STAT_LARGE0 + cls, miss, 1);
    l25_note_pop(cls);
  }
  return hak__l25_hand_out(h, cls, p, req);
}

//! Trims the hot list to keep blocks: decommit the rest into the cold list.
static size_t l25_trim_class(hak_heap_t* h, unsigned cls, uint32_t keep) {
  int expect = 0;
  if (!atomic_compare_exchange_strong(&l25_trimming[cls], &expect, 1)) return 0;
  size_t bytes = 0;
  int64_t extra = atomic_load(&l25_hot[cls].count) - (int64_t)keep;
  while (extra > 0) {
    uint32_t n;
    void* chain = hak__freelist_pop_lockfree(&l25_hot[cls], (uint32_t)(extra > 64 ? 64 : extra), &n, NULL);
    if (!chain) break;
    extra -= n;
    while (chain) {
      void* next = hak__link_get(chain, HAK_STAT_LARGE0 + (int)cls);
      l25_seg_t* s;
      int idx = hak__l25_index(chain, &s);
      atomic_store_explicit(&s->state[idx], L25_COLD, memory_order_relaxed);
      /* a coloured block starts and ends inside a page (shared with its
       * neighbours): decommit the whole pages within it (madvise wants an
       * aligned start, and must not zero a neighbour's bytes) */
      uintptr_t ps = hak__os_page_size();
      uintptr_t lo = ((uintptr_t)chain + ps - 1) & ~(ps - 1);
      uintptr_t hi = ((uintptr_t)chain + s->block_size) & ~(ps - 1);
      if (hi > lo) hak__os_decommit((void*)lo, hi - lo);
      bytes += s->block_size;
      hak__freelist_push_lockfree(&l25_cold[cls], chain, NULL);
      chain = next;
    }
  }
  if (h && bytes) HAK_TSTAT(h, large_decommit, bytes / HAK_PAGE_SIZE);
  atomic_store(&l25_trimming[cls], 0);
  return bytes;
}

//! The checked free: the inline push (l25.h) when the bin has room, else
//! the misuse checks, then the hot list.
void hak__l25_free(hak_heap_t* h, void* p) {
  if (hak__l25_push(h, p)) return;
  l25_seg_t* s;
  int idx = hak__l25_index(p, &s);
  if (idx < 0) hak__misuse("interior pointer free", p, HAK_STAT_LARGE0 + (int)s->cls);
  uint8_t st = atomic_load_explicit(&s->state[idx], memory_order_relaxed);
  if (st != L25_LIVE)
    hak__misuse(st == L25_UNUSED ? "invalid free" : "double free", p, HAK_STAT_LARGE0 + s->cls);
  atomic_store_explicit(&s->state[idx], L25_FREE, memory_order_relaxed);
  unsigned cls = s->cls;
  HAK_CSTAT(h, HAK_STAT_LARGE0 + cls, free, 1);
  hak__freelist_push_lockfree(&l25_hot[cls], p, h);   /* the bin is full: the push declined */
  hak__bg_kick();
  /* decay trims the hot list on time (hak__l25_decay); this bound only
   * holds memory in check when there is no background thread */
  uint32_t cap = hak__policy_cap(HAK_SMALL_CLASSES + cls);
  if (!hak__opt.keep && atomic_load_explicit(&l25_hot[cls].count, memory_order_relaxed) > 8 * (int64_t)cap + 8)
    l25_trim_class(h, cls, 4 * cap);
}

static void l25_unmap_idle(uint32_t deep);
static size_t l25_reclaim(uint32_t mask, int* ran);

//! Decay of the hot lists, as for small classes: each tick, an idle class
//! (no pop since the last tick) is trimmed to CAP; at the end of each
//! window, blocks never needed during it (the low water beyond CAP) go.
//! A class idle for HAK_IDLE_DEEP_WINDOWS keeps nothing, and its wholly
//! free segments are unmapped (l25_unmap_idle).
void hak__l25_decay(uint64_t now) {
  if (hak__opt.keep) return;
  uint64_t start = atomic_load_explicit(&l25_win_ns, memory_order_relaxed);
  int window = now - start >= (uint64_t)hak__opt.decay_ms * 1000000ull &&
               atomic_compare_exchange_strong(&l25_win_ns, &start, now);
  static _Atomic uint64_t idle_since[HAK_LARGE_CLASSES];   /* upkeep (a tick and the bg thread may overlap) */
  uint32_t deep = 0;
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++) {
    int64_t count = atomic_load_explicit(&l25_hot[c].count, memory_order_relaxed);
    uint32_t cap = hak__policy_cap(HAK_SMALL_CLASSES + c);
    int popped = atomic_exchange_explicit(&l25_popped[c], 0, memory_order_relaxed);
    uint32_t keep = hak__idle_keep(&idle_since[c], popped, now, cap);
    if (!popped && !keep) deep |= 1u << c;
    if (count > (int64_t)keep && !popped) l25_trim_class(NULL, c, keep);
    else if (window) {
      int64_t low = atomic_load_explicit(&l25_low[c], memory_order_relaxed);
      if (low > count) low = count;
      if (low > (int64_t)cap) l25_trim_class(NULL, c, (uint32_t)(cap + (count - low)));
    }
    if (window) atomic_store_explicit(&l25_low[c], atomic_load(&l25_hot[c].count), memory_order_relaxed);
  }
  if (deep) l25_unmap_idle(deep);
}

/* A segment serves one class, and its blocks only ever go back to their
 * class's lists, decommitted when cold: the address space stayed mapped for
 * good, and with it the commit charge (MAP_PRIVATE memory that was
 * written), which under strict overcommit (vm.overcommit_memory 2) other
 * mappings then lacked.  So a deep-idle class's wholly free segments are
 * unmapped, as malloc_trim does: once each time its cold list has changed
 * since the last look (a look takes and walks the class's lists; one that
 * unmapped segments dropped their blocks, and is followed by one more). */
static _Atomic int64_t l25_looked[HAK_LARGE_CLASSES];   /* the cold count before the last look */

//! Unmaps the wholly free segments of the deep-idle classes in deep.  The
//! count noted is the one before the look: a trim that pushes to the cold
//! list while the look runs changes it, and the next tick looks again.
static void l25_unmap_idle(uint32_t deep) {
  uint32_t look = 0;
  int64_t before[HAK_LARGE_CLASSES];
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++) {
    before[c] = atomic_load_explicit(&l25_cold[c].count, memory_order_relaxed);
    if ((deep >> c & 1) && before[c] > 0 && before[c] != atomic_load_explicit(&l25_looked[c], memory_order_relaxed))
      look |= 1u << c;
  }
  if (!look) return;
  int ran;
  l25_reclaim(look, &ran);
  if (!ran) return;                        /* a carve held the lock: the next tick */
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++)
    if (look >> c & 1) atomic_store_explicit(&l25_looked[c], before[c], memory_order_relaxed);
}

size_t hak__l25_usable(const void* p) {
  size_t n = hak__l25_usable_quick(p);
  if (hak_likely(n)) return n;
  l25_seg_t* s;
  int idx = hak__l25_index(p, &s);
  if (idx < 0) hak__misuse("interior pointer", p, HAK_STAT_LARGE0 + (int)s->cls);
  uint8_t st = atomic_load_explicit(&s->state[idx], memory_order_relaxed);
  hak__misuse(st == L25_UNUSED ? "invalid pointer" : "use after free", p, HAK_STAT_LARGE0 + s->cls);
}

//! 1 if p is a free block of Large class lcls (a decoded free-list link).
//! May see a stale link of a lock-free pop: racy reads, no TSan (link.c).
__attribute__((no_sanitize("thread"))) int hak__l25_link_ok(const void* p, unsigned lcls) {
  l25_seg_t* s;
  int idx = hak__l25_index(p, &s);
  if (idx < 0 || s->cls != lcls) return 0;
  uint8_t st = atomic_load_explicit(&s->state[idx], memory_order_relaxed);
  return st == L25_FREE || st == L25_COLD;
}

//! The Large class of the block start p, or -1 (for checks and messages).
__attribute__((no_sanitize("thread"))) int hak__l25_block_class(const void* p) {
  l25_seg_t* s;
  return hak__l25_index(p, &s) < 0 || s->cls >= HAK_LARGE_CLASSES ? -1 : (int)s->cls;
}

int hak__l25_owns(const void* p) {
  l25_seg_t* s;
  int idx = hak__l25_index(p, &s);
  return idx >= 0 && atomic_load_explicit(&s->state[idx], memory_order_relaxed) != L25_UNUSED;
}

void hak__l25_flush(hak_heap_t* h) {
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++) {
    hak_large_bin_t* b = &h->large[c];
    while (b->count) hak__freelist_push_lockfree(&l25_hot[c], b->items[--b->count], h);
  }
}

//! Counts a chain's blocks per segment (reclaimer scratch).
static void l25_count(void* chain, unsigned cls, uint32_t gen) {
  for (void* p = chain; p; p = hak__link_get(p, HAK_STAT_LARGE0 + (int)cls)) {
    l25_seg_t* s = (l25_seg_t*)((uintptr_t)p & ~HAK_SEG_MASK);
    if (s->trim_gen != gen) { s->trim_gen = gen; s->trim_count = 0; }
    s->trim_count++;
  }
}

//! Keeps the blocks of live segments (back to their list by state); the
//! blocks of wholly free segments are dropped and the segments collected.
static void l25_sort(void* chain, unsigned cls, l25_seg_t** dead) {
  const uint32_t DEAD = 0x80000000u, KEEP = 0x40000000u;
  while (chain) {
    void* next = hak__link_get(chain, HAK_STAT_LARGE0 + (int)cls);
    l25_seg_t* s = (l25_seg_t*)((uintptr_t)chain & ~HAK_SEG_MASK);
    if (!(s->trim_count & (DEAD | KEEP))) {
      uint32_t carved = s == l25_cur[0][cls] ? l25_next[0][cls] : s == l25_cur[1][cls] ? l25_next[1][cls] : s->nblocks;
      if (s->trim_count == carved) {
        s->trim_count = DEAD;
        s->next_dead = *dead;
        *dead = s;
        if (s == l25_cur[0][cls]) l25_cur[0][cls] = NULL;
        if (s == l25_cur[1][cls]) l25_cur[1][cls] = NULL;
      } else {
        s->trim_count = KEEP;
      }
    }
    if (s->trim_count & KEEP) {
      l25_seg_t* s2;
      int idx = hak__l25_index(chain, &s2);
      int cold = atomic_load_explicit(&s->state[idx], memory_order_relaxed) == L25_COLD;
      hak__freelist_push_lockfree(cold ? &l25_cold[cls] : &l25_hot[cls], chain, NULL);
    }
    chain = next;
  }
}

//! Unmaps the Large segments of the classes in mask whose blocks are all
//! free in the central lists; 0 if a carve held the lock (nothing done).
static size_t l25_reclaim(uint32_t mask, int* ran) {
  static uint32_t gen;
  l25_seg_t* dead = NULL;
  *ran = 0;
  if (pthread_mutex_trylock(&l25_lock)) return 0;    /* a carve is mapping: not now */
  *ran = 1;
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++) {
    if (!(mask >> c & 1)) continue;
    uint32_t n1, n2;
    void* hot = hak__freelist_take_all(&l25_hot[c], &n1);
    void* cold = hak__freelist_take_all(&l25_cold[c], &n2);
    if (!hot && !cold) continue;
    if (++gen == 0) gen = 1;
    l25_count(hot, c, gen);
    l25_count(cold, c, gen);
    l25_sort(hot, c, &dead);
    l25_sort(cold, c, &dead);
  }
  pthread_mutex_unlock(&l25_lock);
  if (!dead) return 0;
  for (l25_seg_t* s = dead; s; s = s->next_dead)
    __atomic_store_n(&hak__segmap[(uintptr_t)s >> HAK_SEG_SHIFT], HAK_SEG_NONE, __ATOMIC_SEQ_CST);
  hak__grace_wait();
  size_t bytes = 0;
  while (dead) {
    l25_seg_t* s = dead;
    dead = s->next_dead;
    hak__os_unmap(s, HAK_SEG_SIZE);
    hak__layer_mapped_add(HAK_LAYER_LARGE, -(int64_t)HAK_SEG_SIZE);
    bytes += HAK_SEG_SIZE;
  }
  return bytes;
}

size_t hak__l25_trim(unsigned keep) {
  size_t bytes = 0;
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++) bytes += l25_trim_class(NULL, c, keep);
  int ran;
  if (keep == 0) bytes += l25_reclaim(~(uint32_t)0, &ran);
  return bytes;
}

/* ---- added for the learner (src/learner.c; declared in learner.h) ---------- */
//! Trims class cls's hot list to keep blocks now: the learner lowered CAP.
size_t hak__l25_trim_class(unsigned cls, uint32_t keep) {
  return cls < HAK_LARGE_CLASSES ? l25_trim_class(NULL, cls, keep) : 0;
}
