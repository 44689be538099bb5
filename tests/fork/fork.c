/* fork while other threads allocate: 200 forks (some from a worker thread,
 * some nested) of a parent whose 4 threads keep allocating and passing
 * blocks around.  Each child of the multi-threaded parent must allocate and
 * free in every layer, free blocks inherited from the parent (including
 * ones owned by threads that don't exist in the child), start a thread that
 * allocates, and exit 0 within a few seconds (a lock held across fork shows
 * up as a hang, caught by the child's alarm). */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "hk_test.h"

#define NWORK 4
#define NFORKS 200

static atomic_int stop;
static void* _Atomic shared_slot[64];     /* blocks passed between workers */
static void* _Atomic inherited[NWORK];    /* a live block owned by each worker */
static unsigned char* main_block;         /* live block of the main thread */

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  uint64_t rs = 1000 + id;
  void* mine = malloc(300 + id);
  memset(mine, id, 300 + id);
  atomic_store(&inherited[id], mine);
  while (!atomic_load(&stop)) {
    void* ps[32];
    for (int i = 0; i < 32; i++) {
      uint64_t r = hk_rand(&rs);
      size_t n = (r % 16 == 0) ? 60000 + r % 500000 : (r % 4 == 0) ? 1025 + r % 30000 : r % 1024;
      if (r % 512 == 0) n = 2 * MiB;
      ps[i] = malloc(n);
      CHECK(ps[i], "worker %d malloc(%zu)", id, n);
      memset(ps[i], 0x33, n < 256 ? n : 256);
    }
    for (int i = 0; i < 32; i++) {
      /* swap some blocks through the shared slots: frees become remote */
      void* old = atomic_exchange(&shared_slot[(hk_rand(&rs)) % 64], ps[i]);
      free(old);
    }
  }
  return NULL;
}

static void child_work(void) {
  alarm(hk_slow() ? 300 : 10);  /* a deadlock inherited through fork fails instead of hanging */
  /* the parent's live blocks are valid here and can be freed, even those
   * owned by threads that don't exist in the child */
  CHECK(main_block[0] == 0x5a && main_block[999] == 0x5a, "child: inherited block corrupted");
  free(main_block);
  for (int i = 0; i < NWORK; i++) {
    unsigned char* b = atomic_load(&inherited[i]);
    if (b) { CHECK(b[0] == (unsigned char)i, "child: worker %d's block corrupted", i); free(b); }
  }
  for (int i = 0; i < 64; i += 3) free(atomic_exchange(&shared_slot[i], NULL));
  size_t ns[] = {0, 16, 100, 1024, 1025, 8000, 52 * 1024, 70000, 1 << 20, 3 << 20};
  for (int r = 0; r < 3; r++)
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
      unsigned char* p = malloc(ns[i]);
      CHECK(p && hak_owns(p), "child: malloc(%zu) = %p", ns[i], (void*)p);
      memset(p, 7, ns[i]);
      unsigned char* c = calloc(1, ns[i] + 1);
      CHECK(c && c[ns[i]] == 0, "child: calloc(%zu)", ns[i] + 1);
      p = realloc(p, ns[i] * 2 + 1);
      CHECK(p && (ns[i] == 0 || p[ns[i] - 1] == 7), "child: realloc(%zu)", ns[i] * 2 + 1);
      void* a = memalign(4096, ns[i]);
      CHECK(a && (uintptr_t)a % 4096 == 0, "child: memalign");
      free(p);
      free(c);
      free(a);
    }
}

static void* child_thread(void* arg) {
  (void)arg;
  for (int i = 0; i < 1000; i++) {
    void* p = malloc(i * 7);
    CHECK(p, "child thread malloc");
    free(p);
  }
  return NULL;
}

/* Fork, run child_work (+ a thread, + sometimes a nested fork), wait. */
static void do_fork(int n, int nested) {
  pid_t pid = fork();
  CHECK(pid >= 0, "fork #%d failed: %s", n, strerror(errno));
  if (pid == 0) {
    child_work();
    pthread_t t;
    CHECK(pthread_create(&t, NULL, child_thread, NULL) == 0, "child: pthread_create");
    void* p = malloc(123);  /* allocate while the thread does too */
    free(p);
    pthread_join(t, NULL);
    if (nested) {
      pid_t g = fork();
      if (g == 0) {
        alarm(hk_slow() ? 300 : 10);
        void* q = malloc(5000);
        CHECK(q, "grandchild malloc");
        free(q);
        _exit(0);
      }
      int st;
      waitpid(g, &st, 0);
      CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "grandchild: %s", hk_status_str(st));
    }
    exit(0);  /* exit, not _exit: atexit/stdio teardown runs on hakmem too */
  }
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork #%d: child %s (exit 3 = the child's watchdog fired: deadlock after fork)", n,
        hk_status_str(st));
}

static atomic_int forks_from_thread;
static void* forking_thread(void* arg) {
  (void)arg;
  for (int i = 0; i < 20 / hk_scale() + 1; i++) {
    do_fork(1000 + i, 0);
    atomic_fetch_add(&forks_from_thread, 1);
  }
  return NULL;
}

int main(void) {
  hk_begin("fork/fork", 55);
  main_block = malloc(1000);
  memset(main_block, 0x5a, 1000);
  pthread_t th[NWORK];
  for (int i = 0; i < NWORK; i++) pthread_create(&th[i], NULL, worker, (void*)(intptr_t)i);
  while (!atomic_load(&inherited[NWORK - 1])) sched_yield();
  double t0 = hk_now();
  pthread_t ft;
  pthread_create(&ft, NULL, forking_thread, NULL);
  for (int i = 0; i < (NFORKS - 20) / hk_scale(); i++) {
    do_fork(i, i % 20 == 0);
    /* the parent keeps allocating between forks */
    void* p = malloc(i * 13);
    CHECK(p, "parent malloc");
    free(p);
  }
  pthread_join(ft, NULL);
  atomic_store(&stop, 1);
  for (int i = 0; i < NWORK; i++) pthread_join(th[i], NULL);
  CHECK(main_block[0] == 0x5a && main_block[999] == 0x5a, "parent: block corrupted");
  for (int i = 0; i < 64; i++) free(atomic_exchange(&shared_slot[i], NULL));
  for (int i = 0; i < NWORK; i++) free(atomic_exchange(&inherited[i], NULL));
  free(main_block);
  printf("fork: ok (%d forks in %.2fs)\n", NFORKS / hk_scale(), hk_now() - t0);
  return 0;
}
