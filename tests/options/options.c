/* HAKMEM_* options, read once at init.  The test re-execs itself ("child"
 * mode: allocates in every layer from several threads) with environments:
 *  - bad values (not parsing, out of range, trailing junk, overflow) give
 *    exactly one stderr line with "hakmem: ", the variable and the value,
 *    the default is used (HAKMEM_VERBOSE shows it) and the program runs;
 *  - a good value gives no warning and shows up in HAKMEM_VERBOSE=1;
 *  - HAKMEM_VERBOSE=1 prints every option once as HAKMEM_NAME=value;
 *  - every option listed by VERBOSE, set to garbage, either warns once and
 *    keeps its default or (a string option) is taken as is;
 *  - HAKMEM_STATS=1 prints the table at exit: a first line starting
 *    "hakmem stats", rows tiny, mid, large, huge and total; on stderr even
 *    when the program has reopened hakmem's copy's descriptor number;
 *  - integers are decimal or 0x hex; a ceiling set alone pulls its floor;
 *  - options set with setenv after init have no effect (read once). */
#define _GNU_SOURCE
#include <ctype.h>
#include <malloc.h>
#include <pthread.h>
#include "hk_test.h"

static void* child_thread(void* arg) {
  (void)arg;
  size_t ns[] = {8, 100, 1000, 2000, 40000, 100000, 2 << 20};
  for (int r = 0; r < 50; r++)
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
      void* p = malloc(ns[i]);
      if (!p || !hak_owns(p)) { fprintf(stderr, "child: malloc(%zu) not served by hakmem\n", ns[i]); exit(1); }
      memset(p, 1, ns[i] < 4096 ? ns[i] : 4096);
      free(p);
    }
  return NULL;
}

static int child_main(void) {
  /* several threads whose first calls race: still one warning per variable */
  pthread_t t[6];
  for (int i = 0; i < 6; i++) pthread_create(&t[i], NULL, child_thread, NULL);
  child_thread(NULL);
  for (int i = 0; i < 6; i++) pthread_join(t[i], NULL);
  void* mids[1000];
  for (int i = 0; i < 1000; i++) mids[i] = malloc(3000);  /* 1000 mid allocs for the stats table */
  for (int i = 0; i < 1000; i++) free(mids[i]);
  printf("child ok\n");
  return 0;
}

static hk_child_t* C;

static void run_mode(const char* mode, const char* const* env) {
  /* start from a clean HAKMEM_* environment so the caller's doesn't leak in */
  const char* envs[32];
  int k = 0;
  for (char** e = environ; *e && k < 16; e++)
    if (!strncmp(*e, "HAKMEM_", 7)) {
      static char names[16][128];
      const char* eq = strchr(*e, '=');
      size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
      if (len >= 128) len = 127;
      memcpy(names[k], *e, len);
      names[k][len] = 0;
      envs[k] = names[k];
      k++;
    }
  for (; env && *env && k < 31; env++) envs[k++] = *env;
  envs[k] = NULL;
  hk_exec_self(mode, envs, 0, C);
}
static void run(const char* const* env) { run_mode("child", env); }

static void expect_ok_run(const char* what) {
  CHECK(WIFEXITED(C->status) && WEXITSTATUS(C->status) == 0, "%s: child %s\nstderr:\n%s", what,
        hk_status_str(C->status), C->err);
  CHECK(strstr(C->out, "child ok"), "%s: child did not finish (stdout: %s)", what, C->out);
}

/* The value of HAKMEM_NAME in VERBOSE output (stderr), or NULL. */
static const char* verbose_value(const char* name, char* buf, size_t bufsz) {
  size_t nl = strlen(name);
  for (const char* p = C->err; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (!strncmp(p, name, nl) && p[nl] == '=') {
      const char* v = p + nl + 1;
      size_t len = strcspn(v, "\n");
      if (len >= bufsz) len = bufsz - 1;
      memcpy(buf, v, len);
      buf[len] = 0;
      while (len > 0 && isspace((unsigned char)buf[len - 1])) buf[--len] = 0;
      return buf;
    }
  }
  return NULL;
}

