/* Mid Pool basics (seed test_pool_basic): classes and size mapping, usable
 * sizes, W_MAX (a block of class c serves a request s only if
 * c <= W_MAX * s, borrowing included), content integrity, and the
 * list -> central round trip with its counters. */
#define _GNU_SOURCE
#include "pool_test.h"

static uint32_t wmax_milli(void) { return hak__policy_wmax_milli(); }

//! The class table: the seed's classes are there, every Mid size maps to
//! the smallest class that holds it, and the own class is within W_MAX.
static void test_classes(void) {
  static const size_t seed[] = {2048, 4096, 8192, 16384, 32768, 40960, 53248};
  for (size_t i = 0; i < sizeof seed / sizeof seed[0]; i++) {
    int found = 0;
    for (unsigned c = MID_C0; c < HAK_SMALL_CLASSES; c++) found |= pt_csize(c) == seed[i];
    CHECK(found, "seed class %zu missing from the Mid classes", seed[i]);
  }
  CHECK(pt_csize(HAK_SMALL_CLASSES - 1) == HAK_MID_MAX, "last Mid class %zu != %d",
        pt_csize(HAK_SMALL_CLASSES - 1), HAK_MID_MAX);
  for (unsigned c = MID_C0 + 1; c < HAK_SMALL_CLASSES; c++)
    CHECK(pt_csize(c) > pt_csize(c - 1) && pt_csize(c) % 256 == 0, "class %u size %zu", c, pt_csize(c));
  double worst = 0;
  size_t worst_n = 0;
  for (size_t n = MID_MIN; n <= HAK_MID_MAX; n++) {
    unsigned c = pt_cls(n);
    CHECK(c >= MID_C0 && c < HAK_SMALL_CLASSES, "size %zu -> class %u, not Mid", n, c);
    CHECK(pt_csize(c) >= n, "size %zu -> class %u of %zu bytes: too small", n, c, pt_csize(c));
    CHECK(c == MID_C0 || pt_csize(c - 1) < n, "size %zu -> class %zu, but %zu fits", n, pt_csize(c), pt_csize(c - 1));
    CHECK((uint64_t)pt_csize(c) * 1000 <= (uint64_t)n * wmax_milli(),
          "own class of %zu is %zu > W_MAX %.3f x", n, pt_csize(c), wmax_milli() / 1000.0);
    double r = (double)pt_csize(c) / (double)n;
    if (r > worst) { worst = r; worst_n = n; }
  }
  INFO("worst own-class round-up %.4f at %zu bytes (-> %zu)", worst, worst_n, pt_csize(pt_cls(worst_n)));
}

//! The block-start check's per-class constants (classes.c, made by a macro
//! from the class sizes) agree with them: exhaustively, for every small
//! class, every colour a page of it may take, and every offset in a page,
//! exactly the block starts pass (none in the colour's gap before the first
//! block, none in the tail past the last); a page's blocks fit in it; and
//! a heap's bins hold the same constants.
static void test_block_starts(void) {
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) {
    uint32_t d = hak__class_size[c], cap = hak__class_cap[c], ncol = hak__class_colors[c];
    CHECK(cap >= 1 && cap <= HAK_PAGE_SIZE / d, "class %u (%u B): %u blocks per page", c, d, cap);
    CHECK(ncol >= 1 && (ncol - 1) * 64 + cap * d <= HAK_PAGE_SIZE, "class %u (%u B): %u colours overflow the page",
          c, d, ncol);
    for (uint32_t k = 0; k < ncol; k++) {
      uint32_t color = k * 64, cc = color * hak__class_div[c].c;
      for (uint32_t off = 0; off < HAK_PAGE_SIZE; off++) {
        int want = off >= color && (off - color) % d == 0 && (off - color) / d < cap;
        int got = hak__div_is_start(hak__class_div[c], off, cc);
        if (got != want) {
          CHECK(0, "class %u (%u B), colour %u, offset %u: block start %d, expected %d", c, d, color, off, got, want);
          break;
        }
      }
    }
  }
  /* the inline free checks with its bin's copy of the constants, and the
   * inline malloc finds the class in one table for both layers */
  hak_heap_t* h = pt_heap();
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) {
    hak_div_t d = h->bins[c].div;
    CHECK(d.c == hak__class_div[c].c && d.lim == hak__class_div[c].lim, "class %u: the bin's constants differ", c);
  }
  for (size_t n = 0; n <= HAK_MID_MAX; n++) {
    unsigned want = n <= HAK_TINY_MAX ? hak__tiny_class_of[(n + 15) >> 4] : pt_cls(n);
    size_t off = hak__small_bin_off(n);
    CHECK(hak__bin_at(h, off) == hak__bin(h, want) && hak__small_class(n) == want,
          "size %zu: inline bin offset %zu, slow path's class %u", n, off, want);
  }
}

