/* hakmem internal types and cross-file interfaces.
 *
 * Layer order (higher layers use only lower ones):
 *   override  ->  alloc (dispatch)  ->  tiny | pool (Mid) | l25 (Large) | huge
 *             ->  heap (per-thread caches)  ->  freelist (central lists)
 *             ->  segment (segments, pages, segment map)  ->  os  ->  libc
 *   options and stats sit beside every layer; learner reads stats and
 *   publishes policy that the slow paths read.
 *
 * Internal symbols shared across files use the prefix hak__ and are hidden
 * by -fvisibility=hidden. */
#ifndef HAK_INTERNAL_H
#define HAK_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include <stdatomic.h>
#include <pthread.h>
#include "hakmem.h"
/* declared hidden too, so that the fast paths reach internal globals by a
 * direct PC-relative load instead of through an address computed first */
#pragma GCC visibility push(hidden)
#include "os.h"
#include "options.h"
#include "stats.h"

#define hak_likely(x)   __builtin_expect(!!(x), 1)
#define hak_unlikely(x) __builtin_expect(!!(x), 0)
#define HAK_INLINE      static inline __attribute__((always_inline))
#define HAK_NOINLINE    __attribute__((noinline))
#define HAK_API         __attribute__((visibility("default")))

/* ---- geometry ---------------------------------------------------------- */
#define HAK_SEG_SHIFT   22                       /* 4 MiB segments */
#define HAK_SEG_SIZE    ((uintptr_t)1 << HAK_SEG_SHIFT)
#define HAK_SEG_MASK    (HAK_SEG_SIZE - 1)
#define HAK_PAGE_SHIFT  16                       /* 64 KiB pages */
#define HAK_PAGE_SIZE   ((size_t)1 << HAK_PAGE_SHIFT)
#define HAK_PAGES_PER_SEG (HAK_SEG_SIZE >> HAK_PAGE_SHIFT)
#define HAK_TAG_ROWS    32                       /* rows of page tags per segment header */
#define HAK_ADDR_BITS   47
#define HAK_SEGMAP_N    ((size_t)1 << (HAK_ADDR_BITS - HAK_SEG_SHIFT))

/* segment map kinds: what a 4 MiB chunk of address space holds */
enum { HAK_SEG_NONE = 0, HAK_SEG_SMALL = 1, HAK_SEG_LARGE = 2,
       HAK_SEG_HUGE = 3,      /* huge header at the chunk's start */
       HAK_SEG_HUGE_FAR = 4   /* huge block aligned > 2 MiB: header one OS page before the chunk */ };

extern uint8_t hak__segmap[HAK_SEGMAP_N];

/* ---- size classes ------------------------------------------------------ */
#define HAK_TINY_MAX     1024
#define HAK_MID_MAX      (52 * 1024)
#define HAK_LARGE_MAX    (1024 * 1024)
#define HAK_TINY_CLASSES 20     /* 16..128 step 16, then 4 per doubling to 1024 */
#define HAK_MID_CLASSES  22     /* 1280 .. 32768 4 per doubling, + 40K and 52K bridges */
#define HAK_SMALL_CLASSES (HAK_TINY_CLASSES + HAK_MID_CLASSES)
#define HAK_LARGE_CLASSES 17    /* 64K .. 1M, 4 per doubling */
#define HAK_MID_BASE_MAX 1024   /* bound of HAKMEM_POOL_TLS_RING: a Mid list's base, blocks */
#define HAK_FREEING      4      /* most blocks a list keeps while its thread only frees the class */
#define HAK_SHARDS       4      /* central freelist shards per class */

extern const uint32_t hak__class_size[HAK_SMALL_CLASSES];
extern const uint8_t  hak__tiny_class_of[(HAK_TINY_MAX >> 4) + 1];   /* by (n+15)>>4 */
extern const uint8_t  hak__mid_class_of[(HAK_MID_MAX >> 8) + 1];     /* by (n+255)>>8 */
/* The bin of every n <= HAK_MID_MAX by (n + 15) >> 4, as its byte offset
 * in a heap's bins (class << HAK_BIN_SHIFT), for the inline path: one load
 * for both layers, added to the heap with no shift (hak__classes_init
 * fills it) */
#define HAK_SMALL_INDEX_MAX (HAK_MID_MAX >> 4)
#define HAK_BIN_SHIFT 6                        /* a bin is a line (asserted at PoolTLSBin) */
extern uint16_t hak__small_bin_of[HAK_SMALL_INDEX_MAX + 1];
//! The byte offset of n's bin in a heap's bins (n <= HAK_MID_MAX).
HAK_INLINE size_t hak__small_bin_off(size_t n) { return hak__small_bin_of[(n + 15) >> 4]; }
//! The small class of n (n <= HAK_MID_MAX).
HAK_INLINE size_t hak__small_class(size_t n) { return hak__small_bin_off(n) >> HAK_BIN_SHIFT; }
void hak__classes_init(void);
//! The layer of a small or Large class index (policy and stats indexes).
HAK_INLINE int hak__class_layer(unsigned c) {
  return c < HAK_TINY_CLASSES ? HAK_LAYER_TINY : c < HAK_SMALL_CLASSES ? HAK_LAYER_MID : HAK_LAYER_LARGE;
}

