/* Before a class takes fresh pages, every class holding more than its CAP
 * (and four pages) of free blocks gives its wholly free pages to the warm
 * stash, not only the class holding the most.  Classes A (small) and B
 * (large) are filled (both live at once) and freed; class C's first fresh page must take both
 * A's and B's whole pages off them.  Before, A kept its pages for as long as
 * some other class held more: a class used now and then kept the most it
 * had ever needed (bench/shift: pages in use crept from 674 to 869 over
 * 3000 rounds). */
#define _GNU_SOURCE
#include "pool_test.h"

#define A_SIZE 3000              /* class 3 KiB */
#define A_BYTES (4 * MiB)
#define B_SIZE 8000              /* class 8 KiB */
#define B_BYTES (12 * MiB)
#define C_SIZE 20000

static int child(void) {
  CHECK(hak__opt.bg == 0, "the child must run with HAKMEM_BG=0");
  unsigned ca = (unsigned)hak__small_class(A_SIZE), cb = (unsigned)hak__small_class(B_SIZE);
  size_t na, nb;
  void** a = pt_fill_bytes(A_SIZE, A_BYTES, &na);   /* both live at once: neither takes the other's pages */
  void** b = pt_fill_bytes(B_SIZE, B_BYTES, &nb);
  pt_release(a, na);
  pt_release(b, nb);
  uint64_t a0 = hak__small_pages_in_use(ca), b0 = hak__small_pages_in_use(cb);
  uint64_t cap_a = hak__policy_cap(ca), cap_b = hak__policy_cap(cb);
  CHECK(a0 > cap_a + 8 && b0 > a0, "the setup: class A %llu pages (CAP %llu), class B %llu", (unsigned long long)a0,
        (unsigned long long)cap_a, (unsigned long long)b0);
  CHECK(hak__page_warm_count() == 0, "the warm stash is empty before class C asks (%u pages)", hak__page_warm_count());
  void* c = A_MALLOC(C_SIZE);        /* class C's first fresh page */
  CHECK(c, "malloc(%d)", C_SIZE);
  uint64_t a1 = hak__small_pages_in_use(ca), b1 = hak__small_pages_in_use(cb);
  INFO("class A pages %llu -> %llu (CAP %llu), class B %llu -> %llu (CAP %llu), warm %u",
       (unsigned long long)a0, (unsigned long long)a1, (unsigned long long)cap_a, (unsigned long long)b0,
       (unsigned long long)b1, (unsigned long long)cap_b, hak__page_warm_count());
  /* the free blocks a thread's own lists keep pin a few pages of each */
  CHECK(b1 * 4 <= b0, "class B kept %llu of its %llu pages", (unsigned long long)b1, (unsigned long long)b0);
  CHECK(a1 * 4 <= a0, "class A kept %llu of its %llu pages, though it held more than CAP (%llu) free: only the "
        "class holding the most gave its pages", (unsigned long long)a1, (unsigned long long)a0,
        (unsigned long long)cap_a);
  A_FREE(c);
  printf("test_pool_reclaim_all: ok\n");
  return 0;
}

/* A re-executed child with HAKMEM_BG=0: the background tick's idle
 * scavenge could stash class A on its own. */
int main(int argc, char** argv) { return pt_main_no_bg(argc, argv, "pool/test_pool_reclaim_all", 30, child); }
