/* Blocks freed in two passes still go back to the OS: a program frees
 * most of each page's blocks (no page becomes whole), goes quiet long
 * enough for the scavenger to walk the class and find nothing to release,
 * then frees the rest.  The second pass adds less than the first did, and
 * the walk's backoff (4 s while the lists have not doubled) once kept all
 * the class's pages for those 4 s: tests/release/release failed one run in
 * ten, holding 25 MB of one Mid class at the deadline. */
#define _GNU_SOURCE
#include "hk_test.h"

#define N 2000          /* 12000 B blocks: 5 to a page, 400 pages, 25 MB */
#define SIZE 12000

int main(void) {
  hk_begin("release/two_passes", 60);
  static void* v[N];
  for (int i = 0; i < N; i++) {
    v[i] = malloc(SIZE);
    CHECK(v[i] && hak_owns(v[i]), "malloc(%d) %d", SIZE, i);
    memset(v[i], 0x33, SIZE);
  }
  long rss_full = hk_rss_kb();
  /* first pass: 60% of the blocks, and no five in a row (no page whole) */
  for (int i = 0; i < N; i++)
    if (i % 2 == 0 || i % 10 == 1) free(v[i]);
  hk_sleep_ms(600);             /* quiet: the upkeep ticks walk the class, fruitlessly */
  long rss_half = hk_rss_kb();
  for (int i = 0; i < N; i++)
    if (!(i % 2 == 0 || i % 10 == 1)) free(v[i]);
  double t0 = hk_now();
  long rss = hk_rss_kb(), want = rss_full - (long)(N * SIZE / 1024) * 3 / 4;
  while (rss > want && hk_now() - t0 < 2.0 && !hk_under_valgrind()) {
    hk_sleep_ms(50);
    rss = hk_rss_kb();
  }
  INFO("RSS: %ld kB with all live, %ld kB after the first pass, %ld kB %.2f s after the second", rss_full, rss_half,
       rss, hk_now() - t0);
  CHECK(rss <= want || hk_under_valgrind(),
        "RSS did not fall within 2 s of freeing the last blocks: %ld kB with all live, %ld kB now (want %ld)",
        rss_full, rss, want);
  printf("release/two_passes: ok\n");
  return 0;
}
