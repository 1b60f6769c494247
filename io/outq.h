/*
 * outq.h: a connection's output queue (the contract; see outq.c).
 *
 * Replies are appended through the queue's sink (core/sink.h) into a chain
 * of segments and sent in order. A segment is one of:
 *
 *   DATA     bytes the queue owns (a 16 KiB segment from the shard's cache,
 *            or an exact malloc for a larger reply);
 *   PENDING  a placeholder for a reply that another shard is composing:
 *            sending stops there until outq_fill() gives it its bytes;
 *   REF      bytes the queue does not own (an item's value in the store,
 *            for zero-copy replies): sent in place, and their owner is told
 *            through the segment's release callback once the kernel is done
 *            with them (after the send completed, or when the queue is
 *            cleared), never before.
 *
 *   head                                                             tail
 *   [DATA 16K: replies..] -> [PENDING: shard 3] -> [REF: value] -> [DATA]
 *        ^sent so far                                            ^sink.pos
 *
 * The queue never makes a syscall: io/conn.c builds its iovecs with
 * outq_iov() and reports what the kernel took with outq_sent(). Segments of
 * every queue of a shard come from that shard's outq_cache, so a busy
 * connection allocates nothing per request and an idle one holds no output
 * memory. One thread (the connection's shard) uses a queue and its cache.
 */
#ifndef CORECACHE_IO_OUTQ_H
#define CORECACHE_IO_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../core/sink.h"
#include "../core/status.h"

/* Segment sizes: regular segments and placeholders come from two caches;
 * larger needs are malloc'ed exactly. */
#define OUTQ_SEG_SIZE (16 * 1024)
#define OUTQ_SMALL_SIZE 512

enum oseg_kind {
    OSEG_DATA,    /* bytes ready to send */
    OSEG_PENDING, /* a forwarded request's reply, not here yet */
    OSEG_REF,     /* bytes owned elsewhere, released after the send */
};

/* Called once the kernel no longer needs a REF segment's bytes. */
typedef void (*outq_release_fn)(void *owner, const void *data, size_t len);

struct oseg {
    struct oseg *next;
    char *data;
    uint32_t len;  /* bytes written */
    uint32_t cap;
    uint32_t sent; /* bytes already sent */
    uint8_t kind;
    uint8_t origin;   /* which cache it returns to, or malloc */
    uint8_t ext_data; /* data was malloc'ed separately (a large fill) */
    outq_release_fn release; /* REF only */
    void *owner;             /* REF only */
    /* issue 17 (see outq.c): a continuation writes into the rest of
     * `base`'s buffer; a placeholder or REF segment that closed the sink's
     * region holds that rest as `spare` (from base's spare_off) for the
     * next write. Each is one borrow of the base, which goes back to the
     * cache with the last of them if it left the queue before (detached). */
    struct oseg *base;
    struct oseg *spare;
    uint32_t borrows;
    uint32_t spare_off;
    uint8_t detached;
};

/* A shard's free segments, shared by all its queues. */
struct outq_cache {
    struct oseg *segs;
    unsigned nsegs;
    struct oseg *small;
    unsigned nsmall;
};

struct outq {
    struct sink sink; /* writes into tail; first member: grow() casts back */
    struct outq_cache *cache;
    struct oseg *head;
    struct oseg *tail;
    uint64_t bytes;    /* written and not yet sent, placeholders excluded */
    uint32_t npending; /* placeholders not yet filled */
};

/* An empty queue drawing segments from `cache`. */
void outq_init(struct outq *q, struct outq_cache *cache);

/* Frees every segment (releasing REF ones); the queue stays usable. */
void outq_clear(struct outq *q);

/* Frees the cache's segments (shard teardown). */
void outq_cache_fini(struct outq_cache *cache);

/* Brings the queue's accounting up to date with what was written through
 * its sink since the last call; called before reading `bytes`. Inline: it
 * runs before every request a connection parses. */
static inline void outq_sync(struct outq *q)
{
    struct oseg *tail = q->tail;
    if (q->sink.pos == NULL || tail == NULL)
        return;
    uint32_t len = (uint32_t)(q->sink.pos - tail->data);
    q->bytes += len - tail->len;
    tail->len = len;
}

/* Reserves a placeholder, in order, for a reply that comes later. NULL
 * when memory ran out. */
struct oseg *outq_reserve(struct outq *q);

/* Gives a placeholder its bytes (copied; len may be 0: nothing to say).
 * False when memory ran out (the placeholder stays pending). */
bool outq_fill(struct outq *q, struct oseg *seg, const void *data, size_t len) MC_MUST_CHECK;

/* Appends `len` bytes at `data` without copying them; `release(owner,
 * data, len)` is called once they are sent or dropped. False when memory
 * ran out (release is not called then: the caller still owns them). */
bool outq_ref(struct outq *q, const void *data, size_t len, outq_release_fn release, void *owner) MC_MUST_CHECK;

/* issue 17: when no placeholder is pending and the unsent bytes are spread
 * over at least OUTQ_COMPACT_MIN segments (a pipelined batch whose
 * forwarded replies were filled in between local ones) and fit in one
 * segment, copies them into one, so that the send takes one iovec and the
 * queue one segment to walk. Leaves the queue as it was when it cannot
 * (a REF segment, too many bytes, no memory). */
#define OUTQ_COMPACT_MIN 4
void outq_compact(struct outq *q);

/* Lets go of the segments at the head that have nothing left to send (a
 * noreply's filled placeholder holds no byte, and no send would ever
 * reclaim it while later placeholders keep the connection from sending). */
void outq_trim(struct outq *q);

/* True when the head of the queue has bytes that may be sent now. */
bool outq_ready(const struct outq *q);

/* Fills iov with the unsent bytes from the head, stopping at the first
 * placeholder or after `max` entries; returns how many it filled. */
unsigned outq_iov(struct outq *q, struct iovec *iov, unsigned max);

/* The kernel sent `n` bytes from the head: advances, and returns fully
 * sent segments to the cache (REF ones to their owner). */
void outq_sent(struct outq *q, size_t n);

#endif
