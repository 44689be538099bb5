/* HAKMEM_VALGRIND=1 (issue 6): memcheck reports leaks, uses after free,
 * overflows and double frees of programs that run on hakmem, and a clean
 * program gets no report.  Runs prog/vg_prog (a plain binary, LD_PRELOAD=libhakmem.so) under
 * valgrind --leak-check=full, each case with and without the option: the
 * runs without it show that the option does the work (memcheck sees no
 * block of hakmem's otherwise).  Every run also shows that hakmem served the
 * calls: malloc resolves into libhakmem.so, hak_owns accepts its block, and
 * the HAKMEM_STATS=1 table counts the allocations.
 *
 * Run by `make test-valgrind` (the folder is MANUAL for tests/run_tests.sh):
 * env BUILD is the build folder. */
#define _GNU_SOURCE
#include "hk_test.h"
#include <limits.h>

static char lib[PATH_MAX + 64], prog[PATH_MAX + 64];

//! Runs prog <what> under memcheck; vg sets HAKMEM_VALGRIND=1.  Output in c.
static void vg_run(const char* what, int vg, hk_child_t* c) {
  int po[2], pe[2];
  if (pipe(po) || pipe(pe)) FAIL("pipe: %s", strerror(errno));
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) FAIL("fork: %s", strerror(errno));
  if (pid == 0) {
    dup2(po[1], 1);
    dup2(pe[1], 2);
    close(po[0]); close(po[1]); close(pe[0]); close(pe[1]);
    setenv("LD_PRELOAD", lib, 1);
    setenv("HAKMEM_STATS", "1", 1);
    setenv("HAKMEM_HUGE_DECAY_MS", "600000", 1);   /* a freed huge block stays mapped */
    if (vg) setenv("HAKMEM_VALGRIND", "1", 1);
    else unsetenv("HAKMEM_VALGRIND");
    unsetenv("HAKMEM_SECURE");
    execlp("valgrind", "valgrind", "--leak-check=full", "--fair-sched=yes", "--num-callers=20",
           "--soname-synonyms=somalloc=nouserintercepts", prog, what, (char*)NULL);
    fprintf(stderr, "exec valgrind: %s\n", strerror(errno));
    _exit(127);
  }
  hk_collect(pid, po, pe, c);
}

//! Parses "1,234" (valgrind's thousands separators) at s.
static unsigned long long vg_num(const char* s) {
  unsigned long long v = 0;
  for (; (*s >= '0' && *s <= '9') || *s == ','; s++)
    if (*s != ',') v = v * 10 + (unsigned long long)(*s - '0');
  return v;
}

//! Sums "<kind> lost: B bytes in N blocks" over every leak summary in text.
static void vg_lost(const char* text, const char* kind, unsigned long long* bytes, unsigned long long* blocks) {
  char key[64];
  snprintf(key, sizeof key, "%s lost: ", kind);
  *bytes = *blocks = 0;
  for (const char* p = strstr(text, key); p; p = strstr(p + 1, key)) {
    const char* b = p + strlen(key);
    *bytes += vg_num(b);
    const char* in = strstr(b, " in ");
    if (in) *blocks += vg_num(in + 4);
  }
}

//! The error counts of every "ERROR SUMMARY" line in text, up to max.
static int vg_error_counts(const char* text, unsigned long long* out, int max) {
  int n = 0;
  for (const char* p = strstr(text, "ERROR SUMMARY: "); p && n < max; p = strstr(p + 1, "ERROR SUMMARY: "))
    out[n++] = vg_num(p + strlen("ERROR SUMMARY: "));
  return n;
}

//! The allocs column of row `layer` of the last HAKMEM_STATS table.
static unsigned long long stats_allocs(const char* text, const char* layer) {
  const char* t = NULL;
  for (const char* p = strstr(text, "hakmem stats:"); p; p = strstr(p + 1, "hakmem stats:")) t = p;
  if (!t) return 0;
  char key[32];
  snprintf(key, sizeof key, "\n%s ", layer);
  const char* r = strstr(t, key);
  if (!r) return 0;
  r += strlen(key);
  while (*r == ' ') r++;
  return vg_num(r);
}

//! hakmem served prog's calls: malloc is libhakmem's, hak_owns agrees, and
//! the stats table at exit counts allocations.
static void check_served(const hk_child_t* c, const char* run) {
  CHECK(strstr(c->out, "libhakmem.so owns=1") != NULL, "%s: malloc is not hakmem's:\n%s\n%s", run, c->out, c->err);
  CHECK(stats_allocs(c->err, "total") > 0, "%s: no HAKMEM_STATS table with allocations:\n%s", run, c->err);
}

//! Lines of text containing a, with b (if given) on the same line.
static int lines(const char* text, const char* a, const char* b) { return hk_count_lines(text, a, b, NULL); }

static hk_child_t C;

