/* After fork, the forking thread's heap is the child's own: blocks it
 * allocated before the fork are freed in the child as its own blocks (local
 * frees, no remote inbox), in the default mode and with HAKMEM_SECURE=1,
 * where the thread's heap is not the fast path's thread-local (the fork
 * handler once took the fast path's sentinel for "this thread's heap", so
 * the child's heap got a new token and its own pages looked foreign). */
#define _GNU_SOURCE
#include <malloc.h>
#include <sys/wait.h>
#include "hk_test.h"
#include "internal.h"   /* the heap's token: what its pages carry as their owner */

#define N 300

static unsigned long long remote_frees(void) {
  hak_stats_t s;
  hak_stats_get(&s);
  unsigned long long r = 0;
  for (int l = 0; l < HAK_LAYER_COUNT; l++) r += s.layer[l].remote_frees;
  return r;
}

static int run(void) {
  static void* blk[N];
  static const size_t sizes[] = {24, 200, 3000, 20000};
  for (int i = 0; i < N; i++) {
    blk[i] = malloc(sizes[i % 4]);
    CHECK(blk[i] && hak_owns(blk[i]), "malloc(%zu)", sizes[i % 4]);
    memset(blk[i], i, sizes[i % 4]);
  }
  hak_heap_t* h = hak__heap_current();
  CHECK(h, "no heap after %d mallocs", N);
  uintptr_t token = h->token;
  fflush(stdout);
  pid_t pid = fork();
  CHECK(pid >= 0, "fork");
  if (pid == 0) {
    alarm(20);
    if (hak__heap_current() != h || h->token != token) {
      fprintf(stderr, "child: the forking thread's heap %p (token %#lx) became %p (token %#lx): its pages look foreign\n",
              (void*)h, (unsigned long)token, (void*)hak__heap_current(), (unsigned long)h->token);
      _exit(4);
    }
    unsigned long long r0 = remote_frees();
    for (int i = 0; i < N; i++) free(blk[i]);
    hak_trim();                       /* secure mode's quarantine holds frees back */
    unsigned long long r1 = remote_frees();
    if (r1 != r0) {
      fprintf(stderr, "child: %llu of %d frees of the forking thread's own blocks went remote\n", r1 - r0, N);
      _exit(1);
    }
    for (int i = 0; i < N; i++) {     /* and its heap serves on */
      void* p = malloc(sizes[i % 4]);
      if (!p || !hak_owns(p)) _exit(3);
      free(p);
    }
    _exit(0);
  }
  int st;
  CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %s", hk_status_str(st));
  for (int i = 0; i < N; i++) free(blk[i]);
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0) {
    hk_begin("fork/fork_own (secure)", 30);
    run();
    printf("ok\n");
    return 0;
  }
  hk_begin("fork/fork_own", 60);
  HK_STEP(run());
  static const char* const secure[] = {"HAKMEM_SECURE=1", NULL};
  static hk_child_t c;
  hk_exec_self("child", secure, 0, &c);
  CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "with HAKMEM_SECURE=1: %s\n%s", hk_status_str(c.status),
        c.err);
  printf("fork/fork_own: ok\n");
  return 0;
}
