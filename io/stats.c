/*
 * stats.c: the stats replies (see stats.h): `stats`, `stats settings`,
 * `stats items`, `stats slabs`, `stats conns`, `stats shards`, in either
 * protocol.
 *
 * core/exec.c decides which group a request asks for (and answers the
 * fixed ones itself: sizes, reset, unknown groups); this file gathers and
 * renders. Counters are per shard and written only by their shard, so a
 * stats reply is a fold over the same snapshot gather the metrics endpoint
 * uses (snapshot.h): every shard copies its tables, the asking shard files
 * the copies side by side, and once the last one is in, the reply is
 * rendered: summed over the shards (gauges too: a shard's curr_items plus
 * another's is the server's) in memcached 1.6's format, or shard by shard
 * for `stats shards`. `stats conns` gathers text instead: each shard lists
 * its own listeners and connections. `stats settings` is local: the
 * configuration is the same on every shard.
 *
 * A binary STAT is rendered as text and transcoded into one packet per
 * line (proto_bin_stats_from_text), so no stat is written twice.
 *
 * Every name comes from a metric table (facts.h, shard.h, store.c); only
 * `version` and the settings that are not options are written here.
 */
#include "stats.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/cfg.h"
#include "../core/metrics.h"
#include "../core/proto_bin.h"
#include "../core/store.h"
#include "cachedump.h"
#include "conn.h"
#include "facts.h"
#include "listen.h"
#include "route.h"
#include "shard.h"
#include "snapshot.h"
#include "tls.h"

/* What a stats gather answers: the group, and for a binary STAT the
 * request's opcode and opaque (its other fields are not kept). */
struct stats_ask {
    enum exec_stats group;
    struct proto_req req;
};

/* The sum over every shard of the tables a reply renders. */
struct stats_sum {
    uint32_t nclasses;
    uint64_t shard[SHARD_METRIC_COUNT];
    uint64_t *store; /* store_metric_count */
    uint64_t *cls;   /* STORE_CLASSES_MAX x store_class_metric_count */
};

static void stats_sum_free(struct stats_sum *sum)
{
    free(sum->store);
    free(sum->cls);
}

/* Folds the snapshots into one sum. False when out of memory. */
static bool stats_sum_of(const struct snapshots *snaps, struct stats_sum *sum)
{
    size_t ncm = store_class_metric_count;
    memset(sum, 0, sizeof(*sum));
    sum->store = calloc(store_metric_count, sizeof(uint64_t));
    sum->cls = calloc((size_t)STORE_CLASSES_MAX * ncm, sizeof(uint64_t));
    if (sum->store == NULL || sum->cls == NULL) {
        stats_sum_free(sum);
        return false;
    }
    sum->nclasses = snaps->nclasses;
    for (unsigned s = 0; s < snaps->nshards; s++) {
        metrics_sum(sum->shard, snapshot_shard_metrics(snaps, s), shard_metric_desc, SHARD_METRIC_COUNT);
        metrics_sum(sum->store, snapshot_store_metrics(snaps, s), store_metric_desc, store_metric_count);
        for (unsigned id = 1; id <= snaps->nclasses && id < STORE_CLASSES_MAX; id++)
            metrics_sum(sum->cls + (size_t)id * ncm, snapshot_class(snaps, s, id), store_class_metric_desc, ncm);
    }
    return true;
}

/* --- stats conns: a text gather ------------------------------------------ */

struct conns_text {
    struct stats_ask ask; /* first member: the render reads the group */
    char *text;
    size_t len;
};

/* memcached's state names: a connection holding part of a request is
 * reading it (conn_nread), else it waits for or parses the next one. */
static const char *conn_state_name(const struct conn *conn)
{
    if (conn->closing)
        return "conn_closing";
    return conn->rlen > 0 ? "conn_nread" : "conn_parse_cmd";
}

