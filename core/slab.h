/*
 * slab.h: slab classes over a handed-in arena (the contract; see slab.c).
 *
 * The slab allocator hands out fixed-size chunks for items. Chunk sizes form
 * classes as memcached 1.6 computes them (-n, -f); the arena is cut into
 * pages that are given to classes lazily, one at a time, and a page may
 * later move to another class once its chunks are all free. It knows the
 * item header (item.h) only to link free chunks and to read an item's class.
 *
 * Like the store that owns it, a slab is single-threaded: every function
 * may be called only by the thread that owns the store. Nothing here makes
 * a syscall or touches arena memory before it is handed out.
 */
#ifndef CORECACHE_CORE_SLAB_H
#define CORECACHE_CORE_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "item.h"
#include "status.h"

/* Class ids are 1..SLAB_CLASSES_MAX-1 (memcached's 63); 0 means "none". */
#define SLAB_CLASSES_MAX 64
/* Pages and chunk offsets are 32-bit refs: at most this many arena bytes. */
#define SLAB_ARENA_MAX ((size_t)UINT32_MAX * 8)

struct slab; /* opaque: one per store */

struct slab_cfg {
    void *arena;       /* 8-byte aligned (page-aligned in practice) */
    size_t arena_size; /* bytes; the tail beyond whole pages is unused */
    size_t page_size;  /* bytes per page; a multiple of 8; the largest chunk */
    double factor;     /* > 1: chunk size ratio between classes */
    uint32_t chunk_min; /* >= 1: room for key + value in the first class */
};

/* `stats slabs` view of one class. */
struct slab_class_stats {
    uint64_t chunk_size;
    uint64_t chunks_per_page;
    uint64_t total_pages;
    uint64_t total_chunks;
    uint64_t used_chunks;     /* handed out by slab_alloc, not yet freed */
    uint64_t free_chunks;     /* on the class's free list */
    uint64_t free_chunks_end; /* not yet carved from the class's last page */
};

/*
 * Computes the classes and allocates the bookkeeping (page table). Fails
 * with MC_EINVAL when the configuration is inconsistent (factor <= 1, page
 * size not a multiple of 8 or smaller than the first class, arena smaller
 * than a page or above SLAB_ARENA_MAX, misaligned arena) and MC_ENOMEM when
 * bookkeeping cannot be allocated. The arena itself is not touched.
 */
enum mc_status slab_create(const struct slab_cfg *cfg, struct slab **out) MC_MUST_CHECK;
void slab_destroy(struct slab **slab);

/* Number of classes (ids 1..n; class n is exactly one page). */
unsigned slab_class_count(const struct slab *slab);

/* Chunk size of class `id` (0 for an id out of range). */
size_t slab_class_size(const struct slab *slab, unsigned id);

/* The smallest class whose chunks hold `total` bytes; 0 if none does
 * (total is 0 or above the page size). O(log classes). */
unsigned slab_clsid(const struct slab *slab, size_t total);

/*
 * A chunk of class `id`: the most recently freed one, else the next one
 * carved from the class's last page, else the first of a fresh page taken
 * from the arena. NULL when none of these exists (the caller then reclaims,
 * evicts or moves a page). The chunk's header is garbage except `clsid`,
 * which is set; the caller fills in the rest.
 */
struct item *slab_alloc(struct slab *slab, unsigned id);

/* Returns a chunk from slab_alloc() to its class's free list. */
void slab_free(struct slab *slab, struct item *chunk);

/* --- Pages: for page moves and the crawler -------------------------------- */

/* Pages taken from the arena so far; pages 0..n-1 belong to classes. */
uint32_t slab_pages_taken(const struct slab *slab);

/* Pages the arena holds in all. */
uint32_t slab_pages_total(const struct slab *slab);

/* Number of pages class `id` owns. */
uint32_t slab_class_pages(const struct slab *slab, unsigned id);

/* Index of the page holding `chunk`. */
uint32_t slab_page_of(const struct slab *slab, const void *chunk);

/*
 * The carved chunks of page `page` (< slab_pages_taken): *first is the
 * first chunk, *count how many have been carved, *stride the chunk size.
 * Each carved chunk is free (ITEM_FREE set) or was handed out by
 * slab_alloc (then its header is whatever the owner wrote).
 */
void slab_page_chunks(const struct slab *slab, uint32_t page, char **first, uint32_t *count,
                      size_t *stride);

/* Chunks of page `page` handed out and not yet freed. */
uint32_t slab_page_used(const struct slab *slab, uint32_t page);

/*
 * Gives page `page`, whose chunks are all free (slab_page_used() == 0), to
 * class `to`: its chunks leave the old class's free list and the page is
 * re-carved with `to`'s chunk size. Returns false (and changes nothing) if
 * a chunk is still in use or the page already belongs to `to`.
 */
bool slab_page_move(struct slab *slab, uint32_t page, unsigned to) MC_MUST_CHECK;

/*
 * Finds a page of another class whose chunks are all free and moves it to
 * class `to`. Returns false when there is none. Costs O(pages) when it
 * searches, and nothing when no page is empty.
 */
bool slab_take_empty_page(struct slab *slab, unsigned to) MC_MUST_CHECK;

/* --- Stats ----------------------------------------------------------------- */

void slab_class_stats(const struct slab *slab, unsigned id, struct slab_class_stats *out);

/* Bytes of pages handed to classes (memcached's total_malloced). */
uint64_t slab_total_malloced(const struct slab *slab);

#endif
