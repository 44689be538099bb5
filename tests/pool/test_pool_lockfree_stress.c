/* Lock-free Mid Pool under stress (seed test_pool_lockfree_stress).
 * THREADS threads (default 4) for DURATION seconds (default 5) do Mid-size
 * malloc/free, handing blocks to each other through queues so that many
 * frees are remote.  Every block carries a pattern stamped at malloc and
 * checked at free.  At the end, with every thread joined, the central
 * lists of each Mid class are walked: the sum of their counts must equal
 * the blocks found, each one a free block of its class, none twice.  The
 * CAS retry rate (seed target: under 5%) is printed.
 *
 * The work runs in a re-executed child with HAKMEM_BG=0: the final walk
 * needs the central lists to itself, and the background scavenger would
 * race with it (the threads' own slow paths still scavenge during the run).
 * `make stress-pool THREADS=16 DURATION=60` is the seed's long form. */
#define _GNU_SOURCE
#include "pool_test.h"

#define MAX_T   256
#define LIVE    64
#define QCAP    256

typedef struct {
  pthread_mutex_t mu;
  void* q[QCAP];
  unsigned head, n;
} queue_t;

typedef struct {
  pthread_t t;
  unsigned id;
  uint64_t allocs, frees, remote_sent, ops;
} thr_t;

static unsigned nthreads;
static queue_t queues[MAX_T];
static thr_t thr[MAX_T];
static _Atomic int stop;
static pthread_barrier_t bar;

/* Block layout while live: word 0 = size, word 1 = seed, then one stamped
 * word per 64-byte line and the last word (cheap, yet an overlap or a
 * double hand-out of any line shows). */
static inline uint64_t mix(uint64_t s, uint64_t i) {
  uint64_t z = s + i * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  return z ^ (z >> 31);
}
static void stamp(void* p, size_t n, uint64_t seed) {
  uint64_t* w = p;
  size_t nw = n / 8;
  w[0] = n;
  w[1] = seed;
  for (size_t i = 8; i < nw; i += 8) w[i] = mix(seed, i);
  w[nw - 1] = mix(seed, nw - 1);
}
static void verify_free(void* p) {
  uint64_t* w = p;
  size_t n = w[0];
  uint64_t seed = w[1];
  CHECK(n > HAK_TINY_MAX && n <= HAK_MID_MAX && A_USABLE(p) >= n, "block %p: header says %zu bytes", p, n);
  size_t nw = n / 8;
  for (size_t i = 8; i < nw; i += 8)
    CHECK(w[i] == mix(seed, i), "block %p (%zu B): word %zu corrupted", p, n, i);
  CHECK(w[nw - 1] == mix(seed, nw - 1), "block %p (%zu B): last word corrupted", p, n);
  A_FREE(p);
}

static size_t pick_size(uint64_t r) {
  static const size_t seed_sz[] = {2048, 4096, 8192, 16384, 32768, 40960, 53248};
  if (r & 1) return seed_sz[(r >> 1) % 7];
  return MID_MIN + (size_t)((r >> 8) % (HAK_MID_MAX - MID_MIN + 1));
}

static int q_put(unsigned to, void* p) {
  queue_t* q = &queues[to];
  pthread_mutex_lock(&q->mu);
  int ok = q->n < QCAP;
  if (ok) q->q[(q->head + q->n++) % QCAP] = p;
  pthread_mutex_unlock(&q->mu);
  return ok;
}
static unsigned q_drain(unsigned me) {
  void* tmp[QCAP];
  queue_t* q = &queues[me];
  pthread_mutex_lock(&q->mu);
  unsigned n = q->n;
  for (unsigned i = 0; i < n; i++) tmp[i] = q->q[(q->head + i) % QCAP];
  q->head = (q->head + n) % QCAP;
  q->n = 0;
  pthread_mutex_unlock(&q->mu);
  for (unsigned i = 0; i < n; i++) verify_free(tmp[i]);
  return n;
}

