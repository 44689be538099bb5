/* replay: replay a recorded malloc/free/realloc trace (bench/tools/trace_rec.c).
 *
 *   replay TRACE[.gz|.xz] [seconds]
 *
 * The trace is decompressed and parsed into an mmap'd array before the
 * clock starts (so neither parsing nor the trace's own memory goes through
 * the allocator under test), then replayed from start to end, again and
 * again until `seconds` have passed (at least once); blocks still live at
 * the end of a pass are freed.  New blocks get one byte written per 4 KiB
 * page, so RSS reflects what the program would have touched.
 * Reports events per second; trace_kb is the parsed trace's own RSS share,
 * the same for every allocator. */
#include "common.h"
#include <sys/mman.h>

typedef struct { uint8_t op; uint8_t align_log2; uint32_t ref; uint64_t size; } ev_t;

#define MAX_EVENTS (64UL << 20)

static void* reserve(size_t bytes) {
  void* p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) { perror("mmap"); exit(1); }
  return p;
}

static FILE* open_trace(const char* path, int* piped) {
  size_t n = strlen(path);
  const char* tool = NULL;
  if (n > 3 && strcmp(path + n - 3, ".gz") == 0) tool = "gzip -dc";
  if (n > 3 && strcmp(path + n - 3, ".xz") == 0) tool = "xz -dc";
  *piped = tool != NULL;
  if (!tool) return fopen(path, "r");
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "%s '%s'", tool, path);
  return popen(cmd, "r");
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s TRACE[.gz|.xz] [seconds]\n", argv[0]);
    return 2;
  }
  bench_check_malloc("replay");
  double seconds = bench_arg_d(argc, argv, 2, 1);
  int piped;
  FILE* f = open_trace(argv[1], &piped);
  if (!f) { fprintf(stderr, "replay: cannot open %s\n", argv[1]); return 1; }
  ev_t* ev = reserve(MAX_EVENTS * sizeof(ev_t));
  size_t nev = 0;
  uint64_t next_id = 0;
  char line[128];
  while (fgets(line, sizeof line, f) && nev < MAX_EVENTS) {
    ev_t e = {0};
    unsigned long long a = 0, b = 0;
    e.op = (uint8_t)line[0];
    switch (line[0]) {
      case 'a': case 'c':
        if (sscanf(line + 1, "%llu", &a) != 1) continue;
        e.size = a; next_id++; break;
      case 'm':
        if (sscanf(line + 1, "%llu %llu", &a, &b) != 2) continue;
        e.align_log2 = (uint8_t)(63 - __builtin_clzll(a ? a : 1)); e.size = b; next_id++; break;
      case 'f':
        if (sscanf(line + 1, "%llu", &a) != 1 || a == 0 || a > next_id) continue;
        e.ref = (uint32_t)(next_id - a); break;
      case 'r':
        if (sscanf(line + 1, "%llu %llu", &a, &b) != 2 || a == 0 || a > next_id) continue;
        e.ref = (uint32_t)(next_id - a); e.size = b; next_id++; break;
      default: continue;
    }
    ev[nev++] = e;
  }
  if (piped ? pclose(f) != 0 : fclose(f) != 0) { fprintf(stderr, "replay: error reading %s\n", argv[1]); return 1; }
  if (!nev) { fprintf(stderr, "replay: empty trace %s\n", argv[1]); return 1; }
  void** tab = reserve((next_id + 1) * sizeof(void*));
  long trace_kb = bench_rss_kb();

  unsigned long long done = 0;
  long passes = 0;
  double t0 = bench_now(), t1;
  do {
    uint32_t id = 0;
    for (size_t i = 0; i < nev; i++) {
      const ev_t* e = &ev[i];
      void* p;
      switch (e->op) {
        case 'a': p = malloc(e->size); if (!p) bench_xmalloc_fail(e->size); bench_touch(p, e->size); tab[id++] = p; break;
        case 'c': p = calloc(1, e->size); if (!p) bench_xmalloc_fail(e->size); bench_touch(p, e->size); tab[id++] = p; break;
        case 'm':
          p = aligned_alloc((size_t)1 << e->align_log2, e->size);
          if (!p) bench_xmalloc_fail(e->size);
          bench_touch(p, e->size); tab[id++] = p; break;
        case 'f': free(tab[e->ref]); tab[e->ref] = NULL; break;
        case 'r':
          p = realloc(tab[e->ref], e->size);
          if (!p) bench_xmalloc_fail(e->size);
          bench_touch(p, e->size); tab[e->ref] = NULL; tab[id++] = p; break;
      }
    }
    for (uint32_t i = 0; i < id; i++) { free(tab[i]); tab[i] = NULL; }
    done += nev;
    passes++;
    t1 = bench_now();
  } while (t1 - t0 < seconds);

  const char* name = strrchr(argv[1], '/');
  bench_result("bench=replay trace=%s threads=1 value=%.0f unit=events/s events=%zu passes=%ld "
               "seconds=%.3f trace_kb=%ld",
               name ? name + 1 : argv[1], (double)done / (t1 - t0), nev, passes, t1 - t0, trace_kb);
  return 0;
}
