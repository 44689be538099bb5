/* No false alarm from a stale free mark.  A wholly free page goes to
 * another class and is carved again; the old blocks' free marks stay in
 * the new blocks' uninitialised bytes.  A valid program may copy those
 * bytes (memmove over a buffer's whole capacity, a struct copy with an
 * unset field): a live block's second word may then hold a mark that was
 * made for another address.  Its free (here or in another thread) and its
 * realloc must not report a double free or a realloc after free.  A mark
 * that is the bare cookie, not bound to the address, failed all three. */
#define _GNU_SOURCE
#include <pthread.h>
#include "hk_test.h"

#define NOLD 200000      /* 16-byte blocks: their pages go warm once freed */
#define NBUF 20000

typedef struct { long tag; void* payload; } value;   /* payload unset for nil */

static void* a[NOLD];
static unsigned char* buf[NBUF];

static void* free_it(void* p) { free(p); return NULL; }

//! Fills pages of the 16-byte class with free marks, then frees them all.
static void leave_marks(void) {
  for (int i = 0; i < NOLD; i++) {
    a[i] = malloc(16);
    CHECK(a[i] && hak_owns(a[i]), "malloc(16) = %p not hakmem's", a[i]);
  }
  for (int i = 0; i < NOLD; i++) free(a[i]);
}

int main(void) {
  hk_begin("stale_mark", 120);
  leave_marks();
  /* queues of 16-byte elements in 64-byte buffers: one element pushed,
   * then popped by shifting the whole capacity down */
  for (int i = 0; i < NBUF; i++) {
    buf[i] = malloc(64);
    CHECK(buf[i] && hak_owns(buf[i]), "malloc(64) = %p not hakmem's", (void*)buf[i]);
    memset(buf[i], 'x', 16);
    memmove(buf[i], buf[i] + 16, 48);
  }
  uintptr_t w0;
  memcpy(&w0, buf[0] + 8, 8);
  int same = 0;
  for (int i = 0; i < NBUF; i++) {
    uintptr_t w;
    memcpy(&w, buf[i] + 8, 8);
    same += w == w0;
  }
  INFO("%d of %d buffers share their second word (copied stale bytes)", same, NBUF);
  /* realloc, a free by another thread, a free here */
  for (int i = 0; i < NBUF; i += 3) {
    unsigned char* q = realloc(buf[i], 256);
    CHECK(q != NULL, "realloc of a live buffer failed");
    free(q);
  }
  for (int i = 1; i < NBUF; i += 3) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_it, buf[i]) == 0, "pthread_create");
    pthread_join(t, NULL);
  }
  for (int i = 2; i < NBUF; i += 3) free(buf[i]);

  /* a nil value boxed by a struct copy, freed by another thread */
  leave_marks();
  for (int k = 0; k < 1000; k++) {
    value* arr = malloc(4 * sizeof(value));
    CHECK(arr != NULL, "malloc");
    for (int i = 0; i < 4; i++) arr[i].tag = 0;
    value* box = malloc(sizeof(value));
    CHECK(box != NULL, "malloc");
    *box = arr[1 + k % 3];
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_it, box) == 0, "pthread_create");
    pthread_join(t, NULL);
    free(arr);
  }
  INFO("ok");
  return 0;
}
