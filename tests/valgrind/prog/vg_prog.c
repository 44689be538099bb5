/* The programs tests/valgrind/vg_check.c runs under memcheck, with
 * LD_PRELOAD=libhakmem.so: a plain binary, not linked with hakmem, as a
 * user's program would be.  argv[1] picks one:
 *   leak    leaks VG_LEAK_BLOCKS blocks of VG_LEAK_BYTES bytes in all (every
 *           layer, calloc, memalign, realloc), frees everything else
 *   uaf     reads and writes a freed block of each layer
 *   overflow reads and writes just past a block of each layer
 *   double  frees a block twice
 *   clean   4 threads: cross-thread frees, realloc, calloc, the aligned
 *           calls, malloc_usable_size, all four layers, a fork while the
 *           threads live; no error, no leak
 * Each prints "served-by: <object of malloc> owns=<0|1>" first, so the
 * checker knows hakmem served the calls.  Built -O0 -g: memcheck's stacks
 * name the lines below. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

static void* volatile sink;       /* keeps the compiler from dropping calls */

//! Dies with a message: a broken run must not look like a clean one.
static void die(const char* what) {
  fprintf(stderr, "vg_prog: %s\n", what);
  exit(2);
}

//! Which object's malloc we call, and whether hakmem owns what it returns.
static void served_by(void) {
  Dl_info di;
  void* m = dlsym(RTLD_DEFAULT, "malloc");
  int (*owns)(const void*) = (int (*)(const void*))dlsym(RTLD_DEFAULT, "hak_owns");
  void* p = malloc(40);
  int o = owns ? owns(p) : 0;
  printf("served-by: %s owns=%d\n", m && dladdr(m, &di) && di.dli_fname ? di.dli_fname : "?", o);
  fflush(stdout);
  free(p);
}

/* ---- leak ---------------------------------------------------------------- */

//! The lost blocks: 3 x 100 (tiny), 2 x 3000 (mid), 100000 (large),
//! 2 MiB + 1 (huge), calloc(10, 10), memalign(64, 200), and 50 -> 500 by
//! realloc.  10 blocks, 2204253 bytes.
__attribute__((noinline)) static void leak_some(void) {
  static const size_t sizes[] = {100, 100, 100, 3000, 3000, 100000, 2 * MiB + 1};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char* p = malloc(sizes[i]);
    if (!p) die("malloc failed");
    memset(p, (int)i, sizes[i]);
  }
  if (!calloc(10, 10)) die("calloc failed");
  if (!memalign(64, 200)) die("memalign failed");
  char* r = malloc(50);
  if (!r) die("malloc failed");
  if (!realloc(r, 500)) die("realloc failed");
}

//! Overwrites the stack the leaking frame used: no stale pointer survives.
__attribute__((noinline)) static void scrub_stack(void) {
  volatile char buf[16384];
  memset((char*)buf, 0, sizeof buf);
}

static void run_leak(void) {
  /* blocks that are freed must not count */
  for (int i = 0; i < 100; i++) free(malloc((size_t)(i * 997 % 70000) + 1));
  leak_some();
  scrub_stack();
}

/* ---- use after free ------------------------------------------------------ */

//! The free site the reports must name.
__attribute__((noinline)) static void release_block(char* p) { free(p); }

//! Frees a block of n bytes and allocates the same size again (hakmem's
//! LIFO caches would hand back the same block), then reads and writes the
//! freed one: one report each.  Past the words hakmem links free blocks
//! with: without the option the run must go on quietly.
__attribute__((noinline)) static long uaf_one(size_t n) {
  char* p = malloc(n);
  if (!p) die("malloc failed");
  memset(p, 7, n);
  release_block(p);
  char* again = malloc(n);
  if (!again) die("malloc failed");
  memset(again, 8, n);
  long v = ((volatile char*)p)[40];         /* the read after free */
  ((volatile char*)p)[41] = 1;              /* the write after free */
  printf("uaf: %zu bytes, %s\n", n, again == p ? "the same block again" : "another block");
  free(again);
  return v;
}

