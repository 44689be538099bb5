/* ACE waste tracking (seed phase 6.27): bytes handed out beyond the bytes
 * requested, for live blocks, per class, per layer and in total.
 *
 * Headerless blocks do not remember their request, so the waste of a
 * class is estimated: the waste ratio of its recent allocations,
 *   r = (class_size * allocs - req_bytes) / (class_size * allocs),
 * over the learner's last window in which the class allocated (else over
 * the whole run), times its live bytes (allocs - frees) * class_size.
 * The small classes count the requests of their slow path's own
 * allocations only (req_n of them, stats.h), so there the requests are
 * estimated: own allocations at the sample's mean, plus the exact requests
 * of the blocks the class lent under W_MAX (lent, lent_req).
 * Huge blocks (page-rounded mappings) are not counted. */
#define _GNU_SOURCE
#include "internal.h"
#include "learner.h"
#include <string.h>

/* per stats class: the windowed ratio in parts per million, plus one (0 = none yet) */
static _Atomic uint32_t ace_ratio_ppm1[HAK_STAT_CLASSES];

size_t hak__ace_class_size(unsigned c) {
  if (c < HAK_SMALL_CLASSES) return hak__class_size[c];
  if (c >= HAK_STAT_LARGE0 && c < HAK_STAT_HUGE) return hak__large_size[c - HAK_STAT_LARGE0];
  return 0;
}

//! Saturating difference: merged counters can step back for a moment
//! (a thread's counters move to the retired total as it exits).
static inline uint64_t ace_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

//! Ratio in ppm of bytes handed beyond the request, or -1 if nothing was handed.
static int64_t ace_ratio_ppm(uint64_t size, uint64_t allocs, uint64_t req) {
  if (!size || !allocs) return -1;
  uint64_t handed = size * allocs;
  if (req >= handed) return 0;
  return (int64_t)((double)(handed - req) * 1e6 / (double)handed);
}

//! A counter's change from prev (NULL: from the start) to cur.
static inline uint64_t ace_delta(const hak_tstats_t* prev, const hak_tstats_t* cur, unsigned k, unsigned c) {
  return ace_sub(cur->c[k][c], prev ? prev->c[k][c] : 0);
}

//! The bytes requested by class c's allocations from prev to cur, with
//! their count in *allocs; -1 if its own allocations left no sample.
static int64_t ace_requests(const hak_tstats_t* prev, const hak_tstats_t* cur, unsigned c, uint64_t* allocs) {
  uint64_t a = ace_delta(prev, cur, HAK_CS_alloc, c);
  uint64_t r = ace_delta(prev, cur, HAK_CS_req_bytes, c);
  *allocs = a;
  if (c >= HAK_SMALL_CLASSES) return (int64_t)r;
  uint64_t lent = ace_delta(prev, cur, HAK_CS_lent, c), own = ace_sub(a, lent);
  uint64_t n = ace_delta(prev, cur, HAK_CS_req_n, c);
  uint64_t lent_req = ace_delta(prev, cur, HAK_CS_lent_req, c);
  if (!own) return (int64_t)lent_req;
  if (!n) return -1;
  return (int64_t)((double)own * (double)r / (double)n) + (int64_t)lent_req;
}

uint64_t hak__ace_window_requests(const hak_tstats_t* prev, const hak_tstats_t* cur, unsigned c) {
  uint64_t a, a_all;
  int64_t r = ace_requests(prev, cur, c, &a);
  if (r >= 0) return (uint64_t)r;
  /* no sample in the window: the ratio of the whole run, else no waste */
  uint64_t handed = hak__ace_class_size(c) * a;
  int64_t r_all = ace_requests(NULL, cur, c, &a_all);
  double all = (double)hak__ace_class_size(c) * (double)a_all;
  if (r_all < 0 || (double)r_all >= all) return handed;
  return (uint64_t)((double)handed * (double)r_all / all);
}

void hak__ace_window(const hak_tstats_t* prev, const hak_tstats_t* cur) {
  for (unsigned c = 0; c < HAK_STAT_HUGE; c++) {
    uint64_t a;
    int64_t r = ace_requests(prev, cur, c, &a);
    int64_t ppm = r < 0 ? -1 : ace_ratio_ppm(hak__ace_class_size(c), a, (uint64_t)r);
    if (ppm >= 0) atomic_store_explicit(&ace_ratio_ppm1[c], (uint32_t)ppm + 1, memory_order_relaxed);
  }
}

uint64_t hak__ace_class_live(const hak_tstats_t* t, unsigned c) {
  return ace_sub(t->c[HAK_CS_alloc][c], t->c[HAK_CS_free][c] + t->c[HAK_CS_remote_free][c]);
}

uint64_t hak__ace_class_waste(const hak_tstats_t* t, unsigned c) {
  uint64_t size = hak__ace_class_size(c);
  uint64_t live = hak__ace_class_live(t, c);
  if (!size || !live) return 0;
  uint32_t w = atomic_load_explicit(&ace_ratio_ppm1[c], memory_order_relaxed);
  int64_t ppm = w ? (int64_t)w - 1 : -1;
  if (ppm < 0) {
    uint64_t a;
    int64_t r = ace_requests(NULL, t, c, &a);
    ppm = r < 0 ? -1 : ace_ratio_ppm(size, a, (uint64_t)r);
  }
  if (ppm <= 0) return 0;
  return (uint64_t)((double)live * (double)size * (double)ppm / 1e6);
}

void hak__ace_layers(const hak_tstats_t* t, uint64_t out[HAK_LAYER_COUNT]) {
  memset(out, 0, sizeof(uint64_t) * HAK_LAYER_COUNT);
  for (unsigned c = 0; c < HAK_STAT_HUGE; c++) {
    out[hak__class_layer(c)] += hak__ace_class_waste(t, c);
  }
}

//! Total estimated waste of live blocks, in bytes.  Sums every thread's
//! counters (a few microseconds); the buffer is mapped, not on the stack.
HAK_API size_t hak_ace_get_total_waste(void) {
  hak__init();
  hak_tstats_t* t = hak__os_map(sizeof *t);
  if (!t) return 0;
  hak__stats_sum(t);
  uint64_t l[HAK_LAYER_COUNT];
  hak__ace_layers(t, l);
  hak__os_unmap(t, sizeof *t);
  uint64_t s = 0;
  for (int i = 0; i < HAK_LAYER_COUNT; i++) s += l[i];
  return (size_t)s;
}
