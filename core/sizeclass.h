/*
 * sizeclass.h: memcached 1.6.18's slab classes as an accounting grid.
 *
 * corecache's engine has no slab classes (store.c: items of every size
 * share segments), but operators and memcached's own tests read per-class
 * numbers (`stats items`, `stats slabs`). The store counts each item in the
 * class memcached would have put it in: the class table is built exactly as
 * memcached's slabs_init() builds it from -n, -f and slab_chunk_max, and an
 * item's class is chosen from the size memcached would allocate for it
 * (item_make_header(): a 48-byte header, the key and its NUL, 4 bytes of
 * flags when nonzero, the value with its "\r\n", 8 bytes of CAS unless -C).
 * So the same workload lands in the same class ids on both servers.
 */
#ifndef CORECACHE_SIZECLASS_H
#define CORECACHE_SIZECLASS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIZECLASS_MAX 64             /* memcached's MAX_NUMBER_OF_SLAB_CLASSES: ids 1..63 */
#define SIZECLASS_PAGE ((size_t)1 << 20) /* memcached's slab_page_size */
#define SIZECLASS_FAST_MAX 16384     /* sizes up to this are looked up in one step */

/* Exposed for the inline-free fast lookup only; fill with sizeclass_init(). */
struct sizeclass {
    unsigned largest;                 /* memcached's power_largest */
    uint32_t size[SIZECLASS_MAX];     /* chunk size of class id; [0] unused */
    uint8_t fast[SIZECLASS_FAST_MAX / 8 + 1]; /* class of ceil(size / 8) */
};

/* memcached's slabs_init(): chunk_min is -n (bytes past the 48-byte item
 * header), factor -f, chunk_max slab_chunk_max (the largest class's size,
 * at most SIZECLASS_PAGE). */
void sizeclass_init(struct sizeclass *sc, uint32_t chunk_min, double factor, uint32_t chunk_max);

/* memcached's ITEM_ntotal for a new item: what it would allocate. */
size_t sizeclass_ntotal(size_t nkey, size_t nbytes, uint32_t flags, bool cas);

/* memcached's slabs_clsid(): the class of an allocation of `ntotal` bytes;
 * one above the largest class (memcached chunks those items) counts in the
 * largest class. Never 0 for ntotal > 0. */
unsigned sizeclass_of(const struct sizeclass *sc, size_t ntotal);

/* Items of class id that fill one memcached page (chunks_per_page). */
uint32_t sizeclass_per_page(const struct sizeclass *sc, unsigned id);

#endif
