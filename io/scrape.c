/*
 * scrape.c: the Prometheus endpoint (see scrape.h): HTTP connections on
 * the metrics listeners, and the gather that answers GET /metrics.
 *
 * A request goes:
 *
 *   scrape_step ── http_parse (core/http.c)
 *     ├─ error status: the error response, then close
 *     └─ GET/HEAD /metrics: route_gather with snapshot.c's collect/fold
 *          every shard copies its tables ──> filed by shard id
 *          render_metrics (the asking shard, once all are in):
 *            sums for memcached_exporter's families (core/prom.c rows),
 *            per-shard corecache_* families and the service-time histogram,
 *            framed as one HTTP response into the connection's placeholder.
 *
 * Keep-alive: the connection stays open after a 200 unless the client
 * asked to close; after any error status it closes once the response is
 * sent, so a malformed stream is never re-synchronized by guessing.
 * Scrapes are not cache requests and scrapers are not cache clients (the
 * conn_ops flag metrics_endpoint): they do not count against -c nor in the
 * cache's connection and request counters, so the endpoint still answers
 * when the cache is at its connection limit; each connection touches
 * nothing but its own buffers and the gather. Their number, idle time and
 * each request's time are bounded by guard.c.
 */
#include "scrape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/base64.h"
#include "../core/http.h"
#include "../core/latency.h"
#include "../core/metrics.h"
#include "../core/store.h"
#include "conn.h"
#include "facts.h"
#include "login.h"
#include "route.h"
#include "shard.h"
#include "snapshot.h"
#include "stats.h"

/* The one histogram, declared once for the endpoint and the listing. */
static const struct metric_desc latency_desc = {
    "request_duration_seconds", METRIC_COUNTER,
    "Time to parse and serve a request on its shard, sampled (about 1 request in 16); a forwarded "
    "key's wait for its owner is not included"};
#define SCRAPE_PREFIX "corecache_"
/* corecache's release beside the protocol level `version` answers */
#define BUILD_INFO SCRAPE_PREFIX "build_info"
#define BUILD_INFO_HELP "corecache's own release, and the memcached protocol level it answers."

/* kind bits of the gather */
enum { SCRAPE_HEAD = 1, SCRAPE_KEEP_ALIVE = 2 };

/* --- a growable body buffer -------------------------------------------- */

struct body {
    struct sink sink; /* first member: grow() casts back */
    char *buf;
    size_t cap;
};

static bool body_grow(struct sink *sink, size_t need)
{
    struct body *b = (struct body *)sink;
    size_t used = b->buf != NULL ? (size_t)(sink->pos - b->buf) : 0;
    size_t cap = b->cap ? b->cap * 2 : 64 * 1024;
    while (cap < used + need)
        cap *= 2;
    char *p = realloc(b->buf, cap);
    if (p == NULL)
        return false;
    b->buf = p;
    b->cap = cap;
    sink->pos = p + used;
    sink->end = p + cap;
    return true;
}

/* --- rendering (on the asking shard) ----------------------------------- */

size_t scrape_tables(struct prom_table *tables, size_t cap)
{
    const struct prom_table all[] = {
        {facts_desc, FACTS_COUNT, NULL},
        {shard_metric_desc, SHARD_METRIC_COUNT, NULL},
        {store_metric_desc, store_metric_count, NULL},
        {facts_lru_desc, FACTS_LRU_COUNT, facts_lru_values},
    };
    size_t n = sizeof(all) / sizeof(all[0]);
    if (n > cap)
        n = cap;
    memcpy(tables, all, n * sizeof(all[0]));
    return n;
}

