/* A later carve takes HAK_LINK_BYTES at most (src/tiny.c, bin_carve_want), and a
 * carve cut short is carried on from its page by the next refill:
 *  - resident: the blocks a carve links are all it writes, so the page past
 *    them stays out of memory (mincore) until the thread needs it;
 *  - in order, once each: the page's blocks are handed out in carve order
 *    before the page is left, none skipped or handed out twice;
 *  - exit and trim: after a thread that stopped mid-page exits, and after
 *    one whose last carve ended at its page's end, every page of the class
 *    goes back once every block is freed. */
#define _GNU_SOURCE
#include "../pool/pool_test.h"

#define SZ 800   /* class 896: 72 blocks a page; no other user in this process */

//! Resident OS pages of the 64 KiB page holding p.
static int resident_pages(void* p) {
  return (int)pt_resident((uintptr_t)p & ~(uintptr_t)(HAK_PAGE_SIZE - 1), HAK_PAGE_SIZE);
}

static void* thread_some(void* arg) {
  (void)arg;
  void* p[10];
  for (int i = 0; i < 10; i++) CHECK((p[i] = A_MALLOC(SZ)) != NULL, "malloc(%d) failed", SZ);
  unsigned c = (unsigned)hak__small_class(SZ);
  CHECK(pt_heap()->aux[c].carve_on, "10 blocks of %u cut no carve short: the test tests nothing", hak__class_size[c]);
  for (int i = 0; i < 10; i++) A_FREE(p[i]);
  return NULL;
}

/* class 64: 1024 blocks a page, colour 0; a first carve of 64 blocks, then
 * carves of EDGE_L, the last of which ends at the page's end (with 8 KiB,
 * 7 of 128 blocks and one of 64) */
#define EDGE_SZ 64
#define EDGE_L (HAK_LINK_BYTES / EDGE_SZ)
#define EDGE_N ((int)(64 + ((1024 - 64 - 1) / EDGE_L) * EDGE_L + 1))
static void* edge[EDGE_N];
static void* thread_edge(void* arg) {
  (void)arg;
  for (int i = 0; i < EDGE_N; i++) CHECK((edge[i] = A_MALLOC(EDGE_SZ)) != NULL, "malloc(%d) failed", EDGE_SZ);
  unsigned c = (unsigned)hak__small_class(EDGE_SZ);
  CHECK(!pt_heap()->aux[c].carve_on, "the last carve of class %d did not end at its page's end", EDGE_SZ);
  return NULL;
}

int main(void) {
  hk_begin("test_tiny_carve", 60);
  printf("test_tiny_carve (%s)\n", REL_API_NAME);
  unsigned c = (unsigned)hak__small_class(SZ);
  uint32_t bs = hak__class_size[c];
  CHECK(hak__small_pages_in_use(c) == 0, "class %u already has pages", bs);

  /* a first carve (4 KiB), then one of HAK_LINK_BYTES (of the 36 blocks,
   * half the list's base limit, a refill wants) */
  enum { N = 5, PAGE_BLOCKS = 72 };
  static void* p[PAGE_BLOCKS + 1];
  for (int i = 0; i < N; i++) CHECK((p[i] = A_MALLOC(SZ)) != NULL, "malloc(%d) failed", SZ);
  uint32_t linked = 4 + HAK_LINK_BYTES / bs;
  int want = (int)((linked * bs + 4095) / 4096) + 2;   /* + the colour's page and one straddled */
  int r = resident_pages(p[0]);
  printf("after %d blocks: %d of 16 pages resident (linked %u blocks; at most %d allowed)\n", N, r, linked, want);
  CHECK(r > 0 && r <= want, "%d pages resident after %d blocks of %u: the whole carve was written", r, N, bs);

  /* the rest of the page, in carve order */
  CHECK(hak__class_cap[c] == PAGE_BLOCKS, "class %u holds %u blocks a page, not %d", bs, hak__class_cap[c],
        PAGE_BLOCKS);
  for (int i = N; i <= PAGE_BLOCKS; i++) CHECK((p[i] = A_MALLOC(SZ)) != NULL, "malloc(%d) failed", SZ);
  for (int i = 1; i < PAGE_BLOCKS; i++)
    CHECK((uintptr_t)p[i] == (uintptr_t)p[0] + (uintptr_t)i * bs, "block %d at %p, not at %p + %d blocks", i, p[i],
          p[0], i);
  CHECK(((uintptr_t)p[PAGE_BLOCKS] ^ (uintptr_t)p[0]) >= HAK_PAGE_SIZE, "block %d is still on the first page",
        PAGE_BLOCKS);
  printf("the first page's %d blocks came in carve order, each once\n", PAGE_BLOCKS);

  /* a thread that exits mid-page, then trim */
  pthread_t t;
  CHECK(pthread_create(&t, NULL, thread_some, NULL) == 0, "pthread_create failed");
  pthread_join(t, NULL);
  for (int i = 0; i <= PAGE_BLOCKS; i++) A_FREE(p[i]);
  hak__small_page_retire(pt_heap(), c);   /* this thread's active page: trim leaves it to the thread */
  uint64_t before = hak__small_pages_in_use(c);
  hak_trim();
  uint64_t after = hak__small_pages_in_use(c);
  printf("class %u pages in use: %llu before trim, %llu after\n", bs, (unsigned long long)before,
         (unsigned long long)after);
  CHECK(before >= 2 && after == 0, "%llu pages of class %u stayed in use after every block was freed",
        (unsigned long long)after, bs);

  /* a carve that ends at its page's end */
  unsigned ce = (unsigned)hak__small_class(EDGE_SZ);
  CHECK(hak__class_cap[ce] == 1024 && hak__class_colors[ce] == 1, "class %d: %u blocks a page, %u colours",
        EDGE_SZ, hak__class_cap[ce], hak__class_colors[ce]);
  CHECK(pthread_create(&t, NULL, thread_edge, NULL) == 0, "pthread_create failed");
  pthread_join(t, NULL);
  for (int i = 0; i < EDGE_N; i++) A_FREE(edge[i]);
  hak__small_page_retire(pt_heap(), ce);
  hak_trim();
  CHECK(hak__small_pages_in_use(ce) == 0, "%llu pages of class %d stayed in use after every block was freed",
        (unsigned long long)hak__small_pages_in_use(ce), EDGE_SZ);
  printf("a carve to its page's end, then exit and trim: class %d pages all back\n", EDGE_SZ);
  printf("test_tiny_carve: ok\n");
  return 0;
}
