/* Fault injection (issue 6, item 5): when an OS mapping fails, the allocation
 * that needed it gives NULL with errno ENOMEM, nothing leaks, and allocation
 * works again right after.
 *
 *  A. (every build but ASan/TSan) a real failure: RLIMIT_AS lowered just
 *     above the current address space, every layer driven into it.
 *  B. (builds with the hook, HAK_FAULT_INJECT) hak_fault_inject_mmap(1) arms
 *     a failure of the next mapping; for each layer, blocks are allocated
 *     until one gets NULL; repeated; address space and hakmem's mapped bytes
 *     must stay flat over the repetitions; also in fresh threads.
 *  C. (same builds) HAKMEM_FAULT_MMAP_NTH=N for N = 1..40, each in a fresh
 *     process running a fixed workload across all layers: at most one
 *     allocation fails, with ENOMEM, and the retry succeeds.
 * Prints the number of faults injected.  The bookkeeping arrays are mmap'd
 * directly so that they never take the injected failure themselves. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "../stress/rel_alloc.h"

#define MiB ((size_t)1 << 20)

static void fail(const char* fmt, const char* a, long b) {
  fprintf(stderr, "FAIL faults: ");
  fprintf(stderr, fmt, a, b);
  fputc('\n', stderr);
  fflush(stderr);
  _exit(1);
}

static void** book;                 /* mmap'd once, MAP_NORESERVE: before any limit is set */
#define BOOK_N ((size_t)16 << 20)
static void** book_alloc(size_t n) {
  void* p = mmap(NULL, n * sizeof(void*), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) { perror("mmap"); _exit(1); }
  return p;
}

typedef struct layer { const char* name; size_t size; int kind; } layer_t;
enum { K_MALLOC, K_CALLOC, K_MEMALIGN, K_REALLOC };
static const layer_t layers[] = {
  {"tiny 16", 16, K_MALLOC},        {"tiny 64", 64, K_MALLOC},       {"tiny 1000", 1000, K_MALLOC},
  {"mid 4096", 4096, K_MALLOC},     {"mid 50000", 50000, K_MALLOC},  {"large 65536", 65536, K_MALLOC},
  {"large 300000", 300000, K_CALLOC}, {"large 1 MiB", MiB, K_MALLOC}, {"huge 1 MiB+1", MiB + 1, K_MALLOC},
  {"huge 5 MiB", 5 * MiB, K_MALLOC}, {"memalign 4096 x 100", 100, K_MEMALIGN},
  {"memalign 2 MiB x 3000", 3000, K_MEMALIGN}, {"realloc to 2 MiB", 2 * MiB, K_REALLOC},
};
#define NLAYERS (sizeof layers / sizeof layers[0])

static void* layer_alloc(const layer_t* L) {
  switch (L->kind) {
    case K_CALLOC: return A_CALLOC(1, L->size);
    case K_MEMALIGN: return A_MEMALIGN(L->size == 100 ? 4096 : 2 * MiB, L->size);
    case K_REALLOC: {
      void* p = A_MALLOC(32);
      if (!p) return NULL;
      memset(p, 0x5A, 32);
      int e0 = errno;
      void* q = A_REALLOC(p, L->size);
      if (!q) {
        int e = errno;
        /* a failed realloc leaves p intact */
        for (int i = 0; i < 32; i++)
          if (((unsigned char*)p)[i] != 0x5A) fail("%s: failed realloc damaged the old block (%ld)", L->name, i);
        A_FREE(p);
        errno = e;
        return NULL;
      }
      (void)e0;
      for (int i = 0; i < 32; i++)
        if (((unsigned char*)q)[i] != 0x5A) fail("%s: realloc lost contents (%ld)", L->name, i);
      return q;
    }
    default: return A_MALLOC(L->size);
  }
}
static size_t stamp_len(size_t n) { return n < 64 ? n : 64; }

/* allocate blocks of layer L until one is NULL or cap bytes are live;
 * returns 1 if a NULL was seen (checked ENOMEM, then checks recovery) */