/* ---- pages and segments ------------------------------------------------ */
enum { HAK_PAGE_FREE = 0, HAK_PAGE_ACTIVE = 1, HAK_PAGE_FULL = 2, HAK_PAGE_META = 3 };

struct hak_heap;
typedef struct hak_page {
  _Atomic uintptr_t owner;     /* token of the owning heap; 0 = none */
  uint32_t block_size;
  uint16_t cls;
  _Atomic uint8_t state;       /* HAK_PAGE_*: read by the scavenger */
  uint8_t  committed;          /* memory is (or may be) resident */
  uint32_t capacity;           /* blocks that fit */
  _Atomic uint32_t carved;     /* blocks handed out by the bump pointer */
  struct hak_page* next_orphan; /* list of partly carved pages, under the segment lock */
  uint64_t orphan_ns;          /* when its thread exited and left it (hak__page_orphan), or it was stashed warm */
  uint32_t scav_gen, scav_count;  /* scratch of the class scavenger */
  struct hak_page* next_free;  /* scratch list of the scavenger */
  uint32_t color;              /* byte offset of the first block: its cache colour */
  _Atomic uint8_t stale_end;   /* taken warm by a class ending earlier: the old end, in 4 KiB, still resident */
  uint8_t  _pad2;
  uint16_t stale_ms;           /* when it was taken, in ms mod 2^16 (segment.c, hak__page_tails_trim) */
} hak_page_t;                  /* 64 bytes: one line, and a shift to index */

typedef struct hak_ptag {     /* a copy of what free needs of a page's descriptor */
  _Atomic uintptr_t owner;      /* the owner's token; HAK_TOKEN_SENTINEL while the page is free */
  uint32_t bin_off;             /* the page's class, as its bin's offset (class << HAK_BIN_SHIFT) */
  uint32_t ccolor;              /* the page's colour * its class's check constant */
} hak_ptag_t;

typedef struct hak_segment {
  uint32_t magic;
  uint8_t  kind;
  uint8_t  in_avail;                      /* on the list of segments with free pages */
  uint16_t nfree;                         /* free pages, under the segment lock */
  uint64_t free_mask;                     /* bit i: page i is free */
  struct hak_segment* next_avail;
  struct hak_segment* next_all;           /* every small segment, under the segment lock */
  _Atomic uint32_t stale_n;               /* its pages with a stale tail (segment.c, page_take) */
  /* aligned: one line per descriptor (the slow paths read them) */
  hak_page_t pages[HAK_PAGES_PER_SEG] __attribute__((aligned(64)));   /* pages[0] is this header */
  /* What free reads: each page's tag (hak_ptag_t), four to a line, where
   * each page had a descriptor line of its own (with 2,700 pages live,
   * larson Mid, the descriptor was half of free's time).  A segment uses
   * one row of the table, row (address >> 22) & 31 (hak__ptag_of): at one
   * offset, the tags of every 4 MiB-aligned segment fell in the same few L1
   * sets and missed once dozens of segments were live.  The row costs no
   * instruction: the index is the page index with five more address bits. */
  hak_ptag_t ptag[HAK_TAG_ROWS * HAK_PAGES_PER_SEG] __attribute__((aligned(64)));
} hak_segment_t;

#define HAK_SEG_MAGIC 0x48414b53u  /* "HAKS" */

_Static_assert(sizeof(hak_page_t) == 64, "page descriptors are one cache line");
_Static_assert(offsetof(hak_segment_t, pages) % 64 == 0, "and aligned to one");