static void* thr_main(void* arg) {
  thr_t* t = arg;
  void* live[LIVE];
  unsigned nl = 0;
  uint64_t rng = 0x2545F4914F6CDD1Dull * (t->id + 1), seq = 0;
  pthread_barrier_wait(&bar);
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int k = 0; k < 64; k++) {
      uint64_t r = hk_rand(&rng);
      unsigned op = (unsigned)(r % 100);
      if (nl < LIVE && (op < 55 || nl == 0)) {
        size_t n = pick_size(r >> 7);
        void* p = A_MALLOC(n);
        CHECK(p, "malloc(%zu) failed", n);
        stamp(p, n, (t->id * 0x100000000ull) ^ seq++);
        live[nl++] = p;
        t->allocs++;
      } else {
        unsigned i = (unsigned)((r >> 16) % nl);
        void* p = live[i];
        live[i] = live[--nl];
        if (op < 80 || nthreads == 1 || !q_put((t->id + 1 + (unsigned)((r >> 32) % (nthreads - 1))) % nthreads, p)) {
          verify_free(p);
        } else {
          t->remote_sent++;
        }
        t->frees++;
      }
      t->ops++;
    }
    q_drain(t->id);
  }
  t->frees += nl;
  while (nl) verify_free(live[--nl]);
  pthread_barrier_wait(&bar);          /* nobody sends any more */
  q_drain(t->id);
  return NULL;
}

//! With every thread joined: each Mid class's central lists, popped
//! whole and pushed back.  Returns the blocks walked.
static uint64_t check_central(void) {
  hak_heap_t* h = pt_heap();
  hak__opt.keep = 1;                   /* no scavenge while the lists are out (no other thread runs) */
  uint64_t total = 0;
  size_t cap = (size_t)1 << 20;
  uintptr_t* seen = pt_map(cap * sizeof(uintptr_t));
  for (unsigned c = MID_C0; c < HAK_SMALL_CLASSES; c++) {
    uint64_t expect = hak__small_cached_blocks(c);
    void* first[64 * HAK_SHARDS];
    void* last[64 * HAK_SHARDS];
    uint32_t cnt[64 * HAK_SHARDS];
    unsigned nch = 0;
    uint64_t walked = 0;
    size_t ns = 0;
    for (;;) {
      uint32_t got;
      void* ch = hak__small_central_pop(h, c, UINT32_MAX, &got, NULL);
      if (!ch) break;
      CHECK(nch < 64 * HAK_SHARDS, "class %u: more chains than shards", c);
      uint32_t len = 0;
      void* p = ch;
      void* prev = NULL;
      for (; p; prev = p, p = *(void**)p, len++) {
        uintptr_t a = (uintptr_t)p;
        hak_page_t* pg = hak__page_of(a);
        CHECK(hak__seg_kind(a) == HAK_SEG_SMALL && pg->cls == c && hak__is_block_start(pg, a),
              "central list of class %u holds %p (class %u)", c, p, pg->cls);
        CHECK(((uintptr_t*)p)[1] == hak__mark(a), "central block %p of class %u lacks its free mark", p, c);
        CHECK(ns < cap, "too many blocks");
        seen[ns++] = a;
      }
      CHECK(len == got, "class %u: pop said %u, chain has %u", c, got, len);
      first[nch] = ch; last[nch] = prev; cnt[nch] = got; nch++;
      walked += got;
    }
    CHECK(walked == expect, "class %zu: counts sum to %llu, lists hold %llu", pt_csize(c),
          (unsigned long long)expect, (unsigned long long)walked);
    qsort(seen, ns, sizeof *seen, pt_cmp_ptr);
    for (size_t i = 1; i < ns; i++) CHECK(seen[i] != seen[i - 1], "block %#lx twice in the central lists", (unsigned long)seen[i]);
    for (unsigned i = 0; i < nch; i++) hak__small_central_push(h, c, first[i], last[i], cnt[i]);
    CHECK(hak__small_cached_blocks(c) == expect, "class %u: count %llu after pushing back %llu", c,
          (unsigned long long)hak__small_cached_blocks(c), (unsigned long long)expect);
    total += walked;
  }
  munmap(seen, cap * sizeof(uintptr_t));
  hak__opt.keep = 0;
  return total;
}

