/* Pages move between classes: a program whose sizes change.
 *  1. Blocks of one class, all freed, then blocks of another: the second
 *     class takes the first one's wholly free pages (warm, still committed)
 *     instead of fresh ones, so the Mid layer maps no more memory.
 *  2. A block handed out unlinked from a warm page (an aligned carve) holds
 *     no stale free mark: another thread's free of it is not taken for a
 *     double free.
 *  3. calloc of blocks carved from warm pages gives zeros.
 *  4. Warm pages nobody takes go back to the OS after the decay window,
 *     and malloc_trim gives back the rest at once. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include "pool_test.h"

#define A_SIZE 30000             /* class 32 KiB: two blocks a page, never coloured */
#define A_BYTES (16 * MiB)
#define B_SIZE 8000              /* class 8 KiB */
#define B_BYTES (8 * MiB)
#define N_ALIGNED 32

static void* aligned[N_ALIGNED];

static void* free_aligned(void* arg) {
  (void)arg;
  for (int i = 0; i < N_ALIGNED; i++) A_FREE(aligned[i]);
  return NULL;
}

int main(void) {
  hk_begin("pool/test_pool_reuse", 60);
  size_t na = A_BYTES / A_SIZE, nb = B_BYTES / B_SIZE;
  void** a = calloc(na, sizeof *a);
  void** b = calloc(nb, sizeof *b);
  CHECK(a && b, "calloc of the pointer arrays");

  /* 1. class A's pages, all free, serve class B */
  for (size_t i = 0; i < na; i++) {
    a[i] = A_MALLOC(A_SIZE);
    CHECK(a[i], "malloc(%d)", A_SIZE);
    memset(a[i], 0x5a, A_SIZE);
  }
  for (size_t i = 0; i < na; i++) A_FREE(a[i]);
  uint64_t m1 = pt_mid_layer().bytes_mapped, taken1 = hak__page_warm_taken();
  for (size_t i = 0; i < nb; i++) {
    b[i] = A_MALLOC(B_SIZE);
    CHECK(b[i], "malloc(%d)", B_SIZE);
    memset(b[i], 0xa5, B_SIZE);
  }
  uint64_t m2 = pt_mid_layer().bytes_mapped, taken2 = hak__page_warm_taken();
  INFO("Mid mapped %llu -> %llu kB over %zu kB of class B; pages taken warm %llu; warm now %u",
       (unsigned long long)m1 >> 10, (unsigned long long)m2 >> 10, (size_t)B_BYTES >> 10,
       (unsigned long long)(taken2 - taken1), hak__page_warm_count());
  CHECK(taken2 - taken1 >= (B_BYTES / 2) / HAK_PAGE_SIZE,
        "class B took %llu warm pages for %zu kB: class A's free pages were not reused",
        (unsigned long long)(taken2 - taken1), (size_t)B_BYTES >> 10);
  CHECK(m2 <= m1 + 2 * MiB, "the Mid layer mapped %llu kB more for class B although class A's %zu kB were free",
        (unsigned long long)(m2 - m1) >> 10, (size_t)A_BYTES >> 10);
  for (size_t i = 0; i < nb; i++) {
    CHECK(((unsigned char*)b[i])[B_SIZE - 1] == 0xa5, "class B block %zu lost its contents", i);
    CHECK(A_USABLE(b[i]) >= B_SIZE, "class B block %zu: usable size %zu", i, (size_t)A_USABLE(b[i]));
  }

  /* 2. aligned blocks carved from warm pages (class A's, whose blocks were
   * marked free at the page's start and middle, where 4 KiB blocks start
   * too), freed by another thread: the checked free path must not see a
   * double free */
  CHECK(hak__page_warm_count() > 0, "no warm pages left for the aligned carve");
  uint64_t taken3 = hak__page_warm_taken();
  for (int i = 0; i < N_ALIGNED; i++) {
    aligned[i] = A_MEMALIGN(4096, 4096);
    CHECK(aligned[i] && ((uintptr_t)aligned[i] & 4095) == 0, "memalign(4096, 4096) = %p", aligned[i]);
  }
  CHECK(hak__page_warm_taken() > taken3, "the aligned blocks came from no warm page");
  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_aligned, NULL) == 0, "pthread_create");
  pthread_join(t, NULL);

  /* 3. calloc from warm pages */
  for (size_t i = 0; i < nb; i++) A_FREE(b[i]);
  uint64_t taken4 = hak__page_warm_taken();
  for (size_t i = 0; i < 64; i++) {
    unsigned char* p = A_CALLOC(1, 3000);
    CHECK(p, "calloc(1, 3000)");
    for (size_t k = 0; k < 3000; k++) CHECK(p[k] == 0, "calloc(1, 3000) byte %zu is %d", k, p[k]);
    a[i] = p;
  }
  INFO("calloc: pages taken warm %llu", (unsigned long long)(hak__page_warm_taken() - taken4));
  for (size_t i = 0; i < 64; i++) A_FREE(a[i]);

  /* 4. the warm pages nobody takes go back within the decay window (and
   * a few ticks), with light traffic; then a trim empties the stash */
  double t0 = hk_now();
  while (hak__page_warm_count() > 0 && hk_now() - t0 < 5.0) {
    void* p = A_MALLOC(20000);
    pt_escape(p);
    A_FREE(p);
    usleep(20000);
  }
  INFO("warm pages %u after %.2f s", hak__page_warm_count(), hk_now() - t0);
  CHECK(hak__page_warm_count() == 0, "%u warm pages were not given back within 5 s", hak__page_warm_count());
  for (size_t i = 0; i < na; i++) a[i] = A_MALLOC(A_SIZE);
  for (size_t i = 0; i < na; i++) A_FREE(a[i]);
  for (size_t i = 0; i < 16; i++) b[i] = A_MALLOC(12000);    /* a class with no page yet: A's go warm */
  CHECK(hak__page_warm_count() > 0, "no warm pages after class A's second round");
  A_TRIM();
  CHECK(hak__page_warm_count() == 0, "malloc_trim(0) kept %u warm pages", hak__page_warm_count());
  for (size_t i = 0; i < 16; i++) A_FREE(b[i]);
  free(a);
  free(b);
  printf("test_pool_reuse: ok\n");
  return 0;
}
