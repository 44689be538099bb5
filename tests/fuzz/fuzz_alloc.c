/* libFuzzer harness (issue 6, item 4): input bytes become a sequence of
 * operations on 32 slots -- malloc, calloc, realloc, memalign, free, usable
 * size, trim -- with sizes drawn from every layer.  Invariants checked after
 * every operation that makes a block:
 *   - no two live blocks overlap (over their whole usable size);
 *   - contents stay intact (each block is stamped and checked at free,
 *     realloc and at random "check" operations);
 *   - usable size >= request, hak_owns() is true for a live block;
 *   - alignment: 16 for sizes >= 16 and the requested one for memalign;
 *   - calloc memory is zero (sampled above 64 KiB: see check_zero).
 * Any violation calls abort(), which libFuzzer reports with the input.
 * Built with -DHAK_NO_OVERRIDE=1 (ASan owns malloc here): uses hak_*. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

#define SLOTS 32
typedef struct { unsigned char* p; size_t n; size_t align; uint8_t tag; } slot_t;
static slot_t slot[SLOTS];

static void bug(const char* what, size_t i, size_t v) {
  fprintf(stderr, "fuzz_alloc invariant broken: %s (slot %zu, value %zu, ptr %p, size %zu)\n", what, i, v,
          (void*)slot[i].p, slot[i].n);
  abort();
}

/* The byte loops below are not coverage-traced: they only check, and
 * tracing each compare made them most of the run time. */
#if defined(__clang__)
#define NO_COV __attribute__((no_sanitize("coverage")))
#else
#define NO_COV
#endif

/* stamp: byte k of a block is tag ^ (k * 31); blocks over 64 KiB are
 * stamped at their first and last 4 KiB only */
NO_COV static void stamp_span(unsigned char* p, size_t a, size_t b, uint8_t tag) { for (size_t k = a; k < b; k++) p[k] = (unsigned char)(tag ^ (k * 31)); }
NO_COV static size_t check_span(const unsigned char* p, size_t a, size_t b, uint8_t tag) {
  for (size_t k = a; k < b; k++) if (p[k] != (unsigned char)(tag ^ (k * 31))) return k + 1;
  return 0;
}
NO_COV static void stamp(slot_t* s) {
  if (s->n <= 65536) stamp_span(s->p, 0, s->n, s->tag);
  else { stamp_span(s->p, 0, 4096, s->tag); stamp_span(s->p, s->n - 4096, s->n, s->tag); }
}
NO_COV static size_t check_upto(const slot_t* s, size_t upto) {  /* 0 = fine, else 1 + bad offset */
  size_t r;
  if (s->n <= 65536) return check_span(s->p, 0, upto < s->n ? upto : s->n, s->tag);
  if ((r = check_span(s->p, 0, upto < 4096 ? upto : 4096, s->tag))) return r;
  if (upto > s->n - 4096) return check_span(s->p, s->n - 4096, upto < s->n ? upto : s->n, s->tag);
  return 0;
}

/* calloc: every byte of a block up to 64 KiB is checked; above that the
 * first and last 4 KiB and one word in every 512 bytes (a page that was not
 * zeroed would show in it) -- checking megabytes byte by byte under ASan
 * made each input take tens of milliseconds */
NO_COV static void check_zero(size_t i) {
  const slot_t* s = &slot[i];
  if (s->n <= 65536) {
    for (size_t k = 0; k < s->n; k++) if (s->p[k]) bug("calloc memory not zero", i, k);
    return;
  }
  for (size_t k = 0; k < 4096; k++)
    if (s->p[k] || s->p[s->n - 1 - k]) bug("calloc memory not zero near an end", i, k);
  for (size_t k = 4096; k + 8 <= s->n - 4096; k += 512) {
    uint64_t w;
    memcpy(&w, s->p + k, 8);
    if (w) bug("calloc memory not zero", i, k);
  }
}

static void fresh(size_t i, size_t n, size_t align) {
  slot_t* s = &slot[i];
  if (!s->p) bug("NULL for a reasonable size", i, n);
  if (!hak_owns(s->p)) bug("hak_owns false for a new block", i, n);
  size_t us = hak_usable_size(s->p);
  if (us < n) bug("usable size < request", i, us);
  size_t al = align ? align : (n >= 16 ? 16 : 1);
  if ((uintptr_t)s->p % al) bug("misaligned", i, al);
  uintptr_t a0 = (uintptr_t)s->p, a1 = a0 + (us ? us : 1);
  for (size_t j = 0; j < SLOTS; j++) {
    if (j == i || !slot[j].p) continue;
    uintptr_t b0 = (uintptr_t)slot[j].p, b1 = b0 + (hak_usable_size(slot[j].p) ? hak_usable_size(slot[j].p) : 1);
    if (a0 < b1 && b0 < a1) bug("overlaps another live block", i, j);
  }
}

