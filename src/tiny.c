/* The per-thread lists of every small class, Tiny (<= 1 KiB) and Mid
 * (PoolTLSBin, internal.h): refilled in batches from the remote inbox, the
 * central lists, the active pages, then (Mid) a W_MAX borrow, then fresh
 * pages; spilled to the central lists in batches when a list passes its
 * limit.  Tiny's sizes are here; the Mid Pool's sizes and its borrow are in
 * pool.c. */
#define _GNU_SOURCE
#include "internal.h"
#include "policy.h"
#include "link.h"
#include <errno.h>

//! Links a carved run of n blocks into a list of marked (free) blocks.
static void bin_link_run(uintptr_t run, uint32_t n, uint32_t bs) {
  for (uint32_t i = 0; i < n; i++) {
    void* q = (void*)(run + (uintptr_t)i * bs);
    hak__link_set(q, i + 1 < n ? (void*)(run + (uintptr_t)(i + 1) * bs) : NULL);
    hak__mark_free(q);
  }
}

/* A list's sizes.  Tiny: a base of about 64 KiB (32 to 1024 blocks), a
 * limit up to 512 KiB (16384 blocks at most), refills of up to 128 KiB:
 * a large limit is for holding a batch a thread frees and reallocates
 * (batch16); a thread that only allocates (a producer) should not take
 * 256 KiB per refill (prodcons_tiny peak RSS 19 -> 22 MB).  A Tiny list
 * that freed nothing since its last refill takes HAK_ALLOC_ONLY_BYTES at
 * most, and one that only frees spills HAK_FREEING_TINY_BYTES at a time
 * (bin_spill): what the two ends of a producer-consumer pair hold. */

//! The limit a list starts from.
static uint32_t bin_base(unsigned cls) {
  if (cls >= HAK_TINY_CLASSES) return hak__pool_base(cls);
  uint32_t lim = (uint32_t)(65536 / hak__class_size[cls]);
  return lim < 32 ? 32 : lim > 1024 ? 1024 : lim;
}

//! The most the limit grows to.
static uint32_t bin_most(unsigned cls) {
  if (cls >= HAK_TINY_CLASSES) return hak__pool_most(cls);
  uint32_t most = HAK_TINY_LIMIT_BYTES / hak__class_size[cls];
  return most > HAK_TINY_LIMIT_MAX ? HAK_TINY_LIMIT_MAX : most;
}

//! The most one refill takes.
static uint32_t bin_refill_most(unsigned cls) {
  if (cls >= HAK_TINY_CLASSES) return hak__pool_refill_most(cls);
  return HAK_TINY_REFILL_BYTES / hak__class_size[cls];
}

void hak__bin_setup(hak_heap_t* h) {
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) {
    PoolTLSBin* b = hak__bin(h, c);
    b->base = bin_base(c);
    hak__bin_limit_set(b, b->base);
    b->div = hak__class_div[c];
  }
}

void* hak__bin_pop(PoolTLSBin* b, unsigned cls) {
  void** p = b->head;
  if (!p) return NULL;
  hak__take(p);
  b->head = hak__link_get(p, (int)cls);
  HAK_BUMP(b->fmax, 1);                 /* the alloc: every pop counts one */
  return p;
}

//! Forgets a list's noted tail and cuts (its bottom or its places moved).
static void bin_forget_cuts(PoolTLSBinAux* x) {
  x->tail = NULL;
  x->ncuts = 0;
}

//! Forgets class cls's list in h, its blocks going nowhere: every page of
//! the class is leaving it (small.c, small_whole).
void hak__bin_drop(hak_heap_t* h, unsigned cls) {
  PoolTLSBin* b = hak__bin(h, cls);
  b->head = NULL;
  hak__bin_count_set(b, 0);
  bin_forget_cuts(&h->aux[cls]);
}

void hak__bin_reset(hak_heap_t* h) {
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) {
    PoolTLSBin* b = hak__bin(h, c);
    hak__bin_limit_set(b, b->base);
    b->overages = 0;
    h->aux[c].freeing = 0;
    h->aux[c].borrow_run = 0;
    h->aux[c].alloc_at_spill = 0;      /* the counters start again from zero (stats merge) */
    h->aux[c].frees_at_refill = 0;
    bin_forget_cuts(&h->aux[c]);       /* carved_once stays: bin_carve_want */
  }
}

