/* Thread churn: 10,000 short threads in sequence must not grow RSS or the
 * mapped bytes.  Each thread allocates in every layer and frees it itself,
 * so it exits holding cached blocks that it must hand back (phase A); in
 * phase B each also leaves a few live blocks that the main thread frees
 * after the owner is gone (remote frees to a dead thread); phase C runs
 * threads four at a time that exit while others still allocate. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include "hk_test.h"

#define NTHREADS 10000  /* divided by hk_scale() under valgrind */
#define WARMUP 1000
#define KEEP 3

static void* orphans[NTHREADS][KEEP];
static int keep_orphans;  /* phase B: threads exit with live blocks */

static void* short_thread(void* arg) {
  intptr_t id = (intptr_t)arg;
  uint64_t rs = (uint64_t)id * 2654435761u + 1;
  void* ps[64];
  int n = 0;
  for (int i = 0; i < 48; i++) ps[n++] = malloc(8 + hk_rand(&rs) % 1000);        /* tiny, several classes */
  for (int i = 0; i < 10; i++) ps[n++] = malloc(1100 + hk_rand(&rs) % 50000);    /* mid */
  for (int i = 0; i < 2; i++) ps[n++] = malloc(60000 + hk_rand(&rs) % 900000);   /* large */
  if (id % 16 == 0) ps[n++] = malloc(2 * MiB);                                   /* huge, sometimes */
  for (int i = 0; i < n; i++) {
    CHECK(ps[i] && hak_owns(ps[i]), "thread %ld: allocation %d failed or not hakmem's", (long)id, i);
    ((volatile char*)ps[i])[0] = 1;
  }
  /* keep a few live for main to free after this thread is gone */
  if (keep_orphans)
    for (int k = 0; k < KEEP; k++) { orphans[id][k] = ps[k * 20]; ps[k * 20] = NULL; }
  /* free the rest here: they sit in this thread's cache at exit */
  for (int i = 0; i < n; i++) free(ps[i]);
  /* and refill the cache a little so exit has cached blocks of several classes */
  void* again[8];
  for (int i = 0; i < 8; i++) again[i] = malloc(16 << i);
  for (int i = 0; i < 8; i++) free(again[i]);
  return NULL;
}

static void free_orphans(int from, int to) {
  for (int i = from; i < to; i++)
    for (int k = 0; k < KEEP; k++) { free(orphans[i][k]); orphans[i][k] = NULL; }
}

static void* busy_thread(void* arg) {
  (void)arg;
  void* ps[200];
  for (int r = 0; r < 20; r++) {
    for (int i = 0; i < 200; i++) ps[i] = malloc(16 + (i * 37) % 3000);
    for (int i = 0; i < 200; i++) free(ps[i]);
  }
  return NULL;
}

static int failures;

/* Touches every size class once, so that the first use of a class (its
 * first page or segment) happens before the measurements, not during them:
 * the check is about growth per thread, and a short run under valgrind may
 * not reach every class within its warm-up threads. */
static void* warm_classes(void* arg) {
  (void)arg;
  static void* p[200];
  int k = 0;
  for (size_t sz = 16; sz <= (1u << 20) && k < 200; sz += sz / 4 > 16 ? sz / 4 : 16) p[k++] = malloc(sz);
  while (k) free(p[--k]);
  return NULL;
}

/* n threads in sequence; RSS and bytes_mapped measured after `warm` threads
 * and at the end. */
