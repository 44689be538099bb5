/* Allocation outside main's lifetime:
 *  - from a constructor before main (blocks checked and freed in main);
 *  - as the process's very first call, each kind (free, realloc, memalign,
 *    calloc, malloc_usable_size, posix_memalign, dlerror which callocs):
 *    the test re-execs itself with HK_FIRST_OP set and the constructor makes
 *    that call first;
 *  - from pthread key destructors that re-arm themselves for several rounds,
 *    so they run after the thread's own hakmem teardown, and from
 *    __cxa_thread_atexit_impl destructors (what C++ thread_local uses);
 *  - from atexit handlers and destructors after main returns. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include "hk_test.h"

extern int __cxa_thread_atexit_impl(void (*dtor)(void*), void* obj, void* dso);
extern void* __dso_handle;

static unsigned char* ctor_blocks[8];
static const size_t ctor_sizes[8] = {0, 24, 1000, 4000, 50000, 200000, 1 << 20, 5 << 20};
static const char* first_op;

static void do_first_op(const char* op) {
  void* p = NULL;
  if (!strcmp(op, "free")) free(NULL);
  else if (!strcmp(op, "free_bogus_null")) free((void*)0);
  else if (!strcmp(op, "realloc")) p = realloc(NULL, 100);
  else if (!strcmp(op, "memalign")) p = memalign(64, 100);
  else if (!strcmp(op, "posix_memalign")) { if (posix_memalign(&p, 4096, 100) != 0) p = NULL; }
  else if (!strcmp(op, "aligned_alloc")) p = aligned_alloc(1 << 21, 100);
  else if (!strcmp(op, "calloc")) p = calloc(10, 10);
  else if (!strcmp(op, "usable_size")) { if (malloc_usable_size(NULL) != 0) _exit(5); }
  else if (!strcmp(op, "valloc")) p = valloc(100);
  else if (!strcmp(op, "trim")) malloc_trim(0);
  else if (!strcmp(op, "stats")) { hak_stats_t s; hak_stats_get(&s); }
  else if (!strcmp(op, "dlerror")) {
    /* dlopen failure makes glibc's dlerror machinery calloc/malloc */
    void* h = dlopen("libhakmem-test-does-not-exist.so", RTLD_NOW);
    const char* e = dlerror();
    if (h || !e) _exit(6);
    void* sym = dlsym(RTLD_DEFAULT, "no_such_symbol_hk");
    if (sym || !dlerror()) _exit(7);
  } else _exit(8);
  if (strcmp(op, "free") && strcmp(op, "free_bogus_null") && strcmp(op, "usable_size") && strcmp(op, "trim") &&
      strcmp(op, "stats") && strcmp(op, "dlerror") && (!p || !hak_owns(p)))
    _exit(9);
  free(p);
}

__attribute__((constructor(101))) static void early_ctor(void) {
  first_op = getenv("HK_FIRST_OP");
  if (first_op) { do_first_op(first_op); return; }
  for (int i = 0; i < 8; i++) {
    ctor_blocks[i] = malloc(ctor_sizes[i]);
    if (!ctor_blocks[i]) _exit(10);
    memset(ctor_blocks[i], 0x40 + i, ctor_sizes[i]);
  }
}

/* ---- TLS destructors ---- */
#define NKEYS 3
#define ROUNDS 4  /* PTHREAD_DESTRUCTOR_ITERATIONS is 4 */
static pthread_key_t keys[NKEYS];
static void* late_blocks[64][NKEYS];  /* allocated in the last destructor round, freed by main */
static int dtor_calls;  /* updated with __atomic builtins */

typedef struct { int tid, key, round; void* blk; } kstate_t;

static void key_dtor(void* v) {
  kstate_t* ks = v;
  __atomic_fetch_add(&dtor_calls, 1, __ATOMIC_RELAXED);
  /* the block from the previous round: check, free (local free after teardown) */
  if (ks->blk) {
    if (((unsigned char*)ks->blk)[0] != (unsigned char)ks->round) { fprintf(stderr, "key dtor: block corrupted\n"); _exit(11); }
    free(ks->blk);
  }
  ks->round++;
  size_t n = 16 + (size_t)ks->round * 3000 + (size_t)ks->key * 100000;  /* tiny, mid, large */
  void* b = malloc(n);
  if (!b || !hak_owns(b)) { fprintf(stderr, "key dtor round %d: malloc(%zu) failed\n", ks->round, n); _exit(12); }
  memset(b, ks->round, n);
  if (ks->round < ROUNDS) {
    ks->blk = b;
    pthread_setspecific(keys[ks->key], ks);  /* re-arm: runs again next round */
  } else {
    late_blocks[ks->tid][ks->key] = b;  /* outlives the thread */
    free(ks);
  }
}

