/* Huge (above 1 MiB, or any size with a large alignment): each block is a
 * run of address space aligned to 4 MiB (so the segment map finds the
 * header at its start), its size a multiple of 2 MiB, and BigCache keeps
 * freed runs resident for reuse.  Page faults and munmap are the expensive
 * part here, far more than the memset of reused pages, so a request is
 * served from cached pages whenever there are enough of them, wherever
 * they lie: a chunk-aligned window of a cached run in place, or cached
 * runs moved with mremap (page tables move: no copy, no fault) onto a new
 * reservation.  A run made that way is several kernel mappings ("pieces"):
 * mremap moves one mapping at a time, so every run keeps its piece list.
 * Freed runs merge with cached neighbours.  Cached runs idle for
 * HAKMEM_HUGE_DECAY_MS go back to the OS, and so does what exceeds the
 * budget (see bc_budget); the check runs on huge calls, the background
 * thread and other slow paths, never once per free of a small block. */
#define _GNU_SOURCE
#include "internal.h"
#include <errno.h>
#include <string.h>
#include <stdio.h>

#define HUGE_MAGIC  0x48414b48u   /* "HAKH" */
#define HUGE_HDR    ((size_t)4096)
#define HUGE_GRAIN  ((size_t)2 << 20)   /* a PMD: runs split and move without breaking THP */
#define HUGE_PIECES 32
#define BC_SLOTS    64

/* A run's kernel mappings: piece i is [at[i], at[i+1]) (the last one ends
 * at the run's size); at[0] = 0.  Each mapping we create gets a new id:
 * two neighbouring pieces with one id are still one mapping (a split in
 * place never divides it), so merging them loses nothing. */
typedef struct huge_pieces { uint32_t n; uint64_t id[HUGE_PIECES]; size_t at[HUGE_PIECES]; } huge_pieces_t;

typedef struct huge_hdr {
  uint32_t magic;
  uint32_t live;
  void*    user;
  void*    base;
  size_t   map_size;
  size_t   usable;
  size_t   align;
  huge_pieces_t pc;
} huge_hdr_t;

/* reg: the segment map still points at the dead header at base (a freed
 * block's own run), so a double free is named as one. */
typedef struct bc_entry { char* base; size_t size; uint64_t t_ns; int reg; huge_pieces_t pc; } bc_entry_t;

/* a range to unmap once bc_lock is dropped */
typedef struct bc_victim { char* base; size_t size; } bc_victim_t;

/* how to build a block: in place at `inplace`, or by moving ranges (each
 * within one mapping) onto a reservation, in order, then fresh pages */
typedef struct huge_plan {
  char*  inplace;
  huge_pieces_t pc;               /* in place: the pieces taken */
  uint32_t n;
  char*  src[HUGE_PIECES];
  size_t len[HUGE_PIECES];
  size_t moved;
} huge_plan_t;

static pthread_mutex_t bc_lock = PTHREAD_MUTEX_INITIALIZER;
static bc_entry_t bc[BC_SLOTS];
static int bc_n;
static _Atomic size_t bc_bytes;
static _Atomic uint64_t huge_ids;   /* the last mapping id handed out */
static _Atomic size_t huge_live;    /* bytes of live blocks' runs */
static _Atomic size_t huge_peak, huge_peak_prev;   /* their peak in this decay window, the last */
static _Atomic uint64_t huge_peak_ns;                /* when this window began */

//! Notes the live bytes after an allocation, for the budget.
static void huge_note_peak(size_t live) {
  if (live > atomic_load_explicit(&huge_peak, memory_order_relaxed)) {
    atomic_store_explicit(&huge_peak, live, memory_order_relaxed);
  }
}