static void (*arm_each)(long);      /* part B: re-armed before every allocation = every mapping fails */
static int exhaust(const layer_t* L, size_t cap_bytes, size_t* nblocks_out, int recovery) {
  size_t maxb = cap_bytes / (L->size ? L->size : 1) + 16;
  if (maxb > BOOK_N) maxb = BOOK_N;
  void** b = book;
  size_t n = 0;
  int got_null = 0;
  while (n < maxb) {
    errno = 0;
    if (arm_each) arm_each(1);
    void* p = layer_alloc(L);
    if (!p) {
      if (errno != ENOMEM) fail("%s: NULL with errno %ld, want ENOMEM", L->name, errno);
      got_null = 1;
      break;
    }
    memset(p, (int)(n & 0xff), stamp_len(L->size));
    b[n++] = p;
  }
  if (arm_each) arm_each(0);
  if (got_null && recovery) {  /* recovery: the same request works right away */
    void* p = layer_alloc(L);
    if (!p) fail("%s: no recovery: allocation after the failed mapping is NULL too (errno %ld)", L->name, errno);
    memset(p, (int)(n & 0xff), stamp_len(L->size));
    b[n++] = p;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char* p = b[i];
    for (size_t k = 0; k < stamp_len(L->size); k++)
      if (p[k] != (unsigned char)(i & 0xff)) fail("%s: block contents damaged around a failed mapping (block %ld)", L->name, (long)i);
    A_FREE(p);
  }
  *nblocks_out = n;
  return got_null;
}

static long faults_injected;

/* ---- B: the hook, in this process ---------------------------------------- */
static void part_b(void (*hook)(long)) {
  const int reps = (int)rel_env_long("FAULTS_REPS", 12);
  for (size_t li = 0; li < NLAYERS; li++) {
    const layer_t* L = &layers[li];
    size_t cap = L->size >= MiB ? 512 * MiB : 64 * MiB;   /* a rep whose failures a trim absorbs runs to the cap */
    size_t vm0 = 0, map0 = 0, nb = 0;
    int hits = 0;
    for (int r = 0; r < reps; r++) {
      arm_each = hook;               /* from now on every OS mapping fails (a real OOM) */
      hits += exhaust(L, cap, &nb, 1);
      arm_each = NULL;
      hook(0);
      A_TRIM();
      if (r == 1) { vm0 = rel_vm_bytes(); map0 = rel_hak_mapped(); }
    }
    size_t vm1 = rel_vm_bytes(), map1 = rel_hak_mapped();
    printf("faults: B %-22s %d/%d failures injected, last run %zu blocks, VM %+ld KiB, hakmem mapped %+ld KiB\n",
           L->name, hits, reps, nb, ((long)vm1 - (long)vm0) / 1024, ((long)map1 - (long)map0) / 1024);
    if (hits == 0) fail("%s: the armed mapping failure never reached an allocation (%ld reps)", L->name, reps);
    /* no leak: each repetition legitimately maps one new chunk for the
     * recovery allocation (4 MiB segment, or the huge block itself); a leak
     * on the failure path would add more than that */
    long per = (long)(4 * MiB + ((L->size + 4 * MiB - 1) & ~(4 * MiB - 1)));
    long slack = per * (reps - 2) + (long)(16 * MiB);
    if ((long)vm1 - (long)vm0 > slack) fail("%s: address space grew by %ld bytes over the failures (leak)", L->name, (long)vm1 - (long)vm0);
    if ((long)map1 - (long)map0 > slack) fail("%s: hakmem mapped bytes grew by %ld over the failures (leak)", L->name, (long)map1 - (long)map0);
    faults_injected += hits;
  }
}

