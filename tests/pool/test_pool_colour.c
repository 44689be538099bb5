/* Cache colours (classes.c): the pages of a class start their first block
 * at different multiples of 64 bytes, so the first lines of its blocks
 * spread over the L1 and L2 sets instead of piling into a few.  Checks, for
 * classes with and without slack: the pages seen take many colours (above
 * 4 KiB too, for classes with 8 KiB of slack or more), each
 * page's blocks sit at its colour plus whole blocks and end inside the
 * page, and blocks keep 16-byte alignment.  Aligned allocation above 64
 * bytes, which colours would break for the classes it uses, still returns
 * aligned blocks that hakmem serves, and an aligned alloc/free loop reuses
 * its block instead of taking a page each time.  Large segments, likewise
 * (test_large). */
#define _GNU_SOURCE
#include "pool_test.h"
#include "link.h"
#include <malloc.h>

#define NPAGES 40

static void check_class(size_t n) {
  unsigned c = (unsigned)hak__small_class(n);
  uint32_t d = hak__class_size[c], cap = hak__class_cap[c], ncol = hak__class_colors[c];
  size_t nb = (size_t)NPAGES * cap;
  void** p = pt_map(nb * sizeof(void*));
  uint8_t seen[64] = {0};      /* colours by line */
  uint8_t up[16] = {0};        /* colours by 4 KiB (segment.c steps through them) */
  unsigned ups = 0;
  uint64_t l1 = 0;             /* L1 sets (4 KiB period) of first lines */
  unsigned colours = 0;
  for (size_t i = 0; i < nb; i++) {
    CHECK((p[i] = A_MALLOC(n)) != NULL, "malloc(%zu)", n);
    uintptr_t a = (uintptr_t)p[i];
    hak_page_t* pg = hak__page_of(a);
    CHECK(hak__seg_kind(a) == HAK_SEG_SMALL && pg->cls == c, "%p: not a block of class %u", p[i], c);
    uintptr_t off = a - hak__page_start(pg);
    CHECK(a % 16 == 0 && off >= pg->color && (off - pg->color) % d == 0 && (off - pg->color) / d < cap &&
              off + d <= HAK_PAGE_SIZE,
          "%p: offset %zu in its page, colour %u, class %u B x %u", p[i], (size_t)off, pg->color, d, cap);
    CHECK(pg->color % 64 == 0 && pg->color / 64 < ncol, "colour %u of %u", pg->color, ncol);
    if (!seen[pg->color / 64 % 64]) { seen[pg->color / 64 % 64] = 1; colours++; }
    if (!up[pg->color >> 12]) { up[pg->color >> 12] = 1; ups++; }
    l1 |= 1ull << ((a >> 6) & 63);
  }
  unsigned want = ncol < 16 ? ncol : 16, sets = (unsigned)__builtin_popcountll(l1);
  INFO("class %u B: %u blocks a page, %u colours, %u seen on %d pages; first lines in %u of 64 L1 sets", d, cap,
       ncol, colours, NPAGES, sets);
  CHECK(colours >= want, "class %u B: %u colours on %d pages, expected at least %u", d, colours, NPAGES, want);
  if (d >= 1024) CHECK(sets >= 16, "class %u B: first lines in only %u of 64 L1 sets", d, sets);
  /* a class of 4 KiB or more colours over all its slack: with 8 KiB of it
   * or more, the pages differ above 4 KiB too (the L2's upper index bits,
   * which fresh, physically contiguous memory takes from the address) */
  uint32_t slack = HAK_PAGE_SIZE - cap * d, want_up = slack / 4096 < 4 ? slack / 4096 : 4;
  if (d >= 4096 && slack >= 8192)
    CHECK(ups >= want_up, "class %u B with %u B of slack: colours in only %u 4 KiB steps on %d pages", d, slack, ups,
          NPAGES);
  for (size_t i = 0; i < nb; i++) A_FREE(p[i]);
  munmap(p, nb * sizeof(void*));
}

