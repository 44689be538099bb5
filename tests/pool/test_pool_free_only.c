/* What threads that come and go, or only free, may hold from reuse.
 *  1. A thread that frees a class it does not allocate keeps at most
 *     a few blocks and one batch of it; the rest reaches central at
 *     once, and its list has its whole limit again when it next allocates.
 *     So too a Tiny class, whose batch is HAK_FREEING_TINY_BYTES; and a
 *     thread that only allocates a Tiny class asks central for
 *     HAK_ALLOC_ONLY_BYTES at most per refill (a whole chain may bring up
 *     to twice that).
 *  2. A heap parked at thread exit starts its next thread from the base
 *     Tiny limits, not the limits its last thread grew.
 *  3. An exiting thread's partly carved page is carved on by the next
 *     thread that needs the class (no stranded tail), and an orphan nobody
 *     adopts retires after a tick, so its class can give it back. */
#define _GNU_SOURCE
#include <pthread.h>
#include "pool_test.h"

#define N_MID 1000
#define MID_SIZE (16 * KiB)
static void* mid_blocks[N_MID];

static void* free_only(void* arg) {
  (void)arg;
  hak_heap_t* h = pt_heap();
  unsigned c = pt_cls(MID_SIZE);
  PoolTLSBin* b = pt_bin(h, c);
  uint64_t central0 = hak__small_cached_blocks(c);
  for (int i = 0; i < N_MID; i++) A_FREE(mid_blocks[i]);
  uint32_t held = hak__bin_count(b);
  uint32_t batch = pt_mid_batch(c, b->base), keep = pt_mid_keep(c);
  CHECK(keep == 1, "a free-only list of %d B blocks keeps %u of them", (int)MID_SIZE, keep);
  CHECK(h->aux[c].freeing && b->limit == keep + batch, "a free-only thread kept its whole list (limit %u, base %u)",
        b->limit, b->base);
  CHECK(held <= keep + batch, "a free-only thread holds %u blocks (batch %u)", held, batch);
  uint64_t central = hak__small_cached_blocks(c);
  /* blocks of the allocating thread's active pages went to its inbox */
  CHECK(central + HAK_INBOX_MAX >= central0 + N_MID - held,
        "central gained %llu of %d freed blocks, the thread holds %u", (unsigned long long)(central - central0),
        N_MID, held);
  /* it allocates again: the list empties, and the refill gives it its limit back */
  void* p[HAK_FREEING + HAK_FREEING_LEAST + HAK_FREEING_MID_BYTES / MID_SIZE + 1];
  uint32_t k = hak__bin_count(b) + 1;
  for (uint32_t i = 0; i < k; i++) CHECK((p[i] = A_MALLOC(MID_SIZE)) != NULL, "malloc");
  CHECK(!h->aux[c].freeing && b->limit >= b->base, "the list stayed short (limit %u of base %u) after a refill",
        b->limit, b->base);
  for (uint32_t i = 0; i < k; i++) A_FREE(p[i]);
  return NULL;
}

#define N_TINY 20000
static void* tiny_blocks[N_TINY];
#define FO_SIZE 64
#define FO_N 8000

//! Frees FO_N blocks of size (uintptr_t)arg made by another thread.
static void* tiny_free_only(void* arg) {
  size_t sz = (size_t)(uintptr_t)arg;
  hak_heap_t* h = pt_heap();
  unsigned c = (unsigned)hak__small_class(sz);
  PoolTLSBin* b = pt_bin(h, c);
  uint32_t batch = HAK_FREEING_TINY_BYTES / (uint32_t)sz, most = 0, least = ~0u;
  if (batch > b->base) batch = b->base;
  for (int i = 0; i < FO_N; i++) {
    A_FREE(tiny_blocks[i]);
    uint32_t n = hak__bin_count(b);
    if (n > most) most = n;
    if (i > 2 * (int)b->base && n < least) least = n;
  }
  CHECK(h->aux[c].freeing, "a thread that only frees class %zu is not in free-only mode", sz);
  CHECK(hak__bin_count(b) <= HAK_FREEING + batch, "a free-only Tiny list of %zu B holds %u blocks (batch %u)", sz,
        hak__bin_count(b), batch);
  /* held at most: its base before its first spill went free-only, or a batch after */
  uint32_t bound = b->base > HAK_FREEING + batch ? b->base : HAK_FREEING + batch;
  CHECK(most <= bound + 1, "a free-only Tiny list held %u blocks at most (base %u, batch %u)", most, b->base, batch);
  /* each spill keeps HAK_FREEING: a list that left free-only mode would
   * spill half (16-byte blocks, whose free-only limit is above their base) */
  CHECK(least == HAK_FREEING, "a free-only Tiny list of %zu B kept %u blocks at a spill, not %d", sz, least,
        HAK_FREEING);
  return NULL;
}

