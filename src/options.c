/* The options table.  Each entry: env name, type, field, default, range.
 * A value that does not parse or is out of range gets one warning naming
 * the variable and the value, and the default stays.  Nothing here
 * allocates: getenv and strto* only, output through write(2). */
#define _GNU_SOURCE
#include "internal.h"
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>

hak_options_t hak__opt;

enum { OPT_INT, OPT_DBL, OPT_STR };
typedef struct opt_def {
  const char* name;
  int type;
  size_t off;
  double def, lo, hi;      /* for OPT_STR, hi is the buffer size */
  const char* sdef;
  const char* help;
} opt_def_t;

#define O(field) offsetof(hak_options_t, field)
static const opt_def_t opt_table[] = {
  {"HAKMEM_VERBOSE",            OPT_INT, O(verbose),            0, 0, 1, 0, "print the effective options at start"},
  {"HAKMEM_STATS",              OPT_INT, O(stats),              0, 0, 1, 0, "print the stats table to stderr at exit"},
  {"HAKMEM_SECURE",             OPT_INT, O(secure), HAK_SECURE_DEFAULT, 0, 1, 0, "hardened mode: trailers, poisoned delayed reuse, guard pages, encoded free-list links"},
  {"HAKMEM_VALGRIND",           OPT_INT, O(valgrind),           0, 0, 1, 0, "under valgrind: memcheck sees hakmem's blocks (leaks, use after free)"},
  {"HAKMEM_KEEP",               OPT_INT, O(keep),               0, 0, 1, 0, "never return cached memory to the OS (huge: but for a full slot table)"},
  {"HAKMEM_BG",                 OPT_INT, O(bg),                 1, 0, 1, 0, "background thread that returns idle memory (decay)"},
  {"HAKMEM_THP",                OPT_INT, O(thp),                0, 0, 1, 0, "transparent huge pages for huge blocks"},
  {"HAKMEM_POOL_REFILL_BATCH",  OPT_INT, O(pool_refill_batch),  2, 1, 4, 0, "fresh pages taken per refill (phase 6.25)"},
  {"HAKMEM_POOL_TLS_RING",      OPT_INT, O(pool_tls_ring),     64, 4, HAK_MID_BASE_MAX, 0, "blocks a Mid class's per-thread list holds before it spills, at first (the seed's ring capacity)"},
  {"HAKMEM_CAP_TINY",           OPT_INT, O(cap_tiny),          16, 0, 4096, 0, "cached free pages kept per Tiny class"},
  {"HAKMEM_CAP_MID",            OPT_INT, O(cap_mid),           16, 0, 4096, 0, "cached free pages kept per Mid class (CAP)"},
  {"HAKMEM_CAP_LARGE",          OPT_INT, O(cap_large),          4, 0, 4096, 0, "cached free MiB kept per Large class (CAP)"},
  {"HAKMEM_WMAX_MID",           OPT_DBL, O(wmax_mid),         1.6, 1.0, 2.0, 0, "max round-up when borrowing a larger Mid class"},
  {"HAKMEM_HUGE_CACHE_MB",      OPT_INT, O(huge_cache_mb),    128, 0, 65536, 0, "BigCache floor: huge mappings kept cached (more while recent peaks need it)"},
  {"HAKMEM_DECAY_MS",           OPT_INT, O(decay_ms),         250, 0, 600000, 0, "decay window: free pages idle this long go back to the OS"},
  {"HAKMEM_HUGE_DECAY_MS",      OPT_INT, O(huge_decay_ms),   1000, 0, 600000, 0, "idle time before a cached huge mapping is unmapped"},
  {"HAKMEM_LEARN",              OPT_INT, O(learn),              0, 0, 1, 0, "start the learner thread"},
  {"HAKMEM_LEARN_WINDOW_MS",    OPT_INT, O(learn_window_ms),  1000, 50, 60000, 0, "learner sampling window"},
  {"HAKMEM_LEARN_MIN_SAMPLES",  OPT_INT, O(learn_min_samples), 256, 1, 1000000, 0, "samples a window needs before CAP moves"},
  {"HAKMEM_TARGET_HIT_MID",     OPT_DBL, O(target_hit_mid),  0.65, 0.05, 0.999, 0, "target hit rate, Mid"},
  {"HAKMEM_TARGET_HIT_LARGE",   OPT_DBL, O(target_hit_large),0.55, 0.05, 0.999, 0, "target hit rate, Large"},
  {"HAKMEM_CAP_STEP_MID",       OPT_INT, O(cap_step_mid),       4, 1, 64, 0, "CAP step, Mid"},
  {"HAKMEM_CAP_MIN_MID",        OPT_INT, O(cap_min_mid),        8, 0, 4096, 0, "CAP floor, Mid"},
  {"HAKMEM_CAP_MAX_MID",        OPT_INT, O(cap_max_mid),     2048, 1, 65536, 0, "CAP ceiling, Mid"},
  {"HAKMEM_CAP_DWELL_SEC_MID",  OPT_INT, O(cap_dwell_sec_mid),  3, 0, 60, 0, "seconds between CAP changes, Mid"},
  {"HAKMEM_CAP_STEP_LARGE",     OPT_INT, O(cap_step_large),     2, 1, 64, 0, "CAP step, Large (blocks)"},
  {"HAKMEM_CAP_MIN_LARGE",      OPT_INT, O(cap_min_large),      2, 0, 4096, 0, "CAP floor, Large"},
  {"HAKMEM_CAP_MAX_LARGE",      OPT_INT, O(cap_max_large),    256, 1, 65536, 0, "CAP ceiling, Large"},
  {"HAKMEM_WMAX_LEARN",         OPT_INT, O(wmax_learn),         0, 0, 1, 0, "let the learner try W_MAX candidates"},
  {"HAKMEM_WMAX_CANARY",        OPT_INT, O(wmax_canary),        1, 0, 1, 0, "trial a candidate before adopting it"},
  {"HAKMEM_WMAX_TRIAL_SEC",     OPT_INT, O(wmax_trial_sec),     5, 1, 600, 0, "trial length"},
  {"HAKMEM_WMAX_ADOPT_PCT",     OPT_DBL, O(wmax_adopt_pct),  0.01, 0.0, 1.0, 0, "score gain needed to adopt"},
  {"HAKMEM_WMAX_CANDIDATES_MID",OPT_STR, O(wmax_candidates_mid), 0, 0, 128, "1.25,1.4,1.5,1.6,1.7", "W_MAX candidates (CSV)"},
  {"HAKMEM_LEARN_LOG",          OPT_STR, O(learn_log),          0, 0, 256, "", "CSV log of learner windows"},
  {"HAKMEM_FAULT_MMAP_NTH",     OPT_INT, O(fault_mmap_nth),     0, 0, 1e12, 0, "debug builds: fail the Nth OS mapping"},
};
#define OPT_N (sizeof opt_table / sizeof opt_table[0])

