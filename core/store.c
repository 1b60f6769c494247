/*
 * store.c: one shard's storage engine: commands, LRU, expiry, eviction,
 * flush, the crawler and the engine's metrics (the contract is store.h).
 *
 * Pieces. Items (item.h) live in slab chunks (slab.c) carved from the
 * shard's arena and are found through the hash table (ht.c). Each slab
 * class keeps one LRU list, doubly linked through the items' prev/next
 * refs, newest at the head:
 *
 *     lru_head[c] -> it -> it -> it -> ... -> it <- lru_tail[c]
 *                  (recently stored or hit)      (evicted first)
 *
 * Semantics follow memcached 1.6 with its segmented LRU off (one LRU per
 * class); each function below names the memcached function it mirrors,
 * so the two can be read side by side.
 *
 * Lookups (store_find, memcached's do_item_get) unlink and free an item
 * that is flushed or expired before anyone sees it, counting get_flushed
 * or get_expired, for every command that looks a key up (get, set, delete,
 * incr, touch...), as memcached does. A hit moves the item to its LRU head
 * at most once per MC_ITEM_UPDATE_INTERVAL seconds (do_item_update), so a
 * hot key read a million times a second is written about once a minute.
 *
 * Allocation (store_alloc, memcached's do_item_alloc + lru_pull_tail) tries,
 * in order:
 *   1. a free chunk, the class's carving page, or a fresh arena page;
 *   2. reclaiming expired or flushed items among the last
 *      STORE_TAIL_SEARCH of the class's LRU;
 *   3. an empty page of another class (all its chunks free, so no item is
 *      lost; memcached's slab automover does this in the background);
 *   4. evicting the class's LRU tail (not under -M);
 *   5. when the class has nothing it could evict, moving another class's
 *      page to it, evicting that page's items (not under -M);
 *   and else fails with MC_ENOMEM, counting outofmemory.
 * Items that a command holds while it allocates (the new item of a set,
 * the old item of an append or incr) are pinned: steps 2, 4 and 5 skip
 * them, exactly as memcached's refcounts keep held items from eviction.
 *
 * Flush (memcached's item_is_flushed): flush_all sets oldest_live; an item
 * is flushed once now >= oldest_live if its atime <= oldest_live. An
 * immediate flush sets oldest_live one second back (as memcached with CAS
 * on), so items stored later in the flush's own second survive, and those
 * stored earlier in that second must be told apart: memcached compares
 * their CAS with one taken at the flush; we count immediate flushes
 * instead (flush_epoch, copied into each item when linked), because a
 * meta client may choose an item's CAS (E) and a low one must not read as
 * flushed. Same outcome for every other item: CAS order is link order.
 *
 * Expiry: exptime != 0 && exptime <= now. memcached's tail reclaim and
 * crawler test exptime < now; here one predicate serves all three, so that
 * an item a get would call dead is never counted as a live eviction.
 *
 * CAS values are cas_offset + k * cas_stride for k = 1, 2, ...; every store
 * with its own offset below the common stride issues values no other store
 * issues, and each store's values grow with time.
 *
 * Invariants, between commands: every chunk handed out by the slab is a
 * linked item (in the hash table and in its class's LRU), so used_chunks
 * equals number per class; curr_items and bytes are the sums of number and
 * mem_requested; nothing is pinned.
 *
 * Metrics: STORE_METRIC is the store-wide table (memcached's `stats` names
 * and order), STORE_CLASS_METRIC the per-class one, made of the `stats
 * slabs` section followed by the `stats items` section. Store-wide totals
 * that memcached sums from per-class counters (get_hits, evictions, ...)
 * are summed the same way when a snapshot is taken, so a hit costs one
 * increment. Gauges are computed at snapshot time from the slab, the hash
 * table and the LRUs, or kept current (curr_items, bytes, number,
 * mem_requested).
 */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "ht.h"
#include "item.h"
#include "slab.h"

_Static_assert(STORE_CLASSES_MAX == SLAB_CLASSES_MAX, "one class limit for store and slab");
_Static_assert(STORE_KEY_MAX <= UINT8_MAX, "item.nkey is one byte");

/* LRU tail items examined per reclaim or eviction (memcached's `tries`). */
#define STORE_TAIL_SEARCH 5

/* Store-wide metrics, in memcached's `stats` order. */
#define STORE_METRIC(ACTION)                                                                  \
    ACTION(cmd_get, COUNTER, "get and gets keys looked up")                                  \
    ACTION(cmd_set, COUNTER, "storage commands that got as far as storing (sum of classes)") \
    ACTION(cmd_touch, COUNTER, "touch, gat and gats keys looked up")                         \
    ACTION(cmd_meta, COUNTER, "me (meta debug) commands, as memcached counts them")           \
    ACTION(get_hits, COUNTER, "get and gets keys found (sum of classes)")                    \
    ACTION(get_misses, COUNTER, "get and gets keys not found")                               \
    ACTION(get_expired, COUNTER, "lookups that found the key expired")                       \
    ACTION(get_flushed, COUNTER, "lookups that found the key flushed")                       \
    ACTION(delete_misses, COUNTER, "delete of a missing key")                                \
    ACTION(delete_hits, COUNTER, "keys deleted (sum of classes)")                            \
    ACTION(incr_misses, COUNTER, "incr of a missing key")                                    \
    ACTION(incr_hits, COUNTER, "keys incremented (sum of classes)")                          \
    ACTION(decr_misses, COUNTER, "decr of a missing key")                                    \
    ACTION(decr_hits, COUNTER, "keys decremented (sum of classes)")                          \
    ACTION(cas_misses, COUNTER, "cas of a missing key")                                      \
    ACTION(cas_hits, COUNTER, "cas that stored (sum of classes)")                            \
    ACTION(cas_badval, COUNTER, "cas with a stale unique (sum of classes)")                  \
    ACTION(touch_hits, COUNTER, "touch, gat and gats keys found (sum of classes)")           \
    ACTION(touch_misses, COUNTER, "touch, gat and gats keys not found")                      \
    ACTION(store_too_large, COUNTER, "storage commands refused: item above -I")              \
    ACTION(store_no_memory, COUNTER, "storage commands refused: no memory (see -M)")         \
    ACTION(hash_power_level, LEVEL, "log2 of the hash table's bucket count")                 \
    ACTION(hash_bytes, GAUGE, "bytes of hash table buckets")                                 \
    ACTION(hash_is_expanding, GAUGE, "1 while the hash table is doubling")                   \
    ACTION(slab_reassign_evictions_nomem, COUNTER, "live items evicted by page moves")       \
    ACTION(slabs_moved, COUNTER, "slab pages moved between classes")                         \
    ACTION(lru_crawler_starts, COUNTER, "crawler laps begun over the shard's pages (it runs "    \
                                        "continuously, a slice per tick)")                       \
    ACTION(bytes, GAUGE, "bytes of items stored (headers, keys, values)")                    \
    ACTION(curr_items, GAUGE, "items stored")                                                \
    ACTION(total_items, COUNTER, "items ever stored")                                        \
    ACTION(expired_unfetched, COUNTER, "expired items reclaimed never fetched")              \
    ACTION(evicted_unfetched, COUNTER, "evicted items never fetched")                        \
    ACTION(evicted_active, COUNTER, "evicted items hit since their last LRU move")           \
    ACTION(evictions, COUNTER, "live items evicted to make room")                            \
    ACTION(reclaimed, COUNTER, "expired items whose memory was reused from the LRU tail")    \
    ACTION(crawler_reclaimed, COUNTER, "expired or flushed items freed by the crawler")      \
    ACTION(crawler_items_checked, COUNTER, "items the crawler examined")                     \
    ACTION(moves_to_cold, COUNTER, "always 0: one LRU per class, no HOT/WARM/COLD segments")  \
    ACTION(moves_to_warm, COUNTER, "always 0: one LRU per class, no segments")               \
    ACTION(moves_within_lru, COUNTER, "always 0: one LRU per class, no segments")            \
    ACTION(total_malloced, GAUGE, "bytes of slab pages given to classes (stats slabs)")

