/* The first allocator call a thread makes may be anything: free (of NULL or
 * of another thread's block), realloc, calloc, memalign, posix_memalign,
 * aligned_alloc, valloc, malloc_usable_size, malloc_trim, mallinfo2.  Every
 * kind runs as the very first call of fresh threads, 16 threads at a time
 * released by a barrier so their first calls race. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include "hk_test.h"

enum { OP_FREE_NULL, OP_FREE_REMOTE, OP_REALLOC_NULL, OP_REALLOC_REMOTE, OP_CALLOC, OP_MEMALIGN, OP_POSIX_MEMALIGN,
       OP_ALIGNED_ALLOC, OP_VALLOC, OP_USABLE_SIZE, OP_TRIM, OP_MALLINFO2, OP_MALLOC_HUGE, OP_FREE_HUGE, NOPS };
static const char* op_names[NOPS] = {"free(NULL)", "free(remote)", "realloc(NULL)", "realloc(remote)", "calloc",
                                     "memalign", "posix_memalign", "aligned_alloc", "valloc",
                                     "malloc_usable_size", "malloc_trim", "mallinfo2", "malloc(huge)",
                                     "free(remote huge)"};

#define NT 16
typedef struct { int op; void* given; size_t given_n; pthread_barrier_t* bar; } targ_t;

static void* first_op_thread(void* arg) {
  targ_t* a = arg;
  pthread_barrier_wait(a->bar);  /* pthread internals: no malloc here */
  void* p = NULL;
  const char* name = op_names[a->op];
  switch (a->op) {
    case OP_FREE_NULL: free(NULL); break;
    case OP_FREE_REMOTE: free(a->given); break;
    case OP_REALLOC_NULL: p = realloc(NULL, 200); CHECK(p && hak_owns(p), "%s first", name); break;
    case OP_REALLOC_REMOTE: {
      unsigned char* q = realloc(a->given, 5000);
      CHECK(q && hak_owns(q), "%s first", name);
      for (size_t i = 0; i < a->given_n; i++) CHECK(q[i] == 0xab, "%s first lost byte %zu", name, i);
      p = q;
      break;
    }
    case OP_CALLOC: {
      unsigned char* q = calloc(100, 10);
      CHECK(q && hak_owns(q), "%s first", name);
      for (int i = 0; i < 1000; i++) CHECK(q[i] == 0, "%s first: not zeroed", name);
      p = q;
      break;
    }
    case OP_MEMALIGN: p = memalign(4096, 100); CHECK(p && (uintptr_t)p % 4096 == 0 && hak_owns(p), "%s first", name); break;
    case OP_POSIX_MEMALIGN: {
      int rc = posix_memalign(&p, 64, 3000);
      CHECK(rc == 0 && p && (uintptr_t)p % 64 == 0 && hak_owns(p), "%s first: rc %d", name, rc);
      break;
    }
    case OP_ALIGNED_ALLOC: p = aligned_alloc(1 << 16, 1 << 16); CHECK(p && (uintptr_t)p % (1 << 16) == 0, "%s first", name); break;
    case OP_VALLOC: p = valloc(100); CHECK(p && (uintptr_t)p % 4096 == 0, "%s first", name); break;
    case OP_USABLE_SIZE: {
      size_t u = malloc_usable_size(a->given);
      CHECK(u >= a->given_n, "%s first: %zu < %zu", name, u, a->given_n);
      break;
    }
    case OP_TRIM: malloc_trim(0); break;
    case OP_MALLINFO2: (void)mallinfo2(); break;
    case OP_MALLOC_HUGE: p = malloc(3 << 20); CHECK(p && hak_owns(p), "%s first", name); break;
    case OP_FREE_HUGE: free(a->given); break;
  }
  if (p) memset(p, 1, 100);
  /* after the first op, the thread works normally */
  void* more[50];
  for (int i = 0; i < 50; i++) { more[i] = malloc(i * 40); CHECK(more[i], "%s: malloc after", name); }
  for (int i = 0; i < 50; i++) free(more[i]);
  free(p);
  return NULL;
}

int main(void) {
  hk_begin("first_op/thread_first", 50);
  static targ_t args[NT];
  pthread_t th[NT];
  for (int round = 0; round < 20 / hk_scale(); round++) {
    for (int op = 0; op < NOPS; op++) {
      pthread_barrier_t bar;
      pthread_barrier_init(&bar, NULL, NT);
      for (int i = 0; i < NT; i++) {
        args[i].op = op;
        args[i].bar = &bar;
        args[i].given = NULL;
        args[i].given_n = 0;
        if (op == OP_FREE_REMOTE || op == OP_REALLOC_REMOTE || op == OP_USABLE_SIZE || op == OP_FREE_HUGE) {
          size_t n = op == OP_FREE_HUGE ? (size_t)(2 << 20) + (size_t)i : (size_t)(16 + i * 100 + round);
          args[i].given = malloc(n);
          CHECK(args[i].given, "malloc");
          memset(args[i].given, 0xab, n);
          args[i].given_n = n;
        }
        CHECK(pthread_create(&th[i], NULL, first_op_thread, &args[i]) == 0, "pthread_create");
      }
      for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
      for (int i = 0; i < NT; i++) if (op == OP_USABLE_SIZE) free(args[i].given);
      pthread_barrier_destroy(&bar);
    }
  }
  printf("first_op/thread_first: ok\n");
  return 0;
}
