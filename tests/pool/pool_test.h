/* Shared helpers of the Mid Pool tests (header-only).
 *
 * The tests link libhakmem.a statically, so they reach the internal hak__*
 * layer (heap, lists, central lists, per-class counters) to check what the
 * public API cannot show.  Allocation goes through rel_alloc.h's A_* macros:
 * malloc in the normal build, hak_* under -DHAK_NO_OVERRIDE=1 (ASan/TSan). */
#ifndef POOL_TEST_H
#define POOL_TEST_H

#include "hk_test.h"
#include "../stress/rel_alloc.h"
#include "internal.h"
#include "policy.h"
#include <sys/mman.h>

/* The tests read allocator state (lists, counters) around malloc calls, but
 * GCC treats the builtin malloc/free as touching no other memory and would
 * keep such reads in registers across them (and may elide pairs): in the
 * override build, route them through compiler barriers. */
#if !defined(HAK_NO_OVERRIDE) && !defined(REL_GLIBC)
static inline void* pt_malloc(size_t n) {
  void* p = malloc(n);
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}
static inline void* pt_memalign(size_t a, size_t n) {
  void* p = memalign(a, n);
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}
static inline void pt_free(void* p) {
  __asm__ volatile("" : : "r"(p) : "memory");
  free(p);
  __asm__ volatile("" : : : "memory");
}
#undef A_MALLOC
#undef A_FREE
#undef A_MEMALIGN
#define A_MALLOC(n) pt_malloc(n)
#define A_FREE(p) pt_free(p)
#define A_MEMALIGN(a, n) pt_memalign(a, n)
#endif

#define MID_MIN ((size_t)HAK_TINY_MAX + 1)
#define MID_C0  HAK_TINY_CLASSES                 /* first Mid class index */

static inline unsigned pt_cls(size_t n) { return hak__mid_class_of[(n + 255) >> 8]; }
static inline size_t pt_csize(unsigned c) { return hak__class_size[c]; }

/* Keeps the compiler from eliding a malloc/free pair (builtins here). */
static inline void pt_escape(void* p) { __asm__ volatile("" : : "r"(p) : "memory"); }

/* The calling thread's heap, made on first use (a Mid alloc/free pair). */
static inline hak_heap_t* pt_heap(void) {
  if (hak__tls_heap == &hak__empty_heap) {
    void* p = A_MALLOC(2000);
    pt_escape(p);
    A_FREE(p);
  }
  CHECK(hak__tls_heap != &hak__empty_heap, "no heap after an allocation");
  return hak__tls_heap;
}
static inline PoolTLSBin* pt_bin(hak_heap_t* h, unsigned c) { return hak__bin(h, c); }

/* What a free-only Mid list of class c keeps at a spill, and the batch it
 * gathers before the next (internal.h's bounds, worked out here). */
static inline uint32_t pt_mid_keep(unsigned c) {
  uint32_t n = HAK_FREEING_KEEP_BYTES / (uint32_t)hak__class_size[c];
  return n < 1 ? 1 : n > HAK_FREEING ? HAK_FREEING : n;
}
static inline uint32_t pt_mid_batch(unsigned c, uint32_t base) {
  uint32_t n = HAK_FREEING_MID_BYTES / (uint32_t)hak__class_size[c];
  if (n > base) n = base;
  return n < HAK_FREEING_LEAST ? HAK_FREEING_LEAST : n;
}

/* Thread h's counter k of class c: a small class's allocs and frees are in its bin. */
static inline uint64_t pt_heap_cstat(hak_heap_t* h, int k, unsigned c) {
  uint64_t v = __atomic_load_n(&h->st.c[k][c], __ATOMIC_RELAXED);
  if (c < HAK_SMALL_CLASSES && k == HAK_CS_alloc) v += hak__bin_allocs_read(&h->bins[c]);
  if (c < HAK_SMALL_CLASSES && k == HAK_CS_free) v += __atomic_load_n(&h->bins[c].frees, __ATOMIC_RELAXED);
  return v;
}
#define PT_CSTAT(h, name, cls) pt_heap_cstat(h, HAK_CS_##name, cls)
#define PT_TSTAT(h, name)    __atomic_load_n(&(h)->st.t[HAK_TS_##name], __ATOMIC_RELAXED)

/* Every thread's counters, merged (too big for small thread stacks: static). */
static inline const hak_tstats_t* pt_stats_all(void) {
  static hak_tstats_t t;
  hak__stats_sum(&t);
  return &t;
}

static inline hak_layer_stats_t pt_mid_layer(void) {
  hak_stats_t s;
  memset(&s, 0, sizeof s);
  hak_stats_get(&s);
  return s.layer[HAK_LAYER_MID];
}

