/* Misuse detection (issue 6, item 7), in the style of public allocator
 * security test suites: invalid free, interior-pointer free, double free,
 * overflow, underflow, use after free, freelist poisoning.
 *
 * Each case runs in a fresh process (this binary re-executed with --case),
 * once in the default mode and once with HAKMEM_SECURE=1.  Outcomes:
 *   caught     abort() with a "hakmem: <what> of <ptr>" line on stderr
 *              (or SIGSEGV where a guard page is the expected defence)
 *   mitigated  no abort, but the attack did not work (e.g. no immediate reuse)
 *   corrupted  the misuse silently corrupted the heap (e.g. two live blocks
 *              at one address, or malloc returning an attacker's pointer)
 *   crashed    another signal (a crash is not a clear message)
 *   missed     nothing noticed
 * Asserted (both modes): the default mode's promise -- a pointer hakmem does
 * not own, an interior pointer, an immediate double free -- is caught, and the
 * message names hakmem, the pointer, and (tiny/mid double frees) the class.
 * Asserted in secure mode only: a free-list link overwritten after the free
 * (the link/... cases: a use-after-free write of one word, a linear overflow
 * into a free neighbour) aborts with "corrupted free list link at <the
 * block> (<class>)" before malloc can return the attacker's address; a free
 * of a block start malloc never returned (the unreturned/... cases, which
 * the default mode takes) aborts with a message that says so.
 * Everything else is counted and printed per mode. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "../stress/rel_alloc.h"

#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wunknown-warning-option"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"

/* Calls through volatile pointers: the compiler may neither drop a
 * malloc/free pair nor assume two malloc results differ. */
static void* w_malloc(size_t n) { return A_MALLOC(n); }
static void w_free(void* p) { A_FREE(p); }
static void* w_realloc(void* p, size_t n) { return A_REALLOC(p, n); }
static void* w_memalign(size_t a, size_t n) { return A_MEMALIGN(a, n); }
static void* (*volatile v_malloc)(size_t) = w_malloc;
static void (*volatile v_free)(void*) = w_free;
static void* (*volatile v_realloc)(void*, size_t) = w_realloc;
static void* (*volatile v_memalign)(size_t, size_t) = w_memalign;
#undef A_MALLOC
#undef A_FREE
#undef A_REALLOC
#undef A_MEMALIGN
#define A_MALLOC(n) v_malloc(n)
#define A_FREE(p) v_free(p)
#define A_REALLOC(p, n) v_realloc(p, n)
#define A_MEMALIGN(a, n) v_memalign(a, n)

#define MiB ((size_t)1 << 20)
enum { EX_MISSED = 0, EX_MITIGATED = 40, EX_CORRUPTED = 41 };

static void say_ptr(const void* p) { fprintf(stderr, "case-ptr: %p\n", p); }
static void* must(void* p) { if (!p) { fprintf(stderr, "setup malloc NULL\n"); _exit(2); } return p; }

/* ---- invalid frees ---- */
static int c_invalid_stack(void) { char buf[128]; memset(buf, 1, sizeof buf); say_ptr(buf + 16); A_FREE(buf + 16); return EX_MISSED; }
static char g_buf[4096];
static int c_invalid_global(void) { say_ptr(g_buf + 64); A_FREE(g_buf + 64); return EX_MISSED; }
static int c_invalid_mmap(void) {
  char* m = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  say_ptr(m + 64); A_FREE(m + 64); return EX_MISSED;
}
static int c_invalid_fake_segment(void) {   /* a 4 MiB-aligned region full of fake headers */
  size_t sz = 16 * MiB;
  char* m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char* a = (char*)(((uintptr_t)m + 4 * MiB - 1) & ~(uintptr_t)(4 * MiB - 1));
  for (size_t i = 0; i < 8 * MiB / 4; i++) ((uint32_t*)a)[i] = (i & 1) ? 0x10u : 0x48414b53u;
  say_ptr(a + 65536 + 64); A_FREE(a + 65536 + 64); return EX_MISSED;
}
static int c_invalid_free_page(void) {   /* a never-used page of a small segment */
  void* b = A_MALLOC(48 * 1024);
  char* seg = (char*)((uintptr_t)b & ~(uintptr_t)(4 * MiB - 1));
  say_ptr(seg + 63 * 65536); A_FREE(seg + 63 * 65536); return EX_MISSED;
}
/* a block start malloc never returned, past the page's bump pointer: within
 * the next carve (30), or further (60); the default mode takes it
 * (README.md says so), secure mode must not */