static void release(size_t i) {
  slot_t* s = &slot[i];
  if (!s->p) return;
  size_t bad = check_upto(s, s->n);
  if (bad) bug("contents damaged", i, bad - 1);
  hak_free(s->p);
  s->p = NULL;
}

/* sizes: selector byte picks the layer, two more bytes pick within it */
static size_t pick_size(const uint8_t** d, const uint8_t* end) {
  uint8_t sel = *d < end ? *(*d)++ : 0;
  uint16_t v = 0;
  if (*d + 2 <= end) { v = (uint16_t)((*d)[0] | (*d)[1] << 8); *d += 2; }
  switch (sel & 7) {
    case 0: case 1: case 2: return v % 129;                       /* 0..128 */
    case 3: return v % 1025;                                       /* tiny */
    case 4: return 1025 + v % (52 * 1024 - 1024 + 2048);           /* mid, past it */
    case 5: return 60 * 1024 + (size_t)v * 15;                     /* large: 60 KiB .. ~1 MiB */
    case 6: return (1u << 20) - 64 + (size_t)v * 48;               /* huge: 1 MiB .. 4 MiB */
    default: { static const size_t edge[] = {0, 1, 15, 16, 17, 1024, 1025, 53248, 53249, 65536, 65537, 1048576, 1048577, 2097152};
               return edge[v % (sizeof edge / sizeof edge[0])]; }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* d = data;
  const uint8_t* end = data + size;
  static uint8_t tagc;
  while (d < end) {
    uint8_t op = *d++;
    size_t i = (size_t)(op >> 3) % SLOTS;
    slot_t* s = &slot[i];
    switch (op & 7) {
      case 0: case 1: {              /* malloc */
        release(i);
        size_t n = pick_size(&d, end);
        s->p = hak_malloc(n); s->n = n; s->align = 0; s->tag = ++tagc;
        fresh(i, n, 0); stamp(s);
        break;
      }
      case 2: {                      /* calloc */
        release(i);
        size_t n = pick_size(&d, end);
        size_t cnt = (n % 7) + 1, each = n / cnt;
        s->p = hak_calloc(cnt, each); s->n = cnt * each; s->align = 0; s->tag = ++tagc;
        fresh(i, s->n, 0);
        check_zero(i);
        stamp(s);
        break;
      }
      case 3: {                      /* realloc (also from NULL) */
        size_t n = pick_size(&d, end);
        if (n == 0) n = 1;           /* realloc(p, 0) frees: covered by the API tests */
        if (s->p) {
          size_t bad = check_upto(s, s->n);
          if (bad) bug("contents damaged before realloc", i, bad - 1);
        }
        unsigned char* q = hak_realloc(s->p, n);
        if (!q) bug("realloc returned NULL", i, n);
        slot_t old = *s;
        s->p = q;
        if (old.p) {
          size_t keep = n < old.n ? n : old.n;
          slot_t tmp = old; tmp.p = q;
          size_t bad = check_upto(&tmp, keep);
          if (bad) bug("realloc lost contents", i, bad - 1);
        }
        s->n = n; s->align = 0; s->tag = ++tagc;
        fresh(i, n, 0); stamp(s);
        break;
      }
      case 4: {                      /* memalign */
        release(i);
        uint8_t sh = d < end ? *d++ : 0;
        size_t al = (size_t)1 << (3 + sh % 19);   /* 8 .. 2 MiB */
        size_t n = pick_size(&d, end);
        s->p = hak_memalign(al, n); s->n = n; s->align = al; s->tag = ++tagc;
        fresh(i, n, al); stamp(s);
        break;
      }
      case 5: case 6:                /* free */
        release(i);
        break;
      default:                       /* check a live block / trim */
        if (s->p) {
          size_t bad = check_upto(s, s->n);
          if (bad) bug("contents damaged", i, bad - 1);
          if (hak_usable_size(s->p) < s->n) bug("usable size shrank", i, s->n);
        } else if ((op & 0xf8) == 0xf8) {
          hak_trim();
        }
        break;
    }
  }
  for (size_t i = 0; i < SLOTS; i++) release(i);
  return 0;
}
