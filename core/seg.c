/*
 * seg.c: segment bookkeeping for the store (the contract is seg.h).
 *
 *     arena:  | seg 0 | seg 1 | seg 2 | seg 3 | seg 4 | ...      | seg n-1 | unused |
 *     state:    CLOSED  OPEN    FREE    CLOSED  CONT(3)  ...
 *
 *     queue SMALL: head -> seg 0 -> seg 1 -> ...     (oldest first)
 *     queue MAIN:  head -> seg 3 -> ...
 *     free list:   seg 2 -> ...
 *
 * Every segment is in exactly one of: the free list (FREE), one queue
 * (OPEN or CLOSED; a run's first segment stands for the whole run), or a
 * run behind its first segment (CONT, in no list). A queue is ordered by
 * the time its segments entered it, so its head is the eviction candidate.
 * open[q][b] is SEG_NONE or an OPEN segment of queue q and bucket b; an
 * OPEN segment is the open one of exactly one (q, b).
 *
 * The free list is doubly linked so that a run can take segments from its
 * middle; it is LIFO so that the memory reused first is the memory freed
 * last, still in cache and already faulted in (RSS grows only when every
 * segment touched so far is in use).
 */
#include "seg.h"

#include <stdlib.h>
#include <string.h>

static void list_unlink(struct segs *segs, uint32_t id, uint32_t *head, uint32_t *tail)
{
    struct seg *s = &segs->seg[id];
    if (s->prev != SEG_NONE)
        segs->seg[s->prev].next = s->next;
    else
        *head = s->next;
    if (s->next != SEG_NONE)
        segs->seg[s->next].prev = s->prev;
    else if (tail != NULL)
        *tail = s->prev;
    s->prev = s->next = SEG_NONE;
}

static void free_push(struct segs *segs, uint32_t id)
{
    struct seg *s = &segs->seg[id];
    s->state = SEG_FREE;
    s->prev = SEG_NONE;
    s->next = segs->free_head;
    if (segs->free_head != SEG_NONE)
        segs->seg[segs->free_head].prev = id;
    segs->free_head = id;
    segs->nfree++;
}

static void free_unlink(struct segs *segs, uint32_t id)
{
    list_unlink(segs, id, &segs->free_head, NULL);
    segs->nfree--;
}

static void queue_push(struct segs *segs, uint32_t id, unsigned q)
{
    struct seg *s = &segs->seg[id];
    s->queue = (uint8_t)q;
    s->seq = ++segs->seq;
    s->next = SEG_NONE;
    s->prev = segs->qtail[q];
    if (segs->qtail[q] != SEG_NONE)
        segs->seg[segs->qtail[q]].next = id;
    else
        segs->qhead[q] = id;
    segs->qtail[q] = id;
    segs->qsegs[q] += s->run;
}

static void queue_unlink(struct segs *segs, uint32_t id)
{
    unsigned q = segs->seg[id].queue;
    list_unlink(segs, id, &segs->qhead[q], &segs->qtail[q]);
    segs->qsegs[q] -= segs->seg[id].run;
}

enum mc_status seg_init(struct segs *segs, void *base, size_t arena_size, size_t seg_size)
{
    memset(segs, 0, sizeof(*segs));
    if (base == NULL || seg_size == 0 || seg_size % 8 != 0 || arena_size < seg_size ||
        arena_size / seg_size >= ((size_t)1 << 23) || seg_size > ((size_t)1 << 27))
        return MC_EINVAL;
    segs->nsegs = (uint32_t)(arena_size / seg_size);
    segs->seg = calloc(segs->nsegs, sizeof(*segs->seg));
    if (segs->seg == NULL)
        return MC_ENOMEM;
    segs->base = base;
    segs->seg_size = seg_size;
    segs->free_head = SEG_NONE;
    for (unsigned q = 0; q < SEG_QUEUES; q++) {
        segs->qhead[q] = segs->qtail[q] = SEG_NONE;
        for (unsigned b = 0; b < SEG_TTL_BUCKETS; b++)
            segs->open[q][b] = SEG_NONE;
    }
    /* pushed in reverse so that segment 0 is handed out first */
    for (uint32_t i = segs->nsegs; i-- > 0;) {
        segs->seg[i].run = 1;
        free_push(segs, i);
    }
    return MC_OK;
}

void seg_deinit(struct segs *segs)
{
    free(segs->seg);
    segs->seg = NULL;
}

unsigned seg_bucket(mc_time_t exptime, mc_time_t now)
{
    if (exptime == 0)
        return 0;
    uint32_t ttl = exptime > now ? exptime - now : 1;
    unsigned b = 1;
    while (b < SEG_TTL_BUCKETS - 1 && (ttl >> b) != 0)
        b++;
    return b;
}

void seg_take(struct segs *segs, uint32_t first, uint32_t run, unsigned q, unsigned bucket,
              bool open, mc_time_t now)
{
    for (uint32_t i = 0; i < run; i++) {
        free_unlink(segs, first + i);
        if (i > 0) {
            struct seg *c = &segs->seg[first + i];
            c->state = SEG_CONT;
            c->head = first;
            c->run = 1;
        }
    }
    struct seg *s = &segs->seg[first];
    uint32_t gen = s->gen, refs = s->refs;
    *s = (struct seg){
        .gen = gen, .refs = refs, .run = run, .head = first, .created = now, .last_link = 0,
        .exp_min = SEG_NEVER, .exp_max = 0, .bucket = (uint8_t)bucket,
    };
    s->prev = s->next = SEG_NONE;
    s->state = open ? SEG_OPEN : SEG_CLOSED;
    queue_push(segs, first, q);
    if (s->state == SEG_OPEN) {
        if (segs->open[q][bucket] != SEG_NONE)
            seg_close(segs, segs->open[q][bucket]);
        segs->open[q][bucket] = first;
    }
}

uint32_t seg_any_free(const struct segs *segs)
{
    return segs->free_head;
}

uint32_t seg_find_run(const struct segs *segs, uint32_t run)
{
    uint32_t len = 0;
    for (uint32_t i = 0; i < segs->nsegs; i++) {
        len = segs->seg[i].state == SEG_FREE ? len + 1 : 0;
        if (len == run)
            return i + 1 - run;
    }
    return SEG_NONE;
}

void seg_close(struct segs *segs, uint32_t id)
{
    struct seg *s = &segs->seg[id];
    if (s->state != SEG_OPEN)
        return;
    if (segs->open[s->queue][s->bucket] == id)
        segs->open[s->queue][s->bucket] = SEG_NONE;
    s->state = SEG_CLOSED;
}

void seg_release(struct segs *segs, uint32_t id)
{
    struct seg *s = &segs->seg[id];
    seg_close(segs, id);
    queue_unlink(segs, id);
    uint32_t run = s->run;
    for (uint32_t i = run; i-- > 0;) {
        struct seg *c = &segs->seg[id + i];
        c->gen++;
        c->run = 1;
        c->write = 0;
        c->live_items = 0;
        c->live_bytes = 0;
        free_push(segs, id + i);
    }
}

void seg_requeue(struct segs *segs, uint32_t id, unsigned q)
{
    queue_unlink(segs, id);
    struct seg *s = &segs->seg[id];
    if (s->state == SEG_OPEN && q != s->queue)
        seg_close(segs, id);
    queue_push(segs, id, q);
}