static void test_bad_values(void) {
  /* The default of HAKMEM_POOL_REFILL_BATCH, from VERBOSE. */
  const char* e0[] = {"HAKMEM_VERBOSE=1", NULL};
  run(e0);
  expect_ok_run("HAKMEM_VERBOSE=1");
  char defv[128];
  CHECK(verbose_value("HAKMEM_POOL_REFILL_BATCH", defv, sizeof defv),
        "HAKMEM_VERBOSE=1 does not list HAKMEM_POOL_REFILL_BATCH=...; stderr:\n%s", C->err);
  const char* bad[] = {"abc", "9", "0", "5", "-1", "3x", "2.5", "99999999999999999999999999", " ", "0x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char var[160];
    snprintf(var, sizeof var, "HAKMEM_POOL_REFILL_BATCH=%s", bad[i]);
    const char* env[] = {var, "HAKMEM_VERBOSE=1", NULL};
    run(env);
    expect_ok_run(var);
    int warn = hk_count_lines(C->err, "hakmem: ", "HAKMEM_POOL_REFILL_BATCH", NULL);
    int warn_v = hk_count_lines(C->err, "hakmem: ", "HAKMEM_POOL_REFILL_BATCH", bad[i]);
    CHECK(warn == 1 && warn_v == 1,
          "%s (range 1-4): expected exactly one 'hakmem: ' warning line naming the variable and the value, got %d "
          "(%d with the value); stderr:\n%s",
          var, warn, warn_v, C->err);
    char v[128];
    CHECK(verbose_value("HAKMEM_POOL_REFILL_BATCH", v, sizeof v) && !strcmp(v, defv),
          "%s: effective value is '%s', expected the default '%s'", var, v, defv);
  }
  /* a floor above its ceiling: one warning naming both, and both defaults */
  static const struct { const char *lo, *hi, *lo_def, *hi_def; } pairs[] = {
      {"HAKMEM_CAP_MIN_MID", "HAKMEM_CAP_MAX_MID", "8", "2048"},
      {"HAKMEM_CAP_MIN_LARGE", "HAKMEM_CAP_MAX_LARGE", "2", "256"}};
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    char lo[96], hi[96], v[128];
    snprintf(lo, sizeof lo, "%s=300", pairs[i].lo);
    snprintf(hi, sizeof hi, "%s=10", pairs[i].hi);
    const char* env[] = {lo, hi, "HAKMEM_VERBOSE=1", NULL};
    run(env);
    expect_ok_run(lo);
    CHECK(hk_count_lines(C->err, "hakmem: ", pairs[i].lo, pairs[i].hi) == 1,
          "%s above %s: expected one warning naming both; stderr:\n%s", pairs[i].lo, pairs[i].hi, C->err);
    CHECK(verbose_value(pairs[i].lo, v, sizeof v) && !strcmp(v, pairs[i].lo_def), "%s: effective '%s'", lo, v);
    CHECK(verbose_value(pairs[i].hi, v, sizeof v) && !strcmp(v, pairs[i].hi_def), "%s: effective '%s'", hi, v);
  }
  /* only the ceiling set, below the default floor: the floor follows it */
  {
    const char* env[] = {"HAKMEM_CAP_MAX_MID=4", "HAKMEM_VERBOSE=1", NULL};
    char v[128];
    run(env);
    expect_ok_run("HAKMEM_CAP_MAX_MID=4");
    CHECK(hk_count_lines(C->err, "hakmem: ", NULL, NULL) == 0, "HAKMEM_CAP_MAX_MID=4 warned; stderr:\n%s", C->err);
    CHECK(verbose_value("HAKMEM_CAP_MAX_MID", v, sizeof v) && !strcmp(v, "4"), "CAP_MAX_MID=4: effective '%s'", v);
    CHECK(verbose_value("HAKMEM_CAP_MIN_MID", v, sizeof v) && !strcmp(v, "4"), "CAP_MIN_MID: effective '%s', not 4", v);
  }
  /* integers are decimal (a leading zero is not octal), or hex with 0x */
  static const struct { const char *set, *want; } nums[] = {
      {"HAKMEM_DECAY_MS=0250", "250"}, {"HAKMEM_DECAY_MS=0800", "800"}, {"HAKMEM_DECAY_MS=0x20", "32"}};
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    const char* env[] = {nums[i].set, "HAKMEM_VERBOSE=1", NULL};
    char v[128];
    run(env);
    expect_ok_run(nums[i].set);
    CHECK(hk_count_lines(C->err, "hakmem: ", NULL, NULL) == 0, "%s warned; stderr:\n%s", nums[i].set, C->err);
    CHECK(verbose_value("HAKMEM_DECAY_MS", v, sizeof v) && !strcmp(v, nums[i].want), "%s: effective '%s', want %s",
          nums[i].set, v, nums[i].want);
  }
  /* good values: no warning, and they take effect */
  for (int good = 1; good <= 4; good++) {
    char var[64];
    snprintf(var, sizeof var, "HAKMEM_POOL_REFILL_BATCH=%d", good);
    const char* env[] = {var, "HAKMEM_VERBOSE=1", NULL};
    run(env);
    expect_ok_run(var);
    CHECK(hk_count_lines(C->err, "hakmem: ", NULL, NULL) == 0, "%s (valid) printed a warning; stderr:\n%s", var,
          C->err);
    char v[128];
    CHECK(verbose_value("HAKMEM_POOL_REFILL_BATCH", v, sizeof v) && atoi(v) == good,
          "%s: HAKMEM_VERBOSE shows '%s'", var, v);
  }
  /* without VERBOSE: the bad value still warns exactly once, nothing else is printed */
  const char* e1[] = {"HAKMEM_POOL_REFILL_BATCH=abc", NULL};
  run(e1);
  expect_ok_run("HAKMEM_POOL_REFILL_BATCH=abc");
  CHECK(hk_count_lines(C->err, "hakmem: ", "HAKMEM_POOL_REFILL_BATCH", "abc") == 1,
        "HAKMEM_POOL_REFILL_BATCH=abc: expected one warning; stderr:\n%s", C->err);
  CHECK(hk_count_lines(C->err, "HAKMEM_", NULL, NULL) == 1, "only the warning expected on stderr; got:\n%s", C->err);
  /* no options at all: silent */
  run(NULL);
  expect_ok_run("no HAKMEM_* set");
  CHECK(C->err[0] == 0, "with no HAKMEM_* set, stderr should be empty; got:\n%s", C->err);
}

