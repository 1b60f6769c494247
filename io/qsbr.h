/*
 * qsbr.h: quiescent-state-based reclamation between shards (issue 17; see
 * qsbr.c). Memory another shard may be reading without a lock (a store's
 * retired index tables, core/segidx.h) is freed only after every shard has
 * passed a quiescent point, a moment when it holds no pointer into other
 * shards' memory: the top of its loop iteration, or any time it is blocked
 * in the kernel (offline).
 */
#ifndef CORECACHE_IO_QSBR_H
#define CORECACHE_IO_QSBR_H

#include <stdbool.h>
#include <stdint.h>

struct qsbr; /* one per server */

struct qsbr *qsbr_create(unsigned nshards);
void qsbr_destroy(struct qsbr **q);

/* Shard `id` holds no pointer into another shard's memory: at the top of
 * each loop iteration. */
void qsbr_quiescent(struct qsbr *q, unsigned id);

/* Shard `id` is about to block (offline: it counts as quiescent until
 * qsbr_online), and is back. A shard starts online. */
void qsbr_offline(struct qsbr *q, unsigned id);
void qsbr_online(struct qsbr *q, unsigned id);

/* A stamp for memory just unpublished: free it once qsbr_safe() > stamp. */
uint64_t qsbr_retire(struct qsbr *q);

/* Every stamp below this is safe to free now. */
uint64_t qsbr_safe(const struct qsbr *q);

#endif
