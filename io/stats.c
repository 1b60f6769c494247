/*
 * stats.c: `stats`, `stats settings`, `stats items`, `stats slabs`,
 * `stats sizes`, `stats conns`, `stats reset`, `stats shards` (see stats.h).
 *
 * Counters are per shard and written only by their shard. A stats request
 * is a gather (route.h): each shard copies its counters into a part,
 *
 *   part = | nclasses | shard metrics | store metrics | class 1 | class 2 | ...
 *
 * the asking shard sums the parts as they arrive (gauges too: a shard's
 * curr_items plus another's is the server's), and renders the sum in
 * memcached 1.6's format once the last part is in. `stats conns` gathers
 * text instead: each shard lists its own listeners and connections.
 *
 * Every name comes from a metric table (facts.h, shard.h, store.c); only
 * `version` and the settings that are not options are written here.
 * `stats shards` (per shard, not summed) is snapshot.c's.
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
#include "conn.h"
#include "facts.h"
#include "listen.h"
#include "login.h"
#include "route.h"
#include "shard.h"
#include "snapshot.h"
#include "tls.h"

enum stats_kind { STATS_GENERAL, STATS_ITEMS, STATS_SLABS, STATS_CONNS };

/* The sum of every shard's part (or the concatenated text of `stats conns`). */
struct stats_sum {
    int kind;
    uint32_t nclasses;
    uint64_t shard[SHARD_METRIC_COUNT];
    uint64_t *store;                  /* store_metric_count */
    uint64_t *cls;                    /* (STORE_CLASSES_MAX) x store_class_metric_count */
    char *text;
    size_t text_len;
};

static size_t part_size(void)
{
    return sizeof(uint32_t) + sizeof(uint64_t) * (SHARD_METRIC_COUNT + store_metric_count +
                                                  (size_t)STORE_CLASSES_MAX * store_class_metric_count);
}

/* --- collecting (on every shard) ---------------------------------------- */

static bool put_u64s(struct sink *out, const uint64_t *v, size_t n)
{
    return sink_put(out, v, n * sizeof(*v));
}

static bool collect_conn_lines(struct shard *shard, struct sink *out)
{
    char line[256], addr[INET6_ADDRSTRLEN + 8];
    for (unsigned i = 0; i < shard->nlisten; i++) {
        int fd = shard->listen_fds[i];
        if (fd < 0)
            continue;
        int n = snprintf(line, sizeof(line), "STAT %d:addr tcp:%s:%d\r\nSTAT %d:state conn_listening\r\n",
                         fd, shard->srv->cfg.listen, listen_port(fd), fd);
        if (!sink_put(out, line, (size_t)n))
            return false;
    }
    for (uint32_t i = 0; i < shard->nconns; i++) {
        struct conn *conn = shard->conns[i];
        if (conn == NULL || conn->fd < 0)
            continue;
        int port = 0;
        if (conn->peer.ss_family == AF_INET6) {
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
                         conn->fd, conn->closing ? "conn_closing" : "conn_parse_cmd", conn->fd,
                         shard->now - conn->last_cmd_time);
        if (!sink_put(out, line, (size_t)n))
            return false;
    }
    return true;
}

static bool stats_collect(struct shard *shard, int kind, struct sink *out)
{
    if (kind == STATS_CONNS)
        return collect_conn_lines(shard, out);

    uint32_t nclasses = store_class_count(shard->store);
    uint64_t *tmp = malloc(sizeof(uint64_t) * (store_metric_count + store_class_metric_count));
    if (tmp == NULL)
        return false;
    bool ok = sink_put(out, &nclasses, sizeof(nclasses)) &&
              put_u64s(out, shard->m.v, SHARD_METRIC_COUNT);
    store_metrics(shard->store, tmp);
    ok = ok && put_u64s(out, tmp, store_metric_count);
    for (unsigned id = 0; ok && id < STORE_CLASSES_MAX; id++) {
        if (id >= 1 && id <= nclasses)
            store_class_metrics(shard->store, id, tmp);
        else
            memset(tmp, 0, sizeof(uint64_t) * store_class_metric_count);
        ok = put_u64s(out, tmp, store_class_metric_count);
    }
    free(tmp);
    return ok;
}

