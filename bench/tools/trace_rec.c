/* trace_rec.so: a tiny LD_PRELOAD recorder of malloc/free/realloc sequences.
 *
 *   HAKTRACE_DIR=/tmp/t LD_PRELOAD=build/bench/trace_rec.so program ...
 *
 * Each process writes HAKTRACE_DIR/trace.<pid>.txt (default dir /tmp).  Only
 * sizes and lifetimes are recorded, never contents.  One op per line; a new
 * block gets the next id implicitly (0, 1, 2, ...), and a block is referred
 * to by its age, next_id - id, which keeps numbers small for compression:
 *   a SIZE          malloc            c SIZE        calloc (n*size)
 *   m ALIGN SIZE    memalign family   f AGE         free
 *   r AGE SIZE      realloc (the old id dies, the result gets a new id)
 * Frees of blocks allocated before recording started are not recorded.
 * HAKTRACE_MAX (default 3000000) caps the events per process.
 * The real work is done by glibc's __libc_* entry points. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);
extern void  __libc_free(void*);

#define EXPORT __attribute__((visibility("default")))
#define TAB_BITS 24
#define TAB_SIZE (1UL << TAB_BITS)

typedef struct { uintptr_t key; uint64_t id; } ent_t;

static ent_t* g_tab;
static uint64_t g_next_id, g_events, g_max = 3000000;
static int g_fd = -1, g_ready, g_off;
static atomic_flag g_lock = ATOMIC_FLAG_INIT;
static char g_buf[1 << 20];
static size_t g_len;

static void lock(void) { while (atomic_flag_test_and_set_explicit(&g_lock, memory_order_acquire)) { } }
static void unlock(void) { atomic_flag_clear_explicit(&g_lock, memory_order_release); }

static void flush(void) {
  size_t o = 0;
  while (g_fd >= 0 && o < g_len) {
    ssize_t n = write(g_fd, g_buf + o, g_len - o);
    if (n <= 0) break;
    o += (size_t)n;
  }
  g_len = 0;
}

static void open_out(void) {
  const char* dir = getenv("HAKTRACE_DIR");
  char path[512];
  snprintf(path, sizeof path, "%s/trace.%d.txt", dir && *dir ? dir : "/tmp", (int)getpid());
  g_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

static void after_fork_child(void) {
  /* The child starts its own trace: drop the parent's buffer and table. */
  g_len = 0;
  g_next_id = 0;
  g_events = 0;
  if (g_tab) madvise(g_tab, TAB_SIZE * sizeof(ent_t), MADV_DONTNEED);
  open_out();
  unlock();
}
static void before_fork(void) { lock(); flush(); }
static void after_fork_parent(void) { unlock(); }