/* Per-class metrics: the `stats slabs` fields, in memcached's order... */
#define STORE_CLASS_SLABS_METRIC(ACTION)                                                      \
    ACTION(chunk_size, GAUGE, "bytes per chunk")                                             \
    ACTION(chunks_per_page, GAUGE, "chunks per slab page")                                   \
    ACTION(total_pages, GAUGE, "pages owned by the class")                                   \
    ACTION(total_chunks, GAUGE, "chunks in the class's pages")                               \
    ACTION(used_chunks, GAUGE, "chunks holding items")                                       \
    ACTION(free_chunks, GAUGE, "chunks on the free list")                                    \
    ACTION(free_chunks_end, GAUGE, "chunks not yet carved from the last page")               \
    ACTION(get_hits, COUNTER, "get and gets hits")                                           \
    ACTION(cmd_set, COUNTER, "storage commands whose item fell in this class")               \
    ACTION(delete_hits, COUNTER, "keys deleted")                                             \
    ACTION(incr_hits, COUNTER, "keys incremented")                                           \
    ACTION(decr_hits, COUNTER, "keys decremented")                                           \
    ACTION(cas_hits, COUNTER, "cas that stored over an item of this class")                  \
    ACTION(cas_badval, COUNTER, "cas refused over an item of this class")                    \
    ACTION(touch_hits, COUNTER, "touch, gat and gats hits")
/* ...then the `stats items` fields, in memcached's order. age and
 * evicted_time are levels: across shards the server reports the largest
 * (memcached's `stats reset` also zeroes evicted_time; we keep it, as a
 * level, so that shards merge by max). */
#define STORE_CLASS_ITEMS_METRIC(ACTION)                                                      \
    ACTION(number, GAUGE, "items stored")                                                    \
    ACTION(number_hot, GAUGE, "always 0: the class's one LRU is reported as COLD")           \
    ACTION(number_warm, GAUGE, "always 0: the class's one LRU is reported as COLD")          \
    ACTION(number_cold, GAUGE, "items in the class's one LRU, which evicts (= number)")      \
    ACTION(age_hot, LEVEL, "always 0: no HOT segment")                                        \
    ACTION(age_warm, LEVEL, "always 0: no WARM segment")                                      \
    ACTION(age, LEVEL, "seconds since the LRU tail item was stored or bumped")               \
    ACTION(mem_requested, GAUGE, "bytes of the items stored (not of their chunks)")          \
    ACTION(evicted, COUNTER, "live items evicted")                                           \
    ACTION(evicted_nonzero, COUNTER, "live items with an exptime evicted")                   \
    ACTION(evicted_time, LEVEL, "seconds since the last evicted item's last LRU move")     \
    ACTION(outofmemory, COUNTER, "allocations that failed")                                  \
    ACTION(tailrepairs, COUNTER, "LRU tails repaired (always 0: items hold no references)")   \
    ACTION(reclaimed, COUNTER, "expired items reused from the LRU tail")                     \
    ACTION(expired_unfetched, COUNTER, "expired items reclaimed never fetched")              \
    ACTION(evicted_unfetched, COUNTER, "evicted items never fetched")                        \
    ACTION(evicted_active, COUNTER, "evicted items hit since their last LRU move")           \
    ACTION(crawler_reclaimed, COUNTER, "items freed by the crawler")                         \
    ACTION(crawler_items_checked, COUNTER, "items the crawler examined")                     \
    ACTION(lrutail_reflocked, COUNTER, "LRU tails skipped as referenced (always 0, as above)") \
    ACTION(moves_to_cold, COUNTER, "always 0: one LRU per class, no segments")               \
    ACTION(moves_to_warm, COUNTER, "always 0: one LRU per class, no segments")               \
    ACTION(moves_within_lru, COUNTER, "always 0: one LRU per class, no segments")            \
    ACTION(direct_reclaims, COUNTER, "allocations that reclaimed or evicted from the LRU "      \
                                     "tail themselves (= reclaimed + evicted: there is no "    \
                                     "background LRU maintainer)")                            \
    ACTION(hits_to_hot, COUNTER, "always 0: no HOT segment")                                  \
    ACTION(hits_to_warm, COUNTER, "always 0: no WARM segment")                                \
    ACTION(hits_to_cold, COUNTER, "get hits on the class's one LRU, reported as COLD (= get_hits)") \
    ACTION(hits_to_temp, COUNTER, "always 0: no TEMP LRU")

#define STORE_CLASS_METRIC(ACTION) STORE_CLASS_SLABS_METRIC(ACTION) STORE_CLASS_ITEMS_METRIC(ACTION)

