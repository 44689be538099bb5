/* A program whose sizes change round after round (bench/shift) reuses the
 * pages the last round freed, which the cache still holds.  Each round
 * fills 8 MiB with blocks of one size, writes them, and frees them all;
 * the next round takes another size.  The freed class's whole pages reach
 * the warm stash when the next class takes fresh pages; they waited for
 * the stash to run dry, so the next round first took what was left there
 * from two rounds before: 48% of a round's pages came from the round just
 * freed (bench/shift ran 11% slower), mimalloc 87%. */
#define _GNU_SOURCE
#include <stdint.h>
#include "hk_test.h"

#define ROUND (8u << 20)
#define ROUNDS 60
#define MAP_BITS 20
static const size_t sizes[] = {8000, 30000, 3000, 12000, 20000, 5000, 500, 100, 1500, 40000};
static uint16_t last_round[1u << MAP_BITS];  /* 64 KiB page (hashed) -> the last round that used it */
static void* blocks[ROUND / 90];

int main(void) {
  hk_begin("release/recent_pages", 60);
  if (getenv("HAKMEM_VALGRIND") || getenv("HAKMEM_SECURE") || getenv("HAKMEM_KEEP")) {
    printf("release/recent_pages: skipped (no warm stash in this mode)\n");
    return 0;
  }
  uint64_t rng = 7;
  double share = 0;
  int counted = 0;
  for (unsigned k = 1; k <= ROUNDS; k++) {
    size_t base = sizes[k % 10], n = 0, total = 0, pages = 0, recent = 0;
    while (total < ROUND) {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      size_t s = base * (97 + (rng >> 33) % 7) / 100;
      char* p = malloc(s);
      CHECK(p && hak_owns(p), "malloc(%zu) in round %u", s, k);
      memset(p, (int)k, s);
      for (uintptr_t a = (uintptr_t)p >> 16; a <= ((uintptr_t)p + s - 1) >> 16; a++) {
        uint16_t* r = &last_round[a & ((1u << MAP_BITS) - 1)];
        if (*r == k) continue;
        pages++;
        recent += *r == k - 1;
        *r = (uint16_t)k;
      }
      blocks[n++] = p;
      total += s;
    }
    for (size_t i = 0; i < n; i++) free(blocks[i]);
    if (k > 10) { share += (double)recent / (double)pages; counted++; }
  }
  share /= counted;
  INFO("%.1f%% of a round's pages were used by the round before", 100 * share);
  CHECK(share >= 0.80, "only %.1f%% of a round's pages came from the round just freed (want 80%%)", 100 * share);
  printf("release/recent_pages: ok\n");
  return 0;
}
