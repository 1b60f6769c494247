/*
 * load.h: running the load (the contract; see load.c).
 *
 * load_run() opens --connections connections to the server, spreads them
 * over --threads worker threads (connection i on thread i % threads),
 * optionally sets every key once (--prefill), then drives requests for
 * --duration seconds or --requests requests:
 *
 *   closed loop (--rate 0): each connection keeps --pipeline requests in
 *     flight; a reply lets the next request go. Latency is measured from
 *     the moment a request is written.
 *   open loop (--rate R): each connection has its own schedule of intended
 *     send times, R / connections per second, evenly spaced or Poisson,
 *     staggered across connections. A request is sent when due, with at
 *     most --pipeline in flight; one that cannot go out on time goes out as
 *     soon as it can. Latency is measured from the intended send time, so
 *     a server that stalls is charged for every request it delayed, sent or
 *     not (no coordinated omission). Requests still unsent or unanswered
 *     --drain-timeout after the schedule ends are counted as timeouts.
 *
 * Every run is bounded in time: the measured phase by --duration plus
 * --drain-timeout, the prefill by a stall limit (no reply for
 * LOAD_PREFILL_STALL_S seconds).
 */
#ifndef CORECACHE_BENCH_LOAD_H
#define CORECACHE_BENCH_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "metrics.h"
#include "opts.h"

/* Requests each connection keeps in flight while prefilling. */
#define LOAD_PREFILL_DEPTH 64
/* A prefill that sees no reply for this long gives up (timeouts). */
#define LOAD_PREFILL_STALL_S 10

#define LOAD_METRIC(ACTION)                                                                        \
    ACTION(requests, COUNTER, "requests answered in the measured window")                          \
    ACTION(gets, COUNTER, "gets answered in the measured window")                                  \
    ACTION(sets, COUNTER, "sets answered in the measured window")                                  \
    ACTION(get_keys, COUNTER, "keys asked for by those gets")                                      \
    ACTION(hits, COUNTER, "values returned for those keys")                                        \
    ACTION(warmup_requests, COUNTER, "requests answered during --warmup")                          \
    ACTION(prefill_sets, COUNTER, "sets answered during --prefill")                                \
    ACTION(errors_reply, COUNTER, "ERROR, CLIENT_ERROR or SERVER_ERROR replies")                   \
    ACTION(errors_unexpected, COUNTER, "well-formed replies of the wrong kind (NOT_STORED to a set)") \
    ACTION(errors_protocol, COUNTER, "malformed or unmatched replies (the connection is closed)")  \
    ACTION(errors_conn, COUNTER, "connections closed or reset by the server, or failed sends")     \
    ACTION(errors_timeout, COUNTER, "requests unanswered, or due but unsent, when the run ended")  \
    ACTION(bytes_out, COUNTER, "bytes sent")                                                       \
    ACTION(bytes_in, COUNTER, "bytes received")

struct load_metrics {
    METRIC_STRUCT(LOAD_METRIC)
};

/* The descriptors of LOAD_METRIC, in table order; *count gets their number. */
const struct metric_desc *load_metric_desc(size_t *count);

/* The sum of the errors_* counters: a run with any is a failed run. */
uint64_t load_errors(const struct load_metrics *metrics);

/* What the progress callback sees, once a second. */
struct load_progress {
    const char *phase;  /* "prefill", "warmup" or "run" */
    double seconds;     /* since the phase began */
    uint64_t done;      /* prefill: sets answered; otherwise requests answered */
    uint64_t hits;      /* values returned (run) */
    uint64_t get_keys;  /* keys asked for (run) */
    uint64_t errors;    /* errors so far, all phases */
};

typedef void load_progress_fn(void *ctx, const struct load_progress *progress);

struct load_result {
    struct load_metrics metrics; /* all workers, summed */
    struct hist *latency;        /* ns, intended send to complete reply, measured requests */
    /* Open loop only: ns from a measured request's intended send time to the
     * moment it was written. Large values mean the generator (not the
     * server) fell behind its schedule: its own lateness is in `latency`. */
    struct hist *send_lag;
    double seconds;              /* measured window: its start to the last measured reply */
    double prefill_seconds;      /* 0 without --prefill */
    char first_error[192];       /* the first error seen, "" if none */
};

/*
 * Runs the load that opts describes and blocks until it is over, calling
 * progress(ctx, ...) about once a second from the calling thread (progress
 * may be NULL). Returns 0 when the run took place: its errors, if any, are
 * counted in result. Returns -errno when it could not start (the address
 * does not resolve, a connection is refused, no memory) and writes why into
 * msg. Either way result must be released with load_result_fini().
 * Call from one thread at a time; it starts and joins its own workers.
 */
MC_MUST_CHECK int load_run(const struct opts *opts, load_progress_fn *progress, void *ctx,
                           struct load_result *result, char *msg, size_t msg_len);

/* Frees what load_run() put in result. */
void load_result_fini(struct load_result *result);

#endif
