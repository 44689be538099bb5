/* The central lock-free freelists (seed phase 6.26, test_pool_lockfree),
 * tested through their own API on a private list, with real hakmem blocks
 * (pop checks every link against the segment map):
 *  - push / batch push / pop batch sizes / take_all, count == list length;
 *  - ABA: a head that was popped and pushed back carries a new tag, so a
 *    slow popper's CAS with the old head word fails;
 *  - chains (the small classes' central lists): a pushed chain comes back
 *    whole, pops take whole chains up to max and split one that would pass
 *    2 * max, the last block is reported, take_all gets both stacks;
 *  - concurrent push/pop from several threads, plain and chains: no block
 *    lost or duplicated;
 *  - the remote inbox: real remote frees land in the owner's inbox (count
 *    in the low 4 bits, at most 15), the 16th moves the batch to central,
 *    and the owner's next refill drains it (hak__drain_remote_lockfree). */
#define _GNU_SOURCE
#include "pool_test.h"

/* The head word's layout, as documented in internal.h / freelist.c:
 * block address >> 4 in the low 43 bits, a generation tag above. */
#define FL_PTR_BITS 43
#define FL_PTR_MASK ((UINT64_C(1) << FL_PTR_BITS) - 1)
static void* head_ptr(uint64_t w) { return (void*)(uintptr_t)((w & FL_PTR_MASK) << 4); }
static uint64_t head_tag(uint64_t w) { return w >> FL_PTR_BITS; }
static uint64_t head_word(hak_freelist_t* fl) { return atomic_load(&fl->head); }
/* The A/B build with a mutex (make CENTRAL_MUTEX=1) keeps a plain head and
 * no chain stack: no tag to check, no ABA to guard against, no chains. */
#ifdef HAK_CENTRAL_MUTEX
#define TAGGED 0
#else
#define TAGGED 1
#endif
static int64_t fl_count(hak_freelist_t* fl) { return atomic_load(&fl->count); }

#define BLK 2560   /* blocks for the private lists; never the inbox class */

static uint32_t chain_len(void* p) {
  uint32_t n = 0;
  for (; p; p = *(void**)p) n++;
  return n;
}
static void* chain_last(void* p) {
  while (*(void**)p) p = *(void**)p;
  return p;
}

static hak_freelist_t fl __attribute__((aligned(64)));