//! How much BigCache may hold: HAKMEM_HUGE_CACHE_MB, or, if more, what the
//! program had live at its peak within the last one or two decay times and
//! has freed since.  A program churning huge blocks would otherwise unmap
//! pages and fault them back all the time (the costly part), while RSS
//! stays within that recent peak; runs left idle still go after the decay
//! time, and an older peak is forgotten.
static size_t bc_budget(uint64_t now) {
  if (hak__opt.keep) return SIZE_MAX / 2;      /* HAKMEM_KEEP: only a full slot table evicts */
  size_t fixed = (size_t)hak__opt.huge_cache_mb << 20;
  size_t live = atomic_load_explicit(&huge_live, memory_order_relaxed);
  size_t peak = atomic_load_explicit(&huge_peak, memory_order_relaxed);
  if ((int64_t)(now - atomic_load_explicit(&huge_peak_ns, memory_order_relaxed)) > (int64_t)hak__opt.huge_decay_ms * 1000000ll) {
    atomic_store_explicit(&huge_peak_prev, peak, memory_order_relaxed);   /* a new window */
    atomic_store_explicit(&huge_peak, peak = live, memory_order_relaxed);
    atomic_store_explicit(&huge_peak_ns, now, memory_order_relaxed);
  }
  size_t prev = atomic_load_explicit(&huge_peak_prev, memory_order_relaxed);
  if (prev > peak) peak = prev;
  size_t churn = peak > live ? peak - live : 0;
  return churn > fixed ? churn : fixed;
}

//! Fork: the prepare handler holds BigCache still; the child re-arms its lock.
void hak__huge_lock(void) { pthread_mutex_lock(&bc_lock); }
void hak__huge_unlock(void) { pthread_mutex_unlock(&bc_lock); }
void hak__huge_fork_child(void) { pthread_mutex_init(&bc_lock, NULL); }

//! Rounds up to a multiple of the grain (0 if it overflows).  A finer
//! grain measured worse: more, smaller pieces to move.
static size_t huge_round(size_t n) {
  size_t r = (n + HUGE_GRAIN - 1) & ~(HUGE_GRAIN - 1);
  return r < n ? 0 : r;
}

//! A new mapping id.
static uint64_t huge_new_id(void) { return atomic_fetch_add_explicit(&huge_ids, 1, memory_order_relaxed) + 1; }

//! Adds a piece at offset `at` (one more mapping, or the same as the last).
static void pieces_add(huge_pieces_t* p, size_t at, uint64_t id) {
  if (p->n && p->id[p->n - 1] == id) return;
  p->id[p->n] = id;
  p->at[p->n++] = at;
}

//! One piece: a run that is a single mapping.
static huge_pieces_t pieces_one(uint64_t id) {
  huge_pieces_t p = {0, {0}, {0}};
  pieces_add(&p, 0, id);
  return p;
}

//! The pieces of [from, to) of a run with pieces p, rebased to from.
static void pieces_slice(const huge_pieces_t* p, size_t from, size_t to, huge_pieces_t* out) {
  huge_pieces_t r = {0, {0}, {0}};
  for (uint32_t i = 0; i < p->n; i++) {
    size_t s = p->at[i], e = i + 1 < p->n ? p->at[i + 1] : SIZE_MAX;
    if (e > from && s < to) pieces_add(&r, s > from ? s - from : 0, p->id[i]);
  }
  *out = r;
}

//! Appends b (the run right after a, at offset `at`) to a; 0 if too many pieces.
static int pieces_append(huge_pieces_t* a, const huge_pieces_t* b, size_t at) {
  uint32_t same = a->n && b->n && a->id[a->n - 1] == b->id[0];
  if (a->n + b->n - same > HUGE_PIECES) return 0;
  for (uint32_t i = 0; i < b->n; i++) pieces_add(a, at + b->at[i], b->id[i]);
  return 1;
}

//! The header of a huge block, or NULL if p is not the start of one.
static huge_hdr_t* huge_hdr_of(const void* p) {
  uintptr_t a = (uintptr_t)p, chunk = a & ~HAK_SEG_MASK;
  int kind = hak__seg_kind(a);
  huge_hdr_t* hd;
  if (kind == HAK_SEG_HUGE) hd = (huge_hdr_t*)chunk;
  else if (kind == HAK_SEG_HUGE_FAR) hd = (huge_hdr_t*)(chunk - HUGE_HDR);
  else return NULL;
  return hd->magic == HUGE_MAGIC && hd->user == p ? hd : NULL;
}