struct store_metrics {
    METRIC_STRUCT(STORE_METRIC)
};
struct store_class_metrics {
    METRIC_STRUCT(STORE_CLASS_METRIC)
};

const struct metric_desc store_metric_desc[] = {STORE_METRIC(METRIC_DESC)};
const size_t store_metric_count = METRIC_COUNT(STORE_METRIC);
const struct metric_desc store_class_metric_desc[] = {STORE_CLASS_METRIC(METRIC_DESC)};
const size_t store_class_metric_count = METRIC_COUNT(STORE_CLASS_METRIC);
const size_t store_class_metric_items_first = METRIC_COUNT(STORE_CLASS_SLABS_METRIC);

struct store {
    struct store_cfg cfg;
    struct slab *slab;
    struct ht *ht;
    uintptr_t base; /* item_ref_base(arena) */
    mc_time_t now;

    mc_time_t oldest_live; /* flush_all watermark, 0 = none */
    uint8_t flush_epoch;   /* immediate flushes so far, mod 256 */
    bool flush_this_second; /* the last flush was immediate: items linked in
                             * its second before it (older epoch) are gone */
    uint64_t cas_issued;   /* k of the last CAS issued */

    /* Items a command holds across an allocation; never reclaimed. */
    const struct item *pin[2];

    /* Crawler position: next chunk to examine. */
    uint32_t crawl_page;
    uint32_t crawl_chunk;

    uint32_t lru_head[STORE_CLASSES_MAX];
    uint32_t lru_tail[STORE_CLASSES_MAX];

    struct store_metrics m;
    struct store_class_metrics cm[STORE_CLASSES_MAX];
};

/* --- Creation ---------------------------------------------------------------- */

enum mc_status store_create(const struct store_cfg *cfg, struct store **out)
{
    enum mc_status status = MC_EINVAL;
    struct store *store = NULL;
    *out = NULL;
    if (cfg->arena == NULL || cfg->item_size_max < ITEM_HEADER_SIZE + 1 + 1 ||
        cfg->slab_page_size < cfg->item_size_max || cfg->arena_size < cfg->slab_page_size ||
        !(cfg->growth_factor > 1.0) || (cfg->cas_enabled && cfg->cas_stride == 0))
        goto fail;

    status = MC_ENOMEM;
    store = calloc(1, sizeof(*store));
    if (store == NULL)
        goto fail;
    store->cfg = *cfg;
    store->base = item_ref_base(cfg->arena);

    struct slab_cfg slab_cfg = {
        .arena = cfg->arena,
        .arena_size = cfg->arena_size,
        .page_size = cfg->slab_page_size,
        .factor = cfg->growth_factor,
        .chunk_min = cfg->chunk_min,
    };
    status = slab_create(&slab_cfg, &store->slab);
    if (status != MC_OK)
        goto fail;
    status = ht_create(HT_POWER_DEFAULT, store->base, &store->ht);
    if (status != MC_OK)
        goto fail;
    *out = store;
    return MC_OK;

fail:
    store_destroy(&store);
    return status;
}

void store_destroy(struct store **store)
{
    if (*store == NULL)
        return;
    slab_destroy(&(*store)->slab);
    ht_destroy(&(*store)->ht);
    free(*store);
    *store = NULL;
}

void store_set_clock(struct store *store, mc_time_t now)
{
    store->now = now;
}

size_t store_item_total(size_t nkey, size_t nbytes)
{
    return ITEM_HEADER_SIZE + nkey + nbytes;
}

bool store_item_fits(const struct store *store, size_t nkey, size_t nbytes)
{
    return nkey <= STORE_KEY_MAX && nbytes <= store->cfg.item_size_max &&
           store_item_total(nkey, nbytes) <= store->cfg.item_size_max;
}

/* --- Item state ---------------------------------------------------------------- */

static uint64_t store_next_cas(struct store *store)
{
    if (!store->cfg.cas_enabled)
        return 0;
    store->cas_issued++;
    return store->cfg.cas_offset + store->cas_issued * store->cfg.cas_stride;
}

/* memcached's item_is_flushed(), with the flush epoch for the flush's own
 * second (see the file comment). */
static bool store_is_flushed(const struct store *store, const struct item *it)
{
    mc_time_t oldest_live = store->oldest_live;
    if (oldest_live == 0 || oldest_live > store->now)
        return false;
    return it->atime <= oldest_live ||
           (store->flush_this_second && it->atime == oldest_live + 1 &&
            it->flush_epoch != store->flush_epoch);
}

static bool store_is_expired(const struct store *store, const struct item *it)
{
    return it->exptime != 0 && it->exptime <= store->now;
}

static bool store_is_pinned(const struct store *store, const struct item *it)
{
    return it == store->pin[0] || it == store->pin[1];
}

/* --- LRU ------------------------------------------------------------------------ */

static void lru_push_head(struct store *store, struct item *it)
{
    unsigned c = it->clsid;
    uint32_t ref = item_ref(store->base, it);
    it->prev = 0;
    it->next = store->lru_head[c];
    if (it->next != 0)
        item_at(store->base, it->next)->prev = ref;
    else
        store->lru_tail[c] = ref;
    store->lru_head[c] = ref;
}

static void lru_remove(struct store *store, struct item *it)
{
    unsigned c = it->clsid;
    if (it->prev != 0)
        item_at(store->base, it->prev)->next = it->next;
    else
        store->lru_head[c] = it->next;
    if (it->next != 0)
        item_at(store->base, it->next)->prev = it->prev;
    else
        store->lru_tail[c] = it->prev;
    it->prev = it->next = 0;
}

/* memcached's do_item_update(): move to the LRU head, at most once per
 * interval. Returns true if it moved. */
static bool store_update(struct store *store, struct item *it)
{
    if ((uint64_t)it->atime + MC_ITEM_UPDATE_INTERVAL >= store->now)
        return false;
    if (store->lru_head[it->clsid] != item_ref(store->base, it)) {
        lru_remove(store, it);
        lru_push_head(store, it);
    }
    it->atime = store->now;
    it->iflags &= (uint8_t)~ITEM_ACTIVE;
    return true;
}

/* memcached's do_item_bump() for a read (get, gat, touch): mark fetched
 * and maybe move. A hit that may not move marks the item active instead;
 * both bits are tested first so a hot item is not written on every read. */
