/* Merging and printing of the counters. */
#define _GNU_SOURCE
#include "internal.h"
#include "learner.h"
#include "valgrind.h"
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>

static const char* const thread_stat_names[HAK_TS_COUNT] = {
#define X(n) #n,
  HAK_THREAD_STATS(X)
#undef X
};

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static hak_tstats_t stats_retired;
static _Atomic int64_t layer_mapped[HAK_LAYER_COUNT], layer_mapped_peak[HAK_LAYER_COUNT];

void hak__stats_fork_child(void) { pthread_mutex_init(&stats_lock, NULL); }

void hak__layer_mapped_add(int layer, int64_t bytes) {
  int64_t now = atomic_fetch_add_explicit(&layer_mapped[layer], bytes, memory_order_relaxed) + bytes;
  int64_t peak = atomic_load_explicit(&layer_mapped_peak[layer], memory_order_relaxed);
  while (now > peak && !atomic_compare_exchange_weak(&layer_mapped_peak[layer], &peak, now)) {}
}

//! Adds one thread's counters into dst, reading them relaxed (the owner may be running).
static void stats_add(hak_tstats_t* dst, hak_tstats_t* src) {
  for (int k = 0; k < HAK_CS_COUNT; k++)
    for (int c = 0; c < HAK_STAT_CLASSES; c++)
      dst->c[k][c] += __atomic_load_n(&src->c[k][c], __ATOMIC_RELAXED);
  for (int k = 0; k < HAK_TS_COUNT; k++)
    dst->t[k] += __atomic_load_n(&src->t[k], __ATOMIC_RELAXED);
}

//! Adds a heap's counters into *arg: a small class's allocs and frees are in its bin.
static void stats_add_heap(hak_heap_t* h, void* arg) {
  hak_tstats_t* dst = arg;
  stats_add(dst, &h->st);
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) {
    dst->c[HAK_CS_alloc][c] += hak__bin_allocs_read(&h->bins[c]);
    dst->c[HAK_CS_free][c] += __atomic_load_n(&h->bins[c].frees, __ATOMIC_RELAXED);
  }
}

//! Thread exit: the counters move to the retired total.  Zeroed under the
//! lock, and hak__stats_sum holds it across its walk, so a sum never counts
//! an exiting thread twice or not at all (a spike in one learner window).
void hak__stats_merge(hak_heap_t* h) {
  pthread_mutex_lock(&stats_lock);
  stats_add_heap(h, &stats_retired);
  memset(&h->st, 0, sizeof h->st);
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) {
    PoolTLSBin* b = hak__bin(h, c);
    uint32_t n = hak__bin_count(b);
    b->frees = b->fmax = b->off = 0;             /* allocs 0, then the count back */
    hak__bin_count_set(b, n);
  }
  pthread_mutex_unlock(&stats_lock);
}

void hak__stats_sum(hak_tstats_t* out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&stats_lock);             /* then heap_lock: never the other order */
  stats_add(out, &stats_retired);
  hak__vg_enter();                             /* HAKMEM_VALGRIND hides the bins (valgrind.c) */
  hak__heap_each(stats_add_heap, out);
  hak__vg_leave();
  pthread_mutex_unlock(&stats_lock);
}

//! Which layer a stats class belongs to.
static int stats_layer_of(int c) {
  return c < HAK_STAT_HUGE ? hak__class_layer((unsigned)c) : HAK_LAYER_HUGE;
}

//! Blocks of a class that sit in caches (central lists), in pages.
static void stats_gauges(hak_stats_t* out) {
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) {
    hak_layer_stats_t* L = &out->layer[stats_layer_of((int)c)];
    uint32_t bpp = hak__class_cap[c];            /* blocks a page holds (colours: classes.c) */
    L->pages_in_use += hak__small_pages_in_use(c);
    L->pages_cached += hak__small_cached_blocks(c) / (bpp ? bpp : 1);
  }
  out->layer[HAK_LAYER_TINY].pages_cached += hak__page_warm_layer(HAK_LAYER_TINY);   /* warm pages: free, resident */
  out->layer[HAK_LAYER_MID].pages_cached += hak__page_warm_layer(HAK_LAYER_MID);
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++)
    out->layer[HAK_LAYER_LARGE].pages_cached +=
        hak__l25_cached_blocks(c) * hak__large_size[c] / HAK_PAGE_SIZE;
  for (int l = 0; l < HAK_LAYER_COUNT; l++) {
    out->layer[l].bytes_mapped = (uint64_t)atomic_load(&layer_mapped[l]);
    out->layer[l].bytes_mapped_peak = (uint64_t)atomic_load(&layer_mapped_peak[l]);
  }
  out->layer[HAK_LAYER_LARGE].pages_in_use = out->layer[HAK_LAYER_LARGE].bytes_mapped / HAK_PAGE_SIZE;
  out->layer[HAK_LAYER_HUGE].pages_in_use = out->layer[HAK_LAYER_HUGE].bytes_mapped / HAK_PAGE_SIZE;
  out->bytes_mapped = (uint64_t)atomic_load(&hak__os_mapped);
  out->bytes_mapped_peak = (uint64_t)atomic_load(&hak__os_mapped_peak);
  out->threads_started = atomic_load(&hak__threads_started);
  out->threads_exited = atomic_load(&hak__threads_exited);
}

