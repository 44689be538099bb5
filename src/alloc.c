/* Dispatch by size and the generic (noinline) paths behind the inline fast
 * paths: first use of a thread, refills, spills, remote frees, the other
 * layers, and the checks that turn misuse into a clear abort. */
#define _GNU_SOURCE
#include "internal.h"
#include "fastpath.h"
#include "policy.h"
#include "valgrind.h"
#include "l25.h"
#include <errno.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

uintptr_t hak__cookie;

//! Writes "hakmem: <what> <prep> <p> (<class>)" and aborts.
__attribute__((noreturn, cold)) static void misuse_say(const char* what, const char* prep, const void* p, int cls) {
  char buf[256];
  int n;
  hak__vg_unwind();      /* HAKMEM_VALGRIND: memcheck reports again while the process dies */
  if (cls >= 0 && cls < HAK_SMALL_CLASSES)
    n = snprintf(buf, sizeof buf, "hakmem: %s %s %p (class %d, %u bytes)\n", what, prep, p, cls, hak__class_size[cls]);
  else if (cls >= HAK_STAT_LARGE0 && cls < HAK_STAT_HUGE)
    n = snprintf(buf, sizeof buf, "hakmem: %s %s %p (large class %d, %u bytes)\n", what, prep, p,
                 cls - HAK_STAT_LARGE0, hak__large_size[cls - HAK_STAT_LARGE0]);
  else if (cls == HAK_STAT_HUGE)
    n = snprintf(buf, sizeof buf, "hakmem: %s %s %p (huge block)\n", what, prep, p);
  else
    n = snprintf(buf, sizeof buf, "hakmem: %s %s %p (not a hakmem block)\n", what, prep, p);
  if (n > 0) hak__os_write_err(buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1));
  abort();
}

//! Misuse of the block p: "hakmem: <what> of <p> (<class>)", then abort.
void hak__misuse(const char* what, const void* p, int cls) { misuse_say(what, "of", p, cls); }
//! The same about a place: "hakmem: <what> at <p> (<class>)".
void hak__misuse_at(const char* what, const void* p, int cls) { misuse_say(what, "at", p, cls); }

//! A walk met a block twice: a list loops.
void hak__link_loop(const void* p, int cls) {
  hak__misuse_at("double free (or write after free): a free list loops", p, cls);
}

//! A cached block about to be handed out has no free mark.
void hak__bad_block(const void* p) {
  /* a list head outside the small segments came from an overwritten link
   * (default mode: links are plain); its page descriptor would be garbage */
  if (hak__seg_kind((uintptr_t)p) != HAK_SEG_SMALL)
    hak__misuse_at("corrupted free list (write after free?): a link points", p, -1);
  hak_page_t* pg = hak__page_of((uintptr_t)p);
  hak__misuse("double free (or write after free)", p, pg->cls);
}

HAK_NOINLINE void* hak__bad_block_ret(const void* p) { hak__bad_block(p); }

//! Allocation with a known heap: every layer.
void* hak__alloc_with(hak_heap_t* h, size_t n) {
  if (n <= HAK_MID_MAX) {                     /* pops if the list has blocks; Mid may borrow */
    unsigned c = (unsigned)hak__small_class(n);
    return hak__bin_alloc_slow(h, c, n, c >= HAK_TINY_CLASSES);
  }
  if (n <= HAK_LARGE_MAX) {
    return hak__l25_alloc(h, hak__large_class(n), n, 1);
  }
  return hak__huge_alloc(n, 0, 0);
}

HAK_NOINLINE void* hak__malloc_generic(size_t n) {
  hak_heap_t* h = hak__heap_get();
  if (hak_unlikely(hak__opt.secure)) return hak__secure_alloc(h, n, 0);
  if (hak_unlikely(hak__opt.valgrind)) return hak__vg_alloc(h, n, 0, 0);
  if (hak_likely(h != NULL)) return hak__alloc_with(h, n);
  if (n > HAK_LARGE_MAX) return hak__huge_alloc(n, 0, 0);
  h = hak__global_heap_lock();
  void* p = h ? hak__alloc_with(h, n) : NULL;
  hak__global_heap_unlock();
  if (!h) errno = ENOMEM;
  return p;
}

//! Checks a small block pointer; aborts on misuse.  Returns its page.
static hak_page_t* small_check(const void* p) {
  uintptr_t a = (uintptr_t)p;
  hak_page_t* pg = hak__page_of(a);
  uint8_t st = atomic_load_explicit(&pg->state, memory_order_acquire);
  if (st != HAK_PAGE_ACTIVE && st != HAK_PAGE_FULL) hak__misuse("invalid free", p, -1);
  if (!hak__is_block_start(pg, a)) hak__misuse("interior pointer free", p, pg->cls);
  return pg;
}

