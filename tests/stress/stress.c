/* Multi-thread stress across every layer (issue 6, item 3).
 *
 * THREADS worker threads (env STRESS_THREADS or THREADS, default 4) run for
 * DURATION seconds (env STRESS_DURATION or DURATION, default 10).  Each keeps a
 * table of live blocks and does random operations on it:
 *   malloc / calloc (zero check) / realloc (prefix kept) / memalign (alignment
 *   up to 2 MiB) / free, with sizes 0 .. 8 MiB weighted to small ones;
 *   it also passes blocks to other threads' mailboxes, which free them
 *   (cross-thread frees).
 * A churn thread keeps starting short-lived threads that allocate, hand some
 * blocks to the workers' mailboxes, leave some for the parent to free, and exit.
 * A trimmer calls the trim entry point now and then.
 * Every block is stamped with a pattern that is verified when it is freed,
 * reallocated, or received from another thread; usable size >= request and the
 * 16-byte alignment are checked at every allocation.  Any mismatch exits 1. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "rel_alloc.h"

#define MiB ((size_t)1 << 20)
#define SLOTS 2048
#define MAILBOX 1024
#define LIVE_CAP_PER_THREAD (48 * MiB)

typedef struct blk { void* p; size_t n; uint64_t seed; size_t align; } blk_t;

typedef struct mailbox {
  pthread_mutex_t mu;
  blk_t q[MAILBOX];
  int head, count;
} mailbox_t;

static int nthreads;
static mailbox_t* boxes;
static atomic_int stop;
static atomic_ullong n_ops, n_remote, n_churn_threads, n_bytes, n_huge, n_memalign, n_realloc;
static atomic_ullong seed_counter = 1;

static void die(const char* what, const blk_t* b, long off) {
  fprintf(stderr, "FAIL stress: %s: block %p size %zu align %zu seed %llu bad offset %ld\n", what, b->p,
          b->n, b->align, (unsigned long long)b->seed, off);
  fflush(stderr);
  _exit(1);
}

static size_t pick_size(uint64_t* rs) {
  uint64_t r = rel_rand(rs);
  unsigned w = (unsigned)(r % 1000);
  r >>= 10;
  if (w < 5) return 0;
  if (w < 600) return 1 + r % 256;                         /* tiny, small */
  if (w < 800) return 257 + r % (1024 - 256);              /* tiny, upper */
  if (w < 920) return 1025 + r % (52 * 1024 - 1024);       /* mid */
  if (w < 945) return 52 * 1024 + 1 + r % (12 * 1024);     /* gap mid/large */
  if (w < 990) return 64 * 1024 + r % (960 * 1024);        /* large */
  return MiB + 1 + r % (7 * MiB);                          /* huge */
}

static void check_new(blk_t* b, const char* op) {
  if (b->n == 0 && b->p == NULL) die("NULL for size 0", b, -1);
  if (b->p == NULL) die("NULL", b, -1);
  size_t us = A_USABLE(b->p);
  if (us < b->n) die("usable size < request", b, (long)us);
  size_t al = b->align ? b->align : 16;
  if (b->n >= 16 || b->align) {
    if ((uintptr_t)b->p % al) die("misaligned", b, (long)((uintptr_t)b->p % al));
  }
  (void)op;
}

static void release(blk_t* b, const char* why) {
  long bad = rel_verify(b->p, b->n, b->seed);
  if (bad >= 0) die(why, b, bad);
  A_FREE(b->p);
  b->p = NULL;
}

static void make_block(blk_t* b, uint64_t* rs) {
  unsigned kind = (unsigned)(rel_rand(rs) % 100);
  b->align = 0;
  b->n = pick_size(rs);
  b->seed = atomic_fetch_add(&seed_counter, 1) * 0x100000001B3ULL;
  if (kind < 8) {                     /* calloc */
    size_t cnt = 1 + rel_rand(rs) % 8;
    size_t each = b->n / cnt;
    b->n = each * cnt;
    b->p = A_CALLOC(cnt, each);
    check_new(b, "calloc");
    size_t lim = b->n < 256 * 1024 ? b->n : 256 * 1024;
    for (size_t i = 0; i < lim; i++)
      if (((unsigned char*)b->p)[i]) die("calloc memory not zero", b, (long)i);
  } else if (kind < 14) {             /* memalign */
    b->align = (size_t)1 << (4 + rel_rand(rs) % 18); /* 16 .. 2 MiB */
    if (b->align > 4096 && rel_rand(rs) % 4) b->align = 4096;
    b->p = A_MEMALIGN(b->align, b->n);
    atomic_fetch_add_explicit(&n_memalign, 1, memory_order_relaxed);
    check_new(b, "memalign");
  } else {
    b->p = A_MALLOC(b->n);
    check_new(b, "malloc");
  }
  if (b->n > MiB) atomic_fetch_add_explicit(&n_huge, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&n_bytes, b->n, memory_order_relaxed);
  rel_stamp(b->p, b->n, b->seed);
}

