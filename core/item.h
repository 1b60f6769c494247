/*
 * item.h: the layout of one cached item, and inline accessors for it.
 *
 * This is the one engine struct exposed in a header, and only for the
 * inline fast path: the protocol layer composes "VALUE <key> <flags>
 * <bytes> [<cas>]\r\n<data>\r\n" straight from an item returned by
 * store_get() without a function call per field. Only the engine (store.c)
 * writes items; everyone else reads them through the item_*() accessors
 * below, and only until the next call that may allocate, store or delete on
 * the same store, unless a reference pins the item's segment
 * (store_ref_get(), store.h).
 *
 * An item is appended into a segment (seg.h): a 28-byte header, then the
 * key, then the value, the whole rounded up to 8 bytes so that the next
 * item's header is aligned. There is no pointer in an item: the hash table
 * (segidx.h) finds it by segment and offset, and segments are reclaimed
 * whole. The trailing "\r\n" of the protocol is not stored, nor is a NUL.
 *
 *     0                    8        12       16       20       24 25 26 27 28
 *     +--------------------+--------+--------+--------+--------+--+--+--+--+
 *     |cas                 |exptime |atime   |nbytes  |flags   |nk|if|fq|fe|
 *     +--------------------+--------+--------+--------+--------+--+--+--+--+
 *     28             28+nkey         28+nkey+nbytes   round up to 8
 *     +--------------+----------------+------+
 *     |key (nkey)    |value (nbytes)  | pad  |
 *     +--------------+----------------+------+
 *
 *     cas     the item's CAS unique, 0 with CAS disabled
 *     exptime 0 = never, else the engine time at which the item is dead
 *     atime   last access that refreshed it (store, or a hit at most once
 *             per MC_ITEM_UPDATE_INTERVAL): meta's l flag, flush_all
 *     nbytes  value length               flags  the client's 32 flag bits
 *     nk      key length, 1..250         if     ITEM_* flags
 *     fq      read frequency, 0..ITEM_FREQ_MAX, for eviction (store.c)
 *     fe      the store's immediate-flush count when linked (store.c)
 *
 * Immutability: the key and value bytes of a linked item are never written
 * again; an update (set, append, incr, ...) appends a new copy and unlinks
 * the old one. Only the small metadata (exptime, atime, iflags, freq, and
 * the CAS of an invalidated meta item) changes in place, as memcached's do.
 */
#ifndef CORECACHE_CORE_ITEM_H
#define CORECACHE_CORE_ITEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"

/*
 * Item flags (the `iflags` byte).
 *
 * The meta protocol's three are memcached's: ITEM_STALE (invalidated by
 * "md <key> I" or stored by "ms ... C<old cas> I": readers see X and one of
 * them wins the right to recompute), ITEM_TOKEN_SENT (a win token, W, was
 * handed out for this item: later readers see Z) and ITEM_KEY_BINARY (the
 * key came base64-encoded, b: replies return it encoded). A fresh item has
 * none of them; the engine carries STALE and TOKEN_SENT over only on a
 * cas-stale set, as memcached does.
 */
enum item_flag {
    ITEM_LINKED = 0x01,     /* in the hash table (else dead bytes of its segment) */
    ITEM_FETCHED = 0x02,    /* read by a get/gat/touch since it was stored */
    ITEM_ACTIVE = 0x04,     /* hit since its atime was last refreshed */
    ITEM_STALE = 0x10,      /* meta: invalidated, served stale (X) */
    ITEM_TOKEN_SENT = 0x20, /* meta: a win token (W) was handed out */
    ITEM_KEY_BINARY = 0x40, /* meta: the key was given base64-encoded (b) */
};

#define ITEM_FREQ_MAX 15 /* reads counted for eviction, saturating (store.c) */

struct item {
    uint64_t cas;      /* CAS unique */
    mc_time_t exptime; /* 0: never */
    mc_time_t atime;   /* last refresh (store or bump) */
    uint32_t nbytes;   /* value length, without "\r\n" */
    uint32_t flags;    /* client flags */
    uint8_t nkey;      /* key length */
    uint8_t iflags;    /* enum item_flag bits */
    uint8_t freq;      /* reads since stored or last kept by eviction */
    uint8_t flush_epoch; /* the store's immediate-flush count when linked, mod 256 */
    char data[];       /* key, then value */
};

/* The header is part of the memory accounting; data starts at byte 28 (the
 * struct's sizeof is 32 only because of tail padding for the CAS). */
#define ITEM_HEADER_SIZE (offsetof(struct item, data))
_Static_assert(offsetof(struct item, data) == 28, "item header must stay 28 bytes");
#define ITEM_ALIGN 8

/* --- Read accessors (any code holding an item from the store) ------------ */

static inline const char *item_key(const struct item *it)
{
    return it->data;
}

static inline size_t item_nkey(const struct item *it)
{
    return it->nkey;
}

static inline const char *item_value(const struct item *it)
{
    return it->data + it->nkey;
}

static inline size_t item_nbytes(const struct item *it)
{
    return it->nbytes;
}

/* The client's flags, as given to set. */
static inline uint32_t item_flags(const struct item *it)
{
    return it->flags;
}

static inline uint64_t item_cas(const struct item *it)
{
    return it->cas;
}

static inline mc_time_t item_exptime(const struct item *it)
{
    return it->exptime;
}

/* Last access that refreshed the item (a store or a bump); bumps happen at
 * most once per MC_ITEM_UPDATE_INTERVAL, as memcached's it->time. */
static inline mc_time_t item_atime(const struct item *it)
{
    return it->atime;
}

/* True once a get/gat/touch has read the item. */
static inline bool item_fetched(const struct item *it)
{
    return (it->iflags & ITEM_FETCHED) != 0;
}

/* Meta protocol state (see enum item_flag). */
static inline bool item_stale(const struct item *it)
{
    return (it->iflags & ITEM_STALE) != 0;
}

static inline bool item_token_sent(const struct item *it)
{
    return (it->iflags & ITEM_TOKEN_SENT) != 0;
}

static inline bool item_key_binary(const struct item *it)
{
    return (it->iflags & ITEM_KEY_BINARY) != 0;
}

/* issue 17: eviction's read count, and whether the item was hit since its
 * atime was last refreshed (a read that would change neither, nor atime,
 * leaves the item as it was: core/peek.c serves only those remotely). */
static inline unsigned item_freq(const struct item *it)
{
    return it->freq;
}

static inline bool item_active(const struct item *it)
{
    return (it->iflags & ITEM_ACTIVE) != 0;
}

/* A placeholder slab class id for code without the store (core/logline.c's
 * events): the engine has no size classes, and the class memcached would
 * use depends on -n/-f, so `me`, `watch` and the stats take the real one
 * from store_item_class() (core/sizeclass.h). */
static inline unsigned item_clsid(const struct item *it)
{
    (void)it;
    return 1;
}

/* Bytes the item's header, key and value take (its footprint in a segment
 * is this rounded up to ITEM_ALIGN). */
static inline size_t item_total(const struct item *it)
{
    return ITEM_HEADER_SIZE + it->nkey + it->nbytes;
}

/* Bytes an item of this total takes in a segment. */
static inline size_t item_footprint(size_t total)
{
    return (total + ITEM_ALIGN - 1) & ~(size_t)(ITEM_ALIGN - 1);
}

#endif
