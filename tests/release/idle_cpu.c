/* An idle program costs no CPU: when the central lists hold many blocks of
 * pages that cannot be released (each page keeps a block in use), the
 * scavenger walks them once and does not walk them again while nothing
 * new arrives.  It once rescanned every 100 ms: a program that freed every
 * other block of 4M and then slept used 2.1 s of CPU in 3 s (sqlite3 ran
 * at 184% with the background thread in hak__small_scavenge). */
#define _GNU_SOURCE
#include <malloc.h>
#include <sys/resource.h>
#include <time.h>
#include "hk_test.h"

static double cpu_s(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (double)r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + (double)r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

int main(void) {
  hk_begin("release/idle_cpu", 60);
  size_t n = hk_slow() ? 200000 : 1500000;
  void** v = malloc(n * sizeof *v);
  CHECK(v, "malloc");
  for (size_t i = 0; i < n; i++) {
    v[i] = malloc(48);
    CHECK(v[i], "malloc(48)");
    *(char*)v[i] = 1;
  }
  for (size_t i = 0; i < n; i += 2) free(v[i]);   /* half of each page: none becomes whole */
  /* the first walk may come at any tick now: let it pass, then measure idle */
  struct timespec ts = {1, 0};
  nanosleep(&ts, NULL);
  double c0 = cpu_s(), t0 = hk_now();
  ts.tv_sec = 3;
  nanosleep(&ts, NULL);
  double cpu = cpu_s() - c0, wall = hk_now() - t0;
  INFO("%zu blocks freed (half of %zu): %.3f s of CPU in %.2f s idle", n / 2, n, cpu, wall);
  CHECK(cpu < 0.25 * wall, "an idle process used %.3f s of CPU in %.2f s (the scavenger rescanning?)", cpu, wall);
  for (size_t i = 1; i < n; i += 2) free(v[i]);
  free(v);
  printf("release/idle_cpu: ok (%.3f s of CPU in %.2f s idle)\n", cpu, wall);
  return 0;
}