static int unreturned(int k) {
  char* p[5];
  for (int i = 0; i < 5; i++) p[i] = must(A_MALLOC(800));   /* class 896: 72 blocks a page */
  char* q = p[0] + (size_t)k * 896;
  say_ptr(q); A_FREE(q);
  void* seen[200];
  for (int i = 0; i < 200; i++) {
    seen[i] = A_MALLOC(800);
    for (int j = 0; j < i; j++) if (seen[j] == seen[i]) return EX_CORRUPTED;
  }
  return EX_MISSED;
}
static int c_invalid_unreturned_next(void) { return unreturned(30); }
static int c_invalid_unreturned_bump(void) { return unreturned(60); }
static int c_invalid_wild(void) { void* p = (void*)(uintptr_t)0x7ff012345670ULL; say_ptr(p); A_FREE(p); return EX_MISSED; }
static int c_invalid_low(void) { void* p = (void*)(uintptr_t)0x1010; say_ptr(p); A_FREE(p); return EX_MISSED; }

/* ---- interior pointers ---- */
static int interior(size_t n, size_t off) { char* p = must(A_MALLOC(n)); say_ptr(p + off); A_FREE(p + off); return EX_MISSED; }
static int c_interior_tiny(void) { return interior(64, 16); }
static int c_interior_tiny_1(void) { return interior(100, 1); }
static int c_interior_mid(void) { return interior(4000, 2048); }
static int c_interior_large(void) { return interior(200000, 4096); }
static int c_interior_huge(void) { return interior(3 * MiB, 8192); }
static int c_interior_memalign(void) { char* p = must(A_MEMALIGN(4096, 100)); say_ptr(p + 32); A_FREE(p + 32); return EX_MISSED; }

/* ---- double frees ---- */
static int dfree(size_t n) {
  char* p = must(A_MALLOC(n));
  say_ptr(p);
  A_FREE(p);
  A_FREE(p);
  /* not caught: does the heap now hand out the same block twice? */
  void* a = A_MALLOC(n); void* b = A_MALLOC(n);
  return (a && a == b) ? EX_CORRUPTED : EX_MISSED;
}
static int c_double_tiny(void) { return dfree(32); }
static int c_double_zero(void) { return dfree(0); }
static int c_double_mid(void) { return dfree(6000); }
static int c_double_large(void) { return dfree(100000); }
static int c_double_huge(void) { return dfree(2 * MiB); }
static int c_double_delayed(void) {           /* free(a); free(b); free(a) */
  void* a = must(A_MALLOC(48)); void* b = must(A_MALLOC(48));
  say_ptr(a); A_FREE(a); A_FREE(b); A_FREE(a);
  void* x = A_MALLOC(48); void* y = A_MALLOC(48); void* z = A_MALLOC(48);
  return (x == y || y == z || x == z) ? EX_CORRUPTED : EX_MISSED;
}
static int c_double_after_churn(void) {       /* the block was reused meanwhile? then it is live again */
  void* a = must(A_MALLOC(200));
  say_ptr(a); A_FREE(a);
  for (int i = 0; i < 1000; i++) { void* t = A_MALLOC((size_t)(i % 50) * 20 + 1); A_FREE(t); }
  A_FREE(a);
  void* x = A_MALLOC(200); void* y = A_MALLOC(200);
  return (x == y) ? EX_CORRUPTED : EX_MISSED;
}
static int c_double_realloc(void) {           /* free of the old pointer after realloc moved it */
  char* p = must(A_MALLOC(100));
  char* q = must(A_REALLOC(p, 20000));
  if (q == p) return EX_MITIGATED;
  say_ptr(p); A_FREE(p);
  void* x = A_MALLOC(100); void* y = A_MALLOC(100);
  return (x == y) ? EX_CORRUPTED : EX_MISSED;
}
static void* free_it(void* p) { A_FREE(p); return NULL; }
static int c_double_cross_thread(void) {
  void* p = must(A_MALLOC(64));
  say_ptr(p);
  pthread_t t;
  pthread_create(&t, NULL, free_it, p); pthread_join(t, NULL);
  pthread_create(&t, NULL, free_it, p); pthread_join(t, NULL);
  A_FREE(must(A_MALLOC(64)));
  void* x = A_MALLOC(64); void* y = A_MALLOC(64);
  return (x == y) ? EX_CORRUPTED : EX_MISSED;
}