HAK_INLINE hak_segment_t* hak__seg_of(uintptr_t a) { return (hak_segment_t*)(a & ~HAK_SEG_MASK); }
HAK_INLINE unsigned hak__page_index(uintptr_t a) {
  return (unsigned)(a >> HAK_PAGE_SHIFT) & (HAK_PAGES_PER_SEG - 1);
}
HAK_INLINE hak_page_t* hak__page_of(uintptr_t a) { return &hak__seg_of(a)->pages[hak__page_index(a)]; }
//! The tag of a's page, in its segment's row: the byte offset is a shift
//! and a mask of the address (the page index and the row bits at once).
_Static_assert(sizeof(hak_ptag_t) == 16, "a tag is 16 bytes: its offset is the address >> (page shift - 4)");
_Static_assert((HAK_TAG_ROWS & (HAK_TAG_ROWS - 1)) == 0, "the row is address bits: a power of two");
HAK_INLINE hak_ptag_t* hak__ptag_of(hak_segment_t* s, uintptr_t a) {
  uintptr_t off = (a >> (HAK_PAGE_SHIFT - 4)) & ((uintptr_t)(HAK_TAG_ROWS * HAK_PAGES_PER_SEG - 1) << 4);
  return (hak_ptag_t*)((char*)s->ptag + off);
}
HAK_INLINE uintptr_t hak__page_start(const hak_page_t* pg) {
  hak_segment_t* s = hak__seg_of((uintptr_t)pg);
  return (uintptr_t)s + ((uintptr_t)(pg - s->pages) << HAK_PAGE_SHIFT);
}
//! A page's first block: the page start plus its colour.
HAK_INLINE uintptr_t hak__page_first(const hak_page_t* pg) { return hak__page_start(pg) + pg->color; }
HAK_INLINE int hak__seg_kind(uintptr_t a) {
  uintptr_t i = a >> HAK_SEG_SHIFT;
  /* relaxed: a plain load, but the map is written while other threads read it */
  return i < HAK_SEGMAP_N ? __atomic_load_n(&hak__segmap[i], __ATOMIC_RELAXED) : HAK_SEG_NONE;
}
/* 1 if a is the start of a block of class cls (not an interior pointer).
 * With c = floor(2^32 / d) + 1 and off < 2^16, d < 2^16, off * c mod 2^32
 * is below c exactly when d divides off (Lemire, Kaser and Kurz, 2019); for
 * off = q * d it is q * e, e = c * d mod 2^32, 0 < e <= d, so one compare
 * with (capacity - 1) * e also rejects the tail past the last block.  A
 * page's blocks start at its colour (hak__page_first): the check subtracts
 * cc = colour * c, kept in the page's tag (an offset before the first block
 * wraps to at least 2^32 / d - d, above every lim).  One 32-bit multiply;
 * the constants are per class (classes.c), and each heap bin keeps a copy
 * next to its head, so the inline free loads no table. */
typedef struct { uint32_t c, lim; } hak_div_t;
extern const hak_div_t hak__class_div[HAK_SMALL_CLASSES];
extern const uint16_t hak__class_cap[HAK_SMALL_CLASSES];     /* blocks per page */
extern const uint16_t hak__class_colors[HAK_SMALL_CLASSES];  /* first-block offsets a page may take */
HAK_INLINE int hak__div_is_start(hak_div_t d, uintptr_t a, uint32_t cc) {
  uint32_t off = (uint32_t)(a & (HAK_PAGE_SIZE - 1));
  return (uint32_t)(off * d.c - cc) <= d.lim;
}
HAK_INLINE int hak__is_block_start(const hak_page_t* pg, uintptr_t a) {
  hak_div_t d = hak__class_div[pg->cls];
  return hak__div_is_start(d, a, pg->color * d.c);
}

void*       hak__segment_alloc(int kind);                 /* 4 MiB, aligned, registered */
hak_page_t* hak__page_acquire(unsigned cls, struct hak_heap* owner, int color);
uint32_t    hak__page_acquire_n(unsigned cls, struct hak_heap* owner, hak_page_t** pgs, uint32_t n);
void        hak__page_release(hak_page_t* pg);            /* wholly free: back to the OS */
void        hak__page_stash_n(hak_page_t** pgs, uint32_t n); /* wholly free, kept committed (warm) */
uint32_t    hak__page_warm_decay(uint64_t before);        /* warm pages stashed before: to the OS */
uint32_t    hak__page_warm_count(void);                   /* warm pages now */
void*       hak__map_or_reclaim(size_t size, size_t align);   /* map; out of memory: trim, wait for transit */
uint32_t    hak__page_warm_layer(unsigned layer);         /* those last in a layer (Tiny, Mid) */
uint64_t    hak__page_warm_taken(void);                   /* pages ever taken warm */
void        hak__page_tails_trim(uint64_t now);           /* upkeep (now in ns): stale tails of warm pages to the OS */
unsigned    hak__page_tail_age_ms(void);                  /* how long a tail waits for it */
/* calls fn on every page descriptor of every small segment (not the
 * headers), under the segment lock, until fn returns 0 */
void        hak__page_each(int (*fn)(hak_page_t* pg, void* arg), void* arg);
void        hak__page_retire(hak_page_t* pg, uint32_t carved);  /* carved out: ownerless, FULL */
void        hak__page_orphan(hak_page_t* pg, uint32_t carved);  /* an exiting thread's partly carved page */
hak_page_t* hak__page_adopt(unsigned cls, struct hak_heap* owner); /* one of those, or NULL */
void        hak__page_orphans_age(unsigned cls, uint64_t before);  /* orphans left before: retired */
/* exact division by d = m * 2^k: *mul = inverse of m mod 2^32, *shift = k */
void        hak__div_magic(uint32_t d, uint32_t* mul, uint8_t* shift);
void        hak__segment_fork_child(void);
size_t      hak__segment_trim(void);                      /* unmaps empty small segments */
void        hak__grace_wait(void);                        /* no pop reads freed memory after this */
extern _Atomic int hak__anon_pops;                        /* pops by no heap, in progress */
void        hak__segment_lock(void);
void        hak__segment_unlock(void);