__attribute__((constructor)) static void rec_init(void) {
  const char* m = getenv("HAKTRACE_MAX");
  if (m && *m) g_max = strtoull(m, NULL, 10);
  g_tab = mmap(NULL, TAB_SIZE * sizeof(ent_t), PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (g_tab == MAP_FAILED) { g_tab = NULL; return; }
  open_out();
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  g_ready = 1;
}

__attribute__((destructor)) static void rec_fini(void) {
  lock();
  flush();
  g_off = 1;
  unlock();
}

static size_t slot_of(uintptr_t k) { return (size_t)((k >> 4) * 0x9E3779B97F4A7C15ULL >> (64 - TAB_BITS)); }

static void tab_put(uintptr_t k, uint64_t id) {
  size_t i = slot_of(k);
  while (g_tab[i].key && g_tab[i].key != k) i = (i + 1) & (TAB_SIZE - 1);
  g_tab[i].key = k;
  g_tab[i].id = id;
}

/* Remove k; returns its id or UINT64_MAX.  Backward-shift deletion keeps
 * linear probing correct without tombstones. */
static uint64_t tab_take(uintptr_t k) {
  size_t i = slot_of(k);
  while (g_tab[i].key != k) {
    if (!g_tab[i].key) return UINT64_MAX;
    i = (i + 1) & (TAB_SIZE - 1);
  }
  uint64_t id = g_tab[i].id;
  size_t j = i;
  for (;;) {
    g_tab[i].key = 0;
    for (;;) {
      j = (j + 1) & (TAB_SIZE - 1);
      if (!g_tab[j].key) return id;
      size_t h = slot_of(g_tab[j].key);
      /* move j back to i unless its home lies cyclically in (i, j] */
      if (i <= j ? (i < h && h <= j) : (i < h || h <= j)) continue;
      break;
    }
    g_tab[i] = g_tab[j];
    i = j;
  }
}

static void emit(const char* s, int n) {
  if (g_len + (size_t)n > sizeof g_buf) flush();
  memcpy(g_buf + g_len, s, (size_t)n);
  g_len += (size_t)n;
}

static int active(void) { return g_ready && !g_off && g_tab && g_events < g_max; }

static void rec_new(char op, void* p, size_t align, size_t size) {
  if (!p) return;
  char line[64];
  int n = op == 'm' ? snprintf(line, sizeof line, "m %zu %zu\n", align, size)
                    : snprintf(line, sizeof line, "%c %zu\n", op, size);
  emit(line, n);
  tab_put((uintptr_t)p, g_next_id++);
  g_events++;
}

EXPORT void* malloc(size_t n) {
  void* p = __libc_malloc(n);
  if (active()) { lock(); if (active()) rec_new('a', p, 0, n); unlock(); }
  return p;
}

EXPORT void* calloc(size_t a, size_t b) {
  void* p = __libc_calloc(a, b);
  if (active()) { lock(); if (active()) rec_new('c', p, 0, a * b); unlock(); }
  return p;
}

EXPORT void free(void* p) {
  if (!p) return;
  if (active()) {
    lock();
    uint64_t id = tab_take((uintptr_t)p);
    if (id != UINT64_MAX && active()) {
      char line[32];
      emit(line, snprintf(line, sizeof line, "f %llu\n", (unsigned long long)(g_next_id - id)));
      g_events++;
    }
    unlock();
  }
  __libc_free(p);
}

EXPORT void* realloc(void* p, size_t n) {
  if (!p) return malloc(n);
  if (n == 0) { free(p); return NULL; }  /* glibc's realloc(p, 0) frees */
  if (!active()) return __libc_realloc(p, n);
  lock();
  void* q = __libc_realloc(p, n);
  if (q && active()) {
    uint64_t id = tab_take((uintptr_t)p);
    char line[64];
    if (id != UINT64_MAX)
      emit(line, snprintf(line, sizeof line, "r %llu %zu\n", (unsigned long long)(g_next_id - id), n));
    else
      emit(line, snprintf(line, sizeof line, "a %zu\n", n));
    tab_put((uintptr_t)q, g_next_id++);
    g_events++;
  }
  unlock();
  return q;
}

EXPORT void* reallocarray(void* p, size_t a, size_t b) {
  size_t n;
  if (__builtin_mul_overflow(a, b, &n)) { errno = ENOMEM; return NULL; }
  return realloc(p, n);
}

static void* aligned(size_t al, size_t n) {
  void* p = __libc_memalign(al, n);
  if (active()) { lock(); if (active()) rec_new('m', p, al, n); unlock(); }
  return p;
}

EXPORT void* memalign(size_t al, size_t n) { return aligned(al, n); }
EXPORT void* aligned_alloc(size_t al, size_t n) { return aligned(al, n); }
EXPORT void* valloc(size_t n) { return aligned((size_t)sysconf(_SC_PAGESIZE), n); }
EXPORT void* pvalloc(size_t n) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  return aligned(pg, (n + pg - 1) & ~(pg - 1));
}
EXPORT int posix_memalign(void** out, size_t al, size_t n) {
  if (al < sizeof(void*) || (al & (al - 1))) return EINVAL;
  void* p = aligned(al, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
