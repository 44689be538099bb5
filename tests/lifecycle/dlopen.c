/* dlopen of libhakmem.so into a running program (issue 6, item 6).
 * This program must itself run on glibc: it never names malloc/free, so the
 * linker pulls nothing from libhakmem.a into it (checked at run time with
 * dladdr).  While two threads allocate with glibc, it dlopens
 * $BUILD/libhakmem.so (found next to this binary's build folder, or
 * HAKMEM_SO), allocates through hakmem's exported functions in every layer
 * and from several threads, frees glibc's blocks with glibc and hakmem's with
 * hakmem, opens it a second time with RTLD_GLOBAL, and at the end closes it
 * and checks that threads and fork still work afterwards. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef void* (*malloc_fn)(size_t);
typedef void (*free_fn)(void*);
typedef void* (*realloc_fn)(void*, size_t);
typedef void* (*memalign_fn)(size_t, size_t);
typedef size_t (*usable_fn)(const void*);
typedef int (*owns_fn)(const void*);

static malloc_fn g_malloc, h_malloc;
static free_fn g_free, h_free;
static realloc_fn h_realloc;
static memalign_fn h_memalign;
static usable_fn h_usable;
static owns_fn h_owns;
static atomic_int stop;

static void die(const char* m, const char* extra) {
  fprintf(stderr, "FAIL dlopen: %s %s\n", m, extra ? extra : "");
  fflush(stderr);
  _exit(1);
}

static void* glibc_worker(void* a) {   /* keeps allocating with glibc all along */
  void* p[64] = {0};
  unsigned x = 1;
  while (!atomic_load(&stop)) {
    x = x * 1103515245 + 12345;
    unsigned i = (x >> 8) % 64;
    if (p[i]) { g_free(p[i]); p[i] = NULL; }
    else { p[i] = g_malloc(1 + (x >> 16) % 5000); if (!p[i]) die("glibc malloc NULL", NULL); memset(p[i], 7, 1); }
  }
  for (int i = 0; i < 64; i++) if (p[i]) g_free(p[i]);
  return a;
}

static void* hak_worker(void* a) {     /* allocates with hakmem in a thread */
  static const size_t sizes[] = {8, 100, 1000, 4000, 40000, 80000, 600000, 1500000, 5000000};
  for (int r = 0; r < 200; r++) {
    void* p[9];
    for (int i = 0; i < 9; i++) {
      p[i] = h_malloc(sizes[i]);
      if (!p[i]) die("hakmem malloc NULL in thread", NULL);
      if (h_usable(p[i]) < sizes[i]) die("usable size < request", NULL);
      memset(p[i], i + r, sizes[i] < 65536 ? sizes[i] : 65536);
    }
    p[3] = h_realloc(p[3], 9000);
    if (!p[3]) die("hakmem realloc NULL", NULL);
    for (int i = 0; i < 9; i++) {
      if (((unsigned char*)p[i])[0] != (unsigned char)(i + r)) die("hakmem block damaged", NULL);
      if (!h_owns(p[i])) die("hak_owns false for a live block", NULL);
      h_free(p[i]);
    }
  }
  return a;
}

