/* Huge blocks (above 1 MiB) and BigCache:
 *  - calloc is all zero whether the block is fresh, the front of a cached
 *    run, or cached runs moved together (their old contents were not zero);
 *  - a request larger than every cached run is still served from cached
 *    pages: RSS and mapped bytes do not grow by its size;
 *  - realloc keeps the contents of such a multi-mapping block, growing,
 *    shrinking and growing again (in place, over its cached old tail);
 *  - the cache holds no more than was freed since the recent peak,
 *    malloc_trim empties it, and idle cached runs go back to the OS on
 *    their own (decay), a large burst as well as a single block;
 *  - threads churning calloc/realloc/free always get zeroed, private blocks. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include "hk_test.h"

/* the hakmem entry points themselves, so a sanitizer build (which keeps
 * the libc names for itself) tests them too */
#define malloc hak_malloc
#define calloc hak_calloc
#define realloc hak_realloc
#define free hak_free
#define malloc_usable_size hak_usable_size

/* RSS means little under valgrind (which also keeps hakmem from moving
 * pages with mremap) or with a sanitizer's shadow memory */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
static int rss_meaningful(void) { return 0; }
#else
static int rss_meaningful(void) { return !hk_under_valgrind(); }
#endif

static hak_layer_stats_t huge_stats(void) {
  hak_stats_t s;
  hak_stats_get(&s);
  return s.layer[HAK_LAYER_HUGE];
}

//! Offset of the first nonzero byte in [0, n), or -1.
static long first_nonzero(const void* p, size_t n) {
  const unsigned char* b = p;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, b + i, 8);
    if (w) break;
  }
  for (; i < n; i++) if (b[i]) return (long)i;
  return -1;
}

static size_t env_size(const char* name, size_t dflt) {
  const char* v = getenv(name);
  return v && *v ? (size_t)strtoull(v, NULL, 10) : dflt;
}

/* A dirty block freed, then calloc of a smaller size: the front of the
 * cached run, reused in place, must read as zero. */
static void test_reuse_in_place(void) {
  hak_trim();
  unsigned char* p = malloc(20 * MiB);
  CHECK(p, "malloc(20 MiB)");
  memset(p, 0xAB, malloc_usable_size(p));
  free(p);
  unsigned long long hits = huge_stats().hits;
  size_t sizes[] = {12 * MiB, 3 * MiB + 17, 20 * MiB};
  for (int i = 0; i < 3; i++) {
    unsigned char* q = calloc(1, sizes[i]);
    CHECK(q, "calloc(%zu)", sizes[i]);
    long bad = first_nonzero(q, sizes[i]);
    CHECK(bad < 0, "calloc(%zu) over a reused dirty run: byte %ld is 0x%02x", sizes[i], bad, bad < 0 ? 0 : q[bad]);
    memset(q, 0xEE, sizes[i]);
    free(q);
  }
  CHECK(huge_stats().hits >= hits + 3, "3 callocs after a free of 20 MiB: cache hits %llu -> %llu", hits,
        huge_stats().hits);
}

/* calloc over a large reused run drops the run's old pages rather than
 * writing zeros over all of them: it reads zero throughout (also the
 * unaligned ends around the dropped pages), and it makes resident only
 * what the program touches.  A memset of a 2 GiB run whose last user
 * touched one page made all of it resident. */
static void test_calloc_large_reuse(void) {
  size_t n = 192 * MiB;
  hak_trim();
  unsigned char* p = malloc(n);
  CHECK(p, "malloc(%zu MiB)", n >> 20);
  p[0] = 1;                              /* its last user touched one page */
  p[n / 2] = 2;
  free(p);
  unsigned long long hits = huge_stats().hits;
  long rss0 = hk_rss_kb();
  unsigned char* q = calloc(1, n);
  CHECK(q, "calloc(%zu MiB)", n >> 20);
  CHECK(huge_stats().hits == hits + 1, "calloc(%zu MiB) after a free of as much did not reuse it", n >> 20);
  if (rss_meaningful()) {
    long grew = hk_rss_kb() - rss0;
    CHECK(grew < 16 * 1024, "calloc(%zu MiB) over a run with 2 pages touched made %ld kB resident", n >> 20, grew);
  }
  CHECK(q[0] == 0 && q[n / 2] == 0 && q[n - 1] == 0, "calloc over a reused run is not zero");
  memset(q, 0xCD, n);                    /* dirty in full, then again, at an odd size */
  free(q);
  size_t m = n - 12345;
  q = calloc(1, m);
  CHECK(q, "calloc(%zu)", m);
  long bad = first_nonzero(q, m);
  CHECK(bad < 0, "calloc(%zu) over a fully dirty reused run: byte %ld is 0x%02x", m, bad, bad < 0 ? 0 : q[bad]);
  free(q);
  hak_trim();
}

/* Three dirty 9 MiB blocks kept apart by live spacers, freed: calloc of
 * 24 MiB is larger than any cached run, yet needs no new memory. */