static void test_leak(void) {
  unsigned long long by, bl, iby, ibl, pby, pbl;
  vg_run("leak", 1, &C);
  check_served(&C, "leak, HAKMEM_VALGRIND=1");
  vg_lost(C.err, "definitely", &by, &bl);
  vg_lost(C.err, "indirectly", &iby, &ibl);
  vg_lost(C.err, "possibly", &pby, &pbl);
  INFO("leak with the option: definitely lost %llu bytes in %llu blocks", by, bl);
  CHECK(by == 2204253 && bl == 10, "expected 2,204,253 bytes in 10 blocks definitely lost, got %llu in %llu:\n%s",
        by, bl, C.err);
  CHECK(iby == 0 && pby == 0, "indirectly %llu / possibly %llu bytes lost:\n%s", iby, pby, C.err);
  /* the loss records point at the line that leaked */
  CHECK(lines(C.err, "leak_some (vg_prog.c:", NULL) >= 4, "the loss records do not name leak_some:\n%s", C.err);

  vg_run("leak", 0, &C);
  check_served(&C, "leak, without the option");
  vg_lost(C.err, "definitely", &by, &bl);
  CHECK(by == 0 && bl == 0, "without the option memcheck saw a leak (%llu bytes): hakmem did not serve?\n%s", by, C.err);
  CHECK(strstr(C.err, "total heap usage: 0 allocs") != NULL, "without the option memcheck saw blocks:\n%s", C.err);
  INFO("leak without the option: memcheck saw 0 allocs, no leak");
}

static void test_uaf(void) {
  static const char* const sizes[] = {"48", "5,000", "200,000", "3,145,728"};  /* as valgrind prints them */
  unsigned long long e[4];
  vg_run("uaf", 1, &C);
  check_served(&C, "uaf, HAKMEM_VALGRIND=1");
  CHECK(strstr(C.out, "uaf: done") != NULL, "uaf did not finish (%s):\n%s", hk_status_str(C.status), C.err);
  int r = lines(C.err, "Invalid read of size 1", NULL), w = lines(C.err, "Invalid write of size 1", NULL);
  for (int i = 0; i < 4; i++) {
    char what[96];
    snprintf(what, sizeof what, "is 40 bytes inside a block of size %s free'd", sizes[i]);
    CHECK(lines(C.err, what, NULL) == 1, "no report of the read after free of the %s-byte block:\n%s", sizes[i], C.err);
    snprintf(what, sizeof what, "is 41 bytes inside a block of size %s free'd", sizes[i]);
    CHECK(lines(C.err, what, NULL) == 1, "no report of the write after free of the %s-byte block:\n%s", sizes[i], C.err);
  }
  /* each report gives the free site: release_block, called by uaf_one */
  int sites = lines(C.err, "release_block (vg_prog.c:", NULL);
  CHECK(r == 4 && w == 4 && sites >= 8, "expected 4 invalid reads, 4 writes, 8 free sites; got %d, %d, %d:\n%s",
        r, w, sites, C.err);
  CHECK(vg_error_counts(C.err, e, 4) == 1 && e[0] == 8, "expected ERROR SUMMARY: 8 errors:\n%s", C.err);
  /* the quarantine: the freed block was not handed out again at once */
  CHECK(!strstr(C.out, "the same block again"), "a freed block was reused at once:\n%s", C.out);
  INFO("use after free with the option: %d invalid reads, %d invalid writes, free site named %d times", r, w, sites);

  vg_run("uaf", 0, &C);
  check_served(&C, "uaf, without the option");
  CHECK(strstr(C.out, "uaf: done") != NULL, "uaf did not finish (%s):\n%s", hk_status_str(C.status), C.err);
  CHECK(!strstr(C.err, "Invalid read") && !strstr(C.err, "Invalid write"),
        "without the option memcheck reported the use after free: hakmem did not serve?\n%s", C.err);
  CHECK(vg_error_counts(C.err, e, 4) == 1 && e[0] == 0, "expected ERROR SUMMARY: 0 errors:\n%s", C.err);
  INFO("use after free without the option: 0 errors, %d of 4 freed blocks handed out again at once",
       hk_count_lines(C.out, "the same block again", NULL, NULL));
}

static void test_overflow(void) {
  static const char* const sizes[] = {"10", "5,000", "200,000", "3,145,828"};
  unsigned long long e[4];
  vg_run("overflow", 1, &C);
  check_served(&C, "overflow, HAKMEM_VALGRIND=1");
  CHECK(strstr(C.out, "overflow: done") != NULL, "overflow did not finish (%s):\n%s", hk_status_str(C.status), C.err);
  for (int i = 0; i < 4; i++) {
    char what[96];
    snprintf(what, sizeof what, "is 0 bytes after a block of size %s alloc'd", sizes[i]);
    CHECK(lines(C.err, what, NULL) == 1, "no report of the read past the %s-byte block:\n%s", sizes[i], C.err);
    snprintf(what, sizeof what, "is 2 bytes after a block of size %s alloc'd", sizes[i]);
    CHECK(lines(C.err, what, NULL) == 1, "no report of the write past the %s-byte block:\n%s", sizes[i], C.err);
  }
  CHECK(vg_error_counts(C.err, e, 4) == 1 && e[0] == 8, "expected ERROR SUMMARY: 8 errors:\n%s", C.err);
  INFO("overflow with the option: 4 invalid reads and 4 invalid writes just past the blocks");

  vg_run("overflow", 0, &C);
  check_served(&C, "overflow, without the option");
  CHECK(vg_error_counts(C.err, e, 4) == 1 && e[0] == 0, "expected ERROR SUMMARY: 0 errors:\n%s", C.err);
  INFO("overflow without the option: 0 errors");
}

