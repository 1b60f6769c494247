/*
 * store.h: one shard's storage engine (the contract; see store.c).
 *
 * A store owns one shard's partition of the key space: segments carved from
 * memory handed in by the caller (numa/ places it on the shard's node), a
 * compact tag hash table, TTL-grouped segments that expire whole, S3-FIFO
 * eviction at segment granularity, and the shard's share of CAS values. It
 * is single-threaded: every function below may be called only by the
 * thread that owns the store (its shard), and no function takes a lock,
 * makes a syscall, or reads a clock. The caller hands time in with
 * store_set_clock() once per loop iteration.
 *
 * Keys are byte strings of 1..STORE_KEY_MAX bytes; the protocol layer has
 * already validated them. `hash` is the key's 64-bit xxh3 hash, computed
 * once by the caller (it also picks the owning shard), so the store never
 * hashes a request's key itself. It must be hash_key(key, nkey) (hash.h):
 * items do not store their hash, so eviction, the crawler and hash table
 * growth recompute it from the key, as memcached does.
 *
 * Memory: the arena is the memory limit. Item headers, keys and values live
 * in it; nothing else does (the hash table and the segment bookkeeping are
 * allocated with malloc, as memcached's are outside -m). Memory freed by
 * expiry, deletion or eviction is whole segments, usable by items of any
 * size. The store fails with MC_ENOMEM only when nothing can be evicted or
 * evictions are disabled (-M).
 *
 * Item pointers returned by lookups stay valid until the next call that may
 * allocate, store or delete on the same store: compose the reply at once,
 * or pin the item's memory with store_ref_get() to send it later.
 */
#ifndef CORECACHE_CORE_STORE_H
#define CORECACHE_CORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "metrics.h"
#include "status.h"

#define STORE_KEY_MAX 250

struct store; /* opaque: one per shard */
struct item;  /* opaque outside the engine; read through item.h accessors */

struct store_cfg {
    void *arena;           /* item memory; page-aligned; owned by the caller */
    size_t arena_size;     /* bytes; this shard's share of -m; >= item_size_max */
    size_t item_size_max;  /* -I: largest item (header + key + value) */
    size_t seg_size;       /* bytes per segment, a multiple of 8; 0: chosen from
                            * arena_size (store.c: STORE_SEG_*) */
    /* The slab engine's -f, -n and slab_chunk_max: the segment engine has no
     * size classes; it counts items in the classes memcached would build
     * from these (sizeclass.h, issue 12). slab_page_size is unused. */
    size_t slab_page_size;
    double growth_factor;
    uint32_t chunk_min;
    uint32_t slab_chunk_max;
    bool evictions;        /* false under -M: fail instead of evicting */
    bool cas_enabled;      /* false under -C: every CAS value is 0 */
    uint32_t cas_offset;   /* this store issues CAS values offset + k * stride, */
    uint32_t cas_stride;   /* k >= 1, so CAS values are unique across shards */
    /* memcached's -o hashpower and hash_power_level (issue 14, see
     * store_index_power below) */
    uint32_t index_power;  /* the index's initial log2 bucket count; 0: the engine's default */
    uint32_t index_shards; /* stores the keys are spread over (-t), for hash_power_level; 0: 1 */
};

enum store_op {
    STORE_SET,
    STORE_ADD,     /* only if absent */
    STORE_REPLACE, /* only if present */
    STORE_APPEND,  /* present: value = old + new; flags and exptime kept */
    STORE_PREPEND, /* present: value = new + old; flags and exptime kept */
    STORE_CAS,     /* present and cas matches */
};

/*
 * Creates a store over cfg->arena. Fails with MC_EINVAL on an inconsistent
 * configuration (arena smaller than item_size_max or than one segment,
 * more than 2^23 segments, segment size not a multiple of 8, cas_stride 0
 * with CAS on, ...) and MC_ENOMEM when bookkeeping cannot be allocated.
 * The arena is not written until items need it.
 */