static void stats_fill(hak_stats_t* out, hak_tstats_t* t) {
  memset(out, 0, sizeof *out);
  for (int c = 0; c < HAK_STAT_CLASSES; c++) {
    hak_layer_stats_t* L = &out->layer[stats_layer_of(c)];
    L->allocs += t->c[HAK_CS_alloc][c];
    L->frees += t->c[HAK_CS_free][c];
    L->remote_frees += t->c[HAK_CS_remote_free][c];
    L->misses += t->c[HAK_CS_miss][c];
  }
  for (int l = 0; l < HAK_LAYER_COUNT; l++)
    out->layer[l].hits = out->layer[l].allocs > out->layer[l].misses
                             ? out->layer[l].allocs - out->layer[l].misses : 0;
  stats_gauges(out);
}

//! Bytes of live blocks per layer at their class sizes (glibc counts its
//! chunks so), and live huge blocks, for mallinfo: what programs that
//! check for leaks read.  Huge: the live runs, not the cached ones.
void hak__stats_live(uint64_t bytes[HAK_LAYER_COUNT], uint64_t* huge_blocks) {
  memset(bytes, 0, sizeof(uint64_t) * HAK_LAYER_COUNT);
  *huge_blocks = 0;
  hak_tstats_t* t = hak__os_map(sizeof *t);
  if (!t) return;
  hak__stats_sum(t);
  for (int c = 0; c < HAK_STAT_HUGE; c++) {
    /* a free to the owner's inbox counts as a remote free only */
    uint64_t a = t->c[HAK_CS_alloc][c], f = t->c[HAK_CS_free][c] + t->c[HAK_CS_remote_free][c];   /* racing reads: f may pass a */
    uint64_t size = c < HAK_SMALL_CLASSES ? hak__class_size[c] : hak__large_size[c - HAK_STAT_LARGE0];
    if (a > f) bytes[stats_layer_of(c)] += (a - f) * size;
  }
  uint64_t a = t->c[HAK_CS_alloc][HAK_STAT_HUGE], f = t->c[HAK_CS_free][HAK_STAT_HUGE];
  *huge_blocks = a > f ? a - f : 0;
  bytes[HAK_LAYER_HUGE] = hak__huge_live_bytes();
  hak__os_unmap(t, sizeof *t);
}

HAK_API void hak_stats_get(hak_stats_t* out) {
  hak_tstats_t* t = hak__os_map(sizeof *t);   /* too big for some thread stacks */
  if (!t) { memset(out, 0, sizeof *out); return; }
  hak__stats_sum(t);
  stats_fill(out, t);
  hak__os_unmap(t, sizeof *t);
}

static const char* const layer_names[HAK_LAYER_COUNT] = {"tiny", "mid", "large", "huge"};

