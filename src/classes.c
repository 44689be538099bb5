/* Size classes (generated once by hand; see docs/DESIGN.md for the reasoning).
 * Tiny: 16-byte steps to 128, then four per doubling to 1 KiB (waste < 25%,
 * about 11% on average for uniform sizes).  Mid: four per doubling from
 * 1.25 KiB to 32 KiB plus the seed's bridge classes 40 and 52 KiB.
 * Large: four per doubling from 64 KiB to 1 MiB. */
#include "internal.h"

const uint32_t hak__class_size[HAK_SMALL_CLASSES] = {
  16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224,
  256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536,
  1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240,
  12288, 14336, 16384, 20480, 24576, 28672, 32768, 40960, 53248
};

/* Tiny class of n, indexed by (n + 15) >> 4 */
const uint8_t hak__tiny_class_of[(HAK_TINY_MAX >> 4) + 1] = {
  0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 12, 12, 13,
  13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17,
  17, 17, 17, 17, 17, 18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19, 19
};

/* Mid class of n (1 KiB < n <= 52 KiB), indexed by (n + 255) >> 8 */
const uint8_t hak__mid_class_of[(HAK_MID_MAX >> 8) + 1] = {
  20, 20, 20, 20, 20, 20, 21, 22, 23, 24, 24, 25, 25, 26, 26, 27, 27, 28, 28, 28, 28, 29,
  29, 29, 29, 30, 30, 30, 30, 31, 31, 31, 31, 32, 32, 32, 32, 32, 32, 32, 32, 33, 33, 33,
  33, 33, 33, 33, 33, 34, 34, 34, 34, 34, 34, 34, 34, 35, 35, 35, 35, 35, 35, 35, 35, 36,
  36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 37, 37, 37, 37, 37, 37, 37,
  37, 37, 37, 37, 37, 37, 37, 37, 37, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38,
  38, 38, 38, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 40, 40, 40,
  40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
  40, 40, 40, 40, 40, 40, 40, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41,
  41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41,
  41, 41, 41, 41, 41, 41, 41, 41, 41, 41, 41
};

/* Small class of n (n <= 52 KiB) for the inline path, one entry per 16
 * bytes (3.3 KB): one load for both layers, where two tables took a
 * branch between them.  Filled by hak__classes_init before any heap
 * exists; until then every size maps to class 0, whose bin in the empty
 * heap is empty. */
uint8_t hak__small_class_of[HAK_SMALL_INDEX_MAX + 1];

_Static_assert((HAK_MID_MAX & 15) == 0, "the table's last entry is HAK_MID_MAX itself");

void hak__classes_init(void) {
  unsigned c = 0;
  for (size_t i = 0; i <= HAK_SMALL_INDEX_MAX; i++) {
    while (c + 1 < HAK_SMALL_CLASSES && hak__class_size[c] < i * 16) c++;
    hak__small_class_of[i] = (uint8_t)c;
  }
}

/* The block-start check's constants (see hak__is_block_start_cls): offsets
 * in a page and class sizes are below 2^16, which the 32-bit form needs */
_Static_assert(HAK_PAGE_SIZE <= 65536 && HAK_MID_MAX < 65536, "offsets and classes fit 16 bits");
#define DIV(d) {UINT32_MAX / (d) + 1, (uint32_t)((HAK_PAGE_SIZE / (d) - 1) * (uint32_t)((UINT32_MAX / (d) + 1) * (d)))}
const hak_div_t hak__class_div[HAK_SMALL_CLASSES] = {
  DIV(16), DIV(32), DIV(48), DIV(64), DIV(80), DIV(96), DIV(112), DIV(128), DIV(160), DIV(192),
  DIV(224), DIV(256), DIV(320), DIV(384), DIV(448), DIV(512), DIV(640), DIV(768), DIV(896),
  DIV(1024), DIV(1280), DIV(1536), DIV(1792), DIV(2048), DIV(2560), DIV(3072), DIV(3584),
  DIV(4096), DIV(5120), DIV(6144), DIV(7168), DIV(8192), DIV(10240), DIV(12288), DIV(14336),
  DIV(16384), DIV(20480), DIV(24576), DIV(28672), DIV(32768), DIV(40960), DIV(53248)
};
#undef DIV

const uint32_t hak__large_size[HAK_LARGE_CLASSES] = {
  65536, 81920, 98304, 114688, 131072, 163840, 196608, 229376, 262144,
  327680, 393216, 458752, 524288, 655360, 786432, 917504, 1048576
};
