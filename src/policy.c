/* Policy state: CAP per class (small classes in pages, then Large classes
 * in blocks) and W_MAX.  Options give the start values; the learner may
 * move them. */
#include "internal.h"
#include "policy.h"

_Atomic uint32_t hak__cap[HAK_SMALL_CLASSES + HAK_LARGE_CLASSES];
_Atomic uint32_t hak__wmax_mid_milli;

void hak__policy_init(void) {
  for (unsigned c = 0; c < HAK_SMALL_CLASSES; c++)
    atomic_store(&hak__cap[c], (uint32_t)(c < HAK_TINY_CLASSES ? hak__opt.cap_tiny : hak__opt.cap_mid));
  /* Large CAP counts blocks; the option is in 1 MiB blocks, so every class
   * caches about the same bytes */
  for (unsigned c = 0; c < HAK_LARGE_CLASSES; c++) {
    uint64_t blocks = (uint64_t)hak__opt.cap_large * (1u << 20) / hak__large_size[c];
    atomic_store(&hak__cap[HAK_SMALL_CLASSES + c], (uint32_t)(blocks ? blocks : (hak__opt.cap_large ? 1 : 0)));
  }
  atomic_store(&hak__wmax_mid_milli, (uint32_t)(hak__opt.wmax_mid * 1000.0 + 0.5));
}