/* The limit adapts like a slow start: each refill from the central lists
 * (the list ran dry while its blocks sat in central: a batch larger than
 * the list moves to and fro) raises it by its base, up to the most; every
 * fourth spill without a refill in between lowers it by its base. */

//! A refill from central: the list was too short.
static void bin_grow_limit(PoolTLSBin* b, unsigned cls) {
  if (b->limit + b->base <= bin_most(cls)) hak__bin_limit_set(b, b->limit + b->base);
  b->overages = 0;
}

//! A spill: after a few in a row the list was longer than needed.
static void bin_shrink_limit(PoolTLSBin* b) {
  if (++b->overages < 4) return;
  b->overages = 0;
  if (b->limit >= 2 * b->base) hak__bin_limit_set(b, b->limit - b->base);
}

//! How many fresh blocks a carve takes, and links (writing each one).  A
//! class's first carve in a heap takes a page's worth (4 blocks at least):
//! a thread that allocates a block or two of a class does not pay for a
//! refill's worth of pages (one block of every small class: 332 resident
//! pages before, 82 after).  Later carves take HAK_LINK_BYTES at most (4
//! blocks at least), where a refill wants up to 128 KiB: the whole batch
//! was resident before the thread needed it (Tiny band peak RSS 5.19 ->
//! 5.09 MB at 16 KiB, 5.06 at 8 KiB, where mimalloc's is 5.02-5.10; the
//! python replay's instructions did not rise).  A carve cut short leaves
//! the rest of its page to the next refill, which carves on before it
//! asks central (carve_on): a ramp that asked central first took blocks of
//! pages other threads still own, and larson's remote frees rose 10x (-5%).
static uint32_t bin_carve_want(const PoolTLSBinAux* x, unsigned cls, uint32_t want) {
  uint32_t most = (x->carved_once ? HAK_LINK_BYTES : 4096) / hak__class_size[cls];
  if (most < 4) most = 4;
  return most < want ? most : want;
}

/* A class that keeps borrowing refills after this many borrows in a row:
 * borrowing only trades waste for a fresh page, and a class whose own
 * cache stays empty would otherwise take the slow path on every request. */
#define BIN_BORROW_RUN 8

void* hak__bin_alloc_slow(hak_heap_t* h, unsigned cls, size_t req, int borrow) {
  PoolTLSBin* b = hak__bin(h, cls);
  PoolTLSBinAux* x = &h->aux[cls];
  void* p = NULL;                        /* a carve's first block, handed out unlisted */
  if (!b->head) {
    if (x->freeing) {                     /* it allocates again: the whole list */
      x->freeing = 0;
      hak__bin_limit_set(b, b->base);
    }
    uint32_t most = bin_refill_most(cls);
    if (cls < HAK_TINY_CLASSES && b->frees == x->frees_at_refill) {
      uint32_t only = HAK_ALLOC_ONLY_BYTES / hak__class_size[cls];   /* it only allocates */
      if (only < most) most = only;
    }
    x->frees_at_refill = b->frees;
    uint32_t n, want = b->limit / 2 < most ? b->limit / 2 : most;
    if (!want) want = 1;
    void* chain = hak__drain_remote_lockfree(h, cls, &n);
    uint32_t cw = bin_carve_want(x, cls, want);
    uintptr_t run = 0;
    int left = 0;                        /* the carve left blocks in its page */
    if (!chain && x->carve_on) {         /* the last carve was cut short: its page first */
      x->carve_on = 0;
      run = hak__small_carve(h, cls, cw, &n, &left, HAK_CARVE_ACTIVE);
    }
    if (!chain && !run && (chain = hak__small_central_pop(h, cls, want, &n, NULL)) != NULL) bin_grow_limit(b, cls);
    if (!chain) {
      if (!run) run = hak__small_carve(h, cls, cw, &n, &left, HAK_CARVE_ADOPT);   /* active pages, orphans */
      if (!run && borrow && x->borrow_run < BIN_BORROW_RUN) {
        /* the next step is a fresh page: W_MAX lets a larger cached block
         * serve instead (waste traded for a hit), a few times in a row */
        void* p = hak__pool_borrow(h, cls, req);
        if (p) { x->borrow_run++; return p; }
      }
      if (!run) run = hak__small_carve(h, cls, cw, &n, &left, HAK_CARVE_FRESH);
      if (!run && borrow) {
        void* p = hak__pool_borrow(h, cls, req);   /* out of memory: any fit will do */
        if (p) return p;
      }
      if (!run) { errno = ENOMEM; return NULL; }
      x->carved_once = 1;                /* not before: a borrow carves nothing */
      x->carve_on = left;
      /* the run's first block is the one asked for: not linked, so not
       * read back from a line the carve just wrote (a 40 KiB block, one a
       * page, waited on its own mark); its word that a free would mark is
       * cleared, as a pop does (a warm page holds the old class's marks) */
      uint32_t bs = hak__class_size[cls];
      if (n > 1) bin_link_run(run + bs, n - 1, bs);
      chain = n > 1 ? (void*)(run + bs) : NULL;
      p = (void*)run;
      hak__mark_clear(p);
    }
    b->head = chain;
    hak__bin_count_set(b, n);            /* a carve's n counts its first block too */
  }
  x->borrow_run = 0;
  if (p) HAK_BUMP(b->fmax, 1);           /* the alloc, as a pop counts it: n - 1 left */
  else p = hak__bin_pop(b, cls);
  HAK_CSTAT(h, cls, req_bytes, req);    /* a sample: the inline path counts none */
  HAK_CSTAT(h, cls, req_n, 1);
  return p;
}

