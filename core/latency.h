/*
 * latency.h: a histogram of durations in power-of-two buckets (the
 * contract; see latency.c).
 *
 * One histogram per shard records how long each request took to serve.
 * It is a fixed array, so recording allocates nothing, and it is written
 * by its shard only, with plain increments; readers get copies through the
 * cross-shard gather, as for every other metric (metrics.h).
 *
 * Bucket i counts durations d with d <= LATENCY_LE_NS(i) (and above the
 * previous bound), the upper bounds being powers of two nanoseconds from
 * 128 ns to about 1.07 s; the last slot counts everything longer. The
 * layout is a uint64_t array (`v`), so a copy travels and sums like a
 * metric table:
 *
 *     v[0]        count   durations recorded
 *     v[1]        sum_ns  their sum, in nanoseconds
 *     v[2 + i]    bucket i (not cumulative), i < LATENCY_BUCKETS
 *     v[2 + LATENCY_BUCKETS]   durations above the last bound
 */
#ifndef CORECACHE_CORE_LATENCY_H
#define CORECACHE_CORE_LATENCY_H

#include <stdint.h>

#include "metrics.h"

/* Upper bound of the first bucket: 2^LATENCY_SHIFT_MIN ns (128 ns). */
#define LATENCY_SHIFT_MIN 7
/* Bounded buckets: 2^7 .. 2^30 ns (128 ns .. 1.07 s). */
#define LATENCY_BUCKETS 24
#define LATENCY_LE_NS(i) (UINT64_C(1) << ((i) + LATENCY_SHIFT_MIN))
/* uint64_t values in a histogram: count, sum, buckets, overflow. */
#define LATENCY_VALUES (2 + LATENCY_BUCKETS + 1)

struct latency {
    union {
        struct {
            uint64_t count;
            uint64_t sum_ns;
            uint64_t bucket[LATENCY_BUCKETS + 1];
        };
        uint64_t v[LATENCY_VALUES];
    };
};

/* The bucket index of a duration: 0 for d <= 128 ns, LATENCY_BUCKETS for
 * d above the last bound. */
static inline unsigned latency_bucket(uint64_t ns)
{
    if (ns <= LATENCY_LE_NS(0))
        return 0;
    /* ceil(log2(ns)) - LATENCY_SHIFT_MIN, for ns > 1 */
    unsigned idx = (unsigned)(64 - __builtin_clzll(ns - 1)) - LATENCY_SHIFT_MIN;
    return idx < LATENCY_BUCKETS ? idx : LATENCY_BUCKETS;
}

/* Records one duration. The writer thread only. */
static inline void latency_record(struct latency *h, uint64_t ns)
{
    h->count++;
    h->sum_ns += ns;
    h->bucket[latency_bucket(ns)]++;
}

/* Adds another histogram's values into acc (v arrays, LATENCY_VALUES). */
void latency_sum(uint64_t *acc, const uint64_t *add);

/* Zeroes a histogram (stats reset). */
void latency_reset(struct latency *h);

#endif
