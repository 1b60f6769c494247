/*
 * store.c: one shard's storage engine: segments grouped by TTL, a tag hash
 * table, S3-FIFO eviction of whole segments, expiry, flush, the crawler and
 * the engine's metrics (the contract is store.h).
 *
 * Design (after Segcache, Yang et al., NSDI'21; eviction after S3-FIFO,
 * Yang et al., SOSP'23).
 *
 *   Items are appended into segments (seg.h) of one size, chosen so that a
 *   shard has at least STORE_SEG_MIN_COUNT of them (1 MiB down to 32 KiB:
 *   -m 8 with -t 2 gives 4 MiB shards of 128 x 32 KiB). An item larger than
 *   a segment takes a run of adjacent segments of its own, so any item up
 *   to -I fits (store_create requires arena >= -I; io/shard.c sizes the
 *   shard's share so). There are no size classes: a freed segment takes
 *   items of any size, and nothing ever needs moving between classes.
 *
 *   The hash table (segidx.h) holds 8 bytes per item: a tag and the item's
 *   location. Items hold no pointer; the 28-byte header (item.h) is the
 *   whole per-item overhead besides that entry and the 8-byte alignment.
 *
 *   Segments are grouped by TTL: an item goes to the open segment of its
 *   TTL bucket (seg_bucket: powers of two of the TTL), so the items of a
 *   segment expire at about the same time, and a segment remembers the
 *   latest exptime written into it (exp_max). A segment whose exp_max has
 *   passed is freed whole, without reading its items except to unlink them
 *   from the table; that is done eagerly when memory is needed (before any
 *   eviction) and by the crawler.
 *
 *   Eviction is S3-FIFO at segment granularity, made size-aware. New
 *   items enter the SMALL queue's segments; when SMALL holds more than
 *   STORE_SMALL_PERCENT of the segments its oldest segment is evicted, else
 *   MAIN's oldest. Evicting a segment walks its items: dead ones
 *   (unlinked, expired, flushed) are dropped; an item read at least
 *   store_keep_reads() times since it was written or last kept (one read,
 *   plus one per STORE_KEEP_UNIT bytes: an item is worth its hits per byte)
 *   is copied into the open MAIN segment of its TTL bucket (from SMALL with
 *   its count reset, in MAIN with the reads it used subtracted, a CLOCK);
 *   the rest are evicted, except that an item not read enough still
 *   stays with probability 1 - footprint/STORE_AGE_MAIN (in MAIN; its
 *   count reset) or is promoted with probability 1 -
 *   footprint/STORE_AGE_SMALL (from SMALL): a size-aware aging, so a
 *   100-byte item survives about 160 MAIN evictions unread and a 16 KiB
 *   one none, since a cache's worth is hits per byte (memcached gets some
 *   of this from its slab classes: a large item can only evict a large
 *   one). When MAIN is empty (the first fill, a flush) and SMALL is over
 *   its share, SMALL's oldest segments are moved to MAIN whole before
 *   evicting, so the queues have their S3-FIFO shares from the first
 *   eviction on (else SMALL drains only through promotions, and held half
 *   the arena after 800k gets of bench/hitratio.py).
 *   A small item (<= STORE_GHOST_MAX) evicted from
 *   SMALL leaves its key's fingerprint in the ghost; stored again while the
 *   fingerprint is there (a cache-aside miss soon after), and still small,
 *   it enters MAIN directly. One-hit wonders thus leave quickly through
 *   SMALL while items read again survive in MAIN. Copies are bounded: one
 *   free segment is kept in reserve for them, and after
 *   STORE_EVICT_KEEP_MAX victims in one allocation the rest are evicted
 *   without copies, so an allocation never loops. A large item (a run) is
 *   kept in place instead: its run moves to MAIN's tail. Before evicting
 *   anything live, segments all dead are freed and a segment at least half
 *   dead (overwrites, deletes) is compacted in place (store_compact_seg):
 *   under -M that is the only way memory comes back.
 *
 *   Items are immutable (item.h): every update appends a new copy and
 *   points the table entry at it; the old copy becomes dead bytes that leave
 *   with its segment. A segment whose items are all dead is freed at once.
 *
 *   Commands that hold an item across an allocation (the new item of a set
 *   before it is linked, the old item of an append or incr) pin its segment
 *   (store->pin); store_ref_get() pins for zero-copy replies (seg.refs).
 *   Pinned segments are never evicted, expired or freed.
 *
 * Semantics follow memcached 1.6; each function names the memcached
 * function it mirrors. Lookups (store_find, do_item_get) unlink an expired
 * or flushed item on sight, counting get_expired or get_flushed.
 *
 * Flush (memcached's item_is_flushed): flush_all sets oldest_live; an item
 * is flushed once now >= oldest_live if its atime <= oldest_live. An
 * immediate flush sets oldest_live one second back (as memcached with CAS
 * on), so items stored later in the flush's own second survive, and those
 * stored earlier in that second are told apart by the flush epoch copied
 * into each item when linked. Segments remember their newest atime
 * (last_link), so a segment that is all flushed is freed whole.
 *
 * CAS values are cas_offset + k * cas_stride for k = 1, 2, ...; every store
 * with its own offset below the common stride issues values no other store
 * issues, and each store's values grow with time.
 *
 * Invariants, between commands: an item is linked (ITEM_LINKED) iff the
 * table holds its location; a segment's live_items and live_bytes count
 * its linked items and their footprints; curr_items and bytes are their
 * sums over segments (bytes counting item_total, not footprints); every
 * queued segment's write <= its size; nothing is pinned by store->pin.
 *
 * Metrics: STORE_METRIC is the store-wide table (memcached's `stats`
 * names and order, then the engine's own), STORE_CLASS_METRIC the per-class
 * one. The engine has no size classes; each item is counted in the class
 * memcached 1.6.18 would allocate it from (sizeclass.h, issue 12), so a
 * class's items, evictions, reclaims and hits are memcached's for the
 * same workload. chunk_size is memcached's class size, a "chunk" is an
 * item (used_chunks = total_chunks = number, free_chunks 0), and no class
 * owns a "page" (total_pages 0: every segment serves every size;
 * total_malloced counts segments in use); slabs_moved,
 * slab_reassign_evictions_nomem, tailrepairs and lrutail_reflocked are
 * always 0 (there is nothing to move or repair).
 */
#include "store.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "item.h"
#include "seg.h"
#include "segidx.h"
#include "sizeclass.h"

_Static_assert(STORE_KEY_MAX <= UINT8_MAX, "item.nkey is one byte");

#define STORE_SEG_MAX ((size_t)1 << 20)       /* largest automatic segment */
#define STORE_SEG_MIN ((size_t)32 << 10)      /* smallest automatic segment */
#define STORE_SEG_MIN_COUNT 128               /* segments a shard should have */
#define STORE_SMALL_PERCENT 10                /* S3-FIFO's small queue share */
#define STORE_EVICT_KEEP_MAX 16               /* victims per allocation that may keep items */
#define STORE_INDEX_POWER 10                  /* initial table: 1024 buckets, 8192 items */
#define STORE_KEEP_UNIT 8192                  /* one more read needed per this many bytes */
#define STORE_GHOST_MAX 4096                  /* largest item the ghost remembers */
#define STORE_AGE_MAIN 16384                  /* MAIN: an unread item of fp bytes stays w.p. 1 - fp/this */
#define STORE_AGE_SMALL 4096                  /* SMALL: the same draw for promotion to MAIN */
#define STORE_AGE_SHARE 8                     /* the draw leaves at least 1/this of a victim */
#define STORE_RUN_APPEND_MAX ((size_t)1 << (SEGIDX_OFF_BITS + 3)) /* offsets a location holds */

/* Store-wide metrics, in memcached's `stats` order, then the engine's. */
#define STORE_METRIC(ACTION)                                                                  \
    ACTION(cmd_get, COUNTER, "get and gets keys looked up")                                  \
    ACTION(cmd_set, COUNTER, "storage commands that got as far as storing")                  \
    ACTION(cmd_touch, COUNTER, "touch, gat and gats keys looked up")                         \
    ACTION(cmd_meta, COUNTER, "me (meta debug) commands, as memcached counts them")           \
    ACTION(get_hits, COUNTER, "get and gets keys found")                                     \
    ACTION(get_misses, COUNTER, "get and gets keys not found")                               \
    ACTION(get_expired, COUNTER, "lookups that found the key expired")                       \
    ACTION(get_flushed, COUNTER, "lookups that found the key flushed")                       \
    ACTION(delete_misses, COUNTER, "delete of a missing key")                                \
    ACTION(delete_hits, COUNTER, "keys deleted")                                             \
    ACTION(incr_misses, COUNTER, "incr of a missing key")                                    \
    ACTION(incr_hits, COUNTER, "keys incremented")                                           \
    ACTION(decr_misses, COUNTER, "decr of a missing key")                                    \
    ACTION(decr_hits, COUNTER, "keys decremented")                                           \
    ACTION(cas_misses, COUNTER, "cas of a missing key")                                      \
    ACTION(cas_hits, COUNTER, "cas that stored")                                             \
    ACTION(cas_badval, COUNTER, "cas with a stale unique")                                   \
    ACTION(touch_hits, COUNTER, "touch, gat and gats keys found")                            \
    ACTION(touch_misses, COUNTER, "touch, gat and gats keys not found")                      \
    ACTION(store_too_large, COUNTER, "storage commands refused: item above -I")              \
    ACTION(store_no_memory, COUNTER, "storage commands refused: no memory (see -M)")         \
    ACTION(hash_power_level, LEVEL, "memcached's hash power for the index's size: log2 of "   \
                                    "(shards * 7 items * buckets / 1.5), see store_hash_level") \
    ACTION(hash_bytes, GAUGE, "bytes of hash table buckets")                                 \
    ACTION(hash_is_expanding, GAUGE, "1 while the hash table is doubling (never: at once)")  \
    ACTION(slab_reassign_evictions_nomem, COUNTER, "always 0: segments need no page moves")  \
    ACTION(slabs_moved, COUNTER, "always 0: segments take items of any size")                \
    ACTION(lru_crawler_starts, COUNTER, "crawler laps begun over the shard's segments (it runs " \
                                        "continuously, a slice per tick)")                       \
    ACTION(bytes, GAUGE, "bytes of items stored (headers, keys, values)")                    \
    ACTION(curr_items, GAUGE, "items stored")                                                \
    ACTION(total_items, COUNTER, "items ever stored")                                        \
    ACTION(expired_unfetched, COUNTER, "expired items reclaimed never fetched")              \
    ACTION(evicted_unfetched, COUNTER, "evicted items never fetched")                        \
    ACTION(evicted_active, COUNTER, "evicted items hit since their last atime refresh")      \
    ACTION(evictions, COUNTER, "live items evicted to make room")                            \
    ACTION(reclaimed, COUNTER, "expired or flushed items freed to make room")                \
    ACTION(crawler_reclaimed, COUNTER, "expired or flushed items freed by the crawler")      \
    ACTION(crawler_items_checked, COUNTER, "items the crawler examined")                     \
    ACTION(moves_to_cold, COUNTER, "always 0: no HOT/WARM/COLD LRUs (S3-FIFO queues instead)") \
    ACTION(moves_to_warm, COUNTER, "always 0: no HOT/WARM/COLD LRUs")                        \
    ACTION(moves_within_lru, COUNTER, "always 0: no HOT/WARM/COLD LRUs")                     \
    ACTION(lrutail_reflocked, COUNTER, "always 0: items hold no references (issue 12)")      \
    ACTION(seg_size, LEVEL, "bytes per segment")                                             \
    ACTION(seg_segments, GAUGE, "segments in the arena")                                     \
    ACTION(seg_free, GAUGE, "free segments")                                                 \
    ACTION(seg_small, GAUGE, "segments in the S3-FIFO small queue")                          \
    ACTION(seg_dead_bytes, GAUGE, "bytes of segments in use not holding a linked item")      \
    ACTION(seg_evicted, COUNTER, "segments freed by eviction")                               \
    ACTION(seg_expired, COUNTER, "segments freed whole: all expired, flushed or dead")       \
    ACTION(evict_kept, COUNTER, "items eviction copied into MAIN instead of evicting")       \
    ACTION(seg_compacted, COUNTER, "segments compacted in place (dead bytes reused)")        \
    ACTION(ghost_hits, COUNTER, "items stored straight into MAIN: evicted from SMALL lately")\
    ACTION(seg_refs, GAUGE, "segment pins held by pending zero-copy replies")                \
    ACTION(total_malloced, GAUGE, "bytes of segments in use (stats slabs)")