/* ---- central lock-free freelists ----------------------------------------
 * A Treiber stack whose head packs the block address (>>4, 43 bits) with a
 * 21-bit generation tag against ABA.  Blocks link through their first word.
 * The small classes' lists keep whole batches instead: `chains` is a stack
 * of descriptors, one per pushed chain (freelist.c). */
typedef struct hak_chain hak_chain_t;
typedef struct hak_freelist {
  _Atomic uint64_t head;
  _Atomic int64_t  count;            /* blocks, on both stacks */
  _Atomic uint64_t chains;           /* tagged stack of chain descriptors */
#ifdef HAK_CENTRAL_MUTEX
  pthread_mutex_t  lock;
#endif
  char _pad[64 - 24
#ifdef HAK_CENTRAL_MUTEX
            - sizeof(pthread_mutex_t) % 64
#endif
           ];
} __attribute__((aligned(64))) hak_freelist_t;

struct hak_heap;
void  hak__freelist_push_lockfree(hak_freelist_t* fl, void* blk, struct hak_heap* h);
/* n, in every push, is the chain's exact length: the counted reclaim
 * (small.c, small_whole) trusts the lists' counts to prove pages free */
void  hak__freelist_push_batch_lockfree(hak_freelist_t* fl, void* first, void* last,
                                        uint32_t n, struct hak_heap* h);
/* pops up to max blocks as a chain (NULL-terminated); *n gets the count */
void* hak__freelist_pop_lockfree(hak_freelist_t* fl, uint32_t max, uint32_t* n, struct hak_heap* h);
void* hak__freelist_take_all(hak_freelist_t* fl, uint32_t* n);
typedef struct hak_runs { hak_chain_t* chains; void* plain; } hak_runs_t;   /* a walk's taken lists */
uint32_t hak__freelist_take_runs(hak_freelist_t* fl, hak_runs_t* r, uint64_t* blocks);   /* runs; adds the blocks */
void  hak__runs_fill(hak_runs_t* r, void** first, uint32_t* k, uint32_t max);
/* chains: push a whole chain in one CAS; pop whole chains until about max
 * blocks (at most 2 * max), *last gets the chain's last block if last */
void  hak__freelist_push_chain(hak_freelist_t* fl, void* first, void* last, uint32_t n,
                               struct hak_heap* h);
void* hak__freelist_pop_chains(hak_freelist_t* fl, uint32_t max, uint32_t* n, void** last,
                               struct hak_heap* h);
int   hak__freelist_empty(hak_freelist_t* fl);
void  hak__freelist_fork_child(void);
void  hak__freelist_init(hak_freelist_t* fl);

/* ---- per-thread heap ---------------------------------------------------- */
/* Every small class, Tiny and Mid, has one: a LIFO list of free blocks
 * with a count and an adaptive limit.  One structure for both layers, so
 * that the inline paths take no branch on the layer: a program whose sizes
 * straddle 1 KiB at random mispredicted that branch in malloc and in free,
 * and ran at 0.63-0.71x tcmalloc (bench/results/proto-unified.md).  It is
 * the seed's PoolTLSBin, with its ring and overflow list made one list: a
 * ring pop is three dependent loads (top, item, the block's mark), a list
 * pop two (head, then the block's mark and link on one line).
 * The list's length is not stored: each inline path would update it and
 * the class's counter, where one update each does both.  free counts up
 * frees, and a pop counts up fmax, the frees at which the list is full:
 * free's bound is frees < fmax (hak__bin_room), the count is
 * limit - (fmax - frees), and the class's allocs are fmax - off.  A slow
 * path that adds or takes blocks uncounted, or moves the limit, moves fmax
 * and off together (all mod 2^64). */
typedef struct PoolTLSBin {
  void*    head;
  uint64_t fmax;                    /* pops, plus off */
  uint64_t frees;                   /* pushes by free: the class's free counter (stats.c adds it) */
  uint64_t off;                     /* fmax - allocs */
  hak_div_t div;                    /* hak__class_div[class]: free's block-start check */
  uint32_t limit;                   /* adapts between base and the layer's most */
  uint32_t base;
  uint32_t overages;                /* spills since the limit last moved */
} __attribute__((aligned(64))) PoolTLSBin;
_Static_assert(sizeof(PoolTLSBin) == 64 && 64 == 1 << HAK_BIN_SHIFT, "a bin is a line");