//! Single-thread API semantics.
static void test_api(void) {
  hak_heap_t* h = pt_heap();
  enum { N = 100 };
  void* b[N];
  for (int i = 0; i < N; i++) CHECK((b[i] = A_MALLOC(BLK)), "malloc failed");
  hak__freelist_init(&fl);
  uint32_t got = 99;
  CHECK(head_word(&fl) == 0 && fl_count(&fl) == 0, "init: head %llx count %lld",
        (unsigned long long)head_word(&fl), (long long)fl_count(&fl));
  CHECK(hak__freelist_pop_lockfree(&fl, 8, &got, h) == NULL && got == 0, "pop of an empty list: got %u", got);

  hak__freelist_push_lockfree(&fl, b[0], h);
  uint64_t w = head_word(&fl);
  CHECK(head_ptr(w) == b[0] && (!TAGGED || head_tag(w) == 1) && fl_count(&fl) == 1, "push: head %p tag %llu count %lld",
        head_ptr(w), (unsigned long long)head_tag(w), (long long)fl_count(&fl));

  /* a chain b[1] -> ... -> b[50] in one CAS */
  for (int i = 1; i < 50; i++) *(void**)b[i] = b[i + 1];
  *(void**)b[50] = NULL;
  hak__freelist_push_batch_lockfree(&fl, b[1], b[50], 50, h);
  w = head_word(&fl);
  CHECK(head_ptr(w) == b[1] && (!TAGGED || head_tag(w) == 2), "batch push: head %p tag %llu", head_ptr(w),
        (unsigned long long)head_tag(w));
  CHECK(fl_count(&fl) == 51 && chain_len(head_ptr(w)) == 51, "batch push: count %lld, length %u",
        (long long)fl_count(&fl), chain_len(head_ptr(w)));
  void* all = hak__freelist_take_all(&fl, &got);
  CHECK(all == b[1] && got == 51 && chain_len(all) == 51 && fl_count(&fl) == 0 && head_ptr(head_word(&fl)) == NULL,
        "take_all: got %u, length %u, count left %lld", got, chain_len(all), (long long)fl_count(&fl));
  CHECK(chain_last(all) == b[0], "take_all: the chain does not end at the first block pushed");

  /* 100 singles, then pops of 16: LIFO, exact sizes, NULL-terminated */
  for (int i = 0; i < N; i++) hak__freelist_push_lockfree(&fl, b[i], h);
  CHECK(fl_count(&fl) == N, "count %lld after %d pushes", (long long)fl_count(&fl), N);
  int next = N - 1;
  for (int k = 0; k < 7; k++) {
    void* ch = hak__freelist_pop_lockfree(&fl, 16, &got, h);
    uint32_t want = k < 6 ? 16 : 4;
    CHECK(ch && got == want && chain_len(ch) == want, "pop %d: got %u, chain %u, want %u", k, got,
          ch ? chain_len(ch) : 0, want);
    for (void* p = ch; p; p = *(void**)p, next--) CHECK(p == b[next], "pop %d: not LIFO at %d", k, next);
    CHECK(fl_count(&fl) == N - 16 * k - (int)want, "count %lld after pop %d", (long long)fl_count(&fl), k);
  }
  CHECK(hak__freelist_pop_lockfree(&fl, 16, &got, h) == NULL && got == 0 && fl_count(&fl) == 0, "list not empty");
  for (int i = 0; i < N; i++) A_FREE(b[i]);
}

//! ABA: a slow popper read head (A, tag t) and next B.  Meanwhile A and B
//! are popped and A is pushed back: head is A again, but with a newer tag,
//! so the slow popper's CAS (which would install the stale B) must fail.
static void test_aba(void) {
  if (!TAGGED) {
    INFO("ABA: the mutex build's list has no tag (its lock rules ABA out)");
    return;
  }
  hak_heap_t* h = pt_heap();
  void *a = A_MALLOC(BLK), *b = A_MALLOC(BLK), *c = A_MALLOC(BLK);
  hak__freelist_init(&fl);
  hak__freelist_push_lockfree(&fl, c, h);
  hak__freelist_push_lockfree(&fl, b, h);
  hak__freelist_push_lockfree(&fl, a, h);          /* a -> b -> c */
  uint64_t old = head_word(&fl);
  void* stale_next = *(void**)head_ptr(old);
  CHECK(head_ptr(old) == a && stale_next == b, "setup: head %p next %p", head_ptr(old), stale_next);

  uint32_t got;
  CHECK(hak__freelist_pop_lockfree(&fl, 1, &got, h) == a, "pop A");
  CHECK(hak__freelist_pop_lockfree(&fl, 1, &got, h) == b, "pop B");
  hak__freelist_push_lockfree(&fl, a, h);          /* a -> c: A is back on top */
  uint64_t now = head_word(&fl);
  CHECK(head_ptr(now) == head_ptr(old), "the ABA situation was not built: head %p", head_ptr(now));
  CHECK(head_tag(now) != head_tag(old), "head returned to A with the same tag %llu: ABA is possible",
        (unsigned long long)head_tag(now));

  /* the slow popper's CAS, exactly as pop makes it */
  uint64_t expect = old;
  uint64_t stale = ((uint64_t)(uintptr_t)stale_next >> 4) | ((head_tag(old) + 1) << FL_PTR_BITS);
  int won = atomic_compare_exchange_strong(&fl.head, &expect, stale);
  CHECK(!won, "the stale CAS succeeded: B (in use) would be on the list");
  void* all = hak__freelist_take_all(&fl, &got);
  CHECK(all == a && got == 2 && *(void**)a == c && *(void**)c == NULL, "list after ABA: %u blocks", got);
  A_FREE(a); A_FREE(b); A_FREE(c);
}