/* Per-class metrics: the `stats slabs` fields, in memcached's order... */
#define STORE_CLASS_SLABS_METRIC(ACTION)                                                      \
    ACTION(chunk_size, LEVEL, "memcached's chunk size for the class (its largest item)")     \
    ACTION(chunks_per_page, LEVEL, "items of chunk_size a 1 MiB page holds")                 \
    ACTION(total_pages, GAUGE, "always 0: segments belong to no class")                      \
    ACTION(total_chunks, GAUGE, "items in the class (a chunk is an item)")                   \
    ACTION(used_chunks, GAUGE, "items in the class (a chunk is an item)")                    \
    ACTION(free_chunks, GAUGE, "always 0: no memory is reserved for a class")                \
    ACTION(free_chunks_end, GAUGE, "always 0")                                               \
    ACTION(get_hits, COUNTER, "get and gets hits")                                           \
    ACTION(cmd_set, COUNTER, "storage commands")                                             \
    ACTION(delete_hits, COUNTER, "keys deleted")                                             \
    ACTION(incr_hits, COUNTER, "keys incremented")                                           \
    ACTION(decr_hits, COUNTER, "keys decremented")                                           \
    ACTION(cas_hits, COUNTER, "cas that stored")                                             \
    ACTION(cas_badval, COUNTER, "cas refused")                                               \
    ACTION(touch_hits, COUNTER, "touch, gat and gats hits")
/* ...then the `stats items` fields, in memcached's order. age and
 * evicted_time are levels: across shards the server reports the largest. */
#define STORE_CLASS_ITEMS_METRIC(ACTION)                                                      \
    ACTION(number, GAUGE, "items stored")                                                    \
    ACTION(number_hot, GAUGE, "always 0: the pseudo-class's items are reported as COLD")     \
    ACTION(number_warm, GAUGE, "always 0: the pseudo-class's items are reported as COLD")    \
    ACTION(number_cold, GAUGE, "items stored, all reported as COLD (= number)")              \
    ACTION(age_hot, LEVEL, "always 0: no HOT LRU")                                           \
    ACTION(age_warm, LEVEL, "always 0: no WARM LRU")                                         \
    ACTION(age, LEVEL, "seconds since the oldest segment in use was opened")                 \
    ACTION(mem_requested, GAUGE, "bytes the items take (footprint + 8-byte table entry)")   \
    ACTION(evicted, COUNTER, "live items evicted")                                           \
    ACTION(evicted_nonzero, COUNTER, "live items with an exptime evicted")                   \
    ACTION(evicted_time, LEVEL, "seconds since the last evicted item's atime")              \
    ACTION(outofmemory, COUNTER, "allocations that failed")                                  \
    ACTION(tailrepairs, COUNTER, "always 0: items hold no references")                       \
    ACTION(reclaimed, COUNTER, "expired or flushed items freed to make room")                \
    ACTION(expired_unfetched, COUNTER, "expired items reclaimed never fetched")              \
    ACTION(evicted_unfetched, COUNTER, "evicted items never fetched")                        \
    ACTION(evicted_active, COUNTER, "evicted items hit since their last atime refresh")      \
    ACTION(crawler_reclaimed, COUNTER, "items freed by the crawler")                         \
    ACTION(crawler_items_checked, COUNTER, "items the crawler examined")                     \
    ACTION(lrutail_reflocked, COUNTER, "always 0, as tailrepairs")                          \
    ACTION(moves_to_cold, COUNTER, "always 0: no HOT/WARM/COLD LRUs")                        \
    ACTION(moves_to_warm, COUNTER, "always 0: no HOT/WARM/COLD LRUs")                        \
    ACTION(moves_within_lru, COUNTER, "always 0: no HOT/WARM/COLD LRUs")                     \
    ACTION(direct_reclaims, COUNTER, "allocations that reclaimed or evicted themselves "      \
                                     "(= reclaimed + evicted: no background maintainer)")    \
    ACTION(hits_to_hot, COUNTER, "always 0: no HOT LRU")                                     \
    ACTION(hits_to_warm, COUNTER, "always 0: no WARM LRU")                                   \
    ACTION(hits_to_cold, COUNTER, "get hits, all reported as COLD (= get_hits)")             \
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
    struct segs segs;
    struct segidx *idx;
    mc_time_t now;

    mc_time_t oldest_live; /* flush_all watermark, 0 = none */
    uint8_t flush_epoch;   /* immediate flushes so far, mod 256 */
    uint32_t flushes;      /* flush_all calls so far (seg.flush_seen) */
    bool flush_this_second; /* the last flush was immediate: items linked in
                             * its second before it (older epoch) are gone */
    uint64_t cas_issued;   /* k of the last CAS issued */

    uint32_t pin[2];       /* segments a command holds across an allocation */
    uint32_t evicting;     /* the segment being evicted (not freed under it) */
    uint32_t reserve;      /* free segments kept for eviction's copies */
    uint32_t small_max;    /* SMALL segments above which SMALL is evicted first */
    uint32_t crawl_seg;    /* crawler position */
    uint64_t refs;         /* store_ref_get() pins held */
    uint32_t *ghost;       /* S3-FIFO's ghost: fingerprints of keys evicted from SMALL */
    uint64_t ghost_mask;
    uint64_t rng;          /* xorshift state for eviction's aging draws */

    struct store_metrics m;
    struct store_class_metrics cm[SIZECLASS_MAX]; /* issue 12: by memcached size class */
    struct sizeclass sizes; /* issue 12: memcached's class table (sizeclass.h) */
    store_evict_fn evict_hook; /* issue 12: watch evictions (store_set_evict_hook) */
    void *evict_arg;
    /* issue 12: the memory limit within the arena (store_set_limit) */
    uint32_t withheld;     /* segments the limit keeps out of use */
    uint64_t held_bytes;   /* memory counted as already allocated */
};

/* Free segments the limit lets items take (the arena's free ones beyond
 * those withheld). Every allocation reads this, never segs.nfree. */
static inline uint32_t store_free(const struct store *store)
{
    return store->segs.nfree > store->withheld ? store->segs.nfree - store->withheld : 0;
}

/* --- Locations ------------------------------------------------------------------ */

static struct item *item_at_loc(const struct store *store, uint64_t loc)
{
    return (struct item *)(seg_data(&store->segs, SEGIDX_LOC_SEG(loc)) + SEGIDX_LOC_OFF(loc));
}

static const struct item *resolve(const void *ctx, uint64_t loc)
{
    return item_at_loc(ctx, loc);
}

/* The segment (a run's first segment) holding `it`. */
static uint32_t seg_of(const struct store *store, const struct item *it)
{
    return seg_head(&store->segs,
                    (uint32_t)(((const char *)it - store->segs.base) / store->segs.seg_size));
}

/* Bytes segment `id` (and its run) can hold. */
static size_t seg_capacity(const struct segs *segs, uint32_t id)
{
    return (size_t)segs->seg[id].run * segs->seg_size;
}

static uint64_t loc_of(const struct store *store, const struct item *it)
{
    uint32_t id = seg_of(store, it);
    return SEGIDX_LOC(id, (size_t)((const char *)it - seg_data(&store->segs, id)));
}

/* --- Ghost ------------------------------------------------------------------ *
 * S3-FIFO's ghost queue, as a direct-mapped table of 32-bit key fingerprints:
 * a key evicted from SMALL unread leaves its fingerprint; if it is stored
 * again while the fingerprint is there (it was asked for again soon after,
 * a cache-aside miss), it goes straight to MAIN. Older fingerprints are
 * overwritten by newer ones in their slot, which is the ghost's FIFO. A
 * false match (1 in 2^32 per slot) only puts an item in MAIN. */

static uint32_t ghost_print(uint64_t hash)
{
    return (uint32_t)(hash >> 32) | 1;
}

