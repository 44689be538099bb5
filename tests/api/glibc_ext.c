/* API conformance, the glibc extras: mallopt, mallinfo, mallinfo2,
 * malloc_trim, malloc_stats and malloc_info exist (hakmem's, not glibc's)
 * and do something sensible: mallinfo2 follows what is allocated,
 * malloc_stats and malloc_info print something, mallopt accepts glibc's
 * parameters without breaking allocation. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <pthread.h>
#include "hk_test.h"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  /* mallinfo */

static unsigned long long mi2_total(void) {
  struct mallinfo2 m = mallinfo2();
  return (unsigned long long)m.arena + m.hblkhd + m.uordblks;
}

static void test_mallinfo(void) {
  unsigned long long before = mi2_total();
  struct mallinfo2 m0 = mallinfo2();
  enum { N = 4096 };
  static void* ps[N];
  /* 64 MiB across tiny, mid, large and huge */
  size_t total = 0;
  for (int i = 0; i < N; i++) {
    size_t n = (i % 4 == 0) ? 600 : (i % 4 == 1) ? 20000 : (i % 4 == 2) ? 40000 : ((i % 64 == 3) ? 2 * MiB : 100);
    ps[i] = malloc(n);
    CHECK(ps[i], "malloc(%zu)", n);
    memset(ps[i], 1, n);
    total += n;
  }
  struct mallinfo2 m1 = mallinfo2();
  unsigned long long after = mi2_total();
  CHECK(after >= before + total / 2,
        "mallinfo2 does not follow allocation: arena+hblkhd+uordblks %llu -> %llu after allocating %zu bytes "
        "(arena %zu->%zu hblkhd %zu->%zu uordblks %zu->%zu)",
        before, after, total, m0.arena, m1.arena, m0.hblkhd, m1.hblkhd, m0.uordblks, m1.uordblks);
  CHECK(m1.uordblks + m1.hblkhd >= total / 2, "mallinfo2: uordblks %zu + hblkhd %zu < half of the %zu live bytes",
        m1.uordblks, m1.hblkhd, total);
  struct mallinfo mo = mallinfo();  /* the int version: exists, same picture (values may be truncated) */
  CHECK(mo.uordblks != 0 || mo.hblkhd != 0 || mo.arena != 0, "mallinfo() all zero with %zu bytes live", total);
  CHECK(m1.hblks >= m0.hblks + N / 64 && m1.hblkhd >= m0.hblkhd + N / 64 * 2 * MiB,
        "mallinfo2 with %d blocks of 2 MiB live: hblks %zu -> %zu, hblkhd %zu -> %zu", N / 64, m0.hblks, m1.hblks,
        m0.hblkhd, m1.hblkhd);
  CHECK(m1.uordblks >= m0.uordblks + (total - N / 64 * 2 * MiB) / 2 && m1.uordblks <= m1.arena,
        "mallinfo2: uordblks %zu -> %zu (arena %zu) with %zu bytes live below huge", m0.uordblks, m1.uordblks,
        m1.arena, total - N / 64 * 2 * MiB);
  for (int i = 0; i < N; i++) free(ps[i]);
  struct mallinfo2 m2 = mallinfo2();
  /* freed blocks sit in caches: free, not in use (a leak check reads this) */
  CHECK(m2.uordblks <= m0.uordblks + MiB && m2.hblks == m0.hblks && m2.hblkhd == m0.hblkhd,
        "mallinfo2 after freeing everything: uordblks %zu (%zu before), hblks %zu (%zu), hblkhd %zu (%zu)",
        m2.uordblks, m0.uordblks, m2.hblks, m0.hblks, m2.hblkhd, m0.hblkhd);
  CHECK(m2.fordblks == m2.arena - m2.uordblks, "mallinfo2: fordblks %zu != arena %zu - uordblks %zu", m2.fordblks,
        m2.arena, m2.uordblks);
}

/* Blocks freed by another thread (remote frees, to the owner's inbox) are
 * free too: a producer-consumer program must not look like a leak. */
