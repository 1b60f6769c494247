/*
 * slab.c: slab classes, pages carved lazily from a handed-in arena, chunk
 * free lists and page moves.
 *
 * Classes. The first chunk size is the item header plus chunk_min (-n).
 * Up to SLAB_FINE_MAX bytes, classes are SLAB_FINE_STEP bytes apart; from
 * there on each is the previous times the growth factor (-f, truncated to
 * an integer, then rounded up to 8 bytes), as memcached 1.6's slabs_init()
 * does for every class; the series stops before a size reaches page_size /
 * factor, and the last class is exactly one page. With the defaults (40-byte
 * header, -n 48, -f 1.25, 1 MiB pages): 88, 96, 104, ... 256, 320, 400,
 * ... 807504, 1048576: 59 classes.
 *
 * Why fine small classes: most cached items are small, and a geometric
 * series wastes on average half a step per item; at 1.25 that is about 11%
 * of every small item (a 150-byte item takes a 184-byte chunk). 8-byte
 * steps waste at most 7 bytes, and 22 of them fit in memcached's 63 classes
 * with room for the geometric series up to 1 MiB. Large items keep -f's
 * series: their waste is small beside their size.
 *
 * Pages. The arena is cut into whole pages. A class takes the next page
 * from the arena (a bump pointer: pages_taken) only when its free list is
 * empty and its last page is fully carved, so memory the cache never needed
 * is never written and stays non-resident. Within its last page a class
 * carves chunks one at a time (bump_next), again so that a page is only
 * touched as far as it is used; the uncarved rest is memcached's
 * free_chunks_end.
 *
 *     arena  +--------+--------+--------+--------+- - - - - - - - - +
 *            | cls 3  | cls 1  | cls 3  | cls 7  |  not yet taken   |
 *            +--------+--------+--------+--------+- - - - - - - - - +
 *            page 0   1        2        3        ^ pages_taken
 *
 *     page 2 (the last page of class 3, chunk size 144):
 *            +-----+-----+-----+-----+-----+- - - - - - - - - - - +
 *            |item |free |item |item |free |  not carved yet      |
 *            +-----+-----+-----+-----+-----+- - - - - - - - - - - +
 *                                          ^ bump_next = 5
 *
 * Free chunks are doubly linked through the item header's prev/next refs
 * and marked ITEM_FREE, so that a page move can take a page's chunks out of
 * the middle of the list in O(chunks per page). Freeing pushes at the head:
 * the chunk reused next is the one most recently touched, still in cache.
 *
 * Page moves. Each page counts its chunks in use. A page whose count drops
 * to zero is "empty": all its carved chunks are on its class's free list,
 * and it can be given to another class without losing an item. The store
 * empties a page by evicting its items when it must (store.c decides).
 *
 * Invariants:
 *   - for each class: total chunks = used + free list + uncarved, where
 *     total = pages * chunks per page;
 *   - page_used[p] counts the chunks of page p handed out and not freed;
 *     empty_pages counts pages with page_used 0 that belong to a class;
 *   - every chunk on a free list has ITEM_FREE set and its class's clsid.
 */
#include "slab.h"

#include <stdlib.h>
#include <string.h>

struct slab_class {
    uint32_t size;       /* chunk size in bytes, a multiple of 8 */
    uint32_t perslab;    /* chunks per page */
    uint32_t free_head;  /* ref of the first free chunk, 0 = none */
    uint32_t free_count; /* chunks on the free list */
    uint32_t pages;      /* pages owned */
    uint32_t bump_page;  /* index + 1 of the page being carved, 0 = none */
    uint32_t bump_next;  /* next chunk to carve in bump_page */
    uint64_t used;       /* chunks handed out */
};

struct slab {
    char *arena;
    uintptr_t base; /* item_ref_base(arena) */
    size_t page_size;
    unsigned page_shift; /* log2(page_size) when a power of two, else 0 */
    uint32_t npages;     /* whole pages in the arena */
    uint32_t pages_taken;
    uint32_t empty_pages;  /* pages owned by a class with no chunk in use */
    uint32_t empty_cursor; /* where the last search for an empty page ended */
    unsigned nclasses;
    struct slab_class cls[SLAB_CLASSES_MAX];
    uint8_t *page_class; /* [npages]: owning class, 0 = not taken */
    uint32_t *page_used; /* [npages]: chunks in use */
};

static uint32_t page_index(const struct slab *slab, const void *chunk)
{
    size_t off = (size_t)((const char *)chunk - slab->arena);
    return (uint32_t)(slab->page_shift != 0 ? off >> slab->page_shift : off / slab->page_size);
}

static char *page_start(const struct slab *slab, uint32_t page)
{
    return slab->arena + (size_t)page * slab->page_size;
}

static uint32_t page_carved(const struct slab *slab, uint32_t page)
{
    const struct slab_class *sc = &slab->cls[slab->page_class[page]];
    return sc->bump_page == page + 1 ? sc->bump_next : sc->perslab;
}

