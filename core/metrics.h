/*
 * metrics.h: counters declared once, in X-macro tables.
 *
 * A module declares its metrics as a table of ACTION(name, TYPE, "help"),
 * where TYPE says how the value behaves and how shards combine:
 *   COUNTER  only grows; zeroed by `stats reset`; shards add up
 *   GAUGE    a current amount (items, bytes); kept by reset; shards add up
 *   LEVEL    a current level that does not add up across shards (the hash
 *            table's power, the age of the oldest item); kept by reset;
 *            the server's value is the largest shard's
 *   USEC     a count of microseconds that only grows (CPU time); kept by
 *            reset; written "seconds.microseconds" in STAT lines, as
 *            memcached writes rusage_user, and in seconds in Prometheus
 * and name is memcached's STAT name where memcached has one. From that one table come the struct that holds the values, the
 * descriptor array used to render `STAT` lines, Prometheus text and the
 * --describe-metrics listing. Nothing else may spell a metric's name.
 *
 *     #define STORE_METRIC(ACTION) \
 *         ACTION(get_hits, COUNTER, "keys found by get") \
 *         ACTION(curr_items, GAUGE, "items stored now")
 *
 *     struct store_metrics { METRIC_STRUCT(STORE_METRIC) };
 *     static const struct metric_desc store_metric_desc[] = {
 *         STORE_METRIC(METRIC_DESC)
 *     };
 *
 * The struct overlays a uint64_t array (`.v`), so generic code sums, resets
 * and renders any table without knowing its fields. Each table has exactly
 * one writer thread (its shard); readers get copies through the cross-shard
 * routing, never by reading another shard's memory.
 */
#ifndef CORECACHE_CORE_METRICS_H
#define CORECACHE_CORE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sink.h"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_LEVEL, METRIC_USEC };

struct metric_desc {
    const char *name;
    enum metric_type type;
    const char *help;
};

#define METRIC_FIELD(name, type, help) uint64_t name;
#define METRIC_ONE(name, type, help) +1
#define METRIC_DESC(name, type, help) {#name, METRIC_##type, help},

/* The body of a metrics struct: named fields overlaid on an array `v`. */
#define METRIC_STRUCT(TABLE)                                                   \
    union {                                                                    \
        struct {                                                               \
            TABLE(METRIC_FIELD)                                                \
        };                                                                     \
        uint64_t v[0 TABLE(METRIC_ONE)];                                       \
    };

/* Number of metrics in a table, as a constant expression. */
#define METRIC_COUNT(TABLE) (0 TABLE(METRIC_ONE))

/* Combines one shard's values into acc: adds counters and gauges, keeps the
 * larger of two levels. */
void metrics_sum(uint64_t *acc, const uint64_t *add, const struct metric_desc *desc, size_t n);

/* Zeroes the counters of a table and leaves gauges and levels alone. */
void metrics_reset(uint64_t *values, const struct metric_desc *desc, size_t n);

/*
 * Appends "STAT <prefix><name> <value>\r\n" for each metric, in table order
 * (USEC values as seconds.microseconds). prefix may be "" or e.g.
 * "items:3:". Returns false if the sink is full.
 */
bool metrics_render_stats(struct sink *out, const char *prefix, const struct metric_desc *desc,
                          const uint64_t *values, size_t n);

/* Index of the metric called `name` in a table, or n when there is none.
 * For code that picks rows of a table by name at setup or render time. */
size_t metrics_find(const struct metric_desc *desc, size_t n, const char *name);

/* "counter", "gauge", "level" or "usec": the TYPE column of a table, for
 * listings (--describe-metrics). */
const char *metrics_type_name(enum metric_type type);

/* Writes a USEC value as memcached writes a timeval: "<s>.<6 digits>".
 * Returns the length (<= 27); p must have room for 27 bytes. */
size_t metrics_usec_format(uint64_t usec, char *p);

/* Appends "STAT <name> <value>\r\n" for one unsigned value. */
bool metrics_stat_u64(struct sink *out, const char *name, uint64_t value);

/* Appends "STAT <name> <value>\r\n" for one string value (no spaces). */
bool metrics_stat_str(struct sink *out, const char *name, const char *value);

/* Writes the decimal form of v at p (no terminator); returns the length (<= 20). */
size_t metrics_u64toa(uint64_t v, char *p);

#endif
