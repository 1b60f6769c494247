/*
 * hist.h: a log-linear latency histogram (the contract; see hist.c).
 *
 * Values are unsigned integers; the load generator records nanoseconds.
 * Every value up to HIST_MAX_VALUE (60 s in ns) is kept with a relative
 * error of at most 1/256 (0.4%) on the values reported, in a fixed ~30 KiB
 * of counters, so recording is one index computation and one increment.
 * Larger values are clamped into the top bucket; hist_max() still reports
 * the true largest value.
 *
 * A histogram belongs to one thread: each load generator worker records
 * into its own and the main thread merges them after the workers have
 * stopped. Nothing here locks.
 */
#ifndef CORECACHE_BENCH_HIST_H
#define CORECACHE_BENCH_HIST_H

#include <stdint.h>

/* 60 seconds in nanoseconds: the largest value kept without clamping. */
#define HIST_MAX_VALUE (60ull * 1000 * 1000 * 1000)

struct hist; /* opaque */

/* A new, empty histogram, or NULL when out of memory. */
struct hist *hist_create(void);

/* Frees *hist and sets it to NULL; a NULL *hist is ignored. */
void hist_destroy(struct hist **hist);

/* Forgets every recorded value. */
void hist_reset(struct hist *hist);

/* Counts one value. Values above HIST_MAX_VALUE land in the top bucket. */
void hist_record(struct hist *hist, uint64_t value);

/* Adds every count of `from` to `into` (the histograms of two threads). */
void hist_merge(struct hist *into, const struct hist *from);

/* Number of values recorded. */
uint64_t hist_count(const struct hist *hist);

/* Exact smallest and largest value recorded; 0 when empty. */
uint64_t hist_min(const struct hist *hist);
uint64_t hist_max(const struct hist *hist);

/* Exact arithmetic mean of the values recorded; 0 when empty. */
double hist_mean(const struct hist *hist);

/*
 * The value at percentile `pct` (0 < pct <= 100): the smallest recorded
 * value v such that at least pct% of the values are <= v, within the
 * bucket precision (the middle of v's bucket, clamped to [min, max]).
 * pct = 100 returns hist_max() exactly. 0 when empty.
 */
uint64_t hist_percentile(const struct hist *hist, double pct);

/*
 * The bucket that holds `value`: its lowest and highest value (inclusive).
 * For tests and for documentation of the precision.
 */
void hist_bucket_bounds(uint64_t value, uint64_t *low, uint64_t *high);

#endif
