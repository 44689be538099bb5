/* Misuse gives a message naming hakmem and the pointer, then abort(), as
 * glibc does.  Each case runs in a forked child; the parent checks that the
 * child died of SIGABRT (not SIGSEGV, not a normal exit) and that stderr has
 * a line starting "hakmem: " with the expected words and the pointer in %p
 * form.  Cases: invalid free (stack, global, a foreign mmap page, an
 * unmapped address), double free in every layer (also of a block below
 * the top of the cache), interior pointers through
 * free, realloc and malloc_usable_size in every layer, and
 * realloc/malloc_usable_size of pointers hakmem does not own. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include "hk_test.h"

static char global_buf[256];
static void* volatile sink;
/* Hides the deliberate misuse from the compiler's static warnings. */
static void* volatile launder_slot;
#define L(p) (launder_slot = (void*)(p), launder_slot)

typedef struct mcase {
  const char* name;
  void (*fn)(struct mcase*);
  size_t size;           /* block size for layer cases */
  const char* words[3];  /* one of these must be on the line */
  char ptr[32];          /* %p of the pointer the message must name (set by fn) */
} mcase_t;

/* The child prints "PTR <p>" (the pointer it is about to misuse) to its
 * captured stdout before the bad call; the message must name that pointer. */
static void announce(mcase_t* c, const void* p) {
  printf("PTR %p\n", p);
  fflush(stdout);
  (void)c;
}

static void c_free_stack(mcase_t* c) {
  char buf[64];
  memset(buf, 0, sizeof buf);
  announce(c, buf + 16);
  free(L(buf + 16));
}
static void c_free_global(mcase_t* c) { announce(c, global_buf + 32); free(L(global_buf + 32)); }
static void c_free_mmap(mcase_t* c) {
  char* m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED, "mmap");
  announce(c, m + 4096);
  free(L(m + 4096));
}
static void c_free_mmap_aligned(mcase_t* c) {
  /* a foreign mapping at a 4 MiB boundary, where a segment header would be */
  char* m = mmap(NULL, 12 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED, "mmap");
  char* a = (char*)(((uintptr_t)m + (4 << 20) - 1) & ~(uintptr_t)((4 << 20) - 1));
  memset(a, 0, 4096);
  announce(c, a + 64);
  free(L(a + 64));
}
static void c_free_unmapped(mcase_t* c) {
  char* m = mmap(NULL, 8 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED, "mmap");
  munmap(m, 8 << 20);  /* now surely unmapped */
  announce(c, m + (4 << 20) + 128);
  free(L(m + (4 << 20) + 128));
}
static void c_realloc_stack(mcase_t* c) {
  char buf[64];
  memset(buf, 0, sizeof buf);
  announce(c, buf);
  sink = realloc(L(buf), 100);
}
static void c_usable_global(mcase_t* c) {
  announce(c, global_buf);
  sink = (void*)malloc_usable_size(L(global_buf));
}
static void c_double_free(mcase_t* c) {
  void* p = malloc(c->size);
  CHECK(p, "malloc");
  void* q = malloc(c->size);  /* a neighbour, so the page isn't simply empty */
  memset(p, 1, c->size < 4096 ? c->size : 4096);
  announce(c, p);
  void* again = L(p);  /* the same pointer, laundered before the first free */
  free(p);
  free(again);
  free(q);
}
static void c_double_free_aligned(mcase_t* c) {
  void* p = memalign(4096, c->size);
  CHECK(p, "memalign");
  announce(c, p);
  void* again = L(p);  /* the same pointer, laundered before the first free */
  free(p);
  free(again);
}
/* free(p); free(q); free(p): p is not the top of the cache, so free does
 * not see it (it loads nothing from a block); the list loops p, q, p.  The
 * walk that meets the loop (thread exit, malloc_trim, a spill), or the
 * malloc that would hand p out twice, must abort: not spin.  The message
 * names p or q (where the walk met the loop). */
static mcase_t* dfl_case;
static int dfl_mode;   /* 0 thread exit, 1 malloc_trim, 2 a spill (more frees) */
static void* dfl_body(void* arg) {
  (void)arg;
  size_t n = dfl_case->size;
  void* more[3000];
  if (dfl_mode == 2)
    for (int i = 0; i < 3000; i++) more[i] = malloc(n);
  void* p = malloc(n);
  void* q = malloc(n);
  CHECK(p && q, "malloc");
  printf("PTR %p\nPTR2 %p\n", p, q);
  fflush(stdout);
  void* again = L(p);
  free(p);
  free(q);
  free(again);
  if (dfl_mode == 1) malloc_trim(0);
  if (dfl_mode == 2)
    for (int i = 0; i < 3000; i++) free(more[i]);
  return NULL;
}
static void c_double_free_deep(mcase_t* c) {
  dfl_case = c;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, dfl_body, NULL) == 0, "pthread_create");
  pthread_join(t, NULL);
}
static void c_dfl_exit(mcase_t* c) { dfl_mode = 0; c_double_free_deep(c); }
static void c_dfl_trim(mcase_t* c) { dfl_mode = 1; c_double_free_deep(c); }
static void c_dfl_spill(mcase_t* c) { dfl_mode = 2; c_double_free_deep(c); }