static void* tiny_alloc_only(void* arg) {
  (void)arg;
  hak_heap_t* h = pt_heap();
  unsigned c = (unsigned)hak__small_class(FO_SIZE);
  PoolTLSBin* b = pt_bin(h, c);
  uint64_t pop0 = PT_CSTAT(h, central_pop, c);
  uint32_t most = 0, cap = HAK_ALLOC_ONLY_BYTES / FO_SIZE;
  for (int i = 0; i < FO_N; i++) {
    CHECK((tiny_blocks[i] = A_MALLOC(FO_SIZE)) != NULL, "malloc(%d)", FO_SIZE);
    if (hak__bin_count(b) > most) most = hak__bin_count(b);
  }
  CHECK(PT_CSTAT(h, central_pop, c) - pop0 >= (uint64_t)FO_N / 2,
        "an allocating thread took %llu of %d blocks from central: the test tests nothing",
        (unsigned long long)(PT_CSTAT(h, central_pop, c) - pop0), FO_N);
  CHECK(most < 2 * cap, "a thread that only allocates held %u blocks after a refill (asked for %u at most)", most,
        cap);
  return NULL;
}
static hak_heap_t* grower_heap;

static void* grower(void* arg) {
  (void)arg;
  hak_heap_t* h = pt_heap();
  unsigned c = hak__tiny_class_of[(64 + 15) >> 4];
  for (int r = 0; r < 3; r++) {
    for (int i = 0; i < N_TINY; i++) CHECK((tiny_blocks[i] = A_MALLOC(64)) != NULL, "malloc(64)");
    for (int i = 0; i < N_TINY; i++) A_FREE(tiny_blocks[i]);
  }
  CHECK(h->bins[c].limit > h->bins[c].base, "refills from central did not grow the limit (%u)",
        h->bins[c].limit);
  grower_heap = h;
  return NULL;
}

#define ORPHAN_SIZE 48
static void* orphan_block;

static void* one_block(void* arg) {
  orphan_block = A_MALLOC((size_t)(uintptr_t)arg);
  CHECK(orphan_block, "malloc");
  pt_escape(orphan_block);
  return NULL;
}

static int adopted;

static void* adopter(void* arg) {
  (void)arg;
  hak_page_t* pg = hak__page_of((uintptr_t)orphan_block);
  uint32_t carved = atomic_load(&pg->carved);
  uintptr_t from = hak__page_first(pg) + (uintptr_t)carved * pg->block_size;
  uint32_t n = 2 * pg->capacity;
  void** p = A_MALLOC(n * sizeof *p);
  CHECK(p, "malloc");
  for (uint32_t i = 0; i < n; i++) {
    CHECK((p[i] = A_MALLOC(ORPHAN_SIZE)) != NULL, "malloc(%d)", ORPHAN_SIZE);
    if ((uintptr_t)p[i] >= from && hak__page_of((uintptr_t)p[i]) == pg) adopted = 1;
  }
  for (uint32_t i = 0; i < n; i++) A_FREE(p[i]);
  A_FREE(p);
  return NULL;
}

static void run(void* (*fn)(void*), void* arg) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fn, arg) == 0, "pthread_create");
  pthread_join(t, NULL);
}

