/*
 * outq.c: a connection's output queue (see outq.h).
 *
 * The sink writes into the tail segment until it is full; grow() starts a
 * new one. A placeholder ends the sink's current region, so the next write
 * starts a segment after it and replies stay in request order however late
 * a placeholder is filled. A fill larger than the placeholder's 512 bytes
 * gets its own exact allocation (ext_data).
 *
 * Accounting: `bytes` counts written, unsent bytes of DATA and REF segments
 * (and filled placeholders), which is what the connection's flow control
 * compares with its cap. The tail's length trails the sink until
 * outq_sync() (the hot path writes through the sink alone).
 *
 * Reclaim: a segment leaves the head once every byte of it was sent. The
 * tail is only let go when the sink is not still writing into it.
 *
 * Continuations (issue 17): a placeholder (or a REF segment) closes the
 * sink's region, but it keeps the rest of that segment's buffer as its
 * spare, and the next write continues there through a small
 * segment header (a continuation) instead of taking a fresh 16 KiB
 * segment: a pipelined batch that alternates local and forwarded keys
 * stays in one buffer.
 *
 *   base [A......|spare..........]      A, B, C in one buffer, in order
 *   queue: base(A) -> placeholder -> cont(B) -> placeholder -> cont(C)
 *
 * The base counts its borrowers (continuations and the spare); if it is
 * reclaimed while borrowed it is only marked detached, and goes back to
 * the cache when its last borrower does.
 */
#include "outq.h"

#include <stdlib.h>
#include <string.h>

enum { SEG_FROM_CACHE = 1, SEG_FROM_SMALL = 2, SEG_FROM_MALLOC = 3 };

/* The least room worth continuing in after a placeholder (issue 17). */
#define OUTQ_SPARE_MIN 256

/* How many free segments a shard keeps: 256 x 16 KiB, 4096 x 512 B. */
#define OUTQ_CACHE_MAX 256
#define OUTQ_SMALL_CACHE_MAX 4096

static void seg_reset(struct oseg *seg, uint32_t cap, uint8_t kind, uint8_t origin)
{
    seg->next = NULL;
    seg->data = (char *)(seg + 1);
    seg->len = 0;
    seg->cap = cap;
    seg->sent = 0;
    seg->kind = kind;
    seg->origin = origin;
    seg->ext_data = 0;
    seg->release = NULL;
    seg->owner = NULL;
    seg->base = NULL;
    seg->spare = NULL;
    seg->borrows = 0;
    seg->spare_off = 0;
    seg->detached = 0;
}

/* A DATA segment with room for `need` bytes. */
static struct oseg *seg_get(struct outq_cache *cache, size_t need)
{
    struct oseg *seg;
    if (need > OUTQ_SEG_SIZE) {
        seg = malloc(sizeof(*seg) + need);
        if (seg != NULL)
            seg_reset(seg, (uint32_t)need, OSEG_DATA, SEG_FROM_MALLOC);
        return seg;
    }
    if (cache->segs != NULL) {
        seg = cache->segs;
        cache->segs = seg->next;
        cache->nsegs--;
    } else if ((seg = malloc(sizeof(*seg) + OUTQ_SEG_SIZE)) == NULL) {
        return NULL;
    }
    seg_reset(seg, OUTQ_SEG_SIZE, OSEG_DATA, SEG_FROM_CACHE);
    return seg;
}

/* A small segment: a placeholder, or a REF segment's header. */
static struct oseg *seg_get_small(struct outq_cache *cache, uint8_t kind)
{
    struct oseg *seg;
    if (cache->small != NULL) {
        seg = cache->small;
        cache->small = seg->next;
        cache->nsmall--;
    } else if ((seg = malloc(sizeof(*seg) + OUTQ_SMALL_SIZE)) == NULL) {
        return NULL;
    }
    seg_reset(seg, OUTQ_SMALL_SIZE, kind, SEG_FROM_SMALL);
    return seg;
}

static void seg_put(struct outq_cache *cache, struct oseg *seg);

/* One borrower of base's buffer is done with it. */
static void base_unborrow(struct outq_cache *cache, struct oseg *base)
{
    if (--base->borrows == 0 && base->detached) {
        base->detached = 0;
        seg_put(cache, base);
    }
}