static void c_interior_free(mcase_t* c) {
  char* p = malloc(c->size);
  CHECK(p, "malloc");
  size_t off = c->size > 8192 ? 4096 + 16 : 16;
  announce(c, p + off);
  free(L(p + off));
}
static void c_interior_free_8(mcase_t* c) {
  char* p = malloc(c->size);
  CHECK(p, "malloc");
  announce(c, p + 8);
  free(L(p + 8));
}
/* realloc of a freed small block (still cached): kept in place (a shrink,
 * or the same size through realloc's quick check) it would be the caller's
 * and on a free list at once */
static void realloc_freed(mcase_t* c, size_t n) {
  void* p = malloc(c->size);
  void* q = malloc(c->size);
  CHECK(p && q, "malloc");
  announce(c, p);
  void* again = L(p);
  free(p);
  free(q);
  sink = realloc(again, n);
}
static void c_realloc_freed(mcase_t* c) { realloc_freed(c, c->size / 2); }
static void c_realloc_freed_same(mcase_t* c) { realloc_freed(c, c->size); }
static void c_interior_realloc(mcase_t* c) {
  char* p = malloc(c->size);
  CHECK(p, "malloc");
  size_t off = c->size > 8192 ? 4096 + 32 : 32;
  announce(c, p + off);
  sink = realloc(L(p + off), c->size * 2);
}
/* a shrink that would fit in place: realloc's quick path must decline */
static void c_interior_realloc_shrink(mcase_t* c) {
  char* p = malloc(c->size);
  CHECK(p, "malloc");
  size_t off = c->size > 8192 ? 4096 + 32 : 32;
  announce(c, p + off);
  sink = realloc(L(p + off), c->size - off - 8);
}
static void c_interior_usable(mcase_t* c) {
  char* p = malloc(c->size);
  CHECK(p, "malloc");
  size_t off = c->size > 8192 ? 8192 + 48 : 48;
  announce(c, p + off);
  sink = (void*)malloc_usable_size(L(p + off));
}
static void c_interior_aligned(mcase_t* c) {
  char* p = memalign(4096, c->size);
  CHECK(p, "memalign");
  announce(c, p + 16);
  free(L(p + 16));
}

/* A 2 KiB block on a page whose colour (its first block's offset) is at
 * least 64: pages take the colours in turn, so a few pages find one. */
static char* coloured_block(void) {
  for (int i = 0; i < 200; i++) {
    char* p = malloc(2000);
    CHECK(p, "malloc");
    if (((uintptr_t)p & 0xffff) % 2048 >= 64) return p;
  }
  CHECK(0, "no page of the 2 KiB class has a colour");
  return NULL;
}
/* before a coloured page's first block: 16-aligned, inside the page */
static void c_colour_gap(mcase_t* c) {
  char* p = coloured_block();
  uintptr_t page = (uintptr_t)p & ~(uintptr_t)0xffff;
  char* q = (char*)(page + ((uintptr_t)p & 0xffff) % 2048 - 32);
  announce(c, q);
  free(L(q));
}
/* where block 32 would start: past the last of the page's 31 (the 2 KiB
 * class gives one up to make room for the colours) */
static void c_colour_tail(mcase_t* c) {
  char* p = coloured_block();
  uintptr_t page = (uintptr_t)p & ~(uintptr_t)0xffff;
  uintptr_t first = page + ((uintptr_t)p & 0xffff) % 2048;
  char* q = (char*)(first + 31 * 2048);
  announce(c, q);
  free(L(q));
}

/* A 16 KiB page whose first block starts past 4 KiB (its colour: classes
 * of 4 KiB and more colour over all their slack, 16 KiB here): the page's
 * three blocks, carved in turn, give the colour as their lowest offset. */