/* ---- overflow / underflow (caught by canaries or guard pages) ---- */
static int overflow(size_t n, size_t past) {
  char* p = must(A_MALLOC(n));
  size_t u = A_USABLE(p);
  say_ptr(p);
  memset(p, 'A', u + past);                  /* past bytes beyond the usable size */
  A_FREE(p);
  for (int i = 0; i < 64; i++) { void* t = A_MALLOC(n); A_FREE(t); }
  return EX_MISSED;
}
static int c_overflow_tiny_8(void) { return overflow(24, 8); }
static int c_overflow_tiny_1(void) { return overflow(64, 1); }
static int c_overflow_mid_16(void) { return overflow(3000, 16); }
static int c_overflow_large_16(void) { return overflow(150000, 16); }
static int c_overflow_huge_guard(void) { return overflow(3 * MiB, 4096); }
static int c_overflow_in_slack(void) {       /* past the request, inside the usable size */
  char* p = must(A_MALLOC(20));
  say_ptr(p); memset(p, 'B', 24); A_FREE(p); return EX_MISSED;
}
static int c_underflow_tiny(void) { char* p = must(A_MALLOC(64)); say_ptr(p); memset(p - 8, 'C', 8); A_FREE(p); return EX_MISSED; }
static int c_freelist_poison(void) {         /* overflow into a free neighbour's link word */
  char* blk[80];
  for (int i = 0; i < 64; i++) blk[i] = must(A_MALLOC(32));
  int k = -1;
  for (int i = 0; i < 63 && k < 0; i++)
    for (int j = 0; j < 64; j++)
      if (blk[j] == blk[i] + A_USABLE(blk[i])) { k = i; A_FREE(blk[j]); blk[j] = NULL; break; }
  if (k < 0) return EX_MITIGATED;            /* no two adjacent blocks: layout randomised */
  say_ptr(blk[k]);
  memset(blk[k] + A_USABLE(blk[k]), 0x41, 16); /* smash the freed neighbour's first words */
  for (int i = 0; i < 8; i++) {
    void* x = A_MALLOC(32);
    if ((uintptr_t)x == 0x4141414141414141ULL || (x && ((uintptr_t)x >> 40) == 0x414141)) return EX_CORRUPTED;
    if (!x) return EX_MITIGATED;
  }
  return EX_MISSED;
}

/* ---- use after free ---- */
static int uaf_write(size_t n) {
  char* p = must(A_MALLOC(n));
  say_ptr(p);
  A_FREE(p);
  memset(p, 0x41, n < 64 ? n : 64);          /* write into the freed block */
  for (int i = 0; i < 16; i++) {
    void* x = A_MALLOC(n);
    if ((uintptr_t)x == 0x4141414141414141ULL) return EX_CORRUPTED;
  }
  void* y = A_MALLOC(n);
  A_FREE(y);
  return EX_MISSED;
}
static int c_uaf_write_tiny(void) { return uaf_write(64); }
static int c_uaf_write_mid(void) { return uaf_write(8000); }
static int c_uaf_write_large(void) { return uaf_write(300000); }
static int c_uaf_reuse_tiny(void) {          /* immediate reuse hands the freed block to someone else */
  void* p = must(A_MALLOC(64)); say_ptr(p); A_FREE(p);
  void* q = A_MALLOC(64);
  return q == p ? EX_MISSED : EX_MITIGATED;
}
static int c_uaf_reuse_mid(void) {
  void* p = must(A_MALLOC(5000)); say_ptr(p); A_FREE(p);
  void* q = A_MALLOC(5000);
  return q == p ? EX_MISSED : EX_MITIGATED;
}
static int c_uaf_read_huge(void) {           /* unmapped (or guarded) after free? */
  volatile char* p = must(A_MALLOC(4 * MiB)); say_ptr((void*)p);
  p[100] = 1; A_FREE((void*)p);
  char c = p[100];
  (void)c;
  return EX_MISSED;
}
/* ---- free-list links overwritten (encoded and checked in secure mode) ----
 * The victim is freed, then 300 other blocks: in secure mode that pushes it
 * out of the delayed-reuse FIFO into its free list, where its first word is
 * a link (in default mode it is there at once).  Only the link word is
 * written; the free mark beside it stays intact, so the link is all that
 * stands between the attacker and malloc.  Then up to 4096 mallocs of the
 * size: returning the fake block is "corrupted". */
