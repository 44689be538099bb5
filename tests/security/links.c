/* Encoded free-list links (HAKMEM_SECURE=1; src/link.h).  Each part runs
 * in a child process (this binary re-executed), once per mode:
 *
 *  clear   Frees Tiny, Mid and Large blocks (more than the array caches
 *          hold, so most land on linked lists), pushes them out of the
 *          delayed-reuse FIFO, then reads the first word of every freed
 *          block.  A word "in clear" equals the address of one of the
 *          blocks or of any hakmem block.  Asserted: secure mode shows
 *          none, and at least half the Tiny blocks hold something that is
 *          neither zero nor the poison (encoded links); default mode shows
 *          links in clear (so the check can see them).
 *  mt      Threads allocate every size layer, swap blocks through a shared
 *          table so most frees are cross-thread (remote inboxes, central
 *          lists), realloc, and one thread trims now and then (scavenger,
 *          Large reclaim): every link path under concurrency.  Contents
 *          are checked at free.  Asserted: exit 0, no "hakmem:" report
 *          (no false positive from a stale link read by a lock-free pop).
 *  warm    Frees 16 MiB of 30000-byte blocks (two to a page), then takes a
 *          4000-byte block, whose page in default mode is one of theirs taken
 *          warm (still holding their free marks).  Asserted: secure mode
 *          takes no warm page, and its link check rejects the uncarved block
 *          start at the page's middle; default mode takes the warm page (so
 *          the scenario is live).
 *
 * The attacks themselves (a link overwritten after the free, or by an
 * overflow) are cases link/... of tests/security/misuse.c. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include "hk_test.h"
#include "../stress/rel_alloc.h"
#include "internal.h"
#include "link.h"

#define SEC_POISON_WORD 0xDFDFDFDFDFDFDFDFull   /* src/secure.c's poison */

/* ---- clear ---------------------------------------------------------------- */
#define N_TINY 200
#define N_MID 60
#define N_LARGE 8
#define N_ALL (N_TINY + N_MID + N_LARGE)

static uintptr_t all_addr[N_ALL];

//! qsort order of addresses.
static int cmp_addr(const void* a, const void* b) {
  uintptr_t x = *(const uintptr_t*)a, y = *(const uintptr_t*)b;
  return x < y ? -1 : x > y;
}

//! 1 if w is the address of one of the blocks of this part.
static int is_block(uintptr_t w) {
  return bsearch(&w, all_addr, N_ALL, sizeof all_addr[0], cmp_addr) != NULL;
}

//! Child: prints "clear C tiny_links T poison P of N".
static void part_clear(void) {
  static void* fill[300];
  char* blk[N_ALL];
  size_t sz[N_ALL];
  for (int i = 0; i < 300; i++) fill[i] = A_MALLOC(16);
  for (int i = 0; i < N_ALL; i++) {
    sz[i] = i < N_TINY ? 64 : i < N_TINY + N_MID ? 8000 : 300000;
    blk[i] = A_MALLOC(sz[i]);
    CHECK(blk[i] != NULL, "malloc(%zu) failed", sz[i]);
    memset(blk[i], 0, 16);
    all_addr[i] = (uintptr_t)blk[i];
  }
  qsort(all_addr, N_ALL, sizeof all_addr[0], cmp_addr);
  for (int i = 0; i < N_ALL; i++) A_FREE(blk[i]);
  for (int i = 0; i < 300; i++) A_FREE(fill[i]);    /* secure: out of the FIFO, onto the lists */
  int clear = 0, poison = 0, tiny_links = 0;
  for (int i = 0; i < N_ALL; i++) {
    uintptr_t w = *(volatile uintptr_t*)blk[i];     /* the read after free */
    if (is_block(w) || (w && A_OWNS((void*)w))) clear++;
    else if (w == SEC_POISON_WORD) poison++;
    else if (w && i < N_TINY) tiny_links++;
  }
  printf("clear %d tiny_links %d poison %d of %d\n", clear, tiny_links, poison, N_ALL);
}

/* ---- mt --------------------------------------------------------------------- */
#define SLOTS 512
static _Atomic(char*) slots[SLOTS];
static atomic_int stop;
static atomic_long ops_done;