static uintptr_t wide_coloured_page(uint32_t* colour) {
  enum { N = 96 };
  static char* b[N];
  for (int i = 0; i < N; i++) CHECK((b[i] = malloc(16000)) != NULL, "malloc");
  for (int i = 0; i + 2 < N; i++) {
    uintptr_t page = (uintptr_t)b[i] & ~(uintptr_t)0xffff;
    uint32_t lo = (uint32_t)((uintptr_t)b[i] & 0xffff);
    if (((uintptr_t)b[i + 1] & ~(uintptr_t)0xffff) != page || ((uintptr_t)b[i + 2] & ~(uintptr_t)0xffff) != page)
      continue;                                  /* not a page's three blocks in a row */
    if (lo >= 4096 + 64 && lo % 16384 == lo) { *colour = lo; return page; }
  }
  CHECK(0, "no 16 KiB page with a colour past 4 KiB among %d blocks", N);
  return 0;
}
/* 4 KiB before a wide-coloured page's first block, and the page's start */
static void c_wide_colour_gap(mcase_t* c) {
  uint32_t colour;
  uintptr_t page = wide_coloured_page(&colour);
  char* q = (char*)(page + colour - 4096);
  announce(c, q);
  free(L(q));
}
static void c_wide_colour_start(mcase_t* c) {
  uint32_t colour;
  char* q = (char*)wide_coloured_page(&colour);
  announce(c, q);
  free(L(q));
}

/* before the first block of a Large segment whose colour is at least 64
 * (segments take the colours in turn, so a few segments find one) */
static void c_large_colour_gap(mcase_t* c) {
  for (int i = 0; i < 400; i++) {
    char* p = malloc(300000);
    CHECK(p, "malloc");
    size_t d = malloc_usable_size(p), off = ((uintptr_t)p & ((4u << 20) - 1)) - 65536;
    if (off % d >= 64) {
      char* q = p - off - 32 + off % d;
      announce(c, q);
      free(L(q));
      return;
    }
  }
  CHECK(0, "no Large segment of the class has a colour");
}

#define INV {"invalid", NULL, NULL}
#define DBL {"double free", NULL, NULL}
#define DBL_OR_INV {"double free", "invalid", NULL}
#define INT {"interior", NULL, NULL}
static mcase_t cases[] = {
    {"free(stack pointer)", c_free_stack, 0, INV, ""},
    {"free(global pointer)", c_free_global, 0, INV, ""},
    {"free(foreign mmap page)", c_free_mmap, 0, INV, ""},
    {"free(foreign mmap at a 4 MiB boundary)", c_free_mmap_aligned, 0, INV, ""},
    {"free(unmapped address)", c_free_unmapped, 0, INV, ""},
    {"realloc(stack pointer)", c_realloc_stack, 0, INV, ""},
    {"malloc_usable_size(global pointer)", c_usable_global, 0, INV, ""},
    {"double free tiny 48", c_double_free, 48, DBL, ""},
    {"double free tiny 8", c_double_free, 8, DBL, ""},
    {"double free tiny 1024", c_double_free, 1024, DBL, ""},
    {"double free mid 4000", c_double_free, 4000, DBL, ""},
    {"double free mid 52K", c_double_free, 52 * 1024, DBL, ""},
    /* a freed large/huge block may already be returned to the OS: then it is
     * no longer hakmem's and "invalid" is the right word */
    {"double free large 100000", c_double_free, 100000, DBL_OR_INV, ""},
    {"double free huge 3 MiB", c_double_free, 3 << 20, DBL_OR_INV, ""},
    {"double free memalign(4096) tiny", c_double_free_aligned, 100, DBL_OR_INV, ""},
    {"double free, not the top, tiny 16, thread exit", c_dfl_exit, 16, DBL, ""},
    {"double free, not the top, tiny 100, malloc_trim", c_dfl_trim, 100, DBL, ""},
    {"double free, not the top, tiny 100, spill", c_dfl_spill, 100, DBL, ""},
    {"double free, not the top, mid 5000, thread exit", c_dfl_exit, 5000, DBL, ""},
    {"double free, not the top, mid 40000, spill", c_dfl_spill, 40000, DBL, ""},
    {"interior free tiny", c_interior_free, 100, INT, ""},
    {"interior free tiny +8", c_interior_free_8, 64, INT, ""},
    {"interior free mid", c_interior_free, 20000, INT, ""},
    {"interior free large", c_interior_free, 200000, INT, ""},
    {"interior free huge", c_interior_free, 3 << 20, INT, ""},
    {"interior free of memalign(4096) block", c_interior_aligned, 100, INT, ""},
    {"free in a page's colour gap", c_colour_gap, 2000, INT, ""},
    {"free past a coloured page's last block", c_colour_tail, 2000, INT, ""},
    {"free 4 KiB before a wide-coloured page's first block", c_wide_colour_gap, 16000, INT, ""},
    {"free of a wide-coloured page's start", c_wide_colour_start, 16000, INT, ""},
    {"free in a Large segment's colour gap", c_large_colour_gap, 300000, INT, ""},
    {"realloc after free tiny", c_realloc_freed, 200, {"after free", NULL, NULL}, ""},
    {"realloc after free mid", c_realloc_freed, 20000, {"after free", NULL, NULL}, ""},
    {"realloc after free tiny, same size", c_realloc_freed_same, 24, {"after free", NULL, NULL}, ""},
    {"realloc after free mid, same size", c_realloc_freed_same, 20000, {"after free", NULL, NULL}, ""},
    {"interior realloc tiny", c_interior_realloc, 200, INT, ""},
    {"interior realloc mid", c_interior_realloc, 30000, INT, ""},
    {"interior realloc large", c_interior_realloc, 500000, INT, ""},
    {"interior realloc huge", c_interior_realloc, 2 << 20, INT, ""},
    {"interior realloc in place tiny", c_interior_realloc_shrink, 200, INT, ""},
    {"interior realloc in place mid", c_interior_realloc_shrink, 30000, INT, ""},
    {"interior realloc in place large", c_interior_realloc_shrink, 500000, INT, ""},
    {"interior malloc_usable_size tiny", c_interior_usable, 300, INT, ""},
    {"interior malloc_usable_size mid", c_interior_usable, 40000, INT, ""},
    {"interior malloc_usable_size large", c_interior_usable, 700000, INT, ""},
    {"interior malloc_usable_size huge", c_interior_usable, 5 << 20, INT, ""},
};