#define HAK_BIN_CUTS 7               /* Tiny: spill points found by one walk (tiny.c) */
typedef struct PoolTLSBinAux {      /* a bin's cold fields (slow paths only) */
  uint64_t alloc_at_spill;          /* the class's alloc counter at the last spill */
  uint64_t cut_allocs;              /* the alloc counter when tail and cuts were found */
  void*    tail;                    /* the list's last block (valid: tiny.c bin_cut_valid) */
  void*    cut[HAK_BIN_CUTS];       /* cut[i]: the block above a spill batch, last = lowest */
  uint32_t cut_depth[HAK_BIN_CUTS]; /* its place from the top when found (1 = head) */
  uint32_t tail_depth;              /* the tail's place from the top when found */
  uint32_t ncuts, cut_n;            /* cuts left; blocks between two cuts */
  uint32_t borrow_run;              /* Mid: W_MAX borrows since the last refill */
  uint32_t freeing;                 /* the thread only frees this class: the list stays short */
  uint32_t carved_once;             /* the heap has carved fresh blocks of this class (tiny.c) */
  uint32_t carve_on;                /* the last carve was cut short: its page has more (tiny.c) */
  uint64_t frees_at_refill;         /* the class's free counter at its last refill (tiny.c) */
} PoolTLSBinAux;

#define HAK_TINY_LIMIT_MAX   16384u         /* blocks, and at most 512 KiB of them */
#define HAK_TINY_LIMIT_BYTES (512u * 1024)
#define HAK_TINY_REFILL_BYTES (128u * 1024)  /* most a refill takes (tiny.c) */
#define HAK_LINK_BYTES (8u * 1024)           /* most a later carve takes and links (tiny.c) */
#define HAK_ALLOC_ONLY_BYTES (32u * 1024)    /* most a refill asks for when the list freed nothing since the last */
#define HAK_FREEING_TINY_BYTES (16u * 1024)  /* a free-only Tiny list's spill batch (tiny.c, bin_spill) */
#define HAK_FREEING_MID_BYTES (64u * 1024)  /* and a Mid one's (DESIGN.md) */
/* and at least this many blocks: each spill is a central push, so a 32 KiB
 * class spills 8 at a time (Tiny's batches are 16 blocks or more anyway) */
#define HAK_FREEING_LEAST 8u
#define HAK_FREEING_KEEP_BYTES (16u * 1024) /* what it keeps: HAK_FREEING blocks, 1 at least */

typedef struct PoolTLSPage {        /* an active page carved by bump pointer */
  hak_page_t* page;
  uintptr_t   bump, end;
  uint32_t    from;                 /* its blocks carved before, already in the class's carve count */
} PoolTLSPage;

#define HAK_QUAR_N 256             /* HAKMEM_SECURE: delayed reuse, blocks per thread */
#define HAK_INBOX_MAX 15            /* then the next remote free moves the batch to central */
#define HAK_TLS_PAGES 4             /* active page slots per class (refill batch <= 4) */
#define HAK_LARGE_TLS_MAX 8

typedef struct hak_large_bin {
  uint32_t count, limit;
  void*    items[HAK_LARGE_TLS_MAX];
} hak_large_bin_t;

typedef struct hak_heap {
  uintptr_t       token;            /* id and incarnation: pages carry it as owner */
  uintptr_t       ntoken;           /* ~token: own-or-ownerless is one AND (see hak__token) */
  PoolTLSBin      bins[HAK_SMALL_CLASSES];     /* Tiny, then Mid */
  hak_large_bin_t large[HAK_LARGE_CLASSES];
  PoolTLSPage     pages[HAK_SMALL_CLASSES][HAK_TLS_PAGES];
  /* remote frees to this heap's pages, per small class (CAS push, xchg take);
   * the low 4 bits count the blocks, at most HAK_INBOX_MAX */
  _Atomic uintptr_t inbox[HAK_SMALL_CLASSES];
  uint32_t        id;
  _Atomic int     in_pop;           /* walking central links: segments must stay mapped */
  hak_chain_t*    chain_cache;      /* spare chain descriptors (freelist.c) */
  uint32_t        chain_cached;
  struct hak_heap* next_all;        /* every heap ever made */
  struct hak_heap* next_free;       /* recycled heaps */
  void*           quar[HAK_QUAR_N]; /* HAKMEM_SECURE: freed blocks waiting (FIFO) */
  uint32_t        quar_head, quar_count;
  size_t          quar_bytes;
  PoolTLSBinAux   aux[HAK_SMALL_CLASSES];
  hak_tstats_t    st;               /* plain per-thread counters */
} hak_heap_t;

//! The bin of small class c (Tiny or Mid).
HAK_INLINE PoolTLSBin* hak__bin(hak_heap_t* h, size_t c) { return &h->bins[c]; }
//! The bin at byte offset off (a class << HAK_BIN_SHIFT) in h's bins.
HAK_INLINE PoolTLSBin* hak__bin_at(hak_heap_t* h, size_t off) { return (PoolTLSBin*)((char*)h->bins + off); }