static void cxa_dtor(void* v) {
  void** slot = v;
  void* p = malloc(777);
  if (!p) _exit(13);
  memset(p, 0x77, 777);
  free(*slot);
  *slot = p;  /* main frees it */
}

static void* cxa_slots[64];

static void* tls_thread(void* arg) {
  int tid = (int)(intptr_t)arg;
  __cxa_thread_atexit_impl(cxa_dtor, &cxa_slots[tid], &__dso_handle);
  cxa_slots[tid] = malloc(10);
  for (int k = 0; k < NKEYS; k++) {
    kstate_t* ks = calloc(1, sizeof *ks);
    CHECK(ks, "calloc");
    ks->tid = tid;
    ks->key = k;
    pthread_setspecific(keys[k], ks);
  }
  void* ps[100];
  for (int i = 0; i < 100; i++) ps[i] = malloc(i * 31);
  for (int i = 0; i < 100; i++) free(ps[i]);
  return NULL;
}

/* ---- after main ---- */
static void atexit_handler(void) {
  if (first_op) return;
  for (int i = 0; i < 100; i++) {
    void* p = malloc(i * 1000);
    if (!p && i) _exit(20);
    free(p);
  }
}

__attribute__((destructor(101))) static void late_dtor(void) {
  if (first_op) return;
  void* p = malloc(3 << 20);
  void* q = calloc(1, 100);
  if (!p || !q) _exit(21);
  memset(p, 1, 64);
  if (!hak_owns(p) || !hak_owns(q)) _exit(21);
  free(p);
  free(q);
}

static void main_cxa_dtor(void* v) {
  (void)v;
  void* p = malloc(4096);  /* main thread's thread_local dtors run inside exit() */
  if (!p) _exit(22);
  free(p);
}

static void run_first_op_children(void) {
  const char* ops[] = {"free", "realloc", "memalign", "posix_memalign", "aligned_alloc", "calloc",
                       "usable_size", "valloc", "trim", "stats", "dlerror"};
  hk_child_t* c = malloc(sizeof *c);
  CHECK(c, "malloc");
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    char env[64];
    snprintf(env, sizeof env, "HK_FIRST_OP=%s", ops[i]);
    const char* envs[] = {env, NULL};
    hk_exec_self("first-op", envs, 0, c);
    CHECK(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0,
          "process whose first allocator call is %s: %s\nstderr:\n%s", ops[i], hk_status_str(c->status), c->err);
    CHECK(strstr(c->out, "first-op child ok"), "first op %s: child printed %s", ops[i], c->out);
  }
  free(c);
}

int main(int argc, char** argv) {
  if (argc > 1 && !strcmp(argv[1], "first-op")) {
    /* the child: after its odd first call, allocation works normally */
    for (int i = 0; i < 200; i++) {
      void* p = malloc(i * 100);
      if (!p || !hak_owns(p)) { fprintf(stderr, "first-op child: malloc(%d) failed\n", i * 100); return 1; }
      free(p);
    }
    printf("first-op child ok\n");
    return 0;
  }
  hk_begin("first_op/ctor_dtor", 50);
  for (int i = 0; i < 8; i++) {
    CHECK(hak_owns(ctor_blocks[i]), "block of %zu bytes from a constructor is not hakmem's", ctor_sizes[i]);
    for (size_t j = 0; j < ctor_sizes[i]; j++)
      CHECK(ctor_blocks[i][j] == 0x40 + i, "constructor block %d corrupted at %zu", i, j);
    free(ctor_blocks[i]);
  }
  for (int k = 0; k < NKEYS; k++) CHECK(pthread_key_create(&keys[k], key_dtor) == 0, "pthread_key_create");
  for (int round = 0; round < 4; round++) {
    pthread_t th[16];
    for (int i = 0; i < 16; i++) pthread_create(&th[i], NULL, tls_thread, (void*)(intptr_t)(round * 16 + i));
    for (int i = 0; i < 16; i++) pthread_join(th[i], NULL);
  }
  CHECK(dtor_calls == 64 * NKEYS * ROUNDS, "key destructors ran %d times, expected %d", dtor_calls,
        64 * NKEYS * ROUNDS);
  for (int t = 0; t < 64; t++) {
    for (int k = 0; k < NKEYS; k++) {
      unsigned char* b = late_blocks[t][k];
      CHECK(b && hak_owns(b), "thread %d key %d: block from the last destructor round missing", t, k);
      CHECK(b[0] == ROUNDS, "late block corrupted");
      free(b);
    }
    unsigned char* c = cxa_slots[t];
    CHECK(c && c[776] == 0x77, "thread %d: __cxa_thread_atexit dtor block missing/corrupted", t);
    free(c);
  }
  run_first_op_children();
  atexit(atexit_handler);
  __cxa_thread_atexit_impl(main_cxa_dtor, NULL, &__dso_handle);
  printf("first_op/ctor_dtor: ok\n");
  return 0;
}