enum mc_status store_create(const struct store_cfg *cfg, struct store **out) MC_MUST_CHECK;
void store_destroy(struct store **store);

/* issue 12: called with each live item just before eviction unlinks it,
 * its class (store_item_class) and the store's clock (memcached's eviction log line, `watch
 * evictions`); NULL: none. */
typedef void (*store_evict_fn)(void *arg, const struct item *it, unsigned clsid, mc_time_t now);
void store_set_evict_hook(struct store *store, store_evict_fn fn, void *arg);

/* Sets the store's notion of now; call once per loop iteration. */
void store_set_clock(struct store *store, mc_time_t now);

/* Bytes an item with this key and value length takes (header included). */
size_t store_item_total(size_t nkey, size_t nbytes);

/* True if such an item is within item_size_max (so a set can succeed). */
bool store_item_fits(const struct store *store, size_t nkey, size_t nbytes);

/*
 * --- Commands -----------------------------------------------------------
 * Each counts itself in the store's metrics with memcached's semantics
 * (cmd_get, get_hits, get_misses, get_expired, get_flushed, the per-class
 * hits, and so on) so that `stats` needs no help from the caller.
 */

/* get/gets: the live item or NULL. A hit marks the item fetched, counts a
 * read for eviction and refreshes its atime (at most once per
 * MC_ITEM_UPDATE_INTERVAL). */
const struct item *store_get(struct store *store, const char *key, size_t nkey, uint64_t hash);

/* gat/gats: like store_get, then sets the item's exptime; counted as touch. */
const struct item *store_gat(struct store *store, const char *key, size_t nkey, uint64_t hash,
                             mc_time_t exptime);

/* The live item under the key, counting no command and not bumping it in
 * the LRU (memcached's do_item_get with DONT_UPDATE), or NULL; an expired or
 * flushed item is unlinked on sight, as by every lookup. For a CAS compare
 * before a write and for reading an item's new CAS after one (the binary
 * protocol's delete, incr/decr and append/prepend with a CAS). */
const struct item *store_peek(struct store *store, const char *key, size_t nkey, uint64_t hash);

/* touch: MC_OK (TOUCHED) or MC_NOT_FOUND. */
enum mc_status store_touch(struct store *store, const char *key, size_t nkey, uint64_t hash,
                           mc_time_t exptime);

/*
 * set/add/replace/append/prepend/cas. Returns MC_OK (STORED), MC_EXISTS,
 * MC_NOT_FOUND, MC_NOT_STORED, MC_E2BIG or MC_ENOMEM. `cas` is the client's
 * value for STORE_CAS and ignored otherwise. On success *cas_out (if not
 * NULL) receives the new item's CAS. On MC_E2BIG or MC_ENOMEM for STORE_SET
 * the old item under the key is unlinked, as memcached does, so stale data
 * does not outlive a failed overwrite. The size is checked before `value`
 * is read, so a too-large request may pass NULL (its data was swallowed).
 * `value` must not point into this store's items (an allocation may evict
 * them).
 */
enum mc_status store_set(struct store *store, enum store_op op, const char *key, size_t nkey,
                         uint64_t hash, uint32_t flags, mc_time_t exptime, const char *value,
                         size_t nbytes, uint64_t cas, uint64_t *cas_out);

/* delete: MC_OK (DELETED) or MC_NOT_FOUND. */
enum mc_status store_delete(struct store *store, const char *key, size_t nkey, uint64_t hash);

/*
 * incr/decr with memcached's rules (do_add_delta): the value must parse as
 * memcached's safe_strtoull does (MC_NON_NUMERIC otherwise, and for an
 * empty value); incr wraps at 2^64, decr stops at 0; the item gets a new
 * CAS; a result no longer than the old value is written in place and padded
 * with spaces to the old length, exactly as memcached does ("10" decr 1 is
 * "9 "), a longer one replaces the item (flags and exptime kept). Returns
 * MC_OK with *result set, MC_NOT_FOUND, MC_NON_NUMERIC or MC_ENOMEM.
 */