static char g_fake[512] __attribute__((aligned(64)));
static void* g_fill[300];
//! 300 small blocks whose frees push earlier ones out of the secure FIFO.
static void fill_alloc(void) { for (int i = 0; i < 300; i++) g_fill[i] = must(A_MALLOC(16)); }
//! Frees them.
static void fill_free(void) { for (int i = 0; i < 300; i++) A_FREE(g_fill[i]); }
//! 1 if x points into the attacker's fake block.
static int in_fake(const void* x) { return (const char*)x >= g_fake && (const char*)x < g_fake + sizeof g_fake; }

//! Mallocs of n until the fake block (or target) comes back.
static int drain_for(size_t n, const void* target) {
  for (int i = 0; i < 4096; i++) {
    void* x = A_MALLOC(n);
    if (!x) return EX_MITIGATED;
    if (in_fake(x) || x == target) return EX_CORRUPTED;
  }
  return EX_MISSED;
}

/* pre: same-class blocks freed first, so that the victim lands on a linked
 * list and not in an array cache (Mid ring of 64, Large bin of 3);
 * forge: also write a valid free mark into the fake block, as an attacker
 * who read one freed block's mark (cookie ^ its address) can */
//! Overwrites the link of a freed block of n bytes with the fake block.
static int link_attack(size_t n, int pre, int forge) {
  char* blk[80];
  fill_alloc();
  for (int i = 0; i < pre; i++) blk[i] = must(A_MALLOC(n));
  char* v = must(A_MALLOC(n));
  for (int i = 0; i < pre; i++) A_FREE(blk[i]);
  say_ptr(v);
  A_FREE(v);
  fill_free();
  uintptr_t* w = (uintptr_t*)v;
  if (forge) ((uintptr_t*)g_fake)[1] = (w[1] ^ (uintptr_t)v) ^ (uintptr_t)g_fake;
  w[0] = (uintptr_t)g_fake;                  /* the write after free */
  return drain_for(n, NULL);
}
static int c_link_tiny(void) { return link_attack(64, 0, 0); }
static int c_link_tiny_forged(void) { return link_attack(64, 0, 1); }
static int c_link_mid(void) { return link_attack(8000, 72, 0); }
static int c_link_mid_forged(void) { return link_attack(8000, 72, 1); }
static int c_link_large(void) { return link_attack(300000, 4, 0); }

//! The link redirected to a live block of the class, its mark forged: two
//! owners for one block if malloc follows it.
static int c_link_to_live(void) {
  fill_alloc();
  char* live = must(A_MALLOC(64));
  char* v = must(A_MALLOC(64));
  say_ptr(v);
  A_FREE(v);
  fill_free();
  uintptr_t* w = (uintptr_t*)v;
  ((uintptr_t*)live)[1] = (w[1] ^ (uintptr_t)v) ^ (uintptr_t)live;
  w[0] = (uintptr_t)live;
  return drain_for(64, live);
}

//! A linear overflow from a live block into its free neighbour's link.
static int c_link_neighbour(void) {
  char* blk[80];
  fill_alloc();
  for (int i = 0; i < 64; i++) blk[i] = must(A_MALLOC(56));   /* 64-byte blocks, either mode */
  int a = -1, b = -1;
  for (int i = 0; i < 64 && a < 0; i++)
    for (int j = 0; j < 64; j++)
      if (blk[j] == blk[i] + 64) { a = i; b = j; break; }
  if (a < 0) return EX_MITIGATED;              /* no two adjacent blocks */
  say_ptr(blk[b]);
  A_FREE(blk[b]);
  fill_free();
  for (size_t off = 56; off < 72; off += 8) {  /* the slack (secure: the trailer), then the link */
    uintptr_t f = (uintptr_t)g_fake;
    memcpy(blk[a] + off, &f, 8);
  }
  return drain_for(56, NULL);
}

/* The victim's list reaches the central lists (its thread exits) and is
 * popped there by another thread: the lock-free pop's check. */
//! Thread: frees the victim and exits, flushing its lists to central.
static void* link_central_thread(void* arg) {
  fill_alloc();
  char* v = must(A_MALLOC(64));
  A_FREE(v);
  fill_free();
  *(char**)arg = v;
  return NULL;
}
//! Overwrites the link of that victim, now in a central list.
static int c_link_central(void) {
  char* v;
  pthread_t t;
  pthread_create(&t, NULL, link_central_thread, &v);
  pthread_join(t, NULL);
  say_ptr(v);
  ((uintptr_t*)v)[0] = (uintptr_t)g_fake;
  return drain_for(64, NULL);
}