static void run_uaf(void) {
  long sum = 0;
  /* one call per layer: each report has its own stack */
  sum += uaf_one(48);
  sum += uaf_one(5000);
  sum += uaf_one(200000);
  sum += uaf_one(3 * MiB);
  printf("uaf: done %ld\n", sum > 0 ? 1L : 0L);
}

/* ---- overflow ------------------------------------------------------------ */

//! Reads the byte just past a fresh block of n bytes and writes the one
//! after it: hakmem's slack must not be the program's.
__attribute__((noinline)) static long overflow_one(size_t n) {
  char* p = malloc(n);
  if (!p) die("malloc failed");
  memset(p, 5, n);
  long v = ((volatile char*)p)[n];          /* the read past the end */
  ((volatile char*)p)[n + 2] = 1;           /* the write past the end */
  free(p);
  return v;
}

static void run_overflow(void) {
  long sum = 0;
  sum += overflow_one(10);
  sum += overflow_one(5000);
  sum += overflow_one(200000);
  sum += overflow_one(3 * MiB + 100);         /* hakmem rounds it up to a page */
  printf("overflow: done %ld\n", sum > 0 ? 1L : 0L);
}

/* ---- double free --------------------------------------------------------- */

static void run_double(void) {
  char* p = malloc(32);
  if (!p) die("malloc failed");
  release_block(p);
  release_block(p);                         /* the double free */
  printf("double: not caught\n");
}

/* ---- clean, with threads ------------------------------------------------- */

#define NT 4
#define ROUNDS 80
#define Q 64

/* a lock-protected handoff: blocks allocated by one thread, freed by another */
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static void* q_items[Q];
static size_t q_sizes[Q];
static int q_n;

static void* global_keep[4];      /* reachable at the fork and at exit: freed last */
/* the fork waits until no worker holds a block only in its registers or
 * locals: the child would lose those (glibc's malloc too) */
static pthread_barrier_t fork_bar;

//! Fills p with a pattern of seed, n bytes.
static void fill(unsigned char* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 31);
}

//! Checks the pattern; a mismatch is a hakmem bug, not a memcheck report.
static void verify(const unsigned char* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(seed + i * 31)) die("pattern lost");
}

//! Frees one block from the handoff queue, if any.
static void q_take_one(void) {
  pthread_mutex_lock(&q_lock);
  void* p = q_n ? q_items[--q_n] : NULL;
  size_t n = p ? q_sizes[q_n] : 0;
  pthread_mutex_unlock(&q_lock);
  if (p) {
    verify(p, n < 64 ? n : 64, (unsigned)n);
    free(p);
  }
}

//! Size of round r: all four layers (<= 1 KiB, 1-52 KiB, 64 KiB-1 MiB, huge).
static size_t size_of_round(unsigned t, int r) {
  switch ((r + (int)t) % 8) {
    case 0: case 1: case 2: return 8 + (size_t)(r * 13 % 1000);
    case 3: case 4: return 1100 + (size_t)(r * 331 % 50000);
    case 5: case 6: return 64 * KiB + (size_t)(r * 7919 % (900 * KiB));
    default: return 1 * MiB + 1 + (size_t)(r * 4099 % (2 * MiB));
  }
}

