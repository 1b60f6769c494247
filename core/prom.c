/*
 * prom.c: the Prometheus text exposition format, generated from the metric
 * tables (the contract is prom.h).
 *
 * Two sources of families, one declaration of every number:
 *
 *   corecache_*   each entry of a per-shard table (io/shard.h's SHARD_METRIC,
 *                 core/store.c's STORE_METRIC) becomes one family with a
 *                 sample per shard. The family name is derived from the
 *                 entry (prom_family_name), the help is the entry's.
 *
 *   memcached_*   memcached_exporter's families, from exporter_rows below.
 *                 A row says which exporter series it is (family, type,
 *                 labels) and which STAT name its value comes from; the
 *                 name is looked up in the tables handed in, so the row
 *                 refers to the declaration instead of repeating it. A
 *                 source may be "a-b-c" (the exporter's set command count
 *                 is cmd_set less the cas commands) or a decimal constant
 *                 (memcached_up is 1 whenever we answer).
 *
 * Rows of one family are contiguous (the format requires a family's samples
 * together, after its # HELP and # TYPE); the first row of a family gives
 * the help, or the source's own help when it gives none.
 *
 * Deliberate differences from the exporter: memcached_uptime_seconds,
 * memcached_slab_items_evicted_time_seconds,
 * memcached_slab_mem_requested_bytes and memcached_slab_items_moves_* are
 * gauges here (the exporter types
 * them counter): they are levels, not running totals, and
 * `promtool check metrics` requires a counter's name to end in _total.
 * Names and labels are the exporter's, so queries are unaffected.
 */
#include "prom.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "latency.h"

enum prom_type { PROM_COUNTER, PROM_GAUGE, PROM_INFO };
enum prom_scope { PROM_SERVER, PROM_SLAB };

struct exporter_row {
    const char *family;
    enum prom_type type;
    enum prom_scope scope;
    const char *labels; /* without braces; "" for none; for PROM_INFO the label's name */
    const char *source; /* STAT name, "a-b-c", or a decimal constant */
    const char *help;   /* NULL: the source's help, or the family's first row's */
};

#define CMD(command, status) "command=\"" command "\",status=\"" status "\""

static const char help_commands[] =
    "Total number of all requests broken down by command (get, set, etc.) and status.";
static const char help_slab_commands[] =
    "Total number of all requests broken down by command (get, set, etc.) and status per slab.";

