/* Large segments of a class gone idle are unmapped, not only decommitted.
 * A worker thread fills 48 MB with 200 KiB blocks, frees them and exits;
 * the program goes quiet.  The blocks' RSS went back to the OS at decay,
 * but their 4 MiB segments stayed mapped for good (52 MB here), and so
 * did their commit charge, which strict overcommit counts against every
 * later mapping.  After HAK_IDLE_DEEP_WINDOWS decay windows without a pop,
 * the class's wholly free segments are unmapped, as malloc_trim does. */
#define _GNU_SOURCE
#include <pthread.h>
#include "hk_test.h"

enum { N = 240, SIZE = 200 * 1024 };

static void* worker(void* arg) {
  (void)arg;
  static void* b[N];
  for (int i = 0; i < N; i++) {
    b[i] = malloc(SIZE);
    CHECK(b[i] && hak_owns(b[i]), "malloc(%d) %d", SIZE, i);
    for (size_t o = 0; o < SIZE; o += 4096) ((char*)b[i])[o] = 1;
  }
  for (int i = 0; i < N; i++) free(b[i]);
  return NULL;
}

static unsigned long long large_mapped(void) {
  hak_stats_t st;
  hak_stats_get(&st);
  return st.layer[HAK_LAYER_LARGE].bytes_mapped;
}

int main(void) {
  hk_begin("release/large_unmap", 60);
  if (getenv("HAKMEM_KEEP")) {
    printf("release/large_unmap: skipped (HAKMEM_KEEP keeps everything)\n");
    return 0;
  }
  free(malloc(16));
  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker, NULL) == 0, "pthread_create");
  pthread_join(t, NULL);
  unsigned long long full = large_mapped();
  /* quiet: no call into the allocator while we wait */
  const char* d = getenv("HAKMEM_DECAY_MS");
  double window = (d ? atof(d) : 250.0) / 1000.0, t0 = hk_now(), limit_s = 10 * window + 3.0;
  unsigned long long now = full, want = 8ull << 20;
  while (now > want && hk_now() - t0 < limit_s) {
    hk_sleep_ms(50);
    now = large_mapped();
  }
  INFO("Large segments mapped: %llu kB when the worker exited, %llu kB %.2f s later", full >> 10, now >> 10,
       hk_now() - t0);
  CHECK(full >= (unsigned long long)N * SIZE, "the worker did not map its blocks (%llu kB)", full >> 10);
  CHECK(now <= want, "idle Large segments stay mapped: %llu kB after %.1f s idle", now >> 10, hk_now() - t0);
  printf("release/large_unmap: ok\n");
  return 0;
}