//! The blocks on a bin's list: exact (the counted reclaim trusts it).
HAK_INLINE uint32_t hak__bin_count(const PoolTLSBin* b) { return b->limit - (uint32_t)(b->fmax - b->frees); }

//! Whether free may push: the count is below the limit.  Signed: a list
//! over its limit (a refill from the inbox takes up to 15 blocks, past a
//! Mid limit of 4) puts fmax below frees, below zero on a young heap.
HAK_INLINE int hak__bin_room(const PoolTLSBin* b) { return (int64_t)(b->frees - b->fmax) < 0; }

//! The class's allocations: every pop counts one.
HAK_INLINE uint64_t hak__bin_allocs(const PoolTLSBin* b) { return b->fmax - b->off; }

//! Moves fmax by d with the allocs kept.
HAK_INLINE void hak__bin_fmax_move(PoolTLSBin* b, uint64_t d) {
  HAK_BUMP(b->fmax, d);
  HAK_BUMP(b->off, d);
}

//! Another thread's read of a bin's allocs: the owner may move fmax and
//! off between the two loads, so the difference is briefly off by what
//! it moved (stats readers clamp their deltas); never below zero.
HAK_INLINE uint64_t hak__bin_allocs_read(const PoolTLSBin* b) {
  int64_t a = (int64_t)(__atomic_load_n(&b->fmax, __ATOMIC_RELAXED) - __atomic_load_n(&b->off, __ATOMIC_RELAXED));
  return a < 0 ? 0 : (uint64_t)a;
}

//! Makes a bin's count n (its list was given or took blocks uncounted).
HAK_INLINE void hak__bin_count_set(PoolTLSBin* b, uint32_t n) {
  hak__bin_fmax_move(b, (uint64_t)hak__bin_count(b) - n);
}

//! Takes k blocks off a bin's count (they left its list uncounted).
HAK_INLINE void hak__bin_count_sub(PoolTLSBin* b, uint32_t k) { hak__bin_fmax_move(b, k); }

//! Sets a bin's limit, keeping its count.
HAK_INLINE void hak__bin_limit_set(PoolTLSBin* b, uint32_t lim) {
  hak__bin_fmax_move(b, (uint64_t)lim - b->limit);
  b->limit = lim;
}

extern __thread hak_heap_t* hak__tls_heap __attribute__((tls_model("initial-exec")));
extern hak_heap_t hak__empty_heap;   /* all bins empty: the fast path always misses */
extern uintptr_t  hak__cookie;       /* random: marks a block as free (double-free check) */
//! The mark of a free block, in its second word (fastpath.h): the cookie
//! xor the block's address.  Bound to the address, not for secrecy (one
//! mark read after free gives the cookie away) but because a page carved
//! again for another class keeps the old blocks' marks inside the new
//! blocks, and a program may copy those uninitialised bytes elsewhere: an
//! unbound mark would then read as a double free of a live block
//! (tests/misuse/stale_mark).  The xor costs malloc's check 3-5% on the
//! Tiny band.
HAK_INLINE uintptr_t hak__mark(uintptr_t a) { return hak__cookie ^ a; }
//! 1 if block p carries its free mark: it is free (or quarantined).
HAK_INLINE int hak__marked(const void* p) { return ((const uintptr_t*)p)[1] == hak__mark((uintptr_t)p); }
/* A token is a 32-bit key x = heap id << 12 | incarnation, stored as x in
 * the high half and ~x in the low half.  No token's bits are a subset of
 * another's, so "owner is this heap or nobody" is (owner & ~token) == 0:
 * one AND and one branch on the free path. */
#define HAK_TOKEN_EPOCH_BITS 12
#define HAK_HEAP_ID_MAX      ((uint32_t)1 << (32 - HAK_TOKEN_EPOCH_BITS))
#define HAK_TOKEN_NONE       ((uintptr_t)0)
#define HAK_TOKEN_SENTINEL   (~(uintptr_t)0)       /* the empty heap owns nothing */
HAK_INLINE uintptr_t hak__token(uint32_t key) { return ((uintptr_t)key << 32) | (uint32_t)~key; }
HAK_INLINE uint32_t  hak__token_key(uintptr_t t) { return (uint32_t)(t >> 32); }
hak_heap_t* hak__heap_of_token(uintptr_t t);      /* the heap whose id t carries, or NULL */
HAK_INLINE uintptr_t hak__page_owner(const hak_page_t* pg) {
  return atomic_load_explicit(&pg->owner, memory_order_relaxed);
}
//! Sets the packed copy of a page's owner that free reads: the owner, or
//! HAK_TOKEN_SENTINEL for a free page (no heap matches it).
HAK_INLINE void hak__page_set_tag(hak_page_t* pg, uintptr_t tag) {
  hak_segment_t* s = hak__seg_of((uintptr_t)pg);
  atomic_store_explicit(&hak__ptag_of(s, hak__page_start(pg))->owner, tag, memory_order_relaxed);
}
//! Sets a page's owner and its packed copy.
HAK_INLINE void hak__page_set_owner(hak_page_t* pg, uintptr_t owner) {
  atomic_store_explicit(&pg->owner, owner, memory_order_relaxed);
  hak__page_set_tag(pg, owner);
}

