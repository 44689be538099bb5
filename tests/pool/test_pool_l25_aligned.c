/* Large aligned requests find aligned blocks that spilled past the thread's
 * bin into the central list (no carve each time), and trimming a coloured
 * Large block releases its pages. */
#define _GNU_SOURCE
#include "pool_test.h"
#include "l25.h"
#include <sys/mman.h>

static void test_spilled_aligned(void) {
  void* x = A_MALLOC(70000);                      /* another class takes colour 0 */
  void* r[3];
  for (int j = 0; j < 3; j++) r[j] = A_MALLOC(300000);   /* a coloured segment: not 4096-aligned */
  CHECK((uintptr_t)r[0] % 4096 != 0, "r[0] %p", r[0]);
  unsigned long long m0 = pt_large_mapped();
  for (int i = 0; i < 10000; i++) {
    void* q = A_MEMALIGN(4096, 300000);
    CHECK(q && (uintptr_t)q % 4096 == 0, "memalign = %p", q);
    for (int j = 0; j < 3; j++) A_FREE(r[j]);     /* the bin (limit 3) fills with unaligned blocks */
    A_FREE(q);                                    /* so q goes to the hot list */
    for (int j = 0; j < 3; j++) r[j] = A_MALLOC(300000);
  }
  unsigned long long m1 = pt_large_mapped();
  INFO("10000 aligned requests with the bin full of unaligned blocks: Large mapped %llu -> %llu MB", m0 >> 20, m1 >> 20);
  CHECK(m1 <= m0 + HAK_SEG_SIZE, "the loop mapped %llu MB", (m1 - m0) >> 20);
  for (int j = 0; j < 3; j++) A_FREE(r[j]);
  A_FREE(x);
}

static void test_decommit(void) {
  enum { N = 12 };
  void* p[N];
  void* x = A_MALLOC(70000);                      /* another class takes colour 0 */
  for (int i = 0; i < N; i++) { p[i] = A_MALLOC(300000); memset(p[i], 1, 300000); }
  CHECK(((uintptr_t)p[0] & HAK_SEG_MASK) % 4096 != 0, "p[0] %p: want a coloured segment", p[0]);
  for (int i = 1; i < N; i++) A_FREE(p[i]);       /* p[0] keeps the segment */
  hak_trim();
  size_t ps = (size_t)sysconf(_SC_PAGESIZE);
  int resident = 0;
  for (int i = 1; i < N; i++) {
    if (((uintptr_t)p[i] & ~HAK_SEG_MASK) != ((uintptr_t)p[0] & ~HAK_SEG_MASK)) continue;
    unsigned char v;
    uintptr_t pg = ((uintptr_t)p[i] + 2 * ps) & ~(ps - 1);
    CHECK(mincore((void*)pg, ps, &v) == 0, "mincore");
    resident += v & 1;
  }
  CHECK(resident == 0, "%d trimmed Large blocks still resident (colour %zu)", resident,
        (size_t)(((uintptr_t)p[0] & HAK_SEG_MASK) - L25_FIRST) % 327680);
  A_FREE(p[0]);
  A_FREE(x);
}

int main(void) {
  hk_begin("pool/test_pool_l25_aligned", 60);
  pt_heap();
  HK_STEP(test_spilled_aligned());
  HK_STEP(test_decommit());
  printf("pool/test_pool_l25_aligned: ok\n");
  return 0;
}