static void store_ghost_put(struct store *store, uint64_t hash)
{
    store->ghost[(hash ^ (hash >> 29)) & store->ghost_mask] = ghost_print(hash);
}

/* True (and forgets it) if the key's fingerprint is in the ghost. */
static bool store_ghost_take(struct store *store, uint64_t hash)
{
    uint32_t *slot = &store->ghost[(hash ^ (hash >> 29)) & store->ghost_mask];
    if (*slot != ghost_print(hash))
        return false;
    *slot = 0;
    store->m.ghost_hits++;
    return true;
}

/* --- Creation ---------------------------------------------------------------- */

static size_t store_pick_seg_size(const struct store_cfg *cfg)
{
    if (cfg->seg_size != 0)
        return cfg->seg_size;
    size_t seg = STORE_SEG_MAX;
    while (seg > STORE_SEG_MIN && cfg->arena_size / seg < STORE_SEG_MIN_COUNT)
        seg /= 2;
    return seg;
}

enum mc_status store_create(const struct store_cfg *cfg, struct store **out)
{
    enum mc_status status = MC_EINVAL;
    struct store *store = NULL;
    *out = NULL;
    if (cfg->arena == NULL || (uintptr_t)cfg->arena % 8 != 0 ||
        cfg->item_size_max < ITEM_HEADER_SIZE + 1 + 1 || cfg->arena_size < cfg->item_size_max ||
        (cfg->cas_enabled && cfg->cas_stride == 0))
        goto fail;
    size_t seg_size = store_pick_seg_size(cfg);
    if (seg_size % 8 != 0 || seg_size < 1024 || cfg->arena_size / seg_size * seg_size < cfg->item_size_max)
        goto fail;

    status = MC_ENOMEM;
    store = calloc(1, sizeof(*store));
    if (store == NULL)
        goto fail;
    store->cfg = *cfg;
    store->cfg.seg_size = seg_size;
    sizeclass_init(&store->sizes, cfg->chunk_min, cfg->growth_factor, cfg->slab_chunk_max); /* issue 12 */
    store->pin[0] = store->pin[1] = store->evicting = SEG_NONE;
    status = seg_init(&store->segs, cfg->arena, cfg->arena_size, seg_size);
    if (status != MC_OK)
        goto fail;
    uint32_t n = store->segs.nsegs;
    store->reserve = n >= 3 ? 1 : 0;
    store->rng = 0x9e3779b97f4a7c15ull;
    store->small_max = n * STORE_SMALL_PERCENT / 100;
    if (store->small_max == 0)
        store->small_max = 1;
    /* one ghost slot per 512 bytes of arena: about one per item MAIN holds */
    size_t slots = 1024;
    while (slots < cfg->arena_size / 512 && slots < ((size_t)1 << 26))
        slots *= 2;
    store->ghost = calloc(slots, sizeof(*store->ghost));
    if (store->ghost == NULL)
        goto fail;
    store->ghost_mask = slots - 1;
    status = segidx_create(cfg->index_power != 0 ? cfg->index_power : STORE_INDEX_POWER, resolve, store,
                           &store->idx); /* issue 14: -o hashpower */
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
    seg_deinit(&(*store)->segs);
    segidx_destroy(&(*store)->idx);
    free((*store)->ghost);
    free(*store);
    *store = NULL;
}

