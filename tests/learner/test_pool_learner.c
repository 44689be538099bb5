/* The learner's controllers as pure functions (seed phase 6.27): no
 * threads, no sleeping.  Checks that
 *  - CAP rises below the target band and falls above it;
 *  - the dwell time (twice for a reversal) and min samples are respected;
 *  - CAP is clamped to [MIN, MAX];
 *  - a steady input, and a closed loop with a plant, do not oscillate;
 *  - proportional moves (max_factor > 1) go toward CAP * aim / hit within
 *    their bounds (x max_factor, missed units, drawn units) and settle in
 *    the band in a few dwells, without a limit cycle;
 *  - first-time growth is not a miss, regrowth after a release is;
 *  - an idle class decays toward MIN;
 *  - the W_MAX canary adopts only a gain of ADOPT_PCT and rolls back
 *    otherwise (CANARY=0: any gain);
 *  - bad env values give one warning and the default (re-exec);
 *  - ACE waste follows live blocks of a known request size. */
#define _GNU_SOURCE
#include <math.h>
#include "hk_test.h"
#include "learner.h"
#include "options.h"

#define SEC 1000000000ull

static hak_learn_params_t P(void) {
  hak_learn_params_t p = {.target = 0.65, .band = 0.03, .step = 4, .min = 8, .max = 64,
                          .dwell_ns = 0, .idle_ns = 10 * SEC, .min_samples = 256};
  return p;
}
static hak_learn_window_t W(uint64_t allocs, double hit) {
  hak_learn_window_t w = {allocs, (uint64_t)llround((double)allocs * (1.0 - hit)), 0, 0};
  return w;
}

static void test_direction(void) {
  hak_learn_params_t p = P();
  hak_learn_class_t s;
  hak__learner_class_init(&s, 16);
  hak_learn_window_t lo = W(1000, 0.40), hi = W(1000, 0.95);
  CHECK(hak__learner_cap_update(&p, &s, &lo, 1 * SEC) == 20, "below target: 16 -> %u, want 20", s.cap);
  CHECK(hak__learner_cap_update(&p, &s, &lo, 2 * SEC) == 24, "below target again: %u, want 24", s.cap);
  CHECK(hak__learner_cap_update(&p, &s, &hi, 3 * SEC) == 20, "above target: %u, want 20", s.cap);
  CHECK(s.changes == 3, "changes %u, want 3", s.changes);
  /* inside the band (target +- 0.03): nothing moves */
  double in[] = {0.65, 0.63, 0.67, 0.621, 0.679, 0.66};
  for (int i = 0; i < 6; i++) {
    hak_learn_window_t w = W(1000, in[i]);
    CHECK(hak__learner_cap_update(&p, &s, &w, (uint64_t)(4 + i) * SEC) == 20, "hit %.3f in band moved CAP to %u",
          in[i], s.cap);
  }
  CHECK(fabs(hak__learner_hit_rate(&lo) - 0.40) < 1e-9, "hit rate %f", hak__learner_hit_rate(&lo));
  hak_learn_window_t empty = {0, 0, 0, 0}, over = {10, 50, 0, 0};
  CHECK(hak__learner_hit_rate(&empty) == 1.0 && hak__learner_hit_rate(&over) == 0.0, "hit rate edge cases");
}