//! Chains: whole batches, the 2 * max split, last, take_all of both stacks.
static void test_chains(void) {
  if (!TAGGED) {
    INFO("chains: the mutex build has none (a chain is a plain batch under its lock)");
    return;
  }
  hak_heap_t* h = pt_heap();
  enum { N = 200 };
  void* b[N];
  for (int i = 0; i < N; i++) {
    CHECK((b[i] = A_MALLOC(BLK)), "malloc failed");
    ((uint64_t*)b[i])[2] = (uint64_t)i;
  }
  hak__freelist_init(&fl);
  uint32_t got = 99;
  void* last = b[0];
  CHECK(hak__freelist_empty(&fl) && hak__freelist_pop_chains(&fl, 8, &got, &last, h) == NULL && got == 0 &&
        last == NULL, "pop of empty chains: got %u", got);
  /* chains of 10 (b[0..9]), 10 (b[10..19]) and 100 (b[20..119]); the
   * pusher's last link is cleared even if it pointed on (a list's prefix) */
  int starts[] = {0, 10, 20}, lens[] = {10, 10, 100};
  for (int c = 0; c < 3; c++) {
    for (int i = 0; i < lens[c]; i++) *(void**)b[starts[c] + i] = b[starts[c] + i + 1];
    hak__freelist_push_chain(&fl, b[starts[c]], b[starts[c] + lens[c] - 1], (uint32_t)lens[c], h);
  }
  CHECK(fl_count(&fl) == 120 && !hak__freelist_empty(&fl), "count %lld after 3 chains", (long long)fl_count(&fl));
  CHECK(*(void**)b[119] == NULL, "push_chain left the last link pointing on");
  /* max 16: the top chain (100) would pass 32, so 16 of it are split off */
  void* ch = hak__freelist_pop_chains(&fl, 16, &got, &last, h);
  CHECK(ch == b[20] && got == 16 && chain_len(ch) == 16 && last == b[35] && chain_last(ch) == b[35],
        "split pop: %u blocks, first id %llu", got, (unsigned long long)((uint64_t*)ch)[2]);
  CHECK(fl_count(&fl) == 104, "count %lld after the split", (long long)fl_count(&fl));
  /* max 90: the rest of that chain (84) whole, then one more (10) */
  void* ch2 = hak__freelist_pop_chains(&fl, 90, &got, &last, h);
  CHECK(ch2 == b[36] && got == 94 && chain_len(ch2) == 94 && last == chain_last(ch2) && last == b[19],
        "whole chains: %u blocks, last id %llu", got, (unsigned long long)((uint64_t*)last)[2]);
  /* a plain push beside the chains; take_all gets both */
  hak__freelist_push_lockfree(&fl, b[150], h);
  void* all = hak__freelist_take_all(&fl, &got);
  CHECK(got == 11 && chain_len(all) == 11 && fl_count(&fl) == 0 && hak__freelist_empty(&fl),
        "take_all: %u blocks, list length %u", got, chain_len(all));
  /* every block of 0..119 and 150 exactly once over the three chains */
  unsigned char seen[N] = {0};
  void* parts[] = {ch, ch2, all};
  unsigned total = 0;
  for (int k = 0; k < 3; k++)
    for (void* p = parts[k]; p; p = *(void**)p, total++) {
      uint64_t id = ((uint64_t*)p)[2];
      CHECK(id < N && !seen[id] && (id < 120 || id == 150), "block id %llu foreign or twice", (unsigned long long)id);
      seen[id] = 1;
    }
  CHECK(total == 121, "%u blocks of 121", total);
  /* only the plain stack: pop_chains falls back to it, and reports last */
  for (int i = 160; i < 170; i++) *(void**)b[i] = i + 1 < 170 ? b[i + 1] : NULL;
  hak__freelist_push_batch_lockfree(&fl, b[160], b[169], 10, h);
  ch = hak__freelist_pop_chains(&fl, 4, &got, &last, h);
  CHECK(ch == b[160] && got == 4 && last == b[163] && *(void**)last == NULL, "fallback pop: %u blocks", got);
  all = hak__freelist_take_all(&fl, &got);
  CHECK(got == 6 && all == b[164], "fallback rest: %u", got);
  /* a small chain (4) on top of a long one (20), max 6: the long one would
   * pass 12, so 2 of it are split off, after the 4 (6 in all, not 4) */
  for (int i = 170; i < 194; i++) *(void**)b[i] = i + 1 < 194 ? b[i + 1] : NULL;
  hak__freelist_push_chain(&fl, b[170], b[189], 20, h);
  hak__freelist_push_chain(&fl, b[190], b[193], 4, h);
  ch = hak__freelist_pop_chains(&fl, 6, &got, &last, h);
  CHECK(ch == b[190] && got == 6 && chain_len(ch) == 6 && last == b[171] && chain_last(ch) == b[171] &&
        fl_count(&fl) == 18, "a split below a whole chain: %u blocks, count %lld", got, (long long)fl_count(&fl));
  all = hak__freelist_take_all(&fl, &got);
  CHECK(got == 18 && all == b[172] && chain_len(all) == 18, "split rest: %u", got);
  for (int i = 0; i < N; i++) A_FREE(b[i]);
  /* a chain longer than 1024 is pushed in pieces (a popper splitting one
   * chain holds all of it meanwhile): a pop for 1500 takes two pieces,
   * where one whole chain of 3000 would have come back entire */
  enum { M = 3000 };
  void** m = pt_map(M * sizeof(void*));
  for (int i = 0; i < M; i++) CHECK((m[i] = A_MALLOC(BLK)), "malloc failed");
  for (int i = 0; i < M; i++) *(void**)m[i] = i + 1 < M ? m[i + 1] : NULL;
  hak__freelist_push_chain(&fl, m[0], m[M - 1], M, h);
  ch = hak__freelist_pop_chains(&fl, 1500, &got, &last, h);
  CHECK(got >= 1500 && got < M && chain_len(ch) == got && chain_last(ch) == last,
        "pop 1500 of a pushed chain of %d: got %u", M, got);
  all = hak__freelist_take_all(&fl, &got);
  CHECK(got + chain_len(ch) == M && chain_len(all) == got && fl_count(&fl) == 0, "rest %u", got);
  for (int i = 0; i < M; i++) A_FREE(m[i]);
  munmap(m, M * sizeof(void*));
  printf("  chains: split at 2 x max, whole chains, last, take_all of both stacks, long chains in pieces\n");
}

