/* prodcons: producer-consumer; every free is remote.
 *
 *   prodcons seconds threads min max [seed]
 *
 * threads is split into producers (threads/2, at least 1) that only
 * allocate and consumers (the rest, at least 1) that only free.  Blocks
 * travel in batches of 256 pointers through one bounded queue (a mutex per
 * batch, so the queue is not the bottleneck; a bound so a slow consumer
 * cannot make memory grow without limit).  Like mimalloc-bench's
 * xmalloc-test.  Reports blocks freed per second (one malloc + one free),
 * and peak_live_kb, the most requested bytes live at once (made and not
 * yet freed, counted by each thread in steps of about LIVE_STEP bytes,
 * so a batch being filled or freed counts as far as it has got): a
 * faster producer keeps the queue fuller, so
 * peak RSS alone favours a slower allocator (mimalloc's producer held
 * 7-14 MB at its peak where hakmem's held 17 MB, prodcons 8-2048).
 * over_live_kb = peak RSS - peak_live_kb compares them fairly.  The
 * producer writes a byte in every page a block spans, as a real producer
 * fills its message: a block's untouched pages would not be resident, and
 * peak RSS would then count less than the live bytes (2-32 KiB blocks). */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#define BATCH 256
#define QCAP 64      /* batches in flight */
#define LIVE_STEP (64u * 1024)  /* bytes a thread makes or frees between updates of g_live */

typedef struct batch { struct batch* next; int n; void* p[BATCH]; uint32_t sz[BATCH]; } batch_t;

static pthread_mutex_t g_qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_nonempty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t g_nonfull = PTHREAD_COND_INITIALIZER;
static batch_t* g_head;
static batch_t* g_tail;
static batch_t* g_spare;       /* empty batch structs, kept off the allocator */
static int g_depth;
static _Atomic long g_live;    /* requested bytes made and not yet freed */
static long g_live_peak;       /* under g_qlock */
static int g_producers_left;
static atomic_int g_stop;
static size_t g_min, g_max;
static pthread_barrier_t g_start;

typedef struct { pthread_t th; uint64_t rng; unsigned long long n; double t_end; } worker_t;

//! Adds sz (negative: freed) to the thread's step, and the step to g_live
//! once it reaches LIVE_STEP bytes or the batch ends; the new g_live then,
//! else 0.
static long live_step(long* step, long sz, int last) {
  *step += sz;
  if (!last && labs(*step) < (long)LIVE_STEP) return 0;
  long d = *step;
  *step = 0;
  return atomic_fetch_add_explicit(&g_live, d, memory_order_relaxed) + d;
}

static batch_t* get_spare(void) {
  /* caller holds g_qlock */
  batch_t* b = g_spare;
  if (b) g_spare = b->next;
  return b;
}

static void* producer(void* arg) {
  worker_t* w = arg;
  uint64_t rng = w->rng;  /* local: avoids false sharing between workers */
  pthread_barrier_wait(&g_start);
  unsigned long long made = 0;
  long peak = 0;
  while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    pthread_mutex_lock(&g_qlock);
    while (g_depth >= QCAP && !atomic_load(&g_stop)) pthread_cond_wait(&g_nonfull, &g_qlock);
    batch_t* b = atomic_load(&g_stop) ? NULL : get_spare();
    pthread_mutex_unlock(&g_qlock);
    if (!b) break;
    long step = 0;
    for (int i = 0; i < BATCH; i++) {
      size_t sz = bench_range(&rng, g_min, g_max);
      char* p = malloc(sz);
      if (!p) bench_xmalloc_fail(sz);
      p[0] = (char)i;
      for (size_t o = 4096 - ((uintptr_t)p & 4095); o < sz; o += 4096) p[o] = (char)i;
      b->p[i] = p;
      b->sz[i] = (uint32_t)sz;
      long now = live_step(&step, (long)sz, i == BATCH - 1);
      if (now > peak) peak = now;
    }
    b->n = BATCH;
    b->next = NULL;
    made += BATCH;
    pthread_mutex_lock(&g_qlock);
    if (g_tail) g_tail->next = b; else g_head = b;
    g_tail = b;
    g_depth++;
    pthread_cond_signal(&g_nonempty);
    pthread_mutex_unlock(&g_qlock);
  }
  pthread_mutex_lock(&g_qlock);
  if (peak > g_live_peak) g_live_peak = peak;
  g_producers_left--;
  pthread_cond_broadcast(&g_nonempty);
  pthread_mutex_unlock(&g_qlock);
  w->n = made;
  return NULL;
}