static void test_dwell_and_samples(void) {
  hak_learn_params_t p = P();
  p.dwell_ns = 3 * SEC;
  hak_learn_class_t s;
  hak__learner_class_init(&s, 16);
  hak_learn_window_t lo = W(1000, 0.2), hi = W(1000, 0.99);
  CHECK(hak__learner_cap_update(&p, &s, &lo, 1 * SEC) == 20, "first change is free: %u", s.cap);
  CHECK(hak__learner_cap_update(&p, &s, &lo, 2 * SEC) == 20, "1 s later, dwell 3 s: moved to %u", s.cap);
  CHECK(hak__learner_cap_update(&p, &s, &lo, 3 * SEC + SEC / 2) == 20, "2.5 s later: moved to %u", s.cap);
  CHECK(hak__learner_cap_update(&p, &s, &lo, 4 * SEC) == 24, "3 s later: %u, want 24", s.cap);
  /* a reversal waits twice the dwell */
  CHECK(hak__learner_cap_update(&p, &s, &hi, 8 * SEC) == 24, "reversal after 4 s (< 6 s): moved to %u", s.cap);
  CHECK(hak__learner_cap_update(&p, &s, &hi, 10 * SEC) == 20, "reversal after 6 s: %u, want 20", s.cap);
  /* a second reversal in a row waits 4 dwells (12 s), a third 8 (24 s) */
  CHECK(hak__learner_cap_update(&p, &s, &lo, 21 * SEC) == 20, "2nd reversal after 11 s: moved to %u", s.cap);
  CHECK(hak__learner_cap_update(&p, &s, &lo, 22 * SEC) == 24, "2nd reversal after 12 s: %u, want 24", s.cap);
  CHECK(hak__learner_cap_update(&p, &s, &hi, 45 * SEC) == 24, "3rd reversal after 23 s: moved to %u", s.cap);
  CHECK(hak__learner_cap_update(&p, &s, &hi, 46 * SEC) == 20, "3rd reversal after 24 s: %u, want 20", s.cap);
  /* moving on in the same direction resets the backoff: one dwell */
  CHECK(hak__learner_cap_update(&p, &s, &hi, 49 * SEC) == 16, "same direction after 3 s: %u, want 16", s.cap);
  CHECK(hak__learner_cap_update(&p, &s, &lo, 54 * SEC) == 16 &&
        hak__learner_cap_update(&p, &s, &lo, 55 * SEC) == 20, "reversal after a run waits 2 dwells again: %u", s.cap);
  /* too few samples: no judgement however bad the hit rate */
  hak__learner_class_init(&s, 16);
  p.dwell_ns = 0;
  hak_learn_window_t few = W(255, 0.0), enough = W(256, 0.0);
  for (int i = 1; i <= 5; i++)
    CHECK(hak__learner_cap_update(&p, &s, &few, (uint64_t)i * SEC) == 16, "255 samples moved CAP to %u", s.cap);
  CHECK(hak__learner_cap_update(&p, &s, &enough, 6 * SEC) == 20, "256 samples: %u, want 20", s.cap);
}

static void test_clamp(void) {
  hak_learn_params_t p = P();
  hak_learn_class_t s;
  hak__learner_class_init(&s, 16);
  hak_learn_window_t lo = W(1000, 0.1), hi = W(1000, 1.0);
  for (int i = 1; i <= 100; i++) hak__learner_cap_update(&p, &s, &lo, (uint64_t)i * SEC);
  CHECK(s.cap == 64, "100 rises: CAP %u, want MAX 64", s.cap);
  uint32_t ch = s.changes;
  hak__learner_cap_update(&p, &s, &lo, 101 * SEC);
  CHECK(s.cap == 64 && s.changes == ch, "at MAX: CAP %u changes %u (was %u)", s.cap, s.changes, ch);
  for (int i = 102; i <= 200; i++) hak__learner_cap_update(&p, &s, &hi, (uint64_t)i * SEC);
  CHECK(s.cap == 8, "100 falls: CAP %u, want MIN 8", s.cap);
  /* a start value outside the range is pulled in */
  hak__learner_class_init(&s, 1000);
  hak_learn_window_t mid = W(1000, 0.65);
  CHECK(hak__learner_cap_update(&p, &s, &mid, SEC) == 64, "start 1000 in band: %u, want 64", s.cap);
  hak__learner_class_init(&s, 0);
  CHECK(hak__learner_cap_update(&p, &s, &mid, SEC) == 8, "start 0 in band: %u, want 8", s.cap);
  /* a step of a non-multiple lands exactly on the bounds */
  p.step = 5; p.min = 8; p.max = 50;
  hak__learner_class_init(&s, 47);
  CHECK(hak__learner_cap_update(&p, &s, &lo, SEC) == 50, "47 + 5 clamps to 50, got %u", s.cap);
}

//! A plant's hit rate with uniform noise of +-noise, kept in [0, 1].
static double noisy_hit(double hit, double noise, uint64_t* rng) {
  if (noise > 0) hit += noise * ((double)(hk_rand(rng) % 2001) / 1000.0 - 1.0);
  return hit > 1 ? 1 : hit < 0 ? 0 : hit;
}