static void do_realloc(blk_t* b, uint64_t* rs) {
  size_t newn = pick_size(rs);
  if (rel_rand(rs) % 2 && b->n) newn = b->n + (rel_rand(rs) % 2 ? b->n / 2 + 1 : 0) - (rel_rand(rs) % 3 ? b->n / 3 : 0);
  if (newn == 0) newn = 1;            /* realloc(p, 0) frees: not what we test here */
  long bad = rel_verify(b->p, b->n, b->seed);
  if (bad >= 0) die("corrupt before realloc", b, bad);
  void* q = A_REALLOC(b->p, newn);
  if (!q) die("realloc returned NULL", b, (long)newn);
  blk_t nb = *b;
  nb.p = q;
  size_t keep = newn < b->n ? newn : b->n;
  bad = rel_verify_prefix(q, b->n, keep, b->seed);
  if (bad >= 0) die("realloc lost contents", &nb, bad);
  nb.n = newn;
  nb.align = 0;
  check_new(&nb, "realloc");
  nb.seed = atomic_fetch_add(&seed_counter, 1) * 0x100000001B3ULL;
  rel_stamp(q, newn, nb.seed);
  *b = nb;
  atomic_fetch_add_explicit(&n_realloc, 1, memory_order_relaxed);
}

static int post(int to, blk_t* b) {
  mailbox_t* m = &boxes[to];
  int ok = 0;
  pthread_mutex_lock(&m->mu);
  if (m->count < MAILBOX) {
    m->q[(m->head + m->count) % MAILBOX] = *b;
    m->count++;
    ok = 1;
  }
  pthread_mutex_unlock(&m->mu);
  return ok;
}

static void drain(int me) {
  mailbox_t* m = &boxes[me];
  blk_t local[64];
  for (;;) {
    int k = 0;
    pthread_mutex_lock(&m->mu);
    while (m->count && k < 64) {
      local[k++] = m->q[m->head];
      m->head = (m->head + 1) % MAILBOX;
      m->count--;
    }
    pthread_mutex_unlock(&m->mu);
    if (!k) return;
    for (int i = 0; i < k; i++) {
      release(&local[i], "cross-thread block corrupt");
      atomic_fetch_add_explicit(&n_remote, 1, memory_order_relaxed);
    }
  }
}

static void* worker(void* arg) {
  int me = (int)(intptr_t)arg;
  blk_t* slots = calloc(SLOTS, sizeof(blk_t));  /* bookkeeping also on the allocator under test */
  if (!slots) { fprintf(stderr, "FAIL: no memory for slots\n"); _exit(1); }
  uint64_t rs = 0x1234567ULL + (uint64_t)me * 0x9E3779B97F4A7C15ULL;
  size_t live = 0;
  unsigned long long ops = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int it = 0; it < 256; it++) {
      blk_t* b = &slots[rel_rand(&rs) % SLOTS];
      unsigned op = (unsigned)(rel_rand(&rs) % 100);
      if (!b->p) {
        if (live > LIVE_CAP_PER_THREAD) continue;
        make_block(b, &rs);
        live += b->n;
      } else if (op < 55) {
        live -= b->n;
        release(b, "block corrupt at free");
      } else if (op < 70) {
        live -= b->n;
        do_realloc(b, &rs);
        live += b->n;
      } else if (op < 85 && nthreads > 1) {
        int to = (int)(rel_rand(&rs) % (unsigned)nthreads);
        if (to == me) to = (to + 1) % nthreads;
        if (post(to, b)) { live -= b->n; b->p = NULL; }
      } else {
        long bad = rel_verify(b->p, b->n, b->seed);
        if (bad >= 0) die("live block corrupt", b, bad);
      }
      ops++;
    }
    drain(me);
  }
  atomic_fetch_add(&n_ops, ops);
  for (int i = 0; i < SLOTS; i++)
    if (slots[i].p) release(&slots[i], "block corrupt at final free");
  free(slots);
  return NULL;
}

