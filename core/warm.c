/*
 * warm.c: the image a store leaves for a warm restart (the contract is
 * warm.h; the engine's side is store_warm_adopt in store.c).
 *
 *     +-------------------------------+  struct warm_hdr
 *     | magic, format, struct sizes   |  refuses another engine's image
 *     | engine release                |  refuses another release's items
 *     | generation, clock zero        |  the memory file's; the old clock
 *     | -m share, -I, -t, shard, -C   |  refuses other settings, naming it
 *     | store scalars, segs header    |  flush, CAS, queues, free list
 *     | arena_sum                     |  xxh3 of every queued segment's bytes
 *     | sum                           |  xxh3 of the image, this field 0
 *     +-------------------------------+
 *     | struct seg[nsegs]             |  the segment table as it was
 *     +-------------------------------+
 *
 * Checks go from cheap to dear and each failure says what did not match:
 * size and magic, the image's checksum, the release, the settings, the
 * memory file's generation (a file written after the save), then the
 * checksum of every byte the items occupy, and last the engine's own
 * validation while it rebuilds the index. Only an image that passes all
 * of them reaches the engine, so a damaged file starts a shard empty and
 * never serves a corrupted item.
 *
 * The image is for the same binary layout only (struct sizes, format,
 * release are compared), so it is the structs themselves, not a portable
 * encoding: a different build starts empty, by design.
 */
#include "warm.h"

#include <stdio.h>
#include <string.h>

#include "hash.h"
#include "item.h"
#include "seg.h"
#include "store.h"

#define WARM_MAGIC 0x314d5241574343ull /* "CCWARM1" */
#define WARM_FORMAT 2

struct warm_hdr {
    uint64_t magic;
    uint32_t format;
    uint32_t hdr_size;
    uint32_t seg_size_of; /* sizeof(struct seg) */
    uint32_t item_header; /* ITEM_HEADER_SIZE */
    char engine[32];
    uint64_t generation;
    int64_t clock_started;
    uint64_t arena_size;
    uint64_t item_size_max;
    uint32_t shards;
    uint32_t shard;
    uint32_t cas_enabled;
    uint32_t nsegs;
    struct store_warm state;
    struct segs segs; /* pointers zeroed */
    uint64_t arena_sum;
    uint64_t sum;
};

size_t warm_image_size(const struct store *store)
{
    return sizeof(struct warm_hdr) + (size_t)store_warm_segs(store)->nsegs * sizeof(struct seg);
}

/* xxh3 of the bytes the queued segments of `table` hold in `base`;
 * lengths are bounded by the arena, whatever the table says. */
static uint64_t arena_sum(const char *base, size_t seg_size, const struct seg *table, uint32_t nsegs)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    for (uint32_t id = 0; id < nsegs; id++) {
        const struct seg *s = &table[id];
        if (s->state != SEG_OPEN && s->state != SEG_CLOSED)
            continue;
        uint64_t len = s->write, room = (uint64_t)(nsegs - id) * seg_size;
        if (len > room)
            len = room;
        uint64_t tag[2] = {id, len};
        XXH3_64bits_update(&st, tag, sizeof(tag));
        XXH3_64bits_update(&st, base + (size_t)id * seg_size, (size_t)len);
    }
    return XXH3_64bits_digest(&st);
}

static uint64_t image_sum(const void *buf, size_t len)
{
    struct warm_hdr h;
    memcpy(&h, buf, sizeof(h));
    h.sum = 0;
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, &h, sizeof(h));
    XXH3_64bits_update(&st, (const char *)buf + sizeof(h), len - sizeof(h));
    return XXH3_64bits_digest(&st);
}

void warm_save(const struct store *store, const struct warm_params *p, uint64_t generation,
               int64_t clock_started, void *buf)
{
    const struct segs *segs = store_warm_segs(store);
    struct warm_hdr h;
    memset(&h, 0, sizeof(h));
    h.magic = WARM_MAGIC;
    h.format = WARM_FORMAT;
    h.hdr_size = sizeof(h);
    h.seg_size_of = sizeof(struct seg);
    h.item_header = ITEM_HEADER_SIZE;
    snprintf(h.engine, sizeof(h.engine), "%s", p->engine);
    h.generation = generation;
    h.clock_started = clock_started;
    h.arena_size = p->arena_size;
    h.item_size_max = p->item_size_max;
    h.shards = p->shards;
    h.shard = p->shard;
    h.cas_enabled = p->cas_enabled;
    h.nsegs = segs->nsegs;
    store_warm_state(store, &h.state);
    h.segs = *segs;
    h.segs.base = NULL;
    h.segs.seg = NULL;
    h.arena_sum = arena_sum(segs->base, segs->seg_size, segs->seg, segs->nsegs);
    memcpy((char *)buf + sizeof(h), segs->seg, (size_t)segs->nsegs * sizeof(struct seg));
    memcpy(buf, &h, sizeof(h));
    h.sum = image_sum(buf, warm_image_size(store));
    memcpy(buf, &h, sizeof(h));
}