//! 1 if CAP moving from old to cap turns back against the last move *dir
//! (which it then updates); 0 for a first move, the same way, or no move.
static int reversed(uint32_t old, uint32_t cap, int* dir) {
  if (cap == old) return 0;
  int d = cap > old ? 1 : -1, r = *dir && d != *dir;
  *dir = d;
  return r;
}

//! Closed loop: the plant's hit rate grows with CAP (cap/100, plus noise).
static int loop_reversals(uint32_t start, double noise, uint32_t* final, uint32_t* last_change_i) {
  hak_learn_params_t p = P();
  p.max = 2048;
  p.dwell_ns = 3 * SEC;
  hak_learn_class_t s;
  hak__learner_class_init(&s, start);
  uint64_t rng = 0x1234567;
  int rev = 0, dir = 0;
  *last_change_i = 0;
  for (uint32_t i = 1; i <= 2000; i++) {
    double hit = s.cap / 100.0;
    hit = noisy_hit(hit, noise, &rng);
    hak_learn_window_t w = W(10000, hit);
    uint32_t old = s.cap;
    hak__learner_cap_update(&p, &s, &w, (uint64_t)i * SEC);
    if (s.cap != old) {
      rev += reversed(old, s.cap, &dir);
      *last_change_i = i;
    }
  }
  *final = s.cap;
  return rev;
}

static void test_no_oscillation(void) {
  /* steady open-loop input: a constant hit rate inside the band never moves */
  hak_learn_params_t p = P();
  hak_learn_class_t s;
  hak__learner_class_init(&s, 32);
  for (int i = 1; i <= 1000; i++) {
    hak_learn_window_t w = W(5000, 0.66);
    hak__learner_cap_update(&p, &s, &w, (uint64_t)i * SEC);
  }
  CHECK(s.cap == 32 && s.changes == 0, "steady hit 0.66: CAP %u after %u changes", s.cap, s.changes);
  /* closed loop from below, from above, with noise: converges, never reverses */
  uint32_t starts[] = {16, 200, 2048};
  double noises[] = {0.0, 0.015};
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 2; b++) {
      uint32_t fin, lastc;
      int rev = loop_reversals(starts[a], noises[b], &fin, &lastc);
      CHECK(rev == 0, "closed loop from %u (noise %.3f): %d direction reversals", starts[a], noises[b], rev);
      CHECK(fin >= 60 && fin <= 68, "closed loop from %u (noise %.3f): final CAP %u, want 60..68 (hit ~0.65)",
            starts[a], noises[b], fin);
      CHECK(lastc < 1600, "closed loop from %u: still moving at window %u", starts[a], lastc);
    }
}

//! A plant where one step jumps the whole band (hit = cap / 40, step 4 =
//! 0.10): the reversal backoff keeps the limit cycle slow.
static void test_limit_cycle_backoff(void) {
  hak_learn_params_t p = P();
  p.dwell_ns = 3 * SEC;
  hak_learn_class_t s;
  hak__learner_class_init(&s, 16);
  for (uint32_t i = 1; i <= 600; i++) {
    double hit = s.cap / 40.0;
    hak_learn_window_t w = W(10000, hit > 1 ? 1 : hit);
    hak__learner_cap_update(&p, &s, &w, (uint64_t)i * SEC);
  }
  CHECK(s.changes <= 30 && s.cap >= 24 && s.cap <= 28,
        "coarse plant: %u changes in 600 s (one dwell each would be 200), CAP %u", s.changes, s.cap);
}

/* ---- proportional moves (max_factor > 1, what the options set) ------------------ */
static hak_learn_params_t PP(void) {
  hak_learn_params_t p = P();
  p.max = 2048;
  p.max_factor = HAK_LEARN_MAX_FACTOR;
  return p;
}
//! A window with its CAP units: missed and drawn pages.
static hak_learn_window_t WU(uint64_t allocs, double hit, uint64_t missed, uint64_t drawn) {
  hak_learn_window_t w = W(allocs, hit);
  w.miss_units = missed;
  w.drawn_units = drawn;
  return w;
}
//! One update of a fresh class from `start`: the CAP it moves to.
static uint32_t pp_once(uint32_t start, hak_learn_window_t w) {
  hak_learn_params_t p = PP();
  hak_learn_class_t s;
  hak__learner_class_init(&s, start);
  return hak__learner_cap_update(&p, &s, &w, SEC);
}

