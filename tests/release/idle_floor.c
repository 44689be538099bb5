/* A class idle for long gives back even the CAP pages it keeps: worker
 * threads that used every small and Large class exit with nothing live,
 * and the program goes quiet (no call at all: only the background thread
 * runs upkeep).  Each class kept CAP (16 + 4 pages a small class, 4 MiB a
 * Large one): about 110 MB with nothing live, where glibc kept 7 MB and
 * mimalloc 2 MB.  After HAK_IDLE_DEEP_WINDOWS decay windows without a pop,
 * the floor is gone.  The program has 480 KB of static TLS, which every
 * thread's stack holds: the background thread's 256 KiB stack could not,
 * its start failed, and nothing was ever given back (it now falls back to
 * the default stack size). */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include "hk_test.h"


//! Whether a thread named hakmem-bg runs in this process.
static int bg_running(void) {
  DIR* d = opendir("/proc/self/task");
  int found = 0;
  for (struct dirent* e; d && (e = readdir(d)) != NULL && !found;) {
    char path[300], name[32] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE* f = fopen(path, "r");
    if (f && fgets(name, sizeof name, f)) found = !strncmp(name, "hakmem-bg", 9);
    if (f) fclose(f);
  }
  if (d) closedir(d);
  return found;
}

enum { MAXB = 60000 };
static __thread void* b[MAXB];   /* 480 KB of static TLS in every thread */

static void* worker(void* arg) {
  (void)arg;
  /* every small class (16 B to 52 KiB, ~12% apart) 2 MB each, and every
   * Large class (64 KiB to 1 MiB) 6 MB each, touched, then freed */
  for (size_t s = 16; s <= 1 << 20; s += s / 8 > 16 ? s / 8 : 16) {
    size_t bytes = s <= 52 * 1024 ? 2 * MiB : 6 * MiB, n = bytes / s;
    if (n > MAXB) n = MAXB;
    for (size_t i = 0; i < n; i++) {
      b[i] = malloc(s);
      CHECK(b[i], "malloc(%zu)", s);
      memset(b[i], 1, s < 4096 ? s : 4096);
      for (size_t o = 4096; o < s; o += 4096) ((char*)b[i])[o] = 1;
    }
    for (size_t i = 0; i < n; i++) free(b[i]);
  }
  return NULL;
}

int main(void) {
  hk_begin("release/idle_floor", 60);
  if (hk_under_valgrind()) {                     /* valgrind's own memory dominates RSS */
    printf("[valgrind] release/idle_floor: skipped (RSS)\n");
    return 0;
  }
  free(malloc(16));
  long rss0 = hk_rss_kb();
  pthread_t t[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, worker, NULL) == 0, "pthread_create");
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  long rss1 = hk_rss_kb();
  /* quiet: no call into the allocator while we wait */
  const char* d = getenv("HAKMEM_DECAY_MS");
  double window = (d ? atof(d) : 250.0) / 1000.0, t0 = hk_now(), limit_s = 10 * window + 3.0;
  long rss2 = rss1, limit = rss0 + 24 * 1024;
  while (rss2 > limit && hk_now() - t0 < limit_s) {
    hk_sleep_ms(50);
    rss2 = hk_rss_kb();
  }
  INFO("RSS: before %ld kB, workers gone %ld kB, %.2f s later %ld kB", rss0, rss1, hk_now() - t0, rss2);
  CHECK(rss1 > rss0 + 48 * 1024, "the workers did not raise RSS (%ld -> %ld kB)", rss0, rss1);
  CHECK(bg_running(), "no hakmem-bg thread: it did not start (a program with 480 KB of static TLS)");
  CHECK(rss2 <= limit, "idle classes kept their CAP pages: RSS %ld kB, %ld kB above the start, after %.1f s idle",
        rss2, rss2 - rss0, hk_now() - t0);
  printf("release/idle_floor: ok\n");
  return 0;
}
