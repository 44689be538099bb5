/* The prim layer: every system call hakmem makes goes through here.
 * Nothing here allocates. */
#ifndef HAK_OS_H
#define HAK_OS_H
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

void*  hak__os_map(size_t size);                       /* anonymous RW, NULL + ENOMEM on failure */
void*  hak__os_map_aligned(size_t size, size_t align); /* same, aligned to align (power of two) */
void   hak__os_unmap(void* p, size_t size);
/* scratch for a slow path's array: two mappings are kept between uses */
void*  hak__os_scratch_get(size_t size);               /* NULL + ENOMEM on failure */
void   hak__os_scratch_put(void* p);
void   hak__os_scratch_trim(void);                     /* unmaps the kept ones */
void   hak__os_scratch_decay(void);                    /* the same, if unused since the last call */
int    hak__os_decommit(void* p, size_t size);         /* MADV_DONTNEED: RSS goes, mapping stays; 0 ok */
void*  hak__os_remap(void* p, size_t old_size, size_t new_size, void* fixed); /* mremap */
int    hak__os_remap_inplace(void* p, size_t old_size, size_t new_size);      /* 0 on success */
int    hak__os_can_move(void);                              /* mremap onto a reservation works */
int    hak__os_map_fixed(void* p, size_t size);             /* fresh pages over our own range; 0 ok */
void   hak__os_thp(void* p, size_t size, int on);
void   hak__os_nohuge(void* p, size_t size);
void   hak__os_guard(void* p, size_t size);                 /* PROT_NONE: a guard page */
size_t hak__os_page_size(void);
size_t hak__os_rss(void);                              /* current RSS in bytes, from /proc */
void   hak__os_write_err(const char* s, size_t n);
uint64_t hak__os_now_ns(void);                         /* coarse: windows and decay */
uint64_t hak__os_clock_ns(void);                       /* precise: entropy */
void     hak__os_clock_init(void);                     /* picks the tick clock, at init */
/* waiting for another thread: yield a few times, then sleep (1 us, growing
 * to 1 ms), so a waiter never burns the core its target needs */
void   hak__os_backoff(unsigned* n);

/* bytes of address space hakmem holds from the OS, and its peak */
extern _Atomic int64_t hak__os_mapped, hak__os_mapped_peak;
#endif
