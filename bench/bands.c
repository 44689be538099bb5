/* bands: random replacement in one size band, per thread.
 *
 *   bands BAND seconds threads [seed]
 *
 * BAND     sizes              live blocks/thread  fill
 * tiny     8 B - 1 KiB        4096                first/last byte
 * mid      2 - 32 KiB         1024                first/last byte
 * large    64 KiB - 1 MiB     32                  one byte per page
 * huge     1 - 32 MiB         4                   calloc (zero-filled)
 * mlarge   5 - 25 MiB         20                  calloc (zero-filled)
 * mixed    16 B - 4 KiB       2048                first/last byte
 * edge     512 B - 1.5 KiB    2048                first/last byte
 *
 * mixed and edge straddle the Tiny/Mid boundary (1 KiB), at random: they
 * show what a size-dependent branch on the fast paths costs when it cannot
 * be predicted (mixed is the burst benchmark's steady phase, edge its worst
 * case).  They are not in the default suite (WORKLOADS=mixed,edge runs them).
 * mlarge is mimalloc-bench's malloc-large shape.  Each op frees a random
 * live block and allocates a new one of random size in the band.  Each
 * thread owns its blocks (all frees local); see prodcons for remote frees.
 * Reports ops/s over all threads. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

typedef struct {
  const char* name;
  size_t lo, hi;
  size_t live;
  int zero;   /* allocate with calloc: huge blocks must be zero-filled */
} band_t;

static const band_t k_bands[] = {
  {"tiny", 8, 1024, 4096, 0},
  {"mid", 2048, 32768, 1024, 0},
  {"large", 65536, 1 << 20, 32, 0},
  {"huge", 1 << 20, 32 << 20, 4, 1},
  {"mlarge", 5 << 20, 25 << 20, 20, 1},
  {"mixed", 16, 4096, 2048, 0},
  {"edge", 512, 1536, 2048, 0},
};

typedef struct {
  const band_t* b;
  uint64_t rng;
  unsigned long long ops;
  double t_end;
  pthread_t th;
} worker_t;

static atomic_int g_stop;
static pthread_barrier_t g_start;

static void* alloc_one(const band_t* b, size_t sz) {
  void* p = b->zero ? calloc(1, sz) : malloc(sz);
  if (!p) bench_xmalloc_fail(sz);
  if (b->zero) {
    /* calloc promised zeroes; reading a page per 64 KiB checks it cheaply
     * and writing marks the block used like a real program would. */
    volatile char* c = p;
    for (size_t i = 0; i < sz; i += 65536)
      if (c[i] != 0) { fprintf(stderr, "FATAL: calloc block not zeroed\n"); exit(5); }
    bench_touch(p, sz);
  } else if (sz >= 65536) {
    bench_touch(p, sz);
  } else {
    ((volatile char*)p)[0] = 1;
    ((volatile char*)p)[sz - 1] = 2;
  }
  return p;
}

static void* run(void* arg) {
  worker_t* w = arg;
  const band_t* b = w->b;
  uint64_t rng = w->rng;  /* local: the worker array would false-share */
  void** slot = calloc(b->live, sizeof(void*));
  for (size_t i = 0; i < b->live; i++) slot[i] = alloc_one(b, bench_range(&rng, b->lo, b->hi));
  pthread_barrier_wait(&g_start);
  /* Check the stop flag every 64 ops for small blocks (cheap), every op
   * for blocks that take milliseconds each. */
  const int batch = b->lo >= 65536 ? 1 : 64;
  unsigned long long ops = 0;
  while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    for (int k = 0; k < batch; k++) {
      size_t v = (size_t)(bench_rand(&rng) % b->live);
      free(slot[v]);
      slot[v] = alloc_one(b, bench_range(&rng, b->lo, b->hi));
    }
    ops += (unsigned long long)batch;
  }
  w->t_end = bench_now();
  for (size_t i = 0; i < b->live; i++) free(slot[i]);
  free(slot);
  w->ops = ops;
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s tiny|mid|large|huge|mlarge|mixed|edge seconds threads [seed]\n", argv[0]);
    return 2;
  }
  bench_check_malloc("bands");
  const band_t* b = NULL;
  for (size_t i = 0; i < sizeof k_bands / sizeof k_bands[0]; i++)
    if (strcmp(argv[1], k_bands[i].name) == 0) b = &k_bands[i];
  if (!b) { fprintf(stderr, "bands: unknown band '%s'\n", argv[1]); return 2; }
  double seconds = bench_arg_d(argc, argv, 2, 1);
  int threads = (int)bench_arg_l(argc, argv, 3, 1);
  uint64_t seed = (uint64_t)bench_arg_l(argc, argv, 4, 42);
  if (threads < 1) threads = 1;

  worker_t* w = calloc((size_t)threads, sizeof *w);
  pthread_barrier_init(&g_start, NULL, (unsigned)threads + 1);
  for (int t = 0; t < threads; t++) {
    w[t].b = b;
    w[t].rng = bench_seed(seed, (uint64_t)t);
    pthread_create(&w[t].th, NULL, run, &w[t]);
  }
  pthread_barrier_wait(&g_start);  /* every thread has its initial set */
  double t0 = bench_now();
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
  atomic_store(&g_stop, 1);
  double t1 = t0;
  unsigned long long ops = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(w[t].th, NULL);
    ops += w[t].ops;
    if (w[t].t_end > t1) t1 = w[t].t_end;
  }
  free(w);
  bench_result("bench=bands band=%s threads=%d value=%.0f unit=ops/s ops=%llu seconds=%.3f",
               b->name, threads, (double)ops / (t1 - t0), ops, t1 - t0);
  return 0;
}