static bool collect_conn_lines(struct shard *shard, int kind, struct sink *out)
{
    (void)kind;
    char line[256], addr[INET6_ADDRSTRLEN + 8];
    for (unsigned i = 0; i < shard->nlisten; i++) {
        int fd = shard->listen_fds[i];
        if (fd < 0)
            continue;
        const char *unix_path = shard->srv->cfg.unix_socket; /* -s: memcached's "unix:PATH" */
        int n = unix_path != NULL
                    ? snprintf(line, sizeof(line), "STAT %d:addr unix:%s\r\nSTAT %d:state conn_listening\r\n",
                               fd, unix_path, fd)
                    : snprintf(line, sizeof(line), "STAT %d:addr tcp:%s:%d\r\nSTAT %d:state conn_listening\r\n",
                               fd, shard->srv->cfg.listen, listen_port(fd), fd);
        if (!sink_put(out, line, (size_t)n))
            return false;
    }
    for (uint32_t i = 0; i < shard->nconns; i++) {
        struct conn *conn = shard->conns[i];
        if (conn == NULL || conn->fd < 0)
            continue;
        int port = 0;
        if (shard->srv->cfg.unix_socket != NULL && !conn->ops->metrics_endpoint) {
            int n = snprintf(line, sizeof(line),
                             "STAT %d:addr unix:%s\r\nSTAT %d:listen_addr unix:%s\r\n"
                             "STAT %d:state %s\r\nSTAT %d:secs_since_last_cmd %u\r\n",
                             conn->fd, shard->srv->cfg.unix_socket, conn->fd, shard->srv->cfg.unix_socket,
                             conn->fd, conn_state_name(conn), conn->fd,
                             shard->now - conn->last_cmd_time);
            if (n < 0 || (size_t)n >= sizeof(line) || !sink_put(out, line, (size_t)n))
                return false;
            continue;
        }
        if (conn->peer.sin6_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&conn->peer;
            addr[0] = '[';
            inet_ntop(AF_INET6, &a->sin6_addr, addr + 1, INET6_ADDRSTRLEN);
            strcat(addr, "]");
            port = ntohs(a->sin6_port);
        } else {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&conn->peer;
            inet_ntop(AF_INET, &a->sin_addr, addr, sizeof(addr));
            port = ntohs(a->sin_port);
        }
        int n = snprintf(line, sizeof(line),
                         "STAT %d:addr tcp:%s:%d\r\nSTAT %d:listen_addr tcp:%s:%u\r\n"
                         "STAT %d:state %s\r\nSTAT %d:secs_since_last_cmd %u\r\n",
                         conn->fd, addr, port, conn->fd, shard->srv->cfg.listen,
                         conn->ops->metrics_endpoint ? shard->srv->cfg.metrics_port : shard->srv->cfg.port,
                         conn->fd, conn_state_name(conn), conn->fd,
                         shard->now - conn->last_cmd_time);
        if (!sink_put(out, line, (size_t)n))
            return false;
    }
    return true;
}

static void conns_fold(void *state, unsigned from, const void *part, size_t len)
{
    struct conns_text *ct = state;
    (void)from;
    if (len == 0)
        return;
    char *text = realloc(ct->text, ct->len + len);
    if (text == NULL)
        return; /* that shard's lines are left out */
    memcpy(text + ct->len, part, len);
    ct->text = text;
    ct->len += len;
}

static void conns_free(void *state)
{
    struct conns_text *ct = state;
    free(ct->text);
    free(ct);
}

/* --- rendering ---------------------------------------------------------- */

/* Index of a metric in a table, by name (the renderers pick rows by name). */
static size_t metric_index(const struct metric_desc *desc, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(desc[i].name, name) == 0)
            return i;
    }
    return n;
}

static bool render_general(struct shard *shard, const struct stats_sum *sum, struct sink *out)
{
    /* total_malloced is reported by stats slabs, as memcached does */
    size_t n = store_metric_count;
    size_t malloced = metric_index(store_metric_desc, n, "total_malloced");
    size_t after = malloced < n ? malloced + 1 : n;
    /* the server's facts (facts.h) around the shard and store tables, in
     * memcached's order */
    struct facts facts;
    facts_read(shard->srv, &facts);
    const size_t runtime = FACTS_PROCESS_COUNT, limits = runtime + FACTS_RUNTIME_COUNT;
    return metrics_render_stats(out, "", facts_desc, facts.v, FACTS_PROCESS_COUNT) &&
           metrics_stat_str(out, "version", SERVER_VERSION_STRING) &&
           metrics_stat_str(out, "corecache_version", CORECACHE_VERSION) &&
           metrics_render_stats(out, "", facts_desc + runtime, facts.v + runtime, FACTS_RUNTIME_COUNT) &&
           metrics_render_stats(out, "", shard_metric_desc, sum->shard, SHARD_METRIC_COUNT) &&
           metrics_render_stats(out, "", store_metric_desc, sum->store, malloced) &&
           metrics_render_stats(out, "", store_metric_desc + after, sum->store + after, n - after) &&
           metrics_render_stats(out, "", facts_desc + limits, facts.v + limits, FACTS_LIMITS_COUNT) &&
           metrics_render_stats(out, "", facts_desc + limits + FACTS_LIMITS_COUNT, /* issue 14 */
                                facts.v + limits + FACTS_LIMITS_COUNT, FACTS_WARM_COUNT) &&
           tls_render_stats(shard->srv->tls, (int64_t)facts.time, out);
}

