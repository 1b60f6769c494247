/*
 * report.h: what corecache-bench prints, as text or JSON (the contract; see
 * report.c).
 *
 * Pure formatting: a run's options and result in, bytes out into a sink.
 * main.c decides where they go. Any thread may call these. Latencies are reported in microseconds,
 * percentiles from the merged histogram (hist.h, 0.4% precision).
 */
#ifndef CORECACHE_BENCH_REPORT_H
#define CORECACHE_BENCH_REPORT_H

#include <stdbool.h>

#include "load.h"
#include "opts.h"
#include "sink.h"

/*
 * The percentiles every report shows, declared once:
 * ACTION(json key, percentile).
 */
#define REPORT_PERCENTILES(ACTION)                                                                 \
    ACTION("p50", 50.0)                                                                            \
    ACTION("p90", 90.0)                                                                            \
    ACTION("p99", 99.0)                                                                            \
    ACTION("p99.9", 99.9)

/* The human-readable report, several lines. */
bool report_text(struct sink *out, const struct opts *opts, const struct load_result *result);

/*
 * One JSON object and a newline: "config" (every option, by its long name),
 * "seconds", "ops_per_sec", "requests", "hit_ratio" (null without gets),
 * "latency_us" {"min", "mean", "p50", "p90", "p99", "p99.9", "max"},
 * "send_lag_us" (open loop: how late requests were written, same keys but
 * "min"; null in a closed loop),
 * "counters" (every LOAD_METRIC), "errors", "prefill_seconds",
 * "first_error" (null if none).
 */
bool report_json(struct sink *out, const struct opts *opts, const struct load_result *result);

/*
 * One progress line: the phase, the time, requests per second since the
 * previous line (prev; all zero for the first), the hit ratio and errors.
 */
bool report_progress(struct sink *out, const struct load_progress *now,
                     const struct load_progress *prev);

#endif
