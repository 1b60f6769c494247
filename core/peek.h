/*
 * peek.h: reads served where they arrive (issue 17): a shard answers a
 * get for a key another shard owns straight from the owner's memory,
 * without a message, while the owner keeps writing (the contract; see
 * peek.c for the protocol and why it is safe).
 *
 * One struct peek_shard per shard, shared by all: the owner's write
 * sequence (odd while it runs a command that may change what readers
 * read) and where its store is. One struct peek_reader per shard, its
 * own: what it must not read remotely yet (requests the connection being
 * served forwarded and has not yet seen answered, a flush_all it sent and
 * the owner has not yet applied). io/ owns both (io/route.c, io/qsbr.c); core/ only reads them.
 */
#ifndef CORECACHE_CORE_PEEK_H
#define CORECACHE_CORE_PEEK_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sink.h"
#include "item.h"
#include "store.h"

/* Largest value served remotely; a larger one is forwarded (a reply that
 * large is sent by reference from the owner's memory anyway). */
#define PEEK_VALUE_MAX 4096

struct peek_shard {
    /* read-only once set: on lines of their own, which stay shared */
    alignas(64) struct store_peek_view view; /* written once before `readable` is set */
    atomic_bool readable;           /* view is set and the store alive (release/acquire) */
    /* written by the owner on every write command: its own line */
    alignas(64) atomic_uint wseq;   /* odd while the owner may change items or index */
    alignas(64) atomic_uint_least64_t flushes; /* flush_all applied by the owner so far */
};

struct peek_reader {
    struct peek_shard *shards; /* every shard's, indexed by id */
    unsigned nshards;
    const uint32_t *pending;   /* [peek_slot(hash)]: requests this shard forwarded
                                * for keys of that slot, not yet answered: while
                                * any, a get of such a key is forwarded too, so it
                                * runs after them in channel order */
    const atomic_uint_least64_t *flush_issued; /* flush_alls any shard started: an owner
                                * whose `flushes` is behind it is read by
                                * forwarding (after the flush in its queue) */
};

/* The owner, around anything that may change an index entry, an item a
 * reader could be reading, or the flush state: a seqlock's write side.
 * Not nested. Called by the owner's thread only. */
static inline void peek_write_begin(struct peek_shard *p)
{
    unsigned s = atomic_load_explicit(&p->wseq, memory_order_relaxed);
    atomic_store_explicit(&p->wseq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static inline void peek_write_end(struct peek_shard *p)
{
    unsigned s = atomic_load_explicit(&p->wseq, memory_order_relaxed);
    atomic_store_explicit(&p->wseq, s + 1, memory_order_release);
}

/* Slots of peek_reader.pending: keys are told apart by their hash's top bits. */
#define PEEK_SLOTS_BITS 12
#define PEEK_SLOTS (1u << PEEK_SLOTS_BITS)
static inline unsigned peek_slot(uint64_t hash)
{
    return (unsigned)(hash >> (64 - PEEK_SLOTS_BITS));
}

enum peek_result {
    PEEK_FORWARD, /* cannot be served here: forward it (nothing was written) */
    PEEK_HIT,     /* the VALUE line and data were written to `out` */
    PEEK_HIT_BUMP, /* the same, and the owner must count the read (exec's bump()) */
    PEEK_MISS,    /* the key is absent: nothing to write for a get */
    PEEK_NOMEM,   /* the sink ran out of memory */
};

/* A validated copy of an owner's item: header, key and value (peek_lookup). */
#define PEEK_WORDS_MAX ((28 + 255 + PEEK_VALUE_MAX + 7) / 8)
struct peek_copy {
    uint64_t loc;  /* where it lies in the owner's store (segidx.h) */
    unsigned wseq; /* the owner's write sequence it was read at */
    union {
        uint64_t w[PEEK_WORDS_MAX];
        struct item it;
    } u;
};

/*
 * The read itself, for any protocol: PEEK_HIT or PEEK_HIT_BUMP with *found
 * pointing into `copy` (the item as the owner had it), PEEK_MISS, or
 * PEEK_FORWARD; the rules are peek_get()'s. Writes nothing.
 */
enum peek_result peek_lookup(const struct peek_reader *r, unsigned owner, const char *key,
                             uint32_t nkey, uint64_t hash, struct peek_copy *copy,
                             const struct item **found);

/* memcached's "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n" for a
 * copy peek_lookup() returned; false when the sink ran out of memory. */
bool peek_write_text(const struct item *it, bool with_cas, struct sink *out);

/*
 * A text get (with_cas false) or gets (true) of `key` (hash: hash_key of
 * it), owned by shard `owner`, read from the owner's memory by the calling
 * shard and written to `out` in memcached's "VALUE ..." form. Forwarded
 * (PEEK_FORWARD, nothing written) when the read cannot be served exactly
 * here: the owner was writing or wrote meanwhile, the caller has requests
 * for a key of the same slot in flight to it, or the item is expired or
 * flushed (the owner unlinks and counts it). PEEK_HIT_BUMP when the owner's
 * own get would have changed the item (its eviction count, fetched/active
 * bits or atime): the caller then sends the owner the read to count
 * (store_remote_hit). Counts nothing itself: the caller counts a hit or
 * miss in its own store (store_count_remote_get).
 */
enum peek_result peek_get(const struct peek_reader *r, unsigned owner, const char *key,
                          uint32_t nkey, uint64_t hash, bool with_cas, struct sink *out);

#endif