/* memcached_exporter's families, in its order (pkg/exporter/exporter.go). */
static const struct exporter_row exporter_rows[] = {
    {"memcached_up", PROM_GAUGE, PROM_SERVER, "", "1", "Could the memcached server be reached."},
    {"memcached_uptime_seconds", PROM_GAUGE, PROM_SERVER, "", "uptime",
     "Number of seconds since the server started."},
    {"memcached_time_seconds", PROM_GAUGE, PROM_SERVER, "", "time",
     "current UNIX time according to the server."},
    {"memcached_version", PROM_INFO, PROM_SERVER, "version", "1", "The version of this memcached server."},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("get", "hit"), "get_hits", help_commands},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("get", "miss"), "get_misses", NULL},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("delete", "hit"), "delete_hits", NULL},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("delete", "miss"), "delete_misses", NULL},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("incr", "hit"), "incr_hits", NULL},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("incr", "miss"), "incr_misses", NULL},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("decr", "hit"), "decr_hits", NULL},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("decr", "miss"), "decr_misses", NULL},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("cas", "hit"), "cas_hits", NULL},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("cas", "miss"), "cas_misses", NULL},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("touch", "hit"), "touch_hits", NULL},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("touch", "miss"), "touch_misses", NULL},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("cas", "badval"), "cas_badval", NULL},
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("flush", "hit"), "cmd_flush", NULL},
    /* memcached counts cas commands in cmd_set as well */
    {"memcached_commands_total", PROM_COUNTER, PROM_SERVER, CMD("set", "hit"),
     "cmd_set-cas_misses-cas_hits-cas_badval", NULL},
    {"memcached_process_user_cpu_seconds_total", PROM_COUNTER, PROM_SERVER, "", "rusage_user",
     "Accumulated user time for this process."},
    {"memcached_process_system_cpu_seconds_total", PROM_COUNTER, PROM_SERVER, "", "rusage_system",
     "Accumulated system time for this process."},
    {"memcached_read_bytes_total", PROM_COUNTER, PROM_SERVER, "", "bytes_read",
     "Total number of bytes read by this server from network."},
    {"memcached_written_bytes_total", PROM_COUNTER, PROM_SERVER, "", "bytes_written",
     "Total number of bytes sent by this server to network."},
    {"memcached_current_connections", PROM_GAUGE, PROM_SERVER, "", "curr_connections",
     "Current number of open connections."},
    {"memcached_max_connections", PROM_GAUGE, PROM_SERVER, "", "max_connections",
     "Maximum number of clients allowed."},
    {"memcached_connections_total", PROM_COUNTER, PROM_SERVER, "", "total_connections",
     "Total number of connections opened since the server started running."},
    {"memcached_connections_rejected_total", PROM_COUNTER, PROM_SERVER, "", "rejected_connections",
     "Total number of connections rejected due to hitting the memcached's -c limit in maxconns_fast "
     "mode."},
    {"memcached_connections_yielded_total", PROM_COUNTER, PROM_SERVER, "", "conn_yields",
     "Total number of connections yielded running due to hitting the memcached's -R limit."},
    {"memcached_connections_listener_disabled_total", PROM_COUNTER, PROM_SERVER, "", "listen_disabled_num",
     "Number of times that memcached has hit its connections limit and disabled its listener."},
    {"memcached_current_bytes", PROM_GAUGE, PROM_SERVER, "", "bytes",
     "Current number of bytes used to store items."},
    {"memcached_limit_bytes", PROM_GAUGE, PROM_SERVER, "", "limit_maxbytes",
     "Number of bytes this server is allowed to use for storage."},
    {"memcached_current_items", PROM_GAUGE, PROM_SERVER, "", "curr_items",
     "Current number of items stored by this instance."},
    {"memcached_items_total", PROM_COUNTER, PROM_SERVER, "", "total_items",
     "Total number of items stored during the life of this instance."},
    {"memcached_items_evicted_total", PROM_COUNTER, PROM_SERVER, "", "evictions",
     "Total number of valid items removed from cache to free memory for new items."},
    {"memcached_items_reclaimed_total", PROM_COUNTER, PROM_SERVER, "", "reclaimed",
     "Total number of times an entry was stored using memory from an expired entry."},
    {"memcached_item_too_large_total", PROM_COUNTER, PROM_SERVER, "", "store_too_large",
     "The number of times an item exceeded the max-item-size when being stored."},
    {"memcached_item_no_memory_total", PROM_COUNTER, PROM_SERVER, "", "store_no_memory",
     "The number of times an item could not be stored due to no more memory."},
    /* from `stats settings` (io/facts.h FACTS_LRU_SETTINGS) */
    {"memcached_lru_crawler_enabled", PROM_GAUGE, PROM_SERVER, "", "lru_crawler", "Whether the LRU crawler is enabled."},
    {"memcached_lru_crawler_sleep", PROM_GAUGE, PROM_SERVER, "", "lru_crawler_sleep",
     "Microseconds to sleep between LRU crawls."},
    {"memcached_lru_crawler_to_crawl", PROM_GAUGE, PROM_SERVER, "", "lru_crawler_tocrawl",
     "Max items to crawl per slab per run."},
    {"memcached_lru_crawler_maintainer_thread", PROM_GAUGE, PROM_SERVER, "", "lru_maintainer_thread",
     "Split LRU mode and background threads."},
    {"memcached_lru_crawler_hot_percent", PROM_GAUGE, PROM_SERVER, "", "hot_lru_pct",
     "Percent of slab memory reserved for HOT LRU."},
    {"memcached_lru_crawler_warm_percent", PROM_GAUGE, PROM_SERVER, "", "warm_lru_pct",
     "Percent of slab memory reserved for WARM LRU."},
    {"memcached_lru_crawler_hot_max_factor", PROM_GAUGE, PROM_SERVER, "", "hot_max_factor",
     "Set idle age of HOT LRU to COLD age * this"},
    {"memcached_lru_crawler_warm_max_factor", PROM_GAUGE, PROM_SERVER, "", "warm_max_factor",
     "Set idle age of WARM LRU to COLD age * this"},
    {"memcached_lru_crawler_starts_total", PROM_COUNTER, PROM_SERVER, "", "lru_crawler_starts",
     "Times an LRU crawler was started."},
    {"memcached_lru_crawler_moves_to_cold_total", PROM_COUNTER, PROM_SERVER, "", "moves_to_cold",
     "Total number of items moved from HOT/WARM to COLD LRU's."},
    {"memcached_lru_crawler_moves_to_warm_total", PROM_COUNTER, PROM_SERVER, "", "moves_to_warm",
     "Total number of items moved from COLD to WARM LRU."},
    {"memcached_lru_crawler_moves_within_lru_total", PROM_COUNTER, PROM_SERVER, "", "moves_within_lru",
     "Total number of items reshuffled within HOT or WARM LRU's."},
    {"memcached_lru_crawler_reclaimed_total", PROM_COUNTER, PROM_SERVER, "", "crawler_reclaimed",
     "Total items freed by LRU Crawler."},
    {"memcached_lru_crawler_items_checked_total", PROM_COUNTER, PROM_SERVER, "",
     "crawler_items_checked", "Total items examined by LRU Crawler."},
    {"memcached_malloced_bytes", PROM_GAUGE, PROM_SERVER, "", "total_malloced",
     "Number of bytes of memory allocated to slab pages."},
    {"memcached_accepting_connections", PROM_GAUGE, PROM_SERVER, "", "accepting_conns",
     "The Memcached server is currently accepting new connections."},

    /* per slab class (labels after slab="<id>") */
    {"memcached_slab_current_items", PROM_GAUGE, PROM_SLAB, "", "number",
     "Number of items currently stored in this slab class."},
    {"memcached_slab_items_age_seconds", PROM_GAUGE, PROM_SLAB, "", "age",
     "Number of seconds the oldest item has been in the slab class."},
    {"memcached_slab_items_crawler_reclaimed_total", PROM_COUNTER, PROM_SLAB, "", "crawler_reclaimed",
     "Number of items freed by the LRU Crawler."},
    {"memcached_slab_items_evicted_total", PROM_COUNTER, PROM_SLAB, "", "evicted",
     "Total number of times an item had to be evicted from the LRU before it expired."},
    {"memcached_slab_items_evicted_nonzero_total", PROM_COUNTER, PROM_SLAB, "", "evicted_nonzero",
     "Total number of times an item which had an explicit expire time set had to be evicted from "
     "the LRU before it expired."},
    {"memcached_slab_items_evicted_time_seconds", PROM_GAUGE, PROM_SLAB, "", "evicted_time",
     "Seconds since the last access for the most recent item evicted from this class."},
    {"memcached_slab_items_evicted_unfetched_total", PROM_COUNTER, PROM_SLAB, "", "evicted_unfetched",
     "Total nmber of items evicted and never fetched."},
    {"memcached_slab_items_expired_unfetched_total", PROM_COUNTER, PROM_SLAB, "", "expired_unfetched",
     "Total number of valid items evicted from the LRU which were never touched after being set."},
    {"memcached_slab_items_outofmemory_total", PROM_COUNTER, PROM_SLAB, "", "outofmemory",
     "Total number of items for this slab class that have triggered an out of memory error."},
    {"memcached_slab_items_reclaimed_total", PROM_COUNTER, PROM_SLAB, "", "reclaimed",
     "Total number of items reclaimed."},
    {"memcached_slab_items_tailrepairs_total", PROM_COUNTER, PROM_SLAB, "", "tailrepairs",
     "Total number of times the entries for a particular ID need repairing."},
    /* items_moves_*: gauges here, as the other exporter counters whose
     * names lack _total (see the top of the file) */
    {"memcached_slab_items_moves_to_cold", PROM_GAUGE, PROM_SLAB, "", "moves_to_cold",
     "Number of items moved from HOT or WARM into COLD."},
    {"memcached_slab_items_moves_to_warm", PROM_GAUGE, PROM_SLAB, "", "moves_to_warm",
     "Number of items moves from COLD into WARM."},
    {"memcached_slab_items_moves_within_lru", PROM_GAUGE, PROM_SLAB, "", "moves_within_lru",
     "Number of times active items were bumped within HOT or WARM."},
    {"memcached_slab_hot_items", PROM_GAUGE, PROM_SLAB, "", "number_hot",
     "Number of items presently stored in the HOT LRU."},
    {"memcached_slab_warm_items", PROM_GAUGE, PROM_SLAB, "", "number_warm",
     "Number of items presently stored in the WARM LRU."},
    {"memcached_slab_cold_items", PROM_GAUGE, PROM_SLAB, "", "number_cold",
     "Number of items presently stored in the COLD LRU."},
    {"memcached_slab_hot_age_seconds", PROM_GAUGE, PROM_SLAB, "", "age_hot", "Age of the oldest item in HOT LRU."},
    {"memcached_slab_warm_age_seconds", PROM_GAUGE, PROM_SLAB, "", "age_warm",
     "Age of the oldest item in HOT LRU."},
    {"memcached_slab_lru_hits_total", PROM_COUNTER, PROM_SLAB, "lru=\"hot\"", "hits_to_hot",
     "Number of get_hits to the LRU."},
    {"memcached_slab_lru_hits_total", PROM_COUNTER, PROM_SLAB, "lru=\"warm\"", "hits_to_warm", NULL},
    {"memcached_slab_lru_hits_total", PROM_COUNTER, PROM_SLAB, "lru=\"cold\"", "hits_to_cold", NULL},
    {"memcached_slab_lru_hits_total", PROM_COUNTER, PROM_SLAB, "lru=\"temporary\"", "hits_to_temp", NULL},
    {"memcached_slab_commands_total", PROM_COUNTER, PROM_SLAB, CMD("get", "hit"), "get_hits",
     help_slab_commands},
    {"memcached_slab_commands_total", PROM_COUNTER, PROM_SLAB, CMD("delete", "hit"), "delete_hits", NULL},
    {"memcached_slab_commands_total", PROM_COUNTER, PROM_SLAB, CMD("incr", "hit"), "incr_hits", NULL},
    {"memcached_slab_commands_total", PROM_COUNTER, PROM_SLAB, CMD("decr", "hit"), "decr_hits", NULL},
    {"memcached_slab_commands_total", PROM_COUNTER, PROM_SLAB, CMD("cas", "hit"), "cas_hits", NULL},
    {"memcached_slab_commands_total", PROM_COUNTER, PROM_SLAB, CMD("touch", "hit"), "touch_hits", NULL},
    {"memcached_slab_commands_total", PROM_COUNTER, PROM_SLAB, CMD("cas", "badval"), "cas_badval", NULL},
    {"memcached_slab_commands_total", PROM_COUNTER, PROM_SLAB, CMD("set", "hit"),
     "cmd_set-cas_hits-cas_badval", NULL},
    {"memcached_slab_chunk_size_bytes", PROM_GAUGE, PROM_SLAB, "", "chunk_size",
     "Number of bytes allocated to each chunk within this slab class."},
    {"memcached_slab_chunks_per_page", PROM_GAUGE, PROM_SLAB, "", "chunks_per_page",
     "Number of chunks within a single page for this slab class."},
    {"memcached_slab_current_pages", PROM_GAUGE, PROM_SLAB, "", "total_pages",
     "Number of pages allocated to this slab class."},
    {"memcached_slab_current_chunks", PROM_GAUGE, PROM_SLAB, "", "total_chunks",
     "Number of chunks allocated to this slab class."},
    {"memcached_slab_chunks_used", PROM_GAUGE, PROM_SLAB, "", "used_chunks",
     "Number of chunks allocated to an item."},
    {"memcached_slab_chunks_free", PROM_GAUGE, PROM_SLAB, "", "free_chunks",
     "Number of chunks not yet allocated items."},
    {"memcached_slab_chunks_free_end", PROM_GAUGE, PROM_SLAB, "", "free_chunks_end",
     "Number of free chunks at the end of the last allocated page."},
    {"memcached_slab_mem_requested_bytes", PROM_GAUGE, PROM_SLAB, "", "mem_requested",
     "Number of bytes of memory actual items take up within a slab."},
};

