/*
 * hist.c: a log-linear histogram (hist.h), in the manner of HdrHistogram.
 *
 * Design. Values below 2^SUB_BITS each get a bucket of their own. Above,
 * every power-of-two range [2^m, 2^(m+1)) is split into 2^SUB_BITS equal
 * buckets of width 2^(m - SUB_BITS), so a bucket is never wider than
 * 1/128 of the values in it and the middle of a bucket is within 1/256 of
 * any of them:
 *
 *   index:  0 1 2 ... 127 | 128 ... 255 | 256 ... 383 | ...  | NBUCKETS-1
 *   value:  0 1 2 ... 127 | 128 ... 255 | 256 ... 510 | ...  |
 *   width:  1             | 1           | 2           | 4 ...| 2^28
 *           exact         | m = 7       | m = 8       |      | m = 35
 *
 * The index of v >= 128 is (m - SUB_BITS + 1) * 128 + (v >> (m - SUB_BITS))
 * - 128 with m = floor(log2 v): one count-leading-zeros, one shift. 60 s in
 * nanoseconds is below 2^36, so 30 ranges of 128 buckets (3840 counters,
 * 30 KiB) cover 0 .. HIST_MAX_VALUE.
 *
 * Invariants: count == sum(buckets); min <= max when count > 0; sum is the
 * exact sum of recorded values (it would overflow only after 2^64 ns of
 * recorded latency, 584 years).
 */
#include "hist.h"

#include <stdlib.h>
#include <string.h>

#define SUB_BITS 7
#define SUB_COUNT (1u << SUB_BITS)
#define TOP_MSB 35 /* floor(log2(HIST_MAX_VALUE)) */
#define NBUCKETS ((TOP_MSB - SUB_BITS + 2) * SUB_COUNT)

_Static_assert(HIST_MAX_VALUE >> TOP_MSB == 1, "TOP_MSB must be the top bit of HIST_MAX_VALUE");

struct hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    uint64_t sum;
    uint64_t buckets[NBUCKETS];
};

static unsigned bucket_index(uint64_t v)
{
    if (v < SUB_COUNT)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SUB_BITS;
    return ((shift + 1) << SUB_BITS) + (unsigned)(v >> shift) - SUB_COUNT;
}

static void bucket_range(unsigned index, uint64_t *low, uint64_t *high)
{
    if (index < SUB_COUNT) {
        *low = *high = index;
        return;
    }
    unsigned shift = (index >> SUB_BITS) - 1;
    uint64_t sub = (uint64_t)(index & (SUB_COUNT - 1)) + SUB_COUNT;
    *low = sub << shift;
    *high = *low + (1ull << shift) - 1;
}

struct hist *hist_create(void)
{
    return calloc(1, sizeof(struct hist));
}

void hist_destroy(struct hist **hist)
{
    free(*hist);
    *hist = NULL;
}

void hist_reset(struct hist *hist)
{
    memset(hist, 0, sizeof(*hist));
}

void hist_record(struct hist *hist, uint64_t value)
{
    uint64_t clamped = value > HIST_MAX_VALUE ? HIST_MAX_VALUE : value;
    hist->buckets[bucket_index(clamped)]++;
    if (hist->count == 0 || value < hist->min)
        hist->min = value;
    if (value > hist->max)
        hist->max = value;
    hist->count++;
    hist->sum += value;
}

void hist_merge(struct hist *into, const struct hist *from)
{
    if (from->count == 0)
        return;
    for (unsigned i = 0; i < NBUCKETS; i++)
        into->buckets[i] += from->buckets[i];
    if (into->count == 0 || from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
    into->count += from->count;
    into->sum += from->sum;
}

uint64_t hist_count(const struct hist *hist)
{
    return hist->count;
}

uint64_t hist_min(const struct hist *hist)
{
    return hist->min;
}

uint64_t hist_max(const struct hist *hist)
{
    return hist->max;
}

double hist_mean(const struct hist *hist)
{
    return hist->count == 0 ? 0.0 : (double)hist->sum / (double)hist->count;
}

uint64_t hist_percentile(const struct hist *hist, double pct)
{
    if (hist->count == 0)
        return 0;
    if (pct >= 100.0)
        return hist->max;
    /* The rank of the value asked for, 1-based: ceil(pct% of count). */
    double exact = pct / 100.0 * (double)hist->count;
    uint64_t rank = (uint64_t)exact;
    if ((double)rank < exact || rank == 0)
        rank++;
    uint64_t seen = 0;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        seen += hist->buckets[i];
        if (seen >= rank) {
            uint64_t low, high;
            bucket_range(i, &low, &high);
            uint64_t mid = low + (high - low) / 2;
            if (mid < hist->min)
                mid = hist->min;
            if (mid > hist->max)
                mid = hist->max;
            return mid;
        }
    }
    return hist->max; /* unreachable while count == sum(buckets) */
}

void hist_bucket_bounds(uint64_t value, uint64_t *low, uint64_t *high)
{
    bucket_range(bucket_index(value > HIST_MAX_VALUE ? HIST_MAX_VALUE : value), low, high);
}
