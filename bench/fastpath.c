/* fastpath: N malloc+free pairs of one size, for callgrind.
 *
 *   fastpath size pairs
 *
 * scripts/callgrind_fastpath.sh runs this under callgrind with pairs=N and
 * pairs=0 and divides the difference in instructions by N, so start-up and
 * the warm-up below cancel out.  The warm-up (same in both runs) takes the
 * allocator past its first-touch slow paths.  The pointer escapes through an
 * asm barrier so the compiler cannot elide the pair. */
#include "common.h"

__attribute__((noinline)) static void pairs_loop(size_t size, long n) {
  for (long i = 0; i < n; i++) {
    void* p = malloc(size);
    bench_escape(p);
    free(p);
  }
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s size pairs\n", argv[0]);
    return 2;
  }
  bench_check_malloc("fastpath");
  size_t size = (size_t)bench_arg_l(argc, argv, 1, 16);
  long n = bench_arg_l(argc, argv, 2, 100000);
  pairs_loop(size, 1000);
  double t0 = bench_now();
  pairs_loop(size, n);
  double t1 = bench_now();
  bench_result("bench=fastpath size=%zu pairs=%ld value=%.0f unit=pairs/s seconds=%.6f",
               size, n, n > 0 && t1 > t0 ? (double)n / (t1 - t0) : 0.0, t1 - t0);
  return 0;
}
