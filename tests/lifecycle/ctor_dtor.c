/* Allocation from constructors and from TLS destructors (issue 6, item 6).
 *  - a priority-101 constructor (before anything else of ours, maybe before
 *    hakmem's own init) allocates in every layer; main checks and frees it;
 *  - threads get pthread-key destructors registered both before and after
 *    hakmem's first allocation (so some run after hakmem's own thread
 *    teardown), plus C++-style thread_local destructors
 *    (__cxa_thread_atexit_impl); each destructor checks its block, frees it,
 *    allocates new ones in every layer and re-arms the key for a few rounds;
 *    some blocks allocated in destructors are handed to main and freed there;
 *  - a thread whose very first allocation happens in a TLS destructor;
 *  - atexit handlers and a destructor function allocate after main returns. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>

#include "../stress/rel_alloc.h"

extern int __cxa_thread_atexit_impl(void (*dtor)(void*), void* obj, void* dso_symbol);
extern void* __dso_handle;

static const size_t sizes[] = {1, 24, 512, 1024, 1500, 20000, 52 * 1024, 100000, 1 << 20, (1 << 20) + 1, 3 << 20};
#define NS (sizeof sizes / sizeof sizes[0])
static void* ctor_blocks[NS];
static pthread_key_t k_early, k_late;
static atomic_int dtor_runs, dtor_allocs, cxa_runs;
static void* _Atomic handed[4096];
static atomic_int nhanded;

static void die(const char* m) {
  static const char pre[] = "FAIL ctor_dtor: ";
  ssize_t r = write(2, pre, sizeof pre - 1);
  r = write(2, m, strlen(m));
  r = write(2, "\n", 1);
  (void)r;
  _exit(1);
}

static void* stamp_alloc(size_t n, unsigned char v) {
  void* p = A_MALLOC(n);
  if (!p) die("malloc returned NULL");
  if (A_USABLE(p) < n) die("usable size < request");
  memset(p, v, n < 8192 ? n : 8192);
  ((unsigned char*)p)[n - 1] = v;
  return p;
}
static void check_free(void* p, size_t n, unsigned char v) {
  unsigned char* c = p;
  for (size_t i = 0; i < (n < 8192 ? n : 8192); i++)
    if (c[i] != v) die("block contents damaged");
  if (c[n - 1] != v) die("block tail damaged");
  A_FREE(p);
}

static void key_dtor(void* v);
__attribute__((constructor(101))) static void early_ctor(void) {
  /* before our first allocation, so likely before hakmem creates its own key */
  if (pthread_key_create(&k_early, key_dtor)) die("pthread_key_create");
  for (size_t i = 0; i < NS; i++) ctor_blocks[i] = stamp_alloc(sizes[i], (unsigned char)(0x40 + i));
  void* c = A_CALLOC(100, 10);
  if (!c) die("calloc in constructor");
  for (int i = 0; i < 1000; i++) if (((unsigned char*)c)[i]) die("calloc memory not zero in constructor");
  c = A_REALLOC(c, 5000);
  if (!c) die("realloc in constructor");
  A_FREE(c);
}

typedef struct { void* p; size_t n; int round; } tlsv_t;

static void key_dtor(void* v) {
  tlsv_t* t = v;
  atomic_fetch_add(&dtor_runs, 1);
  check_free(t->p, t->n, (unsigned char)t->round);
  /* allocate in every layer from inside the destructor */
  for (size_t i = 0; i < NS; i++) {
    void* p = stamp_alloc(sizes[i], 0x77);
    if (i % 3 == 0) {
      int k = atomic_fetch_add(&nhanded, 1);
      if (k < 4096) { atomic_store(&handed[k], p); continue; }
    }
    check_free(p, sizes[i], 0x77);
  }
  atomic_fetch_add(&dtor_allocs, (int)NS);
  if (t->round < 3) {                      /* re-arm: glibc runs up to 4 rounds */
    t->round++;
    t->n = sizes[(size_t)t->round * 3 % NS];
    t->p = stamp_alloc(t->n, (unsigned char)t->round);
    if (pthread_setspecific(t->round % 2 ? k_late : k_early, t)) die("setspecific");
    return;
  }
  A_FREE(t);
}

