/* API conformance, sizes: every size 0..64 KiB at step 1, then a sweep up
 * to 192 MiB and a few GiB.  Each block: hakmem owns it, usable size >= the
 * request, the full usable size is writable without touching neighbours
 * (many blocks stay live), contents survive until free. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include "hk_test.h"

#define RING 257  /* blocks kept live; prime so sizes mix in the ring */

typedef struct { unsigned char* p; size_t n, u; uint64_t seed; } slot_t;

static void slot_check_free(slot_t* s, const char* ctx) {
  if (!s->p) return;
  /* Check the whole usable size: neighbours wrote their own full usable sizes. */
  size_t bad = hk_verify(s->p, s->u, s->seed, 1);
  CHECK(bad == (size_t)-1, "%s: block %p of %zu bytes (usable %zu): byte %zu corrupted", ctx, (void*)s->p, s->n, s->u, bad);
  free(s->p);
  s->p = NULL;
}

static void take(slot_t* s, unsigned char* p, size_t n, uint64_t seed, const char* fn) {
  CHECK(p != NULL, "%s(%zu) returned NULL", fn, n);
  CHECK(hak_owns(p), "%s(%zu) = %p not owned by hakmem", fn, n, (void*)p);
  size_t u = malloc_usable_size(p);
  CHECK(u >= n, "%s(%zu): malloc_usable_size %zu < request", fn, n, u);
  /* sanity bound only (no waste target in the contract): catches garbage
   * sizes; huge blocks may come from a bigger cached mapping, and a Large
   * class that runs dry borrows a cached block up to 3x its size */
  if (n <= HK_LARGE_MAX) CHECK(u <= 4 * n + 64 * KiB, "%s(%zu): malloc_usable_size %zu is implausible", fn, n, u);
  if (n >= 16) CHECK((uintptr_t)p % 16 == 0, "%s(%zu) = %p not 16-aligned", fn, n, (void*)p);
  s->p = p; s->n = n; s->u = u; s->seed = seed;
  hk_fill(p, u, seed, 1);
}

static void test_every_small_size(void) {
  static slot_t ring[RING];
  unsigned long long a0 = hk_total_allocs();
  size_t step = hk_slow() ? 19 : 1;  /* every size, except under valgrind */
  for (size_t n = 0; n <= 64 * KiB; n += step) {
    slot_t* s = &ring[n % RING];
    slot_check_free(s, "malloc sweep");
    take(s, malloc(n), n, n * 7919 + 1, "malloc");
  }
  for (int i = 0; i < RING; i++) slot_check_free(&ring[i], "malloc sweep");
  CHECK(hk_total_allocs() - a0 >= 65537 / step / 2, "stats counted %llu allocs for %zu mallocs",
        hk_total_allocs() - a0, 65537 / step);
  /* calloc at step 3: recycled blocks were dirtied above. */
  for (size_t n = 0; n <= 64 * KiB; n += 3 * step) {
    slot_t* s = &ring[n % RING];
    slot_check_free(s, "calloc sweep");
    unsigned char* p = calloc(n, 1);
    CHECK(p, "calloc(%zu, 1)", n);
    for (size_t i = 0; i < n; i++) CHECK(p[i] == 0, "calloc(%zu, 1): byte %zu = %#x", n, i, p[i]);
    take(s, p, n, n + 5, "calloc");
  }
  for (int i = 0; i < RING; i++) slot_check_free(&ring[i], "calloc sweep");
}

static void test_big_sweep(void) {
  /* 64 KiB .. 256 MiB: geometric steps plus +-1 around each power of two. */
  static slot_t ring[3];
  int k = 0;
  for (size_t base = 64 * KiB; base <= 128 * MiB; base *= 2) {
    size_t ns[] = {base - 1, base, base + 1, base + base / 3, base + base / 2 + 4095};
    for (size_t j = 0; j < 5; j++) {
      size_t n = ns[j];
      slot_t* s = &ring[k++ % 3];
      slot_check_free(s, "big sweep");
      take(s, malloc(n), n, n ^ 0xabcdef, "malloc");
    }
  }
  for (int i = 0; i < 3; i++) slot_check_free(&ring[i], "big sweep");
  /* The same band through calloc: must be zero even when a cached mapping is reused. */
  for (size_t n = 1 * MiB; n <= 64 * MiB; n *= 2) {
    unsigned char* d = malloc(n + 100);
    CHECK(d, "malloc(%zu)", n + 100);
    memset(d, 0xff, n + 100);
    free(d);
    unsigned char* p = calloc(1, n + 100);
    CHECK(p && hak_owns(p), "calloc(1, %zu)", n + 100);
    for (size_t i = 0; i < n + 100; i += 509) CHECK(p[i] == 0, "calloc(1, %zu): byte %zu = %#x", n + 100, i, p[i]);
    CHECK(p[n + 99] == 0, "calloc last byte");
    free(p);
  }
}

static void test_gib_sizes(void) {
  /* Sizes of whole GiB work (only the ends are touched, so RSS stays small).
   * Bounded by RAM so the heuristic overcommit check can't refuse them. */
  long mem_kb = 0;
  FILE* f = fopen("/proc/meminfo", "r");
  if (f) { if (fscanf(f, "MemTotal: %ld kB", &mem_kb) != 1) mem_kb = 0; fclose(f); }
  size_t gibs[] = {1, 3, 6};
  for (int i = 0; i < 3; i++) {
    size_t n = gibs[i] * GiB + 12345;
    if ((long)(n / 1024) > mem_kb / 2) break;
    unsigned char* p = malloc(n);
    CHECK(p && hak_owns(p), "malloc(%zu) (%zu GiB) = %p", n, gibs[i], (void*)p);
    CHECK(malloc_usable_size(p) >= n, "malloc_usable_size of a %zu GiB block", gibs[i]);
    p[0] = 1; p[n / 2] = 2; p[n - 1] = 3;
    p = realloc(p, n + 64 * MiB);
    CHECK(p && p[0] == 1 && p[n / 2] == 2 && p[n - 1] == 3, "realloc of %zu GiB block lost contents", gibs[i]);
    free(p);
  }
}

static void test_usable_size_layers(void) {
  CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu", malloc_usable_size(NULL));
  /* Many same-class neighbours all filled to their usable size. */
  size_t ns[] = {1, 24, 1000, 1024, 1025, 30000, 53248, 53249, 500000, 1 << 20, (1 << 20) + 1, (2 << 20) + 3};
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
    enum { N = 64 };
    slot_t s[N];
    for (int k = 0; k < N; k++) take(&s[k], malloc(ns[i]), ns[i], k * 31 + i, "malloc");
    for (int k = 0; k < N; k++) slot_check_free(&s[k], "usable-size neighbours");
  }
}

int main(void) {
  hk_begin("api/sizes", 55);
  HK_STEP(test_usable_size_layers());
  HK_STEP(test_every_small_size());
  HK_STEP(test_big_sweep());
  HK_STEP(test_gib_sizes());
  printf("api/sizes: ok\n");
  return 0;
}
