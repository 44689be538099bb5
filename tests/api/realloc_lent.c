/* realloc of a Large block lent by a larger class.  A Large class whose
 * caches are empty takes a cached block of a larger class (up to 3x its
 * size).  Such a block must grow in place by realloc while the request
 * fits, as any block does within its usable size: "moves when it would
 * waste more than half" once moved a string built by appends at each
 * append, copying it every time.  A real shrink (below the request the
 * block was handed out for) still moves to a smaller block, and contents
 * survive every step.  Also: a normal Large block shrunk below half moves. */
#define _GNU_SOURCE
#include <malloc.h>
#include "hk_test.h"

#define NLEND 8

int main(void) {
  hk_begin("realloc_lent", 60);
  if (getenv("HAKMEM_SECURE") || getenv("HAKMEM_VALGRIND")) {   /* no lending in these modes */
    printf("api/realloc_lent: skipped (HAKMEM_SECURE or HAKMEM_VALGRIND: no lent blocks)\n");
    return 0;
  }
  /* cache blocks of one larger class in this thread (640 KiB class) */
  void* big[NLEND];
  for (int i = 0; i < NLEND; i++) {
    big[i] = malloc(600 * KiB);
    CHECK(big[i] && hak_owns(big[i]), "malloc(600 KiB) = %p not hakmem's", big[i]);
  }
  for (int i = 0; i < NLEND; i++) free(big[i]);

  /* a request whose own class has nothing cached: served by a lent block */
  size_t n = 210 * KiB;
  unsigned char* p = malloc(n);
  CHECK(p && hak_owns(p), "malloc(%zu) = %p not hakmem's", n, (void*)p);
  size_t u = malloc_usable_size(p);
  CHECK(u > 2 * n, "malloc(%zu) got a block of %zu: not a lent block (the test needs the Large classes' "
        "borrowing, l25_borrow; update it if that changed)", n, u);
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 7 + 1);

  /* grow by appends of 1..64 bytes up to the usable size: no move */
  unsigned moves = 0, steps = 0;
  size_t len = n;
  while (len + 64 <= u) {
    size_t add = 1 + (steps * 37) % 64;
    uintptr_t was = (uintptr_t)p;   /* compared after the realloc: an address, not a pointer */
    unsigned char* q = realloc(p, len + add);
    CHECK(q != NULL, "realloc(%#lx, %zu) failed", (unsigned long)was, len + add);
    if ((uintptr_t)q != was) moves++;
    p = q;
    for (size_t i = len; i < len + add; i++) p[i] = (unsigned char)(i * 7 + 1);
    len += add;
    steps++;
  }
  INFO("%u appends from %zu to %zu bytes in a block of %zu: %u moves", steps, n, len, u, moves);
  CHECK(moves == 0, "a lent block of %zu bytes moved %u times in %u appends from %zu to %zu bytes "
        "(a realloc within the usable size and above the request must stay in place)", u, moves, steps, n, len);
  for (size_t i = 0; i < len; i++)
    CHECK(p[i] == (unsigned char)(i * 7 + 1), "byte %zu lost in the appends", i);

  /* a real shrink (below the request it was handed out for, under half
   * of the block) moves to a smaller block, keeping the contents */
  size_t small = 150 * KiB;
  uintptr_t was = (uintptr_t)p;
  unsigned char* r = realloc(p, small);
  CHECK(r && hak_owns(r), "realloc(%#lx, %zu) = %p", (unsigned long)was, small, (void*)r);
  CHECK((uintptr_t)r != was && malloc_usable_size(r) < u, "a shrink of a %zu-byte block to %zu stayed in place (usable %zu)",
        u, small, malloc_usable_size(r));
  for (size_t i = 0; i < small; i++)
    CHECK(r[i] == (unsigned char)(i * 7 + 1), "byte %zu lost in the shrink", i);

  /* a normal block shrunk below half of it moves too */
  size_t u2 = malloc_usable_size(r);
  was = (uintptr_t)r;
  unsigned char* s = realloc(r, u2 / 2 - 4096);
  CHECK(s && (uintptr_t)s != was, "a shrink of a %zu-byte block to %zu stayed in place", u2, u2 / 2 - 4096);
  for (size_t i = 0; i < u2 / 2 - 4096; i++)
    CHECK(s[i] == (unsigned char)(i * 7 + 1), "byte %zu lost in the second shrink", i);
  free(s);
  INFO("ok");
  return 0;
}