#define EXPORTER_NROWS (sizeof(exporter_rows) / sizeof(exporter_rows[0]))

static const char *type_word(enum prom_type type)
{
    return type == PROM_COUNTER ? "counter" : "gauge";
}

/* --- writing ------------------------------------------------------------ */

static bool put_str(struct sink *out, const char *s)
{
    return sink_put(out, s, strlen(s));
}

/* Help text escaping: backslash and newline (the format's only rules). */
static bool put_escaped(struct sink *out, const char *s, bool quote)
{
    for (const char *p = s; *p != '\0'; p++) {
        bool ok;
        if (*p == '\\')
            ok = sink_puts(out, "\\\\");
        else if (*p == '\n')
            ok = sink_puts(out, "\\n");
        else if (quote && *p == '"')
            ok = sink_puts(out, "\\\"");
        else
            ok = sink_put(out, p, 1);
        if (!ok)
            return false;
    }
    return true;
}

bool prom_family(struct sink *out, const char *name, const char *type, const char *help)
{
    return sink_puts(out, "# HELP ") && put_str(out, name) && sink_puts(out, " ") &&
           put_escaped(out, help, false) && sink_puts(out, "\n# TYPE ") && put_str(out, name) &&
           sink_puts(out, " ") && put_str(out, type) && sink_puts(out, "\n");
}