/* --- folding (on the asking shard) -------------------------------------- */

static void stats_fold(void *state, unsigned from, const void *part, size_t len)
{
    struct stats_sum *sum = state;
    (void)from;
    if (sum->kind == STATS_CONNS) {
        /* text parts are concatenated */
        if (len == 0)
            return;
        char *text = realloc(sum->text, sum->text_len + len);
        if (text == NULL)
            return;
        memcpy(text + sum->text_len, part, len);
        sum->text = text;
        sum->text_len += len;
        return;
    }
    if (len != part_size())
        return; /* the shard could not collect (out of memory): count it as empty */
    const char *p = part;
    uint32_t nclasses;
    memcpy(&nclasses, p, sizeof(nclasses));
    p += sizeof(nclasses);
    if (nclasses > sum->nclasses)
        sum->nclasses = nclasses;
    /* Parts are byte copies: copy them out before reading them as numbers. */
    uint64_t *v = malloc(len);
    if (v == NULL)
        return;
    memcpy(v, p, len - sizeof(nclasses));
    const uint64_t *shard_part = v;
    const uint64_t *store_part = shard_part + SHARD_METRIC_COUNT;
    const uint64_t *cls_part = store_part + store_metric_count;
    metrics_sum(sum->shard, shard_part, shard_metric_desc, SHARD_METRIC_COUNT);
    metrics_sum(sum->store, store_part, store_metric_desc, store_metric_count);
    for (unsigned id = 0; id < STORE_CLASSES_MAX; id++)
        metrics_sum(sum->cls + (size_t)id * store_class_metric_count,
                    cls_part + (size_t)id * store_class_metric_count, store_class_metric_desc,
                    store_class_metric_count);
    free(v);
}

static void stats_free(void *state)
{
    struct stats_sum *sum = state;
    free(sum->store);
    free(sum->cls);
    free(sum->text);
    free(sum);
}

static struct stats_sum *stats_sum_new(int kind)
{
    struct stats_sum *sum = calloc(1, sizeof(*sum));
    if (sum == NULL)
        return NULL;
    sum->kind = kind;
    if (kind != STATS_CONNS) {
        sum->store = calloc(store_metric_count, sizeof(uint64_t));
        sum->cls = calloc((size_t)STORE_CLASSES_MAX * store_class_metric_count, sizeof(uint64_t));
        if (sum->store == NULL || sum->cls == NULL) {
            stats_free(sum);
            return NULL;
        }
    }
    return sum;
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
           metrics_render_stats(out, "", facts_desc + runtime, facts.v + runtime, FACTS_RUNTIME_COUNT) &&
           metrics_render_stats(out, "", shard_metric_desc, sum->shard, SHARD_METRIC_COUNT) &&
           metrics_render_stats(out, "", store_metric_desc, sum->store, malloced) &&
           metrics_render_stats(out, "", store_metric_desc + after, sum->store + after, n - after) &&
           metrics_render_stats(out, "", facts_desc + limits, facts.v + limits, FACTS_LIMITS_COUNT) &&
           tls_render_stats(shard->srv->tls, (int64_t)facts.time, out);
}

/*
 * stats slabs: "STAT <id>:<name> <value>" for the slab section of every
 * class that owns pages, then active_slabs and total_malloced; stats
 * items: "STAT items:<id>:<name> <value>" for the items section of every
 * class that holds items. As memcached, empty classes are not listed.
 */