/* ---- concurrent push/pop -------------------------------------------------- */
#define CT_STASH 64
typedef struct {
  pthread_t t;
  unsigned id;
  long ops;
  void* stash[CT_STASH];
  unsigned n;
  uint64_t retries, cas;
} ct_arg_t;
static pthread_barrier_t ct_bar;
static int ct_chains;   /* 1: push_chain / pop_chains */

static void* ct_main(void* arg) {
  ct_arg_t* a = arg;
  hak_heap_t* h = pt_heap();
  uint64_t r0 = PT_TSTAT(h, cas_retry), o0 = PT_TSTAT(h, cas_ops);
  uint64_t rng = 0x9E3779B97F4A7C15ull * (a->id + 1);
  pthread_barrier_wait(&ct_bar);
  for (long i = 0; i < a->ops; i++) {
    uint64_t r = hk_rand(&rng);
    unsigned op = (unsigned)(r % 4);
    if (a->n == 0) op = 0;
    if (a->n > CT_STASH - 32) op = 1 + (unsigned)(r % 2);
    if (op == 0 || op == 3) {                      /* pop a batch (or one) */
      uint32_t max = op == 3 ? 1 : 1 + (uint32_t)((r >> 8) % 16), got;
      void* last = NULL;
      void* ch = ct_chains ? hak__freelist_pop_chains(&fl, max, &got, &last, h)
                           : hak__freelist_pop_lockfree(&fl, max, &got, h);
      uint32_t most = ct_chains ? 2 * max : max;
      CHECK(got <= most && (ch != NULL) == (got != 0), "pop max %u returned %u", max, got);
      CHECK(a->n + got <= CT_STASH, "pop max %u returned %u: stash overflow", max, got);
      uint32_t len = 0;
      for (void* p = ch; p; p = *(void**)p) { a->stash[a->n++] = p; len++; }
      CHECK(len == got, "pop said %u blocks, the chain has %u", got, len);
      CHECK(!ct_chains || !ch || last == a->stash[a->n - 1], "pop_chains: wrong last block");
    } else if (op == 1) {                           /* push one */
      void* p = a->stash[--a->n];
      if (ct_chains) hak__freelist_push_chain(&fl, p, p, 1, h);
      else hak__freelist_push_lockfree(&fl, p, h);
    } else {                                        /* push a chain of up to 8 */
      unsigned k = 1 + (unsigned)((r >> 8) % 8);
      if (k > a->n) k = a->n;
      void* first = a->stash[a->n - 1];
      for (unsigned j = 0; j + 1 < k; j++) *(void**)a->stash[a->n - 1 - j] = a->stash[a->n - 2 - j];
      void* last = a->stash[a->n - k];
      *(void**)last = NULL;
      a->n -= k;
      if (ct_chains) hak__freelist_push_chain(&fl, first, last, k, h);
      else hak__freelist_push_batch_lockfree(&fl, first, last, k, h);
    }
  }
  a->retries = PT_TSTAT(h, cas_retry) - r0;
  a->cas = PT_TSTAT(h, cas_ops) - o0;
  return NULL;
}