//! Free of a small block with a known heap.
static void small_free_with(hak_heap_t* h, hak_page_t* pg, void* p) {
  if (hak_unlikely(hak__opt.secure) && h != NULL) { hak__secure_free(h, p); return; }
  uintptr_t own = hak__page_owner(pg);
  if (own != h->token && own != HAK_TOKEN_NONE) { hak__small_remote_free(h, pg, p); return; }
  unsigned c = pg->cls;
  hak__bin_free_slow(h, c, p);
}

static void free_generic(void* p);

//! free never changes errno; only this path can make system calls.
HAK_NOINLINE void hak__free_generic(void* p) {
  if (!p) return;
  int e = errno;
  if (hak_unlikely(hak__opt.valgrind)) hak__vg_free(p);
  else free_generic(p);
  errno = e;
}

//! The checked free without the valgrind layer (it frees what leaves its quarantine).
void hak__free_any(void* p) { free_generic(p); }

static void free_generic(void* p) {
  uintptr_t a = (uintptr_t)p;
  int kind = hak__seg_kind(a);
  if (kind == HAK_SEG_SMALL) {
    hak_page_t* pg = small_check(p);
    if (hak__marked(p)) hak__misuse("double free", p, pg->cls);
    hak_heap_t* h = hak__heap_get();
    if (hak_likely(h != NULL)) { small_free_with(h, pg, p); return; }
    h = hak__global_heap_lock();
    if (h) small_free_with(h, pg, p);
    hak__global_heap_unlock();
    return;
  }
  if (kind == HAK_SEG_LARGE) {
    hak_heap_t* h = hak__heap_get();
    if (hak_unlikely(hak__opt.secure)) {
      hak__l25_usable(p);                       /* aborts unless a live Large block */
      if (hak__marked(p))                      /* quarantined */
        hak__misuse("double free", p, HAK_STAT_LARGE0 + hak__l25_block_class(p));
      if (h) { hak__secure_free(h, p); return; }
      h = hak__global_heap_lock();              /* a thread past teardown: checked all the same */
      if (h) hak__secure_free(h, p);
      hak__global_heap_unlock();
      return;
    }
    if (hak_likely(h != NULL)) { hak__l25_free(h, p); return; }
    h = hak__global_heap_lock();
    if (h) hak__l25_free(h, p);
    hak__global_heap_unlock();
    return;
  }
  if (kind == HAK_SEG_HUGE || kind == HAK_SEG_HUGE_FAR) { hak__huge_free(p); return; }
  hak__misuse("invalid free", p, -1);
}

//! Usable size; aborts on a pointer hakmem does not own.
static size_t usable_checked(const void* p) {
  uintptr_t a = (uintptr_t)p;
  int kind = hak__seg_kind(a);
  if (kind == HAK_SEG_SMALL) {
    hak_page_t* pg = hak__page_of(a);
    uint8_t st = atomic_load_explicit(&pg->state, memory_order_acquire);
    if (st != HAK_PAGE_ACTIVE && st != HAK_PAGE_FULL) hak__misuse("invalid pointer", p, -1);
    if (!hak__is_block_start(pg, a)) hak__misuse("interior pointer", p, pg->cls);
    return pg->block_size;
  }
  if (kind == HAK_SEG_LARGE) return hak__l25_usable(p);
  if (kind == HAK_SEG_HUGE || kind == HAK_SEG_HUGE_FAR) return hak__huge_usable(p);
  hak__misuse("invalid pointer", p, -1);
}

/* ---- the public hak_* API ------------------------------------------------ */

HAK_API void* hak_malloc(size_t n) { return hak__malloc_fast(n); }
HAK_API void hak_free(void* p) { hak__free_fast(p); }

void* hak__calloc(size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total) || total > (size_t)PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
  if (total > HAK_LARGE_MAX) {
    /* the options first: this branch may be the process's first call */
    hak__init_once();
    return hak_unlikely(hak__opt.valgrind) ? hak__vg_alloc(hak__heap_get(), total, 0, 1) : hak__huge_alloc(total, 0, 1);
  }
  void* p = hak__malloc_fast(total);
  if (p) memset(p, 0, total);
  return p;
}

size_t hak__usable_size(const void* p) {
  if (!p) return 0;
  if (hak_unlikely(hak__opt.secure)) return hak__secure_usable(p);
  if (hak_unlikely(hak__opt.valgrind)) return hak__vg_usable(p);
  return usable_checked(p);
}