/*
 * stats slabs: "STAT <id>:<name> <value>" for the slab section of every
 * class that holds items, then active_slabs and total_malloced; stats
 * items: "STAT items:<id>:<name> <value>" for the items section of every
 * class that holds items. As memcached, empty classes are not listed.
 */
static bool render_classes(const struct stats_sum *sum, bool slabs, struct sink *out)
{
    size_t ncm = store_class_metric_count;
    size_t first = slabs ? 0 : store_class_metric_items_first;
    size_t last = slabs ? store_class_metric_items_first : ncm;
    /* issue 12: classes holding items (no class owns pages, store.c); in
     * memcached a class with pages and one with items are the same ones */
    size_t shown = metric_index(store_class_metric_desc, ncm, slabs ? "used_chunks" : "number");
    uint64_t active = 0;
    for (unsigned id = 1; id <= sum->nclasses && id < STORE_CLASSES_MAX; id++) {
        const uint64_t *row = sum->cls + (size_t)id * ncm;
        if (shown < ncm && row[shown] == 0)
            continue;
        active++;
        char prefix[32];
        snprintf(prefix, sizeof(prefix), slabs ? "%u:" : "items:%u:", id);
        if (!metrics_render_stats(out, prefix, store_class_metric_desc + first, row + first, last - first))
            return false;
    }
    if (!slabs)
        return true;
    size_t malloced = metric_index(store_metric_desc, store_metric_count, "total_malloced");
    return metrics_stat_u64(out, "active_slabs", active) &&
           metrics_stat_u64(out, "total_malloced",
                            malloced < store_metric_count ? sum->store[malloced] : 0);
}

/* --- settings (local: the configuration is the same on every shard) ----- */

/* The LRU and crawler settings of facts.h's table, as memcached writes them. */
static bool render_lru_settings(struct sink *out)
{
    for (size_t i = 0; i < FACTS_LRU_COUNT; i++) {
        const char *name = facts_lru_desc[i].name;
        uint64_t v = facts_lru_values[i];
        char factor[32];
        bool ok;
        switch (facts_lru_format[i]) {
        case FACTS_FORMAT_YESNO:
            ok = metrics_stat_str(out, name, v != 0 ? "yes" : "no");
            break;
        case FACTS_FORMAT_FACTOR:
            snprintf(factor, sizeof(factor), "%.2f", (double)v);
            ok = metrics_stat_str(out, name, factor);
            break;
        default:
            ok = metrics_stat_u64(out, name, v);
            break;
        }
        if (!ok)
            return false;
    }
    return true;
}

static bool render_settings(struct shard *shard, struct sink *out)
{
    const struct server *srv = shard->srv;
    /* The options memcached reports come from the option table (cfg.c),
     * with the values the server runs with; then the fixed facts. */
    struct cfg cfg = srv->cfg;
    cfg.threads = srv->nshards;
    cfg.verbose = atomic_load(&srv->verbosity);
    cfg.io_backend = srv->io_epoll ? "epoll" : "io_uring"; /* what runs, not what was asked */
    return cfg_render_settings(&cfg, out) &&
           metrics_stat_str(out, "domain_socket", cfg.unix_socket != NULL ? cfg.unix_socket : "NULL") &&
           metrics_stat_str(out, "umask", cfg.unix_mask) &&
           metrics_stat_str(out, "stat_key_prefix", cfg.prefix_delimiter != NULL ? cfg.prefix_delimiter : ":") &&
           metrics_stat_str(out, "detail_enabled", atomic_load(&srv->detail.enabled) ? "yes" : "no") &&
           metrics_stat_str(out, "binding_protocol",
                            strcmp(cfg.protocol, "auto") == 0 ? "auto-negotiate" : cfg.protocol) &&
           metrics_stat_str(out, "maxconns_fast", "yes") &&
           metrics_stat_str(out, "slab_reassign", cfg.no_slab_reassign ? "no" : "yes") &&
           render_lru_settings(out) &&
           metrics_stat_str(out, "dump_enabled", cfg.disable_dumping ? "no" : "yes") &&
           /* segment queues, not memcached's LRU segments: no TEMP LRU */
           metrics_stat_str(out, "lru_segmented", "no") &&
           metrics_stat_str(out, "temp_lru", "no") &&
           metrics_stat_str(out, "flush_enabled", cfg.disable_flush_all ? "no" : "yes") &&
           metrics_stat_str(out, "hash_algorithm", "xxh3") &&
           tls_render_settings(srv->tls, &cfg, out) &&
           sink_puts(out, "END\r\n");
}