//! Names a bad huge pointer precisely, then aborts.
__attribute__((noreturn)) static void huge_bad(const void* p, const char* op) {
  uintptr_t a = (uintptr_t)p, chunk = a & ~HAK_SEG_MASK;
  int kind = hak__seg_kind(a);
  huge_hdr_t* hd = (huge_hdr_t*)(kind == HAK_SEG_HUGE ? chunk : chunk - HUGE_HDR);
  char what[64];
  int interior = hd->magic == HUGE_MAGIC && a > (uintptr_t)hd->user && a < (uintptr_t)hd->user + hd->usable;
  snprintf(what, sizeof what, "%s %s", interior ? "interior pointer" : "invalid",
           strcmp(op, "pointer") == 0 ? (interior ? "" : "pointer") : op);
  size_t k = strlen(what);
  if (k && what[k - 1] == ' ') what[k - 1] = 0;
  hak__misuse(what, p, interior ? HAK_STAT_HUGE : -1);
}

//! Points the segment map at a block's header (on = 0: at nothing).
static void huge_register(huge_hdr_t* hd, int on) {
  uintptr_t a = (uintptr_t)hd->user;
  int kind = (uintptr_t)hd == (a & ~HAK_SEG_MASK) ? HAK_SEG_HUGE : HAK_SEG_HUGE_FAR;
  __atomic_store_n(&hak__segmap[a >> HAK_SEG_SHIFT], (uint8_t)(on ? kind : HAK_SEG_NONE), __ATOMIC_RELEASE);
}

//! Forgets the dead header at a cached run's base (it moves or goes).
static void bc_unreg(bc_entry_t* e) {
  if (e->reg) __atomic_store_n(&hak__segmap[(uintptr_t)e->base >> HAK_SEG_SHIFT], HAK_SEG_NONE, __ATOMIC_RELEASE);
  e->reg = 0;
}

//! Removes entry i whole (bc_lock held).
static void bc_remove(int i) {
  atomic_fetch_sub(&bc_bytes, bc[i].size);
  bc[i] = bc[--bc_n];
}

//! Cuts the first `len` bytes off entry i (bc_lock held): the rest stays
//! cached, and keeps its idle time.
static void bc_cut_front(int i, size_t len) {
  bc_entry_t* e = &bc[i];
  if (len >= e->size) { bc_remove(i); return; }
  pieces_slice(&e->pc, len, e->size, &e->pc);
  e->base += len;
  e->size -= len;
  e->reg = 0;
  atomic_fetch_sub(&bc_bytes, len);
}

//! Evicts expired entries (all = every one), then the oldest until `need`
//! more bytes fit the budget and a slot is free (bc_lock held).  Budget
//! evictions take only the excess, from an entry's tail.  Victims go to
//! out[] (at most BC_SLOTS + 1); the caller unmaps them.
static int bc_evict_locked(size_t need, uint64_t now, int all, bc_victim_t* out) {
  size_t budget = bc_budget(now);
  uint64_t decay = (uint64_t)hak__opt.huge_decay_ms * 1000000ull;
  int k = 0;
  for (int i = 0; i < bc_n;) {
    /* signed: an entry stamped after now was read (another thread's) is young */
    if (all || (!hak__opt.keep && (int64_t)(now - bc[i].t_ns) > (int64_t)decay)) {
      bc_unreg(&bc[i]);
      out[k++] = (bc_victim_t){bc[i].base, bc[i].size};
      bc_remove(i);
    } else i++;
  }
  while (bc_n && (atomic_load(&bc_bytes) + need > budget || (need && bc_n == BC_SLOTS))) {
    int old = 0;
    for (int i = 1; i < bc_n; i++) if (bc[i].t_ns < bc[old].t_ns) old = i;
    bc_entry_t* e = &bc[old];
    size_t over = huge_round(atomic_load(&bc_bytes) + need - budget);
    if (bc_n < BC_SLOTS && over && over < e->size) {
      out[k++] = (bc_victim_t){e->base + e->size - over, over};
      pieces_slice(&e->pc, 0, e->size - over, &e->pc);
      e->size -= over;
      atomic_fetch_sub(&bc_bytes, over);
      break;
    }
    bc_unreg(e);
    out[k++] = (bc_victim_t){e->base, e->size};
    bc_remove(old);
  }
  return k;
}