bool prom_render_build_info(struct sink *out, const char *name, const char *help, const char *version,
                            const char *protocol)
{
    return prom_family(out, name, "gauge", help) && put_str(out, name) &&
           sink_puts(out, "{version=\"") && put_escaped(out, version, true) &&
           sink_puts(out, "\",memcached_protocol=\"") && put_escaped(out, protocol, true) &&
           sink_puts(out, "\"} 1\n");
}

/* "<name><suffix>{<labels>} <value>\n"; labels may be "" (no braces). */
static bool sample(struct sink *out, const char *name, const char *suffix, const char *labels,
                   const char *value, size_t nvalue)
{
    if (!put_str(out, name) || !put_str(out, suffix))
        return false;
    if (labels[0] != '\0' && !(sink_puts(out, "{") && put_str(out, labels) && sink_puts(out, "}")))
        return false;
    return sink_puts(out, " ") && sink_put(out, value, nvalue) && sink_puts(out, "\n");
}

static bool sample_u64(struct sink *out, const char *name, const char *suffix, const char *labels,
                       uint64_t v)
{
    char num[20];
    return sample(out, name, suffix, labels, num, metrics_u64toa(v, num));
}

/* A value of type `type` as Prometheus shows it: USEC in seconds. */
static bool sample_value(struct sink *out, const char *name, const char *labels, enum metric_type type,
                         uint64_t v)
{
    if (type != METRIC_USEC)
        return sample_u64(out, name, "", labels, v);
    char num[32];
    return sample(out, name, "", labels, num, metrics_usec_format(v, num));
}

