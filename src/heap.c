/* Per-thread heaps.  A thread's heap pointer starts at the empty sentinel;
 * the first slow path makes (or recycles) a real heap.  At thread exit a
 * pthread key destructor hands the caches back to the central lists and
 * parks the heap for the next new thread, which inherits its pages.
 * Threads past their own teardown (later TLS destructors) share one
 * locked heap. */
#define _GNU_SOURCE
#include "internal.h"
#include "policy.h"
#include "valgrind.h"
#include "link.h"
#include <string.h>

__thread hak_heap_t* hak__tls_heap __attribute__((tls_model("initial-exec"))) = &hak__empty_heap;
static __thread int heap_tls_dead __attribute__((tls_model("initial-exec")));
/* HAKMEM_SECURE, HAKMEM_VALGRIND: the heap lives here and hak__tls_heap stays the sentinel,
 * so every call misses the fast path and takes the checked generic path */
static __thread hak_heap_t* heap_tls_secure __attribute__((tls_model("initial-exec")));
/* its bins' zero block-start constants accept any pointer: the zero
 * limits are what send every free to the generic path */
hak_heap_t hak__empty_heap = { .token = HAK_TOKEN_SENTINEL, .ntoken = 0 };
_Atomic uint64_t hak__threads_started, hak__threads_exited;

static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER;
static hak_heap_t* heap_all;        /* every heap, under heap_lock */
static hak_heap_t* heap_free;       /* recycled, under heap_lock */
static uint32_t heap_next_id;
/* ids are never reused (heaps are recycled whole), so this bounds the heaps
 * ever made, that is the threads alive at once; 64 Ki, not the 1 Mi a token
 * could name: the table counts against RLIMIT_AS (ulimit -v) */
#define HEAP_IDS ((uint32_t)1 << 16)
_Static_assert(HEAP_IDS <= HAK_HEAP_ID_MAX, "ids must fit a token");
static hak_heap_t* heap_by_id[HEAP_IDS];
static pthread_key_t heap_key;
static hak_heap_t* heap_global;     /* for threads past teardown */
static pthread_mutex_t heap_global_lock = PTHREAD_MUTEX_INITIALIZER;

//! Sets per-class limits: caches hold about the same bytes in every class.
static void heap_setup(hak_heap_t* h) {
  hak__bin_setup(h);
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++) {
    uint32_t lim = (uint32_t)((1024 * 1024) / hak__large_size[c]);
    h->large[c].limit = lim < 1 ? 1 : lim > HAK_LARGE_TLS_MAX ? HAK_LARGE_TLS_MAX : lim;
  }
  if (hak__opt.valgrind) hak__vg_hide_heap(h);
}

//! A new heap from the OS, or a recycled one.
static hak_heap_t* heap_make(void) {
  pthread_mutex_lock(&heap_lock);
  hak_heap_t* h = heap_free;
  if (h) heap_free = h->next_free;
  pthread_mutex_unlock(&heap_lock);
  if (h) return h;      /* its token was renewed when its thread exited */
  h = hak__os_map(sizeof(hak_heap_t));
  if (!h) return NULL;
  heap_setup(h);
  pthread_mutex_lock(&heap_lock);
  if (heap_next_id >= HEAP_IDS) {                 /* 64 Ki threads alive at once */
    pthread_mutex_unlock(&heap_lock);
    hak__os_unmap(h, sizeof(hak_heap_t));
    return NULL;
  }
  h->id = heap_next_id++;
  h->token = hak__token(h->id << HAK_TOKEN_EPOCH_BITS);
  h->ntoken = ~h->token;
  __atomic_store_n(&heap_by_id[h->id], h, __ATOMIC_RELEASE);
  h->next_all = heap_all;
  heap_all = h;
  pthread_mutex_unlock(&heap_lock);
  return h;
}

//! Hands everything a heap caches to the central lists.
void hak__heap_flush(hak_heap_t* h) {
  hak__bin_flush(h);
  hak__l25_flush(h);
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) {
    uint32_t n;
    void* chain = hak__drain_remote_lockfree(h, c, &n);
    if (!chain) continue;
    hak__small_central_push(h, c, chain, hak__link_last(chain, (int)c, NULL), n);
  }
}

//! A new incarnation: pages carrying the old token become adoptable, and
//! remote frees stop going to this heap's inbox.
static void heap_renew_token(hak_heap_t* h) {
  uint32_t epoch = (hak__token_key(h->token) + 1) & ((1u << HAK_TOKEN_EPOCH_BITS) - 1);
  uintptr_t nt = hak__token(h->id << HAK_TOKEN_EPOCH_BITS | epoch);
  h->ntoken = ~nt;
  __atomic_store_n(&h->token, nt, __ATOMIC_RELEASE);
}

//! The heap a token names (its incarnation may be over: check the token).
hak_heap_t* hak__heap_of_token(uintptr_t t) {
  if (t == HAK_TOKEN_NONE) return NULL;
  uint32_t id = hak__token_key(t) >> HAK_TOKEN_EPOCH_BITS;
  return __atomic_load_n(&heap_by_id[id], __ATOMIC_ACQUIRE);
}