static void test_double(void) {
  vg_run("double", 1, &C);
  CHECK(strstr(C.out, "libhakmem.so owns=1") != NULL, "malloc is not hakmem's:\n%s", C.out);
  CHECK(strstr(C.err, "Invalid free()") != NULL && strstr(C.err, "0 bytes inside a block of size 32 free'd"),
        "memcheck did not report the double free:\n%s", C.err);
  CHECK(strstr(C.err, "hakmem: double free of") != NULL, "hakmem did not stop the double free:\n%s", C.err);
  CHECK(!strstr(C.out, "not caught") && WIFSIGNALED(C.status) && WTERMSIG(C.status) == SIGABRT,
        "the double free went on (%s)", hk_status_str(C.status));
  CHECK(!strstr(C.err, "error reporting disabled"), "hakmem left memcheck's reports off:\n%s", C.err);
  INFO("double free with the option: memcheck's Invalid free() and hakmem's abort");

  vg_run("double", 0, &C);
  CHECK(strstr(C.err, "hakmem: double free of") != NULL, "hakmem did not stop the double free:\n%s", C.err);
  CHECK(!strstr(C.err, "Invalid free()"), "without the option memcheck saw the free:\n%s", C.err);
  INFO("double free without the option: hakmem's abort only");
}

static void test_clean(void) {
  unsigned long long e[8], by, bl;
  static const char* const kinds[] = {"definitely", "indirectly", "possibly"};
  vg_run("clean", 1, &C);
  check_served(&C, "clean, HAKMEM_VALGRIND=1");
  CHECK(WIFEXITED(C.status) && WEXITSTATUS(C.status) == 0 && strstr(C.out, "clean: done"),
        "the clean program failed (%s):\n%s", hk_status_str(C.status), C.err);
  int n = vg_error_counts(C.err, e, 8);
  CHECK(n == 2, "expected the summaries of the parent and of its forked child, got %d:\n%s", n, C.err);
  CHECK(e[0] == 0 && e[1] == 0, "the clean program has errors (%llu, %llu):\n%s", e[0], e[1], C.err);
  for (int k = 0; k < 3; k++) {
    vg_lost(C.err, kinds[k], &by, &bl);
    CHECK(by == 0 && bl == 0, "the clean program has %llu bytes %s lost:\n%s", by, kinds[k], C.err);
  }
  CHECK(strstr(C.err, "All heap blocks were freed") != NULL, "blocks left at exit:\n%s", C.err);
  /* memcheck saw the blocks, and hakmem served every layer */
  unsigned long long seen = 0;            /* the parent's count, the larger one */
  for (const char* u = strstr(C.err, "total heap usage: "); u; u = strstr(u + 1, "total heap usage: "))
    if (vg_num(u + strlen("total heap usage: ")) > seen) seen = vg_num(u + strlen("total heap usage: "));
  CHECK(seen > 1000, "memcheck saw only %llu allocations:\n%s", seen, C.err);
  static const char* const layers[] = {"tiny", "mid", "large", "huge"};
  for (int l = 0; l < 4; l++)
    CHECK(stats_allocs(C.err, layers[l]) > 0, "hakmem's %s layer served nothing:\n%s", layers[l], C.err);
  INFO("clean, 4 threads and a fork, with the option: errors %llu (parent) and %llu (child), no leak, "
       "%llu allocations seen by memcheck", e[0], e[1], seen);
}

int main(void) {
  hk_begin("valgrind", 300);
  const char* b = getenv("BUILD");
  char dir[PATH_MAX];
  if (!realpath(b ? b : "build", dir)) FAIL("no build folder %s", b ? b : "build");
  snprintf(lib, sizeof lib, "%s/libhakmem.so", dir);
  snprintf(prog, sizeof prog, "%s/tests/valgrind/prog/vg_prog", dir);
  CHECK(access(lib, R_OK) == 0 && access(prog, X_OK) == 0, "build %s and %s first", lib, prog);
  HK_STEP(test_leak());
  HK_STEP(test_uaf());
  HK_STEP(test_overflow());
  HK_STEP(test_double());
  HK_STEP(test_clean());
  printf("valgrind: ok\n");
  return 0;
}
