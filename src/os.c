/* The prim layer: mmap, munmap, madvise, mremap and friends.
 * Build switch HAK_FAULT_INJECT (on in DEBUG and sanitizer builds): the Nth
 * mapping fails, set by HAKMEM_FAULT_MMAP_NTH or hak_fault_inject_mmap(). */
#define _GNU_SOURCE
#include "internal.h"
#include <sys/mman.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <string.h>
#include <stdlib.h>

_Atomic int64_t hak__os_mapped, hak__os_mapped_peak;

/* No MAP_NORESERVE: with it the kernel's overcommit heuristic (the default,
 * vm.overcommit_memory 0) never refuses, so malloc(64 GiB) on a 23 GiB
 * machine succeeded and the program was killed later; glibc returns NULL. */
#define OS_MAP_FLAGS (MAP_PRIVATE | MAP_ANONYMOUS)

#ifdef HAK_FAULT_INJECT
static _Atomic long os_fault_nth;     /* fail when os_map_count reaches this */
static _Atomic long os_map_count;
//! Arms a failure of the nth OS mapping from now (0 disarms).
HAK_API void hak_fault_inject_mmap(long nth) {
  atomic_store(&os_map_count, 0);
  atomic_store(&os_fault_nth, nth);
}
//! True if this mapping is the one chosen to fail.
static int os_fault_now(void) {
  static _Atomic int env_read;
  if (!atomic_exchange(&env_read, 1) && hak__opt.fault_mmap_nth > 0)
    atomic_store(&os_fault_nth, hak__opt.fault_mmap_nth);
  long nth = atomic_load(&os_fault_nth);
  if (nth <= 0) return 0;
  if (atomic_fetch_add(&os_map_count, 1) + 1 == nth) { atomic_store(&os_fault_nth, 0); return 1; }
  return 0;
}
#else
#define os_fault_now() 0
#endif

//! Counts mapped bytes and keeps the peak.
static void os_account(int64_t delta) {
  int64_t now = atomic_fetch_add_explicit(&hak__os_mapped, delta, memory_order_relaxed) + delta;
  int64_t peak = atomic_load_explicit(&hak__os_mapped_peak, memory_order_relaxed);
  while (now > peak && !atomic_compare_exchange_weak(&hak__os_mapped_peak, &peak, now)) {}
}

//! Anonymous private mapping; NULL with errno ENOMEM on failure.
void* hak__os_map(size_t size) {
  if (os_fault_now()) { errno = ENOMEM; return NULL; }
  void* p = mmap(NULL, size, PROT_READ | PROT_WRITE, OS_MAP_FLAGS, -1, 0);
  if (p == MAP_FAILED) { errno = ENOMEM; return NULL; }
  os_account((int64_t)size);
  return p;
}

/* The scavenger's walks need arrays (chains, pages) too big for the stack
 * now and then.  A program whose sizes change walks a class or two a round
 * (bench/shift): a mapping per walk was 1.6 mmap and munmap pairs a round,
 * each faulted in anew, and each munmap a TLB shootdown of the other core.
 * So up to two mappings of at most SCRATCH_KEEP wait in os_scratch for the
 * next walk (a walk's counted reclaim needs a second one while the walk
 * holds the first); each one's first line holds its size.  An upkeep tick
 * that finds them unused since the last one unmaps them: idle, a program
 * keeps none. */
#define SCRATCH_HDR  64
#define SCRATCH_KEEP ((size_t)1 << 20)
static _Atomic(void*) os_scratch[2];
static _Atomic int os_scratch_used;

//! A mapping of at least size usable bytes, a kept one if it is big enough.
void* hak__os_scratch_get(size_t size) {
  size_t need = size + SCRATCH_HDR;
  if (!atomic_load_explicit(&os_scratch_used, memory_order_relaxed))
    atomic_store_explicit(&os_scratch_used, 1, memory_order_relaxed);
  for (int i = 0; i < 2; i++) {
    void* m = atomic_exchange_explicit(&os_scratch[i], NULL, memory_order_acquire);
    if (m && *(size_t*)m >= need) return (char*)m + SCRATCH_HDR;
    if (m) hak__os_unmap(m, *(size_t*)m);
  }
  size_t len = 16384;
  while (len < need) len *= 2;
  void* m = hak__os_map(len);
  if (!m) return NULL;
  *(size_t*)m = len;
  return (char*)m + SCRATCH_HDR;
}