static void seg_put(struct outq_cache *cache, struct oseg *seg)
{
    if (seg->borrows > 0) {
        seg->detached = 1; /* the last borrower puts it */
        return;
    }
    if (seg->spare != NULL) {
        struct oseg *base = seg->spare;
        seg->spare = NULL;
        base_unborrow(cache, base);
    }
    if (seg->base != NULL) {
        struct oseg *base = seg->base;
        seg->base = NULL;
        base_unborrow(cache, base);
    }
    if (seg->kind == OSEG_REF && seg->release != NULL)
        seg->release(seg->owner, seg->data, seg->len);
    if (seg->ext_data)
        free(seg->data);
    if (seg->origin == SEG_FROM_CACHE && cache->nsegs < OUTQ_CACHE_MAX) {
        seg->next = cache->segs;
        cache->segs = seg;
        cache->nsegs++;
    } else if (seg->origin == SEG_FROM_SMALL && cache->nsmall < OUTQ_SMALL_CACHE_MAX) {
        seg->next = cache->small;
        cache->small = seg;
        cache->nsmall++;
    } else {
        free(seg);
    }
}

static void append(struct outq *q, struct oseg *seg)
{
    if (q->tail != NULL)
        q->tail->next = seg;
    else
        q->head = seg;
    q->tail = seg;
}

/* A continuation into the spare of the segment that closed the sink's
 * region, when `need` fits there (the spare's borrow passes to it). */
static struct oseg *spare_take(struct outq *q, size_t need)
{
    struct oseg *closer = q->tail;
    if (q->sink.pos != NULL || closer == NULL || closer->spare == NULL)
        return NULL;
    struct oseg *base = closer->spare;
    if (base->cap - base->spare_off < need)
        return NULL; /* the closer gives it back when it is put */
    struct oseg *seg = seg_get_small(q->cache, OSEG_DATA);
    if (seg == NULL)
        return NULL;
    seg->data = base->data + base->spare_off;
    seg->cap = base->cap - base->spare_off;
    seg->base = base;
    closer->spare = NULL;
    return seg;
}

static bool outq_grow(struct sink *sink, size_t need)
{
    struct outq *q = (struct outq *)sink;
    outq_sync(q);
    struct oseg *seg = spare_take(q, need);
    if (seg == NULL)
        seg = seg_get(q->cache, need);
    if (seg == NULL)
        return false;
    append(q, seg);
    sink->pos = seg->data;
    sink->end = seg->data + seg->cap;
    return true;
}

/* The sink's zero-copy hook (core/sink.h): a REF segment. */
static bool outq_sink_ref(struct sink *sink, const void *data, size_t len, outq_release_fn release,
                          void *owner)
{
    return outq_ref((struct outq *)sink, data, len, release, owner);
}

void outq_init(struct outq *q, struct outq_cache *cache)
{
    memset(q, 0, sizeof(*q));
    q->sink.grow = outq_grow;
    q->sink.ref = outq_sink_ref;
    q->cache = cache;
}

void outq_clear(struct outq *q)
{
    while (q->head != NULL) {
        struct oseg *seg = q->head;
        q->head = seg->next;
        seg_put(q->cache, seg);
    }
    q->tail = NULL;
    q->sink.pos = q->sink.end = NULL;
    q->bytes = 0;
    q->npending = 0;
}

void outq_cache_fini(struct outq_cache *cache)
{
    while (cache->segs != NULL) {
        struct oseg *seg = cache->segs;
        cache->segs = seg->next;
        free(seg);
    }
    while (cache->small != NULL) {
        struct oseg *seg = cache->small;
        cache->small = seg->next;
        free(seg);
    }
    cache->nsegs = cache->nsmall = 0;
}

/* Appends a segment the sink must not write into: the next write starts
 * a new segment after it. */
static void append_closed(struct outq *q, struct oseg *seg)
{
    struct oseg *tail = q->tail;
    if (q->sink.pos != NULL && tail != NULL && tail->kind == OSEG_DATA &&
        q->sink.end - q->sink.pos >= OUTQ_SPARE_MIN) {
        /* issue 17: the rest of the buffer becomes the spare */
        struct oseg *base = tail->base != NULL ? tail->base : tail;
        if (base->origin == SEG_FROM_CACHE) {
            base->borrows++;
            base->spare_off = (uint32_t)(q->sink.pos - base->data);
            seg->spare = base;
        }
    }
    append(q, seg);
    q->sink.pos = q->sink.end = NULL;
}

