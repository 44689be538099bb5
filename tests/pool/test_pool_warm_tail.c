/* A warm page taken by a class whose blocks end earlier than the old
 * class's loses the memory past its new blocks a while later (a quarter
 * of the decay window, hak__page_tail_age_ms): the old class had written
 * it, so it stayed resident and unused for as long as the page served the
 * new class (bench/prodcons 2-32 KiB: 3-4 MB of its peak RSS).  Not at
 * once: a program whose sizes change every few milliseconds (bench/shift)
 * refaulted it when the page changed class again.  The new class's blocks
 * keep what was written in them.  A warm page's colour stays under 4 KiB,
 * so nothing before its first block is left resident either. */
#define _GNU_SOURCE
#include "pool_test.h"

#define B_SIZE 32768             /* two blocks fill a page: it writes all of it */
#define B_BYTES (16 * MiB)
#define C_SIZE 40000             /* the 40 KiB bridge class: one block, too large to borrow a 32 KiB one */

static int child(void) {
  CHECK(hak__opt.bg == 0, "the child must run with HAKMEM_BG=0");
  size_t nb;
  void** b = pt_fill_bytes(B_SIZE, B_BYTES, &nb);
  pt_release(b, nb);
  uint64_t taken0 = hak__page_warm_taken();
  double t0 = hk_now();
  void* c = A_MALLOC(C_SIZE);        /* the class's first page: class B's whole pages go warm, one comes here */
  CHECK(c, "malloc(%d)", C_SIZE);
  CHECK(hak__page_warm_taken() > taken0, "the 40 KiB class took no warm page (warm stash %u pages)",
        hak__page_warm_count());
  uintptr_t start = (uintptr_t)c & ~(uintptr_t)(HAK_PAGE_SIZE - 1);
  hak_page_t* pg = &hak__seg_of(start)->pages[hak__page_index(start)];
  CHECK(pg->block_size == hak__class_size[hak__small_class(C_SIZE)] && pg->capacity == 1,
        "the block's page is not the 40 KiB class's (block size %u, capacity %u)", pg->block_size, pg->capacity);
  memset(c, 0x21, C_SIZE);
  uintptr_t end = (pg->color + (uintptr_t)pg->block_size + 4095) & ~(uintptr_t)4095;
  size_t tail = HAK_PAGE_SIZE - end;
  unsigned before = pt_resident(start + end, tail);
  INFO("page %#lx: blocks end at %zu, tail %zu bytes, %u of its 4 KiB pages resident", (unsigned long)start,
       (size_t)end, tail, before);
  CHECK(tail >= 8192 && before == tail / 4096, "the tail past the new blocks is not resident (%u of %zu pages): "
        "the test does not set up what it means to check", before, tail / 4096);
  double age = hak__page_tail_age_ms() / 1000.0;
  hak__page_tails_trim(hak__os_now_ns());   /* at once: kept */
  unsigned kept = pt_resident(start + end, tail);
  if (hk_now() - t0 < age * 0.8)     /* a slow machine (valgrind) may be past the wait already */
    CHECK(kept == before, "the tail went as soon as the page was taken (%u -> %u pages resident)", before, kept);
  hk_sleep_ms((long)(age * 1000) + 20);
  hak__page_tails_trim(hak__os_now_ns());   /* the wait is over: dropped */
  unsigned after = pt_resident(start + end, tail);
  CHECK(after == 0, "the tail is still resident %.0f ms after the page was taken (%u of %zu pages)",
        (hk_now() - t0) * 1000, after, tail / 4096);
  for (size_t i = 0; i < C_SIZE; i++) CHECK(((unsigned char*)c)[i] == 0x21, "block byte %zu changed", i);
  /* a warm page's first block starts in its first 4 KiB: a colour past it
   * (fresh pages of this class take up to 24 KiB) would leave the old
   * class's memory before the block resident and unused */
  enum { NW = 8 };
  void* w[NW];
  uint64_t taken1 = hak__page_warm_taken();
  for (int i = 0; i < NW; i++) {
    CHECK((w[i] = A_MALLOC(C_SIZE)) != NULL, "malloc(%d)", C_SIZE);
    uintptr_t s = (uintptr_t)w[i] & ~(uintptr_t)(HAK_PAGE_SIZE - 1);
    hak_page_t* q = &hak__seg_of(s)->pages[hak__page_index(s)];
    CHECK(q->color < 4096, "warm page %#lx took colour %u: its first %u KiB stay resident and unused",
          (unsigned long)s, q->color, q->color / 4096 * 4);
  }
  CHECK(hak__page_warm_taken() >= taken1 + NW, "%d more 40 KiB blocks took %llu warm pages", NW,
        (unsigned long long)(hak__page_warm_taken() - taken1));
  for (int i = 0; i < NW; i++) A_FREE(w[i]);
  A_FREE(c);
  printf("test_pool_warm_tail: ok\n");
  return 0;
}

/* HAKMEM_BG=0: the trims are the test's own calls. */
int main(int argc, char** argv) { return pt_main_no_bg(argc, argv, "pool/test_pool_warm_tail", 30, child); }