static void sequential(const char* what, int n, int warm) {
  pthread_t wt;
  if (pthread_create(&wt, NULL, warm_classes, NULL) == 0) pthread_join(wt, NULL);
  double t0 = hk_now();
  hak_stats_t s_start;
  hak_stats_get(&s_start);
  long rss_warm = 0;
  unsigned long long mapped_warm = 0;
  for (int i = 0; i < n; i++) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, short_thread, (void*)(intptr_t)i) == 0, "pthread_create #%d", i);
    CHECK(pthread_join(t, NULL) == 0, "pthread_join #%d", i);
    /* free the orphans of the last 100 threads now and then, after their owners are gone */
    if (i % 100 == 99) free_orphans(i - 99, i + 1);
    if (i == warm - 1) {
      rss_warm = hk_rss_kb();
      hak_stats_t s;
      hak_stats_get(&s);
      mapped_warm = s.bytes_mapped;
    }
  }
  free_orphans(0, n);
  long rss_end = hk_rss_kb();
  hak_stats_t s_end;
  hak_stats_get(&s_end);
  INFO("%s: %d threads in %.2fs, VmRSS after %d threads %ld kB, at end %ld kB; bytes_mapped %llu -> %llu", what, n,
       hk_now() - t0, warm, rss_warm, rss_end, mapped_warm, s_end.bytes_mapped);
  /* 4 MiB of slack for 9000 threads: a leak of >450 bytes per thread shows.
   * (Not under valgrind: its own memory dominates RSS.) */
  if (!hk_under_valgrind() && rss_end > rss_warm + 4096) {
    fprintf(stderr, "FAIL %s: RSS grew from %ld kB (after %d threads) to %ld kB after %d threads\n", what, rss_warm,
            warm, rss_end, n);
    failures++;
  }
  if (s_end.bytes_mapped > mapped_warm + 8 * MiB) {
    fprintf(stderr, "FAIL %s: bytes_mapped grew from %llu to %llu over %d threads\n", what, mapped_warm,
            s_end.bytes_mapped, n - warm);
    failures++;
  }
  unsigned long long started = s_end.threads_started - s_start.threads_started;
  unsigned long long exited = s_end.threads_exited - s_start.threads_exited;
  CHECK(started >= (unsigned long long)n && exited >= (unsigned long long)n,
        "stats: threads_started +%llu, threads_exited +%llu, expected at least %d each", started, exited, n);
  CHECK(s_end.threads_started - s_end.threads_exited <= 2,
        "stats: %llu threads started but only %llu exited with only main alive", s_end.threads_started,
        s_end.threads_exited);
}

int main(void) {
  hk_begin("churn/churn", 55);
  /* A: every thread frees its blocks itself: it exits holding cached blocks */
  keep_orphans = 0;
  int sc = hk_scale();
  sequential("A (threads exit holding cached blocks)", NTHREADS / sc, WARMUP / sc);
  /* B: every thread also leaves 3 live blocks that main frees after it exited */
  keep_orphans = 1;
  sequential("B (threads exit with live blocks, freed later by main)", NTHREADS / sc, WARMUP / sc);

  /* C: overlapping churn, 4 at a time, plus one long-running thread. */
  double t1 = hk_now();
  pthread_t busy;
  pthread_create(&busy, NULL, busy_thread, NULL);
  long rss2_warm = 0;
  for (int i = 0; i < 2000 / sc; i++) {
    pthread_t t[4];
    for (int k = 0; k < 4; k++)
      CHECK(pthread_create(&t[k], NULL, short_thread, (void*)(intptr_t)(k * 2000 + i)) == 0, "pthread_create");
    for (int k = 0; k < 4; k++) pthread_join(t[k], NULL);
    for (int k = 0; k < 4; k++) free_orphans(k * 2000 + i, k * 2000 + i + 1);
    if (i == 199 / sc) rss2_warm = hk_rss_kb();
  }
  pthread_join(busy, NULL);
  long rss2_end = hk_rss_kb();
  INFO("C (overlapping, 4 at a time, with live blocks): 8000 threads in %.2fs, VmRSS %ld kB -> %ld kB",
       hk_now() - t1, rss2_warm, rss2_end);
  if (!hk_under_valgrind() && rss2_end > rss2_warm + 6144) {
    fprintf(stderr, "FAIL C: overlapping churn: RSS grew from %ld kB to %ld kB\n", rss2_warm, rss2_end);
    failures++;
  }
  CHECK(failures == 0, "%d churn check(s) failed (see above)", failures);
  printf("churn: ok\n");
  return 0;
}
