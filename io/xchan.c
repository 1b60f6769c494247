/*
 * xchan.c: single-producer, single-consumer ring of variable-length records.
 *
 * Layout: a power-of-two byte buffer addressed by ever-growing 64-bit
 * positions (position & mask is the offset), so "full" and "empty" need no
 * extra flag. Each record is an 8-byte header and a payload padded to 8
 * bytes. A record never wraps: when it does not fit before the end of the
 * buffer, the producer first writes a padding record (type 0) to the end.
 *
 *   buf: | hdr payload.. | hdr payload....... | hdr(pad) ......... |
 *        ^head (consumer has released up to here)          ^tail (published)
 *
 * Indices, each with exactly one writer:
 *   tail  written by the producer (release) when it publishes a batch;
 *   head  written by the consumer (release) when it releases a batch.
 * Each side keeps a private copy of the other's index and reloads it only
 * when its copy says the ring is full (producer) or empty (consumer).
 *
 * Wakeups (Dekker): the producer stores tail, fences, loads head; the
 * consumer stores head, fences, loads tail. With both fences sequentially
 * consistent, at least one side sees the other's store: either the consumer
 * finds the new records before it sleeps, or the producer finds that the
 * consumer had drained everything and sends it a wakeup. No record is ever
 * left unseen by a sleeping consumer, and a busy consumer gets no wakeups.
 */
#include "xchan.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define XCHAN_ALIGN 8
#define XREC_HDR sizeof(struct xrec)

struct xchan {
    /* producer's cache line */
    alignas(64) uint64_t prod_tail; /* end of committed records */
    uint64_t prod_published;        /* last tail stored to `tail` */
    uint64_t prod_head_cache;       /* producer's view of head */
    uint64_t prod_reserved_at;      /* position of the reserved record */

    alignas(64) _Atomic uint64_t tail;
    alignas(64) _Atomic uint64_t head;

    /* consumer's cache line */
    alignas(64) uint64_t cons_head;  /* next record to read */
    uint64_t cons_tail_cache;        /* consumer's view of tail */

    alignas(64) size_t capacity;
    size_t mask;
    char *buf;
};

static inline size_t rec_size(size_t len)
{
    return XREC_HDR + ((len + XCHAN_ALIGN - 1) & ~(size_t)(XCHAN_ALIGN - 1));
}

struct xchan *xchan_create(size_t min_capacity)
{
    size_t cap = 4096;
    while (cap < min_capacity)
        cap <<= 1;
    struct xchan *chan = aligned_alloc(64, sizeof(*chan));
    if (chan == NULL)
        return NULL;
    memset(chan, 0, sizeof(*chan));
    chan->buf = aligned_alloc(64, cap);
    if (chan->buf == NULL) {
        free(chan);
        return NULL;
    }
    chan->capacity = cap;
    chan->mask = cap - 1;
    atomic_init(&chan->tail, 0);
    atomic_init(&chan->head, 0);
    return chan;
}

void xchan_destroy(struct xchan **chan)
{
    if (*chan == NULL)
        return;
    free((*chan)->buf);
    free(*chan);
    *chan = NULL;
}

size_t xchan_max_payload(const struct xchan *chan)
{
    /* Worst case a record needs padding to the end first, so only half the
     * ring can be promised to one record. */
    return chan->capacity / 2 - XREC_HDR;
}

void *xchan_reserve(struct xchan *chan, size_t len)
{
    size_t need = rec_size(len);
    uint64_t pos = chan->prod_tail;
    size_t to_end = chan->capacity - (size_t)(pos & chan->mask);
    size_t total = to_end < need ? to_end + need : need;

    if (chan->capacity - (size_t)(pos - chan->prod_head_cache) < total) {
        chan->prod_head_cache = atomic_load_explicit(&chan->head, memory_order_acquire);
        if (chan->capacity - (size_t)(pos - chan->prod_head_cache) < total)
            return NULL;
    }
    if (to_end < need) {
        struct xrec *pad = (struct xrec *)(chan->buf + (pos & chan->mask));
        pad->len = (uint32_t)(to_end - XREC_HDR);
        pad->type = 0;
        pos += to_end;
        chan->prod_tail = pos;
    }
    chan->prod_reserved_at = pos;
    return chan->buf + (pos & chan->mask) + XREC_HDR;
}

void xchan_commit(struct xchan *chan, uint16_t type, size_t len)
{
    struct xrec *rec = (struct xrec *)(chan->buf + (chan->prod_reserved_at & chan->mask));
    rec->len = (uint32_t)len;
    rec->type = type;
    rec->spare = 0;
    chan->prod_tail = chan->prod_reserved_at + rec_size(len);
}

bool xchan_unpublished(const struct xchan *chan)
{
    return chan->prod_tail != chan->prod_published;
}

bool xchan_publish(struct xchan *chan)
{
    uint64_t old = chan->prod_published;
    if (chan->prod_tail == old)
        return false;
    atomic_store_explicit(&chan->tail, chan->prod_tail, memory_order_release);
    chan->prod_published = chan->prod_tail;
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t head = atomic_load_explicit(&chan->head, memory_order_relaxed);
    chan->prod_head_cache = head;
    /* The consumer had read everything published before: it may sleep. */
    return head == old;
}

const struct xrec *xchan_peek(struct xchan *chan)
{
    for (;;) {
        if (chan->cons_head == chan->cons_tail_cache) {
            chan->cons_tail_cache = atomic_load_explicit(&chan->tail, memory_order_acquire);
            if (chan->cons_head == chan->cons_tail_cache)
                return NULL;
        }
        const struct xrec *rec = (const struct xrec *)(chan->buf + (chan->cons_head & chan->mask));
        chan->cons_head += rec_size(rec->len);
        if (rec->type != 0)
            return rec;
    }
}

bool xchan_release(struct xchan *chan)
{
    atomic_store_explicit(&chan->head, chan->cons_head, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    chan->cons_tail_cache = atomic_load_explicit(&chan->tail, memory_order_acquire);
    return chan->cons_tail_cache != chan->cons_head;
}
