/*
 * sizeclass.c: memcached 1.6.18's slab class table and item sizes, used
 * by the store to report per-class numbers (the contract is sizeclass.h).
 *
 * The table is slabs_init()'s loop: the first size is the 48-byte item
 * header plus -n, each next one the previous times -f (truncated to an
 * integer, as memcached multiplies an unsigned int), each rounded up to 8;
 * the loop stops once a size reaches slab_chunk_max / factor, and the
 * largest class is slab_chunk_max itself. Lookups of sizes up to 16 KiB
 * take one table read; larger ones a binary search.
 */
#include "sizeclass.h"

#define SIZECLASS_ITEM_HEADER 48 /* sizeof(item) in a 64-bit memcached 1.6 */
#define SIZECLASS_ALIGN 8        /* memcached's CHUNK_ALIGN_BYTES */

static unsigned sizeclass_search(const struct sizeclass *sc, size_t ntotal)
{
    unsigned lo = 1, hi = sc->largest;
    if (ntotal >= sc->size[hi])
        return hi;
    while (lo < hi) { /* the first class whose size holds ntotal */
        unsigned mid = lo + (hi - lo) / 2;
        if (sc->size[mid] >= ntotal)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void sizeclass_init(struct sizeclass *sc, uint32_t chunk_min, double factor, uint32_t chunk_max)
{
    if (chunk_max == 0 || chunk_max > SIZECLASS_PAGE)
        chunk_max = (uint32_t)(SIZECLASS_PAGE / 2);
    if (factor <= 1.0)
        factor = 1.25;
    unsigned i = 0;
    unsigned int size = SIZECLASS_ITEM_HEADER + chunk_min;
    sc->size[0] = 0;
    while (++i < SIZECLASS_MAX - 1) {
        if (size >= chunk_max / factor)
            break;
        if (size % SIZECLASS_ALIGN)
            size += SIZECLASS_ALIGN - size % SIZECLASS_ALIGN;
        sc->size[i] = size;
        size = (unsigned int)(size * factor);
    }
    sc->largest = i;
    sc->size[i] = chunk_max;
    for (unsigned j = i + 1; j < SIZECLASS_MAX; j++)
        sc->size[j] = 0;
    for (size_t k = 0; k < sizeof(sc->fast); k++)
        sc->fast[k] = (uint8_t)sizeclass_search(sc, k * SIZECLASS_ALIGN);
}

size_t sizeclass_ntotal(size_t nkey, size_t nbytes, uint32_t flags, bool cas)
{
    return SIZECLASS_ITEM_HEADER + nkey + 1 + (flags != 0 ? sizeof(flags) : 0) + nbytes + 2 +
           (cas ? sizeof(uint64_t) : 0);
}

unsigned sizeclass_of(const struct sizeclass *sc, size_t ntotal)
{
    if (ntotal <= SIZECLASS_FAST_MAX)
        return sc->fast[(ntotal + SIZECLASS_ALIGN - 1) / SIZECLASS_ALIGN];
    return sizeclass_search(sc, ntotal);
}

uint32_t sizeclass_per_page(const struct sizeclass *sc, unsigned id)
{
    if (id == 0 || id > sc->largest)
        return 0;
    return (uint32_t)(SIZECLASS_PAGE / sc->size[id]);
}