void store_set_evict_hook(struct store *store, store_evict_fn fn, void *arg)
{
    store->evict_hook = fn;
    store->evict_arg = arg;
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

size_t store_seg_size(const struct store *store)
{
    return store->segs.seg_size;
}

/*
 * The memory limit within the arena (issue 12: cache_memlimit, and
 * memcached's T_MEMD_INITIAL_MALLOC): `held` bytes count as allocated
 * already, and items may use the segments that fit in `limit - held`,
 * never fewer than the largest item needs. The rest of the arena is
 * withheld: allocation sees only the free segments beyond them, so a
 * lowered limit is reached as expiry, deletion, the crawler and eviction
 * free segments; nothing live is dropped at once.
 */
void store_set_limit(struct store *store, uint64_t limit, uint64_t held)
{
    const struct segs *segs = &store->segs;
    uint64_t usable = limit > held ? (limit - held) / segs->seg_size : 0;
    uint64_t floor = (store->cfg.item_size_max + segs->seg_size - 1) / segs->seg_size;
    if (usable < floor)
        usable = floor;
    if (usable > segs->nsegs)
        usable = segs->nsegs;
    store->withheld = segs->nsegs - (uint32_t)usable;
    store->held_bytes = held;
}

uint32_t store_seg_count(const struct store *store)
{
    return store->segs.nsegs;
}

uint32_t store_seg_gen(const struct store *store, uint32_t seg)
{
    return seg < store->segs.nsegs ? store->segs.seg[seg].gen : 0;
}

/* --- Item state ---------------------------------------------------------------- */

static uint64_t store_next_cas(struct store *store)
{
    if (!store->cfg.cas_enabled)
        return 0;
    store->cas_issued++;
    return store->cfg.cas_offset + store->cas_issued * store->cfg.cas_stride;
}

static bool store_flush_effective(const struct store *store)
{
    return store->oldest_live != 0 && store->oldest_live <= store->now;
}

/* memcached's item_is_flushed(), with the flush epoch for the flush's own
 * second (see the file comment). */
static bool store_is_flushed(const struct store *store, const struct item *it)
{
    if (!store_flush_effective(store))
        return false;
    mc_time_t oldest_live = store->oldest_live;
    return it->atime <= oldest_live ||
           (store->flush_this_second && it->atime == oldest_live + 1 &&
            it->flush_epoch != store->flush_epoch);
}

static bool store_is_expired(const struct store *store, const struct item *it)
{
    return it->exptime != 0 && it->exptime <= store->now;
}

static bool store_seg_pinned(const struct store *store, uint32_t id)
{
    return id == store->pin[0] || id == store->pin[1] || id == store->evicting ||
           store->segs.seg[id].refs != 0;
}

/* Records an exptime written into segment `id` (at append or by touch). */
static void seg_note_exptime(struct store *store, uint32_t id, mc_time_t exptime)
{
    struct seg *s = &store->segs.seg[id];
    if (exptime == 0) {
        s->exp_max = SEG_NEVER;
        return;
    }
    if (s->exp_max != SEG_NEVER && exptime > s->exp_max)
        s->exp_max = exptime;
    if (exptime < s->exp_min)
        s->exp_min = exptime;
}

static void store_set_exptime(struct store *store, struct item *it, mc_time_t exptime)
{
    it->exptime = exptime;
    seg_note_exptime(store, seg_of(store, it), exptime);
}

/* memcached's do_item_update(): refresh atime at most once per interval.
 * Returns true if it did. */
static bool store_update(struct store *store, struct item *it)
{
    if ((uint64_t)it->atime + MC_ITEM_UPDATE_INTERVAL >= store->now)
        return false;
    it->atime = store->now;
    it->iflags &= (uint8_t)~ITEM_ACTIVE;
    struct seg *s = &store->segs.seg[seg_of(store, it)];
    if (s->last_link < store->now)
        s->last_link = store->now;
    return true;
}

/* memcached's do_item_bump() for a read (get, gat, touch): mark fetched,
 * count the read for eviction (saturating) and maybe refresh atime. Bits
 * are tested first so that a hot item is not written on every read. */
static void store_hit(struct store *store, struct item *it)
{
    if (it->freq < ITEM_FREQ_MAX)
        it->freq++;
    if (store_update(store, it)) {
        it->iflags |= ITEM_FETCHED;
        return;
    }
    if ((it->iflags & (ITEM_FETCHED | ITEM_ACTIVE)) != (ITEM_FETCHED | ITEM_ACTIVE))
        it->iflags |= ITEM_FETCHED | ITEM_ACTIVE;
}

/* --- Link and unlink ------------------------------------------------------------- */

/* issue 12: the per-class counters of the memcached size class an item of
 * this key, value and flags counts in (sizeclass.h). */
static struct store_class_metrics *store_cm_size(struct store *store, size_t nkey, size_t nbytes,
                                                 uint32_t flags)
{
    return &store->cm[sizeclass_of(&store->sizes,
                                   sizeclass_ntotal(nkey, nbytes, flags, store->cfg.cas_enabled))];
}

static struct store_class_metrics *store_cm(struct store *store, const struct item *it)
{
    return store_cm_size(store, it->nkey, it->nbytes, it->flags);
}

unsigned store_item_class(const struct store *store, const struct item *it)
{
    return sizeclass_of(&store->sizes,
                        sizeclass_ntotal(it->nkey, it->nbytes, it->flags, store->cfg.cas_enabled));
}

/* issue 12: memory an item takes here, reported as its class's
 * mem_requested: its footprint in a segment and its table entry. */
static uint64_t store_item_mem(const struct item *it)
{
    return item_footprint(item_total(it)) + sizeof(uint64_t);
}

/* Counts a new live item in its segment and the store. */
static void store_count_in(struct store *store, struct item *it)
{
    struct seg *s = &store->segs.seg[seg_of(store, it)];
    s->live_items++;
    s->live_bytes += item_footprint(item_total(it));
    if (s->last_link < it->atime)
        s->last_link = it->atime;
    seg_note_exptime(store, seg_of(store, it), it->exptime);
    store->m.curr_items++;
    store->m.bytes += item_total(it);
    struct store_class_metrics *cm = store_cm(store, it); /* issue 12 */
    cm->number++;
    cm->mem_requested += store_item_mem(it);
}

/* Frees a queued segment whose items are all unlinked. */
static void store_seg_free(struct store *store, uint32_t id)
{
    seg_release(&store->segs, id);
}

/* A segment whose items are all gone is freed at once, unless pinned (an
 * open one too: a command's unlinked new item pins its segment). */
static void store_seg_maybe_free(struct store *store, uint32_t id)
{
    struct seg *s = &store->segs.seg[id];
    if (s->live_items == 0 && (s->state == SEG_CLOSED || s->state == SEG_OPEN) &&
        !store_seg_pinned(store, id)) {
        store->m.seg_expired++;
        store_seg_free(store, id);
    }
}

/* Uncounts an item that leaves the table (unlinked or replaced). */
static void store_count_out(struct store *store, struct item *it)
{
    uint32_t id = seg_of(store, it);
    struct seg *s = &store->segs.seg[id];
    it->iflags &= (uint8_t)~ITEM_LINKED;
    s->live_items--;
    s->live_bytes -= item_footprint(item_total(it));
    store->m.curr_items--;
    store->m.bytes -= item_total(it);
    struct store_class_metrics *cm = store_cm(store, it); /* issue 12 */
    cm->number--;
    cm->mem_requested -= store_item_mem(it);
    store_seg_maybe_free(store, id);
}

/* memcached's do_item_link(): into the table with a new CAS and atime.
 * False (nothing linked) only if the table could not grow. */
static bool store_link(struct store *store, struct item *it, uint64_t hash)
{
    it->iflags = (uint8_t)((it->iflags & ~ITEM_ACTIVE) | ITEM_LINKED);
    it->atime = store->now;
    it->flush_epoch = store->flush_epoch;
    it->cas = store_next_cas(store);
    if (segidx_insert(store->idx, hash, loc_of(store, it)) != MC_OK) {
        it->iflags &= (uint8_t)~ITEM_LINKED;
        return false;
    }
    store_count_in(store, it);
    store->m.total_items++;
    return true;
}

/* memcached's do_item_unlink(): out of the table; its bytes stay dead in
 * its segment until the segment goes. */
static void store_unlink(struct store *store, struct item *it, uint64_t hash)
{
    segidx_remove(store->idx, hash, loc_of(store, it));
    store_count_out(store, it);
}

/* memcached's item_replace(): `it` takes old's place in the table under the
 * same key (no insert, so it cannot fail), with a new CAS and atime. */
static void store_replace(struct store *store, struct item *old, struct item *it, uint64_t hash)
{
    it->iflags = (uint8_t)((it->iflags & ~ITEM_ACTIVE) | ITEM_LINKED);
    it->atime = store->now;
    it->flush_epoch = store->flush_epoch;
    it->cas = store_next_cas(store);
    segidx_update(store->idx, hash, loc_of(store, old), loc_of(store, it));
    store_count_in(store, it);
    store->m.total_items++;
    store_count_out(store, old);
}

/* memcached's do_item_get() without the bump: the live item or NULL;
 * flushed and expired items are unlinked on sight. */
static struct item *store_find(struct store *store, const char *key, size_t nkey, uint64_t hash)
{
    uint64_t loc;
    if (!segidx_find(store->idx, key, nkey, hash, &loc))
        return NULL;
    struct item *it = item_at_loc(store, loc);
    if (store_is_flushed(store, it)) {
        store_unlink(store, it, hash);
        store->m.get_flushed++;
        return NULL;
    }
    if (store_is_expired(store, it)) {
        store_unlink(store, it, hash);
        store->m.get_expired++;
        return NULL;
    }
    return it;
}

/* --- Reclaim and eviction ------------------------------------------------------- */

static void store_evict_item(struct store *store, struct item *it, uint64_t hash)
{
    struct store_class_metrics *cm = store_cm(store, it);
    cm->evicted++;
    cm->evicted_time = store->now > it->atime ? store->now - it->atime : 0;
    if (it->exptime != 0)
        cm->evicted_nonzero++;
    if ((it->iflags & ITEM_FETCHED) == 0)
        cm->evicted_unfetched++;
    if ((it->iflags & ITEM_ACTIVE) != 0)
        cm->evicted_active++;
    if (store->evict_hook != NULL) /* issue 12 */
        store->evict_hook(store->evict_arg, it, store_item_class(store, it), store->now);
    store_unlink(store, it, hash);
}

/* A dead (expired or flushed) item freed to make room or by the crawler. */
static void store_reap_item(struct store *store, struct item *it, uint64_t hash, bool crawler)
{
    if (crawler)
        store_cm(store, it)->crawler_reclaimed++;
    else
        store_cm(store, it)->reclaimed++;
    if ((it->iflags & ITEM_FETCHED) == 0 && !store_is_flushed(store, it))
        store_cm(store, it)->expired_unfetched++;
    store_unlink(store, it, hash);
}

static bool store_item_dead(const struct store *store, const struct item *it)
{
    return store_is_expired(store, it) || store_is_flushed(store, it);
}

/* True when every item a segment may hold is expired or flushed. */
static bool store_seg_all_dead(const struct store *store, const struct seg *s)
{
    if (s->live_items == 0)
        return true;
    if (s->exp_max != SEG_NEVER && s->exp_max <= store->now)
        return true;
    return store_flush_effective(store) && s->last_link <= store->oldest_live;
}

/* Calls fn on each linked item of queued segment `id`, in append order. */
#define SEG_FOR_EACH_LINKED(store, id, it, body)                                              \
    do {                                                                                      \
        struct seg *s_ = &(store)->segs.seg[id];                                              \
        char *p_ = seg_data(&(store)->segs, id);                                              \
        for (size_t off_ = 0; off_ < s_->write;) {                                            \
            struct item *it = (struct item *)(p_ + off_);                                     \
            off_ += item_footprint(item_total(it));                                           \
            if ((it->iflags & ITEM_LINKED) != 0) {                                            \
                body;                                                                         \
            }                                                                                 \
        }                                                                                     \
    } while (0)

/* Frees a segment all of whose items are dead, unlinking them (counted as
 * reclaimed, or crawler_reclaimed). Returns the items freed. */
static unsigned store_seg_reap(struct store *store, uint32_t id, bool crawler)
{
    unsigned freed = 0;
    store->evicting = id;
    SEG_FOR_EACH_LINKED(store, id, it, {
        if (crawler)
            store_cm(store, it)->crawler_items_checked++;
        store_reap_item(store, it, hash_key(it->data, it->nkey), crawler);
        freed++;
    });
    store->evicting = SEG_NONE;
    store->m.seg_expired++;
    store_seg_free(store, id);
    return freed;
}

/* Frees every unpinned segment whose items are all dead (expired segments
 * are reclaimed whole, before anything live is evicted). Returns the
 * segments freed. */
static unsigned store_reap_dead_segments(struct store *store)
{
    unsigned freed = 0;
    for (uint32_t id = 0; id < store->segs.nsegs; id++) {
        struct seg *s = &store->segs.seg[id];
        if ((s->state != SEG_OPEN && s->state != SEG_CLOSED) || store_seg_pinned(store, id) ||
            !store_seg_all_dead(store, s))
            continue;
        store_seg_reap(store, id, false);
        freed++;
    }
    return freed;
}

/* Room for `fp` bytes in the open segment of (q, bucket), taking a free
 * segment (down to `keep_free` left) if the open one is full. No eviction. */
static char *store_append_room(struct store *store, size_t fp, unsigned q, unsigned bucket,
                               uint32_t keep_free)
{
    struct segs *segs = &store->segs;
    uint32_t id = segs->open[q][bucket];
    if (id == SEG_NONE || segs->seg[id].write + fp > seg_capacity(segs, id)) {
        if (store_free(store) <= keep_free || fp > segs->seg_size)
            return NULL;
        id = seg_any_free(segs);
        seg_take(segs, id, 1, q, bucket, true, store->now);
    }
    struct seg *s = &segs->seg[id];
    char *p = seg_data(segs, id) + s->write;
    s->write += (uint32_t)fp;
    return p;
}

/*
 * Reads an item needs, since it was written or last kept, to be kept by
 * eviction: more for larger items, because an item's worth to a cache is
 * its hits per byte. Keeping a 32 KiB item read once costs the room of
 * three hundred 100-byte items. The unit (8 KiB) and the ghost's limit
 * (4 KiB) are what bench/hitratio.py measured best among 1, 2, 4 and 8 KiB
 * units and 1, 4 and 8 KiB limits; a size-blind ghost admitted the large
 * values of a size shift into MAIN and lost 4 points there.
 */
static unsigned store_keep_reads(size_t fp)
{
    size_t need = fp / STORE_KEEP_UNIT + 1;
    return need < ITEM_FREQ_MAX ? (unsigned)need : ITEM_FREQ_MAX;
}

/*
 * The size-aware aging draw (see the file comment): true with probability
 * 1 - fp/unit, so that an item not read enough to be kept still stays,
 * for unit/fp evictions on average, when it is small: a 100-byte item
 * costs the room of one read of a 16 KiB one, and a cache is judged by
 * hits per byte. A xorshift generator per store: deterministic, no
 * syscall (core/ is pure).
 */
static bool store_age_keep(struct store *store, size_t fp, size_t unit)
{
    if (fp >= unit)
        return false;
    uint64_t x = store->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    store->rng = x;
    return (x >> 40) % unit >= fp;
}

/*
 * Evicts queued segment `id` (S3-FIFO, see the file comment). With `keep`,
 * items read since written are copied into MAIN (or a run moves to MAIN's
 * tail) while room lasts; dead items are reaped, the rest evicted.
 * Returns true if the segment was freed.
 */
static bool store_evict_seg(struct store *store, uint32_t id, bool keep)
{
    struct segs *segs = &store->segs;
    struct seg *s = &segs->seg[id];
    seg_close(segs, id);
    if (s->run > 1 && keep) {
        struct item *it = (struct item *)seg_data(segs, id);
        if ((it->iflags & ITEM_LINKED) != 0 && !store_item_dead(store, it) && it->freq > 0) {
            it->freq = s->queue == SEG_SMALL ? 0 : (uint8_t)(it->freq - 1);
            seg_requeue(segs, id, SEG_MAIN);
            store->m.evict_kept++;
            return false;
        }
    }
    bool from_small = s->queue == SEG_SMALL;
    /* the aging draw keeps at most this much of a victim, so that each
     * eviction frees room even when every item is small and unread */
    size_t aged = 0, age_max = segs->seg_size - segs->seg_size / STORE_AGE_SHARE;
    store->evicting = id;
    SEG_FOR_EACH_LINKED(store, id, it, {
        uint64_t hash = hash_key(it->data, it->nkey);
        if (store_item_dead(store, it)) {
            store_reap_item(store, it, hash, false);
            continue;
        }
        unsigned need = store_keep_reads(item_footprint(item_total(it)));
        bool age = keep && it->freq < need && aged + item_footprint(item_total(it)) <= age_max &&
                   store_age_keep(store, item_footprint(item_total(it)),
                                  from_small ? STORE_AGE_SMALL : STORE_AGE_MAIN);
        if (keep && (it->freq >= need || age) && item_footprint(item_total(it)) <= segs->seg_size) {
            size_t fp = item_footprint(item_total(it));
            char *p = store_append_room(store, fp, SEG_MAIN, seg_bucket(it->exptime, store->now), 0);
            if (p != NULL) {
                struct item *copy = (struct item *)p;
                memcpy(copy, it, item_total(it));
                copy->freq = from_small || age ? 0 : (uint8_t)(it->freq - need);
                if (age)
                    aged += fp;
                segidx_update(store->idx, hash, loc_of(store, it), loc_of(store, copy));
                store_count_in(store, copy);
                store_count_out(store, it);
                store->m.evict_kept++;
                continue;
            }
        }
        if (from_small && item_footprint(item_total(it)) <= STORE_GHOST_MAX)
            store_ghost_put(store, hash); /* larger ones earn MAIN by reads only */
        store_evict_item(store, it, hash);
    });
    store->evicting = SEG_NONE;
    store->m.seg_evicted++;
    store_seg_free(store, id);
    return true;
}

/* The next eviction victim: SMALL's oldest unpinned segment while SMALL
 * is over its share (or MAIN has none), else MAIN's; SEG_NONE if every
 * queued segment is pinned. */
static uint32_t store_pick_victim(const struct store *store)
{
    const struct segs *segs = &store->segs;
    unsigned first = segs->qsegs[SEG_SMALL] > store->small_max || segs->qhead[SEG_MAIN] == SEG_NONE
                         ? SEG_SMALL
                         : SEG_MAIN;
    for (unsigned k = 0; k < SEG_QUEUES; k++) {
        unsigned q = k == 0 ? first : (unsigned)(SEG_QUEUES - 1 - first);
        for (uint32_t id = segs->qhead[q]; id != SEG_NONE; id = segs->seg[id].next) {
            if (!store_seg_pinned(store, id))
                return id;
        }
    }
    return SEG_NONE;
}

/* Makes `want` segments free beyond those kept (dead segments first, then
 * eviction). False if it cannot: -M, or everything pinned. */
static bool store_make_free(struct store *store, uint32_t want)
{
    if (store_free(store) >= want)
        return true;
    if (store_reap_dead_segments(store) > 0 && store_free(store) >= want)
        return true;
    if (!store->cfg.evictions)
        return false;
    struct segs *segs = &store->segs;
    /* MAIN empty (the first fill, or after a flush): everything is in
     * SMALL, which would take the whole arena's turnover to drain through
     * promotions; its oldest segments become MAIN at once instead (their
     * items keep their read counts), so SMALL is its 10% from the first
     * eviction on. */
    if (segs->qhead[SEG_MAIN] == SEG_NONE) {
        while (segs->qsegs[SEG_SMALL] > store->small_max && segs->qhead[SEG_SMALL] != SEG_NONE)
            seg_requeue(segs, segs->qhead[SEG_SMALL], SEG_MAIN);
    }
    for (unsigned round = 0; store_free(store) < want; round++) {
        uint32_t victim = store_pick_victim(store);
        if (victim == SEG_NONE)
            return false;
        store_evict_seg(store, victim, round < STORE_EVICT_KEEP_MAX);
    }
    return true;
}

/* The first of `run` adjacent free segments, evicting the cheapest window
 * (fewest segments in use, none pinned) if there is none. */
static uint32_t store_make_run(struct store *store, uint32_t run)
{
    struct segs *segs = &store->segs;
    /* within a lowered limit first (issue 12): a run may not take withheld
     * room; without one, eviction below picks the cheapest window as always */
    if (store->withheld > 0 && store_free(store) < run && !store_make_free(store, run))
        return SEG_NONE;
    uint32_t first = seg_find_run(segs, run);
    if (first != SEG_NONE)
        return first;
    if (store_reap_dead_segments(store) > 0 && (first = seg_find_run(segs, run)) != SEG_NONE)
        return first;
    if (!store->cfg.evictions || run > segs->nsegs)
        return SEG_NONE;
    /* the window whose newest segment is oldest (FIFO among windows),
     * then the one with fewest segments in use */
    uint32_t best = SEG_NONE, best_used = UINT32_MAX;
    uint64_t best_newest = UINT64_MAX;
    for (uint32_t start = 0; start + run <= segs->nsegs; start++) {
        uint32_t used = 0;
        uint64_t newest = 0;
        bool pinned = false;
        for (uint32_t i = start; i < start + run && !pinned; i++) {
            if (segs->seg[i].state == SEG_FREE)
                continue;
            uint32_t head = seg_head(segs, i);
            used++;
            pinned = store_seg_pinned(store, head);
            if (segs->seg[head].seq > newest)
                newest = segs->seg[head].seq;
        }
        if (!pinned && (newest < best_newest || (newest == best_newest && used < best_used))) {
            best = start;
            best_used = used;
            best_newest = newest;
        }
    }
    if (best == SEG_NONE)
        return SEG_NONE;
    for (uint32_t i = best; i < best + run; i++) {
        if (segs->seg[i].state != SEG_FREE)
            store_evict_seg(store, seg_head(segs, i), false);
    }
    return seg_find_run(segs, run);
}

/*
 * Compacts a segment in place: its linked items slide to its start (their
 * table entries follow), its dead bytes become room at its end, and it
 * becomes the open segment of (q, bucket) at the tail of queue q. No item
 * is lost, so this is tried before eviction, and it is what lets -M reuse
 * the memory of overwritten or deleted items.
 */
static void store_compact_seg(struct store *store, uint32_t id, unsigned q, unsigned bucket)
{
    struct segs *segs = &store->segs;
    struct seg *s = &segs->seg[id];
    char *p = seg_data(segs, id);
    size_t dst = 0;
    for (size_t off = 0; off < s->write;) {
        struct item *it = (struct item *)(p + off);
        size_t fp = item_footprint(item_total(it));
        if ((it->iflags & ITEM_LINKED) != 0) {
            if (dst != off) {
                uint64_t hash = hash_key(it->data, it->nkey);
                segidx_update(store->idx, hash, SEGIDX_LOC(id, off), SEGIDX_LOC(id, dst));
                memmove(p + dst, it, item_total(it));
            }
            dst += fp;
        }
        off += fp;
    }
    s->write = (uint32_t)dst;
    seg_close(segs, id);
    seg_requeue(segs, id, q);
    if (segs->open[q][bucket] != SEG_NONE)
        seg_close(segs, segs->open[q][bucket]);
    s->state = SEG_OPEN;
    s->bucket = (uint8_t)bucket;
    segs->open[q][bucket] = id;
    store->m.seg_compacted++;
}

/* The closed, unpinned plain segment with the fewest live bytes, if those
 * are at most `max_live`; else SEG_NONE. */
static uint32_t store_compact_candidate(const struct store *store, uint64_t max_live)
{
    const struct segs *segs = &store->segs;
    uint32_t best = SEG_NONE;
    uint64_t best_live = max_live + 1;
    for (uint32_t id = 0; id < segs->nsegs; id++) {
        const struct seg *s = &segs->seg[id];
        if (s->state != SEG_CLOSED || s->run != 1 || s->live_bytes >= best_live ||
            store_seg_pinned(store, id))
            continue;
        best = id;
        best_live = s->live_bytes;
    }
    return best;
}

/* Room for an item of footprint `fp` entering queue `q`, TTL bucket `b`. */
static char *store_reserve(struct store *store, size_t fp, unsigned q, unsigned bucket)
{
    struct segs *segs = &store->segs;
    if (fp <= segs->seg_size) {
        uint32_t id = segs->open[q][bucket];
        if (id != SEG_NONE && segs->seg[id].write + fp <= seg_capacity(segs, id))
            return store_append_room(store, fp, q, bucket, 0);
        if (store_free(store) > store->reserve)
            return store_append_room(store, fp, q, bucket, 0);
        if (store_reap_dead_segments(store) > 0 && store_free(store) > 0)
            return store_append_room(store, fp, q, bucket, 0);
        /* a segment at least half dead is compacted rather than live
         * items evicted; under -M any segment with room enough */
        uint64_t max_live = store->cfg.evictions ? segs->seg_size / 2 : segs->seg_size - fp;
        uint32_t c = store_compact_candidate(store, max_live);
        if (c != SEG_NONE) {
            store_compact_seg(store, c, q, bucket);
            return store_append_room(store, fp, q, bucket, 0);
        }
        if (!store_make_free(store, store->reserve + 1) && !store_make_free(store, 1))
            return NULL;
        return store_append_room(store, fp, q, bucket, 0);
    }
    uint32_t run = (uint32_t)((fp + segs->seg_size - 1) / segs->seg_size);
    uint32_t first = store_make_run(store, run);
    if (first == SEG_NONE)
        return NULL;
    /* The run's last segment has room after the item: the run takes
     * appends (as the open segment of its bucket) when that room is larger
     * than the current open segment's and offsets stay addressable. */
    size_t room = (size_t)run * segs->seg_size - fp;
    uint32_t cur = segs->open[q][bucket];
    size_t cur_room = cur == SEG_NONE ? 0 : seg_capacity(segs, cur) - segs->seg[cur].write;
    bool open = room > cur_room && (size_t)run * segs->seg_size <= STORE_RUN_APPEND_MAX;
    seg_take(segs, first, run, q, bucket, open, store->now);
    segs->seg[first].write = (uint32_t)fp;
    return seg_data(segs, first);
}

/* Gives back the room of an item that was never linked, if it is the last
 * one appended to its segment (or owns its run); else its bytes stay dead. */
static void store_unreserve(struct store *store, struct item *it)
{
    uint32_t id = seg_of(store, it);
    struct seg *s = &store->segs.seg[id];
    size_t fp = item_footprint(item_total(it));
    size_t off = (size_t)((char *)it - seg_data(&store->segs, id));
    if (off + fp == s->write)
        s->write = (uint32_t)off;
    if (s->write == 0 && s->run > 1 && s->live_items == 0 && s->refs == 0)
        store_seg_free(store, id); /* a run exists for its first item */
}

/*
 * A fresh, unlinked item for this key and value length, its header set
 * (flags and exptime as given, CAS 0) and its key copied; the caller
 * copies the value. NULL when no memory can be had (counted outofmemory).
 * The caller has checked store_item_fits().
 */
static struct item *store_alloc(struct store *store, const char *key, size_t nkey, uint64_t hash,
                                size_t nbytes, uint32_t flags, mc_time_t exptime)
{
    size_t fp = item_footprint(store_item_total(nkey, nbytes));
    unsigned q = fp <= STORE_GHOST_MAX && store_ghost_take(store, hash) ? SEG_MAIN : SEG_SMALL;
    struct item *it = (struct item *)store_reserve(store, fp, q, seg_bucket(exptime, store->now));
    if (it == NULL) {
        store_cm_size(store, nkey, nbytes, flags)->outofmemory++;
        return NULL;
    }
    it->cas = 0;
    it->exptime = exptime;
    it->atime = store->now;
    it->nbytes = (uint32_t)nbytes;
    it->flags = flags;
    it->nkey = (uint8_t)nkey;
    it->iflags = 0;
    it->freq = 0;
    it->flush_epoch = 0;
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
    store_cm(store, it)->get_hits++;
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
    store_cm(store, it)->touch_hits++;
    store_hit(store, it);
    store_set_exptime(store, it, exptime);
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
        store_unlink(store, old, hash);
}

/*
 * append/prepend onto `old` (memcached's _store_item_copy_data): a new item
 * with old's flags and exptime and both values, or NULL when it would be too
 * large or memory is short (the command then answers NOT_STORED, as
 * memcached does). `piece` holds the new data.
 */
static struct item *store_concat(struct store *store, enum store_op op, const struct item *old,
                                 const struct item *piece, uint64_t hash)
{
    size_t nbytes = (size_t)old->nbytes + piece->nbytes;
    if (!store_item_fits(store, old->nkey, nbytes))
        return NULL;
    struct item *it = store_alloc(store, old->data, old->nkey, hash, nbytes, old->flags, old->exptime);
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
static void store_apply_cas(struct store *store, struct item *it, uint64_t new_cas)
{
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

static void store_unpin(struct store *store)
{
    store->pin[0] = store->pin[1] = SEG_NONE;
}

/*
 * memcached's process_update_command() / process_mset_command() +
 * do_store_item(): the new item is allocated first (which may evict), then
 * the old one is looked up and the command's rule decides. cmd_set counts
 * whatever the outcome once the item exists. On a failed allocation the
 * old item is unlinked for a set, or for every mode when `drop_any` (meta
 * set).
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
    struct item *it = store_alloc(store, key, nkey, hash, m->nbytes, m->flags, m->exptime);
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
    store_cm(store, it)->cmd_set++;
    store->pin[0] = seg_of(store, it);

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
                store_cm(store, it)->cas_hits++;
                status = MC_OK;
                if (cas == CAS_STALE) {
                    /* memcached: the value is replaced but stays stale,
                     * with the old TTL and any win token already sent */
                    it->exptime = old->exptime;
                    it->iflags |= (uint8_t)(ITEM_STALE | (old->iflags & ITEM_TOKEN_SENT));
                }
            } else {
                store_cm(store, old)->cas_badval++;
                status = MC_EXISTS;
            }
            break;
        case STORE_APPEND:
        case STORE_PREPEND: {
            if (cas != CAS_NONE && cas != CAS_MATCH) {
                status = MC_EXISTS;
                break;
            }
            store->pin[1] = seg_of(store, old);
            struct item *joined = store_concat(store, op, old, it, hash);
            if (joined != NULL) {
                store_unreserve(store, it);
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
            store_replace(store, old, it, hash);
            store_apply_cas(store, it, m->new_cas);
        }
    } else {
        switch (op) {
        case STORE_SET:
        case STORE_ADD:
            if (store_link(store, it, hash)) {
                store_apply_cas(store, it, m->new_cas);
                status = MC_OK;
            } else {
                status = MC_ENOMEM;
            }
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
    store_unpin(store);
    if (status != MC_OK)
        store_unreserve(store, it);
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
    store_cm(store, it)->delete_hits++;
    store_unlink(store, it, hash);
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
 * goes into a new copy (items are immutable), padded with spaces to the old
 * length when it is shorter, exactly as memcached's in-place write shows
 * ("10" decr 1 is "9 "). *out: the stored item.
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
        store_cm(store, it)->incr_hits++;
    else
        store_cm(store, it)->decr_hits++;

    char digits[20];
    size_t len = metrics_u64toa(value, digits);
    size_t nbytes = len <= it->nbytes ? it->nbytes : len;
    if (!store_item_fits(store, it->nkey, nbytes))
        return MC_ENOMEM; /* only with an absurdly small -I */
    store->pin[0] = seg_of(store, it);
    struct item *fresh = store_alloc(store, it->data, it->nkey, hash, nbytes, it->flags, it->exptime);
    store_unpin(store);
    if (fresh == NULL)
        return MC_ENOMEM;
    char *p = fresh->data + fresh->nkey;
    memcpy(p, digits, len);
    memset(p + len, ' ', nbytes - len);
    if (len <= it->nbytes) {
        /* memcached writes in place: the item keeps its meta state and atime */
        fresh->iflags = (uint8_t)(it->iflags & ~ITEM_LINKED);
        fresh->freq = it->freq;
    }
    mc_time_t atime = it->atime;
    bool in_place = len <= it->nbytes;
    store_replace(store, it, fresh, hash);
    if (in_place)
        fresh->atime = atime; /* then maybe refreshed, as memcached's do_item_update */
    if (in_place)
        store_update(store, fresh);
    *result = value;
    *out = fresh;
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
    struct item *it = store_alloc(store, key, nkey, hash, nbytes, 0, viv->exptime);
    if (it == NULL)
        return NULL;
    memcpy(it->data + nkey, value, nbytes);
    if (viv->key_binary)
        it->iflags |= ITEM_KEY_BINARY;
    if (!store_link(store, it, hash)) {
        store_unreserve(store, it);
        return NULL;
    }
    store_apply_cas(store, it, viv->cas);
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
        store_cm(store, it)->touch_hits++;
    } else {
        store->m.cmd_get++;
        store_cm(store, it)->get_hits++;
    }
    if (win)
        it->iflags |= ITEM_TOKEN_SENT;
    if (bump)
        store_hit(store, it);
}

void store_meta_set_exptime(struct store *store, const struct item *it, mc_time_t exptime)
{
    store_set_exptime(store, (struct item *)it, exptime);
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
        store->pin[0] = seg_of(store, it);
        struct item *empty = store_alloc(store, key, nkey, hash, 0, d->flags, d->exptime);
        store_unpin(store);
        if (empty == NULL)
            return MC_ENOMEM;
        /* A binary key stays binary, so replies keep encoding it. */
        empty->iflags |= (uint8_t)(it->iflags & ITEM_KEY_BINARY);
        uint64_t cas = d->new_cas != 0 ? d->new_cas : it->cas;
        store_replace(store, it, empty, hash);
        if (store->cfg.cas_enabled)
            empty->cas = cas;
        it = empty;
    }
    if (d->invalidate) {
        if (d->has_ttl)
            store_set_exptime(store, it, d->exptime);
        it->iflags = (uint8_t)((it->iflags | ITEM_STALE) & ~ITEM_TOKEN_SENT);
        it->cas = d->new_cas != 0 && store->cfg.cas_enabled ? d->new_cas : store_next_cas(store);
        return MC_OK;
    }
    store_cm(store, it)->delete_hits++;
    if (!d->remove_value)
        store_unlink(store, it, hash);
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
 * delay (`when` = now for an immediate flush). Every open segment is
 * closed, so that items stored from now on go to fresh segments and the
 * old ones, once all flushed, are freed whole. */
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
    store->flushes++;
    if (store->oldest_live <= store->now) {
        for (unsigned q = 0; q < SEG_QUEUES; q++) {
            for (unsigned b = 0; b < SEG_TTL_BUCKETS; b++) {
                if (store->segs.open[q][b] != SEG_NONE)
                    seg_close(&store->segs, store->segs.open[q][b]);
            }
        }
    }
}