/* Builds the class table exactly as memcached's slabs_init() loop does. */
/* Small chunks are this many bytes apart, up to this size (see above). */
#define SLAB_FINE_STEP 8
#define SLAB_FINE_MAX 256

static unsigned slab_init_classes(struct slab *slab, double factor, uint32_t chunk_min)
{
    unsigned size = (unsigned)(ITEM_HEADER_SIZE + chunk_min);
    unsigned i = 0;
    while (++i < SLAB_CLASSES_MAX - 1) {
        if ((double)size >= (double)slab->page_size / factor)
            break;
        if (size % 8 != 0)
            size += 8 - size % 8;
        slab->cls[i].size = size;
        slab->cls[i].perslab = (uint32_t)(slab->page_size / size);
        size = size < SLAB_FINE_MAX ? size + SLAB_FINE_STEP : (unsigned)(size * factor);
    }
    slab->cls[i].size = (uint32_t)slab->page_size;
    slab->cls[i].perslab = 1;
    return i;
}

enum mc_status slab_create(const struct slab_cfg *cfg, struct slab **out)
{
    *out = NULL;
    if (cfg->arena == NULL || ((uintptr_t)cfg->arena & 7) != 0 || !(cfg->factor > 1.0) ||
        cfg->chunk_min == 0 || cfg->page_size == 0 || cfg->page_size % 8 != 0 ||
        cfg->page_size > UINT32_MAX || cfg->page_size < ITEM_HEADER_SIZE + cfg->chunk_min ||
        cfg->arena_size < cfg->page_size || cfg->arena_size > SLAB_ARENA_MAX)
        return MC_EINVAL;

    struct slab *slab = calloc(1, sizeof(*slab));
    if (slab == NULL)
        goto fail;
    slab->arena = cfg->arena;
    slab->base = item_ref_base(cfg->arena);
    slab->page_size = cfg->page_size;
    if ((cfg->page_size & (cfg->page_size - 1)) == 0)
        slab->page_shift = (unsigned)__builtin_ctzll(cfg->page_size);
    slab->npages = (uint32_t)(cfg->arena_size / cfg->page_size);
    slab->nclasses = slab_init_classes(slab, cfg->factor, cfg->chunk_min);
    slab->page_class = calloc(slab->npages, sizeof(*slab->page_class));
    slab->page_used = calloc(slab->npages, sizeof(*slab->page_used));
    if (slab->page_class == NULL || slab->page_used == NULL)
        goto fail;
    *out = slab;
    return MC_OK;

fail:
    slab_destroy(&slab);
    return MC_ENOMEM;
}

void slab_destroy(struct slab **slab)
{
    if (*slab == NULL)
        return;
    free((*slab)->page_class);
    free((*slab)->page_used);
    free(*slab);
    *slab = NULL;
}

unsigned slab_class_count(const struct slab *slab)
{
    return slab->nclasses;
}

size_t slab_class_size(const struct slab *slab, unsigned id)
{
    return id >= 1 && id <= slab->nclasses ? slab->cls[id].size : 0;
}

