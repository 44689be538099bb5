/* The public stats API: hak_stats_get merges every thread's counters (live
 * and exited), per layer; hak_stats_print writes the readable table and
 * hak_stats_print_json one JSON object.  Checks that the numbers follow
 * what the program did, and that both outputs have the documented shape. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include "hk_test.h"

#define PER_THREAD 20000

static void* counting_thread(void* arg) {
  size_t n = (size_t)arg;
  for (int i = 0; i < PER_THREAD; i++) {
    void* p = malloc(n);
    CHECK(p, "malloc");
    free(p);
  }
  return NULL;
}

static void test_merged_counts(void) {
  /* counts of exited threads stay in the merged snapshot, in their layer */
  size_t sizes[HAK_LAYER_COUNT] = {200, 9000, 200000, 2 * MiB};
  for (int l = 0; l < HAK_LAYER_COUNT; l++) {
    hak_stats_t a, b;
    hak_stats_get(&a);
    pthread_t t[2];
    for (int k = 0; k < 2; k++) pthread_create(&t[k], NULL, counting_thread, (void*)sizes[l]);
    for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
    hak_stats_get(&b);
    unsigned long long da = b.layer[l].allocs - a.layer[l].allocs, df = b.layer[l].frees - a.layer[l].frees;
    /* counting may be sampled: demand half of the true count */
    CHECK(da >= PER_THREAD, "layer %s: 2 exited threads did %d mallocs, merged allocs grew by %llu",
          hk_layer_name(l), 2 * PER_THREAD, da);
    CHECK(df >= PER_THREAD, "layer %s: 2 exited threads did %d frees, merged frees grew by %llu", hk_layer_name(l),
          2 * PER_THREAD, df);
    CHECK(b.threads_exited >= a.threads_exited + 2, "threads_exited %llu -> %llu after 2 threads exited",
          a.threads_exited, b.threads_exited);
  }
}

static void test_gauges(void) {
  /* pages in use and bytes mapped follow a burst of live blocks */
  hak_stats_t a, b, c;
  hak_stats_get(&a);
  enum { N = 20000 };
  static void* ps[N];
  for (int i = 0; i < N; i++) { ps[i] = malloc(i % 2 ? 500 : 5000); CHECK(ps[i], "malloc"); }
  void* huge = malloc(64 * MiB);
  CHECK(huge, "malloc(64 MiB)");
  hak_stats_get(&b);
  CHECK(b.layer[HAK_LAYER_TINY].pages_in_use > a.layer[HAK_LAYER_TINY].pages_in_use,
        "tiny pages_in_use did not grow with 10000 live 500-byte blocks (%llu -> %llu)",
        a.layer[HAK_LAYER_TINY].pages_in_use, b.layer[HAK_LAYER_TINY].pages_in_use);
  CHECK(b.layer[HAK_LAYER_MID].pages_in_use > a.layer[HAK_LAYER_MID].pages_in_use,
        "mid pages_in_use did not grow with 10000 live 5000-byte blocks");
  /* Huge apart, as the 64 MiB block may reuse a mapping the cache kept:
   * the 20000 small blocks (~50 MiB) need at least 40 MiB newly mapped */
  unsigned long long sa = a.bytes_mapped - a.layer[HAK_LAYER_HUGE].bytes_mapped;
  unsigned long long sb = b.bytes_mapped - b.layer[HAK_LAYER_HUGE].bytes_mapped;
  CHECK(sb >= sa + 40 * MiB, "small and Large bytes_mapped grew only from %llu to %llu with ~50 MiB newly live",
        sa, sb);
  CHECK(b.bytes_mapped >= 64 * MiB + 40 * MiB,
        "bytes_mapped %llu (was %llu) with ~114 MiB live", b.bytes_mapped, a.bytes_mapped);
  CHECK(b.layer[HAK_LAYER_HUGE].bytes_mapped >= 64 * MiB, "huge bytes_mapped %llu with a 64 MiB block live",
        b.layer[HAK_LAYER_HUGE].bytes_mapped);
  CHECK(b.bytes_mapped_peak >= b.bytes_mapped, "peak %llu < current %llu", b.bytes_mapped_peak, b.bytes_mapped);
  for (int l = 0; l < HAK_LAYER_COUNT; l++)
    CHECK(b.layer[l].bytes_mapped_peak >= b.layer[l].bytes_mapped, "layer %s: peak %llu < current %llu",
          hk_layer_name(l), b.layer[l].bytes_mapped_peak, b.layer[l].bytes_mapped);
  for (int i = 0; i < N; i++) free(ps[i]);
  free(huge);
  malloc_trim(0);
  hak_stats_get(&c);
  CHECK(c.layer[HAK_LAYER_TINY].pages_in_use < b.layer[HAK_LAYER_TINY].pages_in_use,
        "tiny pages_in_use did not drop after freeing everything and malloc_trim (%llu -> %llu)",
        b.layer[HAK_LAYER_TINY].pages_in_use, c.layer[HAK_LAYER_TINY].pages_in_use);
  CHECK(c.bytes_mapped < b.bytes_mapped, "bytes_mapped did not drop after freeing and malloc_trim (%llu -> %llu)",
        b.bytes_mapped, c.bytes_mapped);
  CHECK(c.bytes_mapped_peak >= b.bytes_mapped, "peak %llu forgot the high-water mark %llu", c.bytes_mapped_peak,
        b.bytes_mapped);
}

static char* capture(void (*fn)(FILE*), size_t* len) {
  char* buf = NULL;
  FILE* f = open_memstream(&buf, len);
  CHECK(f, "open_memstream");
  fn(f);
  fclose(f);
  return buf;
}

static void test_outputs(void) {
  void* p = malloc(100);
  size_t len;
  char* t = capture(hak_stats_print, &len);
  CHECK(t && !strncmp(t, "hakmem stats", 12), "hak_stats_print: first line does not start 'hakmem stats':\n%s", t);
  const char* rows[] = {"tiny", "mid", "large", "huge", "total"};
  for (int r = 0; r < 5; r++) {
    char pat[16];
    snprintf(pat, sizeof pat, "\n%s ", rows[r]);
    CHECK(strstr(t, pat), "hak_stats_print: no row starting '%s':\n%s", rows[r], t);
  }
  free(t);
  char* j = capture(hak_stats_print_json, &len);
  CHECK(j && len > 2 && j[0] == '{', "hak_stats_print_json: not a JSON object: %.200s", j);
  int depth = 0, in_str = 0, objects = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = j[i];
    if (in_str) { if (ch == '\\') i++; else if (ch == '"') in_str = 0; continue; }
    if (ch == '"') in_str = 1;
    else if (ch == '{') depth++;
    else if (ch == '}') { depth--; CHECK(depth >= 0, "JSON: unbalanced braces"); if (depth == 0) objects++; }
  }
  CHECK(depth == 0 && !in_str && objects == 1, "hak_stats_print_json: not one balanced object:\n%s", j);
  const char* keys[] = {"\"tiny\"", "\"mid\"", "\"large\"", "\"huge\"", "\"allocs\"", "\"frees\"", "\"remote_frees\"",
                        "\"pages_in_use\"", "\"pages_cached\"", "\"bytes_mapped\""};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
    CHECK(strstr(j, keys[k]), "hak_stats_print_json: no key %s:\n%s", keys[k], j);
  free(j);
  free(p);
}

int main(void) {
  hk_begin("api/stats", 50);
  HK_STEP(test_merged_counts());
  HK_STEP(test_gauges());
  HK_STEP(test_outputs());
  printf("api/stats: ok\n");
  return 0;
}