/* True when a segment may hold an expired or flushed item not yet freed. */
static bool store_seg_may_hold_dead(const struct store *store, const struct seg *s)
{
    if (s->exp_min <= store->now)
        return true;
    return store_flush_effective(store) && s->flush_seen != store->flushes &&
           s->created <= store->oldest_live + 1;
}

/* Walks one segment's items, freeing the dead ones, and recomputes its
 * exptime bounds from the survivors. Returns the items freed. */
static unsigned store_seg_crawl(struct store *store, uint32_t id, unsigned *examined)
{
    struct seg *s = &store->segs.seg[id];
    unsigned freed = 0;
    mc_time_t exp_min = SEG_NEVER;
    store->evicting = id;
    SEG_FOR_EACH_LINKED(store, id, it, {
        store_cm(store, it)->crawler_items_checked++;
        (*examined)++;
        if (store_item_dead(store, it)) {
            store_reap_item(store, it, hash_key(it->data, it->nkey), true);
            freed++;
        } else if (it->exptime != 0 && it->exptime < exp_min) {
            exp_min = it->exptime;
        }
    });
    store->evicting = SEG_NONE;
    s->exp_min = exp_min;
    if (store_flush_effective(store))
        s->flush_seen = store->flushes; /* no flushed item left: not again */
    store_seg_maybe_free(store, id);
    return freed;
}

