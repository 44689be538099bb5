/* A class found wholly free by its counts, without a walk (small.c,
 * small_whole), and the cases where the counts must not be trusted.
 *  1. One thread allocates a Tiny class's blocks, frees them all, then
 *     allocates another class: the first class's pages go warm by the
 *     counts (counted_reclaims rises), and serve the second class.  Both
 *     classes' blocks then hold what was written to them.
 *  2. The same with one block of the first class still live: the counts
 *     are one short, so no page goes by them; the walk still moves the
 *     other pages, and the live block keeps its contents while the second
 *     class writes its own.
 *  3. Another thread holds blocks of the first class in its list, and has
 *     a page of it active: nothing goes by the counts, and its blocks, taken
 *     again and written, overlap no block of the second class.
 * In each, no block of the second class is handed out with a free mark. */
#define _GNU_SOURCE
#include <pthread.h>
#include "pool_test.h"

#define A_SIZE 100               /* Tiny class 112 */
#define A_BYTES (8 * MiB)
#define B_SIZE 8000              /* Mid class 8 KiB */
#define B_BYTES (6 * MiB)
#define T_N 64                   /* blocks the other thread keeps */

static size_t na, nb;
static void** a;
static void** b;

//! Allocates class A's round and writes it; frees all but keep (if keep < na).
static void a_round(size_t keep) {
  for (size_t i = 0; i < na; i++) {
    a[i] = A_MALLOC(A_SIZE);
    CHECK(a[i], "malloc(%d)", A_SIZE);
    memset(a[i], 0x5a, A_SIZE);
  }
  for (size_t i = 0; i < na; i++)
    if (i != keep) A_FREE(a[i]);
}

//! Allocates class B's round, each block filled with its own byte.
static void b_round(void) {
  for (size_t i = 0; i < nb; i++) {
    b[i] = A_MALLOC(B_SIZE);
    CHECK(b[i], "malloc(%d)", B_SIZE);
    /* a warm page holds class A's free marks; the block handed out, the
     * first of a carve included, must not read as free (realloc and the
     * checked free would call it a double free) */
    CHECK(!hak__marked(b[i]), "class B block %zu carries a free mark", i);
    memset(b[i], (int)(i & 0x7f) + 1, B_SIZE);
  }
}

//! Checks and frees class B's round.
static void b_check_free(void) {
  for (size_t i = 0; i < nb; i++) {
    unsigned char* p = b[i];
    for (size_t k = 0; k < B_SIZE; k += 61)
      CHECK(p[k] == (i & 0x7f) + 1, "class B block %zu byte %zu is %d: overwritten", i, k, p[k]);
    A_FREE(p);
  }
}

/* part 3's other thread */
static pthread_barrier_t bar;
static void* t_blocks[T_N];
static void* other(void* arg) {
  (void)arg;
  for (int i = 0; i < T_N; i++) t_blocks[i] = A_MALLOC(A_SIZE);
  for (int i = 0; i < T_N; i++) A_FREE(t_blocks[i]);      /* into this thread's list */
  pthread_barrier_wait(&bar);                              /* main: its rounds */
  pthread_barrier_wait(&bar);
  for (int i = 0; i < T_N; i++) {
    t_blocks[i] = A_MALLOC(A_SIZE);
    CHECK(t_blocks[i], "malloc(%d) in the other thread", A_SIZE);
    memset(t_blocks[i], 0xee, A_SIZE);
  }
  pthread_barrier_wait(&bar);                              /* main checks class B */
  pthread_barrier_wait(&bar);
  for (int i = 0; i < T_N; i++) {
    unsigned char* p = t_blocks[i];
    for (int k = 0; k < A_SIZE; k++) CHECK(p[k] == 0xee, "the other thread's block %d byte %d is %d", i, k, p[k]);
    A_FREE(p);
  }
  return NULL;
}