/* short-lived threads: allocate, give some to workers, some to the parent, exit */
typedef struct churn_arg { blk_t out[16]; int nout; uint64_t seed; } churn_arg_t;
static void* churn_child(void* a) {
  churn_arg_t* ca = a;
  uint64_t rs = ca->seed;
  blk_t mine[32];
  int n = 1 + (int)(rel_rand(&rs) % 32);
  for (int i = 0; i < n; i++) make_block(&mine[i], &rs);
  for (int i = 0; i < n; i++) {
    unsigned w = (unsigned)(rel_rand(&rs) % 3);
    if (w == 0) release(&mine[i], "churn block corrupt");
    else if (w == 1 && ca->nout < 16) ca->out[ca->nout++] = mine[i];
    else if (!post((int)(rel_rand(&rs) % (unsigned)nthreads), &mine[i])) release(&mine[i], "churn block corrupt");
  }
  return NULL;
}
static void* churner(void* unused) {
  uint64_t rs = 99;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    pthread_t t[4];
    churn_arg_t* ca = calloc(4, sizeof *ca);
    if (!ca) { fprintf(stderr, "FAIL: churn calloc\n"); _exit(1); }
    for (int i = 0; i < 4; i++) {
      ca[i].seed = rel_rand(&rs) | 1;
      if (pthread_create(&t[i], NULL, churn_child, &ca[i])) { fprintf(stderr, "FAIL: pthread_create\n"); _exit(1); }
    }
    for (int i = 0; i < 4; i++) {
      pthread_join(t[i], NULL);
      for (int k = 0; k < ca[i].nout; k++) release(&ca[i].out[k], "block of exited thread corrupt");
    }
    free(ca);
    atomic_fetch_add(&n_churn_threads, 4);
  }
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  nthreads = (int)rel_env_long("STRESS_THREADS", rel_env_long("THREADS", 4));
  long duration = rel_env_long("STRESS_DURATION", rel_env_long("DURATION", 10));
  if (nthreads < 1) nthreads = 1;
  if (nthreads > 256) nthreads = 256;
  printf("stress: %d threads x %ld s, api %s\n", nthreads, duration, REL_API_NAME);
  boxes = calloc((size_t)nthreads, sizeof *boxes);
  for (int i = 0; i < nthreads; i++) pthread_mutex_init(&boxes[i].mu, NULL);
  pthread_t* th = malloc(sizeof(pthread_t) * (size_t)nthreads);
  pthread_t ch;
  for (int i = 0; i < nthreads; i++)
    if (pthread_create(&th[i], NULL, worker, (void*)(intptr_t)i)) { fprintf(stderr, "FAIL: pthread_create\n"); return 1; }
  if (pthread_create(&ch, NULL, churner, NULL)) { fprintf(stderr, "FAIL: pthread_create\n"); return 1; }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  unsigned trims = 0;
  size_t peak_rss = 0;
  for (;;) {
    struct timespec ts = {0, 250 * 1000 * 1000};
    nanosleep(&ts, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    size_t rss = rel_rss_bytes();
    if (rss > peak_rss) peak_rss = rss;
    double el = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (el >= (double)duration) break;
    if (++trims % 8 == 0) A_TRIM();                   /* trim concurrently with the workers */
  }
  atomic_store(&stop, 1);
  pthread_join(ch, NULL);
  for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < nthreads; i++) drain(i);        /* blocks posted after their owner's last drain */
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("stress: ok: %.1f s, %llu ops, %llu cross-thread frees, %llu reallocs, %llu memaligns, "
         "%llu huge blocks, %llu churn threads, %.1f GiB requested, peak RSS %zu MiB, trims %u\n",
         secs, (unsigned long long)n_ops, (unsigned long long)n_remote, (unsigned long long)n_realloc,
         (unsigned long long)n_memalign, (unsigned long long)n_huge, (unsigned long long)n_churn_threads,
         (double)n_bytes / (1 << 30), peak_rss >> 20, trims / 8);
  if (n_ops == 0) { fprintf(stderr, "FAIL: no operations ran\n"); return 1; }
  if (nthreads > 1 && n_remote == 0) { fprintf(stderr, "FAIL: no cross-thread frees happened\n"); return 1; }
  for (int i = 0; i < nthreads; i++) pthread_mutex_destroy(&boxes[i].mu);
  free(boxes);
  free(th);
  return 0;
}
