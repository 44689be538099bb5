/* The learner (seed phase 6.27): tunes CAP per class toward a target hit
 * rate, and optionally W_MAX by canary trials, from windowed counters.
 *
 * It runs in the background thread (bg.c calls hak__learner_step every
 * tick), never on an allocation path: it sums every thread's counters
 * (on the ticks between windows only to keep each class's most live
 * blocks), takes the difference with the previous window, feeds the pure
 * controllers below and publishes their answers in the policy atomics
 * that the slow paths read.  When CAP falls, the pages (small classes) or
 * blocks (Large) beyond it go back to the OS at once.
 *
 * The controllers are pure functions of (params, state, window, now), so
 * tests/learner drives them without threads or clocks.  docs/learner.md
 * gives the rules, the score and the log format. */
#define _GNU_SOURCE
#include "internal.h"
#include "policy.h"
#include "learner.h"
#include <fcntl.h>
#include <unistd.h>
#include <string.h>
#include <math.h>
#include <stdarg.h>

#define LEARN_NCLS (HAK_SMALL_CLASSES + HAK_LARGE_CLASSES)   /* policy index = stats index */

/* ---- CAP controller (pure) ------------------------------------------------- */

double hak__learner_hit_rate(const hak_learn_window_t* w) {
  if (!w->allocs) return 1.0;
  uint64_t m = w->misses < w->allocs ? w->misses : w->allocs;
  return 1.0 - (double)m / (double)w->allocs;
}

uint64_t hak__learner_avoidable(uint64_t miss_blocks, uint64_t allocs, uint64_t live_end,
                                uint64_t* peak_live) {
  uint64_t m = miss_blocks < allocs ? miss_blocks : allocs;
  uint64_t growth = live_end > *peak_live ? live_end - *peak_live : 0;
  if (live_end > *peak_live) *peak_live = live_end;
  return m > growth ? m - growth : 0;
}

void hak__learner_class_init(hak_learn_class_t* s, uint32_t cap) {
  memset(s, 0, sizeof *s);
  s->cap = cap;
  s->last_hit = -1.0;
}

//! Clamps a proposed CAP into [min, max].
static uint32_t learn_clamp(const hak_learn_params_t* p, int64_t v) {
  if (v < (int64_t)p->min) v = p->min;
  if (v > (int64_t)p->max) v = p->max;
  return (uint32_t)v;
}

//! ceil() of a non-negative x, without libm (the run time needs libc and
//! pthreads only; -O0 builds call ceil, which libhakmem.so does not link).
static double learn_ceil(double x) {
  if (!(x > 0)) return 0;             /* callers pass no negatives (NaN: none either) */
  if (x >= 1e18) return x;            /* already an integer */
  double i = (double)(uint64_t)x;
  return i < x ? i + 1 : i;
}

//! How far CAP rises for a window below the band: a step, or (proportional)
//! toward CAP * target / hit, at most x max_factor and the window's missed
//! units (at least 1: a move of a whole step near the band could jump
//! across it).  Aiming at the band's middle leaves room both ways for a
//! hit rate that does not quite follow CAP.
static uint64_t learn_rise(const hak_learn_params_t* p, uint32_t cap, double hit, const hak_learn_window_t* w) {
  if (p->max_factor <= 1) return p->step;
  double f = hit * p->max_factor > p->target ? p->target / hit : (double)p->max_factor;
  double up = learn_ceil((double)cap * (f - 1.0));
  if (up > (double)w->miss_units) up = (double)w->miss_units;    /* w: the peaks since the last change */
  return up > 1 ? (uint64_t)up : 1;
}

//! How far CAP falls for a window above the band: a step, or (proportional)
//! to CAP * target / hit, or lower, to what the cache served scaled the same
//! way (a class served by its thread caches needs no CAP).
static uint64_t learn_fall(const hak_learn_params_t* p, uint32_t cap, double hit, const hak_learn_window_t* w) {
  if (p->max_factor <= 1) return p->step;
  double want = learn_ceil((double)cap * p->target / hit);
  double need = learn_ceil((double)w->drawn_units * p->target / hit);
  if (need < want) want = need;
  double down = (double)cap - want;
  return down > 1 ? (uint64_t)down : 1;
}

