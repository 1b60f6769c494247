/*
 * item.h: the layout of one cached item, and inline accessors for it.
 *
 * This is the one engine struct exposed in a header, and only for the
 * inline fast path: the protocol layer composes "VALUE <key> <flags>
 * <bytes> [<cas>]\r\n<data>\r\n" straight from an item returned by
 * store_get() without a function call per field. Only the engine (slab.c,
 * ht.c, store.c) writes items; everyone else reads them through the
 * item_*() accessors below, and only until the next call that may
 * allocate, store or delete on the same store.
 *
 * An item is one slab chunk: a 40-byte header, then the key, then the
 * value. The trailing "\r\n" of the protocol is not stored (the protocol
 * layer appends it), nor is a NUL after the key. Chunks, and therefore
 * items, are 8-byte aligned within the arena.
 *
 *     0           4           8        12       16       20       24       28       32
 *     +-----------+--+--+--+--+--------+--------+--------+--------+--------+--------+
 *     |hnext      |nk|cl|if|fe|nbytes  |flags   |prev    |next    |atime   |exptime |
 *     +-----------+--+--+--+--+--------+--------+--------+--------+--------+--------+
 *
 *     32                   40             40+nkey          40+nkey+nbytes
 *     +--------------------+--------------+----------------+--------+
 *     |cas                 |key (nkey)    |value (nbytes)  | slack  |
 *     +--------------------+--------------+----------------+--------+
 *
 *     hnext   next item in the same hash bucket (a ref, below), 0 = none
 *     nk      key length, 1..250             cl  slab class id, 1..63
 *     if      ITEM_* flags                   fe  flush epoch when linked (store.c)
 *     nbytes  value length                   flags  the client's 32 flag bits
 *     prev    LRU neighbour towards the head (free list: previous free chunk)
 *     next    LRU neighbour towards the tail (free list: next free chunk)
 *     atime   last access that moved the item in its LRU (mc_time_t)
 *     exptime 0 = never, else the engine time at which the item is dead
 *     cas     the item's CAS unique, 0 with CAS disabled
 *
 * Links are refs, not pointers: a ref is the item's byte offset in the
 * arena divided by 8, plus one, so that 0 can mean "none". 32-bit refs
 * keep the header at 40 bytes (memcached's is 48 plus 8 for CAS) and
 * address arenas of up to 32 GiB per shard (store_create checks).
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
 * cas-stale set, as memcached does. 0x80 is free.
 */
enum item_flag {
    ITEM_LINKED = 0x01,     /* in the hash table and its class's LRU */
    ITEM_FETCHED = 0x02,    /* read by a get/gat/touch since it was stored */
    ITEM_ACTIVE = 0x04,     /* hit since it last moved in its LRU */
    ITEM_FREE = 0x08,       /* a free chunk on its class's free list */
    ITEM_STALE = 0x10,      /* meta: invalidated, served stale (X) */
    ITEM_TOKEN_SENT = 0x20, /* meta: a win token (W) was handed out */
    ITEM_KEY_BINARY = 0x40, /* meta: the key was given base64-encoded (b) */
};

struct item {
    uint32_t hnext;    /* hash chain ref */
    uint8_t nkey;      /* key length */
    uint8_t clsid;     /* slab class */
    uint8_t iflags;    /* enum item_flag bits */
    uint8_t flush_epoch; /* the store's immediate-flush count when linked, mod 256 */
    uint32_t nbytes;   /* value length, without "\r\n" */
    uint32_t flags;    /* client flags */
    uint32_t prev;     /* LRU / free list ref towards the head */
    uint32_t next;     /* LRU / free list ref towards the tail */
    mc_time_t atime;   /* last LRU move (store or bump) */
    mc_time_t exptime; /* 0: never */
    uint64_t cas;      /* CAS unique */
    char data[];       /* key, then value */
};

/* The header is part of the slab class sizes and of the memory accounting. */
_Static_assert(sizeof(struct item) == 40, "item header must stay 40 bytes");
#define ITEM_HEADER_SIZE (sizeof(struct item))

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

/* Last access that moved the item in its LRU (a store or a bump); bumps
 * happen at most once per MC_ITEM_UPDATE_INTERVAL, as memcached's it->time. */
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

static inline unsigned item_clsid(const struct item *it)
{
    return it->clsid;
}

/* Bytes the item takes in its chunk: header, key and value. */
static inline size_t item_total(const struct item *it)
{
    return ITEM_HEADER_SIZE + it->nkey + it->nbytes;
}

/* --- Refs (engine only) ----------------------------------------------------
 * `base` is (uintptr_t)arena - 8, so that ref 1 is the arena's first byte;
 * integer arithmetic, because a pointer before the arena would be UB. */

static inline uintptr_t item_ref_base(const void *arena)
{
    return (uintptr_t)arena - 8;
}

static inline struct item *item_at(uintptr_t base, uint32_t ref)
{
    return (struct item *)(base + ((uintptr_t)ref << 3));
}

static inline uint32_t item_ref(uintptr_t base, const struct item *it)
{
    return (uint32_t)(((uintptr_t)it - base) >> 3);
}

#endif
