/* phases: a load that changes phase, to watch the learner follow it.
 *
 *   phases [seconds_per_phase] [order] [phases.csv] [seed]
 *
 * order is a string of phase letters (default "ABCA"), each run for
 * seconds_per_phase (default 18):
 *   A  Mid churn through fresh pages: 3072 blocks of 8000 B (class 8 KiB,
 *      24 MiB, 384 pages) are allocated, touched and freed, then the program
 *      pauses 200 ms (as if waiting for I/O), long enough for the decay to
 *      give the free pages beyond CAP back.  The next round refaults them:
 *      the hit rate is low at a small CAP; a CAP near the working set keeps
 *      the pages and the round runs without page faults.
 *   B  A small steady set in the same class: 512 live blocks of 8000 B with
 *      random replacement, no pause.  Every allocation is a cache hit, so
 *      CAP should fall and the pages cached in A should go back.
 *   C  Another class mix: 256 blocks of 30000 B (class 32 KiB, 8 MiB) and
 *      32 Large blocks of 250 KiB (8 MiB) churned as in A, plus 2048 live
 *      blocks of 64 B with random replacement; 8 KiB is idle.
 * Each phase reports its throughput (malloc+free pairs per second of time
 * spent in the allocator loops, pauses excluded), its RSS (mean, last, max
 * of samples every 0.25 s) and its start and end (seconds since the first
 * allocation, the learner's clock within a window tick) to phases.csv.
 * One RESULT line at the end gives the per-phase figures. */
#include "common.h"
#include <time.h>

#define A_SZ 8000
#define A_N 3072
#define B_N 512
#define C_MID_SZ 30000
#define C_MID_N 256
#define C_LARGE_SZ (250 * 1024)
#define C_LARGE_N 32
#define C_TINY_SZ 64
#define C_TINY_N 2048
#define PAUSE_S 0.2
#define SAMPLE_S 0.25

typedef struct {
  char name;
  double start, end, active_s;
  unsigned long long ops;
  double rss_sum;
  long rss_n, rss_last, rss_max;
} phase_t;

static double t_origin;
static double next_sample;

//! Samples RSS into the phase every SAMPLE_S seconds.
static void phase_sample(phase_t* ph, double now) {
  if (now < next_sample) return;
  long r = bench_rss_kb();
  ph->rss_sum += (double)r;
  ph->rss_n++;
  ph->rss_last = r;
  if (r > ph->rss_max) ph->rss_max = r;
  next_sample = now + SAMPLE_S;
}

//! Sleeps d seconds, sampling RSS meanwhile (the pause is not active time).
static void phase_pause(phase_t* ph, double d) {
  double end = bench_now() + d;
  for (;;) {
    double now = bench_now();
    phase_sample(ph, now);
    if (now >= end) return;
    double left = end - now, nap = left < SAMPLE_S / 2 ? left : SAMPLE_S / 2;
    struct timespec ts = {(time_t)nap, (long)((nap - (double)(time_t)nap) * 1e9)};
    nanosleep(&ts, NULL);
  }
}

//! One churn round: n blocks of sz allocated, touched page by page, freed.
static void churn_round(void** v, size_t n, size_t sz, phase_t* ph) {
  for (size_t i = 0; i < n; i++) {
    v[i] = malloc(sz);
    if (!v[i]) bench_xmalloc_fail(sz);
    bench_touch(v[i], sz);
  }
  for (size_t i = 0; i < n; i++) free(v[i]);
  ph->ops += n;
}

//! Random replacement in a live set of n blocks of sz: k malloc+free pairs.
static void steady_ops(void** set, size_t n, size_t sz, int k, uint64_t* rng, phase_t* ph) {
  for (int j = 0; j < k; j++) {
    size_t i = (size_t)(bench_rand(rng) % n);
    free(set[i]);
    set[i] = malloc(sz);
    if (!set[i]) bench_xmalloc_fail(sz);
    bench_touch(set[i], sz);
  }
  ph->ops += (unsigned long long)k;
}

static void fill(void** set, size_t n, size_t sz) {
  for (size_t i = 0; i < n; i++) {
    set[i] = malloc(sz);
    if (!set[i]) bench_xmalloc_fail(sz);
    bench_touch(set[i], sz);
  }
}

static void drain(void** set, size_t n) {
  for (size_t i = 0; i < n; i++) free(set[i]);
}

