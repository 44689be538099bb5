/* A refill from the remote inbox may take more blocks than a small Mid
 * limit (HAKMEM_POOL_TLS_RING=4: up to 15 blocks).  The list is then over
 * its limit on a heap that has freed little of the class, and the free
 * bound must still hold: every later free past the limit spills.  (A bound
 * compared unsigned let such a list grow without end.) */
#define _GNU_SOURCE
#include "pool_test.h"
#include "link.h"
#include <pthread.h>

#define SZ 2000
#define N 5000
static void* remote[HAK_INBOX_MAX];

static void* free_remote(void* arg) {
  (void)arg;
  for (int i = 0; i < HAK_INBOX_MAX; i++) A_FREE(remote[i]);
  return NULL;
}

static uint32_t list_len(const PoolTLSBin* b, unsigned c) {
  uint32_t n = 0;
  for (void* p = b->head; p; p = hak__link_get(p, (int)c)) n++;
  return n;
}

int main(void) {
  hk_begin("pool/test_pool_limit_inbox", 60);
  hak__opt.keep = 1;
  hak__opt.pool_tls_ring = 4;
  hak_heap_t* h = pt_heap();
  unsigned c = pt_cls(SZ);
  PoolTLSBin* b = pt_bin(h, c);
  /* as in a heap made under the option: the heap may be older (a
   * sanitizer's runtime allocates first), and a bin takes its base when
   * its heap is made */
  b->base = 4;
  hak__bin_limit_set(b, 4);

  void** q = pt_map(N * sizeof(void*));
  for (int i = 0; i < N; i++) { q[i] = A_MALLOC(SZ); pt_escape(q[i]); }
  for (int i = 0; i < HAK_INBOX_MAX; i++) { remote[i] = A_MALLOC(SZ); pt_escape(remote[i]); }
  void* hold[64];
  int nh = 0;
  while (b->head && nh < 64) { hold[nh] = A_MALLOC(SZ); pt_escape(hold[nh]); nh++; }
  CHECK(!b->head, "the list did not empty");

  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_remote, NULL) == 0, "pthread_create");
  pthread_join(t, NULL);
  void* p = A_MALLOC(SZ);                     /* the refill drains the inbox */
  pt_escape(p);
  uint32_t len = list_len(b, c);
  CHECK(len == hak__bin_count(b), "list of %u blocks, count %u", len, hak__bin_count(b));
  uint32_t over = len, lim = b->limit;
  CHECK(len > b->limit, "the refill left %u blocks, not above the limit %u: the case is not reached", len,
        b->limit);

  for (int i = 0; i < N; i++) A_FREE(q[i]);
  len = list_len(b, c);
  CHECK(len == hak__bin_count(b), "list of %u blocks, count %u", len, hak__bin_count(b));
  CHECK(len <= b->limit, "%d frees left a list of %u blocks over its limit %u", N, len, b->limit);

  for (int i = 0; i < nh; i++) A_FREE(hold[i]);
  A_FREE(p);
  printf("pool/test_pool_limit_inbox: ok (the refill left %u blocks over a limit of %u)\n", over, lim);
  return 0;
}
