/* burst: does the allocator give memory back after a burst?
 *
 *   burst seconds burst_mb threads [steady_kb] [seed]
 *
 * Phase 1: `threads` threads together allocate burst_mb MiB in blocks of
 * 16 B - 64 KiB (log-uniform, so every band is hit), touch them, free them
 * all and exit.  Phase 2: the main thread runs a small steady working set
 * (steady_kb, default 4096 KiB, blocks of 16 B - 4 KiB, random replacement)
 * for `seconds`, sampling VmRSS every 0.5 s (or seconds/4 if shorter).
 * Reports steady ops/s, steady_rss_kb (the last sample), steady_rss_min_kb,
 * after_free_rss_kb (right after the burst was freed) and peak RSS. */
#include "common.h"
#include <pthread.h>
#include <sys/mman.h>

typedef struct { pthread_t th; size_t bytes; uint64_t rng; } burster_t;

static size_t log_uniform(uint64_t* rng, size_t lo, size_t hi) {
  /* pick a power-of-two bucket uniformly, then a size inside it */
  int blo = 63 - __builtin_clzll(lo), bhi = 63 - __builtin_clzll(hi);
  int b = blo + (int)(bench_rand(rng) % (uint64_t)(bhi - blo + 1));
  size_t a = (size_t)1 << b, z = a * 2 - 1;
  if (a < lo) a = lo;
  if (z > hi) z = hi;
  return bench_range(rng, a, z);
}

static void* burst(void* arg) {
  burster_t* b = arg;
  /* pointer array from mmap: it must not count as allocator memory */
  size_t cap = b->bytes / 16 + 16;
  void** ptrs = mmap(NULL, cap * sizeof(void*), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ptrs == MAP_FAILED) { perror("mmap"); exit(1); }
  size_t n = 0, total = 0;
  uint64_t rng = b->rng;
  while (total < b->bytes && n < cap) {
    size_t sz = log_uniform(&rng, 16, 65536);
    void* p = malloc(sz);
    if (!p) bench_xmalloc_fail(sz);
    memset(p, 0x5a, sz);  /* a burst really uses its memory */
    ptrs[n++] = p;
    total += sz;
  }
  /* Free in allocation order (oldest first), like a finished request. */
  for (size_t i = 0; i < n; i++) free(ptrs[i]);
  munmap(ptrs, cap * sizeof(void*));
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s seconds burst_mb threads [steady_kb] [seed]\n", argv[0]);
    return 2;
  }
  bench_check_malloc("burst");
  double seconds = bench_arg_d(argc, argv, 1, 2);
  size_t burst_mb = (size_t)bench_arg_l(argc, argv, 2, 256);
  int threads = (int)bench_arg_l(argc, argv, 3, 1);
  size_t steady_kb = (size_t)bench_arg_l(argc, argv, 4, 4096);
  uint64_t seed = (uint64_t)bench_arg_l(argc, argv, 5, 99);
  if (threads < 1) threads = 1;

  long base_rss = bench_rss_kb();
  double tb0 = bench_now();
  burster_t* bs = calloc((size_t)threads, sizeof *bs);
  for (int t = 0; t < threads; t++) {
    bs[t].bytes = (burst_mb << 20) / (size_t)threads;
    bs[t].rng = bench_seed(seed, (uint64_t)t + 100);
    pthread_create(&bs[t].th, NULL, burst, &bs[t]);
  }
  for (int t = 0; t < threads; t++) pthread_join(bs[t].th, NULL);
  free(bs);
  double burst_s = bench_now() - tb0;
  long after_free = bench_rss_kb();

  /* Steady phase: ~steady_kb live in blocks of 16 B - 4 KiB (mean ~2 KiB). */
  uint64_t rng = bench_seed(seed, 1);
  size_t live = steady_kb / 2 + 1;
  void** slot = calloc(live, sizeof(void*));
  for (size_t i = 0; i < live; i++) {
    size_t sz = bench_range(&rng, 16, 4096);
    slot[i] = malloc(sz);
    if (!slot[i]) bench_xmalloc_fail(sz);
    ((char*)slot[i])[0] = 1;
  }
  double interval = seconds / 4 < 0.5 ? seconds / 4 : 0.5;
  double t0 = bench_now(), next = t0 + interval, now = t0;
  long rss_last = bench_rss_kb(), rss_min = rss_last;
  int samples = 0;
  unsigned long long ops = 0;
  for (;;) {
    for (int k = 0; k < 256; k++) {
      size_t v = (size_t)(bench_rand(&rng) % live);
      free(slot[v]);
      size_t sz = bench_range(&rng, 16, 4096);
      char* p = malloc(sz);
      if (!p) bench_xmalloc_fail(sz);
      p[0] = 1;
      p[sz - 1] = 2;
      slot[v] = p;
    }
    ops += 256;
    now = bench_now();
    if (now >= next) {
      rss_last = bench_rss_kb();
      if (rss_last < rss_min || samples == 0) rss_min = rss_last;
      samples++;
      next += interval;
      if (now - t0 >= seconds) break;
    }
  }
  for (size_t i = 0; i < live; i++) free(slot[i]);
  free(slot);
  bench_result("bench=burst threads=%d value=%.0f unit=ops/s ops=%llu seconds=%.3f "
               "steady_rss_kb=%ld steady_rss_min_kb=%ld after_free_rss_kb=%ld base_rss_kb=%ld "
               "burst_mb=%zu burst_s=%.3f samples=%d",
               threads, (double)ops / (now - t0), ops, now - t0, rss_last, rss_min, after_free,
               base_rss, burst_mb, burst_s, samples);
  return 0;
}
