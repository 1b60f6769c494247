/*
 * opts.h: corecache-bench's options, declared once (the contract; see
 * opts.c).
 *
 * OPTS_TABLE is the one table of every option: struct field, short flag
 * (0 for long-only), long name, type, default (as the text a user would
 * type, parsed by the same code as argv), range, metavariable and help.
 * From it come struct opts, the parser, --help, and the "config"
 * object of the --json report. Nothing else may spell an option's name.
 *
 * Parsing is pure: argv in, struct opts or an error message out. Every
 * function here may be called from any thread (the workers only read the
 * parsed options).
 * Strings in the result point into argv or at the defaults, so argv must
 * outlive the options. Nothing here prints or exits; main.c decides.
 */
#ifndef CORECACHE_BENCH_OPTS_H
#define CORECACHE_BENCH_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keygen.h"
#include "req.h"
#include "sink.h"

/* Most CPUs a --cpus list may name, and the largest CPU number + 1. */
#define OPTS_CPUS_MAX 1024

/*
 * Types:
 *   UINT     unsigned decimal, 32 bits, within [min, max]
 *   U64      unsigned decimal, 64 bits, within [min, max]
 *   DOUBLE   decimal fraction within [min, max]
 *   STR      string
 *   FLAG     no argument; sets true
 *   RATIO    GET:SET, two unsigned integers, not both 0
 *   RANGE    N or MIN-MAX, each within [min, max]
 *   CPUS     a CPU list: "1", "0-3", "1,3,5-7"; "" for no pinning
 *   PROTO    text | meta | binary
 *   DIST     uniform | zipf
 *   ARRIVAL  fixed | poisson
 *
 * ACTION(field, short, long, TYPE, default, min, max, metavar, help)
 */
#define OPTS_TABLE(ACTION)                                                                         \
    ACTION(server, 's', "server", STR, "127.0.0.1", 0, 0, "host", "server address")                 \
    ACTION(port, 'p', "port", UINT, "11211", 1, 65535, "num", "server TCP port")                    \
    ACTION(connections, 'c', "connections", UINT, "50", 1, 65536, "num",                            \
           "connections in all, spread over the threads")                                            \
    ACTION(threads, 't', "threads", UINT, "1", 1, 1024, "num", "load generator threads")             \
    ACTION(pipeline, 'P', "pipeline", UINT, "1", 1, 4096, "num",                                    \
           "requests in flight per connection (closed loop: always; open loop: at most)")            \
    ACTION(duration, 'd', "duration", DOUBLE, "10", 0, 86400, "sec",                                \
           "measured seconds (with --requests: the most the run may take)")                         \
    ACTION(requests, 'n', "requests", U64, "0", 0, UINT64_MAX, "num",                               \
           "stop after this many requests in all (0: run for --duration)")                          \
    ACTION(rate, 'r', "rate", DOUBLE, "0", 0, 1e9, "ops",                                           \
           "open loop at this many requests/s in all (0: closed loop)")                             \
    ACTION(arrival, 0, "arrival", ARRIVAL, "fixed", 0, 0, "fixed|poisson",                          \
           "open loop: evenly spaced or exponential gaps between a connection's requests")         \
    ACTION(spin, 0, "spin", UINT, "0", 0, 1000000, "us",                                           \
           "open loop: busy-poll this long before a request is due instead of sleeping")           \
    ACTION(ratio, 0, "ratio", RATIO, "9:1", 0, 0, "get:set", "gets to sets")                        \
    ACTION(multiget, 0, "multiget", UINT, "1", 1, 1024, "num", "keys per get")                    \
    ACTION(keys, 'k', "keys", U64, "100000", 1, 1ull << 40, "num", "distinct keys")                 \
    ACTION(key_prefix, 0, "key-prefix", STR, "key:", 0, 0, "str",                                   \
           "keys are <prefix><n>, n in [0, keys)")                                                  \
    ACTION(key_dist, 0, "key-dist", DIST, "uniform", 0, 0, "uniform|zipf", "key popularity")        \
    ACTION(zipf_skew, 0, "zipf-skew", DOUBLE, "0.99", 0.01, KEYGEN_SKEW_MAX, "s",                   \
           "Zipf exponent: key n is drawn with weight (n+1)^-s")                                    \
    ACTION(value_size, 0, "value-size", RANGE, "100", 1, 1u << 26, "n|min-max",                   \
           "value bytes, fixed or uniform in [min, max]")                                           \
    ACTION(protocol, 0, "protocol", PROTO, "text", 0, 0, "text|meta|binary", "wire protocol")       \
    ACTION(tls, 0, "tls", FLAG, "0", 0, 0, NULL,                                                   \
           "connect with TLS (OpenSSL; the server's certificate is not verified)")                 \
    ACTION(prefill, 0, "prefill", FLAG, "0", 0, 0, NULL, "set every key once before measuring")     \
    ACTION(prefill_only, 0, "prefill-only", FLAG, "0", 0, 0, NULL,                                  \
           "set every key once, then stop (measures nothing)")                                      \
    ACTION(warmup, 'w', "warmup", DOUBLE, "0", 0, 3600, "sec",                                      \
           "seconds of load before the measured window")                                            \
    ACTION(drain_timeout, 0, "drain-timeout", DOUBLE, "2", 0.001, 600, "sec",                       \
           "how long to wait for replies after the last request; unanswered ones are errors")       \
    ACTION(cpus, 0, "cpus", CPUS, "", 0, 0, "list",                                                 \
           "pin thread i to the i-th CPU of the list (e.g. 1 or 2-3), round robin")                 \
    ACTION(seed, 0, "seed", U64, "1", 0, UINT64_MAX, "num", "random seed (same seed, same keys)")   \
    ACTION(json, 0, "json", FLAG, "0", 0, 0, NULL, "print the report as one JSON object")           \
    ACTION(progress, 0, "progress", FLAG, "0", 0, 0, NULL,                                          \
           "print a progress line each second even when stderr is not a terminal")                  \
    ACTION(quiet, 'q', "quiet", FLAG, "0", 0, 0, NULL, "no progress lines")                         \
    ACTION(help, 'h', "help", FLAG, "0", 0, 0, NULL, "print this help and exit")