//! The usable size of a small or Large block when it can be read from the
//! packed page tags (no descriptor line), else 0: then the caller takes the
//! checked path, which reports misuse.
HAK_INLINE size_t usable_quick(const void* p) {
  uintptr_t a = (uintptr_t)p;
  int kind = hak__seg_kind(a);
  if (hak_likely(kind == HAK_SEG_SMALL)) {
    hak_segment_t* s = hak__seg_of(a);
    hak_ptag_t* t = hak__ptag_of(s, a);
    size_t c = t->bin_off >> HAK_BIN_SHIFT;
    /* the header page and free pages carry the sentinel; others a class */
    if (atomic_load_explicit(&t->owner, memory_order_relaxed) == HAK_TOKEN_SENTINEL ||
        !hak__div_is_start(hak__class_div[c], a, t->ccolor))
      return 0;
    if (hak__marked(p)) return 0;         /* freed: the checked path says so */
    return hak__class_size[c];
  }
  return kind == HAK_SEG_LARGE ? hak__l25_usable_quick(p) : 0;
}

static void* realloc_move(void* p, size_t n);

//! A block of `old` usable bytes serves n in place: it fits, and wastes at
//! most half.
HAK_INLINE int realloc_fits(size_t n, size_t old) { return n <= old && (n >= old / 2 || old <= 64); }

//! realloc: a block that still fits (and wastes at most half) stays, with
//! no frame and no descriptor read; the rest is realloc_move.  A string
//! built by appends calls this on every append.
void* hak__realloc(void* p, size_t n) {
  if (hak_likely(p != NULL && n != 0 && !(hak__opt.valgrind | hak__opt.secure))) {
    size_t old = usable_quick(p);
    if (hak_likely(realloc_fits(n, old))) return p;
  }
  return realloc_move(p, n);
}