#define BIN_ALIGNED_SCAN 32   /* list blocks an aligned request looks at */
#define BIN_ALIGNED_POP  64   /* and central blocks, when those miss */

//! Takes a block aligned to align out of a chain of n blocks (the inbox, a
//! central batch) and puts the others on top of the list; NULL if none is.
static void* bin_aligned_from(hak_heap_t* h, unsigned cls, PoolTLSBin* b, void* chain, uint32_t n, size_t align) {
  void *p = NULL, *before = NULL, *last = NULL;
  uint32_t k = 0;
  for (void* r = chain; r && k < n; r = hak__link_get(r, (int)cls), k++) {
    if (!p && ((uintptr_t)r & (align - 1)) == 0) {
      p = r;
      before = last;
    }
    last = r;
  }
  if (p) {
    void* next = hak__link_get(p, (int)cls);
    if (before) hak__link_set(before, next);
    else chain = next;
    if (last == p) last = before;
    hak__take(p);
    n--;
  }
  if (n) {
    uint32_t count = hak__bin_count(b);
    hak__link_set(last, b->head);
    b->head = chain;
    hak__bin_count_set(b, count + n);
    bin_forget_cuts(&h->aux[cls]);
  }
  return p;
}

//! A block of class cls aligned to align, a power of two above 64 that
//! divides the class size: an aligned one among the list's first blocks
//! (one freed and asked for again), else in the inbox or a central batch
//! (blocks another thread freed: a producer of aligned buffers whose
//! consumer frees them took fresh pages for every one, 823 MB of RSS for
//! 187 KB live), else a block carved from a page whose colour gives
//! aligned blocks (hak__small_carve_aligned).
void* hak__bin_alloc_aligned(hak_heap_t* h, unsigned cls, size_t req, size_t align) {
  PoolTLSBin* b = hak__bin(h, cls);
  void* p = b->head;
  void* prev = NULL;
  /* the list's first blocks: an aligned block freed before an unaligned
   * one (free(p); free(q)) is not the top, and carving past it each time
   * grows without bound (Tiny spills its oldest, so it is never reused) */
  for (int i = 0; p && ((uintptr_t)p & (align - 1)) && i < BIN_ALIGNED_SCAN; i++) {
    prev = p;
    p = hak__link_get(p, (int)cls);
  }
  if (p && ((uintptr_t)p & (align - 1)) == 0) {
    if (!prev) {
      p = hak__bin_pop(b, cls);
    } else {
      void* next = hak__link_get(p, (int)cls);
      hak__take(p);
      hak__link_set(prev, next);
      HAK_BUMP(b->fmax, 1);                /* the alloc, as a pop counts it */
      bin_forget_cuts(&h->aux[cls]);       /* places below prev moved */
    }
  } else {
    uint32_t n;
    void* chain = hak__drain_remote_lockfree(h, cls, &n);
    p = chain ? bin_aligned_from(h, cls, b, chain, n, align) : NULL;
    if (!p && (chain = hak__small_central_pop(h, cls, BIN_ALIGNED_POP, &n, NULL)) != NULL)
      p = bin_aligned_from(h, cls, b, chain, n, align);
    if (!p) p = (void*)hak__small_carve_aligned(h, cls, align);
    if (!p) { errno = ENOMEM; return NULL; }
    HAK_BUMP(b->off, (uint64_t)-1);      /* an alloc the list did not count: allocs = fmax - off */
  }
  HAK_CSTAT(h, cls, req_bytes, req);
  HAK_CSTAT(h, cls, req_n, 1);
  return p;
}