static int child(void) {
  CHECK(hak__opt.bg == 0, "the child must run with HAKMEM_BG=0");
  if (hak__opt.secure || hak__opt.valgrind || hak__opt.keep) {
    printf("test_pool_whole: skipped (no warm pages in this mode)\n");
    return 0;
  }
  na = A_BYTES / A_SIZE;
  nb = B_BYTES / B_SIZE;
  a = calloc(na, sizeof *a);
  b = calloc(nb, sizeof *b);
  CHECK(a && b, "calloc of the pointer arrays");
  hak_heap_t* h = pt_heap();

  /* 1. wholly free: by the counts */
  a_round(na);
  CHECK(hak__page_warm_count() == 0, "%u warm pages before part 1", hak__page_warm_count());
  uint64_t c0 = PT_TSTAT(h, counted_reclaims), w0 = hak__page_warm_taken();
  b_round();
  uint64_t c1 = PT_TSTAT(h, counted_reclaims), w1 = hak__page_warm_taken();
  INFO("part 1: counted reclaims %llu, pages taken warm %llu",
       (unsigned long long)(c1 - c0), (unsigned long long)(w1 - w0));
  CHECK(c1 > c0, "class A, all free, was not reclaimed by its counts");
  CHECK(w1 - w0 >= (B_BYTES / 2) / HAK_PAGE_SIZE, "class B took only %llu warm pages",
        (unsigned long long)(w1 - w0));
  b_check_free();
  for (size_t i = 0; i < na; i++) {  /* class A again, from warm or fresh pages */
    a[i] = A_MALLOC(A_SIZE);
    CHECK(a[i], "malloc(%d)", A_SIZE);
    memset(a[i], (int)(i & 0x7f), A_SIZE);
  }
  for (size_t i = 0; i < na; i++) {
    CHECK(((unsigned char*)a[i])[0] == (i & 0x7f) && ((unsigned char*)a[i])[A_SIZE - 1] == (i & 0x7f),
          "class A block %zu overlaps another", i);
    A_FREE(a[i]);
  }

  /* 2. one block live: not by the counts */
  A_TRIM();                       /* no warm page left: B's first fresh page reclaims */
  size_t keep = na / 2;
  a_round(keep);
  CHECK(hak__page_warm_count() == 0, "%u warm pages before part 2", hak__page_warm_count());
  memset(a[keep], 0x3c, A_SIZE);
  uint64_t c2 = PT_TSTAT(h, counted_reclaims), w2 = hak__page_warm_taken();
  b_round();
  uint64_t c3 = PT_TSTAT(h, counted_reclaims), w3 = hak__page_warm_taken();
  INFO("part 2: counted reclaims %llu, pages taken warm %llu",
       (unsigned long long)(c3 - c2), (unsigned long long)(w3 - w2));
  CHECK(c3 == c2, "class A was reclaimed by its counts with a block live");
  CHECK(w3 - w2 >= (B_BYTES / 2) / HAK_PAGE_SIZE, "the walk moved only %llu pages", (unsigned long long)(w3 - w2));
  for (int k = 0; k < A_SIZE; k++)
    CHECK(((unsigned char*)a[keep])[k] == 0x3c, "the live class A block's byte %d is %d", k, ((unsigned char*)a[keep])[k]);
  b_check_free();
  A_FREE(a[keep]);

  /* 3. another thread's list and page of class A */
  pthread_t t;
  CHECK(pthread_barrier_init(&bar, NULL, 2) == 0, "barrier");
  CHECK(pthread_create(&t, NULL, other, NULL) == 0, "pthread_create");
  pthread_barrier_wait(&bar);
  A_TRIM();
  a_round(na);
  CHECK(hak__page_warm_count() == 0, "%u warm pages before part 3", hak__page_warm_count());
  uint64_t c4 = PT_TSTAT(h, counted_reclaims);
  b_round();
  uint64_t c5 = PT_TSTAT(h, counted_reclaims);
  INFO("part 3: counted reclaims %llu", (unsigned long long)(c5 - c4));
  CHECK(c5 == c4, "class A was reclaimed by its counts while another thread held its blocks");
  pthread_barrier_wait(&bar);     /* the other thread takes and writes its blocks */
  pthread_barrier_wait(&bar);
  b_check_free();
  pthread_barrier_wait(&bar);     /* and checks them */
  pthread_join(t, NULL);
  free(a);
  free(b);
  printf("test_pool_whole: ok\n");
  return 0;
}

/* The parts run in a re-executed child with HAKMEM_BG=0: on a slow host,
 * the background tick's idle scavenge could stash class A before class B's
 * first fresh page asks for it, and the counts would not be tried. */
int main(int argc, char** argv) { return pt_main_no_bg(argc, argv, "pool/test_pool_whole", 120, child); }