/* The whole exposition into body; false when memory ran out. */
static bool render_body(struct shard *shard, const struct snapshots *snaps, struct sink *body)
{
    unsigned nshards = snaps->nshards;
    size_t ncm = store_class_metric_count;
    const uint64_t **shard_rows = calloc(nshards, sizeof(*shard_rows));
    const uint64_t **store_rows = calloc(nshards, sizeof(*store_rows));
    const uint64_t **latency_rows = calloc(nshards, sizeof(*latency_rows));
    uint64_t *store_sum = calloc(store_metric_count, sizeof(uint64_t));
    uint64_t *class_sum = calloc((size_t)STORE_CLASSES_MAX * ncm, sizeof(uint64_t));
    bool ok = shard_rows != NULL && store_rows != NULL && latency_rows != NULL && store_sum != NULL &&
              class_sum != NULL;
    if (!ok)
        goto done;

    /* server-wide sums, as `stats` computes them */
    uint64_t shard_sum[SHARD_METRIC_COUNT] = {0};
    for (unsigned s = 0; s < nshards; s++) {
        shard_rows[s] = snapshot_shard_metrics(snaps, s);
        store_rows[s] = snapshot_store_metrics(snaps, s);
        latency_rows[s] = snapshot_latency(snaps, s);
        metrics_sum(shard_sum, shard_rows[s], shard_metric_desc, SHARD_METRIC_COUNT);
        metrics_sum(store_sum, store_rows[s], store_metric_desc, store_metric_count);
        for (unsigned id = 1; id <= snaps->nclasses; id++)
            metrics_sum(class_sum + (size_t)id * ncm, snapshot_class(snaps, s, id), store_class_metric_desc,
                        ncm);
    }
    struct facts facts;
    facts_read(shard->srv, &facts);
    struct prom_table tables[4];
    scrape_tables(tables, 4);
    tables[0].values = facts.v;
    tables[1].values = shard_sum;
    tables[2].values = store_sum;

    /* memcached_slab_* for the classes `stats slabs` lists: those with pages */
    unsigned ids[STORE_CLASSES_MAX], nids = 0;
    size_t pages = metrics_find(store_class_metric_desc, ncm, "total_pages");
    for (unsigned id = 1; id <= snaps->nclasses && id < STORE_CLASSES_MAX; id++) {
        if (pages < ncm && class_sum[(size_t)id * ncm + pages] > 0)
            ids[nids++] = id;
    }
    struct prom_classes classes = {store_class_metric_desc, ncm, class_sum, ids, nids};
    char latency_name[128];
    snprintf(latency_name, sizeof(latency_name), "%s%s", SCRAPE_PREFIX, latency_desc.name);

    ok = prom_render_exporter(body, tables, 4, &classes, SERVER_VERSION_STRING) &&
         prom_render_build_info(body, BUILD_INFO, BUILD_INFO_HELP, CORECACHE_VERSION, SERVER_VERSION_STRING) &&
         prom_render_server(body, SCRAPE_PREFIX, facts_desc + FACTS_COUNT - FACTS_WARM_COUNT, /* issue 14 */
                            FACTS_WARM_COUNT, facts.v + FACTS_COUNT - FACTS_WARM_COUNT) &&
         prom_render_shards(body, SCRAPE_PREFIX, shard_metric_desc, SHARD_METRIC_COUNT, shard_rows, nshards) &&
         prom_render_shards(body, SCRAPE_PREFIX, store_metric_desc, store_metric_count, store_rows,
                            nshards) &&
         prom_render_latency(body, latency_name, latency_desc.help, latency_rows, nshards);
done:
    free(shard_rows);
    free(store_rows);
    free(latency_rows);
    free(store_sum);
    free(class_sum);
    return ok;
}

static bool render_metrics(struct shard *shard, void *state, int kind, struct sink *out)
{
    const struct snapshots *snaps = state;
    bool head = (kind & SCRAPE_HEAD) != 0, keep_alive = (kind & SCRAPE_KEEP_ALIVE) != 0;
    struct body body = {.sink = {.grow = body_grow}};
    bool ok;
    if (render_body(shard, snaps, &body.sink)) {
        size_t len = body.buf != NULL ? (size_t)(body.sink.pos - body.buf) : 0;
        ok = http_head(out, 200, PROM_CONTENT_TYPE, len, keep_alive) && (head || sink_put(out, body.buf, len));
    } else {
        ok = http_error(out, 500, head);
    }
    free(body.buf);
    return ok;
}

static const struct gather_ops metrics_ops = {
    .collect = snapshot_collect,
    .fold = snapshot_fold,
    .render = render_metrics,
    .free_state = snapshot_free,
};

/* --- the connection's protocol ----------------------------------------- */

/* No more requests on this connection: close once the replies are out. */
static void finish_after_write(struct conn *conn)
{
    conn->close_after_write = true;
    conn->closing = true;
}

