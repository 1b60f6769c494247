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
 * Wakeups (Dekker, issue 17): a consumer about to sleep says so in `sleep`
 * (an odd value, new for every sleep), fences, and looks at tail once more;
 * the producer stores tail, fences, and loads `sleep`. With both fences
 * sequentially consistent, at least one side sees the other's store: either
 * the consumer finds the new records and does not sleep, or the producer
 * finds it asleep and wakes it. A consumer that is busy (between two
 * sleeps: `sleep` even) gets no wakeup at all, since it looks at its
 * channels every loop iteration anyway; a sleeping one gets one wakeup per
 * sleep however many batches reach it meanwhile (the producer remembers
 * which sleep it woke). Before issue 17 the producer woke the consumer
 * whenever it had drained the previous batch, which under load is nearly
 * every batch: a MSG_RING and a CQE per loop iteration of each shard.
 *
 * Large records travel by pointer (issue 15): a payload over capacity/8 is
 * written into a block of its own, and the ring carries an 8-byte record
 * pointing to it (spare = XCHAN_INDIRECT). The consumer peeks the block's
 * header as if it were in the ring, and frees the blocks it has peeked at
 * its next release. So a ring needs no room for the largest item (-I): it
 * stays small, and since a ring cycles through all of its pages, small is
 * what stays resident.
 *
 *   ring: | hdr payload | hdr(INDIRECT) ptr | hdr payload |
 *                                      └──> [next | hdr | payload of 1 MiB]
 */
#include "xchan.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define XCHAN_ALIGN 8
#define XREC_HDR sizeof(struct xrec)
#define XCHAN_INDIRECT 1 /* xrec.spare: the payload is a pointer to a struct xbig */

/* A large record's own block. */
struct xbig {
    struct xbig *next; /* the consumer's list of blocks to free at release */
    struct xrec hdr;   /* what xchan_peek returns; the payload follows */
};

struct xchan {
    /* producer's cache line */
    alignas(64) uint64_t prod_tail; /* end of committed records */
    uint64_t prod_published;        /* last tail stored to `tail` */
    uint64_t prod_head_cache;       /* producer's view of head */
    uint64_t prod_reserved_at;      /* position of the reserved record */
    struct xbig *prod_big;          /* the reserved record's block, if large */
    uint64_t prod_woken;            /* the consumer's sleep last woken */

    alignas(64) _Atomic uint64_t tail;
    alignas(64) _Atomic uint64_t head;
    alignas(64) _Atomic uint64_t sleep; /* odd: the consumer may sleep */

    /* consumer's cache line */
    alignas(64) uint64_t cons_head;  /* next record to read */
    uint64_t cons_tail_cache;        /* consumer's view of tail */
    struct xbig *cons_peeked;        /* large blocks peeked, freed at release */
    uint64_t cons_sleep;             /* the consumer's copy of sleep */

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
    atomic_init(&chan->sleep, 0);
    return chan;
}

static void free_bigs(struct xbig *big)
{
    while (big != NULL) {
        struct xbig *next = big->next;
        free(big);
        big = next;
    }
}

void xchan_destroy(struct xchan **chan)
{
    if (*chan == NULL)
        return;
    struct xchan *c = *chan;
    /* large blocks peeked but not released, reserved but not committed, or
     * committed and never read (a shard stopped first) */
    free_bigs(c->cons_peeked);
    free(c->prod_big);
    for (uint64_t pos = c->cons_head; pos < c->prod_tail;) {
        const struct xrec *rec = (const struct xrec *)(c->buf + (pos & c->mask));
        if (rec->type != 0 && rec->spare == XCHAN_INDIRECT) {
            struct xbig *big;
            memcpy(&big, rec + 1, sizeof(big));
            free(big);
        }
        pos += rec_size(rec->len);
    }
    free((*chan)->buf);
    free(*chan);
    *chan = NULL;
}

size_t xchan_max_payload(const struct xchan *chan)
{
    (void)chan; /* large ones go by pointer */
    return UINT32_MAX - sizeof(struct xbig);
}

static size_t inline_max(const struct xchan *chan)
{
    return chan->capacity / 8;
}

void *xchan_reserve(struct xchan *chan, size_t len)
{
    bool big = len > inline_max(chan);
    if (big && len > xchan_max_payload(chan))
        return NULL;
    size_t need = rec_size(big ? sizeof(struct xbig *) : len);
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
    if (big) {
        /* the padding written above stays: it is a valid record */
        free(chan->prod_big);
        chan->prod_big = malloc(sizeof(struct xbig) + len);
        if (chan->prod_big == NULL)
            return NULL;
        return chan->prod_big + 1;
    }
    return chan->buf + (pos & chan->mask) + XREC_HDR;
}

void xchan_commit(struct xchan *chan, uint16_t type, size_t len)
{
    struct xrec *rec = (struct xrec *)(chan->buf + (chan->prod_reserved_at & chan->mask));
    struct xbig *big = chan->prod_big;
    if (big != NULL) {
        big->next = NULL;
        big->hdr = (struct xrec){.len = (uint32_t)len, .type = type, .spare = 0};
        memcpy(rec + 1, &big, sizeof(big));
        len = sizeof(big);
        chan->prod_big = NULL;
    }
    rec->len = (uint32_t)len;
    rec->type = type;
    rec->spare = big != NULL ? XCHAN_INDIRECT : 0;
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
    uint64_t sleep = atomic_load_explicit(&chan->sleep, memory_order_relaxed);
    /* Asleep, or about to, and not yet woken for this sleep. */
    if ((sleep & 1) == 0 || sleep == chan->prod_woken)
        return false;
    chan->prod_woken = sleep;
    return true;
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
        if (rec->type != 0 && rec->spare == XCHAN_INDIRECT) {
            struct xbig *big;
            memcpy(&big, rec + 1, sizeof(big));
            big->next = chan->cons_peeked;
            chan->cons_peeked = big;
            return &big->hdr;
        }
        if (rec->type != 0)
            return rec;
    }
}

bool xchan_release(struct xchan *chan)
{
    free_bigs(chan->cons_peeked);
    chan->cons_peeked = NULL;
    atomic_store_explicit(&chan->head, chan->cons_head, memory_order_release);
    /* No fence: a record this misses is found by xchan_sleep's look. */
    chan->cons_tail_cache = atomic_load_explicit(&chan->tail, memory_order_acquire);
    return chan->cons_tail_cache != chan->cons_head;
}

bool xchan_sleep(struct xchan *chan)
{
    /* A new odd value for every sleep, so that a wakeup of an earlier one
     * never stands for this one. */
    chan->cons_sleep += (chan->cons_sleep & 1) ? 2 : 1;
    atomic_store_explicit(&chan->sleep, chan->cons_sleep, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    chan->cons_tail_cache = atomic_load_explicit(&chan->tail, memory_order_acquire);
    return chan->cons_tail_cache == chan->cons_head;
}

void xchan_awake(struct xchan *chan)
{
    if ((chan->cons_sleep & 1) == 0)
        return;
    chan->cons_sleep++;
    atomic_store_explicit(&chan->sleep, chan->cons_sleep, memory_order_relaxed);
}