//! The blocks a free-only list keeps at a spill: HAK_FREEING, fewer for
//! large Mid classes (four of every Mid class add up to 1.2 MB).
static uint32_t bin_freeing_keep(unsigned cls) {
  uint32_t n = HAK_FREEING_KEEP_BYTES / hak__class_size[cls];
  return n < 1 ? 1 : n > HAK_FREEING ? HAK_FREEING : n;
}

//! The blocks a free-only list gathers before it spills them: a base, and
//! at most HAK_FREEING_MID_BYTES for Mid (a consumer's lists of every Mid
//! class add up) and HAK_FREEING_TINY_BYTES for Tiny; HAK_FREEING_LEAST
//! at least.
static uint32_t bin_freeing_batch(const PoolTLSBin* b, unsigned cls) {
  uint32_t most = (cls < HAK_TINY_CLASSES ? HAK_FREEING_TINY_BYTES : HAK_FREEING_MID_BYTES) / hak__class_size[cls];
  uint32_t n = b->base < most ? b->base : most;
  return n < HAK_FREEING_LEAST ? HAK_FREEING_LEAST : n;
}

/* Tiny spills its oldest blocks: a list spilling its newest keeps the
 * cold ones and hands out those next (Python's trace: malloc waited on
 * the popped block's line, 46% of its time).  The list is singly linked
 * from the top, so the oldest are found by a walk of the whole list; one
 * walk notes the blocks above the next few batches (cuts), and later
 * spills take a batch from below a cut with no walk.  A block noted at
 * place d from the top is still in the list, at the same place from the
 * bottom, until d blocks have been popped: the alloc counter bounds the
 * pops (every pop counts an allocation), so a cut or the tail is trusted
 * only while fewer allocations than its place have happened since. */

//! Whether a block noted at place d from the top is still where it was.
static int bin_cut_valid(const PoolTLSBinAux* x, uint64_t allocs, uint32_t d) {
  return allocs - x->cut_allocs < d;
}

//! Walks the list to note the cuts above its bottom batches of n blocks
//! each: down to the lowest cut if the tail is known (the bottom batch is
//! the coldest part), else to the end, to find the tail.
static void bin_find_cuts(PoolTLSBinAux* x, PoolTLSBin* b, unsigned cls, uint64_t allocs, uint32_t n,
                          int tail_known) {
  uint32_t count = hak__bin_count(b), k = 0;
  uint32_t m = (count - 1) / n;                  /* batches below the head's place */
  if (m > HAK_BIN_CUTS) m = HAK_BIN_CUTS;
  uint32_t want = count - m * n;                 /* the top-most cut's place; cut[m-1] the lowest */
  void* p = b->head;
  void* last = p;
  for (uint32_t d = 1; p; d++) {
    if (hak_unlikely(d > count)) hak__link_loop(p, (int)cls);   /* the count is exact */
    if (k < m && d == want) {
      x->cut[k] = p;
      x->cut_depth[k] = d;
      k++;
      want += n;
      if (k == m && tail_known) break;
    }
    last = p;
    p = hak__link_get(p, (int)cls);
  }
  if (!tail_known) x->tail = last;
  x->tail_depth = count;
  x->ncuts = k;
  x->cut_n = n;
  x->cut_allocs = allocs;
}