/* --- stats shards: each shard's own values ------------------------------- */

/* The one derived line of `stats shards`. */
static const char hit_ratio_name[] = "hit_ratio";
static const char hit_ratio_help[] = "get_hits / (get_hits + get_misses) of the shard's store, 0 before any get";

bool stats_describe_shards(struct sink *out)
{
    return sink_puts(out, "shard\tratio\t<shard>:") && sink_put(out, hit_ratio_name, strlen(hit_ratio_name)) &&
           sink_puts(out, "\t-\t") && sink_put(out, hit_ratio_help, strlen(hit_ratio_help)) &&
           sink_puts(out, "\n");
}

static bool render_shards(const struct snapshots *snaps, struct sink *out)
{
    size_t hits = metrics_find(store_metric_desc, store_metric_count, "get_hits");
    size_t misses = metrics_find(store_metric_desc, store_metric_count, "get_misses");
    for (unsigned s = 0; s < snaps->nshards; s++) {
        char prefix[16], line[96];
        snprintf(prefix, sizeof(prefix), "%u:", s);
        const uint64_t *store = snapshot_store_metrics(snaps, s);
        if (!metrics_render_stats(out, prefix, shard_metric_desc, snapshot_shard_metrics(snaps, s),
                                  SHARD_METRIC_COUNT) ||
            !metrics_render_stats(out, prefix, store_metric_desc, store, store_metric_count))
            return false;
        /* the share of get keys found, memcached's get_hits / cmd_get */
        uint64_t h = hits < store_metric_count ? store[hits] : 0;
        uint64_t m = misses < store_metric_count ? store[misses] : 0;
        int n = snprintf(line, sizeof(line), "STAT %u:%s %.6f\r\n", s, hit_ratio_name,
                         h + m > 0 ? (double)h / (double)(h + m) : 0.0);
        if (!sink_put(out, line, (size_t)n))
            return false;
    }
    return true;
}

/* --- rendering a group ----------------------------------------------------- */

struct conns_block {
    long fd;
    const char *p;
    size_t len;
};

static int conns_block_cmp(const void *a, const void *b)
{
    const struct conns_block *x = a, *y = b;
    return x->fd < y->fd ? -1 : x->fd > y->fd;
}

/*
 * stats conns in memcached's order, by descriptor (it walks its fd table),
 * not shard by shard: clients take the line of their own fd as the last one
 * before END when they are the newest connection (t/watcher_connid.t).
 * Each descriptor's lines ("STAT <fd>:...") stay together, in order.
 */
static bool conns_put_sorted(const struct conns_text *ct, struct sink *out)
{
    size_t cap = 0, n = 0;
    for (size_t i = 0; i < ct->len; i++)
        cap += ct->text[i] == '\n';
    struct conns_block *blocks = calloc(cap + 1, sizeof(*blocks));
    if (blocks == NULL)
        return sink_put(out, ct->text, ct->len);
    const char *p = ct->text, *end = ct->text + ct->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl != NULL ? nl + 1 : end;
        long fd = strncmp(p, "STAT ", 5) == 0 ? strtol(p + 5, NULL, 10) : -1;
        if (n > 0 && blocks[n - 1].fd == fd && blocks[n - 1].p + blocks[n - 1].len == p)
            blocks[n - 1].len += (size_t)(line_end - p);
        else
            blocks[n++] = (struct conns_block){fd, p, (size_t)(line_end - p)};
        p = line_end;
    }
    qsort(blocks, n, sizeof(*blocks), conns_block_cmp);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++)
        ok = sink_put(out, blocks[i].p, blocks[i].len);
    free(blocks);
    return ok;
}

