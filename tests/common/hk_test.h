/* Shared helpers for the hakmem tests (header-only).
 * Include after defining _GNU_SOURCE.  Every check fails fast: it prints
 * file:line, the condition and a message to stderr and exits 1, so the
 * runner shows the first thing that went wrong. */
#ifndef HK_TEST_H
#define HK_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)
#define GiB ((size_t)1024 * 1024 * 1024)

/* Layer bands of the contract: tiny <= 1 KiB, mid <= 52 KiB, large <= 1 MiB. */
#define HK_TINY_MAX  ((size_t)1024)
#define HK_MID_MAX   ((size_t)52 * 1024)
#define HK_LARGE_MAX ((size_t)1024 * 1024)

static const char* hk_test_name = "test";

__attribute__((format(printf, 3, 4), noreturn, unused))
static void hk_fail_at(const char* file, int line, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "FAIL [%s] %s:%d: %s\n", hk_test_name, file, line, buf);
  fflush(stderr);
  _exit(1);  /* not exit(): don't run handlers in a broken heap */
}

#define FAIL(...) hk_fail_at(__FILE__, __LINE__, __VA_ARGS__)
/* CHECK(cond, fmt, ...): the message should give the values involved. */
#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "FAIL [%s] %s:%d: check failed: %s\n", hk_test_name, \
              __FILE__, __LINE__, #cond);                                  \
      hk_fail_at(__FILE__, __LINE__, __VA_ARGS__);                         \
    }                                                                      \
  } while (0)

#define INFO(...) do { fprintf(stderr, "[%s] ", hk_test_name); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } while (0)

/* A watchdog so that a deadlock fails with a message instead of hanging
 * until the runner's timeout. */
static void hk_alarm_handler(int sig) {
  (void)sig;
  static const char msg[] = "FAIL: watchdog timeout (deadlock or far too slow)\n";
  ssize_t r = write(2, msg, sizeof msg - 1);
  (void)r;
  _exit(3);
}
__attribute__((unused)) static void hk_watchdog(unsigned seconds) {
  signal(SIGALRM, hk_alarm_handler);
  alarm(seconds);
}

/* Under valgrind (make test-valgrind runs every test binary in memcheck,
 * ~50x slower) tests shrink their loops by hk_scale(), skip measurements
 * that valgrind distorts (RSS, RLIMIT_AS) and get a longer watchdog.
 * HK_TEST_SLOW=1 forces the same. */
__attribute__((unused)) static int hk_under_valgrind(void) {
  const char* p = getenv("LD_PRELOAD");
  return p && (strstr(p, "vgpreload") || strstr(p, "valgrind"));
}
__attribute__((unused)) static int hk_slow(void) {
  const char* s = getenv("HK_TEST_SLOW");
  return hk_under_valgrind() || (s && *s == '1');
}
/* RLIMIT_AS limits valgrind's own mappings too (translations, its heap):
 * a fill to the limit can starve valgrind itself (CI's run of 1ec0c7f died
 * in oom/transit with "Valgrind's memory management: out of memory").
 * 1, said on a [valgrind] line (make test-valgrind shows it), where a test
 * must skip what it does under a lowered RLIMIT_AS. */
__attribute__((unused)) static int hk_skip_rlimit_as(void) {
  if (!hk_under_valgrind()) return 0;
  printf("[valgrind] %s: RLIMIT_AS parts skipped (the limit would cover valgrind's own memory)\n", hk_test_name);
  return 1;
}
/* Divide iteration counts by this. */
__attribute__((unused)) static int hk_scale(void) { return hk_slow() ? 20 : 1; }

__attribute__((unused)) static void hk_begin(const char* name, unsigned watchdog_s) {
  hk_test_name = name;
  setvbuf(stdout, NULL, _IOLBF, 0);
  hk_watchdog(hk_slow() ? 570 : watchdog_s);
}

/* Sleeps ms milliseconds, the whole of them though signals come. */
__attribute__((unused)) static void hk_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