static void store_hit(struct store *store, struct item *it)
{
    if (store_update(store, it)) {
        it->iflags |= ITEM_FETCHED;
        return;
    }
    if ((it->iflags & (ITEM_FETCHED | ITEM_ACTIVE)) != (ITEM_FETCHED | ITEM_ACTIVE))
        it->iflags |= ITEM_FETCHED | ITEM_ACTIVE;
}

/* --- Link and unlink ------------------------------------------------------------- */

/* memcached's do_item_link(): into the table and the LRU head, with a new
 * CAS and atime. */
static void store_link(struct store *store, struct item *it, uint64_t hash)
{
    struct store_class_metrics *cm = &store->cm[it->clsid];
    size_t total = item_total(it);
    it->iflags = (uint8_t)((it->iflags & ~ITEM_ACTIVE) | ITEM_LINKED);
    it->atime = store->now;
    it->flush_epoch = store->flush_epoch;
    it->cas = store_next_cas(store);
    ht_insert(store->ht, it, hash);
    lru_push_head(store, it);
    store->m.curr_items++;
    store->m.total_items++;
    store->m.bytes += total;
    cm->number++;
    cm->mem_requested += total;
}

/* memcached's do_item_unlink() followed by the free of the last reference:
 * the chunk goes back to its class. */
static void store_unlink_free(struct store *store, struct item *it, uint64_t hash)
{
    struct store_class_metrics *cm = &store->cm[it->clsid];
    size_t total = item_total(it);
    ht_remove(store->ht, it, hash);
    lru_remove(store, it);
    store->m.curr_items--;
    store->m.bytes -= total;
    cm->number--;
    cm->mem_requested -= total;
    slab_free(store->slab, it);
}

/* Unlinks an item found without its request's hash (LRU tail, crawler,
 * page moves): recompute it, as memcached's lru_pull_tail() does. */
static void store_unlink_free_rehash(struct store *store, struct item *it)
{
    store_unlink_free(store, it, hash_key(it->data, it->nkey));
}

/* memcached's do_item_get() without the bump: the live item or NULL;
 * flushed and expired items are unlinked on sight. */
static struct item *store_find(struct store *store, const char *key, size_t nkey, uint64_t hash)
{
    struct item *it = ht_find(store->ht, key, nkey, hash);
    if (it == NULL)
        return NULL;
    if (store_is_flushed(store, it)) {
        store_unlink_free(store, it, hash);
        store->m.get_flushed++;
        return NULL;
    }
    if (store_is_expired(store, it)) {
        store_unlink_free(store, it, hash);
        store->m.get_expired++;
        return NULL;
    }
    return it;
}

/* --- Allocation ------------------------------------------------------------------- */

/* Frees an expired or flushed item found near the LRU tail (counted as
 * memcached's lru_pull_tail() counts it). */
static void store_reclaim(struct store *store, struct item *it)
{
    struct store_class_metrics *cm = &store->cm[it->clsid];
    cm->reclaimed++;
    if ((it->iflags & ITEM_FETCHED) == 0)
        cm->expired_unfetched++;
    store_unlink_free_rehash(store, it);
}

static void store_evict(struct store *store, struct item *it)
{
    struct store_class_metrics *cm = &store->cm[it->clsid];
    cm->evicted++;
    cm->evicted_time = store->now > it->atime ? store->now - it->atime : 0;
    if (it->exptime != 0)
        cm->evicted_nonzero++;
    if ((it->iflags & ITEM_FETCHED) == 0)
        cm->evicted_unfetched++;
    if ((it->iflags & ITEM_ACTIVE) != 0)
        cm->evicted_active++;
    store_unlink_free_rehash(store, it);
}

/*
 * memcached's lru_pull_tail() for one class: walks up to STORE_TAIL_SEARCH
 * items from the LRU tail, skipping pinned ones; frees expired or flushed
 * ones and goes on; at the first live one stops, evicting it if `evict`.
 * Returns the number of chunks freed.
 */
static unsigned store_pull_tail(struct store *store, unsigned id, bool evict)
{
    unsigned freed = 0;
    uint32_t ref = store->lru_tail[id];
    for (int tries = STORE_TAIL_SEARCH; tries > 0 && ref != 0; tries--) {
        struct item *it = item_at(store->base, ref);
        ref = it->prev;
        if (store_is_pinned(store, it))
            continue;
        if (store_is_expired(store, it) || store_is_flushed(store, it)) {
            store_reclaim(store, it);
            freed++;
            continue;
        }
        if (evict) {
            store_evict(store, it);
            freed++;
        }
        break;
    }
    return freed;
}

static bool store_page_has_pin(const struct store *store, uint32_t page)
{
    for (int i = 0; i < 2; i++) {
        if (store->pin[i] != NULL && slab_page_of(store->slab, store->pin[i]) == page)
            return true;
    }
    return false;
}

/*
 * Moves a page with live items to class `to`, which has nothing to evict:
 * the page holding the LRU tail of the class with the most pages, so the
 * coldest items of the most generously served class pay. Evicts the page's
 * items first. Returns false when no class can give a page.
 */
static bool store_move_page(struct store *store, unsigned to)
{
    unsigned n = slab_class_count(store->slab);
    unsigned donor = 0;
    uint32_t donor_pages = 0, victim = 0;
    for (unsigned c = 1; c <= n; c++) {
        uint32_t pages = slab_class_pages(store->slab, c);
        if (c == to || pages <= donor_pages || store->lru_tail[c] == 0)
            continue;
        uint32_t page = slab_page_of(store->slab, item_at(store->base, store->lru_tail[c]));
        if (store_page_has_pin(store, page))
            continue;
        donor = c;
        donor_pages = pages;
        victim = page;
    }
    if (donor == 0)
        return false;

    char *first;
    uint32_t count;
    size_t stride;
    slab_page_chunks(store->slab, victim, &first, &count, &stride);
    for (uint32_t i = 0; i < count; i++) {
        struct item *it = (struct item *)(first + (size_t)i * stride);
        if ((it->iflags & ITEM_LINKED) == 0)
            continue;
        if (store_is_expired(store, it) || store_is_flushed(store, it)) {
            store_reclaim(store, it);
        } else {
            store->m.slab_reassign_evictions_nomem++;
            store_unlink_free_rehash(store, it);
        }
    }
    if (!slab_page_move(store->slab, victim, to))
        return false; /* a chunk held outside the LRU: cannot happen unpinned */
    store->m.slabs_moved++;
    return true;
}

