/* Tiny lists spill their oldest blocks (src/tiny.c, bin_spill_oldest).
 *  - order: after frees past the limit, the list holds exactly the newest
 *    frees, newest first (a list that spilled its newest would hold old
 *    blocks below the last few frees);
 *  - churn: random sizes in alternating alloc-heavy and free-heavy phases
 *    (the pattern of Python's trace), where the noted tail and cuts go stale
 *    and are found again.  Every live block carries a serial number that
 *    must be intact at its free (no block handed out twice), and every
 *    list's count equals its length (no block lost or linked twice);
 *  - the cuts were used: some spills took a batch without a walk;
 *  - a flush forgets the tail. */
#define _GNU_SOURCE
#include "../pool/pool_test.h"
#include "link.h"

static unsigned tcls(size_t n) { return (unsigned)hak__small_class(n); }

//! The list's length, walked at most max + 1 links (a cycle stops there).
static uint32_t list_len(PoolTLSBin* b, unsigned c, uint32_t max) {
  uint32_t n = 0;
  for (void* p = b->head; p && n <= max; p = hak__link_get(p, (int)c)) n++;
  return n;
}

static void check_order(void) {
  hak_heap_t* h = pt_heap();
  unsigned c = tcls(64);
  PoolTLSBin* b = pt_bin(h, c);
  hak__heap_flush(h);
  CHECK(h->aux[c].tail == NULL && h->aux[c].ncuts == 0, "a flush kept the list's tail");
  unsigned n = 4 * b->limit + 100;
  void** p = pt_map(n * sizeof(void*));
  for (unsigned i = 0; i < n; i++) {
    p[i] = A_MALLOC(64);
    CHECK(p[i], "malloc(64) failed");
  }
  uint64_t push0 = PT_CSTAT(h, central_push, c);
  for (unsigned i = 0; i < n; i++) A_FREE(p[i]);
  uint64_t pushed = PT_CSTAT(h, central_push, c) - push0;
  CHECK(pushed > 0 && hak__bin_count(b) <= b->limit, "%u frees: %llu blocks spilled, list %u of limit %u", n,
        (unsigned long long)pushed, hak__bin_count(b), b->limit);
  uint32_t k = 0;
  for (void* q = b->head; q; q = hak__link_get(q, (int)c), k++) {
    CHECK(k < hak__bin_count(b), "the list is longer than its count %u", hak__bin_count(b));
    CHECK(q == p[n - 1 - k], "list place %u holds the block freed %u-th from last, not the %u-th", k,
          (unsigned)(n - 1 - k), k);
  }
  CHECK(k == hak__bin_count(b), "list length %u, count %u", k, hak__bin_count(b));
  printf("order: %u frees, %llu spilled, the list holds the newest %u in order\n", n,
         (unsigned long long)pushed, k);
  munmap(p, n * sizeof(void*));
}

#define LIVE 120000
static void check_churn(void) {
  hak_heap_t* h = pt_heap();
  uint64_t** live = pt_map(LIVE * sizeof(void*));
  uint64_t* serial = pt_map(LIVE * sizeof(uint64_t));
  unsigned nlive = 0, cut_spills = 0;
  uint64_t rng = 0x9e3779b97f4a7c15ull, next_serial = 1;
  for (unsigned step = 0; step < 3000000; step++) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    int alloc_phase = (step / 200000) % 2 == 0;      /* 200k steps of each: swings of 100k blocks */
    unsigned r = (unsigned)(rng % 100);
    int do_alloc = nlive == 0 || (nlive < LIVE && r < (alloc_phase ? 75u : 25u));
    if (do_alloc) {
      size_t sz = 16 + (size_t)((rng >> 20) % 3) * 16 + ((rng >> 40) % 8 == 0 ? (size_t)((rng >> 24) % 1000) : 0);
      uint64_t* q = A_MALLOC(sz);
      CHECK(q, "malloc(%zu) failed", sz);
      q[0] = next_serial;
      serial[nlive] = next_serial++;
      live[nlive++] = q;
    } else {
      unsigned i = (unsigned)((rng >> 32) % nlive);
      uint64_t* q = live[i];
      CHECK(q[0] == serial[i], "block %p carries serial %llu, its holder %llu: handed out twice", (void*)q,
            (unsigned long long)q[0], (unsigned long long)serial[i]);
      live[i] = live[--nlive];
      serial[i] = serial[nlive];
      unsigned c = hak__page_of((uintptr_t)q)->cls;
      uint32_t nc = h->aux[c].ncuts;
      uint64_t pushed = PT_CSTAT(h, central_push, c);
      A_FREE(q);
      if (h->aux[c].ncuts + 1 == nc && PT_CSTAT(h, central_push, c) > pushed) cut_spills++;
    }
    if (step % 50000 == 0)
      for (unsigned c = 0; c < HAK_TINY_CLASSES; c++) {
        PoolTLSBin* b = pt_bin(h, c);
        uint32_t len = list_len(b, c, hak__bin_count(b));
        CHECK(len == hak__bin_count(b), "step %u class %u: list length %u, count %u", step, c, len, hak__bin_count(b));
      }
  }
  for (unsigned i = 0; i < nlive; i++) {
    CHECK(live[i][0] == serial[i], "block %p: serial %llu, holder %llu", (void*)live[i],
          (unsigned long long)live[i][0], (unsigned long long)serial[i]);
    A_FREE(live[i]);
  }
  printf("churn: 3M steps, %u spills took a noted cut (no walk); 48-byte list limit %u\n", cut_spills,
         pt_bin(h, tcls(48))->limit);
  CHECK(cut_spills > 0, "no spill used a noted cut");
  munmap(live, LIVE * sizeof(void*));
  munmap(serial, LIVE * sizeof(uint64_t));
}

int main(void) {
  hk_begin("test_tiny_spill", 120);
  printf("test_tiny_spill (%s)\n", REL_API_NAME);
  check_order();
  check_churn();
  printf("test_tiny_spill: ok\n");
  return 0;
}
