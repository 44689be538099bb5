/* A Large block freed by its thread waits in the thread's bin of its class,
 * and the next request of the class takes it back from there: the same
 * block, counted once as an alloc and once as a free, with no central pop.
 * A full bin sends the next free to the central list, and the block then
 * comes back through a central pop.  Both routes (the inline one of malloc
 * and free, and the checked one behind it) must keep these counts. */
#define _GNU_SOURCE
#include "pool_test.h"
#include "l25.h"

static uint64_t cs(hak_heap_t* h, int k, int c) { return pt_heap_cstat(h, k, HAK_STAT_LARGE0 + c); }

//! Each Large class, at its smallest and largest request: free, then take back.
static void test_bin_roundtrip(hak_heap_t* h) {
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++) {
    size_t hi = hak__large_size[c], lo = c ? hak__large_size[c - 1] + 1 : HAK_MID_MAX + 1;
    size_t sz[2] = {lo, hi};
    for (int k = 0; k < 2; k++) {
      CHECK(hak__large_class(sz[k]) == c, "%zu: class %u, want %u", sz[k], hak__large_class(sz[k]), c);
      void* p = A_MALLOC(sz[k]);
      CHECK(p && hak__seg_kind((uintptr_t)p) == HAK_SEG_LARGE, "%zu: %p is not Large", sz[k], p);
      memset(p, 7, sz[k]);
      int bc = hak__l25_block_class(p);            /* c, or a larger class it borrowed from */
      CHECK(bc >= (int)c, "%zu: block of class %d", sz[k], bc);
      uint64_t a0 = cs(h, HAK_CS_alloc, bc), f0 = cs(h, HAK_CS_free, bc), cp0 = cs(h, HAK_CS_central_pop, bc);
      uint32_t n0 = h->large[bc].count;
      uintptr_t pa = (uintptr_t)p;
      A_FREE(p);
      CHECK(h->large[bc].count == n0 + 1 && (uintptr_t)h->large[bc].items[n0] == pa,
            "%zu: the free did not go to the thread's bin (%u -> %u)", sz[k], n0, h->large[bc].count);
      void* q = A_MALLOC(sz[k]);
      CHECK((uintptr_t)q == pa, "%zu: got %p back, want the block just freed %#lx", sz[k], q, (unsigned long)pa);
      CHECK(A_USABLE(q) >= sz[k], "%zu: usable %zu", sz[k], (size_t)A_USABLE(q));
      CHECK(cs(h, HAK_CS_alloc, bc) == a0 + 1 && cs(h, HAK_CS_free, bc) == f0 + 1,
            "%zu: counts alloc +%llu free +%llu, want +1 each", sz[k],
            (unsigned long long)(cs(h, HAK_CS_alloc, bc) - a0), (unsigned long long)(cs(h, HAK_CS_free, bc) - f0));
      CHECK(cs(h, HAK_CS_central_pop, bc) == cp0, "%zu: a bin hit popped the central list", sz[k]);
      A_FREE(q);
    }
  }
}

//! A full bin: one free more goes to the central list, and comes back by a pop.
static void test_bin_full(hak_heap_t* h) {
  unsigned c = hak__large_class(100000);
  hak__l25_flush(h);                                /* no cached block of a larger class to borrow */
  hak__l25_trim(0);
  uint32_t lim = h->large[c].limit;
  CHECK(lim >= 1 && lim <= HAK_LARGE_TLS_MAX, "limit %u", lim);
  void* p[HAK_LARGE_TLS_MAX + 1];
  for (uint32_t i = 0; i <= lim; i++) p[i] = A_MALLOC(100000);
  void* x[HAK_LARGE_TLS_MAX];
  uint32_t nx = 0;
  while (h->large[c].count) {                       /* empty the bin: the next frees fill it from 0 */
    CHECK(nx < HAK_LARGE_TLS_MAX, "bin count %u", h->large[c].count);
    x[nx] = A_MALLOC(100000);
    CHECK(x[nx] != NULL, "malloc");
    nx++;
  }
  uint64_t push0 = hak__l25_cached_blocks(c);
  for (uint32_t i = 0; i <= lim; i++) A_FREE(p[i]);
  CHECK(h->large[c].count == lim, "bin holds %u, want its limit %u", h->large[c].count, lim);
  CHECK(hak__l25_cached_blocks(c) == push0 + 1, "the central list went %llu -> %llu, want one more",
        (unsigned long long)push0, (unsigned long long)hak__l25_cached_blocks(c));
  uint64_t cp0 = cs(h, HAK_CS_central_pop, c);
  for (uint32_t i = 0; i <= lim; i++) {
    p[i] = A_MALLOC(100000);
    CHECK(p[i] != NULL, "malloc");
  }
  CHECK(cs(h, HAK_CS_central_pop, c) > cp0, "the block past the bin did not come back by a central pop");
  for (uint32_t i = 0; i <= lim; i++) A_FREE(p[i]);
  for (uint32_t i = 0; i < nx; i++) A_FREE(x[i]);
}

//! Without the background thread: its decay could trim the central list
//! between a free and the look at its count.
static int child(void) {
  hak_heap_t* h = pt_heap();
  HK_STEP(test_bin_roundtrip(h));
  HK_STEP(test_bin_full(h));
  printf("pool/test_pool_l25_bin: ok\n");
  return 0;
}

int main(int argc, char** argv) { return pt_main_no_bg(argc, argv, "pool/test_pool_l25_bin", 60, child); }
