/*
 * snapshot.c: gathering every shard's metrics side by side (see
 * snapshot.h), and `stats shards`.
 *
 * A shard's part is an array of uint64_t, sent through the shard's channel
 * to the asking shard:
 *
 *   | nclasses | shard table | store table | latency | class 1 | ... | class n |
 *
 * (only the classes in use travel). The asking shard files each part under
 * the shard it came from, in a fixed-stride array with room for every
 * class, so renderers index it without knowing who answered:
 *
 *   v = | shard 0: nclasses, tables, latency, classes 0..63 | shard 1: ... |
 *
 * Collecting runs on each shard and only reads its own counters; nothing
 * is locked, nothing another shard writes is read.
 */
#include "snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/latency.h"
#include "../core/metrics.h"
#include "../core/store.h"
#include "conn.h"
#include "route.h"
#include "shard.h"

/* Offsets (in uint64_t) within one shard's slot. */
static size_t off_shard(void)
{
    return 1;
}

static size_t off_store(void)
{
    return off_shard() + SHARD_METRIC_COUNT;
}

static size_t off_latency(void)
{
    return off_store() + store_metric_count;
}

static size_t off_classes(void)
{
    return off_latency() + LATENCY_VALUES;
}

struct snapshots *snapshot_create(unsigned nshards)
{
    struct snapshots *snaps = calloc(1, sizeof(*snaps));
    if (snaps == NULL)
        return NULL;
    snaps->nshards = nshards;
    snaps->stride = off_classes() + (size_t)STORE_CLASSES_MAX * store_class_metric_count;
    snaps->v = calloc((size_t)nshards * snaps->stride, sizeof(uint64_t));
    if (snaps->v == NULL) {
        free(snaps);
        return NULL;
    }
    return snaps;
}

void snapshot_destroy(struct snapshots **snaps)
{
    if (*snaps == NULL)
        return;
    free((*snaps)->v);
    free((*snaps)->ctx);
    free(*snaps);
    *snaps = NULL;
}

static const uint64_t *slot(const struct snapshots *snaps, unsigned shard)
{
    return snaps->v + (size_t)shard * snaps->stride;
}

const uint64_t *snapshot_shard_metrics(const struct snapshots *snaps, unsigned shard)
{
    return slot(snaps, shard) + off_shard();
}

const uint64_t *snapshot_store_metrics(const struct snapshots *snaps, unsigned shard)
{
    return slot(snaps, shard) + off_store();
}

const uint64_t *snapshot_latency(const struct snapshots *snaps, unsigned shard)
{
    return slot(snaps, shard) + off_latency();
}

const uint64_t *snapshot_class(const struct snapshots *snaps, unsigned shard, unsigned id)
{
    return slot(snaps, shard) + off_classes() + (size_t)id * store_class_metric_count;
}

/* --- the gather -------------------------------------------------------- */

bool snapshot_collect(struct shard *shard, int kind, struct sink *out)
{
    (void)kind;
    uint64_t nclasses = store_class_count(shard->store);
    if (nclasses >= STORE_CLASSES_MAX)
        nclasses = STORE_CLASSES_MAX - 1;
    size_t n = off_classes() + (size_t)nclasses * store_class_metric_count;
    /* Composed aside: a sink's memory need not be aligned for uint64_t. */
    uint64_t *v = malloc(n * sizeof(uint64_t));
    if (v == NULL)
        return false;
    v[0] = nclasses;
    memcpy(v + off_shard(), shard->m.v, sizeof(shard->m.v));
    store_metrics(shard->store, v + off_store());
    memcpy(v + off_latency(), shard->latency.v, sizeof(shard->latency.v));
    for (unsigned id = 1; id <= nclasses; id++)
        store_class_metrics(shard->store, id, v + off_classes() + (size_t)(id - 1) * store_class_metric_count);
    bool ok = sink_put(out, v, n * sizeof(uint64_t));
    free(v);
    return ok;
}

void snapshot_fold(void *state, unsigned from, const void *part, size_t len)
{
    struct snapshots *snaps = state;
    if (from >= snaps->nshards || len < sizeof(uint64_t) * off_classes())
        return; /* the shard could not collect: its values stay zero */
    uint64_t nclasses;
    memcpy(&nclasses, part, sizeof(nclasses));
    size_t want = sizeof(uint64_t) * (off_classes() + (size_t)nclasses * store_class_metric_count);
    if (nclasses >= STORE_CLASSES_MAX || len != want)
        return;
    /* Parts are byte copies (not aligned for uint64_t): copy them in. */
    uint64_t *dst = snaps->v + (size_t)from * snaps->stride;
    memcpy(dst, part, sizeof(uint64_t) * off_classes());
    memcpy(dst + off_classes() + store_class_metric_count,
           (const char *)part + sizeof(uint64_t) * off_classes(),
           sizeof(uint64_t) * (size_t)nclasses * store_class_metric_count);
    if (nclasses > snaps->nclasses)
        snaps->nclasses = (uint32_t)nclasses;
}

void snapshot_free(void *state)
{
    struct snapshots *snaps = state;
    snapshot_destroy(&snaps);
}

/* --- stats shards ------------------------------------------------------ */

/* The one derived line of `stats shards`. */
static const char hit_ratio_name[] = "hit_ratio";
static const char hit_ratio_help[] = "get_hits / (get_hits + get_misses) of the shard's store, 0 before any get";

bool snapshot_describe(struct sink *out)
{
    return sink_puts(out, "shard	ratio	<shard>:") && sink_put(out, hit_ratio_name, strlen(hit_ratio_name)) &&
           sink_puts(out, "	-	") && sink_put(out, hit_ratio_help, strlen(hit_ratio_help)) &&
           sink_puts(out, "\n");
}

static bool render_shards(struct shard *shard, void *state, int kind, struct sink *out)
{
    const struct snapshots *snaps = state;
    size_t hits = metrics_find(store_metric_desc, store_metric_count, "get_hits");
    size_t misses = metrics_find(store_metric_desc, store_metric_count, "get_misses");
    (void)shard;
    (void)kind;
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
    return sink_puts(out, "END\r\n");
}

static const struct gather_ops shards_ops = {
    .collect = snapshot_collect,
    .fold = snapshot_fold,
    .render = render_shards,
    .free_state = snapshot_free,
};

bool snapshot_stats_shards(struct conn *conn)
{
    struct snapshots *snaps = snapshot_create(conn->shard->srv->nshards);
    if (snaps == NULL)
        return false;
    return route_gather(conn, &shards_ops, 0, snaps);
}