/* The text reply of a gathered group ("END" included). */
static bool render_text(struct shard *shard, enum exec_stats group, const struct snapshots *snaps,
                        const struct conns_text *ct, struct sink *out)
{
    bool ok = true;
    if (group == EXEC_STATS_CONNS) {
        ok = ct->len == 0 || conns_put_sorted(ct, out);
    } else if (group == EXEC_STATS_SHARDS) {
        ok = render_shards(snaps, out);
    } else {
        struct stats_sum sum;
        if (!stats_sum_of(snaps, &sum))
            return false;
        ok = group == EXEC_STATS_GENERAL ? render_general(shard, &sum, out)
                                         : render_classes(&sum, group == EXEC_STATS_SLABS, out);
        stats_sum_free(&sum);
    }
    return ok && sink_puts(out, "END\r\n");
}

/* A growable heap buffer behind a sink, for text being transcoded. */
struct text_buf {
    struct sink sink; /* first member: grow() casts back */
    char *data;
    size_t cap;
};

static bool text_buf_grow(struct sink *sink, size_t need)
{
    struct text_buf *tb = (struct text_buf *)sink;
    size_t used = tb->data != NULL ? (size_t)(sink->pos - tb->data) : 0;
    size_t cap = tb->cap ? tb->cap : 4096;
    while (cap - used < need)
        cap *= 2;
    char *data = realloc(tb->data, cap);
    if (data == NULL)
        return false;
    tb->data = data;
    tb->cap = cap;
    sink->pos = data + used;
    sink->end = data + cap;
    return true;
}

/* Renders a group in the asking request's protocol. */
static bool render_ask(struct shard *shard, const struct stats_ask *ask, const struct snapshots *snaps,
                       const struct conns_text *ct, struct sink *out)
{
    if (ask->req.family != PROTO_FAMILY_BINARY) {
        if (ask->group == EXEC_STATS_SETTINGS)
            return render_settings(shard, out);
        return render_text(shard, ask->group, snaps, ct, out);
    }
    struct text_buf tb = {.sink = {.grow = text_buf_grow}};
    bool ok = ask->group == EXEC_STATS_SETTINGS ? render_settings(shard, &tb.sink)
                                                : render_text(shard, ask->group, snaps, ct, &tb.sink);
    size_t len = tb.data != NULL ? (size_t)(tb.sink.pos - tb.data) : 0;
    ok = ok && proto_bin_stats_from_text(&ask->req, tb.data, len, out);
    free(tb.data);
    return ok;
}

static bool snapshots_render(struct shard *shard, void *state, int kind, struct sink *out)
{
    const struct snapshots *snaps = state;
    (void)kind;
    return render_ask(shard, snaps->ctx, snaps, NULL, out);
}

static bool conns_render(struct shard *shard, void *state, int kind, struct sink *out)
{
    const struct conns_text *ct = state;
    (void)kind;
    return render_ask(shard, &ct->ask, NULL, ct, out);
}

static const struct gather_ops snapshots_ops = {
    .collect = snapshot_collect,
    .fold = snapshot_fold,
    .render = snapshots_render,
    .free_state = snapshot_free,
};

static const struct gather_ops conns_ops = {
    .collect = collect_conn_lines,
    .fold = conns_fold,
    .render = conns_render,
    .free_state = conns_free,
};

bool stats_answer(struct conn *conn, const struct proto_req *req, enum exec_stats group)
{
    struct stats_ask ask = {.group = group};
    ask.req.family = req->family;
    ask.req.bin = req->bin;
    if (group == EXEC_STATS_SETTINGS)
        return render_ask(conn->shard, &ask, NULL, NULL, &conn->out.sink);
    if (group == EXEC_STATS_CACHEDUMP) /* memcdump, php-memcached getAllKeys() */
        return cachedump_command(conn, req->args, req->nargs);
    if (group == EXEC_STATS_CONNS) {
        struct conns_text *ct = calloc(1, sizeof(*ct));
        if (ct == NULL)
            return false;
        ct->ask = ask;
        return route_gather(conn, &conns_ops, 0, ct);
    }
    struct snapshots *snaps = snapshot_create(conn->shard->srv->nshards);
    if (snaps == NULL)
        return false;
    snaps->ctx = malloc(sizeof(ask));
    if (snaps->ctx == NULL) {
        snapshot_destroy(&snaps);
        return false;
    }
    memcpy(snaps->ctx, &ask, sizeof(ask));
    return route_gather(conn, &snapshots_ops, 0, snaps);
}