/* The slow path of store_alloc(): steps 2 to 5 of the file comment. */
static struct item *store_alloc_slow(struct store *store, unsigned id)
{
    if (store_pull_tail(store, id, false) > 0)
        return slab_alloc(store->slab, id);
    if (slab_take_empty_page(store->slab, id)) {
        store->m.slabs_moved++;
        return slab_alloc(store->slab, id);
    }
    if (!store->cfg.evictions)
        return NULL;
    if (store_pull_tail(store, id, true) > 0)
        return slab_alloc(store->slab, id);
    if (store_move_page(store, id))
        return slab_alloc(store->slab, id);
    return NULL;
}

/*
 * A fresh, unlinked item for this key and value length, its header set
 * (flags and exptime as given, CAS 0) and its key copied; the caller
 * copies the value. NULL when no memory can be had (counted outofmemory).
 * The caller has checked store_item_fits().
 */
static struct item *store_alloc(struct store *store, const char *key, size_t nkey, size_t nbytes,
                                uint32_t flags, mc_time_t exptime)
{
    unsigned id = slab_clsid(store->slab, store_item_total(nkey, nbytes));
    if (id == 0)
        return NULL; /* callers check store_item_fits(); never reached */
    struct item *it = slab_alloc(store->slab, id);
    if (it == NULL) {
        it = store_alloc_slow(store, id);
        if (it == NULL) {
            store->cm[id].outofmemory++;
            return NULL;
        }
    }
    it->hnext = it->prev = it->next = 0;
    it->nkey = (uint8_t)nkey;
    it->iflags = 0;
    it->flush_epoch = 0;
    it->nbytes = (uint32_t)nbytes;
    it->flags = flags;
    it->atime = store->now;
    it->exptime = exptime;
    it->cas = 0;
    memcpy(it->data, key, nkey);
    return it;
}

/* --- Commands ------------------------------------------------------------------------ */

const struct item *store_get(struct store *store, const char *key, size_t nkey, uint64_t hash)
{
    store->m.cmd_get++;
    struct item *it = store_find(store, key, nkey, hash);
    if (it == NULL) {
        store->m.get_misses++;
        return NULL;
    }
    store->cm[it->clsid].get_hits++;
    store_hit(store, it);
    return it;
}

const struct item *store_peek(struct store *store, const char *key, size_t nkey, uint64_t hash)
{
    return store_find(store, key, nkey, hash);
}

/* memcached's do_item_touch(): a bumping lookup, then the new exptime. */
static struct item *store_touch_item(struct store *store, const char *key, size_t nkey,
                                     uint64_t hash, mc_time_t exptime)
{
    store->m.cmd_touch++;
    struct item *it = store_find(store, key, nkey, hash);
    if (it == NULL) {
        store->m.touch_misses++;
        return NULL;
    }
    store->cm[it->clsid].touch_hits++;
    store_hit(store, it);
    it->exptime = exptime;
    return it;
}

const struct item *store_gat(struct store *store, const char *key, size_t nkey, uint64_t hash,
                             mc_time_t exptime)
{
    return store_touch_item(store, key, nkey, hash, exptime);
}

enum mc_status store_touch(struct store *store, const char *key, size_t nkey, uint64_t hash,
                           mc_time_t exptime)
{
    return store_touch_item(store, key, nkey, hash, exptime) != NULL ? MC_OK : MC_NOT_FOUND;
}

/* After a failed allocation for a set, the old value must not survive
 * (process_update_command). */
static void store_drop_key(struct store *store, const char *key, size_t nkey, uint64_t hash)
{
    struct item *old = store_find(store, key, nkey, hash);
    if (old != NULL)
        store_unlink_free(store, old, hash);
}

/* memcached's item_replace(): old out, new in, under the same hash. */
static void store_replace(struct store *store, struct item *old, struct item *it, uint64_t hash)
{
    store_unlink_free(store, old, hash);
    store_link(store, it, hash);
}

/*
 * append/prepend onto `old` (memcached's _store_item_copy_data): a new item
 * with old's flags and exptime and both values, or NULL when it would be too
 * large or memory is short (the command then answers NOT_STORED, as
 * memcached does). `piece` holds the new data.
 */
static struct item *store_concat(struct store *store, enum store_op op, const struct item *old,
                                 const struct item *piece)
{
    size_t nbytes = (size_t)old->nbytes + piece->nbytes;
    if (!store_item_fits(store, old->nkey, nbytes))
        return NULL;
    struct item *it = store_alloc(store, old->data, old->nkey, nbytes, old->flags, old->exptime);
    if (it == NULL)
        return NULL;
    char *value = it->data + it->nkey;
    const struct item *first = op == STORE_APPEND ? old : piece;
    const struct item *second = op == STORE_APPEND ? piece : old;
    memcpy(value, item_value(first), first->nbytes);
    memcpy(value + first->nbytes, item_value(second), second->nbytes);
    return it;
}

/* The CAS a store gives an item it links: the client's (meta E) when CAS
 * is on and one was given, else the next one. */
static void store_link_with_cas(struct store *store, struct item *it, uint64_t hash,
                                uint64_t new_cas)
{
    store_link(store, it, hash);
    if (new_cas != 0 && store->cfg.cas_enabled)
        it->cas = new_cas;
}

/* memcached's do_store_item() CAS test, done up front for every mode. */
enum store_cas_result { CAS_NONE, CAS_MATCH, CAS_STALE, CAS_BADVAL };

static enum store_cas_result store_cas_test(const struct store_mset *m, const struct item *old)
{
    if (m->cas == 0)
        return CAS_NONE;
    if (m->cas == old->cas)
        return CAS_MATCH;
    if (m->invalidate && m->op == STORE_CAS && m->cas < old->cas)
        return CAS_STALE;
    return CAS_BADVAL;
}

/*
 * memcached's process_update_command() / process_mset_command() +
 * do_store_item(): the new item is allocated first (which may evict), then
 * the old one is looked up and the command's rule decides. cmd_set counts
 * in the new item's class whatever the outcome once the item exists. On a
 * failed allocation the old item is unlinked for a set, or for every mode
 * when `drop_any` (meta set).
 */