//! Every other realloc: null, zero size, huge blocks, options, moves.
static HAK_NOINLINE void* realloc_move(void* p, size_t n) {
  if (!p) return hak__malloc_fast(n);
  if (n == 0) { hak__free_fast(p); return NULL; }
  if (n > (size_t)PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
  if (hak_unlikely(hak__opt.valgrind)) return hak__vg_realloc(p, n);
  if (hak_unlikely(hak__opt.secure)) {          /* always a fresh block: no in-place tricks */
    size_t was = hak__secure_usable(p);
    void* q = hak__malloc_fast(n);
    if (!q) return NULL;
    memcpy(q, p, was < n ? was : n);
    hak__free_fast(p);
    return q;
  }
  size_t old = usable_checked(p);
  int kind = hak__seg_kind((uintptr_t)p);
  /* a freed small block still in a list: kept in place, it would have two
   * owners (realloc reads the block anyway, to copy it) */
  if (kind == HAK_SEG_SMALL && hak__marked(p))
    hak__misuse("realloc after free", p, hak__page_of((uintptr_t)p)->cls);
  if (kind == HAK_SEG_HUGE && n > HAK_LARGE_MAX) {
    int e = errno;
    errno = 0;
    void* q = hak__huge_realloc(p, n);
    int failed = errno == ENOMEM;
    errno = failed ? ENOMEM : e;
    if (q) return q;
    if (failed && n > old) return NULL;
  }
  if (realloc_fits(n, old)) return p;
  /* a Large request only: an aligned request of a few bytes gets a Large
   * block too, and should not keep it when it grows to 100 */
  if (kind == HAK_SEG_LARGE && n <= old && n > HAK_MID_MAX && hak__l25_keep(p, n)) return p;
  /* a block that grows by a little will grow again: take a quarter more,
   * so a string built by small appends moves every few classes, not at
   * every one (Tiny classes are 16 bytes apart) */
  size_t want = n > old && n - old < old / 4 ? old + old / 4 : n;
  void* q = hak__malloc_fast(want);
  if (!q && want != n) q = hak__malloc_fast(n);
  if (!q) return NULL;
  memcpy(q, p, old < n ? old : n);
  hak__free_fast(p);
  return q;
}

//! Smallest small class of at least n bytes whose blocks are align-aligned.
static int small_aligned_class(size_t n, size_t align) {
  unsigned c = (unsigned)hak__small_class(n);
  for (; c < HAK_SMALL_CLASSES; c++)
    if ((hak__class_size[c] & (align - 1)) == 0) return (int)c;
  return -1;
}

//! Any power-of-two alignment, with a known heap (NULL: a thread past
//! teardown, served by the shared heap).
void* hak__alloc_aligned_with(hak_heap_t* h, size_t align, size_t n) {
  if (n <= HAK_MID_MAX && align <= 32768) {
    int c = small_aligned_class(n, align);
    if (c >= 0) {
      hak_heap_t* g = h ? h : hak__global_heap_lock();
      /* colours are multiples of 64 (classes.c): every block of a class
       * whose size align divides is aligned up to 64, beyond only some */
      void* p = !g ? NULL : align <= 64 ? hak__bin_alloc_slow(g, (unsigned)c, n, 0)
                                        : hak__bin_alloc_aligned(g, (unsigned)c, n, align);
      if (!h) hak__global_heap_unlock();
      return p;
    }
  }
  if (n <= HAK_LARGE_MAX && align <= 65536) {
    unsigned c = hak__large_class(n < 65536 ? 65536 : n);
    while (c < HAK_LARGE_CLASSES && (hak__large_size[c] & (align - 1))) c++;
    if (c < HAK_LARGE_CLASSES) {
      hak_heap_t* g = h ? h : hak__global_heap_lock();
      void* p = !g ? NULL : align <= 64 ? hak__l25_alloc(g, c, n, 0)   /* colours: as above */
                                        : hak__l25_alloc_aligned(g, c, n, align);
      if (!h) hak__global_heap_unlock();
      return p;
    }
  }
  return hak__huge_alloc(n, align, 0);
}

//! Any alignment that is a power of two.
void* hak__alloc_aligned(size_t align, size_t n) {
  if (n > (size_t)PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
  if (align <= 16) return hak__malloc_fast(n);
  hak_heap_t* h = hak__heap_get();
  if (hak_unlikely(hak__opt.secure)) return hak__secure_alloc(h, n, align);
  if (hak_unlikely(hak__opt.valgrind)) return hak__vg_alloc(h, n, align, 0);
  return hak__alloc_aligned_with(h, align, n);
}

//! The block size of a small or Large block (checked: aborts on misuse).
size_t hak__block_size(const void* p) {
  int kind = hak__seg_kind((uintptr_t)p);
  if (kind == HAK_SEG_SMALL) return usable_checked(p);
  return hak__l25_usable(p);
}

//! Frees a small or Large block that has passed the checks.
void hak__free_with(hak_heap_t* h, void* p) {
  if (hak__seg_kind((uintptr_t)p) == HAK_SEG_SMALL) {
    hak_page_t* pg = hak__page_of((uintptr_t)p);
    uintptr_t own = hak__page_owner(pg);
    if (own != h->token && own != HAK_TOKEN_NONE) hak__small_remote_free(h, pg, p);
    else hak__bin_free_slow(h, pg->cls, p);
  } else {
    hak__l25_free(h, p);
  }
}

void* hak__memalign(size_t align, size_t n) {
  if (align > ((size_t)1 << 63)) { errno = EINVAL; return NULL; }   /* glibc: above SIZE_MAX / 2 + 1 */
  if (align & (align - 1)) align = (size_t)1 << (64 - __builtin_clzll((unsigned long long)align));
  return hak__alloc_aligned(align, n);
}

/* The public names are aliases: the override's calloc, realloc, memalign
 * and malloc_usable_size call the hidden ones directly, not through the
 * PLT (realloc was a jump to a jump through the GOT). */
HAK_API void* hak_calloc(size_t n, size_t size) __attribute__((alias("hak__calloc")));
HAK_API size_t hak_usable_size(const void* p) __attribute__((alias("hak__usable_size")));
HAK_API void* hak_realloc(void* p, size_t n) __attribute__((alias("hak__realloc")));
HAK_API void* hak_memalign(size_t align, size_t n) __attribute__((alias("hak__memalign")));

static int owns_any(const void* p);
//! Under HAKMEM_VALGRIND, huge headers are hidden from memcheck.
HAK_API int hak_owns(const void* p) {
  hak__vg_enter();
  int r = owns_any(p);
  hak__vg_leave();
  return r;
}

//! hak_owns itself.
static int owns_any(const void* p) {
  uintptr_t a = (uintptr_t)p;
  int kind = hak__seg_kind(a);
  if (kind == HAK_SEG_SMALL) {
    hak_page_t* pg = hak__page_of(a);
    uint8_t st = atomic_load_explicit(&pg->state, memory_order_acquire);
    return (st == HAK_PAGE_ACTIVE || st == HAK_PAGE_FULL) && hak__is_block_start(pg, a);
  }
  if (kind == HAK_SEG_LARGE) return hak__l25_owns(p);
  if (kind == HAK_SEG_HUGE || kind == HAK_SEG_HUGE_FAR) return hak__huge_owns(p);
  return 0;
}

size_t hak__trim_all(void) {
  hak_heap_t* h = hak__heap_get();
  if (h) {
    hak__secure_flush(h);
    hak__heap_flush(h);
    hak__heaps_drain_dead(h);
  }
  /* orphans are ACTIVE, which no scavenge releases: retire them all */
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) hak__page_orphans_age(c, UINT64_MAX);
  size_t bytes = hak__small_trim();
  bytes += hak__l25_trim(0);
  bytes += hak__huge_trim(1);
  bytes += hak__segment_trim();
  hak__os_scratch_trim();
  return bytes;
}

//! Under HAKMEM_VALGRIND, trimming walks hidden free lists.
HAK_API size_t hak_trim(void) {
  hak__vg_enter();
  size_t r = hak__trim_all();
  hak__vg_leave();
  return r;
}
