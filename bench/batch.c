/* batch: allocate a batch of small blocks, then free them all (issue 7).
 *
 *   batch seconds threads [min] [max] [count] [seed]
 *
 * Each thread allocates `count` blocks (default 10000) of min..max bytes
 * (default 16..32), writes each, then frees all of them, alternating
 * oldest-first and newest-first order.  Reports blocks per second (one
 * malloc + one free each). */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

typedef struct { pthread_t th; uint64_t rng; unsigned long long ops; double t_end; } worker_t;

static atomic_int g_stop;
static pthread_barrier_t g_start;
static size_t g_min = 16, g_max = 32, g_count = 10000;

static void* run(void* arg) {
  worker_t* w = arg;
  void** p = malloc(g_count * sizeof(void*));
  uint64_t rng = w->rng;  /* local: avoids false sharing between workers */
  pthread_barrier_wait(&g_start);
  unsigned long long ops = 0;
  for (unsigned long long round = 0; !atomic_load_explicit(&g_stop, memory_order_relaxed); round++) {
    for (size_t i = 0; i < g_count; i++) {
      size_t sz = bench_range(&rng, g_min, g_max);
      char* q = malloc(sz);
      if (!q) bench_xmalloc_fail(sz);
      q[0] = (char)i;
      p[i] = q;
    }
    if (round & 1) {
      for (size_t i = g_count; i-- > 0;) free(p[i]);
    } else {
      for (size_t i = 0; i < g_count; i++) free(p[i]);
    }
    ops += g_count;
  }
  w->t_end = bench_now();
  w->ops = ops;
  free(p);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s seconds threads [min] [max] [count] [seed]\n", argv[0]);
    return 2;
  }
  bench_check_malloc("batch");
  double seconds = bench_arg_d(argc, argv, 1, 1);
  int threads = (int)bench_arg_l(argc, argv, 2, 1);
  g_min = (size_t)bench_arg_l(argc, argv, 3, 16);
  g_max = (size_t)bench_arg_l(argc, argv, 4, 32);
  g_count = (size_t)bench_arg_l(argc, argv, 5, 10000);
  uint64_t seed = (uint64_t)bench_arg_l(argc, argv, 6, 16);
  if (threads < 1) threads = 1;
  if (g_min < 1) g_min = 1;
  if (g_max < g_min) g_max = g_min;
  if (g_count < 1) g_count = 1;

  worker_t* w = calloc((size_t)threads, sizeof *w);
  pthread_barrier_init(&g_start, NULL, (unsigned)threads + 1);
  for (int t = 0; t < threads; t++) {
    w[t].rng = bench_seed(seed, (uint64_t)t);
    pthread_create(&w[t].th, NULL, run, &w[t]);
  }
  pthread_barrier_wait(&g_start);
  double t0 = bench_now(), t1 = t0;
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
  atomic_store(&g_stop, 1);
  unsigned long long ops = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(w[t].th, NULL);
    ops += w[t].ops;
    if (w[t].t_end > t1) t1 = w[t].t_end;
  }
  free(w);
  bench_result("bench=batch threads=%d value=%.0f unit=ops/s ops=%llu seconds=%.3f count=%zu min=%zu max=%zu",
               threads, (double)ops / (t1 - t0), ops, t1 - t0, g_count, g_min, g_max);
  return 0;
}
