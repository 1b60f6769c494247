/*
 * snapshot.c: gathering every shard's metrics side by side (see
 * snapshot.h).
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