//! The inline free finds the bin from the page tag's offset: every class's
//! page tag holds its page's class (run last: it takes a page of each).
static void test_tag_bins(void) {
  hak_heap_t* h = pt_heap();
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) {
    void* p = A_MALLOC(hak__class_size[c]);
    CHECK(p != NULL, "malloc");
    uintptr_t a = (uintptr_t)p;
    const hak_ptag_t* t = hak__ptag_of(hak__seg_of(a), a);
    unsigned pc = hak__page_of(a)->cls;   /* c, or a larger class under W_MAX */
    CHECK(hak__bin_at(h, t->bin_off) == hak__bin(h, pc),
          "class %u: the page tag's bin offset %u is not its page's class %u", c, t->bin_off, pc);
    A_FREE(p);
  }
}

//! Every Mid size, ascending after a flush (no larger class has cached
//! blocks to borrow): usable size is exactly the own class.  The band
//! edges go to Tiny and Large.
static void test_usable_sizes(void) {
  hak_heap_t* h = pt_heap();
  hak__heap_flush(h);
  size_t step = hk_slow() ? 37 : 1;
  for (size_t n = MID_MIN; n <= HAK_MID_MAX; n += step) {
    unsigned char* p = A_MALLOC(n);
    CHECK(p, "malloc(%zu) failed", n);
    CHECK(((uintptr_t)p & 15) == 0, "malloc(%zu) = %p not 16-aligned", n, (void*)p);
    CHECK(A_OWNS(p), "hakmem does not own its block %p", (void*)p);
    size_t u = A_USABLE(p);
    CHECK(u == pt_csize(pt_cls(n)), "usable(malloc(%zu)) = %zu, own class %zu", n, u, pt_csize(pt_cls(n)));
    CHECK(hak__page_of((uintptr_t)p)->cls == pt_cls(n), "page class %u != %u", hak__page_of((uintptr_t)p)->cls, pt_cls(n));
    p[0] = 1; p[u - 1] = 2;
    A_FREE(p);
  }
  void* t = A_MALLOC(HAK_TINY_MAX);
  CHECK(hak__page_of((uintptr_t)t)->cls < MID_C0 && A_USABLE(t) == HAK_TINY_MAX, "1024 must be Tiny");
  void* l = A_MALLOC(HAK_MID_MAX + 1);
  CHECK(l && hak__seg_kind((uintptr_t)l) == HAK_SEG_LARGE && A_USABLE(l) > HAK_MID_MAX, "53249 must be Large");
  A_FREE(t);
  A_FREE(l);
}