bool prom_family_name(char *buf, size_t cap, const char *prefix, const struct metric_desc *desc)
{
    const char *suffix = desc->type == METRIC_COUNTER ? "_total"
                         : desc->type == METRIC_USEC  ? "_seconds_total"
                                                      : "";
    int n = snprintf(buf, cap, "%s%s%s", prefix, desc->name, suffix);
    return n >= 0 && (size_t)n < cap;
}

static const char *desc_prom_type(const struct metric_desc *desc)
{
    return desc->type == METRIC_COUNTER || desc->type == METRIC_USEC ? "counter" : "gauge";
}

/* --- corecache's per-shard families ------------------------------------- */

bool prom_render_server(struct sink *out, const char *prefix, const struct metric_desc *desc, size_t n,
                        const uint64_t *values)
{
    for (size_t i = 0; i < n; i++) {
        char name[128];
        if (!prom_family_name(name, sizeof(name), prefix, &desc[i]) ||
            !prom_family(out, name, desc_prom_type(&desc[i]), desc[i].help) ||
            !sample_value(out, name, "", desc[i].type, values[i]))
            return false;
    }
    return true;
}

bool prom_render_shards(struct sink *out, const char *prefix, const struct metric_desc *desc,
                        size_t n, const uint64_t *const *shard_values, unsigned nshards)
{
    for (size_t i = 0; i < n; i++) {
        char name[128];
        if (!prom_family_name(name, sizeof(name), prefix, &desc[i]) ||
            !prom_family(out, name, desc_prom_type(&desc[i]), desc[i].help))
            return false;
        for (unsigned s = 0; s < nshards; s++) {
            char labels[32];
            snprintf(labels, sizeof(labels), "shard=\"%u\"", s);
            if (!sample_value(out, name, labels, desc[i].type, shard_values[s][i]))
                return false;
        }
    }
    return true;
}

