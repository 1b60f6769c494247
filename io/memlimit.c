/*
 * memlimit.c: the item memory limit at runtime (issue 12).
 *
 * memcached's -m is a limit on the slab memory it mallocs; `cache_memlimit
 * <megabytes>` moves that limit while it runs. corecache reserves each
 * shard's arena (its share of -m) at start-up, as memcached does with a
 * preallocated -L arena, so the limit moves within the arenas:
 *
 *   cache_memlimit N ──> srv->mem_limit = N MiB ──> each shard, at its next
 *   tick (the asking one at once): store_set_limit(share of N, share of held)
 *
 * Lowering withholds segments from allocation (core/store.c): the store
 * gets under the new limit as the crawler, deletes and eviction free
 * segments, the way memcached's slab rebalancer gives pages back. Raising
 * past the arenas reserved at start-up fails with memcached's
 * MEMLIMIT_ADJUST_FAILED, as memcached's own does when its memory was
 * preallocated. `stats settings` maxbytes and `stats` limit_maxbytes report
 * the current limit.
 *
 * T_MEMD_INITIAL_MALLOC (memcached's test hook, read by its release build
 * too: bytes to count as already malloced) is held back from the limit and
 * added to total_malloced, split over the shards, the remainder on shard 0.
 */
#include "memlimit.h"

#include <stdlib.h>
#include <string.h>

#include "../core/reply.h"
#include "../core/store.h"
#include "server.h"
#include "shard.h"

void memlimit_init(struct server *srv)
{
    atomic_store(&srv->mem_limit, srv->cfg.memory_limit);
    srv->mem_held = 0;
    const char *fake = getenv("T_MEMD_INITIAL_MALLOC");
    if (fake != NULL) {
        char *end;
        unsigned long long v = strtoull(fake, &end, 10);
        if (end != fake && *end == '\0')
            srv->mem_held = v;
    }
}

void memlimit_apply(struct shard *shard)
{
    const struct server *srv = shard->srv;
    uint64_t limit = atomic_load_explicit(&srv->mem_limit, memory_order_relaxed);
    if (limit == shard->mem_limit_seen)
        return;
    shard->mem_limit_seen = limit;
    uint64_t held = srv->mem_held / srv->nshards;
    if (shard->id == 0)
        held += srv->mem_held % srv->nshards;
    /* at -m, the whole arena: a shard's share of a tiny -m is grown to
     * hold the largest item (shard.c), and that stays as it was */
    uint64_t share = limit / srv->nshards;
    if (limit == srv->cfg.memory_limit && share < shard->arena_size)
        share = shard->arena_size;
    store_set_limit(shard->store, share, held); /* moves no memory: not a write peers see */
}

bool memlimit_command(struct shard *shard, uint32_t mb, bool noreply, struct sink *out)
{
    struct server *srv = shard->srv;
    uint64_t bytes = (uint64_t)mb << 20;
    const char *line = "OK";
    if (bytes / srv->nshards > shard->arena_size)
        line = "MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust";
    else
        atomic_store_explicit(&srv->mem_limit, bytes, memory_order_relaxed);
    memlimit_apply(shard);
    return noreply || reply_put_line(out, line, strlen(line));
}