__attribute__((unused)) static double hk_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Run one test step and print its time (slow steps show in the runner's log). */
#define HK_STEP(call)                                                  \
  do {                                                                 \
    double hk_t0_ = hk_now();                                          \
    call;                                                              \
    printf("  %-40s %.2fs\n", #call, hk_now() - hk_t0_);              \
  } while (0)

/* ---- stats ---------------------------------------------------------- */
__attribute__((unused)) static const char* hk_layer_name(int l) {
  static const char* n[] = {"tiny", "mid", "large", "huge"};
  return (l >= 0 && l < HAK_LAYER_COUNT) ? n[l] : "?";
}

/* The layer that must serve a request of n bytes. */
__attribute__((unused)) static int hk_layer_of(size_t n) {
  if (n <= HK_TINY_MAX) return HAK_LAYER_TINY;
  if (n <= HK_MID_MAX) return HAK_LAYER_MID;
  if (n <= HK_LARGE_MAX) return HAK_LAYER_LARGE;
  return HAK_LAYER_HUGE;
}

__attribute__((unused)) static unsigned long long hk_total_allocs(void) {
  hak_stats_t s;
  memset(&s, 0, sizeof s);
  hak_stats_get(&s);
  unsigned long long t = 0;
  for (int l = 0; l < HAK_LAYER_COUNT; l++) t += s.layer[l].allocs;
  return t;
}

__attribute__((unused)) static unsigned long long hk_total_frees(void) {
  hak_stats_t s;
  memset(&s, 0, sizeof s);
  hak_stats_get(&s);
  unsigned long long t = 0;
  for (int l = 0; l < HAK_LAYER_COUNT; l++) t += s.layer[l].frees;
  return t;
}

__attribute__((unused)) static unsigned long long hk_total_pages_cached(const hak_stats_t* s) {
  unsigned long long t = 0;
  for (int l = 0; l < HAK_LAYER_COUNT; l++) t += s->layer[l].pages_cached;
  return t;
}

/* ---- memory measurement -------------------------------------------- */
/* A field of /proc/self/status in kB (VmRSS, VmSize, ...), -1 if absent.
 * Uses only read(2): no allocation, so it doesn't disturb what it measures. */
//! A "Field: N kB" line of a /proc file (status, meminfo), -1 if absent.
__attribute__((unused)) static long hk_status_kb_file(const char* path, const char* field) {
  char buf[8192];
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  size_t fl = strlen(field);
  for (char* p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (strncmp(p, field, fl) == 0 && p[fl] == ':') return strtol(p + fl + 1, NULL, 10);
  }
  return -1;
}
__attribute__((unused)) static long hk_status_kb(const char* field) { return hk_status_kb_file("/proc/self/status", field); }
__attribute__((unused)) static long hk_rss_kb(void) { return hk_status_kb("VmRSS"); }

/* ---- patterns ------------------------------------------------------- */
/* A byte pattern that depends on the seed and the offset, so a block that
 * is handed out twice, overlaps another or is shifted is caught. */
static inline unsigned char hk_pat(uint64_t seed, size_t i) {
  uint64_t x = seed + i * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  return (unsigned char)(x ^ (x >> 8));
}

/* Fill n bytes.  When sparse is set and n is large, fill the first and last
 * 4 KiB and one 64-byte run per 4 KiB page (keeps huge blocks cheap). */
__attribute__((unused)) static void hk_fill(void* p, size_t n, uint64_t seed, int sparse) {
  unsigned char* b = (unsigned char*)p;
  if (!sparse || n <= 16 * KiB) {
    for (size_t i = 0; i < n; i++) b[i] = hk_pat(seed, i);
    return;
  }
  for (size_t i = 0; i < 4 * KiB; i++) b[i] = hk_pat(seed, i);
  for (size_t i = n - 4 * KiB; i < n; i++) b[i] = hk_pat(seed, i);
  for (size_t pg = 4 * KiB; pg + 64 <= n - 4 * KiB; pg += 4 * KiB)
    for (size_t i = pg; i < pg + 64; i++) b[i] = hk_pat(seed, i);
}

/* Checks the bytes below limit of a block filled by hk_fill(p, n, seed,
 * sparse) (limit < n checks the prefix that survives a shrinking realloc).
 * Returns the first bad offset, or (size_t)-1 if the pattern is intact. */
__attribute__((unused)) static size_t hk_verify_prefix(const void* p, size_t n, size_t limit, uint64_t seed, int sparse) {
  const unsigned char* b = (const unsigned char*)p;
  if (limit > n) limit = n;
#define HK_CHK_RANGE(lo, hi) \
  for (size_t i = (lo); i < (hi) && i < limit; i++) if (b[i] != hk_pat(seed, i)) return i;
  if (!sparse || n <= 16 * KiB) {
    HK_CHK_RANGE(0, n)
    return (size_t)-1;
  }
  HK_CHK_RANGE(0, 4 * KiB)
  HK_CHK_RANGE(n - 4 * KiB, n)
  for (size_t pg = 4 * KiB; pg + 64 <= n - 4 * KiB; pg += 4 * KiB) { HK_CHK_RANGE(pg, pg + 64) }
#undef HK_CHK_RANGE
  return (size_t)-1;
}
__attribute__((unused)) static size_t hk_verify(const void* p, size_t n, uint64_t seed, int sparse) {
  return hk_verify_prefix(p, n, n, seed, sparse);
}

/* xorshift PRNG, per thread state. */
static inline uint64_t hk_rand(uint64_t* s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* ---- child processes ------------------------------------------------ */
typedef struct hk_child {
  int status;       /* from waitpid */
  char out[65536];  /* captured stdout */
  char err[65536];  /* captured stderr */
} hk_child_t;

static void hk_drain2(int fo, int fe, hk_child_t* c) {
  size_t no = 0, ne = 0;
  int open_o = fo >= 0, open_e = 1;
  while (open_o || open_e) {
    fd_set rs;
    FD_ZERO(&rs);
    int mx = -1;
    if (open_o) { FD_SET(fo, &rs); mx = fo; }
    if (open_e) { FD_SET(fe, &rs); if (fe > mx) mx = fe; }
    if (select(mx + 1, &rs, NULL, NULL, NULL) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    char tmp[4096];
    if (open_o && FD_ISSET(fo, &rs)) {
      ssize_t r = read(fo, tmp, sizeof tmp);
      if (r <= 0) open_o = 0;
      else { size_t k = (size_t)r; if (k > sizeof c->out - 1 - no) k = sizeof c->out - 1 - no; memcpy(c->out + no, tmp, k); no += k; }
    }
    if (open_e && FD_ISSET(fe, &rs)) {
      ssize_t r = read(fe, tmp, sizeof tmp);
      if (r <= 0) open_e = 0;
      else { size_t k = (size_t)r; if (k > sizeof c->err - 1 - ne) k = sizeof c->err - 1 - ne; memcpy(c->err + ne, tmp, k); ne += k; }
    }
  }
  c->out[no] = 0;
  c->err[ne] = 0;
}

/* The parent's side of a child whose stdout/stderr go to pipes po and pe:
 * captures both into c, then reaps it into c->status. */
__attribute__((unused)) static void hk_collect(pid_t pid, int po[2], int pe[2], hk_child_t* c) {
  close(po[1]);
  close(pe[1]);
  hk_drain2(po[0], pe[0], c);
  close(po[0]);
  close(pe[0]);
  while (waitpid(pid, &c->status, 0) < 0 && errno == EINTR) {}
}

/* Run fn(arg) in a forked child with stdout/stderr captured; the child
 * exits 0 when fn returns.  No core dumps (they are slow and useless). */
__attribute__((unused)) static void hk_run_forked(void (*fn)(void*), void* arg, hk_child_t* c) {
  int po[2], pe[2];
  if (pipe(po) || pipe(pe)) { perror("pipe"); _exit(2); }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); _exit(2); }
  if (pid == 0) {
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    dup2(po[1], 1);
    dup2(pe[1], 2);
    close(po[0]); close(po[1]); close(pe[0]); close(pe[1]);
    alarm(hk_slow() ? 300 : 30);
    fn(arg);
    fflush(stdout);
    _exit(0);
  }
  hk_collect(pid, po, pe, c);
}

/* Re-exec this test binary as "<self> arg1" with extra environment entries
 * (NAME=value strings, NULL-terminated; an entry "NAME" without '=' removes
 * NAME).  If as_limit is non-zero, RLIMIT_AS is set to it before exec. */
__attribute__((unused)) static void hk_exec_self(const char* arg1, const char* const* env_add,
                                                 size_t as_limit, hk_child_t* c) {
  int po[2], pe[2];
  if (pipe(po) || pipe(pe)) { perror("pipe"); _exit(2); }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); _exit(2); }
  if (pid == 0) {
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    for (const char* const* e = env_add; e && *e; e++) {
      const char* eq = strchr(*e, '=');
      if (eq) {
        char name[256];
        size_t k = (size_t)(eq - *e);
        if (k >= sizeof name) k = sizeof name - 1;
        memcpy(name, *e, k);
        name[k] = 0;
        setenv(name, eq + 1, 1);
      } else {
        unsetenv(*e);
      }
    }
    if (as_limit) {
      struct rlimit as = {as_limit, as_limit};
      setrlimit(RLIMIT_AS, &as);
    }
    dup2(po[1], 1);
    dup2(pe[1], 2);
    close(po[0]); close(po[1]); close(pe[0]); close(pe[1]);
    char* argv[] = {(char*)"hk_child", (char*)arg1, NULL};
    /* the resolved path, not /proc/self/exe itself: under valgrind that
     * would name valgrind's tool binary */
    char self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k > 0) { self[k] = 0; execv(self, argv); }
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  hk_collect(pid, po, pe, c);
}

/* A readable description of a wait status, for failure messages. */
__attribute__((unused)) static const char* hk_status_str(int st) {
  static char buf[64];
  if (WIFEXITED(st)) snprintf(buf, sizeof buf, "exit %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st)) snprintf(buf, sizeof buf, "signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
  else snprintf(buf, sizeof buf, "status 0x%x", st);
  return buf;
}

/* Count lines of text that contain every one of the given substrings. */
__attribute__((unused)) static int hk_count_lines(const char* text, const char* a, const char* b, const char* c3) {
  int n = 0;
  const char* p = text;
  while (p && *p) {
    const char* e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    char line[2048];
    if (len >= sizeof line) len = sizeof line - 1;
    memcpy(line, p, len);
    line[len] = 0;
    if ((!a || strstr(line, a)) && (!b || strstr(line, b)) && (!c3 || strstr(line, c3))) n++;
    p = e ? e + 1 : NULL;
  }
  return n;
}

#endif
