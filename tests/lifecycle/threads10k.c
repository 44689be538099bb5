/* 10,000 short threads in sequence, RSS flat (issue 6, item 6).
 * Each thread allocates in every layer, frees some itself, leaves some for
 * the main thread to free after it has exited (frees to a dead owner), and
 * exits with blocks still in its caches.  After a warm-up of 1,000 threads
 * the RSS and hakmem's mapped bytes may not grow by more than 16 MiB over the
 * remaining 9,000 (LIFECYCLE_THREADS sets the count). */
#define _GNU_SOURCE
#include <pthread.h>

#include "../stress/rel_alloc.h"

#define KEEP 8
typedef struct { void* out[KEEP]; size_t n[KEEP]; int id; } targ_t;

static void* thr(void* a) {
  targ_t* t = a;
  uint64_t rs = (uint64_t)t->id * 2654435761u + 1;
  void* loc[64];
  for (int i = 0; i < 64; i++) {
    size_t n = i < 40 ? 1 + rel_rand(&rs) % 1024 : i < 56 ? 1025 + rel_rand(&rs) % 50000
             : i < 62 ? 65536 + rel_rand(&rs) % 500000 : (1u << 20) + 4096;
    loc[i] = A_MALLOC(n);
    if (!loc[i]) { fprintf(stderr, "FAIL: malloc(%zu) NULL in thread %d\n", n, t->id); _exit(1); }
    memset(loc[i], 0x11, n < 4096 ? n : 4096);
    if (i % 8 == 0) { t->out[i / 8] = loc[i]; t->n[i / 8] = n < 4096 ? n : 4096; loc[i] = NULL; }
  }
  for (int i = 0; i < 64; i++) A_FREE(loc[i]);
  /* and a few left in the thread cache at exit */
  for (int i = 0; i < 8; i++) { void* volatile p = A_MALLOC(48); A_FREE(p); }
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int total = (int)rel_env_long("LIFECYCLE_THREADS", 10000);
  int warm = total / 10;
  size_t rss0 = 0, map0 = 0;
  for (int i = 0; i < total; i++) {
    targ_t t;
    memset(&t, 0, sizeof t);
    t.id = i;
    pthread_t th;
    if (pthread_create(&th, NULL, thr, &t)) { fprintf(stderr, "FAIL: pthread_create at %d\n", i); return 1; }
    pthread_join(th, NULL);
    for (int k = 0; k < KEEP; k++) {   /* free what the exited thread left us */
      for (size_t b = 0; b < t.n[k]; b++)
        if (((unsigned char*)t.out[k])[b] != 0x11) { fprintf(stderr, "FAIL: block of thread %d corrupt\n", i); return 1; }
      A_FREE(t.out[k]);
    }
    if (i + 1 == warm) { A_TRIM(); rss0 = rel_rss_bytes(); }
    if (i + 1 == total / 2) { A_TRIM(); map0 = rel_hak_mapped(); }
  }
  A_TRIM();
  size_t rss1 = rel_rss_bytes(), map1 = rel_hak_mapped();
  long drss = (long)rss1 - (long)rss0, dmap = (long)map1 - (long)map0;
  printf("threads10k: %d threads; RSS after %d: %zu KiB, after %d: %zu KiB (%+ld KiB); hakmem mapped after %d: %zu KiB, after %d: %zu KiB (%+ld KiB); api %s\n",
         total, warm, rss0 >> 10, total, rss1 >> 10, drss / 1024, total / 2, map0 >> 10, total, map1 >> 10, dmap / 1024, REL_API_NAME);
  /* RSS must stay flat; address space may still fill caches early on but a
   * per-thread leak of a page would add 5000 x 64 KiB over the second half */
  const long limit = 16L << 20;
  if (dmap > 2 * limit) { fprintf(stderr, "FAIL: hakmem's mapped bytes grew by %ld KiB over the last %d threads\n", dmap / 1024, total - total / 2); return 1; }
#if !defined(REL_SANITIZED)   /* sanitizer runtimes keep per-thread state of their own */
  if (drss > limit) { fprintf(stderr, "FAIL: RSS grew by %ld KiB over %d threads\n", drss / 1024, total - warm); return 1; }
#endif
  printf("threads10k: ok\n");
  return 0;
}