unsigned store_crawl(struct store *store, unsigned budget)
{
    unsigned freed = 0, examined = 0;
    struct segs *segs = &store->segs;
    if (store->crawl_seg == 0)
        store->m.lru_crawler_starts++;
    while (examined < budget) {
        if (store->crawl_seg >= segs->nsegs) {
            /* A lap is done: the next call starts the next one, so one call
             * never examines an item twice. */
            store->crawl_seg = 0;
            break;
        }
        uint32_t id = store->crawl_seg++;
        struct seg *s = &segs->seg[id];
        if ((s->state != SEG_OPEN && s->state != SEG_CLOSED) || store_seg_pinned(store, id))
            continue;
        if (s->live_items == 0) {
            store_seg_maybe_free(store, id);
            continue;
        }
        if (store_seg_all_dead(store, s)) {
            examined += s->live_items;
            freed += store_seg_reap(store, id, true);
            continue;
        }
        if (store_seg_may_hold_dead(store, s))
            freed += store_seg_crawl(store, id, &examined);
    }
    return freed;
}

/* --- issue 17: reads from other shards (core/peek.c) ------------------------------- */

void store_peek_view(const struct store *store, struct store_peek_view *out)
{
    *out = (struct store_peek_view){
        .idx = store->idx, .arena = store->segs.base, .seg_size = store->segs.seg_size,
        .nsegs = store->segs.nsegs, .now = &store->now, .oldest_live = &store->oldest_live,
        .flush_this_second = &store->flush_this_second, .flush_epoch = &store->flush_epoch,
    };
}

