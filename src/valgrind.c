/* HAKMEM_VALGRIND=1: memcheck learns about hakmem's blocks through
 * valgrind's client requests, so that a program on hakmem gets the leak and
 * use-after-free reports it would get on glibc.  docs/DESIGN.md ("Running
 * under valgrind") has the long form.
 *
 *  - As in HAKMEM_SECURE, the thread's heap stays out of the inline fast
 *    path (its TLS pointer is the empty sentinel), so every call comes here
 *    and the default mode pays nothing.
 *  - All of hakmem's memory that is not a live block is NOACCESS to
 *    memcheck: the block area of every segment from its mapping on, the
 *    caches of every heap, each huge mapping around its block.  The leak
 *    checker takes every addressable, defined word as a possible pointer;
 *    hakmem's stale ones (vacated cache slots, links, headers) would make
 *    lost blocks look reachable.
 *  - hakmem's own accesses to that memory (free-list links, free marks,
 *    headers, caches) run in a bracket that turns memcheck's reports off
 *    for the thread.  A load from NOACCESS memory gives defined bits, so
 *    nothing leaves the bracket as "uninitialised".  hakmem's own memory
 *    accesses are what make test-valgrind checks, without this option.
 *  - memcheck's block is the request, and malloc_usable_size says so (as
 *    with valgrind's own malloc): any byte past it is an error.  hakmem
 *    allocates n + VG_SLACK and keeps n in the last 8 bytes, outside the
 *    block.
 *  - free: FREELIKE first, outside the bracket, so memcheck reports a
 *    bad or double free with both stacks; then the block waits in a FIFO
 *    quarantine before hakmem may hand it out again (its LIFO caches would
 *    reuse it at once and hide a later use after free).
 *  - realloc always moves, as valgrind's own realloc does: a pointer kept
 *    across a realloc is then reported.
 *
 * Build switch HAK_NO_VALGRIND (make VALGRIND=0): build without valgrind's
 * client requests even where <valgrind/memcheck.h> exists.  Without them,
 * HAKMEM_VALGRIND=1 prints one warning and is ignored. */
#define _GNU_SOURCE
#include "internal.h"
#include "valgrind.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if !defined(HAK_NO_VALGRIND) && defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/valgrind.h>
#include <valgrind/memcheck.h>
#define HAK_HAVE_VALGRIND 1
#endif
#endif
#ifndef HAK_HAVE_VALGRIND
/* the mode is never on then; the code below still compiles */
#define HAK_HAVE_VALGRIND 0
#define RUNNING_ON_VALGRIND 0
#define VALGRIND_MALLOCLIKE_BLOCK(p, n, rz, z) ((void)0)
#define VALGRIND_FREELIKE_BLOCK(p, rz) ((void)0)
#define VALGRIND_MAKE_MEM_NOACCESS(p, n) ((void)0)
#define VALGRIND_DISABLE_ERROR_REPORTING ((void)0)
#define VALGRIND_ENABLE_ERROR_REPORTING ((void)0)
#endif

/* memcheck names the block an address belongs to by the live or freed block
 * whose bytes, widened by its redzone (24 bytes in effect by default), hold
 * it: 32 bytes between a block's end and the next block keep a neighbour
 * from being named for a use after free (the trailer is within them) */
#define VG_SLACK 32

/* Freed blocks wait here, oldest out first, while they fit both bounds;
 * blocks above a quarter of the bytes skip it.  memcheck's own malloc
 * keeps 20 MB of freed blocks (--freelist-vol) for the same reason. */
#define VG_QUAR_SLOTS 16384
#define VG_QUAR_BYTES ((size_t)16 << 20)

typedef struct vg_slot { void* p; size_t size; } vg_slot_t;
static pthread_mutex_t vg_lock = PTHREAD_MUTEX_INITIALIZER;    /* the quarantine; a leaf lock */
static __thread int vg_depth __attribute__((tls_model("initial-exec")));  /* open quiet brackets */
static vg_slot_t vg_quar[VG_QUAR_SLOTS];
static size_t vg_quar_head, vg_quar_count, vg_quar_bytes;

//! Writes a constant message to stderr.
static void vg_say(const char* s) { hak__os_write_err(s, strlen(s)); }