static void* worker(void* arg) {
  unsigned t = (unsigned)(uintptr_t)arg;
  for (int r = 0; r < ROUNDS; r++) {
    if (r == ROUNDS / 2) {                  /* the main thread forks between the two */
      pthread_barrier_wait(&fork_bar);
      pthread_barrier_wait(&fork_bar);
    }
    size_t n = size_of_round(t, r);
    unsigned char* p = malloc(n);
    if (!p) die("malloc failed");
    size_t u = malloc_usable_size(p);
    if (u < n) die("usable size below the request");
    fill(p, u, (unsigned)n);                /* the whole usable size is the program's */
    /* realloc: grow, then shrink, contents kept */
    size_t n2 = n * 2 + 10;
    unsigned char* q = realloc(p, n2);
    if (!q) die("realloc failed");
    verify(q, n, (unsigned)n);
    fill(q, n2, (unsigned)n2);
    p = realloc(q, n / 2 + 1);
    if (!p) die("realloc failed");
    verify(p, n / 2 + 1, (unsigned)n2);
    free(p);
    /* calloc: memcheck must know the block is zero (reading it branches) */
    size_t cn = size_of_round(t + 1, r);
    unsigned char* c = calloc(1, cn);
    if (!c) die("calloc failed");
    for (size_t i = 0; i < cn; i += 1 + i / 8) if (c[i]) die("calloc not zero");
    free(c);
    /* the aligned calls */
    size_t al = (size_t)64 << (r % 7);      /* 64 .. 4096 */
    void* a = NULL;
    switch (r % 4) {
      case 0: a = memalign(al, n); break;
      case 1: if (posix_memalign(&a, al, n)) a = NULL; break;
      case 2: a = aligned_alloc(al, (n + al - 1) / al * al); break;
      default: a = r % 8 == 3 ? valloc(n) : pvalloc(n); al = 4096; break;
    }
    if (!a || ((uintptr_t)a & (al - 1))) die("aligned allocation wrong");
    memset(a, 1, n);
    free(a);
    /* a block for another thread to free */
    size_t hn = 16 + (size_t)(r * 37 % 40000);
    unsigned char* h = malloc(hn);
    if (!h) die("malloc failed");
    fill(h, hn < 64 ? hn : 64, (unsigned)hn);
    pthread_mutex_lock(&q_lock);
    if (q_n < Q) { q_items[q_n] = h; q_sizes[q_n] = hn; q_n++; h = NULL; }
    pthread_mutex_unlock(&q_lock);
    free(h);                                /* the queue was full */
    q_take_one();
  }
  return NULL;
}

//! A child of fork allocates and frees in every layer, then exits.
static void fork_child(void) {
  static const size_t sizes[] = {24, 700, 9000, 48000, 300000, 5 * MiB};
  for (int k = 0; k < 3; k++)
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      unsigned char* p = malloc(sizes[i]);
      if (!p) die("malloc failed in the child");
      fill(p, sizes[i] < 4096 ? sizes[i] : 4096, 3);
      free(p);
    }
  verify(global_keep[0], 100, 9);
  exit(0);
}

static void run_clean(void) {
  global_keep[0] = malloc(100);
  fill(global_keep[0], 100, 9);
  global_keep[1] = malloc(20000);
  global_keep[2] = malloc(500000);
  global_keep[3] = memalign(4 * MiB, 100);  /* aligned past a segment */
  if (!global_keep[1] || !global_keep[2] || !global_keep[3]) die("malloc failed");
  pthread_t th[NT];
  pthread_barrier_init(&fork_bar, NULL, NT + 1);
  for (unsigned t = 0; t < NT; t++)
    if (pthread_create(&th[t], NULL, worker, (void*)(uintptr_t)t)) die("pthread_create failed");
  pthread_barrier_wait(&fork_bar);
  pid_t pid = fork();                       /* the workers live, between two rounds */
  if (pid == 0) fork_child();
  pthread_barrier_wait(&fork_bar);
  for (unsigned t = 0; t < NT; t++) pthread_join(th[t], NULL);
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    die("the forked child failed");
  while (q_n) q_take_one();
  for (int i = 0; i < 4; i++) free(global_keep[i]);
  printf("clean: done\n");
}

int main(int argc, char** argv) {
  const char* what = argc > 1 ? argv[1] : "";
  served_by();
  if (!strcmp(what, "leak")) run_leak();
  else if (!strcmp(what, "uaf")) run_uaf();
  else if (!strcmp(what, "overflow")) run_overflow();
  else if (!strcmp(what, "double")) run_double();
  else if (!strcmp(what, "clean")) run_clean();
  else die("usage: vg_prog leak|uaf|overflow|double|clean");
  sink = NULL;
  return 0;
}
