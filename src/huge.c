/* Huge (above 1 MiB, or any size with a large alignment): one mapping per
 * block, 4 MiB aligned so the segment map finds the header, and BigCache:
 * freed mappings wait, by size, to be reused without munmap and mmap
 * (page faults and munmap are the expensive part here).  Cached mappings
 * older than HAKMEM_HUGE_DECAY_MS, or beyond HAKMEM_HUGE_CACHE_MB, go back
 * to the OS; the check runs on huge calls and on other slow paths, never
 * once per free of a small block. */
#define _GNU_SOURCE
#include "internal.h"
#include <errno.h>
#include <string.h>
#include <stdio.h>

#define HUGE_MAGIC 0x48414b48u   /* "HAKH" */
#define HUGE_HDR   ((size_t)4096)
#define BC_SLOTS   64

typedef struct huge_hdr {
  uint32_t magic;
  uint32_t live;
  void*    user;
  void*    base;
  size_t   map_size;
  size_t   usable;
  size_t   align;
} huge_hdr_t;

typedef struct bc_entry { void* base; size_t map_size; uint64_t t_ns; } bc_entry_t;

static pthread_mutex_t bc_lock = PTHREAD_MUTEX_INITIALIZER;
static bc_entry_t bc[BC_SLOTS];
static int bc_n;
static _Atomic size_t bc_bytes;

void hak__huge_lock(void) { pthread_mutex_lock(&bc_lock); }
void hak__huge_unlock(void) { pthread_mutex_unlock(&bc_lock); }
void hak__huge_fork_child(void) { pthread_mutex_init(&bc_lock, NULL); }

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

static void huge_register(huge_hdr_t* hd, int on) {
  uintptr_t a = (uintptr_t)hd->user;
  int kind = (uintptr_t)hd == (a & ~HAK_SEG_MASK) ? HAK_SEG_HUGE : HAK_SEG_HUGE_FAR;
  __atomic_store_n(&hak__segmap[a >> HAK_SEG_SHIFT], (uint8_t)(on ? kind : HAK_SEG_NONE), __ATOMIC_RELEASE);
}

//! Unmaps a cached mapping (its header says where the user pointer was).
static void huge_unmap(void* base, size_t map_size) {
  huge_hdr_t* hd = base;   /* cached mappings keep a header at base */
  huge_register(hd, 0);
  hak__os_unmap(base, map_size);
  hak__layer_mapped_add(HAK_LAYER_HUGE, -(int64_t)map_size);
}

//! Evicts expired entries, and the oldest until `need` more bytes fit the
//! budget (bc_lock held).  Victims go to out[]; the caller unmaps them.
static int bc_evict_locked(size_t need, uint64_t now, int all, bc_entry_t* out) {
  size_t budget = (size_t)hak__opt.huge_cache_mb << 20;
  uint64_t decay = (uint64_t)hak__opt.huge_decay_ms * 1000000ull;
  int k = 0;
  for (int i = 0; i < bc_n;) {
    if (all || now - bc[i].t_ns > decay) {
      out[k++] = bc[i];
      atomic_fetch_sub(&bc_bytes, bc[i].map_size);
      bc[i] = bc[--bc_n];
    } else i++;
  }
  while (bc_n && (atomic_load(&bc_bytes) + need > budget || bc_n == BC_SLOTS)) {
    int old = 0;
    for (int i = 1; i < bc_n; i++) if (bc[i].t_ns < bc[old].t_ns) old = i;
    out[k++] = bc[old];
    atomic_fetch_sub(&bc_bytes, bc[old].map_size);
    bc[old] = bc[--bc_n];
  }
  return k;
}

static size_t bc_unmap_all(bc_entry_t* v, int k) {
  size_t bytes = 0;
  for (int i = 0; i < k; i++) { huge_unmap(v[i].base, v[i].map_size); bytes += v[i].map_size; }
  return bytes;
}