bool prom_render_latency(struct sink *out, const char *name, const char *help,
                         const uint64_t *const *shard_values, unsigned nshards)
{
    if (!prom_family(out, name, "histogram", help))
        return false;
    for (unsigned s = 0; s < nshards; s++) {
        struct latency h;
        memcpy(h.v, shard_values[s], sizeof(h.v));
        char labels[64];
        uint64_t cumulative = 0;
        for (unsigned i = 0; i < LATENCY_BUCKETS; i++) {
            cumulative += h.bucket[i];
            /* a power of two nanoseconds is an exact decimal in seconds */
            snprintf(labels, sizeof(labels), "shard=\"%u\",le=\"%.10g\"", s,
                     (double)LATENCY_LE_NS(i) / 1e9);
            if (!sample_u64(out, name, "_bucket", labels, cumulative))
                return false;
        }
        snprintf(labels, sizeof(labels), "shard=\"%u\",le=\"+Inf\"", s);
        if (!sample_u64(out, name, "_bucket", labels, h.count))
            return false;
        char sum[48];
        int nsum = snprintf(sum, sizeof(sum), "%" PRIu64 ".%09" PRIu64, h.sum_ns / 1000000000u,
                            h.sum_ns % 1000000000u);
        snprintf(labels, sizeof(labels), "shard=\"%u\"", s);
        if (!sample(out, name, "_sum", labels, sum, (size_t)nsum) ||
            !sample_u64(out, name, "_count", labels, h.count))
            return false;
    }
    return true;
}

/* --- memcached_exporter's families -------------------------------------- */

/* Finds `name` (len bytes) in the tables; NULL if absent. */
static const struct metric_desc *lookup(const struct prom_table *tables, size_t ntables,
                                        const char *name, size_t len, const uint64_t **value)
{
    for (size_t t = 0; t < ntables; t++) {
        for (size_t i = 0; i < tables[t].n; i++) {
            const char *candidate = tables[t].desc[i].name;
            if (strncmp(candidate, name, len) == 0 && candidate[len] == '\0') {
                if (value != NULL)
                    *value = tables[t].values != NULL ? &tables[t].values[i] : NULL;
                return &tables[t].desc[i];
            }
        }
    }
    return NULL;
}

static bool is_constant(const char *token)
{
    return token[0] >= '0' && token[0] <= '9';
}

/*
 * Evaluates a row's source: the first term less the others (at least 0).
 * *type is the first term's type; *first its descriptor (NULL for a
 * constant). Returns false if a name does not resolve (*bad is set to it).
 */
