/* HAKMEM_VALGRIND=1 (valgrind.c): memcheck learns about hakmem's blocks.
 * hak__opt.valgrind is 1 only when the option is set, the library was
 * built with valgrind's headers and the process runs under valgrind. */
#ifndef HAK_VALGRIND_H
#define HAK_VALGRIND_H
#include "internal.h"

void   hak__vg_init(void);                  /* after the options: settles hak__opt.valgrind */
void*  hak__vg_alloc(hak_heap_t* h, size_t n, size_t align, int zero);
void   hak__vg_free(void* p);
void*  hak__vg_realloc(void* p, size_t n);
size_t hak__vg_usable(const void* p);
void   hak__vg_hide(void* p, size_t n);      /* not a block: invisible to memcheck */
void   hak__vg_hide_heap(hak_heap_t* h);    /* a new heap's caches */
void   hak__vg_quiet(int on);               /* hakmem's own accesses: no reports */
void   hak__vg_unwind(void);                /* closes every bracket: before an abort */
void   hak__vg_fork_prepare(void);
void   hak__vg_fork_parent(void);
void   hak__vg_fork_child(void);

/* checked free of any hakmem block, without the valgrind layer (alloc.c) */
void   hak__free_any(void* p);
/* the mapping that holds huge block p (huge.c) */
void   hak__huge_span(const void* p, void** base, size_t* len);

//! Brackets hakmem's own work on memory memcheck must not see (free-list
//! links, free marks, hidden caches); nests.  Nothing when the mode is off.
HAK_INLINE void hak__vg_enter(void) { if (hak_unlikely(hak__opt.valgrind)) hak__vg_quiet(1); }
//! Ends a hak__vg_enter bracket.
HAK_INLINE void hak__vg_leave(void) { if (hak_unlikely(hak__opt.valgrind)) hak__vg_quiet(0); }
#endif
