/* larson: the Larson-Krishnan server simulation (as in mimalloc-bench).
 *
 *   larson seconds min max chunks_per_thread rounds seed threads
 *
 * The main thread fills one array of chunks per thread.  Each worker replaces
 * random chunks with new blocks of random size in [min, max]
 * (rounds * chunks_per_thread replacements), then hands its array to a NEW
 * thread and exits, so blocks are freed by threads other than the one that
 * allocated them.  After `seconds` the chain stops.  Reports ops/s, where
 * one op is one malloc+free replacement. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

typedef struct {
  char** blocks;
  size_t nblocks;
  size_t min, max;
  long rounds;
  uint64_t rng;
  unsigned long long ops;  /* accumulated over the whole chain */
  int finished;
} lane_t;

static atomic_int g_stop;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static int g_lanes_done;

static void* worker(void* arg) {
  lane_t* l = arg;
  const size_t total = (size_t)l->rounds * l->nblocks;
  uint64_t rng = l->rng;  /* local: lanes sit side by side (false sharing) */
  for (size_t i = 0; i < total; i++) {
    size_t victim = (size_t)(bench_rand(&rng) % l->nblocks);
    free(l->blocks[victim]);
    size_t sz = bench_range(&rng, l->min, l->max);
    char* p = malloc(sz);
    if (!p) bench_xmalloc_fail(sz);
    p[0] = (char)i;  /* touch like the original (it writes the block) */
    p[sz - 1] = (char)i;
    l->blocks[victim] = p;
  }
  l->ops += total;
  l->rng = rng;
  /* Hand the array to a fresh thread: its frees will be remote. */
  if (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, worker, l) == 0) {
      pthread_attr_destroy(&at);
      return NULL;
    }
    pthread_attr_destroy(&at);
  }
  pthread_mutex_lock(&g_lock);
  l->finished = 1;
  g_lanes_done++;
  pthread_cond_broadcast(&g_cond);
  pthread_mutex_unlock(&g_lock);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 8) {
    fprintf(stderr, "usage: %s seconds min max chunks_per_thread rounds seed threads\n", argv[0]);
    return 2;
  }
  bench_check_malloc("larson");
  double seconds = bench_arg_d(argc, argv, 1, 2);
  size_t min = (size_t)bench_arg_l(argc, argv, 2, 8);
  size_t max = (size_t)bench_arg_l(argc, argv, 3, 1000);
  size_t chunks = (size_t)bench_arg_l(argc, argv, 4, 5000);
  long rounds = bench_arg_l(argc, argv, 5, 100);
  uint64_t seed = (uint64_t)bench_arg_l(argc, argv, 6, 4141);
  int threads = (int)bench_arg_l(argc, argv, 7, 1);
  if (min < 1) min = 1;
  if (max < min) max = min;
  if (chunks < 1) chunks = 1;
  if (rounds < 1) rounds = 1;
  if (threads < 1) threads = 1;

  lane_t* lanes = calloc((size_t)threads, sizeof *lanes);
  uint64_t rng = bench_seed(seed, 0);
  /* Warm-up fill by the main thread, as in the original. */
  for (int t = 0; t < threads; t++) {
    lanes[t].blocks = malloc(chunks * sizeof(char*));
    lanes[t].nblocks = chunks;
    lanes[t].min = min;
    lanes[t].max = max;
    lanes[t].rounds = rounds;
    lanes[t].rng = bench_seed(seed, (uint64_t)t + 1);
    for (size_t i = 0; i < chunks; i++) {
      size_t sz = bench_range(&rng, min, max);
      lanes[t].blocks[i] = malloc(sz);
      if (!lanes[t].blocks[i]) bench_xmalloc_fail(sz);
      lanes[t].blocks[i][0] = 0;
    }
  }

  double t0 = bench_now();
  for (int t = 0; t < threads; t++) {
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &at, worker, &lanes[t]) != 0) {
      fprintf(stderr, "larson: pthread_create failed\n");
      return 1;
    }
    pthread_attr_destroy(&at);
  }
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
  atomic_store(&g_stop, 1);
  double t_stop = bench_now();
  pthread_mutex_lock(&g_lock);
  while (g_lanes_done < threads) pthread_cond_wait(&g_cond, &g_lock);
  pthread_mutex_unlock(&g_lock);
  double t1 = bench_now();

  unsigned long long ops = 0;
  for (int t = 0; t < threads; t++) ops += lanes[t].ops;
  /* Like the original, count only completed rounds; divide by the time
   * the last lane actually finished so the tail of a long round is fair. */
  double el = t1 - t0;
  for (int t = 0; t < threads; t++) {
    for (size_t i = 0; i < chunks; i++) free(lanes[t].blocks[i]);
    free(lanes[t].blocks);
  }
  free(lanes);
  bench_result("bench=larson threads=%d value=%.0f unit=ops/s ops=%llu seconds=%.3f stop_lag=%.3f",
               threads, (double)ops / el, ops, el, t1 - t_stop);
  return 0;
}