hak_heap_t* hak__heap_get(void);     /* the calling thread's heap, made on first use */
hak_heap_t* hak__heap_current(void); /* the calling thread's heap or NULL; never makes one */
void        hak__heap_flush(hak_heap_t* h);   /* caches to central lists */
void        hak__heap_fork_prepare(void);
void        hak__heap_fork_parent(void);
void        hak__heap_fork_child(void);
void        hak__heap_each(void (*fn)(hak_heap_t*, void*), void* arg); /* under the heap list lock */
void        hak__heap_each_unlocked(void (*fn)(hak_heap_t*, void*), void* arg); /* fn may wait */
void        hak__heaps_drain_dead(hak_heap_t* self);
void        hak__heap_init(void);
hak_heap_t* hak__global_heap_lock(void);      /* for threads past their teardown */
void        hak__global_heap_unlock(void);
extern _Atomic uint64_t hak__threads_started, hak__threads_exited;

/* ---- layers --------------------------------------------------------------- */
void  hak__small_central_push(hak_heap_t* h, unsigned cls, void* first, void* last, uint32_t n);
void  hak__small_remote_free(hak_heap_t* h, hak_page_t* pg, void* p);
int   hak__small_scavenge(unsigned cls, uint32_t keep_pages, int force);
void  hak__small_reclaim(hak_heap_t* h, unsigned cls);
void  hak__small_page_retire(hak_heap_t* h, unsigned cls);
size_t hak__small_trim(void);
uint64_t hak__small_pages_in_use(unsigned cls);
uint64_t hak__small_cached_blocks(unsigned cls);
uint64_t hak__small_pages_released(void);     /* pages given back by scavenges, ever */

/* the per-thread lists of every small class (tiny.c); borrow: a larger
 * Mid class may serve req (not for aligned requests) */
void* hak__bin_alloc_slow(hak_heap_t* h, unsigned cls, size_t req, int borrow);
void* hak__bin_alloc_aligned(hak_heap_t* h, unsigned cls, size_t req, size_t align);   /* align > 64 */
void  hak__bin_free_slow(hak_heap_t* h, unsigned cls, void* p);
void  hak__bin_flush(hak_heap_t* h);
void  hak__bin_setup(hak_heap_t* h);
void* hak__bin_pop(PoolTLSBin* b, unsigned cls);        /* a cached block, its mark checked, or NULL */
void  hak__bin_drop(hak_heap_t* h, unsigned cls);      /* forgets the list: its pages left the class */
void  hak__bin_reset(hak_heap_t* h);

/* the Mid Pool's policy for its lists (pool.c) */
uint32_t hak__pool_base(unsigned cls);
uint32_t hak__pool_most(unsigned cls);
uint32_t hak__pool_refill_most(unsigned cls);
void*    hak__pool_borrow(hak_heap_t* h, unsigned cls, size_t req);

extern const uint32_t hak__large_size[HAK_LARGE_CLASSES];
//! The Large class of n (n <= 64 KiB: class 0); four classes a doubling.
//! Inline: the malloc fast path computes it on a Large bin hit.
HAK_INLINE unsigned hak__large_class(size_t n) {
  if (n <= 65536) return 0;
  unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)(n - 1));  /* 2^k < n <= 2^(k+1) */
  unsigned sub = (unsigned)((n - 1 - ((size_t)1 << k)) >> (k - 2));          /* 0..3 */
  unsigned c = (k - 16) * 4 + sub + 1;
  return c < HAK_LARGE_CLASSES ? c : HAK_LARGE_CLASSES - 1;
}
void*  hak__l25_alloc(hak_heap_t* h, unsigned cls, size_t req, int borrow);
void*  hak__l25_alloc_aligned(hak_heap_t* h, unsigned cls, size_t req, size_t align);   /* align > 64 */
void   hak__l25_free(hak_heap_t* h, void* p);
size_t hak__l25_usable(const void* p);        /* 0 if p is not a live Large block */
int    hak__l25_block_class(const void* p);   /* its Large class, or -1 (messages, link checks) */
int    hak__l25_owns(const void* p);
size_t hak__l25_trim(unsigned keep);
void   hak__l25_flush(hak_heap_t* h);
void   hak__l25_fork_child(void);
uint64_t hak__l25_cached_blocks(unsigned cls);