uint32_t hak__learner_cap_update(const hak_learn_params_t* p, hak_learn_class_t* s,
                                 const hak_learn_window_t* w, uint64_t now) {
  int64_t next = s->cap;
  if (w->miss_units > s->peak_missed) s->peak_missed = w->miss_units;
  if (w->drawn_units > s->peak_drawn) s->peak_drawn = w->drawn_units;
  hak_learn_window_t pw = {w->allocs, w->misses, s->peak_missed, s->peak_drawn};
  if (w->allocs < p->min_samples) {
    /* too few samples to judge a hit rate; a long quiet stretch means the
     * cache is not needed: decay toward min, by halves (at least a step) */
    if (!s->idle) { s->idle = 1; s->idle_since_ns = now; }
    if (now - s->idle_since_ns >= p->idle_ns && s->cap > p->min) {
      uint32_t d = (s->cap - p->min) / 2;
      next = (int64_t)s->cap - (d > p->step ? d : p->step);
    }
  } else {
    s->idle = 0;
    double hit = hak__learner_hit_rate(w);
    s->last_hit = hit;
    if (hit < p->target - p->band) next = (int64_t)s->cap + (int64_t)learn_rise(p, s->cap, hit, &pw);
    else if (hit > p->target + p->band) next = (int64_t)s->cap - (int64_t)learn_fall(p, s->cap, hit, &pw);
  }
  uint32_t cap = learn_clamp(p, next);
  if (cap == s->cap) return cap;
  int dir = cap > s->cap ? 1 : -1;
  /* a reversal waits 2, 4, then 8 dwells: a step that jumps the whole band
   * would otherwise flip CAP between two values forever */
  int rev = s->last_dir && dir != s->last_dir;
  uint64_t dwell = rev ? p->dwell_ns << (s->reversals < 2 ? s->reversals + 1 : 3) : p->dwell_ns;
  if (s->changes && now - s->last_change_ns < dwell) return s->cap;
  s->cap = cap;
  s->changes++;
  s->reversals = rev ? (uint8_t)(s->reversals < 255 ? s->reversals + 1 : 255) : 0;
  s->last_dir = (int8_t)dir;
  s->last_change_ns = now;
  s->peak_missed = s->peak_drawn = 0;      /* the next move is judged on the new CAP */
  return cap;
}

/* ---- W_MAX canary (pure) ----------------------------------------------------- */

double hak__wmax_score(const hak_wmax_params_t* p, const hak_wmax_window_t* w) {
  hak_learn_window_t lw = {w->allocs, w->misses, 0, 0};
  double waste = w->handed_bytes > w->req_bytes
                     ? (double)(w->handed_bytes - w->req_bytes) / (double)w->handed_bytes : 0.0;
  return hak__learner_hit_rate(&lw) - p->frag_weight * waste;
}

void hak__wmax_init(hak_wmax_state_t* s, uint32_t start_milli, uint64_t now) {
  memset(s, 0, sizeof *s);
  s->phase = HAK_WMAX_BASELINE;
  s->cur_milli = s->best_milli = start_milli;
  s->phase_start_ns = now;
  s->last_score = NAN;
}

//! Starts a phase: the accumulated window restarts.
static void wmax_begin(hak_wmax_state_t* s, int phase, uint64_t now) {
  s->phase = phase;
  s->phase_start_ns = now;
  memset(&s->acc, 0, sizeof s->acc);
}

//! The next candidate other than the best, or -1 when the round is over.
static int wmax_next(const hak_wmax_params_t* p, hak_wmax_state_t* s) {
  while (s->next < p->ncand && p->cand[s->next] == s->best_milli) s->next++;
  return s->next < p->ncand ? s->next++ : -1;
}

