/* The background thread: returns idle memory on time (decay), so RSS
 * falls after a burst even when the program goes quiet and never reaches
 * a slow path again.  Started on first need (the first time memory is
 * cached centrally), never at load; HAKMEM_BG=0 leaves decay to the slow
 * paths alone.  When HAKMEM_LEARN=1 it also runs the learner's windows. */
#define _GNU_SOURCE
#include "internal.h"
#include "valgrind.h"
#include <signal.h>
#include <time.h>

_Atomic int hak__bg_state;       /* 0 not started, 1 running, 2 off or failed */

void hak__learner_step(uint64_t now_ns) __attribute__((weak));

//! The loop: upkeep every quarter of the decay window (50 ms at least).
static void* bg_main(void* arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);      /* the program's signals are not ours */
  hak__vg_enter();                             /* only hakmem's code runs here, for good */
  uint64_t step = (uint64_t)hak__opt.decay_ms * 1000000ull / 4;
  if (step < 50000000ull) step = 50000000ull;
  for (;;) {
    struct timespec ts = {(time_t)(step / 1000000000ull), (long)(step % 1000000000ull)};
    nanosleep(&ts, NULL);
    uint64_t now = hak__os_now_ns();
    if (hak__opt.bg) hak__maintenance_run(now);     /* HAKMEM_BG=0 HAKMEM_LEARN=1: the learner only */
    if (hak__learner_step) hak__learner_step(now);
  }
  return NULL;
}

/* Above zero while this thread holds hakmem's shared heap lock or heap list
 * lock: pthread_create allocates (calloc for the new thread's TLS), which
 * would take the same lock again.  The kick is left to a later caller. */
__thread unsigned hak__bg_hold __attribute__((tls_model("initial-exec")));

void hak__bg_kick_slow(void) {
  if (hak__bg_hold) return;
  int expect = 0;
  if (!atomic_compare_exchange_strong(&hak__bg_state, &expect, 2)) return;
  if (!hak__opt.bg && !hak__opt.learn) return;            /* stays 2: off */
  pthread_t t;
  /* born with every signal blocked: the program's handlers never run on
   * it, not even before bg_main blocks them */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  /* a program with a large static TLS (its block sits on each thread's
   * stack) needs more than 256 KiB: then the default size (0) */
  static const size_t stacks[2] = {256 * 1024, 0};
  int r = -1;
  for (int i = 0; i < 2 && r != 0; i++) {
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (stacks[i]) pthread_attr_setstacksize(&at, stacks[i]);
    r = pthread_create(&t, &at, bg_main, NULL);
    pthread_attr_destroy(&at);
  }
  if (r == 0) {
    atomic_store(&hak__bg_state, 1);
    pthread_setname_np(t, "hakmem-bg");
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

//! The child of fork has no background thread: start again on need.
void hak__bg_fork_child(void) { atomic_store(&hak__bg_state, 0); }
