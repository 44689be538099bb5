/* API conformance: malloc, free, calloc, realloc, reallocarray, cfree,
 * free_sized and free_aligned_sized (C23), the
 * glibc __libc_* aliases and the public hak_* API, with glibc's semantics
 * for the edge cases (malloc(0), sizes above PTRDIFF_MAX, overflow, errno,
 * realloc(p, 0), failed realloc) in every layer; each size band is counted
 * in its own layer; hak_owns is 1 only at block starts.  hak_owns and the
 * stats prove that hakmem (not a silent fallback to glibc) served each call. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include "hk_test.h"

/* glibc no longer declares these; hakmem must export them all. */
extern void cfree(void* p);
extern void free_sized(void* p, size_t n);                           /* C23 */
extern void free_aligned_sized(void* p, size_t align, size_t n);     /* C23 */
extern void* __libc_malloc(size_t n);
extern void __libc_free(void* p);
extern void* __libc_calloc(size_t n, size_t m);
extern void* __libc_realloc(void* p, size_t n);
extern void* __libc_memalign(size_t a, size_t n);
extern void* __libc_valloc(size_t n);
extern void* __libc_pvalloc(size_t n);
extern int __posix_memalign(void** mp, size_t a, size_t n);

/* Keep the compiler from folding malloc/free pairs or "impossible" sizes. */
static volatile size_t vbig;
static void* volatile sink;

/* One size per layer, at and around the band edges. */
static const size_t layer_sizes[] = {
    1, 8, 16, 24, 48, 100, 512, 1000, 1024,       /* tiny */
    1025, 2048, 4000, 16 * 1024, 52 * 1024,        /* mid */
    52 * 1024 + 1, 64 * 1024, 300 * 1024, 1 << 20,  /* large */
    (1 << 20) + 1, 3 << 20, 9 << 20,                /* huge */
};
#define NSIZES (sizeof layer_sizes / sizeof layer_sizes[0])

static void test_layers_served_by_hakmem(void) {
  /* Each band's allocations must be counted in that band's layer only. */
  for (size_t i = 0; i < NSIZES; i++) {
    size_t n = layer_sizes[i];
    int want = hk_layer_of(n);
    enum { N = 64 };
    void* ps[N];
    size_t touch = n < 64 * KiB ? n : 64 * KiB;  /* keeps RSS and time low for big blocks */
    hak_stats_t a, b, c;
    hak_stats_get(&a);
    for (int k = 0; k < N; k++) {
      ps[k] = malloc(n);
      CHECK(ps[k] != NULL, "malloc(%zu) failed", n);
      CHECK(hak_owns(ps[k]), "malloc(%zu) = %p is not owned by hakmem", n, ps[k]);
      memset(ps[k], 0x5a, touch);
    }
    hak_stats_get(&b);
    for (int k = 0; k < N; k++) free(ps[k]);
    hak_stats_get(&c);
    for (int l = 0; l < HAK_LAYER_COUNT; l++) {
      unsigned long long da = b.layer[l].allocs - a.layer[l].allocs;
      unsigned long long df = c.layer[l].frees - b.layer[l].frees;
      if (l == want) {
        CHECK(da > 0, "%d x malloc(%zu): stats layer %s allocs did not grow (%llu -> %llu)",
              N, n, hk_layer_name(l), a.layer[l].allocs, b.layer[l].allocs);
        CHECK(df > 0, "%d x free of %zu-byte blocks: stats layer %s frees did not grow",
              N, n, hk_layer_name(l));
      } else {
        CHECK(da == 0, "%d x malloc(%zu) (a %s size) counted %llu allocs in layer %s",
              N, n, hk_layer_name(want), da, hk_layer_name(l));
      }
    }
  }
}

