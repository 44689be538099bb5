/* Out of memory under a lowered address-space limit (RLIMIT_AS, what
 * `ulimit -v` sets): allocation returns NULL with errno ENOMEM, never
 * crashes, and works again once memory is freed, also across layers (memory
 * freed by one layer must be usable by another).
 *  A: forked children of an initialised process lower their limit, then
 *     fill one layer until NULL, free, refill (one child per layer), or fill
 *     and free each layer in turn (memory must move between layers);
 *     impossible sizes through every entry point; a failed realloc keeps
 *     the block.
 *  B: the test re-execs itself with the limit already set before exec, so
 *     hakmem initialises under it (as `ulimit -v N; prog`). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include "oom_fill.h"

#define HEADROOM (192 * MiB)

static const size_t fill_sizes[] = {64, 8000, 300000, 4 * MiB};

static void impossible_sizes(int at_edge) {
  size_t big = 1 * GiB;
  errno = 0;
  void* p = malloc(big);
  CHECK(p == NULL && errno == ENOMEM, "malloc(1 GiB) under the limit = %p, errno %d", p, errno);
  errno = 0;
  p = calloc(1024, 1024 * 1024);
  CHECK(p == NULL && errno == ENOMEM, "calloc(1024, 1 MiB) under the limit = %p, errno %d", p, errno);
  errno = 0;
  p = memalign(1 << 21, big);
  CHECK(p == NULL && errno == ENOMEM, "memalign(2 MiB, 1 GiB) = %p, errno %d", p, errno);
  errno = 0;
  p = aligned_alloc(4096, big);
  CHECK(p == NULL && errno == ENOMEM, "aligned_alloc(4096, 1 GiB) = %p, errno %d", p, errno);
  errno = 0;
  p = valloc(big);
  CHECK(p == NULL && errno == ENOMEM, "valloc(1 GiB) = %p, errno %d", p, errno);
  void* mp = (void*)0x42;
  int rc = posix_memalign(&mp, 64, big);
  CHECK(rc == ENOMEM && mp == (void*)0x42, "posix_memalign(64, 1 GiB) = %d, *memptr %p", rc, mp);
  if (at_edge) return;  /* nothing left for the blocks below */
  /* a failed realloc keeps the block, in every layer */
  size_t ns[] = {100, 5000, 100000, 3 * MiB};
  for (int i = 0; i < 4; i++) {
    unsigned char* b = malloc(ns[i]);
    CHECK(b, "malloc(%zu) under the limit", ns[i]);
    hk_fill(b, ns[i], 5 + i, 1);
    errno = 0;
    void* q = realloc(b, big);
    if (q != NULL) FAIL("realloc(%zu -> 1 GiB) under the limit = %p", ns[i], q);
    CHECK(errno == ENOMEM, "failed realloc: errno %d", errno);
    CHECK(hk_verify(b, ns[i], 5 + i, 1) == (size_t)-1, "failed realloc changed the block (%zu bytes)", ns[i]);
    free(b);
  }
}

static void limit_as(size_t headroom) {
  long vm = hk_status_kb("VmSize");
  CHECK(vm > 0, "VmSize");
  struct rlimit rl = {(rlim_t)vm * 1024 + headroom, (rlim_t)vm * 1024 + headroom};
  CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit(RLIMIT_AS): %s", strerror(errno));
}

/* A1: one layer on its own: fill until ENOMEM, free, fill again. */
static void scenario_layer(void* arg) {
  size_t n = *(size_t*)arg;
  limit_as(HEADROOM);
  impossible_sizes(0);
  void* head;
  size_t first = oom_fill(n, &head);
  CHECK(first * n >= HEADROOM / 4, "only %zu blocks of %zu bytes fit in %zu MiB of headroom", first, n,
        HEADROOM / MiB);
  impossible_sizes(1);  /* still no crash at the edge */
  oom_release(head);
  size_t again = oom_fill(n, &head);
  oom_release(head);
  CHECK(again * 10 >= first * 9, "%zu-byte blocks: %zu fit first, only %zu after freeing them", n, first, again);
  void* p = malloc(n);
  CHECK(p && hak_owns(p), "malloc(%zu) after freeing everything", n);
  free(p);
  printf("A: %zu x %zu bytes until ENOMEM, %zu after freeing\n", first, n, again);
}