static void run_case(void* arg) {
  mcase_t* c = arg;
  /* warm up so the case hits an initialised allocator with live pages */
  void* w[16];
  for (int i = 0; i < 16; i++) w[i] = malloc(i * 1000);
  for (int i = 0; i < 16; i += 2) free(w[i]);
  c->fn(c);
  /* still alive: the misuse went unnoticed */
  printf("SURVIVED\n");
  fflush(stdout);
  _exit(0);
}

int main(void) {
  hk_begin("misuse/misuse", 55);
  hk_child_t* ch = malloc(sizeof *ch);
  CHECK(ch, "malloc");
  int failures = 0;
  static char report[16384];  /* failures, printed last so the runner's tail shows them */
  size_t rl = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mcase_t* c = &cases[i];
    hk_run_forked(run_case, c, ch);
    char ptr[64] = "", ptr2[64] = "";
    const char* pl = strstr(ch->out, "PTR ");
    if (pl) sscanf(pl + 4, "%63s", ptr);
    pl = strstr(ch->out, "PTR2 ");          /* a second pointer the message may name */
    if (pl) sscanf(pl + 5, "%63s", ptr2);
    const char* why = NULL;
    char line[1024] = "";
    /* the message line: starts with "hakmem: " */
    for (const char* p = ch->err; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
      if (!strncmp(p, "hakmem: ", 8)) {
        size_t len = strcspn(p, "\n");
        if (len >= sizeof line) len = sizeof line - 1;
        memcpy(line, p, len);
        line[len] = 0;
        break;
      }
    }
    int word_ok = 0;
    for (int w = 0; w < 3 && c->words[w]; w++)
      if (strstr(line, c->words[w])) word_ok = 1;
    if (!WIFSIGNALED(ch->status) || WTERMSIG(ch->status) != SIGABRT)
      why = strstr(ch->out, "SURVIVED") ? "the misuse went undetected (no abort)" : "did not die of SIGABRT";
    else if (!line[0])
      why = "no stderr line starting 'hakmem: '";
    else if (!word_ok)
      why = "the message does not say what happened";
    else if (!ptr[0] || (!strstr(line, ptr) && !(ptr2[0] && strstr(line, ptr2))))
      why = "the message does not name the pointer";
    if (why) {
      failures++;
      char* nl = strchr(ch->err, '\n');
      if (nl) *nl = 0;
      int k = snprintf(report + rl, sizeof report - rl, "FAIL %s: %s: %s; pointer %s; expected '%s'%s%s; stderr: %.200s\n",
                       c->name, hk_status_str(ch->status), why, ptr, c->words[0], c->words[1] ? " or " : "",
                       c->words[1] ? c->words[1] : "", ch->err);
      if (k > 0 && (size_t)k < sizeof report - rl) rl += (size_t)k;
    } else {
      printf("ok   %-45s %s\n", c->name, line);
    }
  }
  free(ch);
  fputs(report, stderr);
  CHECK(failures == 0, "%d of %zu misuse cases failed (see above)", failures, sizeof cases / sizeof cases[0]);
  printf("misuse: ok\n");
  return 0;
}