static enum mc_status store_store(struct store *store, const char *key, size_t nkey, uint64_t hash,
                                  const struct store_mset *m, bool drop_any, uint64_t *cas_out)
{
    enum store_op op = m->op;
    bool drop = drop_any || op == STORE_SET;
    if (cas_out != NULL)
        *cas_out = 0;
    if (!store_item_fits(store, nkey, m->nbytes)) {
        store->m.store_too_large++;
        if (drop)
            store_drop_key(store, key, nkey, hash);
        return MC_E2BIG;
    }
    struct item *it = store_alloc(store, key, nkey, m->nbytes, m->flags, m->exptime);
    if (it == NULL) {
        store->m.store_no_memory++;
        if (drop)
            store_drop_key(store, key, nkey, hash);
        return MC_ENOMEM;
    }
    if (m->nbytes != 0)
        memcpy(it->data + nkey, m->value, m->nbytes);
    if (m->key_binary)
        it->iflags |= ITEM_KEY_BINARY;
    store->cm[it->clsid].cmd_set++;
    store->pin[0] = it;

    enum mc_status status = MC_NOT_STORED;
    struct item *old = store_find(store, key, nkey, hash);
    if (old != NULL) {
        enum store_cas_result cas = store_cas_test(m, old);
        switch (op) {
        case STORE_ADD:
            store_update(store, old); /* refreshes the existing key */
            break;
        case STORE_CAS:
            if (cas == CAS_MATCH || cas == CAS_STALE) {
                store->cm[old->clsid].cas_hits++;
                status = MC_OK;
                if (cas == CAS_STALE) {
                    /* memcached: the value is replaced but stays stale,
                     * with the old TTL and any win token already sent */
                    it->exptime = old->exptime;
                    it->iflags |= (uint8_t)(ITEM_STALE | (old->iflags & ITEM_TOKEN_SENT));
                }
            } else {
                store->cm[old->clsid].cas_badval++;
                status = MC_EXISTS;
            }
            break;
        case STORE_APPEND:
        case STORE_PREPEND: {
            if (cas != CAS_NONE && cas != CAS_MATCH) {
                status = MC_EXISTS;
                break;
            }
            store->pin[1] = old;
            struct item *joined = store_concat(store, op, old, it);
            store->pin[1] = NULL;
            if (joined != NULL) {
                slab_free(store->slab, it);
                it = joined;
                status = MC_OK;
            }
            break;
        }
        case STORE_SET:
        case STORE_REPLACE:
            status = MC_OK;
            break;
        }
        if (status == MC_OK) {
            store_unlink_free(store, old, hash);
            store_link_with_cas(store, it, hash, m->new_cas);
        }
    } else {
        switch (op) {
        case STORE_SET:
        case STORE_ADD:
            store_link_with_cas(store, it, hash, m->new_cas);
            status = MC_OK;
            break;
        case STORE_CAS:
            store->m.cas_misses++;
            status = MC_NOT_FOUND;
            break;
        case STORE_REPLACE:
        case STORE_APPEND:
        case STORE_PREPEND:
            break;
        }
    }
    store->pin[0] = NULL;
    if (status != MC_OK)
        slab_free(store->slab, it);
    else if (cas_out != NULL)
        *cas_out = it->cas;
    return status;
}

enum mc_status store_set(struct store *store, enum store_op op, const char *key, size_t nkey,
                         uint64_t hash, uint32_t flags, mc_time_t exptime, const char *value,
                         size_t nbytes, uint64_t cas, uint64_t *cas_out)
{
    /* Text-protocol commands other than cas carry CAS 0: "no check". */
    struct store_mset m = {
        .op = op, .flags = flags, .exptime = exptime, .value = value, .nbytes = nbytes,
        .cas = op == STORE_CAS ? cas : 0,
    };
    return store_store(store, key, nkey, hash, &m, false, cas_out);
}

enum mc_status store_delete(struct store *store, const char *key, size_t nkey, uint64_t hash)
{
    struct item *it = store_find(store, key, nkey, hash);
    if (it == NULL) {
        store->m.delete_misses++;
        return MC_NOT_FOUND;
    }
    store->cm[it->clsid].delete_hits++;
    store_unlink_free(store, it, hash);
    return MC_OK;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/*
 * memcached's safe_strtoull() on p[0..n), where memcached's value would be
 * followed by "\r\n": strtoull's leading white space and sign, base-10
 * digits, ERANGE on overflow, then white space or the end must follow. A
 * result that is negative as a signed number is refused if the value holds
 * a '-' anywhere (memcached's strchr), so "-1" is refused but "-0" is 0.
 */
static bool parse_u64(const char *p, size_t n, uint64_t *out)
{
    size_t i = 0;
    while (i < n && is_space(p[i]))
        i++;
    bool negative = false;
    if (i < n && (p[i] == '+' || p[i] == '-'))
        negative = p[i++] == '-';
    size_t digits = i;
    uint64_t v = 0;
    bool overflow = false;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = true;
        v = v * 10 + d;
    }
    if (i == digits || overflow)
        return false;
    if (i < n && !is_space(p[i]))
        return false;
    if (negative)
        v = 0 - v;
    if ((int64_t)v < 0 && memchr(p, '-', n) != NULL)
        return false;
    *out = v;
    return true;
}

/*
 * memcached's do_add_delta() on a found item: the value must be numeric
 * (an empty one is not), then a non-zero `cas` must match; the new value
 * is written in place or into a replacing item (*out: the stored item).
 */
static enum mc_status store_delta(struct store *store, struct item *it, uint64_t hash, bool incr,
                                  uint64_t delta, uint64_t cas, uint64_t *result,
                                  struct item **out)
{
    uint64_t value;
    if (it->nbytes == 0)
        return MC_NON_NUMERIC;
    if (cas != 0 && cas != it->cas)
        return MC_EXISTS;
    if (!parse_u64(item_value(it), it->nbytes, &value))
        return MC_NON_NUMERIC;
    if (incr)
        value += delta;
    else
        value = delta > value ? 0 : value - delta;
    if (incr)
        store->cm[it->clsid].incr_hits++;
    else
        store->cm[it->clsid].decr_hits++;