//! Unmaps evicted ranges; returns their bytes.
static size_t bc_unmap_all(const bc_victim_t* v, int k) {
  size_t bytes = 0;
  for (int i = 0; i < k; i++) {
    hak__os_unmap(v[i].base, v[i].size);
    hak__layer_mapped_add(HAK_LAYER_HUGE, -(int64_t)v[i].size);
    bytes += v[i].size;
  }
  return bytes;
}

//! The smallest entry of at least n bytes, or -1 (bc_lock held).
static int bc_best_fit(size_t n) {
  int best = -1;
  for (int i = 0; i < bc_n; i++)
    if (bc[i].size >= n && (best < 0 || bc[i].size < bc[best].size)) best = i;
  return best;
}

//! The smallest entry with room for a block of n bytes in place: from a
//! chunk start inside it (*at: its offset) to n bytes on; -1 if none.  A
//! window past the entry's start leaves its front cached apart, so needs
//! a free slot (bc_lock held).
static int bc_best_window(size_t n, size_t* at) {
  int best = -1;
  for (int i = 0; i < bc_n; i++) {
    uintptr_t b = (uintptr_t)bc[i].base;
    size_t off = ((b + HAK_SEG_MASK) & ~HAK_SEG_MASK) - b;
    if (off + n <= bc[i].size && (off == 0 || bc_n < BC_SLOTS) && (best < 0 || bc[i].size < bc[best].size)) {
      best = i;
      *at = off;
    }
  }
  return best;
}

//! Adds the first len bytes of entry i to the plan's moves and cuts them
//! off the entry; 0 if the plan has no room for its pieces (bc_lock held).
static int plan_move(huge_plan_t* pl, int i, size_t len) {
  bc_entry_t* e = &bc[i];
  huge_pieces_t front;
  pieces_slice(&e->pc, 0, len, &front);
  if (pl->n + front.n >= HUGE_PIECES) return 0;   /* one left for the fresh rest */
  for (uint32_t j = 0; j < front.n; j++) {
    size_t end = j + 1 < front.n ? front.at[j + 1] : len;
    pl->src[pl->n] = e->base + front.at[j];
    pl->len[pl->n++] = end - front.at[j];
  }
  pl->moved += len;
  bc_unreg(e);
  bc_cut_front(i, len);
  return 1;
}

//! Plans a run of `need` bytes from cached pages: a chunk-aligned window
//! of the best-fitting run in place (no system call), else moves:
//! the best fit's front, or when no run is large enough the largest runs
//! whole, then the best fit for the rest.  Returns whether any cached
//! page is used.
static int bc_plan(size_t need, huge_plan_t* pl) {
  memset(pl, 0, sizeof *pl);
  if (!atomic_load_explicit(&bc_bytes, memory_order_relaxed)) return 0;
  int can_move = hak__os_can_move();
  pthread_mutex_lock(&bc_lock);
  size_t at = 0;
  int i = bc_best_window(need, &at);
  if (i >= 0) {
    bc_entry_t* e = &bc[i];
    pl->inplace = e->base + at;
    pieces_slice(&e->pc, at, at + need, &pl->pc);
    pl->moved = need;
    if (at) {                       /* the front stays; the rest gets a slot */
      bc_entry_t rest = {e->base + at, e->size - at, e->t_ns, 0, {0, {0}, {0}}};
      pieces_slice(&e->pc, at, e->size, &rest.pc);
      pieces_slice(&e->pc, 0, at, &e->pc);
      e->size = at;
      bc[bc_n++] = rest;
      i = bc_n - 1;
    }
    bc_cut_front(i, need);          /* the new header replaces any dead one */
  } else if (can_move) {
    while (pl->moved < need && bc_n) {
      size_t rest = need - pl->moved;
      i = bc_best_fit(rest);
      if (i < 0)
        for (int j = i = 0; j < bc_n; j++) if (bc[j].size > bc[i].size) i = j;
      if (!plan_move(pl, i, bc[i].size < rest ? bc[i].size : rest)) break;
    }
  }
  pthread_mutex_unlock(&bc_lock);
  return pl->moved > 0;
}