//! Runs one phase for `secs` seconds.
static void phase_run(phase_t* ph, double secs, uint64_t* rng) {
  static void* a[A_N];
  static void* m[C_MID_N];
  static void* l[C_LARGE_N];
  static void* t[C_TINY_N];
  double t0 = bench_now();
  ph->start = t0 - t_origin;
  if (ph->name == 'B') fill(a, B_N, A_SZ);
  if (ph->name == 'C') fill(t, C_TINY_N, C_TINY_SZ);
  for (;;) {
    double s = bench_now();
    if (s - t0 >= secs) break;
    switch (ph->name) {
      case 'A':
        churn_round(a, A_N, A_SZ, ph);
        ph->active_s += bench_now() - s;
        phase_pause(ph, PAUSE_S);
        break;
      case 'B':
        steady_ops(a, B_N, A_SZ, 4096, rng, ph);
        ph->active_s += bench_now() - s;
        phase_sample(ph, bench_now());
        break;
      default:
        churn_round(m, C_MID_N, C_MID_SZ, ph);
        churn_round(l, C_LARGE_N, C_LARGE_SZ, ph);
        steady_ops(t, C_TINY_N, C_TINY_SZ, 4096, rng, ph);
        ph->active_s += bench_now() - s;
        phase_pause(ph, PAUSE_S);
        break;
    }
  }
  if (ph->name == 'B') drain(a, B_N);
  if (ph->name == 'C') drain(t, C_TINY_N);
  ph->end = bench_now() - t_origin;
}

int main(int argc, char** argv) {
  bench_check_malloc("phases");
  double secs = bench_arg_d(argc, argv, 1, 18);
  const char* order = argc > 2 ? argv[2] : "ABCA";
  const char* out = argc > 3 ? argv[3] : NULL;
  uint64_t rng = bench_seed((uint64_t)bench_arg_l(argc, argv, 4, 7), 1);
  size_t np = strlen(order);
  if (!np || np > 16 || strspn(order, "ABC") != np || secs <= 0) {
    fprintf(stderr, "usage: %s [seconds_per_phase] [order of A,B,C, at most 16] [phases.csv] [seed]\n", argv[0]);
    return 2;
  }
  phase_t ph[16];
  memset(ph, 0, sizeof ph);
  free(malloc(16));             /* the allocator starts; the learner's clock starts about now */
  t_origin = bench_now();
  next_sample = t_origin;
  for (size_t i = 0; i < np; i++) {
    ph[i].name = order[i];
    phase_run(&ph[i], secs, &rng);
    fprintf(stderr, "phase %zu %c: %.1f-%.1f s, %.0f ops/s (active %.1f s), rss mean %.1f MiB, last %.1f, max %.1f\n",
            i, ph[i].name, ph[i].start, ph[i].end, (double)ph[i].ops / ph[i].active_s, ph[i].active_s,
            ph[i].rss_n ? ph[i].rss_sum / (double)ph[i].rss_n / 1024 : 0.0, ph[i].rss_last / 1024.0,
            ph[i].rss_max / 1024.0);
  }
  if (out) {
    FILE* f = fopen(out, "w");
    if (!f) { perror(out); return 1; }
    fprintf(f, "phase,name,start_s,end_s,ops_per_s,rss_mean_kb,rss_last_kb,rss_max_kb\n");
    for (size_t i = 0; i < np; i++)
      fprintf(f, "%zu,%c,%.3f,%.3f,%.0f,%.0f,%ld,%ld\n", i, ph[i].name, ph[i].start, ph[i].end,
              (double)ph[i].ops / ph[i].active_s, ph[i].rss_n ? ph[i].rss_sum / (double)ph[i].rss_n : 0.0,
              ph[i].rss_last, ph[i].rss_max);
    fclose(f);
  }
  /* RESULT: the first phase's throughput as the value; every phase's after */
  char body[768];
  size_t n = 0;
  for (size_t i = 0; i < np && n < sizeof body - 96; i++)
    n += (size_t)snprintf(body + n, sizeof body - n, " p%zu_%c_ops=%.0f p%zu_rss_mean_kb=%.0f p%zu_rss_last_kb=%ld", i,
                          ph[i].name, (double)ph[i].ops / ph[i].active_s, i,
                          ph[i].rss_n ? ph[i].rss_sum / (double)ph[i].rss_n : 0.0, i, ph[i].rss_last);
  bench_result("bench=phases threads=1 value=%.0f unit=ops/s phases=%s phase_s=%.1f%s", (double)ph[0].ops / ph[0].active_s,
               order, secs, body);
  return 0;
}
