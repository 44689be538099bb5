/* Requests larger than the machine's memory fail at once, as glibc's do:
 * NULL with errno ENOMEM (posix_memalign: the code), a failed realloc keeps
 * its block, and the process allocates normally afterwards.  hakmem once
 * mapped with MAP_NORESERVE, which the kernel's overcommit heuristic never
 * refuses: malloc(64 GiB) succeeded on a 23 GiB machine and the program was
 * killed later.  Only under that heuristic (vm.overcommit_memory 0, the
 * default); with 1 the kernel grants anything, to glibc too. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include "hk_test.h"

static long read_long(const char* path) {
  FILE* f = fopen(path, "r");
  long v = -1;
  if (f) {
    if (fscanf(f, "%ld", &v) != 1) v = -1;
    fclose(f);
  }
  return v;
}

#define FAILS(call, what)                                                                  \
  do {                                                                                     \
    errno = 0;                                                                             \
    void* q_ = (call);                                                                     \
    int e_ = errno;                                                                        \
    CHECK(q_ == NULL, "%s of %zu GiB (memory %zu GiB) succeeded", what, big >> 30, mem >> 30); \
    CHECK(e_ == ENOMEM, "%s of %zu GiB: errno %d, expected ENOMEM", what, big >> 30, e_);  \
  } while (0)

int main(void) {
  hk_begin("oom/too_big", 60);
  long oc = read_long("/proc/sys/vm/overcommit_memory");
  if (oc != 0) {
    printf("oom/too_big: skipped (vm.overcommit_memory is %ld, not the heuristic)\n", oc);
    return 0;
  }
  long ram = hk_status_kb_file("/proc/meminfo", "MemTotal"), swap = hk_status_kb_file("/proc/meminfo", "SwapTotal");
  CHECK(ram > 0 && swap >= 0, "cannot read MemTotal/SwapTotal (%ld, %ld)", ram, swap);
  size_t mem = ((size_t)ram + (size_t)swap) * KiB;
  size_t big = 2 * mem + GiB;

  void* keep = malloc(100);
  CHECK(keep && hak_owns(keep), "a small block before the test");
  memset(keep, 0x5a, 100);
  FAILS(malloc(big), "malloc");
  FAILS(calloc(1, big), "calloc");
  FAILS(calloc(big / 4096, 4096), "calloc (count x size)");
  FAILS(memalign(4096, big), "memalign");
  FAILS(memalign((size_t)1 << 22, big), "memalign (4 MiB aligned)");
  FAILS(aligned_alloc((size_t)1 << 30, big), "aligned_alloc (1 GiB aligned)");
  FAILS(valloc(big), "valloc");
  void* p = NULL;
  int rc = posix_memalign(&p, 64, big);
  CHECK(rc == ENOMEM && p == NULL, "posix_memalign of %zu GiB: %d, expected ENOMEM", big >> 30, rc);
  /* an alignment above memory: the over-mapping that finds it is refused */
  size_t huge_align = (size_t)1 << (64 - __builtin_clzll(mem));
  FAILS(memalign(huge_align, 100), "memalign (alignment above memory)");

  /* realloc: a failed one keeps the block, in every layer it can start in */
  static const size_t from[] = {100, 5000, 300000, 3 * MiB};
  for (size_t i = 0; i < sizeof from / sizeof from[0]; i++) {
    unsigned char* b = malloc(from[i]);
    CHECK(b && hak_owns(b), "malloc(%zu)", from[i]);
    hk_fill(b, from[i], i, 0);
    FAILS(realloc(b, big), "realloc");
    CHECK(hk_verify(b, from[i], i, 0) == (size_t)-1, "a failed realloc from %zu changed the block", from[i]);
    b = realloc(b, from[i] * 2);
    CHECK(b && hk_verify(b, from[i], i, 0) == (size_t)-1, "realloc after a failed one");
    free(b);
  }

  /* and the process goes on: a block of every layer, written in full */
  static const size_t after[] = {16, 3000, 200000, 8 * MiB};
  for (size_t i = 0; i < sizeof after / sizeof after[0]; i++) {
    void* q = malloc(after[i]);
    CHECK(q && hak_owns(q), "malloc(%zu) after the failures", after[i]);
    memset(q, 1, after[i]);
    free(q);
  }
  for (int i = 0; i < 100; i++) CHECK(((unsigned char*)keep)[i] == 0x5a, "the first block changed");
  free(keep);
  printf("oom/too_big: ok (memory %zu GiB, requests of %zu GiB)\n", mem >> 30, big >> 30);
  return 0;
}