//! Keeps p for the next walk in a free slot, or unmaps it.
void hak__os_scratch_put(void* p) {
  if (!p) return;
  void* m = (char*)p - SCRATCH_HDR;
  if (*(size_t*)m <= SCRATCH_KEEP)
    for (int i = 0; i < 2; i++) {
      void* none = NULL;
      if (atomic_compare_exchange_strong_explicit(&os_scratch[i], &none, m, memory_order_acq_rel,
                                                  memory_order_relaxed))
        return;
    }
  hak__os_unmap(m, *(size_t*)m);
}

//! malloc_trim and out of memory: the kept mappings go too.
void hak__os_scratch_trim(void) {
  for (int i = 0; i < 2; i++) {
    void* m = atomic_exchange_explicit(&os_scratch[i], NULL, memory_order_acquire);
    if (m) hak__os_unmap(m, *(size_t*)m);
  }
}

//! Upkeep: unmaps the kept mappings if no walk took one since the last tick.
void hak__os_scratch_decay(void) {
  if (!atomic_exchange_explicit(&os_scratch_used, 0, memory_order_relaxed)) hak__os_scratch_trim();
}

static _Atomic uintptr_t os_hint;   /* where the last aligned mapping began */

//! Aligned mapping: first at a hint just below the last one (the kernel
//! fills the address space top-down, so that is usually free: one
//! syscall), else over-map and trim.
void* hak__os_map_aligned(size_t size, size_t align) {
  if (os_fault_now()) { errno = ENOMEM; return NULL; }
  uintptr_t hint = atomic_load_explicit(&os_hint, memory_order_relaxed);
  if (hint > size + align) {
    hint = (hint - size) & ~(uintptr_t)(align - 1);
    void* p = mmap((void*)hint, size, PROT_READ | PROT_WRITE,
                   OS_MAP_FLAGS, -1, 0);
    if (p != MAP_FAILED) {
      if (((uintptr_t)p & (align - 1)) == 0) {
        atomic_store_explicit(&os_hint, (uintptr_t)p, memory_order_relaxed);
        os_account((int64_t)size);
        return p;
      }
      munmap(p, size);
    }
  }
  size_t over = size + align;
  if (over < size) { errno = ENOMEM; return NULL; }
  char* raw = mmap(NULL, over, PROT_READ | PROT_WRITE, OS_MAP_FLAGS, -1, 0);
  if (raw == MAP_FAILED) { errno = ENOMEM; return NULL; }
  uintptr_t a = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
  size_t head = a - (uintptr_t)raw, tail = over - head - size;
  if (head) munmap(raw, head);
  if (tail) munmap((char*)a + size, tail);
  atomic_store_explicit(&os_hint, a, memory_order_relaxed);
  os_account((int64_t)size);
  return (void*)a;
}

//! Returns a mapping to the OS.
void hak__os_unmap(void* p, size_t size) {
  if (munmap(p, size) == 0) os_account(-(int64_t)size);
}

//! Drops the pages' contents and RSS; the range stays mapped and reads
//! zero.  0 on success (callers that rely on the zeros check it).
int hak__os_decommit(void* p, size_t size) {
  int e = errno;
  int r = madvise(p, size, MADV_DONTNEED);
  errno = e;
  return r;
}

//! Under valgrind, memcheck loses track of pages moved by mremap onto a
//! reserved range (it reports reads of them as invalid): callers copy instead.
static int os_under_valgrind(void) {
  static _Atomic int v = -1;          /* racing first callers agree on the value */
  int r = atomic_load_explicit(&v, memory_order_relaxed);
  if (r < 0) {
    const char* pre = getenv("LD_PRELOAD");
    r = pre && strstr(pre, "vgpreload") != NULL;
    atomic_store_explicit(&v, r, memory_order_relaxed);
  }
  return r;
}

//! Whether pages may move onto a reserved range with mremap (not under
//! valgrind: see above).
int hak__os_can_move(void) { return !os_under_valgrind(); }

//! Maps fresh pages over [p, p + size) of a range we reserved (a failed
//! mremap may have unmapped its target); 0 on success.  Not counted: the
//! bytes were counted with the reservation.
int hak__os_map_fixed(void* p, size_t size) {
  int e = errno;
  void* q = mmap(p, size, PROT_READ | PROT_WRITE, OS_MAP_FLAGS | MAP_FIXED, -1, 0);
  errno = e;
  return q == p ? 0 : -1;
}