int main(void) {
  hk_begin("pool/test_pool_free_only", 60);
  /* no scavenge may take central blocks, and no maintenance tick may
   * retire an orphan, while the test counts and looks */
  hak__opt.keep = 1;
  pt_heap();

  /* 1 */
  for (int i = 0; i < N_MID; i++) CHECK((mid_blocks[i] = A_MALLOC(MID_SIZE)) != NULL, "malloc");
  run(free_only, NULL);

  /* 1, Tiny: main allocates, a thread frees; then a thread allocates them back from central */
  for (int i = 0; i < FO_N; i++) CHECK((tiny_blocks[i] = A_MALLOC(16)) != NULL, "malloc(16)");
  run(tiny_free_only, (void*)(uintptr_t)16);
  for (int i = 0; i < FO_N; i++) CHECK((tiny_blocks[i] = A_MALLOC(FO_SIZE)) != NULL, "malloc(%d)", FO_SIZE);
  run(tiny_free_only, (void*)(uintptr_t)FO_SIZE);
  run(tiny_alloc_only, NULL);
  for (int i = 0; i < FO_N; i++) A_FREE(tiny_blocks[i]);

  /* 2 */
  run(grower, NULL);
  unsigned c64 = hak__tiny_class_of[(64 + 15) >> 4];
  CHECK(grower_heap->bins[c64].limit == grower_heap->bins[c64].base,
        "a parked heap kept its thread's grown limit %u (base %u)", grower_heap->bins[c64].limit,
        grower_heap->bins[c64].base);

  /* 3 */
  run(one_block, (void*)(uintptr_t)ORPHAN_SIZE);
  hak_page_t* pg = hak__page_of((uintptr_t)orphan_block);
  CHECK(atomic_load(&pg->state) == HAK_PAGE_ACTIVE && atomic_load(&pg->carved) < pg->capacity &&
            hak__page_owner(pg) == HAK_TOKEN_NONE,
        "an exiting thread's partly carved page is not an orphan (state %d, carved %u of %u)",
        (int)atomic_load(&pg->state), atomic_load(&pg->carved), pg->capacity);
  run(adopter, NULL);
  CHECK(adopted, "no block past the exited thread's carved count: its page's tail was stranded");
  A_FREE(orphan_block);

  /* an orphan nobody adopts: some grace, then it retires */
  unsigned c80 = hak__tiny_class_of[(80 + 15) >> 4];
  run(one_block, (void*)(uintptr_t)80);
  pg = hak__page_of((uintptr_t)orphan_block);
  CHECK(atomic_load(&pg->state) == HAK_PAGE_ACTIVE, "no orphan of the 80-byte class");
  hak__page_orphans_age(c80, pg->orphan_ns);
  CHECK(atomic_load(&pg->state) == HAK_PAGE_ACTIVE, "an orphan retired as soon as it was left");
  hak__page_orphans_age(c80, pg->orphan_ns + 1000000000ull);
  CHECK(atomic_load(&pg->state) == HAK_PAGE_FULL, "an orphan nobody adopted for a second did not retire (state %d)",
        (int)atomic_load(&pg->state));
  A_FREE(orphan_block);

  /* a trim retires every orphan, so their pages can go back at once */
  unsigned c96 = hak__tiny_class_of[(96 + 15) >> 4];
  run(one_block, (void*)(uintptr_t)96);
  pg = hak__page_of((uintptr_t)orphan_block);
  CHECK(atomic_load(&pg->state) == HAK_PAGE_ACTIVE && pg->cls == c96, "no orphan of the 96-byte class");
  A_FREE(orphan_block);
  hak_trim();
  /* its segment may be unmapped by now: look at the segment map first */
  CHECK(hak__seg_kind((uintptr_t)pg) != HAK_SEG_SMALL || atomic_load(&pg->state) == HAK_PAGE_FREE,
        "hak_trim left an orphan whose blocks were all back (state %d)", (int)atomic_load(&pg->state));
  printf("pool/test_pool_free_only: ok\n");
  return 0;
}
