/*
 * facts.c: reading the server-wide facts (see facts.h).
 *
 * Two syscalls (getrusage, clock_gettime) per read: a stats or metrics
 * request pays them, a cache request never does.
 */
#include "facts.h"

#include <stdatomic.h>
#include <sys/resource.h>
#include <time.h>

#include "server.h"
#include "shard.h" /* SHARD_TICK_NS, SHARD_CRAWL_BUDGET */

const struct metric_desc facts_desc[] = {FACTS_METRIC(METRIC_DESC)};

#define FACTS_LRU_VALUE(name, format, value, help) (uint64_t)(value),
#define FACTS_LRU_FORMAT(name, format, value, help) FACTS_FORMAT_##format,
const struct metric_desc facts_lru_desc[] = {FACTS_LRU_SETTINGS(FACTS_LRU_DESC)};
const uint64_t facts_lru_values[] = {FACTS_LRU_SETTINGS(FACTS_LRU_VALUE)};
const enum facts_format facts_lru_format[] = {FACTS_LRU_SETTINGS(FACTS_LRU_FORMAT)};

static uint64_t usec(struct timeval tv)
{
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

void facts_read(const struct server *srv, struct facts *out)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        ru = (struct rusage){0};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    out->pid = (uint64_t)srv->pid;
    out->uptime = now.tv_sec > srv->started_unix ? (uint64_t)(now.tv_sec - srv->started_unix) : 0;
    out->time = (uint64_t)now.tv_sec;
    out->pointer_size = 8 * sizeof(void *);
    out->rusage_user = usec(ru.ru_utime);
    out->rusage_system = usec(ru.ru_stime);
    out->max_connections = srv->cfg.conn_limit;
    out->limit_maxbytes = srv->cfg.memory_limit;
    /* 0 while stopping or while any listener waits out an EMFILE backoff,
     * as memcached's is 0 while its listener is disabled */
    out->accepting_conns = atomic_load(&srv->stopping) || atomic_load(&srv->accept_paused) > 0 ? 0 : 1;
    out->listen_disabled_num = atomic_load(&srv->listen_disabled_num);
    out->threads = srv->nshards;
    /* the watch table's lock is the only thing written here: the server's
     * other facts stay read only */
    uint64_t log[5];
    watch_stats((struct watch *)&srv->watch, log);
    out->log_worker_dropped = log[0];
    out->log_worker_written = log[1];
    out->log_watcher_skipped = log[2];
    out->log_watcher_sent = log[3];
    out->log_watchers = log[4];
    out->warm_restart_items = atomic_load(&srv->warm.items);
    out->warm_restart_cold = atomic_load(&srv->warm.cold);
    out->memory_file_numa_bound = atomic_load(&srv->warm.numa_bound);
}