static void test_proportional(void) {
  /* below the band: toward CAP * 0.65 / hit */
  uint32_t c;
  CHECK((c = pp_once(16, WU(1000, 0.40, 1000, 0))) == 26, "16 at hit 0.40: %u, want 26", c);
  CHECK((c = pp_once(100, WU(1000, 0.61, 1000, 0))) == 107, "100 at hit 0.61: %u, want 107", c);
  CHECK((c = pp_once(16, WU(1000, 0.05, 1000, 0))) == 208, "16 at hit 0.05: %u, want 208", c);
  CHECK((c = pp_once(16, WU(10000, 0.02, 10000, 0))) == 16 * HAK_LEARN_MAX_FACTOR, "16 at hit 0.02: %u, want x%d",
        c, HAK_LEARN_MAX_FACTOR);
  CHECK((c = pp_once(16, WU(10000, 0.0, 10000, 0))) == 16 * HAK_LEARN_MAX_FACTOR, "16 at hit 0: %u, want x%d", c,
        HAK_LEARN_MAX_FACTOR);
  CHECK((c = pp_once(16, WU(1000, 0.02, 5, 0))) == 21, "5 pages missed: %u, want 16 + 5", c);
  CHECK((c = pp_once(16, WU(1000, 0.02, 1, 0))) == 17, "1 page missed: %u, want 17", c);
  CHECK((c = pp_once(100, WU(1000, 0.63, 1000, 1000))) == 100, "in the band: moved to %u", c);
  /* above: toward CAP * 0.65 / hit, and at most what the cache served, scaled */
  CHECK((c = pp_once(200, WU(1000, 1.0, 0, 1000))) == 130, "200 at hit 1.0: %u, want 130", c);
  CHECK((c = pp_once(100, WU(1000, 0.75, 0, 1000))) == 87, "100 at hit 0.75: %u, want 87", c);
  CHECK((c = pp_once(200, WU(1000, 1.0, 0, 20))) == 13, "20 pages drawn: %u, want 13", c);
  CHECK((c = pp_once(200, WU(1000, 1.0, 0, 0))) == 8, "nothing drawn (thread caches): %u, want MIN 8", c);
  CHECK((c = pp_once(10, WU(1000, 1.0, 0, 1000))) == 8, "10 at hit 1.0: %u, want 8 (MIN)", c);
  CHECK((c = pp_once(100, WU(1000, 0.69, 0, 1000))) == 95, "100 at hit 0.69: %u, want 95", c);
  CHECK((c = pp_once(30, WU(1000, 0.69, 0, 1000))) == 29, "30 at hit 0.69: %u, want 29 (less than a step)", c);
  /* the peaks since the last change decide, not one window that caught
   * part of a cycle; dwell and reversal backoff hold as for steps */
  hak_learn_params_t p = PP();
  p.dwell_ns = 3 * SEC;
  hak_learn_class_t s;
  hak__learner_class_init(&s, 200);
  hak_learn_window_t w = WU(1000, 1.0, 0, 1000);
  CHECK(hak__learner_cap_update(&p, &s, &w, 1 * SEC) == 130, "first fall: %u", s.cap);
  w = WU(1000, 1.0, 0, 500);
  CHECK(hak__learner_cap_update(&p, &s, &w, 2 * SEC) == 130, "dwell: moved to %u", s.cap);
  w = WU(1000, 1.0, 0, 0);
  hak__learner_cap_update(&p, &s, &w, 3 * SEC);
  CHECK(hak__learner_cap_update(&p, &s, &w, 4 * SEC) == 85, "drawn 500 then 0: %u, want 85 (not MIN)", s.cap);
  CHECK(hak__learner_cap_update(&p, &s, &w, 7 * SEC) == 8, "nothing drawn since the change: %u, want 8", s.cap);
  w = WU(1000, 0.12, 1000, 0);
  CHECK(hak__learner_cap_update(&p, &s, &w, 10 * SEC) == 8, "reversal after 3 s (< 6 s): moved to %u", s.cap);
  CHECK(hak__learner_cap_update(&p, &s, &w, 13 * SEC) == 44, "reversal after 6 s: %u, want 44", s.cap);
}

