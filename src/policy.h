/* The policy snapshot the learner publishes and the slow paths read:
 * CAP per class and W_MAX.  One relaxed atomic load per read; never read
 * on a fast path. */
#ifndef HAK_POLICY_H
#define HAK_POLICY_H
#include <stdatomic.h>
#include <stdint.h>

extern _Atomic uint32_t hak__cap[];           /* small classes: pages; Large: blocks */
extern _Atomic uint32_t hak__wmax_mid_milli;  /* W_MAX x 1000 */

static inline uint32_t hak__policy_cap(unsigned cls) {
  return atomic_load_explicit(&hak__cap[cls], memory_order_relaxed);
}
static inline uint32_t hak__policy_wmax_milli(void) {
  return atomic_load_explicit(&hak__wmax_mid_milli, memory_order_relaxed);
}
void hak__policy_init(void);
void hak__small_init(void);
void hak__small_fork_child(void);
void hak__small_released_add(uint32_t n);
void* hak__small_central_pop(struct hak_heap* h, unsigned cls, uint32_t max, uint32_t* got, void** last);
void* hak__drain_remote_lockfree(struct hak_heap* h, unsigned cls, uint32_t* got);
/* from: where a carve may look, each including the ones before */
#define HAK_CARVE_ACTIVE 0   /* the thread's active pages */
#define HAK_CARVE_ADOPT  1   /* then an orphan */
#define HAK_CARVE_FRESH  2   /* then fresh pages */
uintptr_t hak__small_carve(struct hak_heap* h, unsigned cls, uint32_t max, uint32_t* got, int* left, int from);
uintptr_t hak__small_carve_aligned(struct hak_heap* h, unsigned cls, size_t align);  /* align > 64 */
#endif
