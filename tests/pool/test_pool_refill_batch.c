/* Refill batching (seed phase 6.25, test_pool_refill_batch).  For
 * HAKMEM_POOL_REFILL_BATCH = 1, 2, 4 (each in a re-executed child, since
 * options are read once at start):
 *  - under CAP every refill takes `batch` fresh pages (refill_pages/refill
 *    = batch), well over CAP one page at a time (soft CAP, HAKMEM_CAP_MID
 *    set small);
 *  - a refill fills the list, and the allocations that follow are served
 *    from it; frees fill it again;
 *  - wholly free pages beyond CAP go back to the OS;
 *  - under CAP a refill takes `batch` pages across segment boundaries too. */
#define _GNU_SOURCE
#include "pool_test.h"

#define CAP 6

//! Allocates 8 KiB blocks without freeing and watches each refill.
static void check_batches(int batch) {
  hak_heap_t* h = pt_heap();
  unsigned c = pt_cls(8192);
  CHECK(hak__policy_cap(c) == CAP, "CAP of class 8192 is %u, expected %d", hak__policy_cap(c), CAP);
  unsigned bpp = hak__class_cap[c];
  unsigned n = (CAP + 4 * batch + 8) * bpp;
  void** p = pt_map(n * sizeof(void*));
  unsigned under = 0, over = 0, between = 0, between_single = 0;
  uint64_t max_batched_in_use = 0;
  for (unsigned i = 0; i < n; i++) {
    uint64_t in0 = hak__small_pages_in_use(c);
    uint64_t r0 = PT_CSTAT(h, refill, c), pg0 = PT_CSTAT(h, refill_pages, c);
    p[i] = A_MALLOC(8192);
    CHECK(p[i] && A_USABLE(p[i]) == 8192, "malloc(8192) failed or borrowed");
    uint64_t dr = PT_CSTAT(h, refill, c) - r0, dp = PT_CSTAT(h, refill_pages, c) - pg0;
    uint64_t in1 = hak__small_pages_in_use(c);
    if (!dr) {
      CHECK(in1 == in0 && dp == 0, "pages in use %llu -> %llu without a refill", (unsigned long long)in0,
            (unsigned long long)in1);
      continue;
    }
    CHECK(dr == 1 && in1 - in0 == dp, "one malloc: %llu refills, %llu pages counted, %llu taken",
          (unsigned long long)dr, (unsigned long long)dp, (unsigned long long)(in1 - in0));
    if (in0 + (uint64_t)batch <= CAP) {
      CHECK(dp == (uint64_t)batch, "under CAP (%llu in use, CAP %d) a refill took %llu pages, batch %d",
            (unsigned long long)in0, CAP, (unsigned long long)dp, batch);
      under++;
    } else if (in0 >= (uint64_t)CAP + (uint64_t)batch) {
      CHECK(dp == 1, "over CAP (%llu in use, CAP %d) a refill took %llu pages", (unsigned long long)in0, CAP,
            (unsigned long long)dp);
      over++;
    } else {
      between++;
      between_single += dp == 1;
    }
    if (dp > 1 && in1 > max_batched_in_use) max_batched_in_use = in1;
  }
  printf("batch %d: refills under CAP %u (x%d pages), near CAP %u (%u single), over CAP %u (x1); "
         "batched refills reached %llu pages (CAP %d)\n",
         batch, under, batch, between, between_single, over, (unsigned long long)max_batched_in_use, CAP);
  CHECK(under >= 1 && over >= 4, "the run did not cover both sides of CAP: %u under, %u over", under, over);

  /* the pages beyond CAP, once wholly free, go back */
  for (unsigned i = 0; i < n; i++) A_FREE(p[i]);
  munmap(p, n * sizeof(void*));
  hak__heap_flush(h);
  uint64_t before = hak__small_pages_in_use(c);
  hak__small_scavenge(c, CAP, 0);
  uint64_t after = hak__small_pages_in_use(c);
  printf("batch %d: pages in use %llu after freeing all, %llu after the scavenge (CAP %d)\n", batch,
         (unsigned long long)before, (unsigned long long)after, CAP);
  CHECK(after <= CAP + HAK_TLS_PAGES, "%llu pages still in use after a scavenge to CAP %d",
        (unsigned long long)after, CAP);
  CHECK(after < before, "no page went back");
}