//! Closed loop for proportional moves: every window runs `k` cycles over a
//! working set of `ws` pages (8 blocks each); CAP pages of it are kept, the
//! rest refaults.  Counts reversals; *settle: the window from which CAP
//! stays within a step of its final value (docs/learner.md: converged) or,
//! with noise, within 5% (a hit rate read 0.015 off at the band's edge
//! moves CAP by a few percent, even long after).
static int pp_loop(uint32_t start, uint32_t ws, uint32_t k, double noise, uint32_t* final, uint32_t* settle) {
  hak_learn_params_t p = PP();
  p.dwell_ns = 3 * SEC;
  hak_learn_class_t s;
  hak__learner_class_init(&s, start);
  uint64_t rng = 0x9e3779b9 + ws + start;
  int rev = 0, dir = 0;
  static uint32_t hist[301];
  hist[0] = start;
  for (uint32_t i = 1; i <= 300; i++) {
    uint32_t kept = s.cap < ws ? s.cap : ws;
    double hit = (double)kept / ws;
    hit = noisy_hit(hit, noise, &rng);
    uint64_t allocs = (uint64_t)k * ws * 8;
    hak_learn_window_t w = WU(allocs, hit, (uint64_t)k * (ws - kept), (uint64_t)k * kept);
    uint32_t old = s.cap;
    hak__learner_cap_update(&p, &s, &w, (uint64_t)i * SEC);
    rev += reversed(old, s.cap, &dir);
    hist[i] = s.cap;
  }
  *final = s.cap;
  *settle = 0;
  uint32_t tol = noise > 0 && s.cap / 20 > p.step ? s.cap / 20 : p.step;
  for (uint32_t i = 0; i <= 300; i++)
    if (hist[i] + tol < s.cap || hist[i] > s.cap + tol) *settle = i + 1;
  return rev;
}

static void test_proportional_loop(void) {
  uint32_t sets[] = {40, 100, 384, 1000}, starts[] = {8, 16, 2048}, ks[] = {1, 4};
  double noises[] = {0.0, 0.015};
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 3; b++)
      for (int c = 0; c < 2; c++)
        for (int d = 0; d < 2; d++) {
          uint32_t fin, settle, ws = sets[a];
          int rev = pp_loop(starts[b], ws, ks[c], noises[d], &fin, &settle);
          double hit = (double)(fin < ws ? fin : ws) / ws;
          CHECK(rev <= (noises[d] > 0 ? 1 : 0), "set %u from %u (k %u, noise %.3f): %d reversals", ws, starts[b],
                ks[c], noises[d], rev);
          CHECK(hit >= 0.62 - noises[d] && hit <= 0.68 + noises[d], "set %u from %u (k %u, noise %.3f): final CAP %u, hit %.3f",
                ws, starts[b], ks[c], noises[d], fin, hit);
          /* from below: in the band within 10 s (3 dwells); from above the
           * thread caches' share is unknown: within 8 dwells */
          uint32_t limit = starts[b] < ws ? 10 : 25;
          CHECK(settle <= limit, "set %u from %u (k %u, noise %.3f): not within a step of CAP %u before %u s", ws, starts[b],
                ks[c], noises[d], fin, settle);
        }
}