static void test_verbose_and_every_option(void) {
  const char* e0[] = {"HAKMEM_VERBOSE=1", NULL};
  run(e0);
  expect_ok_run("HAKMEM_VERBOSE=1");
  /* collect option names; each printed once, as NAME=value */
  static char names[64][64];
  static char defs[64][128];
  int n = 0;
  for (const char* p = C->err; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (strncmp(p, "HAKMEM_", 7)) continue;
    size_t len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
    CHECK(p[len] == '=', "HAKMEM_VERBOSE line not in NAME=value form: %.80s", p);
    CHECK(n < 64 && len < 64, "too many options");
    memcpy(names[n], p, len);
    names[n][len] = 0;
    for (int j = 0; j < n; j++) CHECK(strcmp(names[j], names[n]), "option %s printed twice", names[n]);
    verbose_value(names[n], defs[n], sizeof defs[n]);
    n++;
  }
  CHECK(n >= 3, "HAKMEM_VERBOSE=1 printed only %d HAKMEM_NAME=value lines; stderr:\n%s", n, C->err);
  char v[128];
  CHECK(verbose_value("HAKMEM_VERBOSE", v, sizeof v) && !strcmp(v, "1"), "VERBOSE does not list HAKMEM_VERBOSE=1");
  CHECK(verbose_value("HAKMEM_STATS", v, sizeof v), "VERBOSE does not list HAKMEM_STATS");
  /* every option, set to garbage */
  for (int i = 0; i < n; i++) {
    if (!strcmp(names[i], "HAKMEM_VERBOSE")) continue;
    char var[160];
    snprintf(var, sizeof var, "%.63s=zz%%bogus", names[i]);
    const char* env[] = {var, "HAKMEM_VERBOSE=1", NULL};
    run(env);
    expect_ok_run(var);
    int warn = hk_count_lines(C->err, "hakmem: ", names[i], "zz%bogus");
    CHECK(verbose_value(names[i], v, sizeof v), "%s: option missing from VERBOSE output", var);
    if (warn == 1) {
      CHECK(!strcmp(v, defs[i]), "%s: warned but effective value is '%s', not the default '%s'", var, v, defs[i]);
    } else {
      CHECK(warn == 0 && !strcmp(v, "zz%bogus"),
            "%s: neither one warning (%d warning lines) nor taken as a string (effective '%s'); stderr:\n%s", var,
            warn, v, C->err);
    }
  }
  INFO("%d options listed by HAKMEM_VERBOSE=1, each checked with a garbage value", n);
}

static int is_row(const char* line, const char* name) {
  while (*line == ' ' || *line == '\t') line++;
  size_t l = strlen(name);
  return !strncmp(line, name, l) && (line[l] == ' ' || line[l] == '\t' || line[l] == ':' || line[l] == '|');
}

