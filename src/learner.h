/* The learner (seed phase 6.27) and ACE waste tracking.
 *
 * The controllers are pure functions of window statistics and their own
 * state: no threads, no clock, no globals, so tests drive them directly.
 * learner.c also holds the glue that the background thread runs once per
 * HAKMEM_LEARN_WINDOW_MS (hak__learner_step); ace.c estimates the bytes
 * handed out beyond what the program asked for.  docs/learner.md gives
 * the rules and the score. */
#ifndef HAK_LEARNER_H
#define HAK_LEARNER_H
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include "stats.h"

#define HAK_LEARN_BAND        0.03   /* hysteresis: no change within target +- band */
#define HAK_LEARN_FRAG_WEIGHT 1.0    /* W_MAX score: hit rate - weight * waste ratio */
#define HAK_LEARN_IDLE_WINDOWS 10    /* idle this many windows (and the dwell) before CAP decays */
#define HAK_LEARN_MAX_FACTOR  16     /* a proportional rise at most multiplies CAP by this */
#define HAK_WMAX_MAX_CAND     16

/* ---- CAP controller ------------------------------------------------------ */
typedef struct hak_learn_params {
  double   target, band;        /* target hit rate and its dead band */
  uint32_t step, min, max;      /* CAP step and clamp */
  uint64_t dwell_ns;            /* least time between two changes; a reversal waits 2x, 4x, 8x */
  uint64_t idle_ns;             /* a class idle this long has its CAP decay toward min */
  uint64_t min_samples;         /* allocations a window needs to judge the hit rate */
  uint32_t max_factor;          /* 0 or 1: moves of one step; more: proportional moves,
                                   a rise at most x max_factor (see hak__learner_cap_update) */
} hak_learn_params_t;

typedef struct hak_learn_class {
  uint32_t cap;                 /* current CAP (what is published) */
  uint32_t changes;             /* how many times it moved */
  int8_t   last_dir;            /* +1 rose, -1 fell, 0 never moved */
  uint8_t  reversals;           /* consecutive changes of direction */
  uint8_t  idle;                /* the class is in an idle stretch since idle_since_ns */
  uint64_t last_change_ns;
  uint64_t idle_since_ns;
  uint64_t peak_live;           /* high water of live blocks: growth beyond it is no miss */
  double   last_hit;            /* hit rate of the last judged window, for the log */
  uint64_t peak_missed, peak_drawn;  /* largest miss_units, drawn_units since the last change */
} hak_learn_class_t;

typedef struct hak_learn_window {
  uint64_t allocs;              /* allocations in the window */
  uint64_t misses;              /* of those, served by fresh memory that a cache could have served */
  uint64_t miss_units;          /* those misses in CAP units (pages; Large: blocks), rounded up */
  uint64_t drawn_units;         /* CAP units the class drew from its central cache, rounded up */
} hak_learn_window_t;

/* hits / allocs, with hits = allocs - misses; 1.0 for an empty window */
double   hak__learner_hit_rate(const hak_learn_window_t* w);
/* The misses a cache could have avoided: fresh blocks taken (miss_blocks,
 * at most allocs) less the growth of live blocks above their high water
 * *peak_live (first-time growth needs new memory whatever CAP is).
 * Updates *peak_live. */
uint64_t hak__learner_avoidable(uint64_t miss_blocks, uint64_t allocs, uint64_t live_end,
                                uint64_t* peak_live);
/* One window: returns the new CAP (also stored in s->cap).  Below the band
 * CAP rises by step, above it falls by step; an idle class (fewer than
 * min_samples allocations per window for idle_ns) falls by half its
 * distance to min (at least step).  Changes wait out the dwell; always
 * clamped to [min, max].
 * With max_factor > 1 a move is proportional (at least one unit): hit rate
 * roughly follows CAP, so CAP * target / hit is where the hit rate would
 * meet the target.  A rise is bounded by max_factor and by the window's
 * miss_units (more could serve no more misses); a fall goes also down to
 * drawn_units * target / hit (what the cache served, scaled).  Both use
 * the largest value since the last change, so one window that caught a
 * part of a longer cycle does not decide alone. */