static void test_avoidable_and_idle(void) {
  uint64_t peak = 0;
  /* first growth to 1000 live blocks: all fresh, none avoidable */
  CHECK(hak__learner_avoidable(1000, 1000, 1000, &peak) == 0 && peak == 1000, "first growth counted as misses");
  /* freed and released, then regrown: every fresh block was avoidable */
  CHECK(hak__learner_avoidable(1000, 1000, 1000, &peak) == 1000, "regrowth not counted");
  /* growth above the old peak by 200: 200 of 700 fresh are unavoidable */
  CHECK(hak__learner_avoidable(700, 1200, 1200, &peak) == 500 && peak == 1200, "partial growth");
  /* fresh blocks beyond allocs (a page batch) count at most allocs */
  CHECK(hak__learner_avoidable(4096, 300, 0, &peak) == 300, "misses capped at allocs");

  hak_learn_params_t p = P();
  p.max = 2048;
  p.dwell_ns = 3 * SEC;
  hak_learn_class_t s;
  hak__learner_class_init(&s, 200);
  hak_learn_window_t idle = {10, 10, 0, 0};
  for (int i = 1; i <= 10; i++) hak__learner_cap_update(&p, &s, &idle, (uint64_t)i * SEC);
  CHECK(s.cap == 200, "idle 9 s (< idle 10 s): CAP %u", s.cap);
  hak__learner_cap_update(&p, &s, &idle, 11 * SEC);
  CHECK(s.cap == 104, "idle 10 s: CAP %u, want 104 (halfway to 8)", s.cap);
  hak__learner_cap_update(&p, &s, &idle, 12 * SEC);
  CHECK(s.cap == 104, "dwell after an idle decay: CAP %u", s.cap);
  for (int i = 13; i <= 60; i++) hak__learner_cap_update(&p, &s, &idle, (uint64_t)i * SEC);
  CHECK(s.cap == 8, "long idle: CAP %u, want MIN 8", s.cap);
  /* activity ends the idle stretch: the clock restarts */
  hak__learner_class_init(&s, 200);
  hak_learn_window_t busy = W(1000, 0.65);
  for (int i = 1; i <= 30; i++)
    hak__learner_cap_update(&p, &s, (i % 8 == 0) ? &busy : &idle, (uint64_t)i * SEC);
  CHECK(s.cap == 200, "idle stretches of 7 s broken by activity: CAP %u", s.cap);
}

static hak_wmax_params_t WP(int canary) {
  hak_wmax_params_t p;
  memset(&p, 0, sizeof p);
  p.cand[0] = 1250; p.cand[1] = 1400; p.cand[2] = 1600;
  p.ncand = 3;
  p.canary = canary;
  p.adopt_pct = 0.01;
  p.frag_weight = 1.0;
  p.trial_ns = 5 * SEC;
  p.settle_ns = 30 * SEC;
  p.min_samples = 256;
  return p;
}
//! A Mid window whose score is hit 1.0 minus the waste ratio: score s.
static hak_wmax_window_t WW(double score) {
  hak_wmax_window_t w = {10000, 0, 1000000, (uint64_t)llround(1000000 * score)};
  return w;
}
//! Runs one phase of 5 windows of 1 s at a given score; returns W_MAX after.
static uint32_t wmax_phase(const hak_wmax_params_t* p, hak_wmax_state_t* s, double score, uint64_t* t) {
  uint32_t w = 0;
  for (int i = 0; i < 5; i++) {
    *t += SEC;
    hak_wmax_window_t x = WW(score);
    w = hak__wmax_step(p, s, &x, *t);
  }
  return w;
}