enum mc_status store_arith(struct store *store, const char *key, size_t nkey, uint64_t hash,
                           bool incr, uint64_t delta, uint64_t *result);

/*
 * --- Meta commands ---------------------------------------------------------
 * The operations behind mg, ms, md, ma and me, with memcached 1.6's
 * semantics, stampede protection included: an item can be stale (ITEM_STALE,
 * "X"), and a win token (ITEM_TOKEN_SENT: "W" to one client, "Z" to the
 * others) is handed out at most once per item until it is invalidated
 * again. The reply composition lives in process_meta.c; the engine only
 * decides and records.
 */

/* What an mg or ma miss creates, with N (autovivify). */
struct store_vivify {
    mc_time_t exptime; /* the new item's exptime until the caller sets N's */
    uint64_t cas;      /* E: the new item's CAS (0: a fresh one) */
    bool key_binary;   /* b: replies return the key base64-encoded */
};

/*
 * mg, step one: the live item or NULL, neither bumped nor counted (so the
 * reply can show h and l as they were). With `viv` a miss creates an empty
 * item (flags 0) under the key and sets *created; NULL is then a miss
 * because memory was short, as memcached's vivify fails quietly. The
 * caller composes its reply, may set the item's exptime
 * (store_meta_set_exptime) and must end with store_meta_get_done(), with no
 * other call on the store in between.
 */
const struct item *store_meta_get(struct store *store, const char *key, size_t nkey, uint64_t hash,
                                  const struct store_vivify *viv, bool *created);

/*
 * mg, step two: counts the command as memcached does (a hit counts as a
 * touch if `touched`, else as a get; `it` NULL counts a get miss), hands
 * out the win token if `win` (ITEM_TOKEN_SENT) and, if `bump`, marks the
 * item fetched and maybe moves it in its LRU.
 */
void store_meta_get_done(struct store *store, const struct item *it, bool touched, bool win,
                         bool bump);

/* Sets an item returned by a meta lookup (store_meta_get, store_marith)
 * to expire at `exptime`; same validity rule as the lookup's pointer. */
void store_meta_set_exptime(struct store *store, const struct item *it, mc_time_t exptime);

/* ms: a store with memcached's meta semantics (see store_mset()). */
struct store_mset {
    enum store_op op;      /* from M: S, E (add), A, P, R; CAS when C with S or R */
    uint32_t flags;        /* F */
    mc_time_t exptime;     /* T */
    const char *value;     /* NULL when the value was too large (swallowed) */
    size_t nbytes;
    uint64_t cas;          /* C (0: none): CAS requires it to match; append and
                            * prepend refuse (EXISTS) on any other value */
    bool invalidate;       /* I with STORE_CAS: a C older than the item's still
                            * stores, keeping its exptime, marked stale */
    uint64_t new_cas;      /* E: the stored item's CAS (0: a fresh one) */
    bool key_binary;       /* b */
};

/*
 * ms. Returns what store_set() returns; *cas_out (if not NULL) gets the
 * stored item's CAS, or 0 when nothing was stored (memcached's "c0"). On
 * MC_E2BIG and MC_ENOMEM the old item is unlinked whatever the mode, as
 * memcached's mset does.
 */
enum mc_status store_mset(struct store *store, const char *key, size_t nkey, uint64_t hash,
                          const struct store_mset *m, uint64_t *cas_out);

/* md's options. */
struct store_mdelete {
    bool has_cas;          /* C: delete (or invalidate) only if the CAS matches */
    uint64_t cas;
    bool invalidate;       /* I: keep the item, mark it stale, give it a new
                            * CAS and let the next reader win the token */
    bool has_ttl;          /* T: with I, the stale item's new exptime */
    mc_time_t exptime;     /* T's, or the default for x */
    bool remove_value;     /* x: keep the key with an empty value (flags F,
                            * exptime T, CAS E or the old one) */
    uint32_t flags;        /* F, for x */
    uint64_t new_cas;      /* E (0: none) */
};