void*  hak__huge_alloc(size_t size, size_t align, int zero);
void   hak__huge_free(void* p);
void*  hak__huge_realloc(void* p, size_t size);
size_t hak__huge_usable(const void* p);
int    hak__huge_owns(const void* p);
size_t hak__huge_trim(int all);
void   hak__huge_lock(void);
void   hak__huge_unlock(void);
void   hak__huge_fork_child(void);
size_t hak__huge_live_bytes(void);                   /* runs of live huge blocks */
void   hak__maintenance_tick(void);
void   hak__l25_decay(uint64_t now_ns);
void   hak__maintenance_run(uint64_t now_ns);
/* Decay windows with no pop after which a class's CAP no longer holds: a
 * program that used every class and then went quiet kept CAP pages of each
 * (16 + 4 a small class, 4 MiB a Large one: 107 MB with nothing live) */
#define HAK_IDLE_DEEP_WINDOWS 4
//! The pages (small) or blocks (Large) a class keeps at an upkeep tick:
//! CAP, or none once it has gone HAK_IDLE_DEEP_WINDOWS windows without a
//! pop.  *since is the start of its idle time, 0 while it is in use.
HAK_INLINE uint32_t hak__idle_keep(_Atomic uint64_t* since, int popped, uint64_t now, uint32_t cap) {
  if (popped) { atomic_store_explicit(since, 0, memory_order_relaxed); return cap; }
  uint64_t s = atomic_load_explicit(since, memory_order_relaxed);
  if (!s) atomic_store_explicit(since, s = now, memory_order_relaxed);
  return now - s >= (uint64_t)HAK_IDLE_DEEP_WINDOWS * (uint64_t)hak__opt.decay_ms * 1000000ull ? 0 : cap;
}
void   hak__bg_kick_slow(void);
extern __thread unsigned hak__bg_hold;   /* bg.c: a shared lock is held, no thread start */
void   hak__bg_fork_child(void);
extern _Atomic int hak__bg_state;
/* starts the background thread on first need; one load when it runs */
HAK_INLINE void hak__bg_kick(void) {
  if (hak_unlikely(!atomic_load_explicit(&hak__bg_state, memory_order_relaxed))) hak__bg_kick_slow();
}
void   hak__l25_init(void);
void   hak__l25_lock(void);
void   hak__l25_unlock(void);

/* ---- dispatch and errors -------------------------------------------------- */
void*  hak__malloc_generic(size_t n);
void   hak__free_generic(void* p);
void*  hak__alloc_aligned(size_t align, size_t n);
void*  hak__calloc(size_t n, size_t size);        /* the bodies of hak_calloc, hak_realloc, */
void*  hak__realloc(void* p, size_t n);           /* hak_memalign and hak_usable_size (aliases) */
void*  hak__memalign(size_t align, size_t n);
size_t hak__usable_size(const void* p);
void*  hak__alloc_with(hak_heap_t* h, size_t n);               /* layers only, no checks */
void*  hak__alloc_aligned_with(hak_heap_t* h, size_t align, size_t n);
size_t hak__block_size(const void* p);                         /* small or Large, checked */
void   hak__free_with(hak_heap_t* h, void* p);                 /* small or Large, after checks */
/* HAKMEM_SECURE (secure.c): every call takes the generic path */
void*  hak__secure_alloc(hak_heap_t* h, size_t n, size_t align);
void   hak__secure_free(hak_heap_t* h, void* p);
size_t hak__secure_usable(const void* p);
void   hak__secure_flush(hak_heap_t* h);
__attribute__((noreturn, cold)) void hak__misuse(const char* what, const void* p, int cls);
__attribute__((noreturn, cold)) void hak__misuse_at(const char* what, const void* p, int cls);
__attribute__((noreturn, cold)) void hak__bad_block(const void* p);  /* mark missing at reuse */
void* hak__bad_block_ret(const void* p);   /* the same, as a tail call: no frame on the fast path */
HAK_INLINE void hak__mark_free(void* p) { ((uintptr_t*)p)[1] = hak__mark((uintptr_t)p); }
//! A block handed out carries no free mark (a stale one, from its last
//! free or a warm page's old class, would read as a double free).
HAK_INLINE void hak__mark_clear(void* p) { ((uintptr_t*)p)[1] = 0; }
HAK_INLINE void hak__take(void** p) {      /* a cached block is handed out */
  if (hak_unlikely(!hak__marked(p))) hak__bad_block(p);
  hak__mark_clear(p);
}
void   hak__init(void);
extern _Atomic int hak__init_state;   /* 0 none, 1 running, 2 ready */
//! Runs hak__init unless it has run: one load once it has.
HAK_INLINE void hak__init_once(void) {
  if (hak_unlikely(atomic_load_explicit(&hak__init_state, memory_order_acquire) != 2)) hak__init();
}
size_t hak__trim_all(void);

#pragma GCC visibility pop
#endif