//! Under CAP across segment boundaries: with the class's CAP raised, every
//! refill takes `batch` pages, those that the last segment had left and a
//! new segment's (a batch that found fewer pages at hand took only those).
static void check_segments(int batch) {
  hak_heap_t* h = pt_heap();
  unsigned c = pt_cls(16384);
  uint32_t cap0 = hak__policy_cap(c);
  atomic_store_explicit(&hak__cap[c], 4096, memory_order_relaxed);
  unsigned bpp = hak__class_cap[c];
  unsigned n = 3 * HAK_PAGES_PER_SEG * bpp, refills = 0;
  void** p = pt_map(n * sizeof(void*));
  uint64_t in_start = hak__small_pages_in_use(c);
  for (unsigned i = 0; i < n; i++) {
    uint64_t r0 = PT_CSTAT(h, refill, c), pg0 = PT_CSTAT(h, refill_pages, c);
    p[i] = A_MALLOC(16384);
    CHECK(p[i], "malloc(16384) failed");
    uint64_t dr = PT_CSTAT(h, refill, c) - r0, dp = PT_CSTAT(h, refill_pages, c) - pg0;
    if (!dr) continue;
    refills++;
    CHECK(dp == (uint64_t)batch, "refill %u (%llu pages in use) took %llu pages, batch %d", refills,
          (unsigned long long)hak__small_pages_in_use(c), (unsigned long long)dp, batch);
  }
  uint64_t in_end = hak__small_pages_in_use(c);
  printf("batch %d: %u refills of %d pages each over %llu pages (%d a segment)\n", batch, refills, batch,
         (unsigned long long)(in_end - in_start), (int)HAK_PAGES_PER_SEG);
  CHECK(in_end - in_start > 2 * HAK_PAGES_PER_SEG, "only %llu pages taken: no segment boundary crossed",
        (unsigned long long)(in_end - in_start));
  for (unsigned i = 0; i < n; i++) A_FREE(p[i]);
  munmap(p, n * sizeof(void*));
  atomic_store_explicit(&hak__cap[c], cap0, memory_order_relaxed);
}

//! The list: a refill carves half a base (or what the page has left) and
//! the next allocations pop it; frees fill it again, and what it holds then
//! serves as many allocations without any refill.
static void check_list(void) {
  hak_heap_t* h = pt_heap();
  unsigned c = pt_cls(2048);
  PoolTLSBin* b = pt_bin(h, c);
  hak__heap_flush(h);
  unsigned n = 400, from_list = 0, slow = 0;
  void** p = pt_map(n * sizeof(void*));
  for (unsigned i = 0; i < n; i++) {
    uint32_t c0 = hak__bin_count(b);
    p[i] = A_MALLOC(2048);
    CHECK(p[i], "malloc failed");
    if (c0) {
      CHECK(hak__bin_count(b) == c0 - 1, "list count %u -> %u on a list pop", c0, hak__bin_count(b));
      from_list++;
    } else {
      CHECK(hak__bin_count(b) >= 1, "a refill left the list empty (count %u after the pop)", hak__bin_count(b));
      slow++;
    }
  }
  printf("list: %u of %u allocations served from the list (%u refills of the list, limit %u)\n", from_list, n, slow,
         b->limit);
  /* a refill carves half a base, or the rest of a page (31 per page) */
  CHECK(from_list * 2 >= n, "only %u of %u allocations came from the list", from_list, n);
  for (unsigned i = 0; i < n; i++) A_FREE(p[i]);
  CHECK(hak__bin_count(b) >= 1 && hak__bin_count(b) <= b->limit, "list holds %u after %u frees, limit %u", hak__bin_count(b), n, b->limit);
  uint64_t ref0 = PT_CSTAT(h, refill, c), pop0 = PT_CSTAT(h, central_pop, c);
  uint32_t k = hak__bin_count(b);
  for (unsigned i = 0; i < k; i++) CHECK((p[i] = A_MALLOC(2048)), "malloc failed");
  CHECK(hak__bin_count(b) == 0 && PT_CSTAT(h, refill, c) == ref0 && PT_CSTAT(h, central_pop, c) == pop0,
        "the list did not serve its %u blocks alone (count %u)", k, hak__bin_count(b));
  for (unsigned i = 0; i < k; i++) A_FREE(p[i]);
  munmap(p, n * sizeof(void*));
}

static int child(void) {
  int batch = hak__opt.pool_refill_batch;
  const char* e = getenv("HAKMEM_POOL_REFILL_BATCH");
  CHECK(e && atoi(e) == batch, "HAKMEM_POOL_REFILL_BATCH=%s but the option is %d", e ? e : "(unset)", batch);
  check_batches(batch);
  check_list();
  check_segments(batch);
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0) {
    hk_begin("test_pool_refill_batch:child", 60);
    return child();
  }
  hk_begin("test_pool_refill_batch", 120);
  printf("test_pool_refill_batch (%s)\n", REL_API_NAME);
  static const char* const b[] = {"1", "2", "4"};
  for (int i = 0; i < 3; i++) {
    char eb[64], ec[64];
    snprintf(eb, sizeof eb, "HAKMEM_POOL_REFILL_BATCH=%s", b[i]);
    snprintf(ec, sizeof ec, "HAKMEM_CAP_MID=%d", CAP);
    /* no background scavenger: the test's own scavenge must not find the class busy */
    const char* env[] = {eb, ec, "HAKMEM_BG=0", "HAKMEM_LEARN=0", NULL};
    static hk_child_t ch;
    hk_exec_self("child", env, 0, &ch);
    fputs(ch.out, stdout);
    CHECK(WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0, "child %s: %s\n%s", eb, hk_status_str(ch.status),
          ch.err);
  }
  printf("test_pool_refill_batch: ok\n");
  return 0;
}