//! Borrowing: with nothing of its own cached (the next refill would take a
//! fresh page), a cached block of a larger class serves the request only
//! within W_MAX; aligned requests never borrow.
static void test_wmax_borrow(void) {
  hak_heap_t* h = pt_heap();
  pt_stash_t st;
  unsigned c2048 = pt_cls(2048), c3072 = pt_cls(3072), c3584 = pt_cls(3584);
  CHECK(wmax_milli() == 1600, "default HAKMEM_WMAX_MID is %.3f, not 1.6", wmax_milli() / 1000.0);

  /* 3584 > 1.6 x 2048: must not be borrowed */
  hak__heap_flush(h);
  pt_fill(c3584, 8);
  pt_starve(c2048, &st);
  uint64_t b0 = PT_CSTAT(h, borrow, c2048);
  void* p = A_MALLOC(2048);
  CHECK(A_USABLE(p) == 2048, "malloc(2048) got %zu bytes with only 3584 cached (W_MAX 1.6)", A_USABLE(p));
  CHECK(PT_CSTAT(h, borrow, c2048) == b0, "borrow counted without a borrow");
  A_FREE(p);
  pt_unstarve(c2048, &st);

  /* a class with cached blocks of its own refills from them: no borrow */
  hak__heap_flush(h);
  pt_fill(c3072, 8);
  pt_fill(c2048, 8);
  hak__heap_flush(h);          /* the 2048 blocks now sit in the central list */
  pt_fill(c3072, 8);
  p = A_MALLOC(2048);
  CHECK(A_USABLE(p) == 2048, "malloc(2048) borrowed a %zu block while 2048 blocks were cached", A_USABLE(p));
  CHECK(PT_CSTAT(h, borrow, c2048) == b0, "borrowed while the own class had cached blocks");
  A_FREE(p);

  /* 3072 <= 1.6 x 2048: borrowed instead of taking a fresh page */
  hak__heap_flush(h);
  pt_fill(c3072, 8);
  pt_starve(c2048, &st);
  uint32_t count = hak__bin_count(pt_bin(h, c3072));
  uint64_t lent0 = PT_CSTAT(h, lent, c3072), lreq0 = PT_CSTAT(h, lent_req, c3072);
  p = A_MALLOC(2048);
  CHECK(A_USABLE(p) == 3072, "malloc(2048) got %zu bytes, expected a borrowed 3072 block", A_USABLE(p));
  CHECK(PT_CSTAT(h, borrow, c2048) == b0 + 1, "borrow counter did not move");
  CHECK(hak__bin_count(pt_bin(h, c3072)) == count - 1, "borrow did not come from the 3072 list");
  CHECK(PT_CSTAT(h, lent, c3072) == lent0 + 1 && PT_CSTAT(h, lent_req, c3072) == lreq0 + 2048,
        "the lender counted %llu lent, %llu requested bytes", (unsigned long long)(PT_CSTAT(h, lent, c3072) - lent0),
        (unsigned long long)(PT_CSTAT(h, lent_req, c3072) - lreq0));
  A_FREE(p);   /* back to its own class's list */
  CHECK(hak__bin_count(pt_bin(h, c3072)) == count, "a borrowed block must go back to its own class");
  pt_unstarve(c2048, &st);

  /* aligned: no borrowing */
  hak__heap_flush(h);
  pt_fill(c3072, 8);
  p = A_MEMALIGN(64, 2048);
  CHECK(p && ((uintptr_t)p & 63) == 0 && A_USABLE(p) == 2048, "memalign(64, 2048) got %zu bytes", A_USABLE(p));
  A_FREE(p);
}