static bool render_classes(const struct stats_sum *sum, bool slabs, struct sink *out)
{
    size_t ncm = store_class_metric_count;
    size_t first = slabs ? 0 : store_class_metric_items_first;
    size_t last = slabs ? store_class_metric_items_first : ncm;
    size_t shown = metric_index(store_class_metric_desc, ncm, slabs ? "total_pages" : "number");
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

static bool stats_render(struct shard *shard, void *state, int kind, struct sink *out)
{
    const struct stats_sum *sum = state;
    bool ok = true;
    switch (kind) {
    case STATS_GENERAL:
        ok = render_general(shard, sum, out);
        break;
    case STATS_ITEMS:
    case STATS_SLABS:
        ok = render_classes(sum, kind == STATS_SLABS, out);
        break;
    case STATS_CONNS:
        ok = sum->text_len == 0 || sink_put(out, sum->text, sum->text_len);
        break;
    }
    return ok && sink_puts(out, "END\r\n");
}

static const struct gather_ops stats_ops = {
    .collect = stats_collect,
    .fold = stats_fold,
    .render = stats_render,
    .free_state = stats_free,
};

/* --- settings (local: the configuration is the same on every shard) ----- */

static bool render_settings(struct shard *shard, struct sink *out)
{
    const struct server *srv = shard->srv;
    /* The options memcached reports come from the option table (cfg.c),
     * with the values the server runs with; then the fixed facts. */
    struct cfg cfg = srv->cfg;
    cfg.threads = srv->nshards;
    cfg.verbose = atomic_load(&srv->verbosity);
    return cfg_render_settings(&cfg, out) &&
           metrics_stat_str(out, "domain_socket", "NULL") &&
           metrics_stat_u64(out, "umask", 700) &&
           metrics_stat_str(out, "stat_key_prefix", ":") &&
           metrics_stat_str(out, "detail_enabled", "no") &&
           metrics_stat_str(out, "binding_protocol",
                            strcmp(cfg.protocol, "auto") == 0 ? "auto-negotiate" : cfg.protocol) &&
           metrics_stat_str(out, "maxconns_fast", "yes") &&
           metrics_stat_str(out, "slab_reassign", "yes") &&
           metrics_stat_str(out, "lru_crawler", "yes") &&
           metrics_stat_str(out, "flush_enabled", "yes") &&
           metrics_stat_str(out, "hash_algorithm", "xxh3") &&
           login_render_settings(&cfg, out) && tls_render_settings(srv->tls, &cfg, out) &&
           sink_puts(out, "END\r\n");
}

/* --- the command -------------------------------------------------------- */

static bool arg_is(const struct proto_req *req, const char *word)
{
    size_t n = strlen(word);
    return req->nargs == n && memcmp(req->args, word, n) == 0;
}

static bool gather(struct conn *conn, int kind)
{
    struct stats_sum *sum = stats_sum_new(kind);
    if (sum == NULL)
        return false;
    return route_gather(conn, &stats_ops, kind, sum);
}

bool stats_command(struct conn *conn, const struct proto_req *req)
{
    struct shard *shard = conn->shard;
    if (req->nargs == 0)
        return gather(conn, STATS_GENERAL);
    if (arg_is(req, "settings"))
        return render_settings(shard, &conn->sink);
    if (arg_is(req, "items"))
        return gather(conn, STATS_ITEMS);
    if (arg_is(req, "slabs"))
        return gather(conn, STATS_SLABS);
    if (arg_is(req, "conns"))
        return gather(conn, STATS_CONNS);
    if (arg_is(req, "shards")) /* corecache's own: per-shard load (snapshot.c) */
        return snapshot_stats_shards(conn);
    if (arg_is(req, "sizes"))
        return sink_puts(&conn->sink, "STAT sizes_status disabled\r\nEND\r\n");
    if (arg_is(req, "reset")) {
        route_stats_reset(shard);
        return sink_puts(&conn->sink, "RESET\r\n");
    }
    /* memcached answers unknown subcommands with a bare ERROR. */
    return sink_puts(&conn->sink, "ERROR\r\n");
}

/* --- the binary protocol's STAT (conn_bin.c) ----------------------------- */

/*
 * memcached's process_bin_stat: the same groups and numbers as the text
 * command, each "STAT <name> <value>" line sent as one binary packet and
 * "END" as the empty packet that ends the reply. The text renderers above
 * write into a heap buffer and proto_bin_stats_from_text transcodes, so no
 * stat is written twice. Groups, as memcached matches them: none (general),
 * "reset" and "settings" by prefix, "items", "slabs" and "sizes" exactly;
 * anything else (conns and detail included, which memcached's binary STAT
 * does not serve either) is KEY_ENOENT "Not found".
 */

/* A growable heap buffer behind a sink, for the text being transcoded. */
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

static size_t text_buf_len(const struct text_buf *tb)
{
    return tb->data != NULL ? (size_t)(tb->sink.pos - tb->data) : 0;
}

/* The gather's state: the text sum, and the request the packets answer. */
struct stats_bin {
    struct stats_sum *sum;
    struct proto_req req; /* only its binary fields (opcode, opaque) */
};

static void stats_bin_fold(void *state, unsigned from, const void *part, size_t len)
{
    stats_fold(((struct stats_bin *)state)->sum, from, part, len);
}

static void stats_bin_free(void *state)
{
    struct stats_bin *b = state;
    stats_free(b->sum);
    free(b);
}

static bool stats_bin_render(struct shard *shard, void *state, int kind, struct sink *out)
{
    struct stats_bin *b = state;
    struct text_buf tb = {.sink = {.grow = text_buf_grow}};
    bool ok = stats_render(shard, b->sum, kind, &tb.sink) &&
              proto_bin_stats_from_text(&b->req, tb.data, text_buf_len(&tb), out);
    free(tb.data);
    return ok;
}

static const struct gather_ops stats_bin_ops = {
    .collect = stats_collect,
    .fold = stats_bin_fold,
    .render = stats_bin_render,
    .free_state = stats_bin_free,
};

static bool gather_binary(struct conn *conn, const struct proto_req *req, int kind)
{
    struct stats_bin *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return false;
    b->sum = stats_sum_new(kind);
    if (b->sum == NULL) {
        free(b);
        return false;
    }
    b->req.family = PROTO_FAMILY_BINARY;
    b->req.bin = req->bin;
    return route_gather(conn, &stats_bin_ops, kind, b);
}

static bool arg_starts(const struct proto_req *req, const char *word)
{
    size_t n = strlen(word);
    return req->nargs >= n && memcmp(req->args, word, n) == 0;
}

bool stats_binary(struct conn *conn, const struct proto_req *req)
{
    struct shard *shard = conn->shard;
    if (req->nargs == 0)
        return gather_binary(conn, req, STATS_GENERAL);
    if (arg_starts(req, "reset")) {
        route_stats_reset(shard);
        return proto_bin_stats_from_text(req, "END\r\n", 5, &conn->sink);
    }
    if (arg_starts(req, "settings")) {
        struct text_buf tb = {.sink = {.grow = text_buf_grow}};
        bool ok = render_settings(shard, &tb.sink) &&
                  proto_bin_stats_from_text(req, tb.data, text_buf_len(&tb), &conn->sink);
        free(tb.data);
        return ok;
    }
    if (arg_is(req, "items"))
        return gather_binary(conn, req, STATS_ITEMS);
    if (arg_is(req, "slabs"))
        return gather_binary(conn, req, STATS_SLABS);
    if (arg_is(req, "sizes")) {
        static const char sizes[] = "STAT sizes_status disabled\r\nEND\r\n";
        return proto_bin_stats_from_text(req, sizes, sizeof(sizes) - 1, &conn->sink);
    }
    return proto_bin_error(req, PROTO_BIN_KEY_ENOENT, NULL, &conn->sink);
}