//! Builds a run of need bytes by the plan: moves the planned ranges onto a
//! new chunk-aligned reservation; the rest of it is fresh.  *dirty gets
//! how many leading bytes may hold old contents; pc the run's pieces.
static char* huge_build(const huge_plan_t* pl, size_t need, size_t* dirty, huge_pieces_t* pc) {
  char* dst = hak__os_map_aligned(need, HAK_SEG_SIZE);
  int ok = dst != NULL;
  size_t off = 0, kept = 0;
  pc->n = 0;
  *dirty = 0;
  for (uint32_t i = 0; i < pl->n; i++) {
    size_t len = pl->len[i];
    if (ok && hak__os_remap(pl->src[i], len, len, dst + off)) {
      atomic_fetch_sub(&hak__os_mapped, (int64_t)len);   /* it replaced reserved bytes */
      kept += len;
      *dirty = off + len;
    } else {                                   /* the pages go; fresh ones stand in */
      hak__os_unmap(pl->src[i], len);
      hak__layer_mapped_add(HAK_LAYER_HUGE, -(int64_t)len);
      if (ok && hak__os_map_fixed(dst + off, len) != 0) ok = 0;
    }
    pieces_add(pc, off, huge_new_id());   /* moved or stood in for: a mapping of its own */
    off += len;
  }
  if (!ok) {                /* out of address space: the planned pages are gone; start afresh */
    if (dst) {
      hak__os_unmap(dst, need);
      hak__layer_mapped_add(HAK_LAYER_HUGE, -(int64_t)kept);
    }
    *dirty = 0;
    *pc = pieces_one(huge_new_id());
    dst = hak__map_or_reclaim(need, HAK_SEG_SIZE);
    if (!dst) return NULL;
    if (hak__opt.thp) hak__os_thp(dst, need, 1);
    hak__layer_mapped_add(HAK_LAYER_HUGE, (int64_t)need);
    return dst;
  }
  if (off < need) {
    if (hak__opt.thp) hak__os_thp(dst + off, need - off, 1);
    pieces_add(pc, off, huge_new_id());
  }
  hak__layer_mapped_add(HAK_LAYER_HUGE, (int64_t)(need - kept));
  return dst;
}

//! Bytes of the runs of live huge blocks.
size_t hak__huge_live_bytes(void) { return atomic_load_explicit(&huge_live, memory_order_relaxed); }

/* calloc of a reused run clears its old contents with memset up to this
 * many bytes (the pages are resident: no fault).  Beyond it the whole-page
 * part is dropped instead (MADV_DONTNEED: it reads zero, and only the pages
 * the program touches come back).  A memset of a 2 GiB run, of which the
 * last user had touched one page, made all 2 GiB resident; glibc serves
 * such sizes from fresh mappings, which cost faults on use the same way. */
#define HUGE_CLEAR_MAX ((size_t)32 << 20)

//! Clears n bytes at p of a reused run for calloc.
static void huge_clear(char* p, size_t n) {
  if (n > HUGE_CLEAR_MAX) {
    char* lo = (char*)(((uintptr_t)p + HUGE_HDR - 1) & ~(HUGE_HDR - 1));
    char* hi = (char*)(((uintptr_t)p + n) & ~(HUGE_HDR - 1));
    if (hak__os_decommit(lo, (size_t)(hi - lo)) == 0) {
      memset(p, 0, (size_t)(lo - p));
      memset(hi, 0, (size_t)(p + n - hi));
      return;
    }
  }
  memset(p, 0, n);
}