static void cxa_dtor(void* v) {
  atomic_fetch_add(&cxa_runs, 1);
  void** b = v;
  check_free(b[0], 333, 0x55);
  void* p = stamp_alloc(70000, 0x56);     /* allocate during thread_local destruction */
  check_free(p, 70000, 0x56);
  A_FREE(b);
}

static void arm(pthread_key_t k, int round0, size_t n) {
  tlsv_t* t = A_MALLOC(sizeof *t);
  if (!t) die("malloc");
  t->round = round0;
  t->n = n;
  t->p = stamp_alloc(n, (unsigned char)round0);
  if (pthread_setspecific(k, t)) die("setspecific");
}

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  arm(k_early, 0, sizes[id % NS]);
  arm(k_late, 1, sizes[(id + 5) % NS]);
  void** b = A_MALLOC(2 * sizeof(void*));
  if (!b) die("malloc");
  b[0] = stamp_alloc(333, 0x55);
  if (__cxa_thread_atexit_impl(cxa_dtor, b, &__dso_handle)) die("__cxa_thread_atexit_impl");
  return NULL;
}

/* a thread that never allocates until its TLS destructor runs */
static pthread_key_t k_first;
static void first_dtor(void* v) {
  (void)v;
  void* p = stamp_alloc(200, 0x12);
  void* q = stamp_alloc(200000, 0x13);
  check_free(p, 200, 0x12);
  int k = atomic_fetch_add(&nhanded, 1);
  if (k < 4096) atomic_store(&handed[k], q); else A_FREE(q);
  atomic_fetch_add(&dtor_runs, 1);
}
static void* quiet_worker(void* arg) {
  if (pthread_setspecific(k_first, (void*)1)) die("setspecific");   /* no allocation here */
  return arg;
}

static void at_exit_alloc(void) {
  void* p = stamp_alloc(4000, 0x21);
  void* q = A_REALLOC(p, 2 << 20);
  if (!q) die("realloc in atexit");
  if (((unsigned char*)q)[0] != 0x21) die("realloc lost data in atexit");
  A_FREE(q);
}
__attribute__((destructor)) static void late_dtor(void) {
  void* p = stamp_alloc(123, 0x31);
  check_free(p, 123, 0x31);
  static const char ok[] = "ctor_dtor: destructor after main allocated fine\n";
  ssize_t r = write(1, ok, sizeof ok - 1);
  (void)r;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (size_t i = 0; i < NS; i++) check_free(ctor_blocks[i], sizes[i], (unsigned char)(0x40 + i));
  /* k_early was created before hakmem's first allocation, k_late after it:
   * key destructors run in key order, so hakmem's own teardown (if it uses a
   * key) falls between them */
  void* warm = stamp_alloc(64, 1);
  A_FREE(warm);
  if (pthread_key_create(&k_late, key_dtor)) die("key");
  if (pthread_key_create(&k_first, first_dtor)) die("key");
  atexit(at_exit_alloc);
  const int nt = 200;
  for (int round = 0; round < nt / 8; round++) {
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
      if (pthread_create(&t[i], NULL, i == 7 ? quiet_worker : worker, (void*)(intptr_t)(round * 8 + i))) die("pthread_create");
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
  }
  int nh = atomic_load(&nhanded);
  if (nh > 4096) nh = 4096;
  for (int i = 0; i < nh; i++) {            /* blocks allocated in destructors of exited threads */
    unsigned char* p = atomic_load(&handed[i]);
    if (p[0] != 0x77 && p[0] != 0x13) die("handed-over block damaged");
    A_FREE(p);
  }
  int workers = nt / 8 * 7, quiet = nt / 8;
  printf("ctor_dtor: %d key-destructor runs (%d allocations in them), %d thread_local destructors, %d blocks freed after their thread exited, api %s\n",
         atomic_load(&dtor_runs), atomic_load(&dtor_allocs), atomic_load(&cxa_runs), nh, REL_API_NAME);
  if (atomic_load(&cxa_runs) != workers) die("a thread_local destructor did not run");
  if (atomic_load(&dtor_runs) < workers * 2 + quiet) die("fewer key destructor runs than keys set");
  return 0;
}