unsigned slab_clsid(const struct slab *slab, size_t total)
{
    if (total == 0 || total > slab->page_size)
        return 0;
    /* Binary search for the first class with size >= total; the last class
     * is one page, so there is one. */
    unsigned lo = 1, hi = slab->nclasses;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (slab->cls[mid].size >= total)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void page_use(struct slab *slab, uint32_t page)
{
    if (slab->page_used[page]++ == 0)
        slab->empty_pages--;
}

static void page_unuse(struct slab *slab, uint32_t page)
{
    if (--slab->page_used[page] == 0)
        slab->empty_pages++;
}

/* Takes the next arena page for class `id` and makes it the class's
 * carving page. The caller has checked that one is left. */
static void page_assign(struct slab *slab, uint32_t page, unsigned id)
{
    struct slab_class *sc = &slab->cls[id];
    slab->page_class[page] = (uint8_t)id;
    slab->page_used[page] = 0;
    slab->empty_pages++;
    sc->pages++;
    sc->bump_page = page + 1;
    sc->bump_next = 0;
}

static void freelist_push(struct slab *slab, struct slab_class *sc, struct item *chunk)
{
    uint32_t ref = item_ref(slab->base, chunk);
    chunk->iflags = ITEM_FREE;
    chunk->prev = 0;
    chunk->next = sc->free_head;
    if (sc->free_head != 0)
        item_at(slab->base, sc->free_head)->prev = ref;
    sc->free_head = ref;
    sc->free_count++;
}

static void freelist_remove(struct slab *slab, struct slab_class *sc, struct item *chunk)
{
    if (chunk->prev != 0)
        item_at(slab->base, chunk->prev)->next = chunk->next;
    else
        sc->free_head = chunk->next;
    if (chunk->next != 0)
        item_at(slab->base, chunk->next)->prev = chunk->prev;
    chunk->iflags = 0;
    sc->free_count--;
}

struct item *slab_alloc(struct slab *slab, unsigned id)
{
    struct slab_class *sc = &slab->cls[id];
    struct item *chunk;
    uint32_t page;

    if (sc->free_head != 0) {
        chunk = item_at(slab->base, sc->free_head);
        freelist_remove(slab, sc, chunk);
        page = page_index(slab, chunk);
    } else {
        if (sc->bump_page == 0 || sc->bump_next == sc->perslab) {
            if (slab->pages_taken == slab->npages)
                return NULL;
            page_assign(slab, slab->pages_taken++, id);
        }
        page = sc->bump_page - 1;
        chunk = (struct item *)(page_start(slab, page) + (size_t)sc->bump_next * sc->size);
        sc->bump_next++;
        chunk->iflags = 0;
    }
    chunk->clsid = (uint8_t)id;
    page_use(slab, page);
    sc->used++;
    return chunk;
}

void slab_free(struct slab *slab, struct item *chunk)
{
    struct slab_class *sc = &slab->cls[chunk->clsid];
    freelist_push(slab, sc, chunk);
    sc->used--;
    page_unuse(slab, page_index(slab, chunk));
}

uint32_t slab_pages_taken(const struct slab *slab)
{
    return slab->pages_taken;
}

uint32_t slab_pages_total(const struct slab *slab)
{
    return slab->npages;
}

uint32_t slab_class_pages(const struct slab *slab, unsigned id)
{
    return id >= 1 && id <= slab->nclasses ? slab->cls[id].pages : 0;
}

uint32_t slab_page_of(const struct slab *slab, const void *chunk)
{
    return page_index(slab, chunk);
}

void slab_page_chunks(const struct slab *slab, uint32_t page, char **first, uint32_t *count,
                      size_t *stride)
{
    *first = page_start(slab, page);
    *count = page_carved(slab, page);
    *stride = slab->cls[slab->page_class[page]].size;
}

uint32_t slab_page_used(const struct slab *slab, uint32_t page)
{
    return slab->page_used[page];
}

bool slab_page_move(struct slab *slab, uint32_t page, unsigned to)
{
    if (page >= slab->pages_taken || to == 0 || to > slab->nclasses)
        return false;
    unsigned from = slab->page_class[page];
    if (slab->page_used[page] != 0 || from == to)
        return false;

    struct slab_class *old = &slab->cls[from];
    char *first = page_start(slab, page);
    uint32_t carved = page_carved(slab, page);
    for (uint32_t i = 0; i < carved; i++)
        freelist_remove(slab, old, (struct item *)(first + (size_t)i * old->size));
    if (old->bump_page == page + 1)
        old->bump_page = 0;
    old->pages--;
    slab->empty_pages--; /* page_assign counts it again */

    struct slab_class *sc = &slab->cls[to];
    if (sc->bump_page != 0 && sc->bump_next < sc->perslab) {
        /* The class is still carving another page: keep that one as its
         * carving page and put all of this one on the free list. Callers
         * move pages only when the class is out of chunks, so this is the
         * rare path; it writes every chunk header of the page. */
        slab->page_class[page] = (uint8_t)to;
        slab->empty_pages++;
        sc->pages++;
        for (uint32_t i = 0; i < sc->perslab; i++) {
            struct item *chunk = (struct item *)(first + (size_t)i * sc->size);
            chunk->clsid = (uint8_t)to;
            freelist_push(slab, sc, chunk);
        }
        return true;
    }
    page_assign(slab, page, to);
    return true;
}

bool slab_take_empty_page(struct slab *slab, unsigned to)
{
    if (slab->empty_pages == 0)
        return false;
    /* Resume where the last search stopped so repeated moves do not rescan
     * the same full pages; one lap at most. */
    uint32_t n = slab->pages_taken;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t page = (slab->empty_cursor + k) % n;
        if (slab->page_used[page] == 0 && slab->page_class[page] != to) {
            slab->empty_cursor = page + 1;
            return slab_page_move(slab, page, to);
        }
    }
    return false;
}

void slab_class_stats(const struct slab *slab, unsigned id, struct slab_class_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (id < 1 || id > slab->nclasses)
        return;
    const struct slab_class *sc = &slab->cls[id];
    out->chunk_size = sc->size;
    out->chunks_per_page = sc->perslab;
    out->total_pages = sc->pages;
    out->total_chunks = (uint64_t)sc->pages * sc->perslab;
    out->used_chunks = sc->used;
    out->free_chunks = sc->free_count;
    out->free_chunks_end = sc->bump_page != 0 ? sc->perslab - sc->bump_next : 0;
}

uint64_t slab_total_malloced(const struct slab *slab)
{
    uint64_t pages = 0;
    for (unsigned id = 1; id <= slab->nclasses; id++)
        pages += slab->cls[id].pages;
    return pages * slab->page_size;
}
