/*
 * scrape.h: the Prometheus endpoint, GET /metrics on --metrics-port (the
 * contract; see scrape.c).
 *
 * Connections accepted on a metrics listener speak scrape_conn_ops: HTTP/1.1
 * parsed by core/http.c. A scrape gathers every shard's metrics through the
 * router, exactly as `stats` does, and answers them in the text exposition
 * format rendered by core/prom.c. The endpoint shares nothing with the
 * cache but that gather, so a broken or hostile scraper can only get
 * itself an error status and a closed connection.
 */
#ifndef CORECACHE_IO_SCRAPE_H
#define CORECACHE_IO_SCRAPE_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/prom.h"
#include "../core/sink.h"

/* The path served. */
#define SCRAPE_PATH "/metrics"

/* HTTP on a metrics listener. */
extern const struct conn_ops scrape_conn_ops;

/*
 * The server-wide tables the memcached_exporter rows resolve against
 * (facts, shard table, store table; values NULL): fills up to cap entries
 * and returns how many. For tests and --describe-metrics.
 */
size_t scrape_tables(struct prom_table *tables, size_t cap);

/* --describe-metrics: every metric of every table, the histogram and the
 * exporter rows, one per line, tab separated, after a header line. */
bool scrape_describe(struct sink *out);

#endif