//! Formats into a stack buffer and writes it to stderr.
static void opt_say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void opt_say(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof buf - 1) n = sizeof buf - 1;
  if (n > 0) hak__os_write_err(buf, (size_t)n);
}

//! Parses a whole string as a number; 0 if anything is left over.
static int opt_parse_num(const char* s, int is_int, double* out) {
  char* end;
  errno = 0;
  if (is_int) {
    /* decimal, or hex with 0x: base 0 read "0250" as octal 168 */
    const char* t = s;
    while (*t == ' ' || *t == '\t') t++;
    if (*t == '+' || *t == '-') t++;
    int hex = t[0] == '0' && (t[1] == 'x' || t[1] == 'X');
    long long v = strtoll(s, &end, hex ? 16 : 10);
    if (errno || end == s) return 0;
    *out = (double)v;
  } else {
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v)) return 0;
    *out = v;
  }
  while (*end == ' ' || *end == '\t') end++;
  return *end == 0;
}

int hak__parse_csv_doubles(const char* s, double* out, int max) {
  int n = 0;
  while (*s) {
    char* end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || n >= max || !isfinite(v)) return -1;
    out[n++] = v;
    s = end;
    while (*s == ' ') s++;
    if (*s == ',') s++;
    else if (*s) return -1;
  }
  return n;
}