//! Thread exit: flush, retire active pages, merge stats, park the heap.
static void heap_exit(void* arg) {
  hak_heap_t* h = arg;
  if (!h || h == &hak__empty_heap) return;
  hak__vg_enter();
  hak__secure_flush(h);
  hak__heap_flush(h);
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) hak__small_page_retire(h, c);
  heap_renew_token(h);
  /* frees that raced with the flush */
  hak__heap_flush(h);
  /* the next thread starts from the base limits: an allocating thread's
   * grown Tiny limits (512 KiB a class) on a heap recycled for a thread
   * that only frees held 7 MB from reuse in remote_burst */
  hak__bin_reset(h);
  hak__stats_merge(h);
  hak__tls_heap = &hak__empty_heap;
  heap_tls_secure = NULL;
  heap_tls_dead = 1;
  atomic_fetch_add(&hak__threads_exited, 1);
  pthread_mutex_lock(&heap_lock);
  h->next_free = heap_free;
  heap_free = h;
  pthread_mutex_unlock(&heap_lock);
  hak__vg_leave();
}

hak_heap_t* hak__heap_get(void) {
  hak_heap_t* h = hak__tls_heap;
  if (h != &hak__empty_heap) return h;
  hak__init_once();
  if (heap_tls_secure) return heap_tls_secure;
  if (heap_tls_dead) return NULL;
  h = heap_make();
  if (!h) return NULL;
  if (hak__opt.secure || hak__opt.valgrind) heap_tls_secure = h;
  else hak__tls_heap = h;
  pthread_setspecific(heap_key, h);
  atomic_fetch_add(&hak__threads_started, 1);
  if (hak__opt.learn) hak__bg_kick();     /* the learner starts on first use */
  return h;
}

//! The calling thread's heap if it has one (for counters), else NULL.
hak_heap_t* hak__heap_current(void) {
  hak_heap_t* h = hak__tls_heap;
  return h != &hak__empty_heap ? h : heap_tls_secure;
}

//! Threads past teardown share one heap under a lock.
hak_heap_t* hak__global_heap_lock(void) {
  pthread_mutex_lock(&heap_global_lock);
  hak__bg_hold++;
  if (!heap_global) {
    heap_global = heap_make();
    if (!heap_global) return NULL;   /* still locked: every caller unlocks */
  }
  return heap_global;
}
void hak__global_heap_unlock(void) {
  hak__bg_hold--;
  pthread_mutex_unlock(&heap_global_lock);
}

void hak__heap_init(void) { pthread_key_create(&heap_key, heap_exit); }

void hak__heap_each(void (*fn)(hak_heap_t*, void*), void* arg) {
  pthread_mutex_lock(&heap_lock);
  for (hak_heap_t* h = heap_all; h; h = h->next_all) fn(h, arg);
  pthread_mutex_unlock(&heap_lock);
}

//! The same over the heaps made so far, without the lock held while fn
//! runs (fn may wait on another thread): heaps are never freed, and a
//! heap's next_all never changes once it is on the list.
void hak__heap_each_unlocked(void (*fn)(hak_heap_t*, void*), void* arg) {
  pthread_mutex_lock(&heap_lock);
  hak_heap_t* first = heap_all;
  pthread_mutex_unlock(&heap_lock);
  for (hak_heap_t* h = first; h; h = h->next_all) fn(h, arg);
}

//! Blocks pushed to parked heaps' inboxes after they exited.
void hak__heaps_drain_dead(hak_heap_t* self) {
  pthread_mutex_lock(&heap_lock);
  hak__bg_hold++;
  for (hak_heap_t* h = heap_free; h; h = h->next_free)
    for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++) {
      uint32_t n;
      uintptr_t v = atomic_exchange(&h->inbox[c], 0);
      void* ch = (void*)(v & ~(uintptr_t)HAK_INBOX_MAX);
      if (!ch) continue;
      n = (uint32_t)(v & HAK_INBOX_MAX);
      hak__small_central_push(self, c, ch, hak__link_last(ch, (int)c, NULL), n);
    }
  hak__bg_hold--;
  pthread_mutex_unlock(&heap_lock);
}

void hak__heap_fork_prepare(void) {
  pthread_mutex_lock(&heap_global_lock);
  pthread_mutex_lock(&heap_lock);
}
void hak__heap_fork_parent(void) {
  pthread_mutex_unlock(&heap_lock);
  pthread_mutex_unlock(&heap_global_lock);
}
//! In the child only this thread exists: other heaps are orphaned (their
//! caches may be mid-update, so they are neither flushed nor recycled).
void hak__heap_fork_child(void) {
  pthread_mutex_init(&heap_lock, NULL);
  pthread_mutex_init(&heap_global_lock, NULL);
  hak_heap_t* me = hak__heap_current();   /* not hak__tls_heap: the sentinel in secure and valgrind modes */
  atomic_store(&hak__anon_pops, 0);
  for (hak_heap_t* h = heap_all; h; h = h->next_all) {
    if (h == me) continue;
    atomic_store(&h->in_pop, 0);      /* its thread was mid-pop in the parent: none exists here */
    int was_free = 0;
    for (hak_heap_t* f = heap_free; f; f = f->next_free) if (f == h) { was_free = 1; break; }
    if (!was_free && h != heap_global) heap_renew_token(h);
  }
}
