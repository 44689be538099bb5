/* A pthread-key destructor that runs after hakmem's own thread teardown
 * frees blocks through the shared heap, under its lock.  If that free is
 * the first thing to need the background thread (two 600 KiB Large blocks
 * overflow the shared heap's Large list), starting it must not happen under
 * the lock: pthread_create allocates the new thread's TLS with calloc, which
 * would take the same lock again (a self-deadlock, found by review).  The
 * watchdog turns a hang into a failure.  Not in the reliability suite: its
 * sanitizer builds leave malloc (and pthread_create's calloc) to the runtime. */
#define _GNU_SOURCE
#include <pthread.h>
#include "hakmem.h"
#include "hk_test.h"

static pthread_key_t key;
static void* pair[2];
static volatile int freed, owned;

static void dtor(void* v) {
  void** pr = v;
  free(pr[0]);
  free(pr[1]);
  void* p = malloc(200000);     /* and the shared heap still works */
  if (p) free(p);
  freed = 1;
}

static void* worker(void* a) {
  (void)a;
  pair[0] = malloc(600 * 1024);
  pair[1] = malloc(600 * 1024);
  if (!pair[0] || !pair[1]) return NULL;
  memset(pair[0], 1, 64);
  memset(pair[1], 1, 64);
  owned = hak_owns(pair[0]) && hak_owns(pair[1]);
  pthread_setspecific(key, pair);
  return NULL;
}

int main(void) {
  hk_begin("threads/dtor_bg_kick", 30);
  free(malloc(16));              /* hakmem's own key first: ours runs after its teardown */
  CHECK(pthread_key_create(&key, dtor) == 0, "pthread_key_create");
  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker, NULL) == 0, "pthread_create");
  CHECK(pthread_join(t, NULL) == 0, "pthread_join");
  CHECK(pair[0] && pair[1], "malloc(600 KiB) failed");
  CHECK(owned, "hakmem did not serve the blocks");
  CHECK(freed, "the destructor did not run to its end");
  printf("dtor_bg_kick: ok (destructor freed two Large blocks after teardown)\n");
  return 0;
}