//! Spills the bottom n blocks (n < count) from below the lowest cut,
//! walking first if no trusted cut is left, or if the noted batches are
//! larger than n.
static void bin_spill_oldest(hak_heap_t* h, unsigned cls, PoolTLSBin* b, uint64_t allocs, uint32_t n) {
  PoolTLSBinAux* x = &h->aux[cls];
  uint32_t i = x->ncuts;
  if (!i || !bin_cut_valid(x, allocs, x->cut_depth[i - 1]) || x->cut_n > n) {
    bin_find_cuts(x, b, cls, allocs, n, x->tail && bin_cut_valid(x, allocs, x->tail_depth));
    i = x->ncuts;                                /* at least 1: n < count */
  }
  void* cut = x->cut[i - 1];
  void* first = hak__link_get(cut, (int)cls);
  void* last = x->tail;
  uint32_t k = x->cut_n;
  hak__link_set(cut, NULL);
  x->tail = cut;
  x->tail_depth = x->cut_depth[i - 1];
  x->ncuts = i - 1;
  hak__bin_count_sub(b, k);
  hak__small_central_push(h, cls, first, last, k);
}

//! Spills part of an over-full list to the central lists, a base's worth
//! at most (half the list at most): a long list that overflows by a little
//! should not send thousands of blocks through central.  Tiny sends its
//! oldest batch (above); Mid its newest: Mid lists are short, and sending
//! the oldest measured no gain there.
//! A thread that allocated nothing of a class since its last spill frees
//! what others made: its list keeps its newest few blocks (bin_freeing_keep)
//! and sends the rest, and spills again after a batch more (free-only
//! threads held up to 18 MB each in remote_burst).  That spill walks the
//! kept links: its last block is the next spill's tail, trusted while the
//! thread allocates nothing (walking the batch, blocks another core had
//! just left, was 18% of producer-consumer's time).  Tiny only while its
//! limit never grew, or once free-only (16-byte blocks' free-only limit,
//! 4 + 1024, is above their base): a thread that frees a batch and
//! allocates it again (batch16) grows its limit to hold the batch and
//! must keep it.  A Tiny consumer's lists held 0.9 MB in prodcons_tiny,
//! and its 64 KiB batches (then the producer's refills of them) were most
//! of what central held.  Out of line: its link walk makes calls in
//! hardened mode, and the push stays a leaf.
static HAK_NOINLINE void bin_spill(hak_heap_t* h, unsigned cls, PoolTLSBin* b) {
  PoolTLSBinAux* x = &h->aux[cls];
  uint64_t allocs = hak__bin_allocs(b);
  uint32_t count = hak__bin_count(b);
  int tiny = cls < HAK_TINY_CLASSES;
  uint32_t keep = bin_freeing_keep(cls);
  int freeing = allocs == x->alloc_at_spill && count > keep && (!tiny || x->freeing || b->limit <= b->base);
  x->alloc_at_spill = allocs;
  if (freeing) {
    x->freeing = 1;
    hak__bin_limit_set(b, keep + bin_freeing_batch(b, cls));
    bin_spill_oldest(h, cls, b, allocs, count - keep);
    return;
  }
  bin_shrink_limit(b);
  uint32_t n = count / 2 < b->base ? count / 2 : b->base;
  if (!n) n = 1;
  if (tiny) {
    bin_spill_oldest(h, cls, b, allocs, n);
    return;
  }
  bin_forget_cuts(x);                            /* the top goes: places from the top move */
  void* first = b->head;
  void* last = hak__link_nth(first, n, (int)cls, &b->head);
  hak__bin_count_sub(b, n);
  hak__small_central_push(h, cls, first, last, n);
}

//! Free past the inline path's bounds (a full list, an adopted block, an
//! ownerless page's block): pushes p even past the limit, then spills.
void hak__bin_free_slow(hak_heap_t* h, unsigned cls, void* p) {
  PoolTLSBin* b = hak__bin(h, cls);
  hak__link_set(p, b->head);
  hak__mark_free(p);
  b->head = p;
  HAK_BUMP(b->frees, 1);
  if (hak__bin_count(b) > b->limit) bin_spill(h, cls, b);
}

//! Hands every cached small block to the central lists (thread exit, trim).
void hak__bin_flush(hak_heap_t* h) {
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) {
    PoolTLSBin* b = hak__bin(h, c);
    if (!b->head) continue;
    uint32_t n;
    void* last = hak__link_last(b->head, (int)c, &n);
    void* first = b->head;
    b->head = NULL;
    hak__bin_count_set(b, 0);
    bin_forget_cuts(&h->aux[c]);
    hak__small_central_push(h, c, first, last, n);
  }
}