static void test_malloc_zero(void) {
  enum { N = 1000 };
  void* ps[N];
  for (int i = 0; i < N; i++) {
    ps[i] = malloc(0);
    CHECK(ps[i] != NULL, "malloc(0) returned NULL (glibc returns a unique pointer)");
    CHECK(hak_owns(ps[i]), "malloc(0) = %p not owned by hakmem", ps[i]);
    CHECK(malloc_usable_size(ps[i]) < 4096, "malloc_usable_size(malloc(0)) = %zu", malloc_usable_size(ps[i]));
  }
  /* Unique: no two live malloc(0) results are equal. Sort-free O(n^2) is fine at 1000. */
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++)
      CHECK(ps[i] != ps[j], "malloc(0) returned %p twice while both are live", ps[i]);
  for (int i = 0; i < N; i++) free(ps[i]);
  /* calloc(0, x), calloc(x, 0), realloc(NULL, 0) behave like malloc(0). */
  void* a = calloc(0, 16);
  void* b = calloc(16, 0);
  void* c = realloc(NULL, 0);
  CHECK(a && b && c, "calloc(0,16)=%p calloc(16,0)=%p realloc(NULL,0)=%p: expected unique non-NULL", a, b, c);
  CHECK(a != b && b != c && a != c, "calloc/realloc of 0 bytes returned the same pointer");
  free(a); free(b); free(c);
}

static void expect_enomem(void* p, const char* what) {
  int e = errno;
  CHECK(p == NULL, "%s returned %p, expected NULL", what, p);
  CHECK(e == ENOMEM, "%s: errno %d (%s), expected ENOMEM", what, e, strerror(e));
}

static void test_too_big(void) {
  size_t sizes[] = {(size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX + 4096, SIZE_MAX, SIZE_MAX - 15,
                    SIZE_MAX - 4096, SIZE_MAX - (2 << 20), (size_t)PTRDIFF_MAX};
  char what[128];
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    vbig = sizes[i];
    errno = 0;
    snprintf(what, sizeof what, "malloc(%#zx)", (size_t)vbig);
    expect_enomem(malloc(vbig), what);
    errno = 0;
    snprintf(what, sizeof what, "calloc(1, %#zx)", (size_t)vbig);
    expect_enomem(calloc(1, vbig), what);
    errno = 0;
    snprintf(what, sizeof what, "realloc(NULL, %#zx)", (size_t)vbig);
    expect_enomem(realloc(NULL, vbig), what);
    void* mp = (void*)0x1234;
    int rc = posix_memalign(&mp, 64, vbig);
    CHECK(rc == ENOMEM, "posix_memalign(64, %#zx) = %d, expected ENOMEM", (size_t)vbig, rc);
    CHECK(mp == (void*)0x1234, "posix_memalign failure changed *memptr to %p", mp);
    errno = 0;
    snprintf(what, sizeof what, "memalign(4096, %#zx)", (size_t)vbig);
    expect_enomem(memalign(4096, vbig), what);
    errno = 0;
    snprintf(what, sizeof what, "aligned_alloc(1 MiB, %#zx)", (size_t)vbig);
    expect_enomem(aligned_alloc(1 << 20, vbig & ~(size_t)((1 << 20) - 1)), what);
    errno = 0;
    snprintf(what, sizeof what, "valloc(%#zx)", (size_t)vbig);
    expect_enomem(valloc(vbig), what);
    errno = 0;
    snprintf(what, sizeof what, "pvalloc(%#zx)", (size_t)vbig);
    expect_enomem(pvalloc(vbig), what);
  }
  /* Multiplications that overflow size_t, or exceed PTRDIFF_MAX. */
  struct { size_t n, m; } ov[] = {
      {SIZE_MAX / 2, 3}, {(size_t)1 << 33, (size_t)1 << 33}, {SIZE_MAX, SIZE_MAX},
      {(size_t)PTRDIFF_MAX / 2 + 1, 2}, {3, SIZE_MAX / 3 + 1}, {65537, (SIZE_MAX / 65537) + 1}};
  for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) {
    vbig = ov[i].n;
    errno = 0;
    snprintf(what, sizeof what, "calloc(%#zx, %#zx)", (size_t)vbig, ov[i].m);
    expect_enomem(calloc(vbig, ov[i].m), what);
    errno = 0;
    snprintf(what, sizeof what, "reallocarray(NULL, %#zx, %#zx)", (size_t)vbig, ov[i].m);
    expect_enomem(reallocarray(NULL, vbig, ov[i].m), what);
    /* reallocarray of a live block that overflows: NULL, ENOMEM, block intact. */
    unsigned char* p = malloc(100);
    CHECK(p, "malloc(100)");
    hk_fill(p, 100, 77, 0);
    errno = 0;
    snprintf(what, sizeof what, "reallocarray(p, %#zx, %#zx)", (size_t)vbig, ov[i].m);
    void* q = reallocarray(p, vbig, ov[i].m);
    if (q != NULL) FAIL("%s = %p, expected NULL", what, q);
    expect_enomem(q, what);
    CHECK(hk_verify(p, 100, 77, 0) == (size_t)-1, "%s changed the contents of p", what);
    free(p);
  }
  /* reallocarray in range works and keeps contents. */
  int* a = reallocarray(NULL, 10, sizeof(int));
  CHECK(a && hak_owns(a), "reallocarray(NULL, 10, 4) = %p", (void*)a);
  for (int i = 0; i < 10; i++) a[i] = i * 7;
  a = reallocarray(a, 100000, sizeof(int));
  CHECK(a && hak_owns(a), "reallocarray(a, 100000, 4) = %p", (void*)a);
  for (int i = 0; i < 10; i++) CHECK(a[i] == i * 7, "reallocarray lost a[%d]", i);
  free(a);
}