uint32_t hak__learner_cap_update(const hak_learn_params_t* p, hak_learn_class_t* s,
                                 const hak_learn_window_t* w, uint64_t now_ns);
void     hak__learner_class_init(hak_learn_class_t* s, uint32_t cap);

/* ---- W_MAX canary --------------------------------------------------------- */
typedef struct hak_wmax_params {
  uint32_t cand[HAK_WMAX_MAX_CAND];   /* candidates, W_MAX x 1000 */
  int      ncand;
  int      canary;                    /* 1: adopt only with a gain of adopt_pct */
  double   adopt_pct;                 /* relative score gain needed */
  double   frag_weight;
  uint64_t trial_ns;                  /* length of a baseline or trial */
  uint64_t settle_ns;                 /* time at the best value before exploring again */
  uint64_t min_samples;               /* Mid allocations a trial needs to count */
} hak_wmax_params_t;

typedef struct hak_wmax_window {      /* Mid classes together */
  uint64_t allocs, misses;            /* misses: avoidable, as for CAP */
  uint64_t handed_bytes, req_bytes;   /* class size x allocs, and what was asked */
} hak_wmax_window_t;

enum { HAK_WMAX_BASELINE = 0, HAK_WMAX_TRIAL = 1, HAK_WMAX_SETTLE = 2 };
typedef struct hak_wmax_state {
  int      phase;                     /* HAK_WMAX_* */
  int      next;                      /* next candidate to try */
  int      best_valid;
  uint32_t cur_milli, best_milli;     /* published now; best known */
  double   best_score, last_score;
  uint64_t phase_start_ns;
  hak_wmax_window_t acc;              /* accumulated over the phase */
  uint32_t trials, adopted, rollbacks;
} hak_wmax_state_t;

/* score = hit rate - frag_weight * (handed - requested) / handed */
double   hak__wmax_score(const hak_wmax_params_t* p, const hak_wmax_window_t* w);
void     hak__wmax_init(hak_wmax_state_t* s, uint32_t start_milli, uint64_t now_ns);
/* One window: returns the W_MAX (x 1000) to publish. */
uint32_t hak__wmax_step(const hak_wmax_params_t* p, hak_wmax_state_t* s,
                        const hak_wmax_window_t* w, uint64_t now_ns);

/* ---- glue (learner.c) ------------------------------------------------------ */
/* params of a layer (HAK_LAYER_TINY uses the Mid ones) from hak__opt */
void hak__learner_params_from_opt(int layer, hak_learn_params_t* out);
void hak__wmax_params_from_opt(hak_wmax_params_t* out);
void hak__learner_step(uint64_t now_ns);    /* from the background thread */
void hak__learner_fork_child(void);
void hak__learner_stop(void);
void hak__learner_print(FILE* f);           /* final CAP per class and changes (stats at exit) */
uint32_t hak__learner_changes(unsigned pidx);  /* CAP changes of a policy index so far */

/* ---- ACE (ace.c) ------------------------------------------------------------ */
/* Waste: bytes handed out beyond the request, for live blocks.  Blocks do
 * not remember their request, so per class the waste ratio of its recent
 * allocations (the learner's last window with allocations, else since
 * start) times the class's live bytes. */
size_t   hak__ace_class_size(unsigned stat_cls);        /* 0 for Huge */
void     hak__ace_window(const hak_tstats_t* prev, const hak_tstats_t* cur);
uint64_t hak__ace_window_requests(const hak_tstats_t* prev, const hak_tstats_t* cur, unsigned stat_cls);
uint64_t hak__ace_class_waste(const hak_tstats_t* t, unsigned stat_cls);
uint64_t hak__ace_class_live(const hak_tstats_t* t, unsigned stat_cls);  /* live blocks */
void     hak__ace_layers(const hak_tstats_t* t, uint64_t out[4]);

/* Large: trims class cls's hot list to keep blocks (l25.c) */
size_t   hak__l25_trim_class(unsigned cls, uint32_t keep);
#endif
