/* Segments and pages.  A segment is a naturally aligned 4 MiB chunk; the
 * segment map (one byte per chunk of the 47-bit address space, in .bss so
 * untouched parts cost nothing) says what each chunk holds, which is how
 * free() finds a block's page in O(1) and rejects foreign pointers.
 * Small segments hold 64 KiB pages; page 0 is the header with the page
 * descriptors.  Free pages wait in one pool; segments are never unmapped,
 * only decommitted, so a racing reader of a stale free-list link still
 * reads mapped memory. */
#define _GNU_SOURCE
#include "internal.h"
#include <errno.h>

uint8_t hak__segmap[HAK_SEGMAP_N];

static pthread_mutex_t seg_lock = PTHREAD_MUTEX_INITIALIZER;
static hak_page_t* seg_free_pages;              /* page pool, under seg_lock */
static _Atomic uint64_t seg_pages_in_use[HAK_SMALL_CLASSES];

void hak__segment_lock(void) { pthread_mutex_lock(&seg_lock); }
void hak__segment_unlock(void) { pthread_mutex_unlock(&seg_lock); }
void hak__segment_fork_child(void) { pthread_mutex_init(&seg_lock, NULL); }

//! Maps a new aligned segment and registers it in the segment map.
void* hak__segment_alloc(int kind) {
  hak_segment_t* s = hak__os_map_aligned(HAK_SEG_SIZE, HAK_SEG_SIZE);
  if (!s) return NULL;
  hak__os_nohuge(s, HAK_SEG_SIZE);
  s->magic = HAK_SEG_MAGIC;
  s->kind = (uint8_t)kind;
  __atomic_store_n(&hak__segmap[(uintptr_t)s >> HAK_SEG_SHIFT], (uint8_t)kind, __ATOMIC_RELEASE);
  return s;
}

//! Carves a new small segment into the page pool (seg_lock held).
static int segment_grow_locked(void) {
  hak_segment_t* s = hak__segment_alloc(HAK_SEG_SMALL);
  if (!s) return 0;
  s->pages[0].state = HAK_PAGE_META;
  for (size_t i = HAK_PAGES_PER_SEG - 1; i >= 1; i--) {
    hak_page_t* pg = &s->pages[i];
    pg->state = HAK_PAGE_FREE;
    pg->next_free = seg_free_pages;
    seg_free_pages = pg;
  }
  return 1;
}

//! Sets a page's block geometry and its exact-division check.
void hak__page_init_class(hak_page_t* pg, unsigned cls) {
  uint32_t d = hak__class_size[cls];
  pg->block_size = d;
  pg->cls = (uint16_t)cls;
  pg->capacity = (uint32_t)(HAK_PAGE_SIZE / d);
  pg->scav_gen = 0;
  uint32_t k = (uint32_t)__builtin_ctz(d), m = d >> k;
  uint32_t inv = m;                          /* Newton: inverse of odd m mod 2^32 */
  for (int i = 0; i < 5; i++) inv *= 2 - m * inv;
  pg->div_mul = inv;
  pg->div_shift = (uint8_t)k;
  pg->div_lim = 0xFFFFFFFFu / d;     /* rotr(off * inv, k) <= this iff d divides off */
}

//! Takes a free page for class cls, owned by owner.
hak_page_t* hak__page_acquire(unsigned cls, hak_heap_t* owner) {
  pthread_mutex_lock(&seg_lock);
  if (!seg_free_pages && !segment_grow_locked()) {
    pthread_mutex_unlock(&seg_lock);
    errno = ENOMEM;
    return NULL;
  }
  hak_page_t* pg = seg_free_pages;
  seg_free_pages = pg->next_free;
  pthread_mutex_unlock(&seg_lock);
  pg->next_free = NULL;
  hak__page_init_class(pg, cls);
  atomic_store_explicit(&pg->owner, owner->token, memory_order_relaxed);
  pg->committed = 1;
  atomic_store_explicit(&pg->carved, 0, memory_order_relaxed);
  atomic_store_explicit(&pg->state, HAK_PAGE_ACTIVE, memory_order_release);
  atomic_fetch_add_explicit(&seg_pages_in_use[cls], 1, memory_order_relaxed);
  hak__layer_mapped_add(cls < HAK_TINY_CLASSES ? HAK_LAYER_TINY : HAK_LAYER_MID, HAK_PAGE_SIZE);
  return pg;
}

//! A wholly free page goes back to the OS and to the pool.
void hak__page_release(hak_page_t* pg) {
  unsigned cls = pg->cls;
  hak__os_decommit((void*)hak__page_start(pg), HAK_PAGE_SIZE);
  pg->committed = 0;
  atomic_store_explicit(&pg->owner, HAK_TOKEN_NONE, memory_order_relaxed);
  atomic_store_explicit(&pg->state, HAK_PAGE_FREE, memory_order_release);
  atomic_fetch_sub_explicit(&seg_pages_in_use[cls], 1, memory_order_relaxed);
  hak__layer_mapped_add(cls < HAK_TINY_CLASSES ? HAK_LAYER_TINY : HAK_LAYER_MID, -(int64_t)HAK_PAGE_SIZE);
  pthread_mutex_lock(&seg_lock);
  pg->next_free = seg_free_pages;
  seg_free_pages = pg;
  pthread_mutex_unlock(&seg_lock);
}

uint64_t hak__small_pages_in_use(unsigned cls) {
  return atomic_load_explicit(&seg_pages_in_use[cls], memory_order_relaxed);
}