static void test_free_keeps_errno(void) {
  for (size_t i = 0; i < NSIZES; i++) {
    void* p = malloc(layer_sizes[i]);
    CHECK(p, "malloc(%zu)", layer_sizes[i]);
    errno = 4242;
    free(p);
    CHECK(errno == 4242, "free of a %zu-byte block changed errno to %d (%s)", layer_sizes[i], errno, strerror(errno));
    errno = EAGAIN;
    free(NULL);
    CHECK(errno == EAGAIN, "free(NULL) changed errno to %d", errno);
  }
  /* A burst then frees, so some frees return pages/mappings to the OS. */
  void* ps[400];
  for (int i = 0; i < 400; i++) ps[i] = malloc(layer_sizes[i % NSIZES]);
  for (int i = 0; i < 400; i++) {
    errno = ENOMEM;
    free(ps[i]);
    CHECK(errno == ENOMEM, "free #%d changed errno to %d", i, errno);
  }
}

static void test_calloc_zeroes(void) {
  /* Dirty memory first so calloc must really zero recycled blocks. */
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < NSIZES; i++) {
      size_t n = layer_sizes[i];
      void* d[8];
      for (int k = 0; k < 8; k++) { d[k] = malloc(n); CHECK(d[k], "malloc(%zu)", n); memset(d[k], 0xEE, n); }
      for (int k = 0; k < 8; k++) free(d[k]);
      for (int k = 0; k < 8; k++) {
        unsigned char* p = calloc(1, n);
        CHECK(p && hak_owns(p), "calloc(1, %zu) = %p", n, (void*)p);
        for (size_t j = 0; j < n; j++) CHECK(p[j] == 0, "calloc(1, %zu): byte %zu is %#x", n, j, p[j]);
        d[k] = p;
      }
      for (int k = 0; k < 8; k++) free(d[k]);
      /* n x m form too */
      unsigned char* q = calloc(n, 3);
      CHECK(q, "calloc(%zu, 3)", n);
      for (size_t j = 0; j < 3 * n; j++) CHECK(q[j] == 0, "calloc(%zu, 3): byte %zu is %#x", n, j, q[j]);
      free(q);
    }
  }
}