static double env_num(const char* name, double dflt, double lo, double hi) {
  const char* s = getenv(name);
  if (!s || !*s) return dflt;
  char* end;
  double v = strtod(s, &end);
  return (*end || v < lo || v > hi) ? dflt : v;
}

static int child(void) {
  nthreads = (unsigned)env_num("THREADS", 4, 1, MAX_T);
  double dur = env_num("DURATION", 5, 0.1, 86400);
  printf("stress: %u threads, %.1f s, Mid sizes, %s\n", nthreads, dur, REL_API_NAME);
  CHECK(hak__opt.bg == 0, "the child must run with HAKMEM_BG=0");
  for (unsigned i = 0; i < nthreads; i++) pthread_mutex_init(&queues[i].mu, NULL);
  pthread_barrier_init(&bar, NULL, nthreads + 1);
  for (unsigned i = 0; i < nthreads; i++) {
    thr[i].id = i;
    CHECK(pthread_create(&thr[i].t, NULL, thr_main, &thr[i]) == 0, "pthread_create");
  }
  double t0 = hk_now();
  pthread_barrier_wait(&bar);
  struct timespec ts = {(time_t)dur, (long)((dur - (double)(time_t)dur) * 1e9)};
  nanosleep(&ts, NULL);
  atomic_store(&stop, 1);
  pthread_barrier_wait(&bar);
  uint64_t allocs = 0, frees = 0, sent = 0, ops = 0;
  for (unsigned i = 0; i < nthreads; i++) {
    pthread_join(thr[i].t, NULL);
    allocs += thr[i].allocs; frees += thr[i].frees; sent += thr[i].remote_sent; ops += thr[i].ops;
  }
  double el = hk_now() - t0;
  CHECK(allocs == frees, "allocs %llu != frees %llu", (unsigned long long)allocs, (unsigned long long)frees);
  uint64_t walked = check_central();
  const hak_tstats_t* t = pt_stats_all();
  uint64_t cas = t->t[HAK_TS_cas_ops], retry = t->t[HAK_TS_cas_retry], remote = 0, drains = t->t[HAK_TS_drains];
  for (unsigned c = MID_C0; c < HAK_SMALL_CLASSES; c++) remote += t->c[HAK_CS_remote_free][c];
  printf("stress: %llu ops (%.2f M/s), %llu blocks handed to other threads, %llu remote frees to inboxes, %llu drains\n",
         (unsigned long long)ops, (double)ops / el / 1e6, (unsigned long long)sent, (unsigned long long)remote,
         (unsigned long long)drains);
  printf("stress: central lists hold %llu Mid blocks, counts match the lists\n", (unsigned long long)walked);
  printf("stress: cas_retry %llu / cas_ops %llu = %.3f%% (seed target < 5%%)\n", (unsigned long long)retry,
         (unsigned long long)cas, cas ? 100.0 * (double)retry / (double)cas : 0.0);
  CHECK(cas > 0, "no central-list operation happened: the stress did not reach the central lists");
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0) {
    hk_begin("test_pool_lockfree_stress:child", (unsigned)env_num("DURATION", 5, 0.1, 86400) + 120);
    return child();
  }
  hk_begin("test_pool_lockfree_stress", (unsigned)env_num("DURATION", 5, 0.1, 86400) + 180);
  const char* env[] = {"HAKMEM_BG=0", "HAKMEM_LEARN=0", NULL};
  static hk_child_t c;
  hk_exec_self("child", env, 0, &c);
  fputs(c.out, stdout);
  CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "child: %s\n%s", hk_status_str(c.status), c.err);
  printf("test_pool_lockfree_stress: ok\n");
  return 0;
}
