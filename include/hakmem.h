/* hakmem: a general-purpose memory allocator for Linux.
 *
 * Use it with LD_PRELOAD=libhakmem.so, or link libhakmem.a / -lhakmem: both
 * replace malloc, free, calloc, realloc, reallocarray, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size, cfree and the
 * glibc __libc_* aliases.  The hak_* functions below are the same allocator
 * under names that never clash with libc. */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAKMEM_VERSION "0.1.0"

void*  hak_malloc(size_t size);
void   hak_free(void* p);
void*  hak_calloc(size_t n, size_t size);
void*  hak_realloc(void* p, size_t size);
void*  hak_memalign(size_t alignment, size_t size);
size_t hak_usable_size(const void* p);

/* 1 if p is the start of a block that hakmem manages: a live block, or for
 * small and Large blocks also a cached (freed) one; huge blocks: live only,
 * as a freed huge block's pages may be merged into a larger cached run. */
int    hak_owns(const void* p);

/* Give cached memory back to the OS now; returns bytes released. */
size_t hak_trim(void);

/* ACE: estimated bytes handed out beyond the bytes requested, over live
 * blocks (Tiny, Mid, Large; per class, recent waste ratio x live bytes). */
size_t hak_ace_get_total_waste(void);

/* Layers, in the order of the size bands. */
enum hak_layer { HAK_LAYER_TINY, HAK_LAYER_MID, HAK_LAYER_LARGE, HAK_LAYER_HUGE, HAK_LAYER_COUNT };

/* A merged snapshot of every thread's counters (live and exited). */
typedef struct hak_layer_stats {
  unsigned long long allocs, frees, remote_frees, hits, misses;
  unsigned long long pages_in_use, pages_cached;
  unsigned long long bytes_mapped, bytes_mapped_peak;
} hak_layer_stats_t;

typedef struct hak_stats {
  hak_layer_stats_t layer[HAK_LAYER_COUNT];
  unsigned long long bytes_mapped, bytes_mapped_peak;  /* whole process */
  unsigned long long threads_started, threads_exited;
} hak_stats_t;

void hak_stats_get(hak_stats_t* out);
void hak_stats_print(FILE* out);        /* readable table */
void hak_stats_print_json(FILE* out);   /* one JSON object */

#ifdef __cplusplus
}
#endif
#endif
