/* Every HAKMEM_* option, in one table (options.c), read once at init. */
#ifndef HAK_OPTIONS_H
#define HAK_OPTIONS_H

typedef struct hak_options {
  int    verbose, stats, secure, valgrind, keep, thp, bg;
  int    pool_refill_batch, pool_tls_ring;
  int    cap_tiny, cap_mid, cap_large;
  double wmax_mid;
  int    huge_cache_mb, huge_decay_ms, decay_ms;
  int    learn, learn_window_ms, learn_min_samples;
  double target_hit_mid, target_hit_large;
  int    cap_step_mid, cap_min_mid, cap_max_mid, cap_dwell_sec_mid;
  int    cap_step_large, cap_min_large, cap_max_large;
  int    wmax_learn, wmax_canary, wmax_trial_sec;
  double wmax_adopt_pct;
  char   wmax_candidates_mid[128];
  char   learn_log[256];
  long   fault_mmap_nth;
} hak_options_t;

/* Build switch HAK_HARDENED (make HARDENED=1): HAKMEM_SECURE defaults to 1 */
#ifdef HAK_HARDENED
#define HAK_SECURE_DEFAULT 1
#else
#define HAK_SECURE_DEFAULT 0
#endif

extern hak_options_t hak__opt;
void hak__options_init(void);      /* reads the environment; never allocates */
void hak__options_print(void);     /* HAKMEM_VERBOSE=1 */
/* parses CSV doubles into out (at most max); returns the count, -1 if malformed */
int  hak__parse_csv_doubles(const char* s, double* out, int max);
#endif