HAK_API void hak_stats_print(FILE* f) {
  hak_tstats_t* t = hak__os_map(sizeof *t);
  if (!t) return;
  hak__stats_sum(t);
  hak_stats_t s;
  stats_fill(&s, t);
  fprintf(f, "hakmem stats: pid %d, threads %llu started, %llu exited, RSS %.1f MiB\n",
          (int)getpid(), s.threads_started, s.threads_exited, hak__os_rss() / 1048576.0);
  fprintf(f, "%-7s %12s %12s %10s %12s %10s %8s %9s %9s %10s %10s\n", "layer", "allocs", "frees",
          "remote", "hits", "misses", "hit%", "pg_used", "pg_cache", "mapped_MB", "peak_MB");
  unsigned long long ta = 0, tf = 0, tr = 0, th = 0, tm = 0;
  for (int l = 0; l < HAK_LAYER_COUNT; l++) {
    hak_layer_stats_t* L = &s.layer[l];
    fprintf(f, "%-7s %12llu %12llu %10llu %12llu %10llu %7.1f%% %9llu %9llu %10.1f %10.1f\n",
            layer_names[l], L->allocs, L->frees, L->remote_frees, L->hits, L->misses,
            L->allocs ? 100.0 * (double)L->hits / (double)L->allocs : 0.0, L->pages_in_use,
            L->pages_cached, L->bytes_mapped / 1048576.0, L->bytes_mapped_peak / 1048576.0);
    ta += L->allocs; tf += L->frees; tr += L->remote_frees; th += L->hits; tm += L->misses;
  }
  fprintf(f, "%-7s %12llu %12llu %10llu %12llu %10llu %7.1f%% %9s %9s %10.1f %10.1f\n", "total",
          ta, tf, tr, th, tm, ta ? 100.0 * (double)th / (double)ta : 0.0, "-", "-",
          s.bytes_mapped / 1048576.0, s.bytes_mapped_peak / 1048576.0);
  fprintf(f, "counters:");
  for (int k = 0; k < HAK_TS_COUNT; k++) fprintf(f, " %s=%llu", thread_stat_names[k], (unsigned long long)t->t[k]);
  fprintf(f, " pages_released=%llu warm_pages=%u warm_taken=%llu", (unsigned long long)hak__small_pages_released(),
          hak__page_warm_count(), (unsigned long long)hak__page_warm_taken());
  fprintf(f, "\nper class (size: allocs frees remote misses refills pages borrow central_pop central_push):\n");
  for (int c = 0; c < HAK_STAT_CLASSES; c++) {
    uint64_t v[HAK_CS_COUNT];
    for (int k = 0; k < HAK_CS_COUNT; k++) v[k] = t->c[k][c];
    if (!v[HAK_CS_alloc] && !v[HAK_CS_free]) continue;
    unsigned long sz = c < HAK_SMALL_CLASSES ? hak__class_size[c]
                     : c < HAK_STAT_HUGE ? hak__large_size[c - HAK_STAT_LARGE0] : 0;
    fprintf(f, "  %-5s %8lu: %llu %llu %llu %llu %llu %llu %llu %llu %llu\n", layer_names[stats_layer_of(c)], sz,
            (unsigned long long)v[HAK_CS_alloc], (unsigned long long)v[HAK_CS_free],
            (unsigned long long)v[HAK_CS_remote_free], (unsigned long long)v[HAK_CS_miss],
            (unsigned long long)v[HAK_CS_refill], (unsigned long long)v[HAK_CS_refill_pages],
            (unsigned long long)v[HAK_CS_borrow], (unsigned long long)v[HAK_CS_central_pop],
            (unsigned long long)v[HAK_CS_central_push]);
  }
  hak__learner_print(f);
  fflush(f);
  hak__os_unmap(t, sizeof *t);
}

HAK_API void hak_stats_print_json(FILE* f) {
  hak_stats_t s;
  hak_stats_get(&s);
  fprintf(f, "{\"pid\":%d,\"bytes_mapped\":%llu,\"bytes_mapped_peak\":%llu,\"threads_started\":%llu,"
             "\"threads_exited\":%llu,\"layers\":{",
          (int)getpid(), s.bytes_mapped, s.bytes_mapped_peak, s.threads_started, s.threads_exited);
  for (int l = 0; l < HAK_LAYER_COUNT; l++) {
    hak_layer_stats_t* L = &s.layer[l];
    fprintf(f, "%s\"%s\":{\"allocs\":%llu,\"frees\":%llu,\"remote_frees\":%llu,\"hits\":%llu,"
               "\"misses\":%llu,\"pages_in_use\":%llu,\"pages_cached\":%llu,\"bytes_mapped\":%llu,"
               "\"bytes_mapped_peak\":%llu}",
            l ? "," : "", layer_names[l], L->allocs, L->frees, L->remote_frees, L->hits, L->misses,
            L->pages_in_use, L->pages_cached, L->bytes_mapped, L->bytes_mapped_peak);
  }
  fprintf(f, "}}\n");
  fflush(f);
}

static int stats_fd = -1;
static struct stat stats_fd_st;

//! Keeps a private copy of stderr: programs such as coreutils close
//! stderr in their own atexit handlers, before the table is printed.
void hak__stats_init(void) {
  if (!hak__opt.stats) return;
  stats_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
  if (stats_fd >= 0 && fstat(stats_fd, &stats_fd_st) != 0) stats_fd = -1;
}

//! Whether the copy is still ours: a program may close every descriptor
//! above 2 and open its own files, one of which then has our number.
static int stats_fd_ours(void) {
  struct stat st;
  return stats_fd >= 0 && fstat(stats_fd, &st) == 0 && st.st_dev == stats_fd_st.st_dev &&
         st.st_ino == stats_fd_st.st_ino;
}

void hak__stats_at_exit(void) {
  if (!hak__opt.stats) return;
  FILE* f = stats_fd_ours() ? fdopen(stats_fd, "w") : NULL;
  hak_stats_print(f ? f : stderr);
  if (f) fclose(f);
  stats_fd = -1;
}