//! A size in every layer: mostly Tiny, some Mid, a few Large, rarely huge.
static size_t pick_size(uint64_t* rng) {
  uint64_t r = rel_rand(rng);
  unsigned k = (unsigned)(r % 1000);
  r >>= 10;
  if (k < 650) return 16 + r % (1024 - 16);
  if (k < 900) return 1025 + r % (52 * 1024 - 1025);
  if (k < 995) return 52 * 1024 + 1 + r % (1024 * 1024 - 52 * 1024);
  return 1024 * 1024 + 1 + r % (2 * 1024 * 1024);
}

/* A block records its size and seed in its first two words, then the
 * stamp of rel_alloc.h over at most 256 bytes, and its last 16 bytes. */
//! Fills a block of n bytes for later checking.
static void blk_stamp(char* p, size_t n, uint64_t seed) {
  ((uint64_t*)p)[0] = n;
  ((uint64_t*)p)[1] = seed;
  rel_stamp_range((unsigned char*)p, 16, n < 256 ? n : 256, seed);
  if (n > 272) rel_stamp_range((unsigned char*)p, n - 16, n, seed);
}

//! Checks a block filled by blk_stamp, then frees it.
static void blk_check_free(char* p) {
  size_t n = (size_t)((uint64_t*)p)[0];
  uint64_t seed = ((uint64_t*)p)[1];
  CHECK(n >= 16 && n <= 3 * 1024 * 1024, "block %p: size word %zu overwritten", (void*)p, n);
  long bad = rel_check_range((unsigned char*)p, 16, n < 256 ? n : 256, seed);
  if (bad < 0 && n > 272) bad = rel_check_range((unsigned char*)p, n - 16, n, seed);
  CHECK(bad < 0, "block %p of %zu bytes: byte %ld changed while it was live", (void*)p, n, bad);
  A_FREE(p);
}

//! One thread: allocate, swap through the table (most frees are another
//! thread's blocks), sometimes realloc or trim.
static void* mt_thread(void* arg) {
  uint64_t rng = 0x9E3779B97F4A7C15ull * ((uintptr_t)arg + 1);
  long ops = 0;
  int trimmer = (uintptr_t)arg == 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int k = 0; k < 256; k++, ops++) {
      size_t n = pick_size(&rng);
      uint64_t seed = rel_rand(&rng);
      char* p = A_MALLOC(n);
      CHECK(p != NULL, "malloc(%zu) failed", n);
      blk_stamp(p, n, seed);
      if ((rng & 15) == 0) {                     /* realloc: moves in secure mode */
        size_t m = pick_size(&rng);
        size_t keep = n < m ? n : m;
        char* q = A_REALLOC(p, m);
        CHECK(q != NULL, "realloc(%zu) failed", m);
        CHECK(((uint64_t*)q)[1] == seed && rel_check_range((unsigned char*)q, 16, keep < 256 ? keep : 256, seed) < 0,
              "realloc lost the contents of a block of %zu bytes", n);
        blk_stamp(q, m, seed);
        p = q;
      }
      if ((rng >> 8 & 3) == 0) { blk_check_free(p); continue; }   /* local free */
      char* old = atomic_exchange_explicit(&slots[rel_rand(&rng) % SLOTS], p, memory_order_acq_rel);
      if (old) blk_check_free(old);
    }
    if (trimmer && (ops & 4095) == 0) A_TRIM();
  }
  atomic_fetch_add(&ops_done, ops);
  return NULL;
}

//! Child: threads for the given seconds; prints "mt ops N threads T".
static void part_mt(void) {
  int nt = (int)rel_env_long("LINKS_THREADS", 4);
  double secs = (double)rel_env_long("LINKS_MS", hk_slow() ? 500 : 2000) / 1000.0;
  if (nt < 2) nt = 2;
  if (nt > 64) nt = 64;
  pthread_t t[64];
  for (int i = 0; i < nt; i++) CHECK(pthread_create(&t[i], NULL, mt_thread, (void*)(uintptr_t)i) == 0, "pthread_create");
  struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
  nanosleep(&ts, NULL);
  atomic_store(&stop, 1);
  for (int i = 0; i < nt; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < SLOTS; i++) {
    char* p = atomic_exchange(&slots[i], NULL);
    if (p) blk_check_free(p);
  }
  A_TRIM();
  printf("mt ops %ld threads %d\n", atomic_load(&ops_done), nt);
}

