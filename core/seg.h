/*
 * seg.h: the segments of one store's arena (the contract; see seg.c).
 *
 * The arena is cut into equal segments. Items are appended into an open
 * segment and never moved or freed one by one: a segment is reclaimed
 * whole, when all its items are dead, expired or flushed, or when eviction
 * picks it. This module keeps the segments' bookkeeping (kept outside the
 * arena, so segments hold nothing but items): the free list, the FIFO
 * queues eviction walks, the open segment of each (queue, TTL bucket), and
 * runs of adjacent segments for items larger than one segment.
 *
 * It knows nothing of keys or of the hash table: store.c decides what to
 * evict and unlinks items. `struct seg` and `struct segs` are exposed
 * because store.c reads and updates segment counters on every command
 * (inline, no call); nothing outside the engine includes this header.
 * Single-threaded, like the store.
 */
#ifndef CORECACHE_CORE_SEG_H
#define CORECACHE_CORE_SEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "status.h"

#define SEG_NONE UINT32_MAX
#define SEG_NEVER UINT32_MAX /* exp_max of a segment holding an item without exptime */

/* TTL buckets: 0 holds items that never expire, b >= 1 those whose TTL at
 * the time of writing is in [2^(b-1), 2^b) seconds. */
#define SEG_TTL_BUCKETS 33

enum seg_state {
    SEG_FREE,   /* on the free list */
    SEG_OPEN,   /* in a queue, and taking appends for its (queue, bucket) */
    SEG_CLOSED, /* in a queue, full or set aside */
    SEG_CONT,   /* continuation of a run whose first segment is `head` */
};

/* S3-FIFO's two queues (store.c): new items enter SMALL; items read while
 * there move to MAIN when their segment is evicted. */
enum seg_queue { SEG_SMALL, SEG_MAIN, SEG_QUEUES };

struct seg {
    uint32_t write;      /* bytes appended: the next item's offset */
    uint32_t live_items; /* linked items */
    uint64_t live_bytes; /* footprints of the linked items */
    uint32_t gen;        /* bumped on every reuse (readers validate with it) */
    uint32_t refs;       /* store_ref_get() pins: not reclaimed while > 0 */
    uint32_t prev, next; /* queue or free list neighbours, SEG_NONE at the ends */
    uint32_t run;        /* segments in the run starting here (1: a plain one) */
    uint32_t head;       /* SEG_CONT: the run's first segment */
    uint64_t seq;        /* order of entering its queue (age, finer than time) */
    mc_time_t created;   /* when it was opened (queue age) */
    mc_time_t last_link; /* newest link time of its items (flush_all) */
    mc_time_t exp_min;   /* earliest non-zero exptime written, SEG_NEVER if none */
    mc_time_t exp_max;   /* latest exptime written, SEG_NEVER if some never expire */
    uint32_t flush_seen; /* the store's flush count when the crawler last walked it */
    uint8_t state;       /* enum seg_state */
    uint8_t queue;       /* enum seg_queue */
    uint8_t bucket;      /* TTL bucket */
};

struct segs {
    char *base;          /* the arena */
    size_t seg_size;
    uint32_t nsegs;
    uint32_t nfree;
    uint32_t free_head;
    struct seg *seg;     /* nsegs entries */
    uint32_t qhead[SEG_QUEUES], qtail[SEG_QUEUES]; /* oldest at the head */
    uint32_t qsegs[SEG_QUEUES];                    /* segments, runs counted whole */
    uint32_t open[SEG_QUEUES][SEG_TTL_BUCKETS];
    uint64_t seq;        /* queue entries so far */
};

/* Cuts `arena_size` bytes at `base` into segments of `seg_size` (the tail
 * that does not make a whole segment is unused). MC_EINVAL if no segment
 * fits or there would be more than 2^23; MC_ENOMEM for the bookkeeping. */
enum mc_status seg_init(struct segs *segs, void *base, size_t arena_size,
                        size_t seg_size) MC_MUST_CHECK;
void seg_deinit(struct segs *segs);

/* The TTL bucket of an item expiring at `exptime` (0: never), written at `now`. */
unsigned seg_bucket(mc_time_t exptime, mc_time_t now);

static inline char *seg_data(const struct segs *segs, uint32_t id)
{
    return segs->base + (size_t)id * segs->seg_size;
}

/* Takes `run` adjacent free segments starting at `first` (all must be free),
 * makes them one segment in queue `q`, bucket `bucket`, OPEN (the
 * bucket's open segment, closing the previous one) if `open`, else CLOSED. */
void seg_take(struct segs *segs, uint32_t first, uint32_t run, unsigned q, unsigned bucket,
              bool open, mc_time_t now);

/* A free segment's id (the one freed last, whose memory is warm), or SEG_NONE. */
uint32_t seg_any_free(const struct segs *segs);

/* The first of `run` adjacent free segments, or SEG_NONE. */
uint32_t seg_find_run(const struct segs *segs, uint32_t run);

/* Stops appends to an open segment (it stays in its queue). */
void seg_close(struct segs *segs, uint32_t id);

/* Takes a queued segment (and its run) out of its queue onto the free
 * list; bumps its generation. The caller has unlinked its items. */
void seg_release(struct segs *segs, uint32_t id);

/* Moves a queued segment to the tail of queue `q` (kept in place by eviction). */
void seg_requeue(struct segs *segs, uint32_t id, unsigned q);

/* The first segment of the run holding `id` (itself unless SEG_CONT). */
static inline uint32_t seg_head(const struct segs *segs, uint32_t id)
{
    return segs->seg[id].state == SEG_CONT ? segs->seg[id].head : id;
}

#endif
