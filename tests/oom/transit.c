/* Out of memory while pages are on their way back to the OS: an allocation
 * that finds no free page waits for them, it does not fail.  A decay (or
 * trim) takes the warm stash's pages off their list at once, then gives them
 * to the OS one by one: until each is back in its segment, no class can take
 * it.  Under a lowered RLIMIT_AS, a fill that ran into that window got ENOMEM
 * with most of the heap free (CI's valgrind pass of oom/oom: 82% of the
 * first fill).  Here a thread trims while the main thread fills, both on one
 * CPU, so the trim is preempted with pages in transit, as valgrind's
 * serialised threads did. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdint.h>
#include "oom_fill.h"
#include "internal.h"

#define HEADROOM (128 * MiB)
#define ROUNDS 6
#define SIZE 40000     /* the 40 KiB bridge class: a page a block, so a fill takes pages fast */

static sem_t go, done;

//! Made before the limit (its stack is a mapping): trims at each go.
static void* trimmer(void* arg) {
  (void)arg;
  for (int r = 0; r < ROUNDS; r++) {
    sem_wait(&go);
    hak_trim();        /* the warm stash's pages: off the list, then to the OS one by one */
    sem_post(&done);
  }
  return NULL;
}

//! Pins the calling process to its first allowed CPU: threads then take
//! turns, and one is preempted in the middle of its work.
static void one_cpu(void) {
  cpu_set_t set;
  CHECK(sched_getaffinity(0, sizeof set, &set) == 0, "sched_getaffinity");
  int cpu = 0;
  while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set)) cpu++;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  CHECK(sched_setaffinity(0, sizeof set, &set) == 0, "sched_setaffinity");
}

static void scenario(void* arg) {
  (void)arg;
  one_cpu();
  pthread_t t;
  CHECK(sem_init(&go, 0, 0) == 0 && sem_init(&done, 0, 0) == 0, "sem_init");
  CHECK(pthread_create(&t, NULL, trimmer, NULL) == 0, "pthread_create");
  long vm = hk_status_kb("VmSize");
  CHECK(vm > 0, "VmSize");
  struct rlimit was, rl;
  CHECK(getrlimit(RLIMIT_AS, &was) == 0, "getrlimit(RLIMIT_AS)");
  rl.rlim_cur = (rlim_t)vm * 1024 + HEADROOM;   /* the soft limit only: raised again at the end */
  rl.rlim_max = was.rlim_max;
  CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit(RLIMIT_AS): %s", strerror(errno));
  void* head;
  size_t first = oom_fill(SIZE, &head);
  CHECK(first * SIZE >= HEADROOM / 2, "only %zu blocks of %d bytes fit in %zu MiB", first, SIZE, HEADROOM / MiB);
  oom_release(head);
  size_t worst = first, stashed = 0;
  for (int r = 0; r < ROUNDS; r++) {
    /* another Mid class needs a page: the freed class's whole pages go to
     * the warm stash (hak__small_reclaim) */
    static const size_t others[ROUNDS] = {1200, 1500, 1800, 2300, 2900, 3500};   /* a new class each round */
    void* other = malloc(others[r]);
    CHECK(other, "malloc(%zu) with the heap free", others[r]);
    size_t warm = hak__page_warm_count();
    stashed += warm;
    sem_post(&go);
    while (hak__page_warm_count()) sched_yield();    /* the trim took the stash */
    size_t again = oom_fill(SIZE, &head);
    sem_wait(&done);
    oom_release(head);
    free(other);
    if (again < worst) worst = again;
    printf("round %d: %zu pages to the warm stash, then %zu blocks (first fill %zu)\n", r, warm, again, first);
  }
  pthread_join(t, NULL);
  setrlimit(RLIMIT_AS, &was);   /* room for a tool's own memory at exit (valgrind) */
  CHECK(stashed >= (size_t)ROUNDS * (first * SIZE / HAK_PAGE_SIZE / 2),
        "the freed pages did not reach the warm stash (%zu pages in %d rounds): the test tests nothing", stashed,
        ROUNDS);
  CHECK(worst * 10 >= first * 9, "%zu blocks of %d bytes fit first, only %zu while a trim gave pages back", first,
        SIZE, worst);
}

int main(void) {
  hk_begin("oom/transit", 120);
  if (hk_skip_rlimit_as()) return 0;
  void* warm = malloc(100);   /* hakmem and stdio initialised before the fork */
  free(warm);
  hk_child_t* c = malloc(sizeof *c);
  CHECK(c, "malloc");
  hk_run_forked(scenario, NULL, c);
  fputs(c->out, stdout);
  if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) {
    fprintf(stderr, "%s", c->err);
    FAIL("child: %s", hk_status_str(c->status));
  }
  free(c);
  printf("oom/transit: ok\n");
  return 0;
}
