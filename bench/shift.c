/* shift: a program whose sizes change.
 *
 *   shift seconds [mib_per_round] [seed]
 *
 * Round after round, one thread allocates mib_per_round (default 24) MiB of
 * blocks of one size, writes every byte, then frees them all; the next
 * round takes the next size of a fixed cycle over Tiny and Mid classes
 * (8000, 30000, 3000, 12000, 20000, 5000, 500, 100, 1500, 40000 bytes,
 * each +-3% at random).  An allocator whose free pages serve only the class
 * that freed them maps one round's worth per size; one that moves them
 * across classes stays near one round's worth.  Reports blocks per second
 * (one malloc + one free each) and peak RSS. */
#include "common.h"

static const size_t sizes[] = {8000, 30000, 3000, 12000, 20000, 5000, 500, 100, 1500, 40000};
#define NSIZES (sizeof sizes / sizeof *sizes)

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s seconds [mib_per_round] [seed]\n", argv[0]);
    return 2;
  }
  bench_check_malloc("shift");
  double seconds = bench_arg_d(argc, argv, 1, 1);
  size_t round_bytes = (size_t)bench_arg_l(argc, argv, 2, 24) << 20;
  uint64_t rng = bench_seed((uint64_t)bench_arg_l(argc, argv, 3, 7), 0);
  size_t most = round_bytes / 97 + 1;       /* the smallest size is 100 - 3% */
  void** p = malloc(most * sizeof *p);
  if (!p) bench_xmalloc_fail(most * sizeof *p);
  unsigned long long ops = 0, rounds = 0;
  double t0 = bench_now(), t1 = t0;
  do {
    size_t base = sizes[rounds % NSIZES], n = 0;
    for (size_t bytes = 0; bytes < round_bytes && n < most; n++) {
      size_t s = bench_range(&rng, base - base * 3 / 100, base + base * 3 / 100);
      p[n] = malloc(s);
      if (!p[n]) bench_xmalloc_fail(s);
      memset(p[n], (int)n, s);
      bytes += s;
    }
    for (size_t i = 0; i < n; i++) free(p[i]);
    ops += n;
    rounds++;
    t1 = bench_now();
  } while (t1 - t0 < seconds);
  free(p);
  bench_result("bench=shift threads=1 value=%.0f unit=ops/s ops=%llu rounds=%llu seconds=%.3f mib_per_round=%zu",
               (double)ops / (t1 - t0), ops, rounds, t1 - t0, round_bytes >> 20);
  return 0;
}