/* ---- warm ------------------------------------------------------------------ */
static void part_warm(void) {
  enum { NA = (16 << 20) / 30000 + 300 };
  static void* a[NA];
  for (int i = 0; i < NA; i++) CHECK((a[i] = A_MALLOC(30000)) != NULL, "malloc(30000)");
  for (int i = 0; i < NA; i++) A_FREE(a[i]);
  uint64_t t0 = hak__page_warm_taken();
  void* b = A_MALLOC(4000);
  CHECK(b, "malloc(4000)");
  uintptr_t probe = ((uintptr_t)b & ~(uintptr_t)(HAK_PAGE_SIZE - 1)) + 32768;   /* a 4 KiB block start, uncarved */
  hak_page_t* pg = hak__page_of((uintptr_t)b);
  int valid = hak__link_secure() ? hak__link_valid(probe, (int)pg->cls) : 0;
  printf("warm taken %llu valid %d\n", (unsigned long long)(hak__page_warm_taken() - t0), valid);
  A_FREE(b);
}

/* ---- parent ------------------------------------------------------------------ */
static hk_child_t child;

//! Runs part in a child in the given mode; the child must exit 0 without a
//! report.  Returns its stdout.
static const char* run_part(const char* part, int secure) {
  const char* env_sec[] = {"HAKMEM_SECURE=1", NULL};
  const char* env_def[] = {"HAKMEM_SECURE=0", NULL};      /* also in a HARDENED=1 build */
  hk_exec_self(part, secure ? env_sec : env_def, 0, &child);
  const char* mode = secure ? "secure" : "default";
  CHECK(WIFEXITED(child.status) && WEXITSTATUS(child.status) == 0, "%s (%s mode): %s\nstderr: %.2000s", part, mode,
        hk_status_str(child.status), child.err);
  CHECK(!strstr(child.err, "hakmem: "), "%s (%s mode): a false report\nstderr: %.2000s", part, mode, child.err);
  return child.out;
}

int main(int argc, char** argv) {
  if (argc > 1 && !strcmp(argv[1], "clear")) { part_clear(); return 0; }
  if (argc > 1 && !strcmp(argv[1], "mt")) { part_mt(); return 0; }
  if (argc > 1 && !strcmp(argv[1], "warm")) { part_warm(); return 0; }
  hk_begin("links", 240);

  for (int secure = 0; secure < 2; secure++) {
    const char* out = run_part("clear", secure);
    int clear = -1, tiny_links = -1, poison = -1, n = -1;
    CHECK(sscanf(out, "clear %d tiny_links %d poison %d of %d", &clear, &tiny_links, &poison, &n) == 4, "output: %s", out);
    printf("links: clear, %s mode: %d of %d freed blocks' first words are block addresses in clear; "
           "%d Tiny words otherwise non-zero; %d poison\n", secure ? "secure" : "default", clear, n, tiny_links, poison);
    if (secure) {
      CHECK(clear == 0, "secure mode: %d free-list links readable in clear", clear);
      CHECK(tiny_links >= N_TINY / 2, "secure mode: only %d of %d Tiny blocks hold an encoded link", tiny_links, N_TINY);
    } else {
      CHECK(clear >= N_TINY / 2, "default mode: links are plain, yet only %d were seen in clear (test blind?)", clear);
    }
  }
  for (int secure = 0; secure < 2; secure++) {
    const char* out = run_part("warm", secure);
    unsigned long long taken = 0;
    int valid = -1;
    CHECK(sscanf(out, "warm taken %llu valid %d", &taken, &valid) == 2, "output: %s", out);
    printf("links: warm, %s mode: %llu pages taken warm; uncarved old block start valid: %d\n",
           secure ? "secure" : "default", taken, valid);
    if (secure)
      CHECK(taken == 0 && valid == 0, "secure mode: %llu pages taken warm, stale block start valid %d", taken, valid);
    else
      CHECK(taken > 0, "default mode: the 4000-byte block's page was not taken warm (test blind?)");
  }
  for (int secure = 1; secure >= 0; secure--) {
    const char* out = run_part("mt", secure);
    long ops = 0;
    int nt = 0;
    CHECK(sscanf(out, "mt ops %ld threads %d", &ops, &nt) == 2 && ops > 0, "output: %s", out);
    printf("links: mt, %s mode: %ld operations in %d threads, every layer, cross-thread frees, trims: no report\n",
           secure ? "secure" : "default", ops, nt);
  }
  printf("links: ok\n");
  return 0;
}