/*
 * md. MC_OK (HD), MC_NOT_FOUND (NF), MC_EXISTS (EX: CAS mismatch), or
 * MC_ENOMEM (x could not allocate the emptied item).
 */
enum mc_status store_mdelete(struct store *store, const char *key, size_t nkey, uint64_t hash,
                             const struct store_mdelete *d);

/* ma's options. */
struct store_marith {
    bool incr;
    uint64_t delta;
    uint64_t cas;          /* C (0: none) */
    uint64_t new_cas;      /* E (0: none) */
    const struct store_vivify *viv; /* N: a miss creates the item at `initial` */
    uint64_t initial;      /* J */
};

struct store_marith_result {
    const struct item *it; /* the stored item on MC_OK (pointer rule of lookups) */
    uint64_t value;        /* the new value, or `initial` when created */
    bool created;          /* the item was created by N */
    bool missed;           /* the key was absent (with MC_ENOMEM: N failed) */
};

/*
 * ma: store_arith() with a CAS check (after the empty-value check, as
 * memcached), a CAS override and autovivify. Returns MC_OK, MC_NOT_FOUND,
 * MC_EXISTS, MC_NON_NUMERIC or MC_ENOMEM.
 */
enum mc_status store_marith(struct store *store, const char *key, size_t nkey, uint64_t hash,
                            const struct store_marith *a, struct store_marith_result *r);

/* me: the live item or NULL, not bumped; counts cmd_meta. */
const struct item *store_meta_debug(struct store *store, const char *key, size_t nkey,
                                    uint64_t hash);

/*
 * flush_all: every item stored at or before `when` becomes invalid once the
 * clock reaches `when` (when == now: immediately, including items stored in
 * this same second, via the CAS watermark as memcached does). Memory is
 * reclaimed lazily and by store_crawl().
 */
void store_flush(struct store *store, mc_time_t when);

/*
 * Background reclaim: walks the segments (resuming where the last call
 * stopped; one call makes at most one lap), frees whole segments whose
 * items are all dead, expired or flushed, and examines the items of
 * segments that may hold some dead ones (an exptime passed, a flush took
 * effect), up to about `budget` items. Segments holding nothing dead are
 * skipped without reading an item. Returns the number of items freed.
 * Call it from the shard's timer.
 */
unsigned store_crawl(struct store *store, unsigned budget);

/*
 * --- References (zero-copy replies) ----------------------------------------
 * A reply that sends an item's bytes in place (an iovec into the arena)
 * pins the item's segment until the send completed: the segment is then
 * neither evicted, expired, flushed away nor reused, whatever commands run
 * meanwhile. The item itself may be unlinked (overwritten, deleted) while
 * pinned; its bytes stay as they were (items are immutable), so the reply
 * sends the value that was current when it was read, as memcached does with
 * its item refcounts. Pins are cheap (a counter per segment) and must be
 * few and short: a pinned segment is memory eviction cannot use, and a
 * store whose every segment is pinned fails sets with MC_ENOMEM.
 */
struct store_ref {
    uint32_t seg; /* segment id */
    uint32_t gen; /* its generation when pinned */
};

/* Pins the segment holding `it` (an item just returned by a lookup). */
struct store_ref store_ref_get(struct store *store, const struct item *it);

/* Drops a pin taken by store_ref_get(); the segment may be reclaimed from
 * the next allocation on. */
void store_ref_put(struct store *store, struct store_ref ref);

/*
 * The same as store_ref_put() for the segment holding `data` (bytes of an
 * item pinned by store_ref_get()), in the shape of io/outq.h's
 * outq_release_fn, so that an output queue can release a zero-copy reply
 * segment itself: outq_ref(q, item_value(it), item_nbytes(it),
 * store_ref_release, store) after store_ref_get(store, it). `owner` is the
 * store; `len` is unused. Called by the store's thread only.
 */
void store_ref_release(void *owner, const void *data, size_t len);

/* Segment pins held now (for tests and for stats). */
uint64_t store_refs(const struct store *store);