/* HTTP basic auth against --metrics-auth-file (io/login.c), when set. */
static bool scrape_authorized(struct conn *conn, const struct http_req *req)
{
    const struct login *login = conn->shard->srv->login;
    if (!login_http_enabled(login))
        return true;
    if (req->authorization == NULL || req->nauthorization > 1024)
        return false;
    char pair[BASE64_DECODED_MAX(1024)];
    size_t n = http_basic_credentials(req->authorization, req->nauthorization, pair);
    bool ok = n > 0 && login_http_check(login, pair, n);
    memset(pair, 0, sizeof(pair));
    return ok;
}

static size_t scrape_step(struct conn *conn, const char *buf, size_t len, size_t *need)
{
    struct http_req req;
    size_t used = http_parse(buf, len, SCRAPE_PATH, &req);
    *need = 0;
    if (!conn->http_in_request) {
        /* the request's first bytes: its deadline runs from here (guard.c) */
        conn->http_in_request = true;
        conn->http_since = conn->shard->now;
    }
    if (used == 0)
        return 0;
    conn->http_in_request = false;
    conn->last_cmd_time = conn->shard->now;
    if (req.status == 200 && !scrape_authorized(conn, &req))
        req.status = 401; /* --metrics-auth-file */
    if (req.status != 200) {
        if (!http_error(&conn->out.sink, req.status, req.method == HTTP_HEAD))
            conn_close(conn, "out of memory answering an HTTP error");
        else
            finish_after_write(conn);
        return used;
    }
    int kind = (req.method == HTTP_HEAD ? SCRAPE_HEAD : 0) | (req.keep_alive ? SCRAPE_KEEP_ALIVE : 0);
    struct snapshots *snaps = snapshot_create(conn->shard->srv->nshards);
    if (snaps == NULL || !route_gather(conn, &metrics_ops, kind, snaps)) {
        conn_close(conn, "out of memory starting a scrape");
        return used;
    }
    if (!req.keep_alive)
        finish_after_write(conn);
    return used;
}

const struct conn_ops scrape_conn_ops = {
    .name = "http",
    .step = scrape_step,
    .metrics_endpoint = true,
};

/* --- --describe-metrics ------------------------------------------------ */

bool scrape_describe(struct sink *out)
{
    static const char build_info[] = "server\tinfo\tcorecache_version\t" BUILD_INFO
                                     "{version,memcached_protocol}\t" BUILD_INFO_HELP "\n";
    size_t first_items = store_class_metric_items_first;
    struct metric_desc hist = latency_desc;
    char name[128];
    snprintf(name, sizeof(name), "%s%s{shard,le}", SCRAPE_PREFIX, hist.name);
    return sink_puts(out, "source\ttype\tSTAT name\tPrometheus family\thelp\n") &&
           prom_describe_table(out, "server", "", NULL, facts_desc, FACTS_COUNT - FACTS_WARM_COUNT) &&
           prom_describe_table(out, "server", "", SCRAPE_PREFIX, facts_desc + FACTS_COUNT - FACTS_WARM_COUNT,
                               FACTS_WARM_COUNT) && /* issue 14: corecache_warm_restart_* */
           prom_describe_table(out, "settings", "", NULL, facts_lru_desc, FACTS_LRU_COUNT) &&
           prom_describe_table(out, "shard", "", SCRAPE_PREFIX, shard_metric_desc, SHARD_METRIC_COUNT) &&
           prom_describe_table(out, "store", "", SCRAPE_PREFIX, store_metric_desc, store_metric_count) &&
           prom_describe_table(out, "slabs", "<class>:", NULL, store_class_metric_desc, first_items) &&
           prom_describe_table(out, "items", "items:<class>:", NULL, store_class_metric_desc + first_items,
                               store_class_metric_count - first_items) &&
           sink_puts(out, "shard\thistogram\t-\t") && sink_put(out, name, strlen(name)) &&
           sink_puts(out, "\t") && sink_put(out, hist.help, strlen(hist.help)) && sink_puts(out, "\n") &&
           sink_puts(out, build_info) && stats_describe_shards(out) && prom_describe_exporter(out);
}