static void test_concurrent(int chains) {
  ct_chains = chains;
  enum { T = 4 };
  unsigned nblk = 2048;
  void** blk = pt_map(nblk * sizeof(void*));
  for (unsigned i = 0; i < nblk; i++) {
    CHECK((blk[i] = A_MALLOC(BLK)), "malloc failed");
    ((uint64_t*)blk[i])[2] = i;                     /* the id, beside the link word */
  }
  hak__freelist_init(&fl);
  for (unsigned i = 0; i + 1 < nblk; i++) *(void**)blk[i] = blk[i + 1];
  *(void**)blk[nblk - 1] = NULL;
  if (chains) {                                    /* 64 chains of 32 */
    for (unsigned i = 0; i < nblk; i += 32) {
      *(void**)blk[i + 31] = NULL;
      hak__freelist_push_chain(&fl, blk[i], blk[i + 31], 32, NULL);
    }
  } else {
    hak__freelist_push_batch_lockfree(&fl, blk[0], blk[nblk - 1], nblk, NULL);
  }
  CHECK(fl_count(&fl) == (int64_t)nblk, "count %lld", (long long)fl_count(&fl));

  static ct_arg_t a[T];
  long ops = 200000 / hk_scale();
#ifdef REL_TSAN
  ops /= 4;
#endif
  pthread_barrier_init(&ct_bar, NULL, T);
  for (unsigned i = 0; i < T; i++) {
    a[i].id = i; a[i].ops = ops; a[i].n = 0;
    CHECK(pthread_create(&a[i].t, NULL, ct_main, &a[i]) == 0, "pthread_create");
  }
  uint64_t retries = 0, cas = 0;
  for (unsigned i = 0; i < T; i++) {
    pthread_join(a[i].t, NULL);
    retries += a[i].retries;
    cas += a[i].cas;
  }
  pthread_barrier_destroy(&ct_bar);
  /* count == walked length, then every block exactly once */
  int64_t cnt = fl_count(&fl);
  uint32_t got;
  void* all = hak__freelist_take_all(&fl, &got);
  CHECK((int64_t)got == cnt && chain_len(all) == got && fl_count(&fl) == 0, "count %lld, list length %u",
        (long long)cnt, got);
  unsigned char* seen = pt_map(nblk);
  unsigned total = 0;
  for (void* p = all; p; p = *(void**)p, total++) {
    uint64_t id = ((uint64_t*)p)[2];
    CHECK(id < nblk && blk[id] == p && !seen[id], "block %p (id %llu) foreign or duplicated", p, (unsigned long long)id);
    seen[id] = 1;
  }
  for (unsigned i = 0; i < T; i++)
    for (unsigned j = 0; j < a[i].n; j++, total++) {
      uint64_t id = ((uint64_t*)a[i].stash[j])[2];
      CHECK(id < nblk && !seen[id], "stash block id %llu duplicated", (unsigned long long)id);
      seen[id] = 1;
    }
  CHECK(total == nblk, "%u blocks found of %u: lost blocks", total, nblk);
  printf("  concurrent%s: %d threads x %ld ops, %llu CAS, %llu retries (%.3f%%), %u blocks all accounted for\n", chains ? " (chains)" : "", T, ops,
         (unsigned long long)cas, (unsigned long long)retries, cas ? 100.0 * (double)retries / (double)cas : 0.0, nblk);
  for (unsigned i = 0; i < nblk; i++) A_FREE(blk[i]);
  munmap(blk, nblk * sizeof(void*));
  munmap(seen, nblk);
}