    char digits[20];
    size_t len = metrics_u64toa(value, digits);
    if (len <= it->nbytes) {
        /* In place, padded with spaces to the old length: "10" decr 1 is
         * "9 ", exactly as memcached answers a later get. */
        char *p = it->data + it->nkey;
        memcpy(p, digits, len);
        memset(p + len, ' ', it->nbytes - len);
        it->cas = store_next_cas(store);
        store_update(store, it);
    } else {
        if (!store_item_fits(store, it->nkey, len))
            return MC_ENOMEM; /* only with an absurdly small -I */
        store->pin[0] = it;
        struct item *fresh = store_alloc(store, it->data, it->nkey, len, it->flags, it->exptime);
        store->pin[0] = NULL;
        if (fresh == NULL)
            return MC_ENOMEM;
        memcpy(fresh->data + fresh->nkey, digits, len);
        store_replace(store, it, fresh, hash);
        it = fresh;
    }
    *result = value;
    *out = it;
    return MC_OK;
}

enum mc_status store_arith(struct store *store, const char *key, size_t nkey, uint64_t hash,
                           bool incr, uint64_t delta, uint64_t *result)
{
    struct item *it = store_find(store, key, nkey, hash);
    if (it == NULL) {
        if (incr)
            store->m.incr_misses++;
        else
            store->m.decr_misses++;
        return MC_NOT_FOUND;
    }
    return store_delta(store, it, hash, incr, delta, 0, result, &it);
}

/* --- Meta commands --------------------------------------------------------------------- */

/*
 * A fresh item for a meta miss (mg and ma with N): linked at once, as
 * memcached's vivify links it before the reply is composed. NULL when no
 * memory can be had.
 */
static struct item *store_vivify(struct store *store, const char *key, size_t nkey, uint64_t hash,
                                 const struct store_vivify *viv, const char *value, size_t nbytes)
{
    if (!store_item_fits(store, nkey, nbytes))
        return NULL;
    struct item *it = store_alloc(store, key, nkey, nbytes, 0, viv->exptime);
    if (it == NULL)
        return NULL;
    memcpy(it->data + nkey, value, nbytes);
    if (viv->key_binary)
        it->iflags |= ITEM_KEY_BINARY;
    store_link_with_cas(store, it, hash, viv->cas);
    return it;
}

/* memcached's process_mget_command(): a lookup without a bump (the bump
 * comes later, after the reply showed h and l). */
const struct item *store_meta_get(struct store *store, const char *key, size_t nkey, uint64_t hash,
                                  const struct store_vivify *viv, bool *created)
{
    *created = false;
    struct item *it = store_find(store, key, nkey, hash);
    if (it == NULL && viv != NULL) {
        it = store_vivify(store, key, nkey, hash, viv, "", 0);
        *created = it != NULL;
    }
    return it;
}

void store_meta_get_done(struct store *store, const struct item *cit, bool touched, bool win,
                         bool bump)
{
    struct item *it = (struct item *)cit; /* the engine's own item */
    if (it == NULL) {
        store->m.cmd_get++;
        store->m.get_misses++;
        return;
    }
    if (touched) {
        store->m.cmd_touch++;
        store->cm[it->clsid].touch_hits++;
    } else {
        store->m.cmd_get++;
        store->cm[it->clsid].get_hits++;
    }
    if (win)
        it->iflags |= ITEM_TOKEN_SENT;
    if (bump)
        store_hit(store, it);
}

void store_meta_set_exptime(struct store *store, const struct item *it, mc_time_t exptime)
{
    (void)store;
    ((struct item *)it)->exptime = exptime;
}

enum mc_status store_mset(struct store *store, const char *key, size_t nkey, uint64_t hash,
                          const struct store_mset *m, uint64_t *cas_out)
{
    return store_store(store, key, nkey, hash, m, true, cas_out);
}

/*
 * memcached's process_mdelete_command(), with 1.6.27's x and E: the CAS
 * test first (a mismatch counts as a delete miss), then x swaps in an
 * emptied item, then I marks the item stale (no delete counted) or the
 * item goes (unless x kept it emptied).
 */
enum mc_status store_mdelete(struct store *store, const char *key, size_t nkey, uint64_t hash,
                             const struct store_mdelete *d)
{
    struct item *it = store_find(store, key, nkey, hash);
    if (it == NULL) {
        store->m.delete_misses++;
        return MC_NOT_FOUND;
    }
    if (d->has_cas && d->cas != it->cas) {
        store->m.delete_misses++;
        return MC_EXISTS;
    }
    if (d->remove_value) {
        store->pin[0] = it;
        struct item *empty = store_alloc(store, key, nkey, 0, d->flags, d->exptime);
        store->pin[0] = NULL;
        if (empty == NULL)
            return MC_ENOMEM;
        /* A binary key stays binary, so replies keep encoding it. */
        empty->iflags |= (uint8_t)(it->iflags & ITEM_KEY_BINARY);
        uint64_t cas = d->new_cas != 0 ? d->new_cas : it->cas;
        store_unlink_free(store, it, hash);
        store_link(store, empty, hash);
        if (store->cfg.cas_enabled)
            empty->cas = cas;
        it = empty;
    }
    if (d->invalidate) {
        if (d->has_ttl)
            it->exptime = d->exptime;
        it->iflags = (uint8_t)((it->iflags | ITEM_STALE) & ~ITEM_TOKEN_SENT);
        it->cas = d->new_cas != 0 && store->cfg.cas_enabled ? d->new_cas : store_next_cas(store);
        return MC_OK;
    }
    store->cm[it->clsid].delete_hits++;
    if (!d->remove_value)
        store_unlink_free(store, it, hash);
    return MC_OK;
}

/* memcached's process_marithmetic_command(): do_add_delta() with the
 * request's CAS, or on a miss with N an item created at J. */
enum mc_status store_marith(struct store *store, const char *key, size_t nkey, uint64_t hash,
                            const struct store_marith *a, struct store_marith_result *r)
{
    *r = (struct store_marith_result){0};
    struct item *it = store_find(store, key, nkey, hash);
    if (it == NULL) {
        r->missed = true;
        if (a->viv == NULL) {
            if (a->incr)
                store->m.incr_misses++;
            else
                store->m.decr_misses++;
            return MC_NOT_FOUND;
        }
        char digits[20];
        size_t len = metrics_u64toa(a->initial, digits);
        it = store_vivify(store, key, nkey, hash, a->viv, digits, len);
        if (it == NULL)
            return MC_ENOMEM;
        r->it = it;
        r->value = a->initial;
        r->created = true;
        return MC_OK;
    }
    enum mc_status status = store_delta(store, it, hash, a->incr, a->delta, a->cas, &r->value, &it);
    if (status != MC_OK)
        return status;
    if (a->new_cas != 0 && store->cfg.cas_enabled)
        it->cas = a->new_cas;
    r->it = it;
    return MC_OK;
}

