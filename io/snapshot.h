/*
 * snapshot.h: every shard's metrics, kept apart by shard (the contract;
 * see snapshot.c).
 *
 * `stats` sums the shards (stats.c); `stats shards` and the Prometheus
 * endpoint show each shard's own values. All three render from this one
 * gather. A
 * snapshot gather (route_gather with snapshot_collect / snapshot_fold /
 * snapshot_free and the caller's render) asks every shard for a copy of
 * its shard table, store table, slab classes and service-time histogram,
 * and keeps the copies side by side, indexed by shard id. A shard that
 * could not answer (out of memory) reads as all zero.
 */
#ifndef CORECACHE_IO_SNAPSHOT_H
#define CORECACHE_IO_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/sink.h"

struct shard;

struct snapshots {
    unsigned nshards;
    uint32_t nclasses;    /* classes in use: ids 1..nclasses, the most of any shard */
    size_t stride;        /* uint64_t per shard in v */
    uint64_t *v;          /* nshards x stride */
    void *ctx;            /* the caller's, freed with the snapshots */
};

/* A zeroed set for nshards shards; NULL when out of memory. */
struct snapshots *snapshot_create(unsigned nshards);

/* Frees the set (and ctx) and sets *snaps to NULL. */
void snapshot_destroy(struct snapshots **snaps);

/* One shard's tables: SHARD_METRIC_COUNT, store_metric_count and
 * LATENCY_VALUES values; a class's store_class_metric_count values. */
const uint64_t *snapshot_shard_metrics(const struct snapshots *snaps, unsigned shard);
const uint64_t *snapshot_store_metrics(const struct snapshots *snaps, unsigned shard);
const uint64_t *snapshot_latency(const struct snapshots *snaps, unsigned shard);
const uint64_t *snapshot_class(const struct snapshots *snaps, unsigned shard, unsigned id);

/* gather_ops members: copy this shard's values (any shard), file a part
 * under its shard (the asking shard), free the set. */
bool snapshot_collect(struct shard *shard, int kind, struct sink *out);
void snapshot_fold(void *state, unsigned from, const void *part, size_t len);
void snapshot_free(void *state);

#endif
