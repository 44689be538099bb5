/* realloc_grow: buffers that grow by realloc, as strings and vectors do.
 *
 *   realloc_grow seconds threads [max_kb] [seed]
 *
 * Each thread keeps 16 buffers.  Even-numbered buffers grow like a naive
 * string builder (realloc on every append of 1-64 bytes); odd ones like a
 * vector (capacity doubles).  A buffer that reaches its random target
 * (1 KiB .. max_kb, default 256 KiB) is freed and starts again.  Appended
 * bytes are written, and the head is checked after each move so a realloc
 * that loses data fails loudly.  Reports realloc calls per second. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

#define NBUF 16

typedef struct { unsigned char* p; size_t len, cap, target; } buf_t;
typedef struct { pthread_t th; uint64_t rng; unsigned long long ops; double t_end; } worker_t;

static atomic_int g_stop;
static pthread_barrier_t g_start;
static size_t g_max = 256 << 10;

static void* run(void* arg) {
  worker_t* w = arg;
  buf_t b[NBUF] = {{0}};
  uint64_t rng = w->rng;  /* local: avoids false sharing between workers */
  pthread_barrier_wait(&g_start);
  unsigned long long ops = 0;
  while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    for (int k = 0; k < 64; k++) {
      int i = (int)(bench_rand(&rng) % NBUF);
      buf_t* x = &b[i];
      if (!x->p) {
        x->target = bench_range(&rng, 1024, g_max);
        x->len = 0;
        x->cap = 0;
      }
      size_t add = bench_range(&rng, 1, 64);
      if (x->len + add > x->cap) {
        size_t ncap = (i & 1) ? (x->cap ? x->cap * 2 : 16) : x->len + add;
        if (ncap < x->len + add) ncap = x->len + add;
        unsigned char* q = realloc(x->p, ncap);
        if (!q) bench_xmalloc_fail(ncap);
        if (x->len && q[0] != (unsigned char)i) {
          fprintf(stderr, "FATAL: realloc lost the buffer contents\n");
          exit(5);
        }
        x->p = q;
        x->cap = ncap;
        ops++;
      }
      memset(x->p + x->len, i, add);
      x->len += add;
      if (x->len >= x->target) {
        free(x->p);
        x->p = NULL;
      }
    }
  }
  w->t_end = bench_now();
  for (int i = 0; i < NBUF; i++) free(b[i].p);
  w->ops = ops;
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s seconds threads [max_kb] [seed]\n", argv[0]);
    return 2;
  }
  bench_check_malloc("realloc_grow");
  double seconds = bench_arg_d(argc, argv, 1, 1);
  int threads = (int)bench_arg_l(argc, argv, 2, 1);
  g_max = (size_t)bench_arg_l(argc, argv, 3, 256) << 10;
  uint64_t seed = (uint64_t)bench_arg_l(argc, argv, 4, 5);
  if (threads < 1) threads = 1;
  if (g_max < 2048) g_max = 2048;

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
  bench_result("bench=realloc_grow threads=%d value=%.0f unit=ops/s ops=%llu seconds=%.3f max_kb=%zu",
               threads, (double)ops / (t1 - t0), ops, t1 - t0, g_max >> 10);
  return 0;
}