enum { RN = 64 };
static void* remote_blk[RN];
static void* remote_freer(void* a) {
  (void)a;
  for (int i = 0; i < RN; i++) free(remote_blk[i]);
  return NULL;
}
static void test_mallinfo_remote(void) {
  struct mallinfo2 m0 = mallinfo2();
  for (int r = 0; r < 2000; r++) {
    for (int i = 0; i < RN; i++) {
      remote_blk[i] = malloc(48);
      CHECK(remote_blk[i], "malloc(48)");
    }
    pthread_t t;
    CHECK(pthread_create(&t, NULL, remote_freer, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);
  }
  struct mallinfo2 m1 = mallinfo2();
  /* 128000 blocks of 48 bytes went through; counted as frees only when they
   * were not remote frees, 57 KiB of them stayed "in use" */
  INFO("mallinfo2 uordblks %zu -> %zu", m0.uordblks, m1.uordblks);
  CHECK(m1.uordblks <= m0.uordblks + 4096, "mallinfo2 after %d remote frees: uordblks %zu -> %zu", 2000 * RN,
        m0.uordblks, m1.uordblks);
}

static void test_mallopt(void) {
  /* glibc returns 1 on success, 0 on error: anything else is not sensible. */
  struct { int p, v; const char* name; } opts[] = {
      {M_TRIM_THRESHOLD, 256 * 1024, "M_TRIM_THRESHOLD"}, {M_TOP_PAD, 64 * 1024, "M_TOP_PAD"},
      {M_MMAP_THRESHOLD, 512 * 1024, "M_MMAP_THRESHOLD"}, {M_MMAP_MAX, 65536, "M_MMAP_MAX"},
      {M_ARENA_MAX, 2, "M_ARENA_MAX"}, {M_ARENA_TEST, 8, "M_ARENA_TEST"}, {M_PERTURB, 0, "M_PERTURB"},
      {M_CHECK_ACTION, 3, "M_CHECK_ACTION"}, {M_MXFAST, 64, "M_MXFAST"}, {12345, 1, "unknown 12345"}};
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    int r = mallopt(opts[i].p, opts[i].v);
    CHECK(r == 0 || r == 1, "mallopt(%s, %d) = %d, expected 0 or 1", opts[i].name, opts[i].v, r);
    void* p = malloc(1000);
    CHECK(p && hak_owns(p), "malloc after mallopt(%s)", opts[i].name);
    free(p);
    p = malloc(4 * MiB);
    CHECK(p && hak_owns(p), "malloc(4 MiB) after mallopt(%s)", opts[i].name);
    free(p);
  }
}

static void test_trim(void) {
  void* ps[2000];
  for (int i = 0; i < 2000; i++) { ps[i] = malloc(3000); CHECK(ps[i], "malloc"); memset(ps[i], 1, 3000); }
  for (int i = 0; i < 2000; i++) free(ps[i]);
  int r = malloc_trim(0);
  CHECK(r == 0 || r == 1, "malloc_trim(0) = %d, expected 0 or 1", r);
  r = malloc_trim(1 << 20);
  CHECK(r == 0 || r == 1, "malloc_trim(1 MiB) = %d", r);
  (void)hak_trim();
  void* p = malloc(3000);
  CHECK(p && hak_owns(p), "malloc after malloc_trim");
  free(p);
}

static void stats_child(void* arg) {
  (void)arg;
  void* p = malloc(12345);
  malloc_stats();
  free(p);
}

static void test_malloc_stats(void) {
  hk_child_t* c = malloc(sizeof *c);
  CHECK(c, "malloc");
  hk_run_forked(stats_child, NULL, c);
  CHECK(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0, "malloc_stats child: %s; stderr:\n%s",
        hk_status_str(c->status), c->err);
  CHECK(strlen(c->err) > 10, "malloc_stats() printed nothing to stderr (stdout: %.200s)", c->out);
  free(c);
}

static void test_malloc_info(void) {
  char* buf = NULL;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  CHECK(f, "open_memstream");
  void* p = malloc(777);
  int r = malloc_info(0, f);
  fclose(f);
  CHECK(r == 0, "malloc_info(0, f) = %d, expected 0", r);
  CHECK(buf && len > 10, "malloc_info(0, f) wrote %zu bytes", len);
  free(buf);
  f = fopen("/dev/null", "w");
  CHECK(f, "fopen /dev/null");
  r = malloc_info(1, f);  /* glibc: options must be zero */
  CHECK(r == EINVAL, "malloc_info(1, f) = %d, expected EINVAL as glibc", r);
  fclose(f);
  free(p);
}

int main(void) {
  hk_begin("api/glibc_ext", 50);
  HK_STEP(test_mallinfo());
  HK_STEP(test_mallinfo_remote());
  HK_STEP(test_mallopt());
  HK_STEP(test_trim());
  HK_STEP(test_malloc_stats());
  HK_STEP(test_malloc_info());
  printf("api/glibc_ext: ok\n");
  return 0;
}
