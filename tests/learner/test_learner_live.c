/* The learner with real threads and a short window (HAKMEM_LEARN=1,
 * HAKMEM_LEARN_WINDOW_MS=150, set before the re-exec): CAP moves the way
 * the load says.
 *  A. Mid churn that releases its pages between rounds (hit rate below
 *     the target): CAP of the 8 KiB class rises.
 *  B. The same class served from the thread cache only (hit rate 1.0):
 *     CAP falls, and the class's cached blocks and RSS fall with it.
 *  L. Large churn past twice CAP (refaults: low hit rate): CAP rises;
 *     then idle: CAP decays and the hot list is trimmed.
 *  The CSV log has rows for both classes; HAKMEM_STATS=1 shows the final
 *  CAPs and the ACE waste at exit. */
#define _GNU_SOURCE
#include <pthread.h>
#include "hk_test.h"
#include "internal.h"
#include "policy.h"
#include "learner.h"

#define MID_SZ 8000          /* class 8192: 7 blocks per 64 KiB page */
#define MID_N  600
#define LARGE_SZ (200 * 1024) /* class 229376 */

static void* mid_round(void* arg) {
  (void)arg;
  static __thread void* p[MID_N];
  for (int i = 0; i < MID_N; i++) {
    p[i] = malloc(MID_SZ);
    if (!p[i]) FAIL("malloc(%d) failed", MID_SZ);
    memset(p[i], 0x5a, MID_SZ);
  }
  for (int i = 0; i < MID_N; i++) free(p[i]);
  return NULL;
}

static int child_live(void) {
  hk_begin("test_learner_live child", 80);
  unsigned mid = hak__mid_class_of[(MID_SZ + 255) >> 8];
  unsigned lcls = hak__large_class(LARGE_SZ);
  unsigned lidx = HAK_SMALL_CLASSES + lcls;
  free(malloc(16));                                   /* init; starts the background thread */
  uint32_t cap0 = hak__policy_cap(mid), lcap0 = hak__policy_cap(lidx);
  printf("class %u (%u B): CAP %u; Large class %u (%u B): CAP %u\n", mid, hak__class_size[mid], cap0, lcls,
         hak__large_size[lcls], lcap0);

  /* A: two threads allocate 600 x 8 KiB each, touch, free; then a pause
   * long enough for the decay to release the pages beyond CAP, and for the
   * next round's rise to come after the 1 s dwell (with 0.9 s, a round
   * whose window came just before it raised nothing), but under the 1.5 s
   * that makes the class idle.  A deadline, not a speed target: with a
   * quarter of a core, 15 s was passed once in 8 runs (CAP 16 -> 36). */
  uint32_t capA = cap0, maxA = cap0;
  double t0 = hk_now();
  const double deadline_a = hk_slow() ? 40.0 : 25.0;
  while (hk_now() - t0 < deadline_a && capA < cap0 + 32) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, mid_round, NULL);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    hk_sleep_ms(1200);
    capA = hak__policy_cap(mid);
    if (capA > maxA) maxA = capA;
  }
  printf("A: churn with release: CAP %u -> %u (max %u) in %.1f s\n", cap0, capA, maxA, hk_now() - t0);
  CHECK(capA >= cap0 + 32, "Mid churn with a low hit rate: CAP rose only from %u to %u (max %u)", cap0, capA, maxA);

  /* B: the same class from the thread cache only: hit rate 1.0 */
  uint64_t cached0 = hak__small_cached_blocks(mid);
  long rss0 = hk_rss_kb();
  t0 = hk_now();
  uint32_t capB = hak__policy_cap(mid);
  while (hk_now() - t0 < 4.0) {
    for (int i = 0; i < 10000; i++) {
      void* p = malloc(MID_SZ);
      *(volatile char*)p = 1;
      free(p);
    }
    capB = hak__policy_cap(mid);
    if (capB <= (uint32_t)hak__opt.cap_min_mid && hk_now() - t0 > 1.0) break;
  }
  hk_sleep_ms(300);
  uint64_t cached1 = hak__small_cached_blocks(mid);
  long rss1 = hk_rss_kb();
  printf("B: thread-cache hits: CAP %u -> %u in %.1f s; cached blocks %llu -> %llu; RSS %ld -> %ld kB\n",
         capA, capB, hk_now() - t0, (unsigned long long)cached0,
         (unsigned long long)cached1, rss0, rss1);
  CHECK(capB < capA && capB <= (uint32_t)hak__opt.cap_min_mid + 16,
        "hit rate 1.0: CAP went from %u only to %u", capA, capB);
  uint64_t bound = ((uint64_t)capB + 8) * hak__class_cap[mid];     /* CAP pages of 7 blocks, and some slack */
  CHECK(cached1 <= bound, "CAP %u: the class still caches %llu blocks (was %llu), want <= %llu", capB,
        (unsigned long long)cached1, (unsigned long long)cached0, (unsigned long long)bound);
  if (cached0 > cached1 + 256 && !hk_slow())
    CHECK(rss0 - rss1 >= (long)((cached0 - cached1) * 8 / 2),
          "cached blocks fell by %llu (8 KiB each) but RSS only by %ld kB", (unsigned long long)(cached0 - cached1),
          rss0 - rss1);

  /* L: Large churn, LCHURN blocks of 200 KiB at a time: past its bound the
   * hot list is trimmed and the next round refaults.  The hot list ends a
   * round with between 4 CAP and 8 CAP + 8 blocks (l25_free's trim), so the
   * hit rate is a sawtooth in CAP: with 120 blocks it was 0.625 at CAP 9,
   * above the band, and CAP stopped there (CI, 1ec0c7f).  With 320, every
   * CAP up to 18 hits under 0.52: the premise holds all the way. */
  lcap0 = hak__policy_cap(lidx);    /* idle so far: it may have decayed */
  uint32_t capL = lcap0;
  enum { LCHURN = 320 };
  static void* q[LCHURN];
  t0 = hk_now();
  /* a deadline, not a speed target: under valgrind on a loaded host the
   * learner's windows came too slowly for 10 s (CAP 2 -> 9, once in CI) */
  const double deadline = hk_slow() ? 30.0 : 10.0;
  while (hk_now() - t0 < deadline && capL < lcap0 + 8) {
    for (int i = 0; i < LCHURN; i++) {
      q[i] = malloc(LARGE_SZ);
      if (!q[i]) FAIL("malloc(%d) failed", LARGE_SZ);
      ((volatile char*)q[i])[0] = 1;
    }
    for (int i = 0; i < LCHURN; i++) free(q[i]);
    uint32_t c = hak__policy_cap(lidx);
    if (c > capL) capL = c;
  }
  printf("L: Large churn: CAP %u -> max %u in %.1f s\n", lcap0, capL, hk_now() - t0);
  CHECK(capL >= lcap0 + 8, "Large churn with refaults: CAP rose only from %u to %u", lcap0, capL);
  /* idle: no Large allocation.  Idle takes 10 windows (1.5 s), and a fall
   * right after a rise waits out the reversal dwell (2 s): poll up to a
   * deadline, not a speed target (a loaded machine delays the windows) */
  uint32_t capI = capL;
  uint64_t hot = 0;
  t0 = hk_now();
  do {
    hk_sleep_ms(100);
    capI = hak__policy_cap(lidx);
    hot = hak__l25_cached_blocks(lcls);
  } while (hk_now() - t0 < deadline && !(capI < capL && hot <= (uint64_t)capI + 8));
  printf("L: idle %.1f s: CAP %u -> %u, hot blocks %llu\n", hk_now() - t0, capL, capI, (unsigned long long)hot);
  CHECK(capI < capL, "idle Large class: CAP stayed at %u", capI);
  CHECK(hot <= (uint64_t)capI + 8, "idle Large class: %llu hot blocks with CAP %u", (unsigned long long)hot, capI);
  CHECK(hak__learner_changes(mid) >= 2 && hak__learner_changes(lidx) >= 2, "changes: mid %u, large %u",
        hak__learner_changes(mid), hak__learner_changes(lidx));
  printf("live ok\n");
  return 0;
}