//! Random Mid requests, held (so own lists run dry), after every class's
//! list was filled: every block is its own class or within W_MAX.  Returns
//! the number of borrows.
static uint64_t wmax_random(unsigned n_req) {
  hak_heap_t* h = pt_heap();
  hak__heap_flush(h);
  for (unsigned c = MID_C0; c < HAK_SMALL_CLASSES; c++) pt_fill(c, pt_bin(h, c)->limit);
  uint64_t b0 = 0;
  for (unsigned c = MID_C0; c < HAK_SMALL_CLASSES; c++) b0 += PT_CSTAT(h, borrow, c);
  void** keep = pt_map(n_req * sizeof(void*));
  uint64_t rng = 0x1234567ull;
  for (unsigned i = 0; i < n_req; i++) {
    size_t s = MID_MIN + hk_rand(&rng) % (HAK_MID_MAX - MID_MIN + 1);
    keep[i] = A_MALLOC(s);
    CHECK(keep[i], "malloc(%zu) failed", s);
    size_t u = A_USABLE(keep[i]);
    CHECK(u >= s, "usable %zu < request %zu", u, s);
    /* the own class always serves; a larger (borrowed) one only within W_MAX */
    CHECK(u == pt_csize(pt_cls(s)) || (uint64_t)u * 1000 <= (uint64_t)s * wmax_milli(),
          "request %zu served by a %zu block: beyond W_MAX %.3f", s, u, wmax_milli() / 1000.0);
  }
  for (unsigned i = 0; i < n_req; i++) A_FREE(keep[i]);
  munmap(keep, n_req * sizeof(void*));
  uint64_t b1 = 0;
  for (unsigned c = MID_C0; c < HAK_SMALL_CLASSES; c++) b1 += PT_CSTAT(h, borrow, c);
  return b1 - b0;
}

//! Child mode: W_MAX from the environment; with W_MAX 1.0 nothing borrows.
static int child_wmax(void) {
  hak_heap_t* h = pt_heap();
  uint64_t borrows = wmax_random(4000);
  printf("wmax %.3f: %llu borrows\n", wmax_milli() / 1000.0, (unsigned long long)borrows);
  if (wmax_milli() == 1000) {
    CHECK(borrows == 0, "W_MAX 1.0 still borrowed %llu times", (unsigned long long)borrows);
    hak__heap_flush(h);
    pt_fill(pt_cls(2560), 8);
    void* p = A_MALLOC(2048);
    CHECK(A_USABLE(p) == 2048, "W_MAX 1.0: malloc(2048) got %zu", A_USABLE(p));
    A_FREE(p);
  }
  return 0;
}

static void test_wmax_random(void) {
  uint64_t borrows = wmax_random(hk_slow() ? 2000 : 4000);   /* enough to run a class dry past its first refill (a list of 64 takes 32) */
  INFO("W_MAX 1.6 with full larger caches: %llu borrows", (unsigned long long)borrows);
  CHECK(borrows > 0, "no borrowing happened: the test did not exercise W_MAX");
  static const char* const wm[] = {"1.0", "1.3", "2.0"};
  for (int i = 0; i < 3; i++) {
    char e[64];
    snprintf(e, sizeof e, "HAKMEM_WMAX_MID=%s", wm[i]);
    const char* env[] = {e, "HAKMEM_LEARN=0", NULL};
    static hk_child_t c;
    hk_exec_self("wmax", env, 0, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "child %s: %s\n%s%s", e, hk_status_str(c.status), c.out, c.err);
    printf("  child %s: %s", e, c.out);
  }
}

//! Many live blocks of mixed sizes: no overlap, patterns survive frees and
//! reuse of their neighbours.
static void test_integrity(void) {
  unsigned n = hk_slow() ? 200 : 3000;
  void** p = pt_map(n * sizeof(void*));
  size_t* sz = pt_map(n * sizeof(size_t));
  uint64_t rng = 42;
  static const size_t seed_sz[] = {2048, 4096, 8192, 16384, 32768, 40960, 53248};
  for (int round = 0; round < 3; round++) {
    for (unsigned i = 0; i < n; i++) {
      if (p[i] && (round == 0 || i % 2 == (unsigned)round % 2)) continue;
      if (p[i]) {
        CHECK(hk_verify(p[i], sz[i], i * 7919 + sz[i], 0) == (size_t)-1, "block %u (%zu B) corrupted", i, sz[i]);
        A_FREE(p[i]);
      }
      uint64_t r = hk_rand(&rng);
      sz[i] = r & 1 ? seed_sz[(r >> 1) % 7] : MID_MIN + (r >> 8) % (HAK_MID_MAX - MID_MIN + 1);
      p[i] = A_MALLOC(sz[i]);
      CHECK(p[i], "malloc(%zu) failed", sz[i]);
      hk_fill(p[i], sz[i], i * 7919 + sz[i], 0);
    }
    for (unsigned i = 0; i < n; i++)
      CHECK(hk_verify(p[i], sz[i], i * 7919 + sz[i], 0) == (size_t)-1, "round %d: block %u (%zu B at %p) corrupted",
            round, i, sz[i], p[i]);
    uintptr_t* s = pt_map(n * sizeof(uintptr_t));
    memcpy(s, p, n * sizeof(void*));
    qsort(s, n, sizeof *s, pt_cmp_ptr);
    for (unsigned i = 0; i + 1 < n; i++)
      CHECK(s[i] + A_USABLE((void*)s[i]) <= s[i + 1], "blocks %p (+%zu) and %p overlap", (void*)s[i],
            A_USABLE((void*)s[i]), (void*)s[i + 1]);
    munmap(s, n * sizeof(uintptr_t));
  }
  for (unsigned i = 0; i < n; i++) A_FREE(p[i]);
  munmap(p, n * sizeof(void*));
  munmap(sz, n * sizeof(size_t));
}