/* A Large block freed, then freed again by a pthread-key destructor that
 * runs after hakmem's own thread teardown (the shared heap's path): secure
 * mode checked only threads with a heap of their own, and took the block
 * waiting in the quarantine as live (one block handed out twice). */
static pthread_key_t dt_key;
static void dt_dtor(void* v) { w_free(v); }
static void* dt_thread(void* p) {
  w_free(must(w_malloc(100)));      /* a heap of its own, torn down before dt_dtor runs */
  pthread_setspecific(dt_key, p);
  return NULL;
}
static int c_double_large_teardown(void) {
  void* p = must(w_malloc(300000));
  say_ptr(p);
  pthread_key_create(&dt_key, dt_dtor);
  w_free(p);
  pthread_t t;
  pthread_create(&t, NULL, dt_thread, p);
  pthread_join(t, NULL);
  return EX_MISSED;
}

/* ---- other entry points with foreign pointers ---- */
static int c_realloc_invalid(void) { char buf[64]; say_ptr(buf); void* r = A_REALLOC(buf, 100); (void)r; return EX_MISSED; }
static int c_realloc_after_free(void) {
  void* p = must(A_MALLOC(50)); say_ptr(p); A_FREE(p);
  void* r = A_REALLOC(p, 100); (void)r; return EX_MISSED;
}
static int c_realloc_interior(void) { char* p = must(A_MALLOC(300)); say_ptr(p + 8); void* r = A_REALLOC(p + 8, 1000); (void)r; return EX_MISSED; }

typedef struct {
  const char* name;
  int (*fn)(void);
  int promised;          /* default mode must catch it */
  const char* what[3];   /* accepted <what> words in the message (promised cases) */
  int need_class;        /* message must give the size class */
  int segv_ok;           /* a guard page fault counts as caught */
} case_t;