uint32_t hak__wmax_step(const hak_wmax_params_t* p, hak_wmax_state_t* s,
                        const hak_wmax_window_t* w, uint64_t now) {
  s->acc.allocs += w->allocs;
  s->acc.misses += w->misses;
  s->acc.handed_bytes += w->handed_bytes;
  s->acc.req_bytes += w->req_bytes;
  uint64_t len = s->phase == HAK_WMAX_SETTLE ? p->settle_ns : p->trial_ns;
  if (now - s->phase_start_ns < len) return s->cur_milli;
  if (s->phase == HAK_WMAX_SETTLE) {          /* re-measure the best under today's load */
    wmax_begin(s, HAK_WMAX_BASELINE, now);
    return s->cur_milli;
  }
  /* a baseline or trial without enough samples runs on until it has them */
  if (s->acc.allocs < p->min_samples) return s->cur_milli;
  double sc = hak__wmax_score(p, &s->acc);
  s->last_score = sc;
  if (s->phase == HAK_WMAX_BASELINE) {
    s->best_score = sc;
    s->best_milli = s->cur_milli;
    s->best_valid = 1;
    s->next = 0;
  } else {
    double gain = sc - s->best_score;
    double need = p->canary ? p->adopt_pct * fabs(s->best_score) : 0.0;
    s->trials++;
    if (gain > 0 && gain >= need) {
      s->best_score = sc;
      s->best_milli = s->cur_milli;
      s->adopted++;
    } else {
      s->cur_milli = s->best_milli;           /* roll back */
      s->rollbacks++;
    }
  }
  int i = wmax_next(p, s);
  if (i < 0) {
    s->cur_milli = s->best_milli;
    wmax_begin(s, HAK_WMAX_SETTLE, now);
  } else {
    s->cur_milli = p->cand[i];
    wmax_begin(s, HAK_WMAX_TRIAL, now);
  }
  return s->cur_milli;
}

/* ---- parameters from the options ---------------------------------------------- */

void hak__learner_params_from_opt(int layer, hak_learn_params_t* p) {
  int large = layer == HAK_LAYER_LARGE;
  const hak_options_t* o = &hak__opt;
  p->target = large ? o->target_hit_large : o->target_hit_mid;
  p->band = HAK_LEARN_BAND;
  p->step = (uint32_t)(large ? o->cap_step_large : o->cap_step_mid);
  p->min = (uint32_t)(large ? o->cap_min_large : o->cap_min_mid);
  p->max = (uint32_t)(large ? o->cap_max_large : o->cap_max_mid);
  if (p->min > p->max) p->min = p->max;        /* options.c checks only the Mid pair */
  p->dwell_ns = (uint64_t)o->cap_dwell_sec_mid * 1000000000ull;   /* no Large dwell option */
  uint64_t idle = (uint64_t)HAK_LEARN_IDLE_WINDOWS * (uint64_t)o->learn_window_ms * 1000000ull;
  p->idle_ns = idle > p->dwell_ns ? idle : p->dwell_ns;
  p->max_factor = HAK_LEARN_MAX_FACTOR;
  /* Large allocations are few and each costs much more: a smaller sample judges */
  p->min_samples = large ? (uint64_t)(o->learn_min_samples / 8 ? o->learn_min_samples / 8 : 1)
                         : (uint64_t)o->learn_min_samples;
}

void hak__wmax_params_from_opt(hak_wmax_params_t* p) {
  memset(p, 0, sizeof *p);
  double c[HAK_WMAX_MAX_CAND];
  int n = hak__parse_csv_doubles(hak__opt.wmax_candidates_mid, c, HAK_WMAX_MAX_CAND);
  for (int i = 0; i < n; i++) p->cand[p->ncand++] = (uint32_t)(c[i] * 1000.0 + 0.5);
  p->canary = hak__opt.wmax_canary;
  p->adopt_pct = hak__opt.wmax_adopt_pct;
  p->frag_weight = HAK_LEARN_FRAG_WEIGHT;
  p->trial_ns = (uint64_t)hak__opt.wmax_trial_sec * 1000000000ull;
  p->settle_ns = 6 * p->trial_ns;
  p->min_samples = (uint64_t)hak__opt.learn_min_samples;
}