static void* consumer(void* arg) {
  worker_t* w = arg;
  pthread_barrier_wait(&g_start);
  unsigned long long freed = 0;
  double t_end = 0;
  for (;;) {
    pthread_mutex_lock(&g_qlock);
    while (!g_head && g_producers_left > 0) pthread_cond_wait(&g_nonempty, &g_qlock);
    batch_t* b = g_head;
    if (b) {
      g_head = b->next;
      if (!g_head) g_tail = NULL;
      g_depth--;
      pthread_cond_signal(&g_nonfull);
    }
    pthread_mutex_unlock(&g_qlock);
    if (!b) break;  /* producers gone and queue drained */
    int counted = !atomic_load_explicit(&g_stop, memory_order_relaxed);
    long step = 0;
    for (int i = 0; i < b->n; i++) {
      volatile char* c = b->p[i];
      c[0]++;
      free(b->p[i]);
      live_step(&step, -(long)b->sz[i], i == b->n - 1);
    }
    if (counted) { freed += (unsigned long long)b->n; t_end = bench_now(); }
    pthread_mutex_lock(&g_qlock);
    b->next = g_spare;
    g_spare = b;
    pthread_mutex_unlock(&g_qlock);
  }
  w->n = freed;
  w->t_end = t_end;
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s seconds threads min max [seed]\n", argv[0]);
    return 2;
  }
  bench_check_malloc("prodcons");
  double seconds = bench_arg_d(argc, argv, 1, 1);
  int threads = (int)bench_arg_l(argc, argv, 2, 2);
  g_min = (size_t)bench_arg_l(argc, argv, 3, 64);
  g_max = (size_t)bench_arg_l(argc, argv, 4, 64);
  uint64_t seed = (uint64_t)bench_arg_l(argc, argv, 5, 7);
  if (g_min < 1) g_min = 1;
  if (g_max < g_min) g_max = g_min;
  int np = threads / 2 > 0 ? threads / 2 : 1;
  int nc = threads - np > 0 ? threads - np : 1;

  /* Batch structs come from mmap so the queue itself never calls malloc. */
  size_t nbatches = QCAP + 2 * (size_t)(np + nc);
  batch_t* pool = mmap(NULL, nbatches * sizeof(batch_t), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (pool == MAP_FAILED) { perror("mmap"); return 1; }
  for (size_t i = 0; i < nbatches; i++) { pool[i].next = g_spare; g_spare = &pool[i]; }

  g_producers_left = np;
  pthread_barrier_init(&g_start, NULL, (unsigned)(np + nc + 1));
  worker_t* w = calloc((size_t)(np + nc), sizeof *w);
  for (int i = 0; i < np + nc; i++) {
    w[i].rng = bench_seed(seed, (uint64_t)i);
    pthread_create(&w[i].th, NULL, i < np ? producer : consumer, &w[i]);
  }
  pthread_barrier_wait(&g_start);
  double t0 = bench_now();
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
  atomic_store(&g_stop, 1);
  pthread_mutex_lock(&g_qlock);
  pthread_cond_broadcast(&g_nonfull);
  pthread_mutex_unlock(&g_qlock);
  unsigned long long made = 0, freed = 0;
  double t1 = t0;
  for (int i = 0; i < np + nc; i++) {
    pthread_join(w[i].th, NULL);
    if (i < np) made += w[i].n;
    else { freed += w[i].n; if (w[i].t_end > t1) t1 = w[i].t_end; }
  }
  free(w);
  if (t1 <= t0) t1 = t0 + seconds;
  long live_kb = (long)(g_live_peak >> 10);
  bench_result("bench=prodcons producers=%d consumers=%d threads=%d value=%.0f unit=ops/s "
               "freed=%llu made=%llu seconds=%.3f peak_live_kb=%ld over_live_kb=%ld",
               np, nc, threads, (double)freed / (t1 - t0), freed, made, t1 - t0, live_kb,
               bench_peak_rss_kb() - live_kb);
  return 0;
}