static void test_wmax_canary(void) {
  hak_wmax_params_t p = WP(1);
  hak_wmax_state_t s;
  uint64_t t = 0;
  hak__wmax_init(&s, 1600, t);
  hak_wmax_window_t probe = WW(0.8);
  CHECK(fabs(hak__wmax_score(&p, &probe) - 0.8) < 1e-6, "score %f, want 0.8", hak__wmax_score(&p, &probe));
  /* baseline at 1.6 scores 0.80; then the first candidate runs as a canary */
  uint32_t w = wmax_phase(&p, &s, 0.80, &t);
  CHECK(w == 1250 && s.phase == HAK_WMAX_TRIAL, "after baseline: W_MAX %u phase %d, want 1250 in trial", w, s.phase);
  /* 1.25 scores 0.805: +0.6%, under ADOPT_PCT 1% -> rolled back, next is 1.4 */
  w = wmax_phase(&p, &s, 0.805, &t);
  CHECK(s.best_milli == 1600 && s.rollbacks == 1 && w == 1400, "small gain: best %u rollbacks %u now %u",
        s.best_milli, s.rollbacks, w);
  /* 1.4 scores 0.90: adopted; 1.6 (no longer the best) is tried next */
  w = wmax_phase(&p, &s, 0.90, &t);
  CHECK(s.best_milli == 1400 && s.adopted == 1 && w == 1600, "big gain: best %u adopted %u now %u", s.best_milli,
        s.adopted, w);
  /* 1.6 scores 0.85, worse: rolled back to the best known, 1.4; the round ends */
  w = wmax_phase(&p, &s, 0.85, &t);
  CHECK(w == 1400 && s.phase == HAK_WMAX_SETTLE && s.trials == 3 && s.rollbacks == 2,
        "worse: W_MAX %u phase %d trials %u rollbacks %u, want 1400 settled, 3 trials, 2 rollbacks", w, s.phase,
        s.trials, s.rollbacks);
  /* settled: stays at the best for settle_ns whatever the windows say */
  for (int i = 0; i < 29; i++) {
    t += SEC;
    hak_wmax_window_t x = WW(0.1);
    CHECK(hak__wmax_step(&p, &s, &x, t) == 1400, "settle phase moved W_MAX");
  }
  /* a trial without enough samples runs on until it has them */
  hak__wmax_init(&s, 1600, 0);
  t = 0;
  wmax_phase(&p, &s, 0.5, &t);
  for (int i = 0; i < 20; i++) {
    t += SEC;
    hak_wmax_window_t few = {10, 0, 1000, 100};
    CHECK(hak__wmax_step(&p, &s, &few, t) == 1250 && s.trials == 0, "trial with 10 samples per window ended");
  }
  /* without canary margin, any gain is adopted */
  hak_wmax_params_t p0 = WP(0);
  hak__wmax_init(&s, 1600, 0);
  t = 0;
  wmax_phase(&p0, &s, 0.80, &t);
  w = wmax_phase(&p0, &s, 0.805, &t);
  CHECK(s.best_milli == 1250 && s.adopted == 1, "CANARY=0: a 0.6%% gain not adopted (best %u)", s.best_milli);
  /* equal scores never adopt: ties keep the best */
  hak__wmax_init(&s, 1600, 0);
  t = 0;
  wmax_phase(&p, &s, 0.80, &t);
  wmax_phase(&p, &s, 0.80, &t);
  CHECK(s.best_milli == 1600 && s.adopted == 0, "a tie was adopted");
  (void)w;
}

/* ---- env: bad values warn once and keep the default ---------------------------- */
static hk_child_t C;

static int child_params(void) {
  void* p = malloc(100);   /* options are read at init */
  free(p);
  hak_learn_params_t m, l;
  hak_wmax_params_t w;
  hak__learner_params_from_opt(HAK_LAYER_MID, &m);
  hak__learner_params_from_opt(HAK_LAYER_LARGE, &l);
  hak__wmax_params_from_opt(&w);
  printf("target=%.3f step=%u min=%u max=%u dwell=%llu ltarget=%.3f ncand=%d adopt=%.3f window=%d\n", m.target,
         m.step, m.min, m.max, (unsigned long long)(m.dwell_ns / SEC), l.target, w.ncand, w.adopt_pct,
         hak__opt.learn_window_ms);
  return 0;
}