//! Takes a cached mapping: with larger=1 the best fit of at least need
//! bytes and not much more (a much larger one would keep its resident
//! tail; splitting it measured slower); with larger=0 the largest one
//! smaller than need, to grow with mremap.
static void* bc_take(size_t need, size_t* map_size, int larger) {
  if (!atomic_load_explicit(&bc_bytes, memory_order_relaxed)) return NULL;
  pthread_mutex_lock(&bc_lock);
  int best = -1;
  for (int i = 0; i < bc_n; i++) {
    size_t m = bc[i].map_size;
    if (larger ? m >= need && m - need <= need / 2 + (2u << 20) && (best < 0 || m < bc[best].map_size)
               : m < need && (best < 0 || m > bc[best].map_size))
      best = i;
  }
  void* base = NULL;
  if (best >= 0) {
    base = bc[best].base;
    *map_size = bc[best].map_size;
    atomic_fetch_sub(&bc_bytes, bc[best].map_size);
    bc[best] = bc[--bc_n];
  }
  pthread_mutex_unlock(&bc_lock);
  return base;
}

//! A new mapping of need bytes that reuses a smaller cached one: its pages
//! move (mremap, no copy, no faults) and only the growth is fresh.  *reused
//! gets how many leading bytes hold old contents.
static void* huge_map_grown(size_t need, size_t* reused) {
  size_t old_size;
  void* old = bc_take(need, &old_size, 0);
  if (!old) return NULL;
  __atomic_store_n(&hak__segmap[(uintptr_t)old >> HAK_SEG_SHIFT], HAK_SEG_NONE, __ATOMIC_RELEASE);
  void* dst = hak__os_map_aligned(need, HAK_SEG_SIZE);
  void* q = dst ? hak__os_remap(old, old_size, need, dst) : NULL;
  if (!q) {
    if (dst) hak__os_unmap(dst, need);
    hak__os_unmap(old, old_size);
    hak__layer_mapped_add(HAK_LAYER_HUGE, -(int64_t)old_size);
    return NULL;
  }
  atomic_fetch_sub(&hak__os_mapped, (int64_t)need);     /* the reservation was replaced */
  hak__layer_mapped_add(HAK_LAYER_HUGE, (int64_t)need - (int64_t)old_size);
  *reused = old_size;
  return q;
}