//! A huge block: from cached pages when there are any, else fresh;
//! zero = calloc (only bytes that may hold old contents are cleared).
void* hak__huge_alloc(size_t size, size_t align, int zero) {
  if (size > (size_t)PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
  if (size == 0) size = 1;    /* a block of 0 at off would lie past its mapping, in a neighbour's chunk */
  int far = align > HAK_SEG_SIZE / 2;
  size_t off = align > HUGE_HDR ? align : HUGE_HDR;
  size_t guard = hak__opt.secure ? HUGE_HDR : 0;   /* HAKMEM_SECURE: a guard page after the block */
  int cache = !far && !guard;
  size_t need = ((off + size + HUGE_HDR - 1) & ~(HUGE_HDR - 1)) + guard;
  if (need < size || need > (size_t)PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
  if (cache && !(need = huge_round(need))) { errno = ENOMEM; return NULL; }
  huge_plan_t pl;
  huge_pieces_t pc = {0, {0}, {0}};
  size_t dirty = 0;                               /* leading bytes with old contents */
  char* base = NULL;
  int reused = cache && bc_plan(need, &pl);
  if (reused && pl.inplace) {
    base = pl.inplace;
    pc = pl.pc;
    dirty = need;
  } else if (reused) {
    if (!(base = huge_build(&pl, need, &dirty, &pc))) { errno = ENOMEM; return NULL; }
  } else {
    base = hak__map_or_reclaim(need, far ? align : HAK_SEG_SIZE);
    if (!base) { errno = ENOMEM; return NULL; }
    if (guard) hak__os_guard(base + need - guard, guard);
    if (hak__opt.thp) hak__os_thp(base, need, 1);
    hak__layer_mapped_add(HAK_LAYER_HUGE, (int64_t)need);
    pc = pieces_one(huge_new_id());
  }
  char* user = base + off;
  huge_hdr_t* hd = far ? (huge_hdr_t*)(user - HUGE_HDR) : (huge_hdr_t*)base;
  if (far) ((huge_hdr_t*)base)->magic = 0;
  hd->magic = HUGE_MAGIC;
  hd->live = 1;
  hd->user = user;
  hd->base = base;
  hd->map_size = need;
  hd->usable = need - off - guard;
  hd->align = off;
  hd->pc = pc;
  huge_register(hd, 1);
  huge_note_peak(atomic_fetch_add_explicit(&huge_live, need, memory_order_relaxed) + need);
  if (zero && dirty > off) huge_clear(user, dirty - off < size ? dirty - off : size);
  hak_heap_t* h = hak__heap_current();
  if (h) {
    HAK_CSTAT(h, HAK_STAT_HUGE, alloc, 1);
    HAK_CSTAT(h, HAK_STAT_HUGE, req_bytes, size);
    if (!reused) HAK_CSTAT(h, HAK_STAT_HUGE, miss, 1); else HAK_TSTAT(h, huge_cache_hit, 1);
  }
  return user;
}

//! Caches a run (bc_lock held; reg: a dead header at its base), merged
//! with cached runs next to it in memory when the pieces fit (a split or
//! an earlier merge left them there): larger runs serve more in place.
static void bc_insert_locked(char* base, size_t size, const huge_pieces_t* pc, int reg, uint64_t now) {
  bc_entry_t e = {base, size, now, reg, *pc};
  for (int i = 0; i < bc_n; i++)
    if (bc[i].base == e.base + e.size && pieces_append(&e.pc, &bc[i].pc, e.size)) {
      bc_unreg(&bc[i]);
      e.size += bc[i].size;
      bc_remove(i);
      break;
    }
  for (int i = 0; i < bc_n; i++)
    if (bc[i].base + bc[i].size == e.base) {
      huge_pieces_t pc = bc[i].pc;
      if (!pieces_append(&pc, &e.pc, bc[i].size)) break;
      bc_unreg(&e);
      e = (bc_entry_t){bc[i].base, bc[i].size + e.size, now, bc[i].reg, pc};
      bc_remove(i);
      break;
    }
  bc[bc_n++] = e;
  atomic_fetch_add(&bc_bytes, e.size);
}

//! Caches a run no block uses any more; 0 if it is over the budget (the
//! caller unmaps it).  Evicts what the budget requires.
static int huge_cache_run(char* base, size_t size, const huge_pieces_t* pc, int reg) {
  uint64_t now = hak__os_now_ns();
  if (size > bc_budget(now)) return 0;
  bc_victim_t victims[BC_SLOTS + 1];
  pthread_mutex_lock(&bc_lock);
  int k = bc_evict_locked(size, now, 0, victims);
  bc_insert_locked(base, size, pc, reg, now);
  pthread_mutex_unlock(&bc_lock);
  hak__bg_kick();
  bc_unmap_all(victims, k);
  return 1;
}

//! Takes the first len bytes of the cached run that starts at `at`, if
//! there is one that long and the pieces fit after pc (which then holds
//! them, from offset `off`); returns whether it did.
static int bc_take_after(char* at, size_t len, huge_pieces_t* pc, size_t off) {
  if (!atomic_load_explicit(&bc_bytes, memory_order_relaxed)) return 0;
  int ok = 0;
  pthread_mutex_lock(&bc_lock);
  for (int i = 0; i < bc_n; i++)
    if (bc[i].base == at) {
      huge_pieces_t front;
      pieces_slice(&bc[i].pc, 0, len, &front);
      if (bc[i].size >= len && pieces_append(pc, &front, off)) {
        bc_unreg(&bc[i]);
        bc_cut_front(i, len);
        ok = 1;
      }
      break;
    }
  pthread_mutex_unlock(&bc_lock);
  return ok;
}

//! Caches the block's run (or unmaps it: far-aligned, secure, or over budget).
void hak__huge_free(void* p) {
  huge_hdr_t* hd = huge_hdr_of(p);
  if (!hd) huge_bad(p, "free");
  if (!hd->live) hak__misuse("double free", p, HAK_STAT_HUGE);
  hd->live = 0;
  hak_heap_t* h = hak__heap_current();
  if (h) HAK_CSTAT(h, HAK_STAT_HUGE, free, 1);
  char* base = hd->base;
  size_t map_size = hd->map_size;
  atomic_fetch_sub_explicit(&huge_live, map_size, memory_order_relaxed);
  int far = (void*)hd != (void*)base;
  if (far || hak__opt.secure || !huge_cache_run(base, map_size, &hd->pc, 1)) {
    huge_register(hd, 0);
    hak__os_unmap(base, map_size);
    hak__layer_mapped_add(HAK_LAYER_HUGE, -(int64_t)map_size);
  }
}

//! Usable bytes of a live huge block.
size_t hak__huge_usable(const void* p) {
  huge_hdr_t* hd = huge_hdr_of(p);
  if (!hd) huge_bad(p, "pointer");
  if (!hd->live) hak__misuse("use after free", p, HAK_STAT_HUGE);
  return hd->usable;
}

//! The mapping that holds huge block p (valgrind mode hides all of it but the block).
void hak__huge_span(const void* p, void** base, size_t* len) {
  huge_hdr_t* hd = huge_hdr_of(p);
  if (!hd) huge_bad(p, "pointer");
  *base = hd->base;
  *len = hd->map_size;
}

//! Whether p is a live huge block.
int hak__huge_owns(const void* p) {
  huge_hdr_t* hd = huge_hdr_of(p);
  return hd && hd->live;
}

//! Moves a block's pieces, in order, onto a new reservation of need bytes
//! (the growth is one more piece); a piece that cannot move is copied.
//! Returns the new base, or NULL (nothing changed).
static char* huge_move(huge_hdr_t* hd, size_t need) {
  huge_pieces_t pc = hd->pc, moved = {0, {0}, {0}};
  if (pc.n >= HUGE_PIECES) return NULL;           /* no room for the growth: caller copies */
  char* dst = hak__map_or_reclaim(need, HAK_SEG_SIZE);   /* old + need at once: trim caches first */
  if (!dst) return NULL;
  if (hak__opt.thp) hak__os_thp(dst, need, 1);
  char* base = hd->base;
  size_t old = hd->map_size;
  huge_register(hd, 0);
  for (uint32_t i = 0; i < pc.n; i++) {
    size_t s = pc.at[i], len = (i + 1 < pc.n ? pc.at[i + 1] : old) - s;
    if (hak__os_remap(base + s, len, len, dst + s)) {
      atomic_fetch_sub(&hak__os_mapped, (int64_t)len);   /* it replaced reserved bytes */
    } else if (i == 0) {                      /* nothing moved yet: the caller copies */
      huge_register(hd, 1);
      hak__os_unmap(dst, need);
      errno = EAGAIN;
      return NULL;
    } else {                                  /* copy that piece instead */
      if (hak__os_map_fixed(dst + s, len) != 0) hak__misuse("mremap failed midway on", hd->user, HAK_STAT_HUGE);
      memcpy(dst + s, base + s, len);
      hak__os_unmap(base + s, len);
    }
    pieces_add(&moved, s, huge_new_id());
  }
  pieces_add(&moved, old, huge_new_id());        /* the growth: the rest of the reservation */
  hd = (huge_hdr_t*)dst;
  hd->pc = moved;
  hak__layer_mapped_add(HAK_LAYER_HUGE, (int64_t)(need - old));
  return dst;
}

//! Grows or shrinks in place, or moves the pages with mremap: no copy.
void* hak__huge_realloc(void* p, size_t size) {
  huge_hdr_t* hd = huge_hdr_of(p);
  if (!hd) huge_bad(p, "realloc");
  if (!hd->live) hak__misuse("realloc after free", p, HAK_STAT_HUGE);
  if ((void*)hd != hd->base) return NULL;       /* far-aligned blocks: caller copies */
  size_t off = hd->align;
  size_t need = huge_round((off + size + HUGE_HDR - 1) & ~(HUGE_HDR - 1));
  if (!need || size > (size_t)PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
  size_t old = hd->map_size;
  if (need == old) return p;
  char* base = hd->base;
  if (need < old) {                             /* the tail is cached like a freed run */
    huge_pieces_t tail;
    pieces_slice(&hd->pc, need, old, &tail);
    pieces_slice(&hd->pc, 0, need, &hd->pc);
    if (!huge_cache_run(base + need, old - need, &tail, 0)) {
      hak__os_unmap(base + need, old - need);
      hak__layer_mapped_add(HAK_LAYER_HUGE, -(int64_t)(old - need));
    }
  } else if (bc_take_after(base + old, need - old, &hd->pc, old)) {
    /* grew over the cached run that follows it: no system call */
  } else {
    size_t last = hd->pc.at[hd->pc.n - 1];      /* only the last piece can grow in place */
    if (hak__os_remap_inplace(base + last, old - last, need - last) == 0) {
      hak__layer_mapped_add(HAK_LAYER_HUGE, (int64_t)(need - old));
    } else {
      char* q = huge_move(hd, need);
      if (!q) return NULL;
      hd = (huge_hdr_t*)q;
      hd->base = q;
      hd->user = q + off;
      hd->map_size = need;
      hd->usable = need - off;
      huge_register(hd, 1);
      atomic_fetch_add_explicit(&huge_live, need - old, memory_order_relaxed);
      hak_heap_t* h = hak__heap_current();
      if (h) HAK_TSTAT(h, huge_remap, 1);
      return hd->user;
    }
  }
  hd->map_size = need;
  hd->usable = need - off;
  atomic_fetch_add_explicit(&huge_live, need - old, memory_order_relaxed);   /* wraps for a shrink */
  return p;
}

//! Unmaps expired cached runs (all = every one); returns bytes.
size_t hak__huge_trim(int all) {
  if (!atomic_load_explicit(&bc_bytes, memory_order_relaxed)) return 0;
  bc_victim_t victims[BC_SLOTS + 1];
  pthread_mutex_lock(&bc_lock);
  int k = bc_evict_locked(0, hak__os_now_ns(), all, victims);
  pthread_mutex_unlock(&bc_lock);
  return bc_unmap_all(victims, k);
}