//! A class not used before (runs first): fresh pages, so misses and
//! refills move, one miss per fresh page.
static void test_fresh_misses(void) {
  hak_heap_t* h = pt_heap();
  unsigned cf = pt_cls(12288);
  hak__heap_flush(h);
  uint64_t miss0 = PT_CSTAT(h, miss, cf), ref0 = PT_CSTAT(h, refill, cf);
  uint64_t pg0 = PT_CSTAT(h, refill_pages, cf);
  hak_layer_stats_t L0 = pt_mid_layer();
  void* q[40];
  for (int i = 0; i < 40; i++) CHECK((q[i] = A_MALLOC(12288)), "malloc failed");
  uint64_t dm = PT_CSTAT(h, miss, cf) - miss0, dr = PT_CSTAT(h, refill, cf) - ref0;
  uint64_t dp = PT_CSTAT(h, refill_pages, cf) - pg0;
  hak_layer_stats_t L1 = pt_mid_layer();
  INFO("40 x 12288 fresh: misses %llu refills %llu pages %llu", (unsigned long long)dm, (unsigned long long)dr,
       (unsigned long long)dp);
  CHECK(hak__small_cached_blocks(cf) == 0, "class 12288 has cached blocks: not fresh");
  CHECK(dp >= 40 / hak__class_cap[cf] && dr >= 1 && dm == dp, "fresh class: misses %llu refills %llu pages %llu",
        (unsigned long long)dm, (unsigned long long)dr, (unsigned long long)dp);
  CHECK(L1.misses - L0.misses == dm, "layer misses +%llu, class misses +%llu", L1.misses - L0.misses,
        (unsigned long long)dm);
  for (int i = 0; i < 40; i++) A_FREE(q[i]);
}