static void test_stats_table(void) {
  const char* e0[] = {"HAKMEM_STATS=1", NULL};
  run(e0);
  expect_ok_run("HAKMEM_STATS=1");
  const char* t = strstr(C->err, "hakmem stats");
  CHECK(t && (t == C->err || t[-1] == '\n'), "HAKMEM_STATS=1: no line starting 'hakmem stats' on stderr:\n%s", C->err);
  const char* rows[] = {"tiny", "mid", "large", "huge", "total"};
  for (int r = 0; r < 5; r++) {
    int found = 0;
    for (const char* p = t; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
      if (is_row(p, rows[r])) found++;
    CHECK(found >= 1, "HAKMEM_STATS=1 table has no row '%s':\n%s", rows[r], t);
  }
  CHECK(strstr(C->out, "hakmem stats") == NULL, "the stats table went to stdout, not stderr");
  /* HAKMEM_STATS=0: no table */
  const char* e1[] = {"HAKMEM_STATS=0", NULL};
  run(e1);
  expect_ok_run("HAKMEM_STATS=0");
  CHECK(strstr(C->err, "hakmem stats") == NULL, "HAKMEM_STATS=0 printed the table:\n%s", C->err);
  /* a bad HAKMEM_STATS value warns and keeps the default (off) */
  const char* e2[] = {"HAKMEM_STATS=yes-please", NULL};
  run(e2);
  expect_ok_run("HAKMEM_STATS=yes-please");
  CHECK(hk_count_lines(C->err, "hakmem: ", "HAKMEM_STATS", "yes-please") == 1,
        "HAKMEM_STATS=yes-please: expected one warning line; stderr:\n%s", C->err);
}

/* A program that closes every descriptor above 2 and opens a file of its
 * own (a shell's exec 3>file, a daemon): the stats table must not go into
 * that file, which now has the number of hakmem's copy of stderr. */
static int fd_child_main(void) {
  void* p = malloc(100);
  free(p);
  for (int fd = 3; fd < 1024; fd++) close(fd);
  const char* path = getenv("HK_FDFILE");
  int fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
  if (fd < 0 || write(fd, "user-data\n", 10) != 10) return 1;
  return child_main();
}

static void test_stats_fd_reused(void) {
  char path[64];
  snprintf(path, sizeof path, "/tmp/hk_options_fd_%d", (int)getpid());
  char var[96];
  snprintf(var, sizeof var, "HK_FDFILE=%s", path);
  const char* env[] = {"HAKMEM_STATS=1", var, NULL};
  run_mode("fd-child", env);
  expect_ok_run("HAKMEM_STATS=1 with fd 3 reopened by the program");
  char buf[4096] = "";
  int fd = open(path, O_RDONLY);
  CHECK(fd >= 0, "open %s", path);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  unlink(path);
  CHECK(n == 10 && !strcmp(buf, "user-data\n"), "the program's own file holds %zd bytes, not just its line:\n%s", n,
        buf);
  CHECK(strstr(C->err, "hakmem stats") != NULL, "the stats table is not on stderr:\n%s", C->err);
}

/* Options are read once, at init: setting them later changes nothing. */
static int late_child_main(void) {
  void* p = malloc(100);
  free(p);
  setenv("HAKMEM_STATS", "1", 1);
  setenv("HAKMEM_VERBOSE", "1", 1);
  setenv("HAKMEM_POOL_REFILL_BATCH", "garbage", 1);
  return child_main();  /* threads start, allocate in every layer, exit */
}

static void test_read_once(void) {
  run_mode("late-child", NULL);
  expect_ok_run("HAKMEM_* set with setenv after init");
  CHECK(C->err[0] == 0, "HAKMEM_* set after init (setenv) had an effect: options must be read once; stderr:\n%s",
        C->err);
}

int main(int argc, char** argv) {
  if (argc > 1 && !strcmp(argv[1], "child")) return child_main();
  if (argc > 1 && !strcmp(argv[1], "late-child")) return late_child_main();
  if (argc > 1 && !strcmp(argv[1], "fd-child")) return fd_child_main();
  hk_begin("options/options", 55);
  /* a garbage string option that names a file (a log path) must not land in the repo */
  CHECK(chdir("/tmp") == 0, "chdir /tmp");
  C = malloc(sizeof *C);
  CHECK(C, "malloc");
  test_bad_values();
  test_verbose_and_every_option();
  test_stats_table();
  test_stats_fd_reused();
  test_read_once();
  free(C);
  printf("options: ok\n");
  return 0;
}