/* A2: memory freed by one layer must be usable by the others. */
static void scenario_cross(void* arg) {
  (void)arg;
  limit_as(HEADROOM);
  for (int i = 0; i < 4; i++) {
    void* head;
    size_t k = oom_fill(fill_sizes[i], &head);
    oom_release(head);
    CHECK(k * fill_sizes[i] >= HEADROOM / 2,
          "after filling and freeing the layers before it, only %zu blocks of %zu bytes fit (%zu MiB of %zu MiB "
          "headroom): memory freed by one layer is not reusable by another",
          k, fill_sizes[i], k * fill_sizes[i] / MiB, HEADROOM / MiB);
  }
  void* big = malloc(HEADROOM / 2);
  CHECK(big, "malloc(%zu MiB) after every layer was filled and freed", HEADROOM / 2 / MiB);
  memset(big, 1, 4096);
  free(big);
  printf("A: cross-layer reuse ok\n");
}

static int scenario_b_child(void) {
  /* Started with RLIMIT_AS already low: hakmem initialises under it. */
  hk_test_name = "oom/oom (under-limit child)";
  long vm0 = hk_status_kb("VmSize");
  void* first = malloc(16);
  long vm1 = hk_status_kb("VmSize");
  CHECK(first && hak_owns(first), "first malloc(16) under the limit");
  free(first);
  void* ps[1000];
  for (int i = 0; i < 1000; i++) {
    ps[i] = malloc((size_t)i * 61);
    CHECK(ps[i] && hak_owns(ps[i]), "malloc(%d) under the limit from the start", i * 61);
  }
  for (int i = 0; i < 1000; i++) free(ps[i]);
  impossible_sizes(0);
  void* head;
  size_t a = oom_fill(8000, &head);
  /* no efficiency target in the contract: only that a useful part of the limit is usable */
  CHECK(a * 8000 >= 16 * MiB, "only %zu blocks of 8000 fit under the limit (VmSize %ld kB at start, %ld kB after "
        "the first malloc)", a, vm0, vm1);
  oom_release(head);
  size_t b = oom_fill(8000, &head);
  oom_release(head);
  CHECK(b * 10 >= a * 9, "%zu mid blocks first, %zu after freeing", a, b);
  void* h = malloc(100);
  CHECK(h, "malloc(100) after freeing");
  free(h);
  printf("under-limit child ok (%zu blocks of 8000; VmSize %ld kB at start, %ld kB after the first malloc)\n", a,
         vm0, vm1);
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && !strcmp(argv[1], "under-limit")) return scenario_b_child();
  hk_begin("oom/oom", 55);
  if (hk_skip_rlimit_as()) return 0;     /* every scenario lowers RLIMIT_AS */
  long vm_base = hk_status_kb("VmSize");   /* before hakmem starts: binary, libraries, sanitizer runtime */
  /* initialise hakmem (and stdio) before forking */
  void* warm = malloc(100);
  free(warm);
  hk_child_t* c = malloc(sizeof *c);
  CHECK(c, "malloc");
  int failures = 0;
  for (int i = 0; i < 5; i++) {
    size_t n = i < 4 ? fill_sizes[i] : 0;
    hk_run_forked(i < 4 ? scenario_layer : scenario_cross, &n, c);
    fputs(c->out, stdout);
    if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) {
      failures++;
      fprintf(stderr, "FAIL scenario A (limit lowered after init), %s: %s\n%s", i < 4 ? "one layer" : "cross-layer",
              hk_status_str(c->status), c->err);
    }
  }
  /* B: limit = this binary's own start-up size + 256 MiB, then + 56 MiB (a
   * sanitizer runtime adds its own tens of MiB: an absolute limit measured
   * the build, not hakmem), set before exec */
  size_t base = vm_base > 0 ? (size_t)vm_base * 1024 : 40 * MiB;
  size_t limits[] = {base + 256 * MiB, base + 56 * MiB};
  for (int i = 0; i < 2; i++) {
    hk_exec_self("under-limit", NULL, limits[i], c);
    fputs(c->out, stdout);
    if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) {
      failures++;
      fprintf(stderr, "FAIL scenario B (RLIMIT_AS %zu MiB set before exec, like ulimit -v): %s\n%s", limits[i] / MiB,
              hk_status_str(c->status), c->err);
    }
  }
  free(c);
  CHECK(failures == 0, "%d OOM scenario(s) failed (see above)", failures);
  printf("oom: ok\n");
  return 0;
}
