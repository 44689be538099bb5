/* Counters, defined once as X-macros.  Each thread increments its own
 * (plain load/add/store, no read-modify-write); exiting threads merge
 * theirs into a global total. */
#ifndef HAK_STATS_H
#define HAK_STATS_H
#include <stdint.h>

/* per size class */
/* req_bytes sums requests: of every allocation in Large and Huge, but in
 * the small classes only of the slow path's own allocations, req_n of them:
 * the inline path counts no bytes (an add of n there cost the Tiny band
 * about 3%), and ace.c takes the waste ratio from the sample.  A block a
 * larger Mid class lends under W_MAX counts exactly, in its lender's lent
 * and lent_req (borrows are all slow, so a sample would over-weigh them). */
#define HAK_CLASS_STATS(X) \
  X(alloc) X(free) X(remote_free) X(miss) X(refill) X(refill_pages) X(borrow) \
  X(central_pop) X(central_push) X(req_bytes) X(req_n) X(lent) X(lent_req)

/* per thread, not per class */
#define HAK_THREAD_STATS(X) \
  X(cas_ops) X(cas_retry) X(drains) X(drained_blocks) X(scavenges) \
  X(huge_cache_hit) X(huge_remap) X(large_decommit) X(counted_reclaims)

enum {
#define X(n) HAK_CS_##n,
  HAK_CLASS_STATS(X)
#undef X
  HAK_CS_COUNT
};
enum {
#define X(n) HAK_TS_##n,
  HAK_THREAD_STATS(X)
#undef X
  HAK_TS_COUNT
};

/* class index space for stats: small classes, then Large, then one for Huge */
#define HAK_STAT_LARGE0   42
#define HAK_STAT_HUGE     (HAK_STAT_LARGE0 + 17)
#define HAK_STAT_CLASSES  (HAK_STAT_HUGE + 1)

/* counter-major, so that a class's counter is one add at base + 8 * class */
typedef struct hak_tstats {
  uint64_t c[HAK_CS_COUNT][HAK_STAT_CLASSES];
  uint64_t t[HAK_TS_COUNT];
} hak_tstats_t;

/* A plain increment; other threads only read the counters (stats, merge),
 * so under ThreadSanitizer they are relaxed atomics, which compile to the
 * same plain load and store. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) && !defined(__SANITIZE_THREAD__)
#define __SANITIZE_THREAD__ 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define HAK_BUMP(field, k) \
  __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (k), __ATOMIC_RELAXED)
#else
#define HAK_BUMP(field, k) ((field) += (k))
#endif
#define HAK_CSTAT(h, cls, name, k) HAK_BUMP((h)->st.c[HAK_CS_##name][cls], k)
#define HAK_TSTAT(h, name, k)      HAK_BUMP((h)->st.t[HAK_TS_##name], k)

struct hak_heap;
void hak__stats_merge(struct hak_heap* h);       /* at thread exit */
void hak__stats_sum(hak_tstats_t* out);          /* retired + live threads */
void hak__stats_live(uint64_t bytes[HAK_LAYER_COUNT], uint64_t* huge_blocks);   /* live bytes per layer (mallinfo) */
void hak__stats_at_exit(void);
void hak__stats_init(void);
void hak__stats_fork_child(void);
/* per-layer gauges kept by the slow paths */
void hak__layer_mapped_add(int layer, int64_t bytes);
#endif