static hk_child_t C;

//! Counts CSV rows of the log whose class_size and layer match.
static int csv_rows(const char* path, const char* key, int* header_ok) {
  FILE* f = fopen(path, "r");
  if (!f) return -1;
  char line[512];
  int n = 0;
  *header_ok = fgets(line, sizeof line, f) &&
               !strcmp(line, "time_s,class_size,layer,allocs,hit_rate,cap,wmax,waste_bytes,rss_bytes\n");
  while (fgets(line, sizeof line, f)) {
    int commas = 0;
    for (char* c = line; *c; c++) commas += *c == ',';
    if (commas != 8) { fclose(f); return -2; }
    if (strstr(line, key)) n++;
  }
  fclose(f);
  return n;
}

int main(int argc, char** argv) {
  if (argc > 1 && !strcmp(argv[1], "live")) return child_live();
  hk_begin("test_learner_live", 90);
  char log[128];
  snprintf(log, sizeof log, "/tmp/hakmem_learner_live_%d.csv", (int)getpid());
  char logenv[160];
  snprintf(logenv, sizeof logenv, "HAKMEM_LEARN_LOG=%s", log);
  const char* env[] = {"HAKMEM_LEARN=1", "HAKMEM_LEARN_WINDOW_MS=150", "HAKMEM_DECAY_MS=200",
                       "HAKMEM_CAP_DWELL_SEC_MID=1", "HAKMEM_CAP_STEP_MID=16", "HAKMEM_CAP_STEP_LARGE=4",
                       "HAKMEM_LEARN_MIN_SAMPLES=64", "HAKMEM_STATS=1", logenv, NULL};
  hk_exec_self("live", env, 0, &C);
  printf("%s", C.out);
  if (!(WIFEXITED(C.status) && WEXITSTATUS(C.status) == 0)) {
    unlink(log);
    FAIL("child %s\nstdout:\n%s\nstderr:\n%s", hk_status_str(C.status), C.out, C.err);
  }
  CHECK(strstr(C.out, "live ok"), "child did not finish: %s", C.out);
  CHECK(strstr(C.err, "learner: W_MAX") && strstr(C.err, "ace waste"), "stats at exit lack the learner lines:\n%s",
        C.err);
  CHECK(hk_count_lines(C.err, "8192:", "[16]", NULL) == 1, "stats at exit lack the final CAP of class 8192:\n%s",
        C.err);
  int hdr = 0;
  int mid_rows = csv_rows(log, ",8192,mid,", &hdr);
  int large_rows = csv_rows(log, ",229376,large,", &hdr);
  if (!getenv("HK_KEEP_LOG")) unlink(log);
  CHECK(hdr, "log %s: bad or missing header", log);
  CHECK(mid_rows >= 5 && large_rows >= 2, "log rows: %d for class 8192, %d for class 229376 (-2: malformed row)",
        mid_rows, large_rows);
  printf("log: %d rows for 8192, %d for 229376\nok\n", mid_rows, large_rows);
  return 0;
}