struct oseg *outq_reserve(struct outq *q)
{
    outq_sync(q);
    struct oseg *seg = seg_get_small(q->cache, OSEG_PENDING);
    if (seg == NULL)
        return NULL;
    append_closed(q, seg);
    q->npending++;
    return seg;
}

bool outq_fill(struct outq *q, struct oseg *seg, const void *data, size_t len)
{
    if (len > seg->cap) {
        char *ext = malloc(len);
        if (ext == NULL)
            return false;
        seg->data = ext;
        seg->cap = (uint32_t)len;
        seg->ext_data = 1;
    }
    if (len > 0)
        memcpy(seg->data, data, len);
    seg->len = (uint32_t)len;
    seg->kind = OSEG_DATA;
    q->bytes += len;
    q->npending--;
    return true;
}

bool outq_ref(struct outq *q, const void *data, size_t len, outq_release_fn release, void *owner)
{
    outq_sync(q);
    struct oseg *seg = seg_get_small(q->cache, OSEG_REF);
    if (seg == NULL)
        return false;
    seg->data = (char *)data;
    seg->len = seg->cap = (uint32_t)len;
    seg->release = release;
    seg->owner = owner;
    append_closed(q, seg);
    q->bytes += len;
    return true;
}

void outq_compact(struct outq *q)
{
    outq_sync(q);
    if (q->npending != 0 || q->head == NULL || q->head == q->tail)
        return;
    size_t total = 0;
    unsigned n = 0;
    for (const struct oseg *seg = q->head; seg != NULL; seg = seg->next) {
        if (seg->kind != OSEG_DATA)
            return; /* REF bytes stay where they are */
        total += seg->len - seg->sent;
        n++;
    }
    if (n < OUTQ_COMPACT_MIN || total > OUTQ_SEG_SIZE)
        return;
    /* Taken before the old ones go back: it must not be one of them. */
    struct oseg *one = seg_get(q->cache, OUTQ_SEG_SIZE);
    if (one == NULL)
        return;
    char *p = one->data;
    struct oseg *seg = q->head;
    while (seg != NULL) {
        struct oseg *next = seg->next;
        memcpy(p, seg->data + seg->sent, seg->len - seg->sent);
        p += seg->len - seg->sent;
        seg_put(q->cache, seg);
        seg = next;
    }
    one->len = (uint32_t)total;
    q->head = q->tail = one;
    /* The sink goes on writing after the copied bytes; bytes is unchanged. */
    q->sink.pos = one->data + total;
    q->sink.end = one->data + one->cap;
}

/* Returns fully sent segments to the cache. */
static void reclaim(struct outq *q)
{
    while (q->head != NULL) {
        struct oseg *seg = q->head;
        if (seg->kind == OSEG_PENDING || seg->sent < seg->len)
            break;
        if (seg == q->tail) {
            /* The sink may still be writing here; only let go when the
             * segment is exactly full or the sink is elsewhere. */
            if (q->sink.pos != NULL && q->sink.pos != seg->data + seg->len)
                break;
            q->tail = NULL;
            q->sink.pos = q->sink.end = NULL;
        }
        q->head = seg->next;
        seg_put(q->cache, seg);
    }
}

void outq_trim(struct outq *q)
{
    outq_sync(q);
    reclaim(q);
}

bool outq_ready(const struct outq *q)
{
    for (const struct oseg *seg = q->head; seg != NULL; seg = seg->next) {
        if (seg->kind == OSEG_PENDING)
            return false;
        if (seg->len > seg->sent)
            return true;
        if (seg == q->tail && q->sink.pos != NULL && q->sink.pos != seg->data + seg->len)
            return true;
    }
    return false;
}

unsigned outq_iov(struct outq *q, struct iovec *iov, unsigned max)
{
    outq_sync(q);
    reclaim(q);
    unsigned n = 0;
    for (struct oseg *seg = q->head; seg != NULL && n < max; seg = seg->next) {
        if (seg->kind == OSEG_PENDING)
            break;
        if (seg->len > seg->sent) {
            iov[n].iov_base = seg->data + seg->sent;
            iov[n].iov_len = seg->len - seg->sent;
            n++;
        }
    }
    return n;
}

void outq_sent(struct outq *q, size_t n)
{
    outq_sync(q);
    q->bytes -= n;
    for (struct oseg *seg = q->head; seg != NULL && n > 0; seg = seg->next) {
        size_t take = seg->len - seg->sent;
        if (take > n)
            take = n;
        seg->sent += (uint32_t)take;
        n -= take;
    }
    reclaim(q);
}