/* A test's main when its parts must run without the background thread
 * (its idle scavenge could move pages on its own): re-executes the binary
 * as "<self> child" with HAKMEM_BG=0 and returns what child() returned
 * there. */
static inline int pt_main_no_bg(int argc, char** argv, const char* name, unsigned watchdog_s, int (*child)(void)) {
  static char child_name[128];
  snprintf(child_name, sizeof child_name, "%s:child", name);
  if (argc > 1 && strcmp(argv[1], "child") == 0) {
    hk_begin(child_name, watchdog_s);
    return child();
  }
  hk_begin(name, watchdog_s + 60);
  const char* env[] = {"HAKMEM_BG=0", NULL};
  static hk_child_t c;
  hk_exec_self("child", env, 0, &c);
  fputs(c.out, stdout);
  CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "child: %s\n%s", hk_status_str(c.status), c.err);
  return 0;
}

/* Bytes the Large layer has mapped (segments). */
static inline unsigned long long pt_large_mapped(void) {
  hak_stats_t st;
  memset(&st, 0, sizeof st);
  hak_stats_get(&st);
  return st.layer[HAK_LAYER_LARGE].bytes_mapped;
}

/* Fills the list of class c: allocates k blocks and frees them again. */
#define PT_FILL_MAX 1024
static inline void pt_fill(unsigned c, unsigned k) {
  void* tmp[PT_FILL_MAX];
  if (k > PT_FILL_MAX) k = PT_FILL_MAX;
  for (unsigned i = 0; i < k; i++) {
    tmp[i] = A_MALLOC(pt_csize(c));
    CHECK(tmp[i], "malloc(%zu) failed", pt_csize(c));
    pt_escape(tmp[i]);
  }
  for (unsigned i = k; i > 0; i--) A_FREE(tmp[i - 1]);
}

/* Takes away what class c has cached outside the lists (central lists,
 * active pages), so that its next refill would need a fresh page.  The
 * central blocks are kept in *st and go back with pt_unstarve. */
typedef struct { void* chain[64]; uint32_t n[64]; unsigned k; } pt_stash_t;
static inline void pt_starve(unsigned c, pt_stash_t* st) {
  hak_heap_t* h = pt_heap();
  st->k = 0;
  uint32_t n;
  void* chain;
  while (st->k < 64 && (chain = hak__small_central_pop(h, c, 1u << 20, &n, NULL)) != NULL) {
    st->chain[st->k] = chain;
    st->n[st->k++] = n;
  }
  hak__small_page_retire(h, c);
  /* a retired page that was partly carved waits for adoption, which comes
   * before a borrow: carve those out too (today's callers would pass
   * without, by the order of their steps) */
  hak_page_t* pg;
  while ((pg = hak__page_adopt(c, h)) != NULL) hak__page_retire(pg, atomic_load(&pg->carved));
}
static inline void pt_unstarve(unsigned c, pt_stash_t* st) {
  for (unsigned i = 0; i < st->k; i++) {
    void* last = st->chain[i];
    while (*(void**)last) last = *(void**)last;
    hak__small_central_push(pt_heap(), c, st->chain[i], last, st->n[i]);
  }
  st->k = 0;
}

static inline int pt_cmp_ptr(const void* a, const void* b) {
  uintptr_t x = *(const uintptr_t*)a, y = *(const uintptr_t*)b;
  return x < y ? -1 : x > y;
}

/* Anonymous memory for test bookkeeping: never from the allocator under test. */
static inline void* pt_map(size_t n) {
  void* p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED, "mmap of %zu bytes failed", n);
  return p;
}

/* Resident OS pages in [a, a + len), a and len multiples of the OS page. */
static inline unsigned pt_resident(uintptr_t a, size_t len) {
  size_t os = (size_t)sysconf(_SC_PAGESIZE), n = len / os;
  unsigned char* v = pt_map(n);
  CHECK(mincore((void*)a, len, v) == 0, "mincore failed: %s", strerror(errno));
  unsigned r = 0;
  for (size_t i = 0; i < n; i++) r += v[i] & 1;
  munmap(v, n);
  return r;
}

/* bytes / size blocks of size bytes, each written whole (every page
 * resident), in an array of *n; pt_release frees them and the array. */
static inline void** pt_fill_bytes(size_t size, size_t bytes, size_t* n) {
  *n = bytes / size;
  void** p = calloc(*n, sizeof *p);
  CHECK(p, "calloc");
  for (size_t i = 0; i < *n; i++) {
    p[i] = A_MALLOC(size);
    CHECK(p[i], "malloc(%zu)", size);
    memset(p[i], 0x3c, size);
  }
  return p;
}
static inline void pt_release(void** p, size_t n) {
  for (size_t i = 0; i < n; i++) A_FREE(p[i]);
  free(p);
}
#endif
