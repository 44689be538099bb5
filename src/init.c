/* Process start, fork and exit.  Init never recurses into itself: the
 * state every allocation needs (options, cookie, central lists) is ready
 * before anything that might call malloc (pthread_atfork) runs, and a
 * recursive call from that step proceeds. */
#define _GNU_SOURCE
#include "internal.h"
#include "policy.h"
#include "valgrind.h"
#include "link.h"
#include <sys/auxv.h>
#include <string.h>

_Atomic int hak__init_state;
static __thread int init_running __attribute__((tls_model("initial-exec")));

void hak__learner_fork_child(void) __attribute__((weak));
void hak__learner_stop(void) __attribute__((weak));

static void init_fork_prepare(void) {
  hak__vg_fork_prepare();
  hak__heap_fork_prepare();
  hak__huge_lock();
  hak__l25_lock();
  hak__segment_lock();
}
static void init_fork_parent(void) {
  hak__segment_unlock();
  hak__l25_unlock();
  hak__huge_unlock();
  hak__heap_fork_parent();
  hak__vg_fork_parent();
}
static void init_fork_child(void) {
  hak__vg_fork_child();
  hak__segment_fork_child();
  hak__l25_fork_child();
  hak__huge_fork_child();
  hak__small_fork_child();
  hak__freelist_fork_child();
  hak__heap_fork_child();
  hak__stats_fork_child();
  hak__bg_fork_child();
  if (hak__learner_fork_child) hak__learner_fork_child();
}

void hak__init(void) {
  if (atomic_load_explicit(&hak__init_state, memory_order_acquire) == 2 || init_running) return;
  int expect = 0;
  if (!atomic_compare_exchange_strong(&hak__init_state, &expect, 1)) {
    unsigned n = 0;
    while (atomic_load_explicit(&hak__init_state, memory_order_acquire) != 2) hak__os_backoff(&n);
    return;
  }
  init_running = 1;
  hak__classes_init();              /* first: the inline path trusts the table once a heap exists */
  hak__os_clock_init();
  hak__options_init();
  hak__vg_init();
  const unsigned char* rnd = (const unsigned char*)getauxval(AT_RANDOM);
  uintptr_t ck = (uintptr_t)hak__os_clock_ns() * 0x9E3779B97F4A7C15ull;
  if (rnd) { uintptr_t r; memcpy(&r, rnd + 8, sizeof r); ck ^= r; }
  hak__cookie = ck | 1;
  hak__link_init();                 /* HAKMEM_SECURE: the free-list link key */
  hak__policy_init();
  hak__small_init();
  hak__l25_init();
  hak__heap_init();
  hak__stats_init();
  pthread_atfork(init_fork_prepare, init_fork_parent, init_fork_child);
  atomic_store_explicit(&hak__init_state, 2, memory_order_release);
  init_running = 0;
  if (hak__opt.verbose) hak__options_print();
}

__attribute__((constructor(101))) static void init_ctor(void) { hak__init(); }

__attribute__((destructor(101))) static void init_dtor(void) {
  if (hak__learner_stop) hak__learner_stop();
  hak__stats_at_exit();
}