struct segidx *store_index(struct store *store)
{
    return store->idx;
}

void store_remote_hit(struct store *store, const char *key, size_t nkey, uint64_t hash)
{
    uint64_t loc;
    if (!segidx_find(store->idx, key, nkey, hash, &loc))
        return;
    struct item *it = item_at_loc(store, loc);
    if (!store_is_flushed(store, it) && !store_is_expired(store, it))
        store_hit(store, it);
}

void store_remote_hit_at(struct store *store, uint64_t loc)
{
    struct item *it = item_at_loc(store, loc);
    if ((it->iflags & ITEM_LINKED) != 0 && !store_is_flushed(store, it) && !store_is_expired(store, it))
        store_hit(store, it);
}

void store_count_remote_get(struct store *store, const struct item *it)
{
    store->m.cmd_get++;
    if (it != NULL)
        store_cm(store, it)->get_hits++; /* the copy's size picks the class, as the owner's would */
    else
        store->m.get_misses++;
}
/* --- end issue 17 --- */

/* --- References ---------------------------------------------------------------------- */

struct store_ref store_ref_get(struct store *store, const struct item *it)
{
    uint32_t id = seg_head(&store->segs, seg_of(store, it));
    store->segs.seg[id].refs++;
    store->refs++;
    return (struct store_ref){.seg = id, .gen = store->segs.seg[id].gen};
}

void store_ref_put(struct store *store, struct store_ref ref)
{
    struct seg *s = &store->segs.seg[ref.seg];
    if (s->refs == 0)
        return; /* a double put; never below zero */
    s->refs--;
    store->refs--;
    if (s->refs == 0 && (s->state == SEG_CLOSED || s->state == SEG_OPEN))
        store_seg_maybe_free(store, ref.seg);
}

void store_ref_release(void *owner, const void *data, size_t len)
{
    (void)len;
    struct store *store = owner;
    uint32_t id = seg_of(store, (const struct item *)data);
    store_ref_put(store, (struct store_ref){.seg = id, .gen = store->segs.seg[id].gen});
}

uint64_t store_refs(const struct store *store)
{
    return store->refs;
}

/* --- Metrics ---------------------------------------------------------------------------- */

/* stats cachedump: segment by segment, newest segment first (SMALL's, then
 * MAIN's), each segment's items in the order they were written. */
unsigned store_each_in_class(const struct store *store, unsigned id,
                             bool (*visit)(void *arg, const struct item *it), void *arg)
{
    unsigned n = 0;
    if (id < 1 || id > store->sizes.largest)
        return 0;
    const struct segs *segs = &store->segs;
    for (unsigned q = 0; q < SEG_QUEUES; q++) {
        for (uint32_t id2 = segs->qtail[q]; id2 != SEG_NONE; id2 = segs->seg[id2].prev) {
            const struct seg *s = &segs->seg[id2];
            const char *p = seg_data(segs, id2);
            for (size_t off = 0; off < s->write;) {
                const struct item *it = (const struct item *)(p + off);
                off += item_footprint(item_total(it));
                if ((it->iflags & ITEM_LINKED) == 0 || store_item_class(store, it) != id)
                    continue;
                n++;
                if (!visit(arg, it))
                    return n;
            }
        }
    }
    return n;
}

bool store_item_alive(const struct store *store, const struct item *it)
{
    return (it->iflags & ITEM_LINKED) != 0 && !store_item_dead(store, it);
}

unsigned store_crawl_lap(struct store *store)
{
    store->crawl_seg = 0;
    return store_crawl(store, UINT_MAX);
}

unsigned store_class_count(const struct store *store)
{
    return store->sizes.largest; /* issue 12: memcached's classes 1..largest */
}

/* issue 12: every class's counters summed (the store-wide figures). */
static void store_cm_total(const struct store *store, struct store_class_metrics *tot)
{
    memset(tot, 0, sizeof(*tot));
    for (unsigned id = 1; id < SIZECLASS_MAX; id++)
        metrics_sum(tot->v, store->cm[id].v, store_class_metric_desc, store_class_metric_count);
}

static uint32_t store_segs_used(const struct store *store)
{
    return store->segs.nsegs - store->segs.nfree;
}

void store_metrics(const struct store *store, uint64_t *out)
{
    struct store_metrics m = store->m;
    struct store_class_metrics total;
    store_cm_total(store, &total);
    const struct store_class_metrics *cm = &total;
    const struct segs *segs = &store->segs;
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
    m.hash_power_level = store_hash_level(segidx_power(store->idx), store->cfg.index_shards); /* issue 14 */
    m.hash_bytes = segidx_bytes(store->idx);
    m.hash_is_expanding = 0;
    m.seg_size = segs->seg_size;
    m.seg_segments = segs->nsegs;
    m.seg_free = segs->nfree;
    m.seg_small = segs->qsegs[SEG_SMALL];
    uint64_t written = 0, live = 0;
    for (uint32_t id = 0; id < segs->nsegs; id++) {
        const struct seg *s = &segs->seg[id];
        if (s->state == SEG_OPEN || s->state == SEG_CLOSED) {
            written += (uint64_t)s->run * segs->seg_size;
            live += s->live_bytes;
        }
    }
    m.seg_dead_bytes = written - live;
    m.seg_refs = store->refs;
    m.total_malloced = (uint64_t)store_segs_used(store) * segs->seg_size + store->held_bytes;
    memcpy(out, m.v, sizeof(m.v));
}

void store_class_metrics(const struct store *store, unsigned id, uint64_t *out)
{
    struct store_class_metrics m = {0};
    if (id >= 1 && id <= store->sizes.largest) {
        /* issue 12: the items memcached would have put in class id (README,
         * Compatibility). A chunk is an item: nothing is reserved for a class,
         * so every chunk counted is used, and no class owns a page (all
         * segments serve every size: total_pages 0; total_malloced counts
         * them). */
        const struct segs *segs = &store->segs;
        m = store->cm[id];
        m.chunk_size = store->sizes.size[id];
        m.chunks_per_page = sizeclass_per_page(&store->sizes, id);
        m.used_chunks = m.number;
        m.total_chunks = m.number;
        m.free_chunks = 0;
        m.free_chunks_end = 0;
        m.total_pages = 0;
        mc_time_t oldest = store->now;
        for (unsigned q = 0; q < SEG_QUEUES; q++) {
            uint32_t head = segs->qhead[q];
            if (head != SEG_NONE && segs->seg[head].created < oldest)
                oldest = segs->seg[head].created;
        }
        m.age = store->now - oldest;
        /* memcached's segmented-LRU view of the class */
        m.number_cold = m.number;
        m.hits_to_cold = m.get_hits;
        m.direct_reclaims = m.reclaimed + m.evicted;
    }
    memcpy(out, m.v, sizeof(m.v));
}

void store_reset_metrics(struct store *store)
{
    metrics_reset(store->m.v, store_metric_desc, store_metric_count);
    for (unsigned id = 0; id < SIZECLASS_MAX; id++)
        metrics_reset(store->cm[id].v, store_class_metric_desc, store_class_metric_count);
}

/* --- Self-check ------------------------------------------------------------------------ */

bool store_check(const struct store *store)
{
    const struct segs *segs = &store->segs;
    uint64_t items = 0, bytes = 0;
    uint32_t nfree = 0, queued = 0;
    for (uint32_t id = 0; id < segs->nsegs; id++) {
        const struct seg *s = &segs->seg[id];
        if (s->state == SEG_FREE) {
            nfree++;
            continue;
        }
        if (s->state == SEG_CONT) {
            const struct seg *h = &segs->seg[s->head];
            if (s->head >= id || h->run <= id - s->head || h->state == SEG_FREE)
                return false;
            continue;
        }
        queued += s->run;
        if (s->write > (uint64_t)s->run * segs->seg_size)
            return false;
        if (s->state == SEG_OPEN && segs->open[s->queue][s->bucket] != id)
            return false;
        uint64_t live = 0, live_bytes = 0;
        const char *p = seg_data(segs, id);
        for (size_t off = 0; off < s->write;) {
            const struct item *it = (const struct item *)(p + off);
            size_t fp = item_footprint(item_total(it));
            if (fp == 0 || off + fp > s->write)
                return false;
            if ((it->iflags & ITEM_LINKED) != 0) {
                uint64_t loc;
                if (!segidx_find(store->idx, it->data, it->nkey, hash_key(it->data, it->nkey), &loc) ||
                    loc != SEGIDX_LOC(id, off))
                    return false;
                live++;
                live_bytes += fp;
                bytes += item_total(it);
            }
            off += fp;
        }
        if (live != s->live_items || live_bytes != s->live_bytes)
            return false;
        items += live;
    }
    if (nfree != segs->nfree || queued != segs->qsegs[SEG_SMALL] + segs->qsegs[SEG_MAIN])
        return false;
    return items == store->m.curr_items && bytes == store->m.bytes &&
           segidx_count(store->idx) == items && store->pin[0] == SEG_NONE &&
           store->pin[1] == SEG_NONE && store->evicting == SEG_NONE;
}

/* --- Warm restart (issue 14) -------------------------------------------------
 * core/warm.c saves the segment table and these scalars beside the arena
 * and checks them on the next start; store_warm_adopt() then takes the
 * table over and rebuilds what was not saved: the index (by scanning every
 * queued segment's items), the live counters and each segment's time
 * bounds. Nothing is trusted before it is checked: a link or an item
 * header out of range refuses the whole image, so a corrupt one can only
 * ever start the store empty. */