//! Settles the mode: on only with the headers, under valgrind.
void hak__vg_init(void) {
  if (!hak__opt.valgrind) return;
  if (!HAK_HAVE_VALGRIND) {
    vg_say("hakmem: HAKMEM_VALGRIND=1 is ignored: built without valgrind support "
           "(no <valgrind/memcheck.h> at build time)\n");
    hak__opt.valgrind = 0;
    return;
  }
  /* outside valgrind the requests would do nothing: keep the fast path */
  if (!RUNNING_ON_VALGRIND) { hak__opt.valgrind = 0; return; }
  if (hak__opt.secure) {
    vg_say("hakmem: HAKMEM_SECURE=1 is ignored under HAKMEM_VALGRIND=1 (memcheck checks every byte)\n");
    hak__opt.secure = 0;
  }
  /* a thread of hakmem's own would show in every leak report (its TLS);
   * decay still runs from the slow paths */
  hak__opt.bg = 0;
}

//! Opens (on) or closes a bracket of hakmem's own work: memcheck reports
//! nothing of this thread's inside.
void hak__vg_quiet(int on) {
  if (on) { vg_depth++; VALGRIND_DISABLE_ERROR_REPORTING; }
  else { vg_depth--; VALGRIND_ENABLE_ERROR_REPORTING; }
}

//! Closes every open bracket (hak__misuse, before it aborts).
void hak__vg_unwind(void) {
  while (vg_depth > 0) hak__vg_quiet(0);
}

//! Makes hakmem memory that is no block (yet) invisible to memcheck.
void hak__vg_hide(void* p, size_t n) { VALGRIND_MAKE_MEM_NOACCESS(p, n); }

//! Its vacated slots keep pointers to blocks handed out since: hidden.
void hak__vg_hide_heap(hak_heap_t* h) {
  VALGRIND_MAKE_MEM_NOACCESS(h->bins, sizeof h->bins);
  VALGRIND_MAKE_MEM_NOACCESS(h->large, sizeof h->large);
  VALGRIND_MAKE_MEM_NOACCESS(h->pages, sizeof h->pages);
  VALGRIND_MAKE_MEM_NOACCESS(h->aux, sizeof h->aux);   /* its noted tails and cuts would keep leaks reachable */
}

//! Size of hakmem block p; aborts (what) on a pointer hakmem did not hand out.
static size_t vg_block_size(const void* p, const char* what) {
  int kind = hak__seg_kind((uintptr_t)p);
  if (kind == HAK_SEG_SMALL || kind == HAK_SEG_LARGE) return hak__block_size(p);
  if (kind == HAK_SEG_HUGE || kind == HAK_SEG_HUGE_FAR) return hak__huge_usable(p);
  hak__misuse(what, p, -1);
}

//! The class of p for messages (-1: not a block of ours).
static int vg_cls(const void* p) {
  int kind = hak__seg_kind((uintptr_t)p);
  if (kind == HAK_SEG_SMALL) return hak__page_of((uintptr_t)p)->cls;
  int lc = kind == HAK_SEG_LARGE ? hak__l25_block_class(p) : -1;
  if (lc >= 0) return HAK_STAT_LARGE0 + lc;
  return kind == HAK_SEG_HUGE || kind == HAK_SEG_HUGE_FAR ? HAK_STAT_HUGE : -1;
}

//! Where the request of a block of bs bytes is kept.
HAK_INLINE size_t* vg_trailer(const void* p, size_t bs) { return (size_t*)((char*)p + bs - 8); }

//! malloc, calloc (zero) and the aligned calls (align > 16) of the mode.
void* hak__vg_alloc(hak_heap_t* h, size_t n, size_t align, int zero) {
  if (n > (size_t)PTRDIFF_MAX - 2 * VG_SLACK) { errno = ENOMEM; return NULL; }
  size_t need = n + VG_SLACK;
  hak__vg_quiet(1);
  void* p;
  int zeroed = 0;
  if (align > 16) {
    p = hak__alloc_aligned_with(h, align, need);
  } else if (need > HAK_LARGE_MAX) {
    p = hak__huge_alloc(need, 0, zero);
    zeroed = zero;                           /* fresh pages are not written again */
  } else if (h) {
    p = hak__alloc_with(h, need);
  } else {                                   /* a thread past its teardown */
    hak_heap_t* g = hak__global_heap_lock();
    p = g ? hak__alloc_with(g, need) : NULL;
    hak__global_heap_unlock();
    if (!g) errno = ENOMEM;
  }
  if (p) {
    size_t bs = vg_block_size(p, "invalid pointer");
    if (hak__seg_kind((uintptr_t)p) >= HAK_SEG_HUGE) {
      /* its header holds p and a reused mapping holds old data */
      void* base;
      size_t len;
      hak__huge_span(p, &base, &len);
      VALGRIND_MAKE_MEM_NOACCESS(base, len);
    }
    if (zero && !zeroed) memset(p, 0, n);
    *vg_trailer(p, bs) = n;
  }
  hak__vg_quiet(0);
  if (p) VALGRIND_MALLOCLIKE_BLOCK(p, n, 0, zero);
  return p;
}

