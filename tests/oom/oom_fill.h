/* What the out-of-memory tests share: a fill of one size until NULL, and
 * its release. */
#ifndef OOM_FILL_H
#define OOM_FILL_H
#include "hk_test.h"

/* Allocate blocks of n bytes until NULL; they form a list through their first
 * word (no side array that would need memory).  Returns the count. */
__attribute__((unused)) static size_t oom_fill(size_t n, void** head) {
  size_t k = 0;
  *head = NULL;
  for (;;) {
    errno = 0;
    void** p = malloc(n);
    if (!p) {
      int e = errno;
      CHECK(e == ENOMEM, "malloc(%zu) returned NULL with errno %d (%s) after %zu blocks, expected ENOMEM", n, e,
            strerror(e), k);
      break;
    }
    *p = *head;
    *head = p;
    k++;
    CHECK(k < ((size_t)64 << 30) / n, "malloc(%zu) never fails under RLIMIT_AS (%zu blocks)", n, k);
  }
  return k;
}

__attribute__((unused)) static void oom_release(void* head) {
  while (head) {
    void* next = *(void**)head;
    free(head);
    head = next;
  }
}

#endif