/*
 * For a reader that is not the store's thread (a later step: a shard
 * reading another shard's partition without a message): the generation of
 * segment `seg`. Protocol, seqlock-style: read the index entry, read
 * gen, check the item's key, copy or send its bytes, read gen again; equal
 * generations (and a segment not free) mean the bytes were not reused
 * meanwhile, because the owner bumps gen before it rewrites a segment and
 * items never change in place. Needs acquire/release ordering on gen,
 * which is io/'s business; the store only bumps it.
 */
uint32_t store_seg_gen(const struct store *store, uint32_t seg);

/* The item memory limit within the arena: `held` bytes count as allocated,
 * items use at most `limit - held` (whole segments, at least the largest
 * item's). Lowering it frees nothing at once: allocation waits for room
 * under the limit (evicting as usual). Issue 12: cache_memlimit. */
void store_set_limit(struct store *store, uint64_t limit, uint64_t held);
/* --- issue 17: reads from other shards (core/peek.c owns the protocol) ---
 * Where a reader on another thread finds this store's index, items, clock
 * and flush state. The pointers stay valid for the store's life; what they
 * point to is written by the owner at any time, so a reader reads it only
 * inside peek.c's validated window. store_index() is the owner's, for
 * reclaiming retired index tables; store_count_remote_get() counts a get
 * another shard served from its owner's memory in this (the reader's)
 * store, as store_get() would have counted it. */
struct segidx;
struct store_peek_view {
    const struct segidx *idx;
    const char *arena;               /* segment 0 */
    size_t seg_size;
    uint32_t nsegs;
    const mc_time_t *now;
    const mc_time_t *oldest_live;
    const bool *flush_this_second;
    const uint8_t *flush_epoch;
};
void store_peek_view(const struct store *store, struct store_peek_view *out);
struct segidx *store_index(struct store *store);
void store_count_remote_get(struct store *store, const struct item *it); /* NULL: a miss */
/* The owner's half of a get another shard served from this store: the read
 * counted in the item as store_get() counts it (store_hit), if the key is
 * still there and live; nothing else (no command is counted, nothing is
 * unlinked). */
void store_remote_hit(struct store *store, const char *key, size_t nkey, uint64_t hash);
/* The same for the item at `loc` (segidx.h), which the caller knows is
 * still that key's: nothing was written to the store since it was read
 * there (peek_shard.wseq unchanged). Saves the index lookup. */
void store_remote_hit_at(struct store *store, uint64_t loc);
/* --- end issue 17 --- */

/* The segment size the store chose, and its segment count. */
size_t store_seg_size(const struct store *store);
uint32_t store_seg_count(const struct store *store);

/* --- Metrics -------------------------------------------------------------
 * store-wide metrics (memcached's `stats` names) and per-slab-class metrics
 * (`stats slabs` and `stats items` names) are declared in store.c's X-macro
 * tables and exported through these descriptors. */
/* Store-wide table, in memcached's `stats` order; its last entry,
 * total_malloced, belongs to the `stats slabs` trailer instead. */
extern const struct metric_desc store_metric_desc[];
extern const size_t store_metric_count;
extern const struct metric_desc store_class_metric_desc[];
extern const size_t store_class_metric_count;
/* The class table is two sections in output order: entries
 * [0, store_class_metric_items_first) are `stats slabs` fields, the rest
 * `stats items` fields. */
extern const size_t store_class_metric_items_first;

/* Largest number of slab classes a store can report (memcached's 63 + 1). */
#define STORE_CLASSES_MAX 64

/* issue 12: the memcached size class the item counts in (sizeclass.h). */
unsigned store_item_class(const struct store *store, const struct item *it);
/* Number of "slab classes" reported: memcached's, 1..largest, built from
 * -n, -f and slab_chunk_max. The segment engine has no size classes; each
 * item is counted in the class memcached would put it in (store.c maps
 * the fields). */
unsigned store_class_count(const struct store *store);

