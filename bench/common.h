/* Shared helpers for the hakmem benchmark workloads.
 *
 * Every workload prints exactly one line starting with "RESULT " made of
 * key=value pairs; scripts/run_bench_suite.sh parses it.  The line always
 * carries peak_rss_kb and malloc_so (the shared object that provides malloc,
 * found with dladdr), so a silently ignored LD_PRELOAD is visible.
 * If BENCH_EXPECT_MALLOC is set, the workload exits with status 3 unless the
 * provider's path contains that substring. */
#ifndef HAK_BENCH_COMMON_H
#define HAK_BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64*: cheap, per-thread, reproducible from a seed. */
static inline uint64_t bench_rand(uint64_t* s) {
  uint64_t x = *s;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}
static inline uint64_t bench_seed(uint64_t seed, uint64_t salt) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ULL + salt * 0xBF58476D1CE4E5B9ULL + 1;
  return s ? s : 0x1234567ULL;
}
/* Uniform in [lo, hi]. */
static inline size_t bench_range(uint64_t* s, size_t lo, size_t hi) {
  return hi <= lo ? lo : lo + (size_t)(bench_rand(s) % (uint64_t)(hi - lo + 1));
}

/* A kB field of /proc/self/status ("VmRSS", "VmHWM"); -1 if unreadable.
 * Uses read(2) on a stack buffer so it never calls malloc itself. */
static inline long bench_status_kb(const char* field) {
  char buf[8192];
  ssize_t n = 0, got = 0;
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  while (got < (ssize_t)sizeof buf - 1 && (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0) got += n;
  close(fd);
  buf[got] = 0;
  size_t fl = strlen(field);
  for (char* p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (strncmp(p, field, fl) == 0 && p[fl] == ':') return strtol(p + fl + 1, NULL, 10);
  }
  return -1;
}

static inline long bench_rss_kb(void) { return bench_status_kb("VmRSS"); }

/* Peak RSS: VmHWM, falling back to getrusage's ru_maxrss (also kB). */
static inline long bench_peak_rss_kb(void) {
  long hwm = bench_status_kb("VmHWM");
  if (hwm >= 0) return hwm;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* Path of the object whose malloc the program's calls resolve to. */
static inline const char* bench_malloc_so(void) {
  static char path[512];
  void* sym = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info;
  if (sym && dladdr(sym, &info) && info.dli_fname) {
    snprintf(path, sizeof path, "%s", info.dli_fname);
  } else {
    snprintf(path, sizeof path, "unknown");
  }
  return path;
}

/* Called at start: fail loudly if the allocator is not the one expected. */
static inline void bench_check_malloc(const char* prog) {
  const char* so = bench_malloc_so();
  const char* want = getenv("BENCH_EXPECT_MALLOC");
  if (want && *want && !strstr(so, want)) {
    fprintf(stderr,
            "%s: FATAL: malloc is provided by '%s' but '%s' was expected; "
            "the LD_PRELOAD did not take effect\n", prog, so, want);
    printf("RESULT status=wrong_allocator malloc_so=%s\n", so);
    fflush(stdout);
    exit(3);
  }
}

/* Print the RESULT line: caller's key=value pairs, then rss and provider. */
__attribute__((format(printf, 1, 2)))
static inline void bench_result(const char* fmt, ...) {
  char body[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(body, sizeof body, fmt, ap);
  va_end(ap);
  printf("RESULT %s peak_rss_kb=%ld malloc_so=%s\n", body, bench_peak_rss_kb(), bench_malloc_so());
  fflush(stdout);
}

static inline double bench_arg_d(int argc, char** argv, int i, double def) {
  return i < argc ? strtod(argv[i], NULL) : def;
}
static inline long bench_arg_l(int argc, char** argv, int i, long def) {
  return i < argc ? strtol(argv[i], NULL, 0) : def;
}

/* Write to the block so the allocator's pages are really faulted in, and
 * make the compiler believe the pointer escapes. */
static inline void bench_touch(void* p, size_t n) {
  if (!p || !n) return;
  volatile char* c = (volatile char*)p;
  c[0] = 1;
  c[n - 1] = 2;
  for (size_t i = 4096; i < n; i += 4096) c[i] = 3;
}
static inline void bench_escape(void* p) { __asm__ volatile("" : : "g"(p) : "memory"); }

static inline void* bench_xmalloc_fail(size_t n) {
  fprintf(stderr, "FATAL: allocation of %zu bytes failed (errno %d)\n", n, errno);
  exit(4);
}

#endif