#define MIB(x) ((unsigned long long)((x) >> 20))

enum mc_status warm_attach(struct store *store, const struct warm_params *p, uint64_t generation,
                           int64_t clock_started, mc_time_t now, const void *buf, size_t len,
                           uint64_t *items, char *why, size_t whylen, enum warm_cold *cold)
{
    enum warm_cold kind_unused;
    if (cold == NULL)
        cold = &kind_unused;
    *cold = WARM_COLD_DAMAGED; /* until a check says otherwise */
    const struct segs *segs = store_warm_segs(store);
    struct warm_hdr h;
    *items = 0;
    if (len < sizeof(h)) {
        snprintf(why, whylen, "the saved state is truncated (%zu bytes)", len);
        return MC_EINVAL;
    }
    memcpy(&h, buf, sizeof(h));
    if (h.magic != WARM_MAGIC || h.format != WARM_FORMAT || h.hdr_size != sizeof(h) ||
        h.seg_size_of != sizeof(struct seg) || h.item_header != ITEM_HEADER_SIZE) {
        snprintf(why, whylen, "the saved state is not in this engine's format (format %u, this is %u)",
                 h.format, WARM_FORMAT);
        return MC_EINVAL;
    }
    if (len != sizeof(h) + (size_t)h.nsegs * sizeof(struct seg) || image_sum(buf, len) != h.sum) {
        snprintf(why, whylen, "the saved state fails its checksum (damaged or cut short)");
        return MC_EINVAL;
    }
    h.engine[sizeof(h.engine) - 1] = '\0';
    if (strcmp(h.engine, p->engine) != 0) {
        snprintf(why, whylen, "it was saved by engine %s, this is %s", h.engine, p->engine);
        *cold = WARM_COLD_SETTINGS;
        return MC_EINVAL;
    }
    if (h.shards != p->shards) {
        snprintf(why, whylen,
                 "-t differs (%u shards now, %u when saved): keys are partitioned by shard, and "
                 "corecache does not re-home them",
                 p->shards, h.shards);
        *cold = WARM_COLD_SETTINGS;
        return MC_EINVAL;
    }
    if (h.arena_size != p->arena_size) {
        snprintf(why, whylen, "-m differs (%llu MiB per shard now, %llu MiB when saved)",
                 MIB(p->arena_size), MIB(h.arena_size));
        *cold = WARM_COLD_SETTINGS;
        return MC_EINVAL;
    }
    if (h.item_size_max != p->item_size_max) {
        snprintf(why, whylen, "-I differs (%llu bytes now, %llu when saved)",
                 (unsigned long long)p->item_size_max, (unsigned long long)h.item_size_max);
        *cold = WARM_COLD_SETTINGS;
        return MC_EINVAL;
    }
    if (h.cas_enabled != (uint32_t)p->cas_enabled || h.shard != p->shard) {
        snprintf(why, whylen, "-C differs (CAS %s now)", p->cas_enabled ? "on" : "off");
        *cold = WARM_COLD_SETTINGS;
        return MC_EINVAL;
    }
    if (h.generation != generation) {
        snprintf(why, whylen,
                 "the memory file's generation is %llu but the saved state's %llu (the file was "
                 "used after the save)",
                 (unsigned long long)generation, (unsigned long long)h.generation);
        return MC_EINVAL;
    }
    if (h.nsegs != segs->nsegs || h.segs.seg_size != segs->seg_size) {
        snprintf(why, whylen, "the segment layout differs (%u x %zu bytes now, %u x %zu saved)",
                 segs->nsegs, segs->seg_size, h.nsegs, h.segs.seg_size);
        *cold = WARM_COLD_SETTINGS;
        return MC_EINVAL;
    }
    const struct seg *table = (const struct seg *)((const char *)buf + sizeof(h));
    if (arena_sum(segs->base, segs->seg_size, table, h.nsegs) != h.arena_sum) {
        snprintf(why, whylen, "the item memory fails its checksum (changed after the save)");
        return MC_EINVAL;
    }
    const char *bad = NULL;
    int64_t shift = clock_started - h.clock_started;
    if (store_warm_adopt(store, &h.state, now, &h.segs, table, shift, items, &bad) != MC_OK) {
        snprintf(why, whylen, "the saved state is inconsistent: %s", bad != NULL ? bad : "?");
        return MC_EINVAL;
    }
    *cold = WARM_COLD_NONE;
    return MC_OK;
}
