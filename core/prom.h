/*
 * prom.h: metric tables in the Prometheus text exposition format (the
 * contract; see prom.c).
 *
 * The same X-macro tables that give memcached's STAT lines (metrics.h) give
 * two kinds of Prometheus families:
 *
 *   - corecache's own, one sample per shard, generated from a table:
 *         # HELP corecache_get_hits_total get and gets keys found
 *         # TYPE corecache_get_hits_total counter
 *         corecache_get_hits_total{shard="0"} 12
 *     (a COUNTER's family name gets "_total", a GAUGE or LEVEL is a gauge);
 *
 *   - memcached_exporter's, so that dashboards and alerts written for
 *     memcached work unchanged: a fixed list of rows in prom.c, each naming
 *     an exporter series (family, type, labels) and the STAT name it comes
 *     from, resolved by name against the tables at render time. No stat
 *     name is declared twice: a row refers to a table entry, and a unit
 *     test checks that every row's source exists (prom_exporter_check).
 *
 * Nothing here knows where the values come from: the caller hands in the
 * tables and copies of their values (io/scrape.c gathers them from every
 * shard). Every function appends to a sink and returns false when the sink
 * is full; any thread, nothing shared.
 */
#ifndef CORECACHE_CORE_PROM_H
#define CORECACHE_CORE_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "sink.h"

/* The content type of the text exposition format, version 0.0.4. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* One metric table and one copy of its values (server-wide or one shard's). */
struct prom_table {
    const struct metric_desc *desc;
    size_t n;
    const uint64_t *values;
};

/*
 * The per-class table for the exporter's memcached_slab_* families:
 * values for class id at values + id * desc_n; one sample per id in ids.
 */
struct prom_classes {
    const struct metric_desc *desc;
    size_t n;
    const uint64_t *values;
    const unsigned *ids;
    unsigned nids;
};

/* The Prometheus family name of a table entry: prefix + name, then
 * "_total" for a COUNTER, "_seconds_total" for a USEC. Writes at most cap
 * bytes (NUL included); returns false if it did not fit. */
bool prom_family_name(char *buf, size_t cap, const char *prefix, const struct metric_desc *desc);

/* "# HELP <name> <help>\n# TYPE <name> <type>\n", help escaped. */
bool prom_family(struct sink *out, const char *name, const char *type, const char *help);

/*
 * An info family (a gauge whose one sample is 1) carrying `version` and
 * `protocol` as labels, escaped: corecache_build_info.
 */
bool prom_render_build_info(struct sink *out, const char *name, const char *help, const char *version,
                            const char *protocol);

/* For each entry of a table: its family (prom_family_name with prefix)
 * and one unlabelled sample, values[i] (server-wide facts). */
bool prom_render_server(struct sink *out, const char *prefix, const struct metric_desc *desc, size_t n,
                        const uint64_t *values);

/*
 * For each entry of a table: its family (prom_family_name with prefix) and
 * one sample per shard, labelled shard="<s>", from shard_values[s][i].
 */
bool prom_render_shards(struct sink *out, const char *prefix, const struct metric_desc *desc,
                        size_t n, const uint64_t *const *shard_values, unsigned nshards);

/*
 * A histogram family `name` (a latency.h layout per shard, durations in
 * ns): cumulative _bucket samples labelled shard and le (in seconds, then
 * "+Inf"), _sum in seconds and _count, per shard.
 */
bool prom_render_latency(struct sink *out, const char *name, const char *help,
                         const uint64_t *const *shard_values, unsigned nshards);

/*
 * memcached_exporter's families from the server-wide tables (facts, shard
 * and store sums: searched in order for each source name) and the
 * per-class sums. `version` is the value of memcached_version's label.
 */
bool prom_render_exporter(struct sink *out, const struct prom_table *tables, size_t ntables,
                          const struct prom_classes *classes, const char *version);

/*
 * Checks that every exporter row's source resolves against these tables
 * (descriptors only; values are not read) and that each family's rows are
 * contiguous with one type. Returns true, or false with *missing set to
 * the first source (or family) at fault.
 */
bool prom_exporter_check(const struct prom_table *tables, size_t ntables,
                         const struct metric_desc *class_desc, size_t class_n, const char **missing);

/*
 * --describe-metrics lines for one table, tab separated:
 *   <source> <type> <STAT name> <Prometheus family or -> <help>
 * stat_prefix is shown before the STAT name ("items:<class>:"); a NULL
 * prom_prefix means the table has no per-shard Prometheus family.
 */
bool prom_describe_table(struct sink *out, const char *source, const char *stat_prefix,
                         const char *prom_prefix, const struct metric_desc *desc, size_t n);

/* --describe-metrics lines for the exporter rows:
 *   exporter <type> <source> <family>{<labels>} <help> */
bool prom_describe_exporter(struct sink *out);

#endif