static void test_realloc(void) {
  /* Every layer to every layer: contents of the common prefix survive. */
  for (size_t i = 0; i < NSIZES; i++) {
    for (size_t j = 0; j < NSIZES; j++) {
      size_t a = layer_sizes[i], b = layer_sizes[j];
      unsigned char* p = malloc(a);
      CHECK(p, "malloc(%zu)", a);
      uint64_t seed = i * 131 + j;
      hk_fill(p, a, seed, 1);
      unsigned char* q = realloc(p, b);
      CHECK(q && hak_owns(q), "realloc(%zu -> %zu) = %p", a, b, (void*)q);
      CHECK(malloc_usable_size(q) >= b, "realloc(%zu -> %zu): usable %zu", a, b, malloc_usable_size(q));
      size_t keep = a < b ? a : b;
      size_t bad = hk_verify_prefix(q, a, keep, seed, 1);
      CHECK(bad == (size_t)-1, "realloc(%zu -> %zu) lost byte %zu", a, b, bad);
      memset(q, 1, b);  /* the whole new size is writable */
      free(q);
    }
  }
  /* Growing one byte at a time through tiny and mid (in-place or moved). */
  unsigned char* p = NULL;
  for (size_t n = 1; n <= 70000; n += (n < 2048 ? 1 : 97)) {
    p = realloc(p, n);
    CHECK(p, "realloc grow to %zu", n);
    p[n - 1] = (unsigned char)n;
    if (n > 1) CHECK(p[0] == 1, "realloc grow to %zu lost byte 0", n);
  }
  free(p);
  /* A block that grows by a little takes a quarter more, so appends do
   * not move it at every class; a shrink to at least half stays put. */
  size_t ups[] = {200, 3000, 100000};
  for (size_t i = 0; i < sizeof ups / sizeof ups[0]; i++) {
    unsigned char* b = malloc(ups[i]);
    CHECK(b, "malloc(%zu)", ups[i]);
    size_t old = malloc_usable_size(b);
    unsigned char* c = realloc(b, old + 1);
    CHECK(c && malloc_usable_size(c) >= old + old / 4, "realloc(%zu -> %zu): usable %zu, expected >= %zu", old,
          old + 1, c ? malloc_usable_size(c) : 0, old + old / 4);
    size_t grown = malloc_usable_size(c);
    uintptr_t was = (uintptr_t)c;
    unsigned char* d = realloc(c, grown / 2 + 1);
    CHECK((uintptr_t)d == was, "realloc(%zu -> %zu) moved a block that fits", grown, grown / 2 + 1);
    free(d);
  }
}

static void test_realloc_zero_frees(void) {
  /* realloc(p, 0) frees p and returns NULL (glibc).  Prove the free: the
   * frees counter grows and 20000 rounds of 512 KiB don't pile up mappings. */
  for (size_t i = 0; i < NSIZES; i++) {
    void* p = malloc(layer_sizes[i]);
    CHECK(p, "malloc");
    unsigned long long f0 = hk_total_frees();
    void* r = realloc(p, 0);
    CHECK(r == NULL, "realloc(p of %zu bytes, 0) returned %p, expected NULL (glibc frees and returns NULL)",
          layer_sizes[i], r);
    CHECK(hk_total_frees() > f0, "realloc(p, 0) did not count a free");
  }
  hak_stats_t a, b;
  hak_stats_get(&a);
  for (int i = 0; i < 20000; i++) {
    void* p = malloc(512 * 1024);
    CHECK(p, "malloc(512K) #%d", i);
    ((char*)p)[0] = 1;
    sink = realloc(p, 0);
    CHECK(sink == NULL, "realloc(p, 0) = %p", sink);
  }
  hak_stats_get(&b);
  CHECK(b.bytes_mapped < a.bytes_mapped + 64 * MiB,
        "20000 x realloc(malloc(512K), 0): bytes_mapped grew from %llu to %llu (blocks not freed?)",
        a.bytes_mapped, b.bytes_mapped);
}