static bool evaluate(const char *source, const struct prom_table *tables, size_t ntables,
                     uint64_t *result, enum metric_type *type, const struct metric_desc **first,
                     const char **bad)
{
    uint64_t acc = 0;
    bool minus = false;
    const char *p = source;
    *type = METRIC_GAUGE;
    *first = NULL;
    for (;;) {
        const char *dash = strchr(p, '-');
        size_t len = dash != NULL ? (size_t)(dash - p) : strlen(p);
        uint64_t term = 0;
        if (is_constant(p)) {
            for (size_t i = 0; i < len; i++)
                term = term * 10 + (uint64_t)(p[i] - '0');
        } else {
            const uint64_t *value = NULL;
            const struct metric_desc *desc = lookup(tables, ntables, p, len, &value);
            if (desc == NULL) {
                *bad = p;
                return false;
            }
            term = value != NULL ? *value : 0;
            if (!minus) {
                *type = desc->type;
                *first = desc;
            }
        }
        if (!minus)
            acc = term;
        else
            acc = acc > term ? acc - term : 0;
        if (dash == NULL)
            break;
        minus = true;
        p = dash + 1;
    }
    *result = acc;
    return true;
}

static const char *row_help(const struct exporter_row *row, const struct metric_desc *first)
{
    if (row->help != NULL)
        return row->help;
    return first != NULL ? first->help : "";
}

static bool render_row(struct sink *out, const struct exporter_row *row, const struct prom_table *tables,
                       size_t ntables, const char *slab, const char *version, bool header)
{
    uint64_t v;
    enum metric_type type;
    const struct metric_desc *first;
    const char *bad;
    if (!evaluate(row->source, tables, ntables, &v, &type, &first, &bad))
        return true; /* an unknown source renders nothing (prom_exporter_check catches it) */
    if (header && !prom_family(out, row->family, row->type == PROM_INFO ? "gauge" : type_word(row->type),
                               row_help(row, first)))
        return false;
    char labels[256];
    if (row->type == PROM_INFO) {
        /* version="<value>", escaped */
        struct sink *s = out;
        return put_str(s, row->family) && sink_puts(s, "{") && put_str(s, row->labels) &&
               sink_puts(s, "=\"") && put_escaped(s, version, true) && sink_puts(s, "\"} ") &&
               sink_put(s, "1", 1) && sink_puts(s, "\n");
    }
    if (slab != NULL)
        snprintf(labels, sizeof(labels), "slab=\"%s\"%s%s", slab, row->labels[0] ? "," : "", row->labels);
    else
        snprintf(labels, sizeof(labels), "%s", row->labels);
    return sample_value(out, row->family, labels, type, v);
}

bool prom_render_exporter(struct sink *out, const struct prom_table *tables, size_t ntables,
                          const struct prom_classes *classes, const char *version)
{
    const char *family = NULL;
    for (size_t r = 0; r < EXPORTER_NROWS; r++) {
        const struct exporter_row *row = &exporter_rows[r];
        bool header = family == NULL || strcmp(family, row->family) != 0;
        family = row->family;
        if (row->scope == PROM_SERVER) {
            if (!render_row(out, row, tables, ntables, NULL, version, header))
                return false;
            continue;
        }
        if (classes == NULL)
            continue;
        if (header) {
            /* A slab family's header comes even with no class in use, so
             * the family is always described. */
            const uint64_t *unused;
            const struct metric_desc *first = NULL;
            const char *dash = strchr(row->source, '-');
            size_t len = dash != NULL ? (size_t)(dash - row->source) : strlen(row->source);
            struct prom_table t = {classes->desc, classes->n, NULL};
            first = lookup(&t, 1, row->source, len, &unused);
            if (first == NULL)
                continue;
            if (!prom_family(out, row->family, type_word(row->type), row_help(row, first)))
                return false;
        }
        for (unsigned k = 0; k < classes->nids; k++) {
            unsigned id = classes->ids[k];
            struct prom_table t = {classes->desc, classes->n, classes->values + (size_t)id * classes->n};
            char slab[16];
            snprintf(slab, sizeof(slab), "%u", id);
            if (!render_row(out, row, &t, 1, slab, version, false))
                return false;
        }
    }
    return true;
}

