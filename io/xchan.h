/*
 * xchan.h: one-way channel between two shards (the contract; see xchan.c).
 *
 * A single-producer, single-consumer ring of variable-length records in
 * shared memory. The producer shard reserves room, writes a record in place,
 * and commits; records become visible to the consumer when the producer
 * publishes (once per loop iteration, so a batch costs one release store and
 * one wakeup). The consumer peeks records in order and releases them once
 * processed. No locks and no read-modify-write atomics: each index has one
 * writer, published with a release store and read with an acquire load.
 *
 * Every pair of shards has two channels (one each way); FIFO order per
 * channel is what keeps a connection's requests for one key in order.
 */
#ifndef CORECACHE_IO_XCHAN_H
#define CORECACHE_IO_XCHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xchan;

/* Record header; the payload follows, 8-byte aligned. */
struct xrec {
    uint32_t len;  /* payload bytes */
    uint16_t type; /* owner-defined; 0 is reserved for padding */
    uint16_t spare;
};

/* Creates a channel holding at least `min_capacity` bytes of records
 * (rounded up to a power of two). Returns NULL on allocation failure. */
struct xchan *xchan_create(size_t min_capacity);
void xchan_destroy(struct xchan **chan);

/* Largest payload one record can carry. */
size_t xchan_max_payload(const struct xchan *chan);

/*
 * Producer side (one thread).
 * xchan_reserve: a contiguous payload area of `len` bytes, or NULL when the
 * channel is full (retry after the consumer released records).
 * xchan_commit: finishes the record reserved last, with its type; `len` may
 * be smaller than reserved (the rest is given back).
 * xchan_publish: makes committed records visible; returns true when the
 * consumer said it sleeps (xchan_sleep) and nobody woke it since: the
 * caller must wake it (one MSG_RING). A busy consumer is never woken.
 */
void *xchan_reserve(struct xchan *chan, size_t len);
void xchan_commit(struct xchan *chan, uint16_t type, size_t len);
bool xchan_publish(struct xchan *chan);
/* True if records are committed but not yet published. */
bool xchan_unpublished(const struct xchan *chan);

/*
 * Consumer side (one thread).
 * xchan_peek: the oldest unread record, or NULL. Its payload follows the
 * header. Valid until xchan_release.
 * xchan_release: frees every record peeked so far; call once per batch.
 * Returns true if more records were published meanwhile (peek again).
 * xchan_sleep: before the consumer's thread may block, on every channel it
 * consumes: says it sleeps and returns true if the channel is empty, false
 * if records wait (do not block then). Together with xchan_publish's
 * answer this makes wakeups exact: either the consumer sees the new records
 * before it blocks, or the producer sees that it must wake it.
 * xchan_awake: once the consumer's thread runs again (after the block, or
 * instead of it): producers stop waking it.
 *
 *     do {
 *         while ((rec = xchan_peek(chan)) != NULL)
 *             handle(rec);
 *     } while (xchan_release(chan));
 */
const struct xrec *xchan_peek(struct xchan *chan);
bool xchan_release(struct xchan *chan);
bool xchan_sleep(struct xchan *chan);
void xchan_awake(struct xchan *chan);

static inline const void *xrec_payload(const struct xrec *rec)
{
    return rec + 1;
}

#endif
