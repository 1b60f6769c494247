/*
 * facts.h: the server-wide numbers no shard counts (the contract; see
 * facts.c): the process (pid, uptime, CPU time), its limits and its state.
 *
 * They are declared once, like every metric (core/metrics.h), in memcached's
 * `stats` names and in three runs that keep memcached's order around the
 * shard and store tables:
 *
 *   FACTS_PROCESS  pid uptime time          (then `version`, a string)
 *   FACTS_RUNTIME  pointer_size ... max_connections
 *                  ...shard and store tables...
 *   FACTS_LIMITS   limit_maxbytes accepting_conns threads
 *
 * The values are read when a stats or metrics request renders, on the
 * asking shard's thread (facts_read), never counted on the request path.
 */
#ifndef CORECACHE_IO_FACTS_H
#define CORECACHE_IO_FACTS_H

#include <stdint.h>

#include "../core/metrics.h"

struct server;

#define FACTS_PROCESS(ACTION)                                                                  \
    ACTION(pid, GAUGE, "Process id of the server")                                            \
    ACTION(uptime, GAUGE, "Seconds since the server started")                                 \
    ACTION(time, GAUGE, "Current UNIX time according to the server")

#define FACTS_RUNTIME(ACTION)                                                                  \
    ACTION(pointer_size, GAUGE, "Bits in a pointer of the server's build")                   \
    ACTION(rusage_user, USEC, "User CPU time of the process")                                 \
    ACTION(rusage_system, USEC, "System CPU time of the process")                             \
    ACTION(max_connections, GAUGE, "Most simultaneous connections (-c)")

#define FACTS_LIMITS(ACTION)                                                                   \
    ACTION(limit_maxbytes, GAUGE, "Bytes of item memory allowed (-m)")                        \
    ACTION(accepting_conns, GAUGE, "1 while the server accepts connections")                  \
    ACTION(listen_disabled_num, COUNTER, "Times accepting failed for lack of file descriptors " \
                                         "(EMFILE, ENFILE), memcached's listen disabling")      \
    ACTION(threads, GAUGE, "Shard threads")                                                   \
    /* watch (issue 12, io/watch.c), memcached's log_* stats */                               \
    ACTION(log_worker_dropped, COUNTER, "Log lines lost before a watcher's buffer (always 0)") \
    ACTION(log_worker_written, COUNTER, "Log lines made for watchers")                        \
    ACTION(log_watcher_skipped, COUNTER, "Log lines dropped: a watcher's buffer was full")    \
    ACTION(log_watcher_sent, COUNTER, "Log lines handed to watching connections")             \
    ACTION(log_watchers, GAUGE, "Connections watching logs (watch)")

/* warm restart (issue 14, io/memfile.c): what the start made of -e's file.
 * In `stats` after the limits; on /metrics as corecache_<name>. */
#define FACTS_WARM(ACTION)                                                                       \
    ACTION(warm_restart_items, GAUGE, "Items the start reattached from -e's memory file")        \
    ACTION(warm_restart_cold, GAUGE, "Why the start did not reattach: 0 it did or no -e, 1 a new " \
                                     "file, 2 the last stop was not clean, 3 other settings or "   \
                                     "release, 4 damaged or unreadable saved state")               \
    ACTION(memory_file_numa_bound, GAUGE, "Shards whose -e mapping is bound to their NUMA node (mbind)")

#define FACTS_METRIC(ACTION) FACTS_PROCESS(ACTION) FACTS_RUNTIME(ACTION) FACTS_LIMITS(ACTION) FACTS_WARM(ACTION)

/*
 * The LRU and crawler settings that `stats settings` reports under
 * memcached's names and memcached_exporter turns into its
 * memcached_lru_crawler_* gauges (core/prom.c reads them from this table),
 * for corecache's engine: whole segments evicted inline, no LRU (no
 * maintainer thread, no HOT/WARM segments), and a crawler that runs
 * continuously, SHARD_CRAWL_BUDGET items per SHARD_TICK_NS tick.
 *
 * ACTION(name, FORMAT, value, help): FORMAT is how `stats settings` writes
 * the value: YESNO (1 "yes", 0 "no"), UINT, or FACTOR (with two decimals,
 * as memcached writes its factors).
 */
#define FACTS_LRU_SETTINGS(ACTION)                                                               \
    ACTION(lru_crawler, YESNO, 1, "1: the crawler runs (always, a slice per tick)")             \
    ACTION(lru_crawler_sleep, UINT, SHARD_TICK_NS / 1000 / SHARD_CRAWL_BUDGET,                   \
           "microseconds per item crawled, on average")                                          \
    ACTION(lru_crawler_tocrawl, UINT, 0, "items crawled per class per run: 0, no limit")        \
    ACTION(lru_maintainer_thread, YESNO, 0, "0: no background LRU maintainer, evictions inline") \
    ACTION(hot_lru_pct, UINT, 0, "0: no HOT segment")                                            \
    ACTION(warm_lru_pct, UINT, 0, "0: no WARM segment")                                          \
    ACTION(hot_max_factor, FACTOR, 0, "0: no HOT segment")                                       \
    ACTION(warm_max_factor, FACTOR, 0, "0: no WARM segment")

enum facts_format { FACTS_FORMAT_YESNO, FACTS_FORMAT_UINT, FACTS_FORMAT_FACTOR };
#define FACTS_LRU_DESC(name, format, value, help) {#name, METRIC_GAUGE, help},
#define FACTS_LRU_ONE(name, format, value, help) +1
#define FACTS_LRU_COUNT (0 FACTS_LRU_SETTINGS(FACTS_LRU_ONE))
extern const struct metric_desc facts_lru_desc[];
extern const uint64_t facts_lru_values[];
extern const enum facts_format facts_lru_format[];

struct facts {
    METRIC_STRUCT(FACTS_METRIC)
};
extern const struct metric_desc facts_desc[];
#define FACTS_COUNT METRIC_COUNT(FACTS_METRIC)
#define FACTS_PROCESS_COUNT METRIC_COUNT(FACTS_PROCESS)
#define FACTS_RUNTIME_COUNT METRIC_COUNT(FACTS_RUNTIME)
#define FACTS_LIMITS_COUNT METRIC_COUNT(FACTS_LIMITS)
#define FACTS_WARM_COUNT METRIC_COUNT(FACTS_WARM)

/* Fills every fact from the process and srv (getrusage, the clock).
 * Any shard thread. */
void facts_read(const struct server *srv, struct facts *out);

#endif