void* hak__huge_alloc(size_t size, size_t align, int zero) {
  if (size > (size_t)PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
  int far = align > HAK_SEG_SIZE / 2;
  size_t off = align > HUGE_HDR ? align : HUGE_HDR;
  size_t guard = hak__opt.secure ? HUGE_HDR : 0;   /* HAKMEM_SECURE: a guard page after the block */
  size_t need = ((off + size + HUGE_HDR - 1) & ~(HUGE_HDR - 1)) + guard;
  if (need < size || need > (size_t)PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
  size_t map_size = need;
  int cache = !far && !guard;
  void* base = cache ? bc_take(need, &map_size, 1) : NULL;
  size_t dirty = base ? map_size : 0;          /* leading bytes with old contents */
  if (!base && cache && (base = huge_map_grown(need, &dirty))) map_size = need;
  int fresh = base == NULL;
  if (fresh) {
    base = hak__os_map_aligned(need, far ? align : HAK_SEG_SIZE);
    if (!base && hak__trim_all()) base = hak__os_map_aligned(need, far ? align : HAK_SEG_SIZE);
    if (!base) { errno = ENOMEM; return NULL; }
    map_size = need;
    if (guard) hak__os_guard((char*)base + need - guard, guard);
    if (hak__opt.thp) hak__os_thp(base, map_size, 1);
    hak__layer_mapped_add(HAK_LAYER_HUGE, (int64_t)map_size);
  }
  char* user = (char*)base + off;
  huge_hdr_t* hd = far ? (huge_hdr_t*)(user - HUGE_HDR) : (huge_hdr_t*)base;
  if (far) ((huge_hdr_t*)base)->magic = 0;
  hd->magic = HUGE_MAGIC;
  hd->live = 1;
  hd->user = user;
  hd->base = base;
  hd->map_size = map_size;
  hd->usable = map_size - off - guard;
  hd->align = off;
  huge_register(hd, 1);
  if (zero && dirty > off) memset(user, 0, dirty - off < size ? dirty - off : size);
  hak_heap_t* h = hak__heap_current();
  if (h) {
    HAK_CSTAT(h, HAK_STAT_HUGE, alloc, 1);
    HAK_CSTAT(h, HAK_STAT_HUGE, req_bytes, size);
    if (fresh) HAK_CSTAT(h, HAK_STAT_HUGE, miss, 1); else HAK_TSTAT(h, huge_cache_hit, 1);
  }
  return user;
}

void hak__huge_free(void* p) {
  huge_hdr_t* hd = huge_hdr_of(p);
  if (!hd) huge_bad(p, "free");
  if (!hd->live) hak__misuse("double free", p, HAK_STAT_HUGE);
  hd->live = 0;
  hak_heap_t* h = hak__heap_current();
  if (h) HAK_CSTAT(h, HAK_STAT_HUGE, free, 1);
  void* base = hd->base;
  size_t map_size = hd->map_size;
  size_t budget = (size_t)hak__opt.huge_cache_mb << 20;
  int far = (void*)hd != base;
  bc_entry_t victims[BC_SLOTS + 1];
  int k = 0;
  if (!far && map_size <= budget && !hak__opt.secure) {
    uint64_t now = hak__os_now_ns();
    pthread_mutex_lock(&bc_lock);
    k = bc_evict_locked(map_size, now, 0, victims);
    bc[bc_n++] = (bc_entry_t){base, map_size, now};
    atomic_fetch_add(&bc_bytes, map_size);
    pthread_mutex_unlock(&bc_lock);
    hak__bg_kick();
  } else {
    huge_register(hd, 0);
    hak__os_unmap(base, map_size);
    hak__layer_mapped_add(HAK_LAYER_HUGE, -(int64_t)map_size);
  }
  bc_unmap_all(victims, k);
}

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

int hak__huge_owns(const void* p) {
  huge_hdr_t* hd = huge_hdr_of(p);
  return hd && hd->live;
}

//! Grows or shrinks in place, or moves the pages with mremap: no copy.
void* hak__huge_realloc(void* p, size_t size) {
  huge_hdr_t* hd = huge_hdr_of(p);
  if (!hd) huge_bad(p, "realloc");
  if (!hd->live) hak__misuse("realloc after free", p, HAK_STAT_HUGE);
  if ((void*)hd != hd->base) return NULL;       /* far-aligned blocks: caller copies */
  size_t off = hd->align;
  size_t need = (off + size + HUGE_HDR - 1) & ~(HUGE_HDR - 1);
  if (need < size || size > (size_t)PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
  if (need == hd->map_size) return p;
  void* base = hd->base;
  size_t old = hd->map_size;
  if (hak__os_remap_inplace(base, old, need) == 0) {
    hak__layer_mapped_add(HAK_LAYER_HUGE, (int64_t)need - (int64_t)old);
    hd->map_size = need;
    hd->usable = need - off;
    return p;
  }
  if (need < old) return p;                      /* shrink refused: keep the slack */
  void* dst = hak__os_map_aligned(need, HAK_SEG_SIZE);
  if (!dst) return NULL;
  huge_register(hd, 0);
  void* q = hak__os_remap(base, old, need, dst);
  if (!q) { huge_register(hd, 1); hak__os_unmap(dst, need); return NULL; }
  /* the reservation at dst was replaced by the moved pages */
  atomic_fetch_sub(&hak__os_mapped, (int64_t)need);
  hak__layer_mapped_add(HAK_LAYER_HUGE, (int64_t)need - (int64_t)old);
  hd = q;
  hd->base = q;
  hd->user = (char*)q + off;
  hd->map_size = need;
  hd->usable = need - off;
  huge_register(hd, 1);
  hak_heap_t* h = hak__heap_current();
  if (h) HAK_TSTAT(h, huge_remap, 1);
  return hd->user;
}

//! Unmaps expired cached mappings (all = every one); returns bytes.
size_t hak__huge_trim(int all) {
  if (!atomic_load_explicit(&bc_bytes, memory_order_relaxed)) return 0;
  bc_entry_t victims[BC_SLOTS + 1];
  pthread_mutex_lock(&bc_lock);
  int k = bc_evict_locked(0, hak__os_now_ns(), all, victims);
  pthread_mutex_unlock(&bc_lock);
  return bc_unmap_all(victims, k);
}