const struct item *store_meta_debug(struct store *store, const char *key, size_t nkey,
                                    uint64_t hash)
{
    store->m.cmd_meta++;
    return store_find(store, key, nkey, hash);
}

/* memcached's process_flush_all_command(), given the realtime() of its
 * delay (`when` = now for an immediate flush). */
void store_flush(struct store *store, mc_time_t when)
{
    if (store->cfg.cas_enabled) {
        store->oldest_live = when - 1;
        store->flush_this_second = store->oldest_live <= store->now;
        if (store->flush_this_second)
            store->flush_epoch++;
    } else {
        /* memcached without CAS: everything of the flush's second goes */
        store->oldest_live = when;
        store->flush_this_second = false;
    }
}

unsigned store_crawl(struct store *store, unsigned budget)
{
    unsigned freed = 0;
    ht_migrate(store->ht, budget);
    uint32_t pages = slab_pages_taken(store->slab);
    if (pages == 0)
        return 0;
    char *first = NULL;
    uint32_t count = 0;
    size_t stride = 0;
    bool have_page = false;
    if (store->crawl_page == 0 && store->crawl_chunk == 0)
        store->m.lru_crawler_starts++;
    for (unsigned examined = 0; examined < budget; examined++) {
        if (store->crawl_page >= pages) {
            /* A lap is done: the next call starts the next one, so one call
             * never examines an item twice. */
            store->crawl_page = 0;
            store->crawl_chunk = 0;
            break;
        }
        if (!have_page) {
            slab_page_chunks(store->slab, store->crawl_page, &first, &count, &stride);
            have_page = true;
        }
        if (store->crawl_chunk >= count) {
            store->crawl_page++;
            store->crawl_chunk = 0;
            have_page = false;
            continue;
        }
        struct item *it = (struct item *)(first + (size_t)store->crawl_chunk++ * stride);
        if ((it->iflags & ITEM_LINKED) == 0)
            continue;
        struct store_class_metrics *cm = &store->cm[it->clsid];
        cm->crawler_items_checked++;
        bool flushed = store_is_flushed(store, it);
        if (flushed || store_is_expired(store, it)) {
            /* memcached's crawler_expired_eval() */
            cm->crawler_reclaimed++;
            if ((it->iflags & ITEM_FETCHED) == 0 && !flushed)
                cm->expired_unfetched++;
            store_unlink_free_rehash(store, it);
            freed++;
        }
    }
    return freed;
}

/* --- Metrics ---------------------------------------------------------------------------- */

unsigned store_each_in_class(const struct store *store, unsigned id,
                             bool (*visit)(void *arg, const struct item *it), void *arg)
{
    unsigned n = 0;
    if (id == 0 || id >= STORE_CLASSES_MAX || id > slab_class_count(store->slab))
        return 0;
    for (uint32_t ref = store->lru_head[id]; ref != 0;) {
        const struct item *it = item_at(store->base, ref);
        n++;
        if (!visit(arg, it))
            break;
        ref = it->next;
    }
    return n;
}

unsigned store_class_count(const struct store *store)
{
    return slab_class_count(store->slab);
}

void store_metrics(const struct store *store, uint64_t *out)
{
    struct store_metrics m = store->m;
    unsigned n = slab_class_count(store->slab);
    for (unsigned c = 1; c <= n; c++) {
        const struct store_class_metrics *cm = &store->cm[c];
        m.cmd_set += cm->cmd_set;
        m.get_hits += cm->get_hits;
        m.delete_hits += cm->delete_hits;
        m.incr_hits += cm->incr_hits;
        m.decr_hits += cm->decr_hits;
        m.cas_hits += cm->cas_hits;
        m.cas_badval += cm->cas_badval;
        m.touch_hits += cm->touch_hits;
        m.expired_unfetched += cm->expired_unfetched;
        m.evicted_unfetched += cm->evicted_unfetched;
        m.evicted_active += cm->evicted_active;
        m.evictions += cm->evicted;
        m.reclaimed += cm->reclaimed;
        m.crawler_reclaimed += cm->crawler_reclaimed;
        m.crawler_items_checked += cm->crawler_items_checked;
    }
    m.hash_power_level = ht_power(store->ht);
    m.hash_bytes = ht_bytes(store->ht);
    m.hash_is_expanding = ht_is_expanding(store->ht);
    m.total_malloced = slab_total_malloced(store->slab);
    memcpy(out, m.v, sizeof(m.v));
}

void store_class_metrics(const struct store *store, unsigned id, uint64_t *out)
{
    struct store_class_metrics m = {0};
    if (id >= 1 && id <= slab_class_count(store->slab)) {
        m = store->cm[id];
        struct slab_class_stats s;
        slab_class_stats(store->slab, id, &s);
        m.chunk_size = s.chunk_size;
        m.chunks_per_page = s.chunks_per_page;
        m.total_pages = s.total_pages;
        m.total_chunks = s.total_chunks;
        m.used_chunks = s.used_chunks;
        m.free_chunks = s.free_chunks;
        m.free_chunks_end = s.free_chunks_end;
        uint32_t tail = store->lru_tail[id];
        if (tail != 0) {
            mc_time_t atime = item_at(store->base, tail)->atime;
            m.age = store->now > atime ? store->now - atime : 0;
        }
        /* memcached's segmented-LRU view of the one LRU (see the table) */
        m.number_cold = m.number;
        m.hits_to_cold = m.get_hits;
        m.direct_reclaims = m.reclaimed + m.evicted;
    }
    memcpy(out, m.v, sizeof(m.v));
}

void store_reset_metrics(struct store *store)
{
    metrics_reset(store->m.v, store_metric_desc, store_metric_count);
    for (unsigned c = 0; c < STORE_CLASSES_MAX; c++)
        metrics_reset(store->cm[c].v, store_class_metric_desc, store_class_metric_count);
}