//! Stores a number into its field.
static void opt_store(const opt_def_t* d, double v) {
  char* base = (char*)&hak__opt;
  if (d->type == OPT_DBL) *(double*)(base + d->off) = v;
  else if (d->off == O(fault_mmap_nth)) *(long*)(base + d->off) = (long)v;
  else *(int*)(base + d->off) = (int)v;
}

//! The table entry of a field.
static const opt_def_t* opt_of(size_t off) {
  for (size_t i = 0; i < OPT_N; i++)
    if (opt_table[i].off == off) return &opt_table[i];
  return NULL;
}

//! A floor above its ceiling (int fields).  Only one of them set: the
//! other follows it (a ceiling of 4 under the default floor of 8 means 4,
//! not the defaults).  Both set: one warning naming both, and both take
//! their defaults.
static void opt_check_range(size_t lo_off, size_t hi_off) {
  const opt_def_t* lo = opt_of(lo_off);
  const opt_def_t* hi = opt_of(hi_off);
  int l = *(const int*)((const char*)&hak__opt + lo_off), h = *(const int*)((const char*)&hak__opt + hi_off);
  if (l <= h) return;
  int lo_set = secure_getenv(lo->name) != NULL, hi_set = secure_getenv(hi->name) != NULL;
  if (hi_set && !lo_set) { opt_store(lo, h); return; }
  if (lo_set && !hi_set) { opt_store(hi, l); return; }
  opt_say("hakmem: %s=%d is above %s=%d; using %.0f and %.0f\n", lo->name, l, hi->name, h, lo->def, hi->def);
  opt_store(lo, lo->def);
  opt_store(hi, hi->def);
}

void hak__options_init(void) {
  int e = errno;
  for (size_t i = 0; i < OPT_N; i++) {
    const opt_def_t* d = &opt_table[i];
    char* base = (char*)&hak__opt;
    if (d->type == OPT_STR) {
      char* dst = base + d->off;
      size_t cap = (size_t)d->hi;
      strncpy(dst, d->sdef, cap - 1);
      const char* s = secure_getenv(d->name);
      if (!s) continue;
      if (strlen(s) >= cap) {
        opt_say("hakmem: %s='%.64s...' is too long (at most %zu characters); using '%s'\n",
                d->name, s, cap - 1, d->sdef);
        continue;
      }
      if (d->off == O(wmax_candidates_mid)) {
        double tmp[16];
        int k = hak__parse_csv_doubles(s, tmp, 16);
        int ok = k > 0;
        for (int j = 0; ok && j < k; j++) ok = tmp[j] >= 1.0 && tmp[j] <= 2.0;
        if (!ok) {
          opt_say("hakmem: %s='%s' is not valid (expected a comma list of 1 to 16 numbers in 1.0..2.0); using '%s'\n",
                  d->name, s, d->sdef);
          continue;
        }
      }
      strncpy(dst, s, cap - 1);
      continue;
    }
    opt_store(d, d->def);
    const char* s = secure_getenv(d->name);
    if (!s) continue;
    double v;
    int is_int = d->type == OPT_INT;
    if (!opt_parse_num(s, is_int, &v) || v < d->lo || v > d->hi) {
      if (is_int)
        opt_say("hakmem: %s='%s' is not valid (expected an integer in %.0f..%.0f); using %.0f\n",
                d->name, s, d->lo, d->hi, d->def);
      else
        opt_say("hakmem: %s='%s' is not valid (expected a number in %g..%g); using %g\n",
                d->name, s, d->lo, d->hi, d->def);
      continue;
    }
    opt_store(d, v);
  }
  opt_check_range(O(cap_min_mid), O(cap_max_mid));
  opt_check_range(O(cap_min_large), O(cap_max_large));
  errno = e;
}

void hak__options_print(void) {
  for (size_t i = 0; i < OPT_N; i++) {
    const opt_def_t* d = &opt_table[i];
    const char* base = (const char*)&hak__opt;
    if (d->type == OPT_STR) opt_say("%s=%s\n", d->name, base + d->off);
    else if (d->type == OPT_DBL) opt_say("%s=%g\n", d->name, *(const double*)(base + d->off));
    else if (d->off == O(fault_mmap_nth)) opt_say("%s=%ld\n", d->name, *(const long*)(base + d->off));
    else opt_say("%s=%d\n", d->name, *(const int*)(base + d->off));
  }
}