//! One class, exact bookkeeping.  After a flush, the thread allocates n
//! blocks and frees them all.  The first spill finds allocations since the
//! last one (none before): half the list, at most a base, goes to central.
//! The next finds none (the thread now only frees): the list keeps
//! a few blocks, spills the rest, and from then on spills whenever a
//! batch more has come.  Every freed block is in the list or in central.
//! Allocating them again needs no fresh page (hits, central pops), and the
//! first refill of the empty list gives it its whole limit back.
static void test_round_trip(void) {
  hak_heap_t* h = pt_heap();
  unsigned c = pt_cls(4096);
  PoolTLSBin* b = pt_bin(h, c);
  hak__heap_flush(h);
  uint32_t base = b->base, limit = b->limit;
  /* a limit below base only in free-only mode (an earlier test's frees) */
  CHECK(base >= 4 && base == (uint32_t)hak__opt.pool_tls_ring && (limit >= base || h->aux[c].freeing),
        "base %u, limit %u", base, limit);
  uint32_t batch = pt_mid_batch(c, base), keep = pt_mid_keep(c);
  unsigned n = 2 * hak__pool_most(c) + 3 * (batch + keep) + 7;   /* the limit may grow meanwhile */
  void** p = pt_map(n * sizeof(void*));
  for (unsigned i = 0; i < n; i++) {
    p[i] = A_MALLOC(4096);
    CHECK(p[i], "malloc failed");
    ((uint64_t*)p[i])[3] = i;
  }
  uint32_t c0 = hak__bin_count(b);
  uint64_t push0 = PT_CSTAT(h, central_push, c);
  for (unsigned i = 0; i < n; i++) {
    CHECK(((uint64_t*)p[i])[3] == i, "block %u overwritten while live", i);
    A_FREE(p[i]);
  }
  uint64_t pushed = PT_CSTAT(h, central_push, c) - push0;
  CHECK(h->aux[c].freeing && b->limit == keep + batch, "after %u frees: freeing %u, limit %u (want %u)", n,
        h->aux[c].freeing, b->limit, keep + batch);
  CHECK(hak__bin_count(b) >= keep && hak__bin_count(b) <= keep + batch, "the list holds %u, want %u to %u", hak__bin_count(b),
        keep, keep + batch);
  CHECK(c0 + n == hak__bin_count(b) + pushed, "lost blocks: %u cached and %u freed, %u in the list, %llu pushed", c0, n,
        hak__bin_count(b), (unsigned long long)pushed);

  hak_layer_stats_t L0 = pt_mid_layer();
  uint64_t miss0 = PT_CSTAT(h, miss, c), ref0 = PT_CSTAT(h, refill, c), pop0 = PT_CSTAT(h, central_pop, c);
  uint64_t al0 = PT_CSTAT(h, alloc, c);
  uint32_t local = hak__bin_count(b);
  for (unsigned i = 0; i < n; i++) CHECK((p[i] = A_MALLOC(4096)), "malloc failed");
  hak_layer_stats_t L1 = pt_mid_layer();
  CHECK(!h->aux[c].freeing && b->limit >= base, "the list stayed short (limit %u, base %u) after it ran empty",
        b->limit, base);
  CHECK(PT_CSTAT(h, alloc, c) - al0 == n, "alloc counter moved %llu, expected %u",
        (unsigned long long)(PT_CSTAT(h, alloc, c) - al0), n);
  CHECK(PT_CSTAT(h, miss, c) == miss0 && PT_CSTAT(h, refill, c) == ref0,
        "blocks were cached, yet %llu misses, %llu refills", (unsigned long long)(PT_CSTAT(h, miss, c) - miss0),
        (unsigned long long)(PT_CSTAT(h, refill, c) - ref0));
  CHECK(PT_CSTAT(h, central_pop, c) - pop0 >= n - local, "central pops %llu < %u needed",
        (unsigned long long)(PT_CSTAT(h, central_pop, c) - pop0), n - local);
  CHECK(L1.allocs - L0.allocs >= n && L1.hits - L0.hits >= n && L1.misses == L0.misses,
        "layer stats: allocs +%llu hits +%llu misses +%llu", L1.allocs - L0.allocs, L1.hits - L0.hits,
        L1.misses - L0.misses);
  for (unsigned i = 0; i < n; i++) A_FREE(p[i]);
  munmap(p, n * sizeof(void*));
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "wmax") == 0) {
    hk_begin("test_pool_basic:wmax", 60);
    return child_wmax();
  }
  hk_begin("test_pool_basic", 120);
  printf("test_pool_basic (%s)\n", REL_API_NAME);
  HK_STEP(test_classes());
  HK_STEP(test_block_starts());
  HK_STEP(test_fresh_misses());
  HK_STEP(test_usable_sizes());
  HK_STEP(test_wmax_borrow());
  HK_STEP(test_wmax_random());
  HK_STEP(test_integrity());
  HK_STEP(test_round_trip());
  HK_STEP(test_tag_bins());
  printf("test_pool_basic: ok\n");
  return 0;
}