static void test_compose(void) {
  hak_trim();
  enum { N = 3 };
  unsigned char *run[N], *spacer[N];
  for (int i = 0; i < N; i++) {
    run[i] = malloc(9 * MiB);
    spacer[i] = malloc(2 * MiB);
    CHECK(run[i] && spacer[i], "malloc");
    memset(run[i], 0xCD, malloc_usable_size(run[i]));
    memset(spacer[i], 0x11, 2 * MiB);
  }
  for (int i = 0; i < N; i++) free(run[i]);
  hak_layer_stats_t before = huge_stats();
  long rss0 = hk_rss_kb();
  size_t n = 24 * MiB;
  unsigned char* q = calloc(1, n);
  CHECK(q, "calloc(24 MiB)");
  long bad = first_nonzero(q, n);
  CHECK(bad < 0, "calloc(24 MiB) from three moved dirty runs: byte %ld is 0x%02x", bad, bad < 0 ? 0 : q[bad]);
  memset(q, 0x5A, n);
  long grew = hk_rss_kb() - rss0;
  hak_layer_stats_t after = huge_stats();
  INFO("calloc(24 MiB) over 3 cached 9 MiB runs: RSS +%ld kB, huge mapped %llu -> %llu MiB", grew,
       before.bytes_mapped / MiB, after.bytes_mapped / MiB);
  if (hk_under_valgrind()) INFO("valgrind: pages are not moved, the 24 MiB block is fresh");
  else CHECK(after.hits == before.hits + 1, "the 24 MiB calloc was not served from the cache (hits %llu -> %llu)",
        before.hits, after.hits);
  CHECK(!rss_meaningful() || grew < 8 * 1024, "RSS grew by %ld kB for a 24 MiB block made of 27 MiB of cached pages", grew);
  CHECK(hk_under_valgrind() || after.bytes_mapped <= before.bytes_mapped, "huge mapped bytes grew %llu -> %llu", before.bytes_mapped,
        after.bytes_mapped);

  /* realloc keeps the contents of the moved-together block */
  hk_fill(q, n, 77, 1);
  size_t steps[] = {40 * MiB, 5 * MiB, 30 * MiB, 64 * MiB};
  size_t kept = n;
  for (int i = 0; i < 4; i++) {
    unsigned char* r = realloc(q, steps[i]);
    CHECK(r, "realloc(%zu)", steps[i]);
    /* shrinking cached the tail; growing again takes it back in place */
    CHECK(i != 2 || r == q, "realloc 5 -> 30 MiB moved the block (%p -> %p) though its old tail was cached", (void*)q,
          (void*)r);
    q = r;
    if (steps[i] < kept) kept = steps[i];
    size_t off = hk_verify_prefix(q, n, kept, 77, 1);
    CHECK(off == (size_t)-1, "realloc to %zu MiB lost byte %zu of the moved-together block", steps[i] / MiB, off);
    CHECK(malloc_usable_size(q) >= steps[i], "usable %zu < %zu", malloc_usable_size(q), steps[i]);
    memset(q + kept, 0x33, steps[i] - kept);    /* the new part is writable */
  }
  free(q);
  for (int i = 0; i < N; i++) {
    CHECK(spacer[i][0] == 0x11 && spacer[i][2 * MiB - 1] == 0x11, "spacer %d changed", i);
    free(spacer[i]);
  }
}

//! Waits until the huge layer maps only `base` bytes again; false if it
//! takes longer than the decay time and 3 s.
static int wait_released(size_t base) {
  double t0 = hk_now(), limit = env_size("HAKMEM_HUGE_DECAY_MS", 1000) / 1000.0 + 3.0;
  while (huge_stats().bytes_mapped > base && hk_now() - t0 < limit) usleep(20000);
  INFO("cached huge runs released after %.2f s", hk_now() - t0);
  return huge_stats().bytes_mapped == base;
}

/* The cache keeps at most what was freed (RSS stays within the peak);
 * trim empties it; without trim, idle runs go after the decay time. */
static void test_budget_and_decay(void) {
  hak_trim();
  size_t base = huge_stats().bytes_mapped;
  enum { N = 14 };
  void* p[N];
  for (int i = 0; i < N; i++) {
    p[i] = malloc(16 * MiB);
    CHECK(p[i], "malloc(16 MiB)");
    ((char*)p[i])[0] = 1;
  }
  for (int i = 0; i < N; i++) free(p[i]);
  size_t cached = huge_stats().bytes_mapped - base;
  INFO("%d x 16 MiB freed: %zu MiB stay cached", N, cached / MiB);
  CHECK(cached <= N * 18 * MiB, "%zu MiB cached after freeing %d x 16 MiB", cached / MiB, N);
  CHECK(cached > 0 || env_size("HAKMEM_HUGE_CACHE_MB", 128) < 32, "nothing cached after freeing %d x 16 MiB", N);
  hak_trim();
  CHECK(huge_stats().bytes_mapped == base, "huge mapped %llu after trim, %zu before the test",
        huge_stats().bytes_mapped, base);

  /* decay: the background thread returns idle runs without any call */
  if (env_size("HAKMEM_BG", 1) == 0 || env_size("HAKMEM_KEEP", 0)) return;
  void* q = malloc(8 * MiB);
  CHECK(q, "malloc(8 MiB)");
  free(q);
  CHECK(huge_stats().bytes_mapped > base, "an 8 MiB block was not cached");
  CHECK(wait_released(base), "an idle cached 8 MiB run was still mapped after the decay time");
  for (int i = 0; i < N; i++) {
    p[i] = malloc(16 * MiB);
    CHECK(p[i], "malloc(16 MiB)");
    memset(p[i], 0x77, 16 * MiB);
  }
  for (int i = 0; i < N; i++) free(p[i]);
  long rss = hk_rss_kb();
  CHECK(wait_released(base), "%d idle cached 16 MiB runs were still mapped after the decay time", N);
  long drop = rss - hk_rss_kb();
  CHECK(!rss_meaningful() || drop > (long)(N * 16 * MiB / KiB) / 2, "RSS fell by only %ld kB after %d x 16 MiB went back", drop, N);
}