typedef struct { void (*hook)(long); int hits; } thr_arg_t;
static void* fresh_thread(void* a) {
  thr_arg_t* ta = a;
  size_t nb;
  arm_each = ta->hook;               /* even the thread's first allocation meets failing mappings */
  ta->hits = exhaust(&layers[1], 8 * MiB, &nb, 1);
  arm_each = NULL;
  ta->hook(0);
  return NULL;
}
static void part_b_threads(void (*hook)(long)) {
  int hits = 0, n = 20;
  for (int i = 0; i < n; i++) {
    thr_arg_t ta = {hook, 0};
    pthread_t t;
    if (pthread_create(&t, NULL, fresh_thread, &ta)) fail("%s pthread_create %ld", "", 0);
    pthread_join(t, NULL);
    hits += ta.hits;
  }
  /* a fresh thread whose mappings all fail must not crash; whether a NULL
   * surfaces depends on how much free memory the process already holds */
  printf("faults: B fresh threads        %d/%d surfaced as NULL+ENOMEM (first allocations with every mapping failing; no crash)\n", hits, n);
  faults_injected += hits;
}

/* ---- C: HAKMEM_FAULT_MMAP_NTH=N in a fresh process ----------------------- */
static int env_child(void) {
  /* fixed workload, blocks kept live so each needs fresh memory sooner or later */
  static const size_t sizes[] = {24, 700, 3000, 40000, 100000, 700000, 2 * MiB, 9 * MiB};
  void** keep = book_alloc(4096);
  int nulls = 0, nk = 0, absorbed = 0;
  for (int round = 0; round < 24; round++) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i] * (size_t)(1 + round % 3);
      errno = 0;
      void* p = (round & 1) ? A_MEMALIGN(64, n) : A_MALLOC(n);
      if (!p) {
        if (errno != ENOMEM) return 3;
        nulls++;
        p = A_MALLOC(n);            /* recovery */
        if (!p) return 4;
      } else if (errno == ENOMEM) {
        absorbed = 1;               /* the failed mapping was worked around */
      }
      memset(p, 0x33, n < 4096 ? n : 4096);
      keep[nk++] = p;
    }
  }
  for (int i = 0; i < nk; i++) {
    if (((unsigned char*)keep[i])[0] != 0x33) return 5;
    A_FREE(keep[i]);
  }
  return nulls > 1 ? 9 : 10 + nulls + 2 * absorbed;
}
static void part_c(const char* self) {
  int maxn = (int)rel_env_long("FAULTS_ENV_MAX", 40);
  int hits = 0, absorbed = 0;
  for (int n = 1; n <= maxn; n++) {
    pid_t pid = fork();
    if (pid < 0) fail("%s fork %ld", "", errno);
    if (pid == 0) {
      char nb[16];
      snprintf(nb, sizeof nb, "%d", n);
      setenv("HAKMEM_FAULT_MMAP_NTH", nb, 1);
      execl(self, self, "--env-child", (char*)NULL);
      _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid) fail("%s waitpid %ld", "", errno);
    if (WIFSIGNALED(st)) {
      fprintf(stderr, "FAIL faults: HAKMEM_FAULT_MMAP_NTH=%d: child killed by signal %d\n", n, WTERMSIG(st));
      _exit(1);
    }
    int rc = WEXITSTATUS(st);
    if (rc == 3) fail("HAKMEM_FAULT_MMAP_NTH=%s%ld: NULL without ENOMEM", "", n);
    if (rc == 4) fail("HAKMEM_FAULT_MMAP_NTH=%s%ld: no recovery after the failure", "", n);
    if (rc == 5) fail("HAKMEM_FAULT_MMAP_NTH=%s%ld: block contents damaged", "", n);
    if (rc == 9) fail("HAKMEM_FAULT_MMAP_NTH=%s%ld: one failed mapping made more than one allocation fail", "", n);
    if (rc < 10 || rc > 13) fail("HAKMEM_FAULT_MMAP_NTH=%s%ld: unexpected child exit", "", rc);
    hits += (rc - 10) & 1;
    absorbed += ((rc - 10) & 2) ? 1 : 0;
  }
  printf("faults: C HAKMEM_FAULT_MMAP_NTH=1..%d: %d failures surfaced as NULL+ENOMEM, %d worked around inside hakmem\n",
         maxn, hits, absorbed);
  if (!hits && !absorbed) fail("%s: HAKMEM_FAULT_MMAP_NTH never produced a failure (%ld)", "env", maxn);
  faults_injected += hits + absorbed;
}