static void test_failed_realloc_keeps_block(void) {
  for (size_t i = 0; i < NSIZES; i++) {
    size_t n = layer_sizes[i];
    unsigned char* p = malloc(n);
    CHECK(p, "malloc(%zu)", n);
    hk_fill(p, n, 999 + i, 1);
    size_t bigs[] = {(size_t)PTRDIFF_MAX + 1, SIZE_MAX, SIZE_MAX - 64};
    for (int k = 0; k < 3; k++) {
      vbig = bigs[k];
      errno = 0;
      void* q = realloc(p, vbig);
      int e = errno;
      CHECK(q == NULL, "realloc(p, %#zx) = %p", (size_t)vbig, q);
      CHECK(e == ENOMEM, "realloc(p, %#zx): errno %d, expected ENOMEM", (size_t)vbig, e);
      CHECK(hak_owns(p), "p (%zu bytes) no longer owned after a failed realloc", n);
      CHECK(hk_verify(p, n, 999 + i, 1) == (size_t)-1, "failed realloc changed p (%zu bytes)", n);
    }
    /* p is still a live, usable block. */
    p = realloc(p, n + 5000);
    CHECK(p, "realloc after failed realloc");
    CHECK(hk_verify(p, n, 999 + i, 1) == (size_t)-1, "realloc after a failed realloc lost contents");
    free(p);
  }
}

static void test_aliases_and_cfree(void) {
  long pg = sysconf(_SC_PAGESIZE);
  unsigned long long a0 = hk_total_allocs();
  void* p = __libc_malloc(100);
  CHECK(p && hak_owns(p), "__libc_malloc(100) = %p not hakmem's", p);
  memset(p, 1, 100);
  unsigned char* c = __libc_calloc(10, 100);
  CHECK(c && hak_owns(c), "__libc_calloc = %p", (void*)c);
  for (int i = 0; i < 1000; i++) CHECK(c[i] == 0, "__libc_calloc not zeroed at %d", i);
  p = __libc_realloc(p, 5000);
  CHECK(p && hak_owns(p), "__libc_realloc = %p", p);
  CHECK(((unsigned char*)p)[99] == 1, "__libc_realloc lost contents");
  void* m = __libc_memalign(256, 300);
  CHECK(m && hak_owns(m) && (uintptr_t)m % 256 == 0, "__libc_memalign(256) = %p", m);
  void* v = __libc_valloc(10);
  CHECK(v && hak_owns(v) && (uintptr_t)v % (uintptr_t)pg == 0, "__libc_valloc = %p", v);
  void* pv = __libc_pvalloc(10);
  CHECK(pv && hak_owns(pv) && (uintptr_t)pv % (uintptr_t)pg == 0, "__libc_pvalloc = %p", pv);
  CHECK(malloc_usable_size(pv) >= (size_t)pg, "__libc_pvalloc(10) usable %zu < page", malloc_usable_size(pv));
  void* pm = (void*)1;
  CHECK(__posix_memalign(&pm, 1024, 77) == 0 && hak_owns(pm) && (uintptr_t)pm % 1024 == 0,
        "__posix_memalign = %p", pm);
  pm = (void*)0x77;
  CHECK(__posix_memalign(&pm, 3, 77) == EINVAL && pm == (void*)0x77, "__posix_memalign(3) must fail with EINVAL");
  CHECK(hk_total_allocs() > a0, "stats did not count the __libc_* allocations");
  /* Mixed pairs: each family frees the other's blocks. */
  free(p);
  __libc_free(c);
  cfree(m);
  __libc_free(v);
  cfree(pv);
  free(NULL);
  __libc_free(NULL);
  cfree(NULL);
  void* x = malloc(64);
  __libc_free(x);
  x = __libc_malloc(64);
  cfree(x);
  void* y = malloc(3 << 20);
  cfree(y);
  y = __libc_malloc(3 << 20);
  free(y);
  /* C23's sized frees free hakmem's blocks, in every layer */
  unsigned long long f0 = hk_total_frees();
  for (size_t i = 0; i < NSIZES; i++) {
    size_t n = layer_sizes[i];
    free_sized(malloc(n), n);
    void* q = aligned_alloc(64, n);
    CHECK(q && hak_owns(q), "aligned_alloc(64, %zu)", n);
    free_aligned_sized(q, 64, n);
  }
  free_sized(NULL, 0);
  free_aligned_sized(NULL, 64, 0);
  CHECK(hk_total_frees() >= f0 + 2 * NSIZES, "free_sized / free_aligned_sized freed %llu of %zu blocks",
        hk_total_frees() - f0, 2 * NSIZES);
}

