/* Size classes (generated once by hand; see docs/DESIGN.md for the reasoning).
 * Tiny: 16-byte steps to 128, then four per doubling to 1 KiB (waste < 25%,
 * about 11% on average for uniform sizes).  Mid: four per doubling from
 * 1.25 KiB to 32 KiB plus the seed's bridge classes 40 and 52 KiB.
 * Large: four per doubling from 64 KiB to 1 MiB. */
#include "internal.h"

/* every small class, once: the tables below are made from it */
#define ALL(X) X(16), X(32), X(48), X(64), X(80), X(96), X(112), X(128), X(160), X(192), \
  X(224), X(256), X(320), X(384), X(448), X(512), X(640), X(768), X(896), X(1024), X(1280), \
  X(1536), X(1792), X(2048), X(2560), X(3072), X(3584), X(4096), X(5120), X(6144), X(7168), \
  X(8192), X(10240), X(12288), X(14336), X(16384), X(20480), X(24576), X(28672), X(32768), \
  X(40960), X(53248)
#define SIZE(d) d
const uint32_t hak__class_size[HAK_SMALL_CLASSES] = {ALL(SIZE)};
#undef SIZE

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

/* The bin of n (n <= 52 KiB) for the inline path, one entry per 16 bytes
 * (6.6 KB): one load for both layers, where two tables took a branch
 * between them; a bin offset, not a class, so that malloc adds it to the
 * heap unshifted (an instruction less).  Filled by hak__classes_init
 * before any heap exists; until then every size maps to class 0, whose
 * bin in the empty heap is empty. */
uint16_t hak__small_bin_of[HAK_SMALL_INDEX_MAX + 1];

_Static_assert((HAK_MID_MAX & 15) == 0, "the table's last entry is HAK_MID_MAX itself");

void hak__classes_init(void) {
  unsigned c = 0;
  for (size_t i = 0; i <= HAK_SMALL_INDEX_MAX; i++) {
    while (c + 1 < HAK_SMALL_CLASSES && hak__class_size[c] < i * 16) c++;
    hak__small_bin_of[i] = (uint16_t)(c << HAK_BIN_SHIFT);
  }
}

/* Cache colours.  Every page of a class would put its blocks at the same
 * offsets, and the L1 (4 KiB apart) and L2 (64 KiB apart) sets an offset
 * maps to would hold the first lines of every block of the class: a 2 KiB
 * class's blocks start in 1 set of 32, a 4 KiB class's in 1 of 64, and
 * their first lines (free's link and mark, malloc's pop) missed the L2 far
 * more than the data's size asks (larson Mid ran 1.4x slower).  So each
 * page starts its first block at one of COLORS(d) line offsets, taken in
 * turn (segment.c, page_init_class): a class of d >= 128 B spreads over
 * min(d, 4 KiB) - 64 bytes of offsets, in the page's slack past its last
 * block; a class with too little slack and at least 4 blocks per page
 * gives up the blocks that make room (a 1 KiB page holds 63, a 16 KiB page
 * 3).  A class of d >= 4 KiB spreads over all its slack: offsets under
 * 4 KiB leave the bits above the L1's index alike in every block, and
 * fresh memory is mostly physically contiguous, so the L2's upper index
 * bits came from the block's place in its page alone (16 and 24 KiB blocks
 * at 1024 live ran 1.19 and 1.29x slower; now even with tcmalloc); the
 * colour may equal d (4 and 16 KiB): the block-start check still rejects
 * every offset before the first block (tests/misuse).
 * Only classes with 8 KiB of slack or more spread past 4 KiB (7, 8, 14,
 * 16, 24, 28, 40 and 52 KiB); 4, 5, 6, 10, 12 and 20 KiB have 4 KiB, and
 * 32 KiB none, so it is not coloured. */
#define PG HAK_PAGE_SIZE
#define WANT(d) ((d) < 128 ? 0u : ((d) < 4096 ? (d) : 4096u) - 64u)
#define CAP0(d) ((uint32_t)(PG / (d)))
#define CAP(d) (PG - CAP0(d) * (d) < WANT(d) && CAP0(d) >= 4 ? (uint32_t)((PG - WANT(d)) / (d)) : CAP0(d))
#define SLACK(d) ((uint32_t)(PG - CAP(d) * (d)))
#define COLORS(d) (((d) >= 4096 || SLACK(d) < WANT(d) ? SLACK(d) : WANT(d)) / 64 + 1)
const uint16_t hak__class_cap[HAK_SMALL_CLASSES] = {ALL(CAP)};
const uint16_t hak__class_colors[HAK_SMALL_CLASSES] = {ALL(COLORS)};

/* The block-start check's constants (see hak__div_is_start): offsets in a
 * page and class sizes are below 2^16, which the 32-bit form needs.  c is
 * floor(2^32 / d) + 1 for powers of two too, so that e = c * d mod 2^32 is
 * not 0 and the compare rejects the tail a coloured page leaves. */
_Static_assert(HAK_PAGE_SIZE <= 65536 && HAK_MID_MAX < 65536, "offsets and classes fit 16 bits");
#define DIVC(d) ((uint32_t)((1ull << 32) / (d) + 1))
#define DIV(d) {DIVC(d), (CAP(d) - 1) * (uint32_t)(DIVC(d) * (d))}
const hak_div_t hak__class_div[HAK_SMALL_CLASSES] = {ALL(DIV)};
#undef DIV
#undef DIVC
#undef ALL
#undef COLORS
#undef SLACK
#undef CAP
#undef CAP0
#undef WANT
#undef PG

const uint32_t hak__large_size[HAK_LARGE_CLASSES] = {
  65536, 81920, 98304, 114688, 131072, 163840, 196608, 229376, 262144,
  327680, 393216, 458752, 524288, 655360, 786432, 917504, 1048576
};