static const case_t cases[] = {
  {"invalid-free/stack", c_invalid_stack, 1, {"invalid", 0}, 0, 0},
  {"invalid-free/global", c_invalid_global, 1, {"invalid", 0}, 0, 0},
  {"invalid-free/mmap", c_invalid_mmap, 1, {"invalid", 0}, 0, 0},
  {"invalid-free/fake-segment", c_invalid_fake_segment, 1, {"invalid", 0}, 0, 0},
  {"invalid-free/free-page", c_invalid_free_page, 1, {"invalid", 0}, 0, 0},
  {"invalid-free/wild", c_invalid_wild, 1, {"invalid", 0}, 0, 0},
  {"unreturned/next-carve", c_invalid_unreturned_next, 0, {0}, 0, 0},
  {"unreturned/past-bump", c_invalid_unreturned_bump, 0, {0}, 0, 0},
  {"invalid-free/low", c_invalid_low, 1, {"invalid", 0}, 0, 0},
  {"interior/tiny+16", c_interior_tiny, 1, {"interior", "invalid", 0}, 0, 0},
  {"interior/tiny+1", c_interior_tiny_1, 1, {"interior", "invalid", 0}, 0, 0},
  {"interior/mid", c_interior_mid, 1, {"interior", "invalid", 0}, 0, 0},
  {"interior/large", c_interior_large, 1, {"interior", "invalid", 0}, 0, 0},
  {"interior/huge", c_interior_huge, 1, {"interior", "invalid", 0}, 0, 0},
  {"interior/memalign", c_interior_memalign, 1, {"interior", "invalid", 0}, 0, 0},
  {"double-free/tiny", c_double_tiny, 1, {"double free", 0}, 1, 0},
  {"double-free/malloc0", c_double_zero, 1, {"double free", 0}, 1, 0},
  {"double-free/mid", c_double_mid, 1, {"double free", 0}, 1, 0},
  {"double-free/large", c_double_large, 1, {"double free", 0}, 0, 0},
  {"double-free/huge", c_double_huge, 1, {"double free", "invalid", 0}, 0, 0},
  {"double-free/large-teardown", c_double_large_teardown, 1, {"double free", 0}, 0, 0},
  {"double-free/delayed", c_double_delayed, 0, {0}, 0, 0},
  {"double-free/after-churn", c_double_after_churn, 0, {0}, 0, 0},
  {"double-free/after-realloc", c_double_realloc, 0, {0}, 0, 0},
  {"double-free/cross-thread", c_double_cross_thread, 0, {0}, 0, 0},
  {"overflow/tiny+8", c_overflow_tiny_8, 0, {0}, 0, 0},
  {"overflow/tiny+1", c_overflow_tiny_1, 0, {0}, 0, 0},
  {"overflow/mid+16", c_overflow_mid_16, 0, {0}, 0, 0},
  {"overflow/large+16", c_overflow_large_16, 0, {0}, 0, 0},
  {"overflow/huge+4096", c_overflow_huge_guard, 0, {0}, 0, 1},
  {"overflow/in-slack", c_overflow_in_slack, 0, {0}, 0, 0},
  {"underflow/tiny-8", c_underflow_tiny, 0, {0}, 0, 0},
  {"overflow/freelist-poison", c_freelist_poison, 0, {0}, 0, 0},
  {"uaf/write-tiny", c_uaf_write_tiny, 0, {0}, 0, 0},
  {"uaf/write-mid", c_uaf_write_mid, 0, {0}, 0, 0},
  {"uaf/write-large", c_uaf_write_large, 0, {0}, 0, 0},
  {"uaf/reuse-tiny", c_uaf_reuse_tiny, 0, {0}, 0, 0},
  {"uaf/reuse-mid", c_uaf_reuse_mid, 0, {0}, 0, 0},
  {"uaf/read-huge", c_uaf_read_huge, 0, {0}, 0, 1},
  {"realloc/invalid", c_realloc_invalid, 0, {0}, 0, 0},
  {"realloc/after-free", c_realloc_after_free, 0, {0}, 0, 0},
  {"realloc/interior", c_realloc_interior, 0, {0}, 0, 0},
  {"link/uaf-tiny", c_link_tiny, 0, {0}, 0, 0},
  {"link/uaf-tiny-forged-mark", c_link_tiny_forged, 0, {0}, 0, 0},
  {"link/uaf-mid", c_link_mid, 0, {0}, 0, 0},
  {"link/uaf-mid-forged-mark", c_link_mid_forged, 0, {0}, 0, 0},
  {"link/uaf-large", c_link_large, 0, {0}, 0, 0},
  {"link/uaf-to-live-block", c_link_to_live, 0, {0}, 0, 0},
  {"link/overflow-neighbour", c_link_neighbour, 0, {0}, 0, 0},
  {"link/uaf-central-list", c_link_central, 0, {0}, 0, 0},
};
#define NCASES (sizeof cases / sizeof cases[0])

//! What secure mode must report for a case (the link/... and unreturned/...
//! cases), with the pointer and the class; NULL if it promises nothing more.
static const char* secure_what(const case_t* c) {
  if (!strncmp(c->name, "link/", 5)) return "corrupted free list link at";
  if (!strncmp(c->name, "unreturned/", 11)) return "never handed out";
  return NULL;
}

enum { R_CAUGHT, R_MITIGATED, R_CORRUPTED, R_CRASHED, R_MISSED, R_N };
static const char* rname[R_N] = {"caught", "mitigated", "corrupted", "crashed", "missed"};

static int run_case(const char* self, size_t ci, int secure, char* msg, size_t msgsz, int* bad_msg) {
  int fd[2];
  if (pipe(fd)) { perror("pipe"); _exit(1); }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], 2);
    close(fd[0]); close(fd[1]);
    setenv("HAKMEM_SECURE", secure ? "1" : "0", 1);   /* "0": also default mode in a HARDENED=1 build */
    char idx[16];
    snprintf(idx, sizeof idx, "%zu", ci);
    execl(self, self, "--case", idx, (char*)NULL);
    _exit(127);
  }
  close(fd[1]);
  size_t got = 0;
  ssize_t r;
  while ((r = read(fd[0], msg + got, msgsz - 1 - got)) > 0) { got += (size_t)r; if (got >= msgsz - 1) break; }
  msg[got] = 0;
  close(fd[0]);
  int st;
  waitpid(pid, &st, 0);
  const case_t* c = &cases[ci];
  *bad_msg = 0;
  if (WIFSIGNALED(st)) {
    int sig = WTERMSIG(st);
    char* hm = strstr(msg, "hakmem: ");
    if (sig == SIGABRT && hm) {
      /* the message must name the pointer that was passed */
      char ptr[64] = "";
      char* cp = strstr(msg, "case-ptr: ");
      if (cp) sscanf(cp + 10, "%63s", ptr);
      if (c->promised) {
        int what_ok = 0;
        for (int w = 0; w < 3 && c->what[w]; w++) if (strstr(hm, c->what[w])) what_ok = 1;
        if (!ptr[0] || !strstr(hm, ptr)) *bad_msg = 1;
        if (!what_ok) *bad_msg = 2;
        if (c->need_class && !strstr(hm, "class")) *bad_msg = 3;
      } else if (secure_what(c) && secure) {
        if (!ptr[0] || !strstr(hm, ptr)) *bad_msg = 1;
        if (!strstr(hm, secure_what(c))) *bad_msg = 2;
        if (!strstr(hm, "class")) *bad_msg = 3;
      }
      return R_CAUGHT;
    }
    if ((sig == SIGSEGV || sig == SIGBUS) && c->segv_ok) return R_CAUGHT;
    return R_CRASHED;
  }
  int ex = WEXITSTATUS(st);
  if (ex == EX_MITIGATED) return R_MITIGATED;
  if (ex == EX_CORRUPTED) return R_CORRUPTED;
  if (ex == EX_MISSED) return R_MISSED;
  return R_CRASHED;  /* setup failure or exec failure */
}