enum opts_arrival {
    OPTS_ARRIVAL_FIXED,   /* a connection's requests are 1/rate apart */
    OPTS_ARRIVAL_POISSON, /* exponential gaps with mean 1/rate */
};

struct opts_ratio {
    uint32_t get;
    uint32_t set;
};

struct opts_range {
    uint64_t min;
    uint64_t max;
};

struct opts_cpus {
    uint32_t count;
    uint16_t cpu[OPTS_CPUS_MAX];
};

#define OPTS_CTYPE_UINT uint32_t
#define OPTS_CTYPE_U64 uint64_t
#define OPTS_CTYPE_DOUBLE double
#define OPTS_CTYPE_STR const char *
#define OPTS_CTYPE_FLAG bool
#define OPTS_CTYPE_RATIO struct opts_ratio
#define OPTS_CTYPE_RANGE struct opts_range
#define OPTS_CTYPE_CPUS struct opts_cpus
#define OPTS_CTYPE_PROTO enum req_proto
#define OPTS_CTYPE_DIST enum keygen_dist
#define OPTS_CTYPE_ARRIVAL enum opts_arrival
#define OPTS_FIELD(field, short_flag, long_name, type, def, min, max, metavar, help)              \
    OPTS_CTYPE_##type field;
struct opts {
    OPTS_TABLE(OPTS_FIELD)
};
#undef OPTS_FIELD

/* Fills opts with every option's default. */
void opts_defaults(struct opts *opts);

/*
 * Parses argv[1 .. argc) into opts (which opts_defaults() set up), then
 * checks the options against each other. Returns true on success. Otherwise
 * returns false and writes one line to err saying what was wrong with which
 * value and what to do, e.g.
 *   "corecache-bench: --threads 8: more threads than --connections (2)\n".
 * Short flags take their argument attached or separate (-c50, -c 50) and
 * flags may be bundled (-qh); long options take --name=value or --name value.
 */
bool opts_parse(struct opts *opts, int argc, char *const argv[], struct sink *err);

/* Writes the --help text: a usage line and one entry per option. */
bool opts_usage(struct sink *out);

/* Number of options in the table; option i's long name. */
size_t opts_count(void);
const char *opts_name(size_t i);

/*
 * Writes option i's current value as JSON (a number, a string, true/false,
 * or an array for --cpus) for the report's "config" object.
 */
bool opts_value_json(const struct opts *opts, size_t i, struct sink *out);

/* Textual names of the enum values, e.g. for the report. Never NULL. */
const char *opts_proto_str(enum req_proto proto);
const char *opts_dist_str(enum keygen_dist dist);

#endif