/* ---- the glue: one window in the background thread -------------------------------- */

static struct {
  _Atomic int busy, stopped;
  int configured, ready, nolog, log_fd;
  uint64_t t0_ns, last_ns, window_ns, windows;
  hak_learn_params_t par[HAK_LAYER_COUNT];
  hak_learn_class_t cls[LEARN_NCLS];
  uint32_t cap0[LEARN_NCLS];
  hak_wmax_params_t wpar;
  hak_wmax_state_t wst;
} L = {.log_fd = -1};
static _Atomic uint32_t learn_changes[LEARN_NCLS];     /* for the stats table, any thread */
static _Atomic uint32_t learn_wmax_trials, learn_wmax_adopted;
static hak_tstats_t learn_prev, learn_cur, learn_tick; /* ~5 KiB each: not on the bg stack */
static uint64_t learn_win_live[LEARN_NCLS];            /* most live blocks seen in the window */

static inline uint64_t learn_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

static const char* const learn_layer_name[HAK_LAYER_COUNT] = {"tiny", "mid", "large", "huge"};

//! Appends to the row buffer; writes it out when nearly full.
static void learn_log_put(char* buf, size_t* n, size_t cap, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void learn_log_put(char* buf, size_t* n, size_t cap, const char* fmt, ...) {
  if (L.log_fd < 0) return;
  if (cap - *n < 256) {
    ssize_t r = write(L.log_fd, buf, *n);
    (void)r;
    *n = 0;
  }
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(buf + *n, cap - *n, fmt, ap);
  va_end(ap);
  if (k > 0) *n += (size_t)k < cap - *n ? (size_t)k : cap - *n - 1;
}

//! First window: parameters, the start CAPs, the log file.
static void learn_configure(uint64_t now) {
  for (int l = 0; l < HAK_LAYER_COUNT; l++) hak__learner_params_from_opt(l, &L.par[l]);
  for (unsigned i = 0; i < LEARN_NCLS; i++) {
    L.cap0[i] = hak__policy_cap(i);
    hak__learner_class_init(&L.cls[i], L.cap0[i]);
  }
  hak__wmax_params_from_opt(&L.wpar);
  hak__wmax_init(&L.wst, hak__policy_wmax_milli(), now);
  L.window_ns = (uint64_t)hak__opt.learn_window_ms * 1000000ull;
  L.t0_ns = now;
  if (hak__opt.learn_log[0] && !L.nolog) {
    L.log_fd = open(hak__opt.learn_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (L.log_fd < 0) {
      static const char msg[] = "hakmem: HAKMEM_LEARN_LOG: cannot open the file; no log\n";
      hak__os_write_err(msg, sizeof msg - 1);
    } else {
      static const char hdr[] = "time_s,class_size,layer,allocs,hit_rate,cap,wmax,waste_bytes,rss_bytes\n";
      ssize_t r = write(L.log_fd, hdr, sizeof hdr - 1);
      (void)r;
    }
  }
  L.configured = 1;
}

//! Publishes a new CAP; a lower one gives back what lies beyond it now,
//! less what the class drew from its cache in the window (it will again).
static void learn_publish(unsigned i, uint32_t old, uint32_t cap, uint64_t drawn_blocks) {
  atomic_store_explicit(&hak__cap[i], cap, memory_order_relaxed);
  atomic_store_explicit(&learn_changes[i], L.cls[i].changes, memory_order_relaxed);
  if (cap >= old || hak__opt.keep) return;
  if (i < HAK_SMALL_CLASSES) {
    uint64_t bpp = hak__class_cap[i];
    uint64_t keep = cap + (drawn_blocks + bpp - 1) / bpp;
    hak__small_scavenge(i, (uint32_t)(keep < 0x7fffffff ? keep : 0x7fffffff), 0);
  } else {
    uint64_t keep = cap + drawn_blocks;
    hak__l25_trim_class(i - HAK_SMALL_CLASSES, (uint32_t)(keep < 0x7fffffff ? keep : 0x7fffffff));
  }
}

//! One window: every class's CAP, then W_MAX; one log row per active class.
static void learn_window(uint64_t now) {
  const hak_tstats_t* p = &learn_prev;
  const hak_tstats_t* c = &learn_cur;
  hak__ace_window(p, c);
  uint32_t wmax = hak__policy_wmax_milli();
  size_t rss = L.log_fd >= 0 ? hak__os_rss() : 0;
  double t = (double)(now - L.t0_ns) / 1e9;
  hak_wmax_window_t mw = {0, 0, 0, 0};
  char buf[8192];
  size_t n = 0;
  for (unsigned i = 0; i < LEARN_NCLS; i++) {
    uint64_t a = learn_sub(c->c[HAK_CS_alloc][i], p->c[HAK_CS_alloc][i]);
    uint64_t m = learn_sub(c->c[HAK_CS_miss][i], p->c[HAK_CS_miss][i]);
    uint64_t size = hak__ace_class_size(i);
    int layer = hak__class_layer(i);
    if (layer != HAK_LAYER_LARGE) m *= hak__class_cap[i];    /* a fresh page serves bpp blocks */
    hak_learn_class_t* s = &L.cls[i];
    /* the window's most live blocks, not only its last: a burst that rose
     * and fell within the window is growth, not misses */
    uint64_t live = hak__ace_class_live(c, i);
    if (learn_win_live[i] > live) live = learn_win_live[i];
    learn_win_live[i] = 0;
    uint64_t drawn = learn_sub(c->c[HAK_CS_central_pop][i], p->c[HAK_CS_central_pop][i]);
    uint64_t unit = layer == HAK_LAYER_LARGE ? 1 : hak__class_cap[i];   /* blocks per CAP unit */
    hak_learn_window_t w = {a, hak__learner_avoidable(m, a, live, &s->peak_live), 0, (drawn + unit - 1) / unit};
    w.miss_units = (w.misses + unit - 1) / unit;
    uint32_t old = s->cap;
    uint32_t cap = hak__learner_cap_update(&L.par[layer], s, &w, now);
    if (cap != old) learn_publish(i, old, cap, drawn);
    if (layer == HAK_LAYER_MID) {
      mw.allocs += a;
      mw.misses += w.misses;
      mw.handed_bytes += size * a;
      mw.req_bytes += hak__ace_window_requests(p, c, i);
    }
    if (a || cap != old)     /* an idle class's decay shows too */
      learn_log_put(buf, &n, sizeof buf, "%.3f,%llu,%s,%llu,%.4f,%u,%.3f,%llu,%zu\n", t,
                    (unsigned long long)size, learn_layer_name[layer], (unsigned long long)a,
                    hak__learner_hit_rate(&w), cap, wmax / 1000.0,
                    (unsigned long long)hak__ace_class_waste(c, i), rss);
  }
  if (n && L.log_fd >= 0) {
    ssize_t r = write(L.log_fd, buf, n);
    (void)r;
  }
  if (hak__opt.wmax_learn && L.wpar.ncand) {
    uint32_t wm = hak__wmax_step(&L.wpar, &L.wst, &mw, now);
    if (wm != wmax) atomic_store_explicit(&hak__wmax_mid_milli, wm, memory_order_relaxed);
    atomic_store_explicit(&learn_wmax_trials, L.wst.trials, memory_order_relaxed);
    atomic_store_explicit(&learn_wmax_adopted, L.wst.adopted, memory_order_relaxed);
  }
  L.windows++;
}

//! Between windows: every class's live blocks, kept at their most.
static void learn_sample(void) {
  hak__stats_sum(&learn_tick);
  for (unsigned i = 0; i < LEARN_NCLS; i++) {
    uint64_t live = hak__ace_class_live(&learn_tick, i);
    if (live > learn_win_live[i]) learn_win_live[i] = live;
  }
}

//! Called every background tick; acts once per HAKMEM_LEARN_WINDOW_MS and
//! samples the live blocks on the ticks between.
void hak__learner_step(uint64_t now) {
  if (!hak__opt.learn || atomic_load_explicit(&L.stopped, memory_order_acquire)) return;
  int expect = 0;
  if (!atomic_compare_exchange_strong(&L.busy, &expect, 1)) return;
  if (L.ready && now - L.last_ns < L.window_ns) {
    if (!atomic_load(&L.stopped)) learn_sample();
  } else if (!atomic_load(&L.stopped)) {
    if (!L.configured) learn_configure(now);
    if (!L.ready) {
      hak__stats_sum(&learn_prev);           /* the first window starts now */
      memset(learn_win_live, 0, sizeof learn_win_live);
      L.ready = 1;
    } else {
      hak__stats_sum(&learn_cur);
      learn_window(now);
      memcpy(&learn_prev, &learn_cur, sizeof learn_prev);
    }
    L.last_ns = now;
  }
  atomic_store_explicit(&L.busy, 0, memory_order_release);
}

//! The fork child has no background thread yet: the next one re-bases the
//! counters.  The child does not write the parent's log.
void hak__learner_fork_child(void) {
  atomic_store(&L.busy, 0);
  L.ready = 0;
  L.nolog = 1;
  if (L.log_fd >= 0) close(L.log_fd);
  L.log_fd = -1;
}

//! At exit: no window after this one; waits (briefly) for one in progress.
void hak__learner_stop(void) {
  atomic_store(&L.stopped, 1);
  for (unsigned n = 0; n < 60 && atomic_load(&L.busy);) hak__os_backoff(&n);   /* ~40 ms at most */
  if (!atomic_load(&L.busy) && L.log_fd >= 0) {
    close(L.log_fd);
    L.log_fd = -1;
  }
}

uint32_t hak__learner_changes(unsigned i) {
  return i < LEARN_NCLS ? atomic_load_explicit(&learn_changes[i], memory_order_relaxed) : 0;
}

void hak__learner_print(FILE* f) {
  hak_tstats_t* t = hak__os_map(sizeof *t);
  if (t) {
    hak__stats_sum(t);
    uint64_t w[HAK_LAYER_COUNT];
    hak__ace_layers(t, w);
    hak__os_unmap(t, sizeof *t);
    fprintf(f, "ace waste (live bytes beyond requests): tiny %llu, mid %llu, large %llu, total %llu\n",
            (unsigned long long)w[0], (unsigned long long)w[1], (unsigned long long)w[2],
            (unsigned long long)(w[0] + w[1] + w[2]));
  }
  if (!hak__opt.learn) return;
  fprintf(f, "learner: W_MAX %.3f (%u trials, %u adopted); CAP per class (final [start] changes):\n",
          hak__policy_wmax_milli() / 1000.0, atomic_load(&learn_wmax_trials), atomic_load(&learn_wmax_adopted));
  int k = 0;
  for (unsigned i = 0; i < LEARN_NCLS; i++) {
    uint32_t ch = hak__learner_changes(i), cap = hak__policy_cap(i);
    if (!ch) continue;
    fprintf(f, "  %-5s %7zu: %u [%u] %u\n", learn_layer_name[hak__class_layer(i)], hak__ace_class_size(i), cap,
            L.cap0[i], ch);
    k++;
  }
  if (!k) fprintf(f, "  (no CAP changed)\n");
}