/*
 * Calls visit(arg, it) for the linked items of class `id` (store_item_class),
 * newest segment first, each segment's items in the order written (about
 * the order memcached's `stats cachedump` walks), until visit returns false or
 * the list ends; items are not checked for expiry (memcached shows them as
 * they lie). Returns the number of calls. The store must not change during
 * the walk (the owning shard's thread, no command in between). An id out of
 * range visits nothing.
 */
unsigned store_each_in_class(const struct store *store, unsigned id,
                             bool (*visit)(void *arg, const struct item *it), void *arg);

/* Whether a linked item is live: not expired, not flushed (what
 * lru_crawler metadump lists; issue 12). */
bool store_item_alive(const struct store *store, const struct item *it);

/* One whole lap of the crawler from the arena's start, however many items:
 * `lru_crawler crawl` (issue 12). Returns the items freed. */
unsigned store_crawl_lap(struct store *store);

/* Copies the store-wide values (store_metric_count entries). */
void store_metrics(const struct store *store, uint64_t *out);

/* Copies class `id`'s values (store_class_metric_count entries). */
void store_class_metrics(const struct store *store, unsigned id, uint64_t *out);

/* stats reset: zeroes counters, keeps gauges (curr_items, bytes, pages, ...). */
void store_reset_metrics(struct store *store);

/*
 * Verifies the engine's invariants (store.c's file comment): every linked
 * item is found by the table at its own location, segment and store
 * counters match their items, queues and free list account for every
 * segment. O(items): for tests, never on the request path.
 */
bool store_check(const struct store *store);

/* --- Warm restart (issue 14; core/warm.c owns the saved image) ------------
 * What the engine keeps beside its arena that a restart needs back, for
 * warm.c to save and to hand to store_warm_adopt(). Only warm.c calls these. */
struct segs;
struct store_warm {
    mc_time_t now;          /* the store's clock when saved */
    mc_time_t oldest_live;  /* flush_all watermark */
    uint32_t flushes;
    uint8_t flush_epoch;
    uint8_t flush_this_second;
    uint64_t cas_issued;
    uint64_t items;         /* linked items when saved: sizes the rebuilt index */
    uint32_t index_power;   /* the index's size when saved: restored, as memcached does */
    uint32_t pad;
};

/* The store's scalars and its segment table (read-only; valid until the
 * next command on the store). */
void store_warm_state(const struct store *store, struct store_warm *out);
const struct segs *store_warm_segs(const struct store *store);

/*
 * Takes over a saved segment table (`saved`: its header, with `table` its
 * nsegs entries) for a fresh store whose arena holds the saved items, and
 * rebuilds the index by scanning the segments. `shift` is the seconds
 * from the saved clock's zero to this one's (item and segment times move
 * back by it, so a TTL keeps its absolute end); items expired or flushed
 * by `now` (this clock) are dropped, and the CAS counter continues above
 * every CAS kept. Every segment, list link and item header is validated:
 * MC_EINVAL (and *why, a static string) on anything inconsistent, after
 * which the store must be destroyed. *items gets the items reattached.
 */
enum mc_status store_warm_adopt(struct store *store, const struct store_warm *st, mc_time_t now,
                                const struct segs *saved, const void *table, int64_t shift,
                                uint64_t *items, const char **why) MC_MUST_CHECK;

/* memcached's hash power in corecache's index (issue 14: t/restart.t
 * reads it across a restart). memcached's table of 2^L buckets grows past
 * 1.5 items per bucket; a store's index of 2^p buckets holds 7 * 2^p
 * items before it doubles. hash_power_level reports L = floor(log2(shards
 * * 7 * 2^p / 1.5)): the memcached table that holds as many items before
 * growing as the `shards` stores' indexes (each sized like this one).
 * store_index_power is the inverse for -o hashpower=L (0: memcached's 16):
 * the smallest p whose level is at least L, at most 30. Pure. */
unsigned store_hash_level(unsigned index_power, unsigned shards);
unsigned store_index_power(unsigned hashpower, unsigned shards);
/* --- end warm restart --- */

#endif