//! Hands a block that left the quarantine to hakmem's own free.
static void vg_release(void* p) {
  ((uintptr_t*)p)[1] = 0;            /* hakmem's free sets its own mark */
  hak__free_any(p);
}

//! Queues p (bs bytes); the oldest blocks leave first, to hakmem's free.
static void vg_quarantine(void* p, size_t bs) {
  if (bs > VG_QUAR_BYTES / 4) { vg_release(p); return; }
  for (;;) {
    pthread_mutex_lock(&vg_lock);
    if (vg_quar_count < VG_QUAR_SLOTS && vg_quar_bytes + bs <= VG_QUAR_BYTES) {
      vg_slot_t* s = &vg_quar[(vg_quar_head + vg_quar_count) % VG_QUAR_SLOTS];
      s->p = p;
      s->size = bs;
      vg_quar_count++;
      vg_quar_bytes += bs;
      pthread_mutex_unlock(&vg_lock);
      return;
    }
    vg_slot_t* s = &vg_quar[vg_quar_head];
    void* old = s->p;
    vg_quar_bytes -= s->size;
    s->p = NULL;                     /* a stale pointer here would be a root */
    vg_quar_head = (vg_quar_head + 1) % VG_QUAR_SLOTS;
    vg_quar_count--;
    pthread_mutex_unlock(&vg_lock);
    vg_release(old);                 /* without the lock: it takes hakmem's */
  }
}

//! free of the mode: memcheck's view first, then the quarantine.
void hak__vg_free(void* p) {
  /* first, with reports on: memcheck names a bad or second free itself */
  VALGRIND_FREELIKE_BLOCK(p, 0);
  hak__vg_quiet(1);
  int kind = hak__seg_kind((uintptr_t)p);
  if (kind == HAK_SEG_NONE) hak__misuse("invalid free", p, -1);
  /* segments stay mapped, so their blocks' mark can be read before the
   * checks; a huge block's only once they found it mapped */
  if (kind <= HAK_SEG_LARGE && hak__marked(p)) hak__misuse("double free", p, vg_cls(p));
  size_t bs = vg_block_size(p, "invalid free");
  if (kind > HAK_SEG_LARGE && hak__marked(p)) hak__misuse("double free", p, vg_cls(p));
  hak__mark_free(p);
  vg_quarantine(p, bs);
  hak__vg_quiet(0);
}

//! malloc_usable_size of the mode: the request.
size_t hak__vg_usable(const void* p) {
  hak__vg_quiet(1);
  size_t bs = vg_block_size(p, "invalid pointer");
  if (hak__marked(p)) hak__misuse("use after free", p, vg_cls(p));
  size_t n = *vg_trailer(p, bs);
  hak__vg_quiet(0);
  return n > bs - VG_SLACK ? bs - VG_SLACK : n;    /* an overflow may have hit the trailer */
}

//! realloc of the mode (p live, n > 0): always a new block.
void* hak__vg_realloc(void* p, size_t n) {
  size_t old = hak__vg_usable(p);
  void* q = hak__vg_alloc(hak__heap_get(), n, 0, 0);
  if (!q) return NULL;
  memcpy(q, p, old < n ? old : n);   /* reports on: memcheck copies definedness */
  hak__vg_free(p);
  return q;
}

//! fork: the quarantine's lock is held across it (init.c's handlers).
void hak__vg_fork_prepare(void) { if (hak__opt.valgrind) pthread_mutex_lock(&vg_lock); }
//! fork, in the parent.
void hak__vg_fork_parent(void) { if (hak__opt.valgrind) pthread_mutex_unlock(&vg_lock); }
//! fork, in the child: only this thread exists.
void hak__vg_fork_child(void) { if (hak__opt.valgrind) pthread_mutex_init(&vg_lock, NULL); }

#ifndef HAK_NO_OVERRIDE
//! valgrind replaces malloc in every object without a soname (so in
//! libhakmem.so, and in a program linked with libhakmem.a) unless told not
//! to; then nothing reaches hakmem and the option does nothing: say so.
__attribute__((constructor(102))) static void vg_check_served(void) {
  if (!hak__opt.valgrind) return;
  void* p = malloc(24);
  if (p && !hak_owns(p))
    vg_say("hakmem: HAKMEM_VALGRIND=1, but malloc is not served by this hakmem (valgrind replaces "
           "it unless run with --soname-synonyms=somalloc=nouserintercepts)\n");
  free(p);
}
#endif