//! mremap, optionally to a fixed (already reserved) address.
void* hak__os_remap(void* p, size_t old_size, size_t new_size, void* fixed) {
  if (os_fault_now()) { errno = ENOMEM; return NULL; }
  if (fixed && os_under_valgrind()) { errno = EAGAIN; return NULL; }   /* not ENOMEM: callers copy */
  void* q = fixed ? mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, fixed)
                  : mremap(p, old_size, new_size, MREMAP_MAYMOVE);
  if (q == MAP_FAILED) { errno = ENOMEM; return NULL; }
  os_account((int64_t)new_size - (int64_t)old_size);
  return q;
}

//! Grows or shrinks a mapping where it stands; 0 on success.
int hak__os_remap_inplace(void* p, size_t old_size, size_t new_size) {
  int e = errno;
  void* q = mremap(p, old_size, new_size, 0);
  errno = e;
  if (q == MAP_FAILED) return -1;
  os_account((int64_t)new_size - (int64_t)old_size);
  return 0;
}

//! Asks for (or against) transparent huge pages.
void hak__os_thp(void* p, size_t size, int on) {
  int e = errno;
  madvise(p, size, on ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  errno = e;
}

//! Makes a range inaccessible: an overflow into it faults at once.
void hak__os_guard(void* p, size_t size) {
  int e = errno;
  mprotect(p, size, PROT_NONE);
  errno = e;
}

//! Small segments never want THP: a 2 MiB fault would bloat RSS.
void hak__os_nohuge(void* p, size_t size) { hak__os_thp(p, size, 0); }

//! The OS page size, asked once (relaxed: threads may race to ask, and all
//! store the same value).
size_t hak__os_page_size(void) {
  static size_t ps;
  size_t v = __atomic_load_n(&ps, __ATOMIC_RELAXED);
  if (!v) {
    v = (size_t)sysconf(_SC_PAGESIZE);
    __atomic_store_n(&ps, v, __ATOMIC_RELAXED);
  }
  return v;
}

//! Current RSS from /proc/self/statm (no allocation).
size_t hak__os_rss(void) {
  int e = errno;
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) { errno = e; return 0; }
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  errno = e;
  if (n <= 0) return 0;
  buf[n] = 0;
  char* s = buf;
  while (*s && *s != ' ') s++;
  size_t pages = 0;
  while (*s == ' ') s++;
  while (*s >= '0' && *s <= '9') pages = pages * 10 + (size_t)(*s++ - '0');
  return pages * hak__os_page_size();
}

void hak__os_write_err(const char* s, size_t n) {
  int e = errno;
  while (n) {
    ssize_t w = write(2, s, n);
    if (w <= 0) break;
    s += w; n -= (size_t)w;
  }
  errno = e;
}

//! The tick clock: every upkeep and decay window reads it, some on each
//! page a class takes or stashes.  The coarse clock costs 2.5 ns against
//! 20 for the precise one (bench/shift read it 2M times a second: 4% of
//! its time), and its tick (4 ms at most) is far under any window.
static clockid_t os_tick_clock = CLOCK_MONOTONIC_COARSE;
uint64_t hak__os_now_ns(void) {
  struct timespec ts;
  clock_gettime(os_tick_clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

//! At init: a kernel (or a sandbox's filter) without the coarse clock
//! gets the precise one, before any window reads the tick.
void hak__os_clock_init(void) {
  struct timespec ts;
  int e = errno;
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0) os_tick_clock = CLOCK_MONOTONIC;
  errno = e;
}

//! The precise clock, as a little entropy where no better source is.
uint64_t hak__os_clock_ns(void) {
  struct timespec ts;
  int e = errno;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) ts.tv_sec = ts.tv_nsec = 0;
  errno = e;
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}


void hak__os_backoff(unsigned* n) {
  unsigned k = (*n)++;
  if (k < 16) { sched_yield(); return; }
  k -= 16;
  long ns = 1000L << (k < 10 ? k : 10);
  struct timespec ts = {0, ns};
  /* the raw call: nanosleep() is a cancellation point, and a thread
   * cancelled here would leave a lock or a walk flag held for good */
  syscall(SYS_nanosleep, &ts, NULL);
}