static void test_hak_api(void) {
  /* the hak_* names are the same allocator: blocks mix freely with malloc/free */
  for (size_t i = 0; i < NSIZES; i++) {
    size_t n = layer_sizes[i];
    unsigned char* p = hak_malloc(n);
    CHECK(p && hak_owns(p), "hak_malloc(%zu) = %p", n, (void*)p);
    CHECK(hak_usable_size(p) >= n && hak_usable_size(p) == malloc_usable_size(p),
          "hak_usable_size %zu vs malloc_usable_size %zu for %zu bytes", hak_usable_size(p), malloc_usable_size(p), n);
    hk_fill(p, n, n, 1);
    p = hak_realloc(p, n + 3000);
    CHECK(p && hk_verify(p, n, n, 1) == (size_t)-1, "hak_realloc(%zu -> %zu) lost contents", n, n + 3000);
    free(p);
    unsigned char* c = hak_calloc(n, 2);
    CHECK(c && hak_owns(c), "hak_calloc(%zu, 2)", n);
    for (size_t j = 0; j < 2 * n; j += 97) CHECK(c[j] == 0, "hak_calloc(%zu, 2) byte %zu = %#x", n, j, c[j]);
    hak_free(c);
    void* m = hak_memalign(4096, n);
    CHECK(m && hak_owns(m) && (uintptr_t)m % 4096 == 0, "hak_memalign(4096, %zu) = %p", n, m);
    hak_free(m);
    m = malloc(n);
    CHECK(m, "malloc(%zu)", n);
    hak_free(m);
  }
  hak_free(NULL);
  CHECK(hak_usable_size(NULL) == 0, "hak_usable_size(NULL) = %zu", hak_usable_size(NULL));
  vbig = SIZE_MAX / 2;
  errno = 0;
  void* x = hak_calloc(vbig, 3);
  CHECK(x == NULL && errno == ENOMEM, "hak_calloc overflow = %p, errno %d", x, errno);
  errno = 0;
  x = hak_malloc(vbig + 2);
  CHECK(x == NULL && errno == ENOMEM, "hak_malloc(> PTRDIFF_MAX) = %p, errno %d", x, errno);
}

static int stack_probe;

static void test_hak_owns(void) {
  /* hak_owns: 1 exactly for the start of a hakmem block; 0 for interior
   * pointers, NULL, the stack, globals and memory from elsewhere. */
  int local = 0;
  CHECK(!hak_owns(NULL), "hak_owns(NULL) = 1");
  CHECK(!hak_owns(&local), "hak_owns(stack address) = 1");
  CHECK(!hak_owns(&stack_probe), "hak_owns(global address) = 1");
  for (size_t i = 0; i < NSIZES; i++) {
    size_t n = layer_sizes[i];
    unsigned char* p = malloc(n);
    CHECK(p && hak_owns(p), "hak_owns(malloc(%zu)) = 0", n);
    size_t u = malloc_usable_size(p);
    size_t offs[] = {1, 8, 16, 32, 48, u / 2, u - 1};
    for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
      if (offs[k] == 0 || offs[k] >= u) continue;
      CHECK(!hak_owns(p + offs[k]), "hak_owns(p + %zu) = 1 for p = malloc(%zu) (usable %zu): an interior pointer",
            offs[k], n, u);
    }
    free(p);
  }
}

int main(void) {
  hk_begin("api/basic", 50);
  HK_STEP(test_layers_served_by_hakmem());
  HK_STEP(test_malloc_zero());
  HK_STEP(test_too_big());
  HK_STEP(test_free_keeps_errno());
  HK_STEP(test_calloc_zeroes());
  HK_STEP(test_realloc());
  HK_STEP(test_realloc_zero_frees());
  HK_STEP(test_failed_realloc_keeps_block());
  HK_STEP(test_aliases_and_cfree());
  HK_STEP(test_hak_api());
  HK_STEP(test_hak_owns());
  printf("api/basic: ok\n");
  return 0;
}
