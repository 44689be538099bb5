/* The exported libc names.  With -DHAK_NO_OVERRIDE (sanitizer builds) only
 * the hak_* API exists.  glibc semantics throughout: errno on failure,
 * free keeps errno, realloc(p, 0) frees and returns NULL. */
#define _GNU_SOURCE
#include "internal.h"
#include "fastpath.h"
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <stdio.h>

#ifndef HAK_NO_OVERRIDE

#define HAK_EXPORT __attribute__((visibility("default")))

HAK_EXPORT void* malloc(size_t n) { return hak__malloc_fast(n); }

HAK_EXPORT void free(void* p) { hak__free_fast(p); }   /* errno: see hak__free_generic */

HAK_EXPORT void cfree(void* p) { free(p); }
/* C23's sized frees (newer glibc has them: a call that reached glibc's would
 * free a hakmem block there).  The size is the caller's promise; unchecked. */
HAK_EXPORT void free_sized(void* p, size_t n) { (void)n; free(p); }
HAK_EXPORT void free_aligned_sized(void* p, size_t align, size_t n) { (void)align; (void)n; free(p); }
HAK_EXPORT void* calloc(size_t n, size_t size) { return hak__calloc(n, size); }
HAK_EXPORT void* realloc(void* p, size_t n) { return hak__realloc(p, n); }

HAK_EXPORT void* reallocarray(void* p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) { errno = ENOMEM; return NULL; }
  return hak__realloc(p, total);
}

HAK_EXPORT int posix_memalign(void** out, size_t align, size_t n) {
  if (align < sizeof(void*) || (align & (align - 1)) || align % sizeof(void*)) return EINVAL;
  int e = errno;
  void* p = hak__alloc_aligned(align, n);
  errno = e;
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

HAK_EXPORT void* aligned_alloc(size_t align, size_t n) {
  if (align == 0 || (align & (align - 1))) { errno = EINVAL; return NULL; }
  return hak__alloc_aligned(align, n);
}

HAK_EXPORT void* memalign(size_t align, size_t n) { return hak__memalign(align, n); }

HAK_EXPORT void* valloc(size_t n) { return hak__alloc_aligned(hak__os_page_size(), n); }

HAK_EXPORT void* pvalloc(size_t n) {
  size_t ps = hak__os_page_size();
  size_t r = n ? (n + ps - 1) & ~(ps - 1) : ps;
  if (r < n) { errno = ENOMEM; return NULL; }
  return hak__alloc_aligned(ps, r);
}

HAK_EXPORT size_t malloc_usable_size(void* p) { return hak__usable_size(p); }

/* glibc's internal names, for programs and libraries that call them */
HAK_EXPORT void* __libc_malloc(size_t n) { return malloc(n); }
HAK_EXPORT void  __libc_free(void* p) { free(p); }
HAK_EXPORT void* __libc_calloc(size_t n, size_t s) { return calloc(n, s); }
HAK_EXPORT void* __libc_realloc(void* p, size_t n) { return realloc(p, n); }
HAK_EXPORT void* __libc_memalign(size_t a, size_t n) { return memalign(a, n); }
HAK_EXPORT void* __libc_valloc(size_t n) { return valloc(n); }
HAK_EXPORT void* __libc_pvalloc(size_t n) { return pvalloc(n); }
HAK_EXPORT int   __posix_memalign(void** o, size_t a, size_t n) { return posix_memalign(o, a, n); }

/* ---- mallopt and friends ---- */

//! Accepts every parameter, as glibc does one it does not know: hakmem's
//! own options govern its caches (M_PERTURB's fill included: not done).
HAK_EXPORT int mallopt(int param, int value) {
  (void)param;
  (void)value;
  return 1;
}

//! Fills glibc's mallinfo fields as glibc splits them: hblks and hblkhd
//! the live huge blocks (glibc's mmapped chunks), arena the rest of what
//! hakmem has mapped, of it in use the live Tiny, Mid and Large blocks at
//! their class sizes, and free the rest (caches, cached huge runs, unused
//! pages).  Cached blocks once counted as in use: freed memory looked leaked.
static void mallinfo_fill(size_t* arena, size_t* used, size_t* freeb, size_t* hblks, size_t* hblkhd) {
  uint64_t live[HAK_LAYER_COUNT], huge_n;
  hak__stats_live(live, &huge_n);
  int64_t m = atomic_load_explicit(&hak__os_mapped, memory_order_relaxed);
  size_t mapped = m > 0 ? (size_t)m : 0;
  size_t h = (size_t)live[HAK_LAYER_HUGE] < mapped ? (size_t)live[HAK_LAYER_HUGE] : mapped;
  size_t u = (size_t)(live[HAK_LAYER_TINY] + live[HAK_LAYER_MID] + live[HAK_LAYER_LARGE]);
  *hblks = (size_t)huge_n;
  *hblkhd = h;
  *arena = mapped - h;
  *used = u < *arena ? u : *arena;
  *freeb = *arena - *used;
}

HAK_EXPORT struct mallinfo2 mallinfo2(void) {
  struct mallinfo2 m;
  memset(&m, 0, sizeof m);
  mallinfo_fill(&m.arena, &m.uordblks, &m.fordblks, &m.hblks, &m.hblkhd);
  return m;
}

HAK_EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo m;
  memset(&m, 0, sizeof m);
#define CLAMP(x) ((int)((x) > 0x7fffffff ? 0x7fffffff : (x)))
  m.arena = CLAMP(m2.arena); m.uordblks = CLAMP(m2.uordblks); m.fordblks = CLAMP(m2.fordblks);
  m.hblks = CLAMP(m2.hblks); m.hblkhd = CLAMP(m2.hblkhd);
#undef CLAMP
  return m;
}

HAK_EXPORT int malloc_trim(size_t pad) {
  (void)pad;
  return hak_trim() > 0;
}

HAK_EXPORT void malloc_stats(void) { hak_stats_print(stderr); }

HAK_EXPORT int malloc_info(int options, FILE* f) {
  if (options != 0) return EINVAL;
  hak_stats_t s;
  hak_stats_get(&s);
  static const char* const names[HAK_LAYER_COUNT] = {"tiny", "mid", "large", "huge"};
  fprintf(f, "<malloc version=\"hakmem-%s\">\n", HAKMEM_VERSION);
  for (int l = 0; l < HAK_LAYER_COUNT; l++)
    fprintf(f, "<layer name=\"%s\" allocs=\"%llu\" frees=\"%llu\" pages_in_use=\"%llu\" "
               "pages_cached=\"%llu\" mapped=\"%llu\"/>\n",
            names[l], s.layer[l].allocs, s.layer[l].frees, s.layer[l].pages_in_use,
            s.layer[l].pages_cached, s.layer[l].bytes_mapped);
  fprintf(f, "<system type=\"current\" size=\"%llu\"/>\n<system type=\"max\" size=\"%llu\"/>\n</malloc>\n",
          s.bytes_mapped, s.bytes_mapped_peak);
  return 0;
}
#endif