static void test_bad_env(void) {
  const char* none[] = {NULL};
  hk_exec_self("params", none, 0, &C);
  CHECK(WIFEXITED(C.status) && WEXITSTATUS(C.status) == 0, "params child: %s", hk_status_str(C.status));
  char defaults[256];
  snprintf(defaults, sizeof defaults, "%.200s", C.out);
  CHECK(strstr(defaults, "target=0.650 step=4 min=8 max=2048 dwell=3 ltarget=0.550 ncand=5 adopt=0.010 window=1000"),
        "defaults: %s", defaults);
  struct { const char* env; const char* var; } bad[] = {
      {"HAKMEM_TARGET_HIT_MID=1.5", "HAKMEM_TARGET_HIT_MID"},
      {"HAKMEM_TARGET_HIT_MID=abc", "HAKMEM_TARGET_HIT_MID"},
      {"HAKMEM_CAP_STEP_MID=0", "HAKMEM_CAP_STEP_MID"},
      {"HAKMEM_CAP_MAX_MID=-5", "HAKMEM_CAP_MAX_MID"},
      {"HAKMEM_CAP_DWELL_SEC_MID=3s", "HAKMEM_CAP_DWELL_SEC_MID"},
      {"HAKMEM_TARGET_HIT_LARGE=0", "HAKMEM_TARGET_HIT_LARGE"},
      {"HAKMEM_WMAX_CANDIDATES_MID=1.4,x", "HAKMEM_WMAX_CANDIDATES_MID"},
      {"HAKMEM_WMAX_CANDIDATES_MID=3.0", "HAKMEM_WMAX_CANDIDATES_MID"},
      {"HAKMEM_WMAX_ADOPT_PCT=2", "HAKMEM_WMAX_ADOPT_PCT"},
      {"HAKMEM_LEARN_WINDOW_MS=10", "HAKMEM_LEARN_WINDOW_MS"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char* env[] = {bad[i].env, NULL};
    hk_exec_self("params", env, 0, &C);
    CHECK(WIFEXITED(C.status) && WEXITSTATUS(C.status) == 0, "%s: child %s\n%s", bad[i].env,
          hk_status_str(C.status), C.err);
    int warn = hk_count_lines(C.err, "hakmem: ", bad[i].var, NULL);
    CHECK(warn == 1, "%s: %d warning lines naming the variable, want 1; stderr:\n%s", bad[i].env, warn, C.err);
    CHECK(!strcmp(C.out, defaults), "%s: params differ from the defaults:\n  %s  %s", bad[i].env, C.out, defaults);
  }
  /* a good value takes effect, with no warning */
  const char* good[] = {"HAKMEM_TARGET_HIT_MID=0.8", "HAKMEM_CAP_STEP_MID=16", NULL};
  hk_exec_self("params", good, 0, &C);
  CHECK(!strstr(C.err, "hakmem: ") && strstr(C.out, "target=0.800 step=16 "), "good values: %s / %s", C.out, C.err);
}

/* ---- ACE waste -------------------------------------------------------------------- */
enum { ACE_N = 1000 };
static void* ace_p[ACE_N];

//! Allocates ACE_N blocks of n bytes (class size cs) and checks the total
//! waste grew by about (cs - n) each; returns the waste before.
static size_t ace_live(size_t n, size_t cs) {
  size_t before = hak_ace_get_total_waste();
  for (int i = 0; i < ACE_N; i++) ace_p[i] = malloc(n);
  size_t w = hak_ace_get_total_waste(), want = (cs - n) * ACE_N;
  CHECK(w >= before + want * 8 / 10 && w <= before + want * 13 / 10,
        "%d live blocks of %zu B (class %zu): waste %zu, before %zu, want ~%zu more", ACE_N, n, cs, w, before, want);
  return before;
}

static void test_ace_waste(void) {
  size_t before = ace_live(1100, 1280);                  /* Mid */
  for (int i = 0; i < ACE_N; i++) free(ace_p[i]);
  size_t after = hak_ace_get_total_waste();
  CHECK(after <= before + 180 * ACE_N / 10, "after the frees: waste %zu (before %zu)", after, before);
  for (int i = 0; i < ACE_N / 10; i++) ace_p[i] = malloc(512 * 1024 + 1);   /* Large class 655360 */
  size_t wl = hak_ace_get_total_waste();
  CHECK(wl >= after + (size_t)ACE_N / 10 * 120000, "100 live Large blocks: waste %zu (after %zu)", wl, after);
  for (int i = 0; i < ACE_N / 10; i++) free(ace_p[i]);
  ace_live(100, 112);            /* Tiny: the ratio comes from the slow path's sample of requests */
  for (int i = 0; i < ACE_N; i++) free(ace_p[i]);
}

int main(int argc, char** argv) {
  if (argc > 1 && !strcmp(argv[1], "params")) return child_params();
  hk_begin("test_pool_learner", 60);
  HK_STEP(test_direction());
  HK_STEP(test_dwell_and_samples());
  HK_STEP(test_clamp());
  HK_STEP(test_no_oscillation());
  HK_STEP(test_limit_cycle_backoff());
  HK_STEP(test_proportional());
  HK_STEP(test_proportional_loop());
  HK_STEP(test_avoidable_and_idle());
  HK_STEP(test_wmax_canary());
  HK_STEP(test_bad_env());
  HK_STEP(test_ace_waste());
  printf("ok\n");
  return 0;
}