bool prom_exporter_check(const struct prom_table *tables, size_t ntables,
                         const struct metric_desc *class_desc, size_t class_n, const char **missing)
{
    struct prom_table cls = {class_desc, class_n, NULL};
    for (size_t r = 0; r < EXPORTER_NROWS; r++) {
        const struct exporter_row *row = &exporter_rows[r];
        uint64_t v;
        enum metric_type type;
        const struct metric_desc *first;
        const char *bad;
        bool ok = row->scope == PROM_SERVER ? evaluate(row->source, tables, ntables, &v, &type, &first, &bad)
                                            : evaluate(row->source, &cls, 1, &v, &type, &first, &bad);
        if (!ok) {
            *missing = row->source;
            return false;
        }
        /* a family's rows are contiguous and agree on type and scope */
        for (size_t q = r + 2; q < EXPORTER_NROWS; q++) {
            if (strcmp(exporter_rows[q].family, row->family) == 0 &&
                strcmp(exporter_rows[q - 1].family, row->family) != 0) {
                *missing = row->family;
                return false;
            }
        }
        if (r > 0 && strcmp(exporter_rows[r - 1].family, row->family) == 0 &&
            (exporter_rows[r - 1].type != row->type || exporter_rows[r - 1].scope != row->scope)) {
            *missing = row->family;
            return false;
        }
        if (row_help(row, first)[0] == '\0' &&
            (r == 0 || strcmp(exporter_rows[r - 1].family, row->family) != 0)) {
            *missing = row->family;
            return false;
        }
    }
    return true;
}

/* --- --describe-metrics ------------------------------------------------- */

bool prom_describe_table(struct sink *out, const char *source, const char *stat_prefix,
                         const char *prom_prefix, const struct metric_desc *desc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char name[128] = "-";
        /* per-shard families are labelled; the server's own (issue 14's
         * warm restart facts, prom_render_server) are not */
        if (prom_prefix != NULL && prom_family_name(name, sizeof(name), prom_prefix, &desc[i]) &&
            strcmp(source, "server") != 0)
            strncat(name, "{shard}", sizeof(name) - strlen(name) - 1);
        if (!(put_str(out, source) && sink_puts(out, "\t") && put_str(out, metrics_type_name(desc[i].type)) &&
              sink_puts(out, "\t") && put_str(out, stat_prefix) && put_str(out, desc[i].name) &&
              sink_puts(out, "\t") && put_str(out, name) && sink_puts(out, "\t") &&
              put_escaped(out, desc[i].help, false) && sink_puts(out, "\n")))
            return false;
    }
    return true;
}

bool prom_describe_exporter(struct sink *out)
{
    for (size_t r = 0; r < EXPORTER_NROWS; r++) {
        const struct exporter_row *row = &exporter_rows[r];
        char series[320];
        if (row->type == PROM_INFO)
            snprintf(series, sizeof(series), "%s{%s}", row->family, row->labels);
        else if (row->scope == PROM_SLAB)
            snprintf(series, sizeof(series), "%s{slab%s%s}", row->family, row->labels[0] ? "," : "",
                     row->labels);
        else if (row->labels[0] != '\0')
            snprintf(series, sizeof(series), "%s{%s}", row->family, row->labels);
        else
            snprintf(series, sizeof(series), "%s", row->family);
        const char *help = row->help;
        for (size_t q = r; help == NULL && q > 0; q--) {
            if (strcmp(exporter_rows[q - 1].family, row->family) == 0)
                help = exporter_rows[q - 1].help;
        }
        if (!(sink_puts(out, "exporter\t") &&
              put_str(out, row->type == PROM_INFO ? "info" : type_word(row->type)) && sink_puts(out, "\t") &&
              put_str(out, row->source) && sink_puts(out, "\t") && put_str(out, series) &&
              sink_puts(out, "\t") && put_str(out, help != NULL ? help : "(the source's help)") &&
              sink_puts(out, "\n")))
            return false;
    }
    return true;
}