typedef struct { uint64_t seed; double seconds; unsigned long ops; } churn_t;

/* Keeps 4 live blocks of 1-32 MiB: calloc (checked zero on every page),
 * sometimes grown or shrunk by realloc; each carries its own pattern. */
static void* churn_thread(void* arg) {
  churn_t* c = arg;
  enum { LIVE = 4 };
  unsigned char* b[LIVE] = {0};
  size_t n[LIVE] = {0};
  uint64_t rng = c->seed, seed[LIVE] = {0};
  double end = hk_now() + c->seconds;
  while (hk_now() < end) {
    int v = (int)(hk_rand(&rng) % LIVE);
    if (b[v]) {
      size_t off = hk_verify(b[v], n[v], seed[v], 1);
      CHECK(off == (size_t)-1, "block of %zu bytes changed at %zu while live", n[v], off);
      free(b[v]);
    }
    n[v] = MiB + hk_rand(&rng) % (31 * MiB);
    b[v] = calloc(1, n[v]);
    CHECK(b[v], "calloc(%zu)", n[v]);
    for (size_t i = 0; i < n[v]; i += 4 * KiB) {
      uint64_t w;
      memcpy(&w, b[v] + i, n[v] - i < 8 ? 1 : 8);
      CHECK(n[v] - i < 8 ? b[v][i] == 0 : w == 0, "calloc(%zu): nonzero at page offset %zu", n[v], i);
    }
    CHECK(b[v][n[v] - 1] == 0, "calloc(%zu): last byte nonzero", n[v]);
    seed[v] = hk_rand(&rng);
    if (hk_rand(&rng) % 4 == 0) {
      size_t m = MiB + hk_rand(&rng) % (31 * MiB);
      unsigned char* r = realloc(b[v], m);
      CHECK(r, "realloc(%zu -> %zu)", n[v], m);
      b[v] = r;
      n[v] = m;
    }
    hk_fill(b[v], n[v], seed[v], 1);
    c->ops++;
  }
  for (int v = 0; v < LIVE; v++) free(b[v]);
  return NULL;
}

static void test_threads_churn(void) {
  enum { T = 2 };
  pthread_t t[T];
  churn_t c[T];
  for (int i = 0; i < T; i++) {
    c[i] = (churn_t){0x9e3779b9u * (uint64_t)(i + 1), 1.5 / hk_scale() + 0.2, 0};
    CHECK(pthread_create(&t[i], NULL, churn_thread, &c[i]) == 0, "pthread_create");
  }
  for (int i = 0; i < T; i++) pthread_join(t[i], NULL);
  INFO("churn: %lu + %lu operations", c[0].ops, c[1].ops);
  CHECK(c[0].ops > 0 && c[1].ops > 0, "a churn thread did nothing");
}

/* HAKMEM_KEEP=1 (never give cached memory back): idle huge runs stay past
 * the decay time (child: a freed 8 MiB run, then four decay times). */
static int keep_child(void) {
  size_t base = huge_stats().bytes_mapped;
  void* p = malloc(8 * MiB);
  if (!p) return 2;
  memset(p, 1, 8 * MiB);
  free(p);
  usleep(4 * 100 * 1000);
  return huge_stats().bytes_mapped >= base + 8 * MiB ? 0 : 1;
}
static void test_keep(void) {
  hk_child_t* c = malloc(sizeof *c);
  CHECK(c, "malloc");
  const char* env[] = {"HAKMEM_KEEP=1", "HAKMEM_HUGE_DECAY_MS=100", NULL};
  hk_exec_self("keep-child", env, 0, c);
  CHECK(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0,
        "HAKMEM_KEEP=1: an idle cached huge run was unmapped after the decay time (child %s)",
        hk_status_str(c->status));
  free(c);
}

int main(int argc, char** argv) {
  if (argc > 1 && !strcmp(argv[1], "keep-child")) return keep_child();
  hk_begin("huge", 120);
  HK_STEP(test_reuse_in_place());
  HK_STEP(test_compose());
  HK_STEP(test_calloc_large_reuse());
  HK_STEP(test_budget_and_decay());
  HK_STEP(test_threads_churn());
  HK_STEP(test_keep());
  printf("huge: ok\n");
  return 0;
}