int main(int argc, char** argv) {
  if (argc > 2 && !strcmp(argv[1], "--case")) {
    alarm(30);
    size_t ci = (size_t)atol(argv[2]);
    if (ci >= NCASES) return 2;
    return cases[ci].fn();
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char* self = rel_self_path();
  int count[2][R_N] = {{0}};
  int promised_total = 0, promised_caught[2] = {0, 0}, secure_total = 0;
  int failures = 0;
  static char msg[8192];
  printf("misuse: %zu cases, api %s\n", NCASES, REL_API_NAME);
  printf("%-28s %-10s %-10s\n", "case", "default", "secure");
  for (size_t ci = 0; ci < NCASES; ci++) {
    int res[2];
    char first_line[2][160];
    for (int mode = 0; mode < 2; mode++) {
      int bad = 0;
      res[mode] = run_case(self, ci, mode, msg, sizeof msg, &bad);
      count[mode][res[mode]]++;
      char* hm = strstr(msg, "hakmem: ");
      first_line[mode][0] = 0;
      if (hm) { snprintf(first_line[mode], sizeof first_line[mode], "%s", hm); char* nl = strchr(first_line[mode], '\n'); if (nl) *nl = 0; }
      int must_catch = cases[ci].promised || (secure_what(&cases[ci]) && mode == 1);
      if (must_catch) {
        if (res[mode] == R_CAUGHT && !bad) promised_caught[mode]++;
        else {
          failures++;
          fprintf(stderr, "FAIL misuse: %s (%s mode): %s%s\n    child stderr: %.600s\n", cases[ci].name, mode ? "secure" : "default",
                  rname[res[mode]],
                  bad == 1 ? ", but the message does not name the pointer" : bad == 2 ? ", but the message does not say what went wrong"
                  : bad == 3 ? ", but the message does not give the size class" : "", msg);
        }
      }
    }
    if (cases[ci].promised) promised_total++;
    if (secure_what(&cases[ci])) secure_total++;
    printf("%-28s %-10s %-10s%s %s\n", cases[ci].name, rname[res[0]], rname[res[1]],
           cases[ci].promised ? " [promised]" : secure_what(&cases[ci]) ? " [secure]" : "",
           first_line[0][0] ? first_line[0] : first_line[1]);
    if (secure_what(&cases[ci]) && first_line[0][0] && first_line[1][0])
      printf("%-28s %-10s %-10s%s %s\n", "", "", "", "         ", first_line[1]);
  }
  for (int mode = 0; mode < 2; mode++)
    printf("misuse: %s mode: %d caught, %d mitigated, %d corrupted, %d crashed, %d missed of %zu cases; promised %d/%d\n",
           mode ? "secure (HAKMEM_SECURE=1)" : "default", count[mode][R_CAUGHT], count[mode][R_MITIGATED], count[mode][R_CORRUPTED],
           count[mode][R_CRASHED], count[mode][R_MISSED], NCASES, promised_caught[mode],
           promised_total + (mode ? secure_total : 0));
  if (failures) { fprintf(stderr, "FAIL misuse: %d promised detections failed\n", failures); return 1; }
  printf("misuse: ok\n");
  return 0;
}