static void test_colours(void) {
  /* segment.c steps 67 colours at a time: a class whose count 67 divided
   * would use a 67th of its colours */
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++)
    CHECK(hak__class_colors[c] % 67 != 0, "class %u B has %u colours, a multiple of segment.c's step 67",
          hak__class_size[c], hak__class_colors[c]);
  static const size_t sizes[] = {200, 500, 1000, 2000, 4000, 8000, 14000, 16000, 50000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_class(sizes[i]);
}

//! n times: an aligned block, a plain one of the same size, then both
//! freed, the aligned one first (so it is not the top of its list).
static void aligned_churn(int n, size_t align, size_t size) {
  for (int i = 0; i < n; i++) {
    void* q = A_MEMALIGN(align, size);
    void* r = A_MALLOC(size);
    CHECK(q && r && (uintptr_t)q % align == 0, "memalign(%zu, %zu) = %p", align, size, q);
    A_FREE(q);
    A_FREE(r);
  }
}

static void test_aligned(void) {
  for (size_t align = 32; align <= 32768; align *= 2) {
    for (size_t n = align / 2; n <= 3 * align && n <= HAK_MID_MAX; n += align / 2) {
      void* q[70];
      for (int i = 0; i < 70; i++) {
        q[i] = A_MEMALIGN(align, n);
        CHECK(q[i] && (uintptr_t)q[i] % align == 0 && A_OWNS(q[i]) && A_USABLE(q[i]) >= n,
              "memalign(%zu, %zu) = %p", align, n, q[i]);
        memset(q[i], 0x5a, n);
      }
      for (int i = 0; i < 70; i++) A_FREE(q[i]);
    }
  }
  /* an aligned alloc and free in a loop: the freed block is the list's top
   * and serves the next call, so no page is taken per call */
  unsigned c = (unsigned)hak__small_class(4096);
  uint64_t in0 = hak__small_pages_in_use(c);
  for (int i = 0; i < 100000; i++) {
    void* q = A_MEMALIGN(4096, 4096);
    CHECK(q && (uintptr_t)q % 4096 == 0, "memalign(4096, 4096) = %p", q);
    A_FREE(q);
  }
  uint64_t in1 = hak__small_pages_in_use(c);
  INFO("100000 memalign(4096, 4096) and frees: pages of the class in use %llu -> %llu", (unsigned long long)in0,
       (unsigned long long)in1);
  CHECK(in1 <= in0 + 2, "an aligned alloc/free loop took %llu pages", (unsigned long long)(in1 - in0));
  /* the same with a plain malloc of the class in between, freed after the
   * aligned block: the aligned block is second on the list, not the top
   * (Tiny spills its oldest, so carving past it would never reuse it) */
  unsigned t = (unsigned)hak__small_class(1000);
  void* w[200];
  for (int i = 0; i < 200; i++) CHECK((w[i] = A_MALLOC(1000)) != NULL, "malloc");   /* pages of several colours */
  for (int i = 0; i < 200; i++) A_FREE(w[i]);
  in0 = hak__small_pages_in_use(t);
  aligned_churn(100000, 1024, 1000);
  in1 = hak__small_pages_in_use(t);
  CHECK(in1 <= in0 + 2, "an aligned alloc, malloc, free, free loop took %llu pages", (unsigned long long)(in1 - in0));

  /* an aligned block under two unaligned ones is taken out of the list's
   * middle: it is the one handed out, and the list's count still matches
   * its length, and the class counts the alloc */
  hak_heap_t* h = pt_heap();
  PoolTLSBin* b = pt_bin(h, t);
  void* u[2] = {NULL, NULL};
  int nu = 0, nw = 0;
  /* central may hold only aligned blocks (the memaligns above): take
   * blocks until two unaligned ones come, from pages of other colours */
  static void* ws[4000];
  while (nu < 2 && nw < 4000) {
    CHECK((ws[nw] = A_MALLOC(1000)) != NULL, "malloc");
    if ((uintptr_t)ws[nw] % 1024) { u[nu++] = ws[nw]; ws[nw] = NULL; }
    nw++;
  }
  CHECK(nu == 2, "no unaligned 1 KiB blocks among %d", nw);
  void* a = A_MEMALIGN(1024, 1000);
  CHECK(a && (uintptr_t)a % 1024 == 0, "memalign(1024, 1000) = %p", a);
  uintptr_t ua = (uintptr_t)a, top = (uintptr_t)u[0];   /* compared after their frees */
  A_FREE(a);
  A_FREE(u[1]);
  A_FREE(u[0]);
  CHECK((uintptr_t)b->head == top, "the list's top is %p, not the last block freed", b->head);
  uint64_t allocs0 = hak__bin_allocs(b);
  void* again = A_MEMALIGN(1024, 1000);
  CHECK((uintptr_t)again == ua, "memalign(1024, 1000) = %p, not the aligned block third on the list", again);
  uint32_t len = 0;
  for (void* p = b->head; p; p = hak__link_get(p, (int)t)) {
    CHECK((uintptr_t)p != ua, "the block handed out is still on the list");
    len++;
  }
  CHECK(len == hak__bin_count(b), "list of %u blocks, count %u", len, hak__bin_count(b));
  CHECK(hak__bin_allocs(b) == allocs0 + 1, "allocs %llu -> %llu", (unsigned long long)allocs0,
        (unsigned long long)hak__bin_allocs(b));
  CHECK((uintptr_t)b->head == top, "the list's top moved: %p", b->head);
  A_FREE(again);
  for (int i = 0; i < nw; i++) A_FREE(ws[i]);
}