/* ---- remote frees and the inbox -------------------------------------------- */
#define IB_SIZE 1536      /* 41 blocks per page; used by nothing else in this test */
typedef struct { void** p; unsigned from, to; } rf_arg_t;

static void* rf_main(void* arg) {
  rf_arg_t* a = arg;
  for (unsigned i = a->from; i < a->to; i++) A_FREE(a->p[i]);
  return NULL;
}
//! Thread B: frees p[from, to) and exits.
static void remote_free(void** p, unsigned from, unsigned to) {
  rf_arg_t a = {p, from, to};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, rf_main, &a) == 0, "pthread_create");
  pthread_join(t, NULL);
}

static void* inbox_main(void* arg) {
  void** out = arg;
  hak_heap_t* h = pt_heap();
  unsigned c = pt_cls(IB_SIZE);
  PoolTLSBin* b = pt_bin(h, c);
  _Atomic uintptr_t* box = &h->inbox[c];
  hak__heap_flush(h);                              /* no larger class to borrow from */
  CHECK(hak__small_cached_blocks(c) == 0, "class %d has central blocks: not a fresh page", IB_SIZE);
  void* p[20];
  for (int i = 0; i < 20; i++) CHECK((p[i] = A_MALLOC(IB_SIZE)), "malloc failed");
  hak_page_t* pg = hak__page_of((uintptr_t)p[0]);
  for (int i = 0; i < 20; i++)
    CHECK(hak__page_of((uintptr_t)p[i]) == pg && hak__page_owner(pg) == h->token,
          "block %d (%p) not on this thread's active page: page %p/%p owner %#lx, token %#lx, carved %u",
          i, p[i], (void*)hak__page_of((uintptr_t)p[i]), (void*)pg, (unsigned long)hak__page_owner(pg),
          (unsigned long)h->token, pg->capacity);

  /* one remote free: the block is the inbox, count 1 */
  remote_free(p, 0, 1);
  uintptr_t v = atomic_load(box);
  CHECK((void*)(v & ~(uintptr_t)HAK_INBOX_MAX) == p[0] && (v & HAK_INBOX_MAX) == 1, "inbox %#lx after one remote free",
        (unsigned long)v);
  remote_free(p, 1, 15);
  v = atomic_load(box);
  void* ch = (void*)(v & ~(uintptr_t)HAK_INBOX_MAX);
  CHECK((v & HAK_INBOX_MAX) == 15 && chain_len(ch) == 15, "inbox count %lu, chain %u after 15 remote frees",
        (unsigned long)(v & HAK_INBOX_MAX), chain_len(ch));
  uint64_t cen0 = hak__small_cached_blocks(c);
  remote_free(p, 15, 16);                          /* the 16th: all go to central */
  CHECK(atomic_load(box) == 0, "inbox %#lx after the 16th remote free", (unsigned long)atomic_load(box));
  CHECK(hak__small_cached_blocks(c) == cen0 + 16, "central gained %llu blocks, expected 16",
        (unsigned long long)(hak__small_cached_blocks(c) - cen0));

  /* the drain API: whole inbox in one exchange, count from the low bits */
  remote_free(p, 16, 19);
  uint64_t d0 = PT_TSTAT(h, drains), db0 = PT_TSTAT(h, drained_blocks);
  uint32_t n;
  ch = hak__drain_remote_lockfree(h, c, &n);
  CHECK(n == 3 && chain_len(ch) == 3 && atomic_load(box) == 0, "drain: n %u chain %u", n, ch ? chain_len(ch) : 0);
  CHECK(ch == p[18] && *(void**)p[18] == p[17] && *(void**)p[17] == p[16], "drain: not the freed blocks, LIFO");
  CHECK(PT_TSTAT(h, drains) == d0 + 1 && PT_TSTAT(h, drained_blocks) == db0 + 3, "drain counters");
  for (int i = 16; i < 19; i++) {      /* ours again: as if handed out, then freed */
    ((void**)p[i])[1] = NULL;
    A_FREE(p[i]);
  }

  /* the owner's next refill drains the inbox before anything else */
  void* q[64];
  unsigned nq = 0;
  while (hak__bin_count(b)) CHECK(nq < 64 && (q[nq++] = A_MALLOC(IB_SIZE)), "malloc failed");
  CHECK(nq >= 5 && hak__page_owner(hak__page_of((uintptr_t)q[0])) == h->token, "%u list blocks", nq);
  for (unsigned i = 0; i < 5; i++) CHECK(hak__page_of((uintptr_t)q[i]) == pg, "list block %u from another page", i);
  remote_free(q, 0, 5);
  CHECK((atomic_load(box) & HAK_INBOX_MAX) == 5, "inbox count %lu", (unsigned long)(atomic_load(box) & HAK_INBOX_MAX));
  uint64_t m0 = PT_CSTAT(h, miss, c), pop0 = PT_CSTAT(h, central_pop, c);
  d0 = PT_TSTAT(h, drains);
  void* x = A_MALLOC(IB_SIZE);
  int mine = 0;
  for (unsigned i = 0; i < 5; i++) mine |= x == q[i];
  CHECK(mine && hak__bin_count(b) == 4 && atomic_load(box) == 0, "refill did not drain the inbox (count %u)", hak__bin_count(b));
  CHECK(PT_TSTAT(h, drains) == d0 + 1 && PT_CSTAT(h, miss, c) == m0 && PT_CSTAT(h, central_pop, c) == pop0,
        "the refill went past the inbox");
  A_FREE(x);
  for (unsigned i = 5; i < nq; i++) A_FREE(q[i]);
  out[0] = p[19];                                 /* outlives this thread */
  return NULL;
}

static void test_inbox(void) {
  void* left[1];
  pthread_t t;
  CHECK(pthread_create(&t, NULL, inbox_main, left) == 0, "pthread_create");
  pthread_join(t, NULL);
  /* the owner exited: its pages are ownerless, the free stays local */
  hak_page_t* pg = hak__page_of((uintptr_t)left[0]);
  CHECK(hak__page_owner(pg) == HAK_TOKEN_NONE, "page of an exited thread still owned");
  A_FREE(left[0]);
}

int main(void) {
  hk_begin("test_pool_lockfree", 120);
  printf("test_pool_lockfree (%s)\n", REL_API_NAME);
  HK_STEP(test_api());
  HK_STEP(test_aba());
  HK_STEP(test_chains());
  HK_STEP(test_concurrent(0));
  HK_STEP(test_concurrent(1));
  HK_STEP(test_inbox());
  printf("test_pool_lockfree: ok\n");
  return 0;
}