int main(int argc, char** argv) {
  (void)argc; (void)argv;
  setvbuf(stdout, NULL, _IOLBF, 0);
  g_malloc = (malloc_fn)dlsym(RTLD_DEFAULT, "malloc");
  g_free = (free_fn)dlsym(RTLD_DEFAULT, "free");
  Dl_info di;
  if (!g_malloc || !dladdr((void*)g_malloc, &di) || !di.dli_fname) die("cannot resolve malloc", NULL);
  char self[PATH_MAX];
  ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
  if (sl <= 0) die("readlink /proc/self/exe", NULL);
  self[sl] = 0;
  if (strstr(di.dli_fname, "hakmem") || !strcmp(di.dli_fname, self) || di.dli_fname[0] == 0)
    die("precondition: this program's malloc must not be hakmem, but it is in", di.dli_fname);
  printf("dlopen: program's malloc comes from %s\n", di.dli_fname);

  char so[PATH_MAX + 64];
  const char* env = getenv("HAKMEM_SO");
  if (env) snprintf(so, sizeof so, "%s", env);
  else {
    char* s = strrchr(self, '/');              /* BUILD/tests/lifecycle/dlopen -> BUILD/libhakmem.so */
    for (int up = 0; up < 3 && s; up++) { *s = 0; s = strrchr(self, '/'); }
    snprintf(so, sizeof so, "%s/libhakmem.so", self);
  }

  void* before[1000];
  for (int i = 0; i < 1000; i++) { before[i] = g_malloc((size_t)(i * 37 % 3000) + 1); memset(before[i], 0x42, 1); }
  pthread_t gw[2];
  for (int i = 0; i < 2; i++) pthread_create(&gw[i], NULL, glibc_worker, NULL);

  void* h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  if (!h) die("dlopen failed:", dlerror());
  h_malloc = (malloc_fn)dlsym(h, "hak_malloc");
  h_free = (free_fn)dlsym(h, "hak_free");
  h_realloc = (realloc_fn)dlsym(h, "hak_realloc");
  h_memalign = (memalign_fn)dlsym(h, "hak_memalign");
  h_usable = (usable_fn)dlsym(h, "hak_usable_size");
  h_owns = (owns_fn)dlsym(h, "hak_owns");
  if (!h_malloc || !h_free || !h_realloc || !h_memalign || !h_usable || !h_owns) die("missing hak_* symbol in", so);

  hak_worker(NULL);
  pthread_t hw[4];
  for (int i = 0; i < 4; i++) pthread_create(&hw[i], NULL, hak_worker, NULL);
  for (int i = 0; i < 4; i++) pthread_join(hw[i], NULL);
  void* a = h_memalign(1 << 21, 100);
  if (!a || ((uintptr_t)a & ((1 << 21) - 1))) die("hak_memalign(2 MiB) misaligned", NULL);
  h_free(a);

  /* the library's own malloc symbol, if it exports one, is hakmem too */
  malloc_fn lm = (malloc_fn)dlsym(h, "malloc");
  free_fn lf = (free_fn)dlsym(h, "free");
  Dl_info li;
  int own_malloc = lm && dladdr((void*)lm, &li) && li.dli_fname && strstr(li.dli_fname, "hakmem");
  if (own_malloc) {
    void* p = lm(777);
    if (!p || !h_owns(p)) die("the library's malloc did not give a hakmem block", NULL);
    lf(p);
  }
  /* glibc's blocks are not hakmem's */
  int owned = 0;
  for (int i = 0; i < 1000; i++) owned += h_owns(before[i]) ? 1 : 0;
  if (owned) die("hak_owns claims glibc blocks", NULL);
  void* h2 = dlopen(so, RTLD_NOW | RTLD_GLOBAL);
  if (!h2) die("second dlopen (RTLD_GLOBAL) failed:", dlerror());
  void* p = h_malloc(12345);
  if (!p) die("hak_malloc after RTLD_GLOBAL", NULL);
  h_free(p);

  atomic_store(&stop, 1);
  for (int i = 0; i < 2; i++) pthread_join(gw[i], NULL);
  for (int i = 0; i < 1000; i++) {
    if (((unsigned char*)before[i])[0] != 0x42) die("glibc block damaged", NULL);
    g_free(before[i]);
  }
  printf("dlopen: loaded %s into a running threaded program, 5 threads allocated on it%s\n", so,
         own_malloc ? "; its malloc symbol works too" : "; (no malloc symbol: HAK_NO_OVERRIDE build)");

  /* unload, then threads and fork must still work */
  dlclose(h2);
  dlclose(h);
  printf("dlopen: closed; the program goes on for 0.6 s\n");
  /* the program goes on running after the unload: give any thread the
   * library left behind (e.g. its background decay thread, which wakes every
   * HAKMEM_DECAY_MS/4 >= 50 ms) time to wake up.  Without this wait the
   * test would end before such a thread runs again and miss the crash. */
  struct timespec nap = {0, 600 * 1000 * 1000};
  nanosleep(&nap, NULL);
  pthread_t t;
  pthread_create(&t, NULL, glibc_worker, NULL);
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  pid_t pid = fork();
  if (pid == 0) _exit(g_malloc(10) ? 0 : 1);
  int st;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) die("fork after dlclose", NULL);
  printf("dlopen: ok (dlclose, a new thread and fork afterwards are fine)\n");
  return 0;
}