//! Large segments take colours too (l25.c): the blocks of a class start at
//! different line offsets in different segments; aligned Large requests
//! above 64 bytes are still aligned; and an aligned alloc, plain alloc,
//! free, free loop reuses its blocks instead of mapping segments.
static void test_large(void) {
  enum { NB = 130 };
  void* p[NB];
  uint8_t seen[64] = {0};
  unsigned colours = 0;
  size_t d = 229376;                                   /* the class of 200000 */
  for (int i = 0; i < NB; i++) {
    CHECK((p[i] = A_MALLOC(200000)) != NULL, "malloc(200000)");
    uintptr_t off = ((uintptr_t)p[i] & HAK_SEG_MASK) - 65536;
    CHECK(A_USABLE(p[i]) == d && off % d % 64 == 0 && off % d < 4096, "%p: offset %zu in its segment", p[i],
          (size_t)off);
    unsigned k = (unsigned)(off % d / 64);
    if (!seen[k]) { seen[k] = 1; colours++; }
  }
  INFO("%d Large blocks of %zu B: %u colours", NB, d, colours);
  CHECK(colours >= 5, "%d Large blocks of %zu B in only %u colours", NB, d, colours);
  for (size_t align = 128; align <= 65536; align *= 2) {
    void* q = A_MEMALIGN(align, 100000);
    CHECK(q && (uintptr_t)q % align == 0 && A_OWNS(q) && A_USABLE(q) >= 100000, "memalign(%zu, 100000) = %p", align,
          q);
    memset(q, 1, 100000);
    A_FREE(q);
  }
  unsigned long long m0 = pt_large_mapped();
  aligned_churn(20000, 4096, 300000);
  unsigned long long m1 = pt_large_mapped();
  INFO("20000 memalign(4096, 300000), malloc, free, free: Large mapped %llu -> %llu MB", m0 >> 20, m1 >> 20);
  CHECK(m1 <= m0 + 2 * ((unsigned long long)HAK_SEG_SIZE), "the loop mapped %llu MB", (m1 - m0) >> 20);
  for (int i = 0; i < NB; i++) A_FREE(p[i]);
}

int main(void) {
  hk_begin("pool/test_pool_colour", 120);
  hak__opt.keep = 1;
  pt_heap();
  HK_STEP(test_colours());
  HK_STEP(test_aligned());
  HK_STEP(test_large());
  printf("pool/test_pool_colour: ok\n");
  return 0;
}