void store_warm_state(const struct store *store, struct store_warm *out)
{
    *out = (struct store_warm){
        .now = store->now, .oldest_live = store->oldest_live, .flushes = store->flushes,
        .flush_epoch = store->flush_epoch, .flush_this_second = store->flush_this_second,
        .cas_issued = store->cas_issued, .items = store->m.curr_items,
        .index_power = segidx_power(store->idx),
    };
}

const struct segs *store_warm_segs(const struct store *store)
{
    return &store->segs;
}

/* A time of the saved clock on this one (0 stays "never"; never below 1). */
static mc_time_t warm_time(mc_time_t t, int64_t shift)
{
    if (t == 0)
        return 0;
    int64_t v = (int64_t)t - shift;
    return v < 1 ? 1 : v > (int64_t)UINT32_MAX ? UINT32_MAX : (mc_time_t)v;
}

static bool warm_link_ok(const struct segs *segs, uint32_t id)
{
    return id == SEG_NONE || id < segs->nsegs;
}

/* Walks one list (the free list: q == SEG_QUEUES) from head: bounded, each
 * member in the right state, back links consistent. Returns the members
 * (runs counted whole for a queue), or UINT32_MAX if broken. */
static uint32_t warm_walk(const struct segs *segs, uint32_t head, uint32_t tail, unsigned q)
{
    uint32_t n = 0, steps = 0, prev = SEG_NONE;
    for (uint32_t id = head; id != SEG_NONE; prev = id, id = segs->seg[id].next) {
        const struct seg *s = &segs->seg[id];
        if (id >= segs->nsegs || ++steps > segs->nsegs || s->prev != prev)
            return UINT32_MAX;
        if (q == SEG_QUEUES ? s->state != SEG_FREE
                            : (s->state != SEG_OPEN && s->state != SEG_CLOSED) || s->queue != q)
            return UINT32_MAX;
        n += q == SEG_QUEUES ? 1 : s->run;
    }
    if (q != SEG_QUEUES && prev != tail)
        return UINT32_MAX;
    return n;
}

static const char *warm_check_table(const struct segs *segs)
{
    uint32_t nfree = 0, queued = 0;
    for (uint32_t id = 0; id < segs->nsegs; id++) {
        const struct seg *s = &segs->seg[id];
        if (!warm_link_ok(segs, s->prev) || !warm_link_ok(segs, s->next) || s->state > SEG_CONT)
            return "a segment link is out of range";
        if (s->state == SEG_FREE) {
            nfree++;
        } else if (s->state == SEG_CONT) {
            if (s->head >= id || segs->seg[s->head].state == SEG_FREE ||
                segs->seg[s->head].state == SEG_CONT || segs->seg[s->head].run <= id - s->head)
                return "a segment run is inconsistent";
        } else {
            if (s->queue >= SEG_QUEUES || s->bucket >= SEG_TTL_BUCKETS || s->run == 0 ||
                s->run > segs->nsegs - id || s->write > (uint64_t)s->run * segs->seg_size)
                return "a segment header is out of range";
            if (s->state == SEG_OPEN && segs->open[s->queue][s->bucket] != id)
                return "an open segment is not its bucket's";
            queued += s->run;
        }
    }
    for (unsigned q = 0; q < SEG_QUEUES; q++) {
        for (unsigned b = 0; b < SEG_TTL_BUCKETS; b++) {
            uint32_t id = segs->open[q][b];
            if (id != SEG_NONE && (id >= segs->nsegs || segs->seg[id].state != SEG_OPEN))
                return "an open segment is out of range";
        }
    }
    if (warm_walk(segs, segs->free_head, SEG_NONE, SEG_QUEUES) != nfree || nfree != segs->nfree)
        return "the free list is inconsistent";
    uint32_t inq = 0;
    for (unsigned q = 0; q < SEG_QUEUES; q++) {
        uint32_t n = warm_walk(segs, segs->qhead[q], segs->qtail[q], q);
        if (n == UINT32_MAX || n != segs->qsegs[q])
            return "a queue is inconsistent";
        inq += n;
    }
    return inq == queued ? NULL : "a segment is in no list";
}

/* Reattaches the items of queued segment `id`; false on a bad header. */
static bool warm_scan_seg(struct store *store, uint32_t id, int64_t shift, mc_time_t now,
                          uint64_t *items, uint64_t *cas_k)
{
    struct seg *s = &store->segs.seg[id];
    char *p = seg_data(&store->segs, id);
    for (size_t off = 0; off < s->write;) {
        struct item *it = (struct item *)(p + off);
        if (off + ITEM_HEADER_SIZE > s->write || it->nkey == 0 || it->nkey > STORE_KEY_MAX)
            return false;
        size_t fp = item_footprint(item_total(it));
        if (fp > s->write - off)
            return false;
        off += fp;
        if ((it->iflags & ITEM_LINKED) == 0)
            continue;
        /* dead by the saved clock (store->now holds it during the scan) */
        if (store_item_dead(store, it) || item_total(it) > store->cfg.item_size_max) {
            it->iflags &= (uint8_t)~ITEM_LINKED;
            continue;
        }
        uint64_t hash = hash_key(it->data, it->nkey), loc;
        if (segidx_find(store->idx, it->data, it->nkey, hash, &loc))
            return false; /* two linked copies of one key */
        if (segidx_insert(store->idx, hash, loc_of(store, it)) != MC_OK) {
            it->iflags &= (uint8_t)~ITEM_LINKED;
            continue;
        }
        it->exptime = warm_time(it->exptime, shift);
        it->atime = warm_time(it->atime, shift);
        if (it->exptime != 0 && it->exptime <= now)
            it->exptime = now + 1; /* not dead by the old clock: not by this one */
        store_count_in(store, it);
        store->m.total_items++;
        (*items)++;
        if (store->cfg.cas_enabled && it->cas > store->cfg.cas_offset) {
            uint64_t k = (it->cas - store->cfg.cas_offset) / store->cfg.cas_stride;
            if (k > *cas_k)
                *cas_k = k;
        }
    }
    return true;
}

enum mc_status store_warm_adopt(struct store *store, const struct store_warm *st, mc_time_t now,
                                const struct segs *saved, const void *table, int64_t shift,
                                uint64_t *items, const char **why)
{
    struct segs *segs = &store->segs;
    *items = 0;
    *why = NULL;
    if (saved->nsegs != segs->nsegs || saved->seg_size != segs->seg_size) {
        *why = "the segment layout differs";
        return MC_EINVAL;
    }
    /* take the table over: this store is fresh, so nothing else refers to it */
    struct seg *mine = segs->seg;
    memcpy(mine, table, (size_t)segs->nsegs * sizeof(*mine));
    char *base = segs->base;
    *segs = *saved;
    segs->seg = mine;
    segs->base = base;
    if ((*why = warm_check_table(segs)) != NULL)
        return MC_EINVAL;
    /* an index already large enough for what was saved: no doubling and
     * rehash of millions of entries during the scan */
    unsigned power = segidx_power(store->idx);
    while (power < 30 && ((uint64_t)7 << power) <= st->items)
        power++;
    /* and at least as large as it was: what grew before the stop (for
     * items since deleted) does not grow again (memcached restores its
     * hash power too) */
    if (st->index_power > power && st->index_power <= 30)
        power = st->index_power;
    struct segidx *idx = NULL;
    if (power > segidx_power(store->idx) && segidx_create(power, resolve, store, &idx) == MC_OK) {
        segidx_destroy(&store->idx);
        store->idx = idx;
    }

    /* judge items by the saved clock, as if the store had never stopped */
    store->now = (mc_time_t)((int64_t)now + shift > UINT32_MAX ? UINT32_MAX : (int64_t)now + shift);
    store->oldest_live = st->oldest_live;
    store->flushes = st->flushes;
    store->flush_epoch = st->flush_epoch;
    store->flush_this_second = st->flush_this_second != 0;
    uint64_t cas_k = st->cas_issued;
    for (uint32_t id = 0; id < segs->nsegs; id++) {
        struct seg *s = &segs->seg[id];
        s->refs = 0; /* pins of replies that died with the old process */
        s->live_items = 0;
        s->live_bytes = 0;
        s->last_link = 0;
        s->exp_min = SEG_NEVER;
        s->exp_max = 0;
        s->created = warm_time(s->created, shift);
    }
    for (uint32_t id = 0; id < segs->nsegs; id++) {
        struct seg *s = &segs->seg[id];
        if ((s->state == SEG_OPEN || s->state == SEG_CLOSED) &&
            !warm_scan_seg(store, id, shift, now, items, &cas_k)) {
            *why = "an item header is out of range";
            return MC_EINVAL;
        }
    }
    /* a flush that took effect has dropped its items; a pending one moves
     * to this clock like every other time */
    if (store_flush_effective(store)) {
        store->oldest_live = 0;
        store->flush_this_second = false;
    } else {
        store->oldest_live = warm_time(store->oldest_live, shift);
    }
    store->now = now;
    store->cas_issued = cas_k;
    for (uint32_t id = 0; id < segs->nsegs; id++) {
        struct seg *s = &segs->seg[id];
        if ((s->state == SEG_OPEN || s->state == SEG_CLOSED) && s->live_items == 0)
            seg_release(segs, id);
    }
    /* store_check() would verify all this again, item by item: the unit
     * tests do (tests/unit/core/test_warm.c); a start does not pay twice */
    return MC_OK;
}
/* --- end warm restart --- */

/* --- memcached's hash power (issue 14; see store.h) ---------------------- */

unsigned store_hash_level(unsigned index_power, unsigned shards)
{
    /* shards * 7 * 2^p * 2 / 3 items: the memcached table's 1.5-per-bucket growth point */
    uint64_t cap = (uint64_t)(shards != 0 ? shards : 1) * 14u * ((uint64_t)1 << index_power) / 3u;
    unsigned level = 0;
    while (cap > 1) {
        cap >>= 1;
        level++;
    }
    return level;
}

unsigned store_index_power(unsigned hashpower, unsigned shards)
{
    unsigned want = hashpower != 0 ? hashpower : 16; /* memcached's HASHPOWER_DEFAULT */
    unsigned p = SEGIDX_POWER_MIN;
    while (p < 30 && store_hash_level(p, shards) < want)
        p++;
    return p;
}