/* ---- A: a real RLIMIT_AS failure ----------------------------------------- */
static void part_a(void) {
  if (getenv("FAULTS_NO_RLIMIT")) { printf("faults: A skipped (FAULTS_NO_RLIMIT set, e.g. under valgrind)\n"); return; }
#if defined(REL_SANITIZED)
  printf("faults: A skipped (RLIMIT_AS does not mix with the sanitizer's shadow memory)\n");
#else
  struct rlimit old;
  if (getrlimit(RLIMIT_AS, &old)) { perror("getrlimit"); _exit(1); }
  /* one fixed limit for the whole part: 192 MiB above the address space now
   * (well below BOOK_N blocks of the smallest layer, so the limit is what stops it) */
  A_TRIM();
  struct rlimit lim = old;
  lim.rlim_cur = rel_vm_bytes() + 192 * MiB;
  if (old.rlim_cur != RLIM_INFINITY && lim.rlim_cur > old.rlim_cur) lim.rlim_cur = old.rlim_cur;
  int hits = 0;
  size_t got[3][NLAYERS];
  for (int rep = 0; rep < 3; rep++) {
    for (size_t li = 0; li < NLAYERS; li++) {
      const layer_t* L = &layers[li];
      size_t nb;
      A_TRIM();
      if (setrlimit(RLIMIT_AS, &lim)) { perror("setrlimit"); _exit(1); }
      int h = exhaust(L, 1024 * MiB, &nb, 0);  /* the limit still holds: recovery is checked below */
      if (setrlimit(RLIMIT_AS, &old)) { perror("setrlimit"); _exit(1); }
      if (!h) fail("%s: RLIMIT_AS never made an allocation fail (%ld blocks)", L->name, (long)nb);
      hits += h;
      got[rep][li] = nb;
      /* after the limit is lifted everything works again */
      void* p = layer_alloc(L);
      if (!p) fail("%s: allocation fails after RLIMIT_AS was lifted (errno %ld)", L->name, errno);
      A_FREE(p);
    }
  }
  /* no leak: under the same limit, the same sequence gets as many blocks in
   * round 2 as in round 1 (a failure path that leaked address space would
   * leave less room every round) */
  for (size_t li = 0; li < NLAYERS; li++) {
    printf("faults: A RLIMIT_AS %-22s blocks before the failure, rounds 0/1/2: %zu %zu %zu\n", layers[li].name,
           got[0][li], got[1][li], got[2][li]);
    if (got[2][li] + got[1][li] / 8 + 2 < got[1][li])
      fail("%s: fewer blocks fit under the same RLIMIT_AS in round 2 than in round 1 (leak on the failure path; %ld)",
           layers[li].name, (long)got[2][li]);
  }
  printf("faults: A RLIMIT_AS: %d real mapping failures\n", hits);
  /* "allocation works again once memory is free" (issue 2, item 7): every
   * layer ran after the previous one freed everything and trimmed, under the
   * same limit, so each must get at least one block */
  for (size_t li = 0; li < NLAYERS; li++)
    for (int rep = 0; rep < 3; rep++)
      if (got[rep][li] == 0)
        fail("%s: not one block fits under RLIMIT_AS after the previous layer freed all its memory and trimmed "
             "(freed memory is not given back for other layers; round %ld)", layers[li].name, rep);
  faults_injected += hits;
#endif
}

int main(int argc, char** argv) {
  if (argc > 1 && !strcmp(argv[1], "--env-child")) return env_child();
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(280);  /* a hang fails instead of eating the runner's timeout silently */
  printf("faults: api %s\n", REL_API_NAME);
  void (*hook)(long) = REL_FAULT_HOOK();
  book = mmap(NULL, BOOK_N * sizeof(void*), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (book == MAP_FAILED) { perror("mmap"); return 1; }
  part_a();
  if (hook) {
    part_b(hook);
    part_b_threads(hook);
    part_c(rel_self_path());
  } else {
    printf("faults: B, C skipped: this build has no hak_fault_inject_mmap (make DEBUG=1, SAN=..., or FAULT_INJECT=1 has it)\n");
  }
  printf("faults: ok: %ld faults injected in total\n", faults_injected);
  return 0;
}
