/*
 * qsbr.c: quiescent-state-based reclamation (issue 17; contract in qsbr.h).
 *
 * A global epoch, and per shard the epoch it saw at its last quiescent
 * point (UINT64_MAX while offline). Memory unpublished by its owner is
 * stamped with the epoch before an increment (qsbr_retire); it is safe once
 * every shard's seen epoch is above the stamp, because a shard that saw the
 * incremented epoch at a quiescent point did so after the unpublication,
 * so everything it reads afterwards comes from what replaced it.
 *
 *   owner: unpublish (store release) ; s = epoch++ (seq_cst)
 *   reader: seen = epoch (seq_cst) at a quiescent point, then reads
 *   free when min(seen) > s
 *
 * The seq_cst accesses order a reader's coming online (seen = epoch, then
 * its reads) against the owner's unpublish-then-increment (Dekker's
 * pattern): either the reader saw the new epoch, and then reads the new
 * table, or its older seen value holds the old table back.
 *
 * Each shard writes only its own slot, on its own cache line.
 */
#include "qsbr.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>

struct qsbr_slot {
    alignas(64) atomic_uint_least64_t seen;
};

struct qsbr {
    alignas(64) atomic_uint_least64_t epoch;
    unsigned n;
    struct qsbr_slot *slot;
};

struct qsbr *qsbr_create(unsigned nshards)
{
    struct qsbr *q = aligned_alloc(64, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->slot = aligned_alloc(64, sizeof(*q->slot) * (nshards > 0 ? nshards : 1));
    if (q->slot == NULL) {
        free(q);
        return NULL;
    }
    atomic_init(&q->epoch, 1);
    q->n = nshards;
    for (unsigned i = 0; i < nshards; i++)
        atomic_init(&q->slot[i].seen, 1);
    return q;
}

void qsbr_destroy(struct qsbr **q)
{
    if (*q == NULL)
        return;
    free((*q)->slot);
    free(*q);
    *q = NULL;
}

void qsbr_quiescent(struct qsbr *q, unsigned id)
{
    atomic_store(&q->slot[id].seen, atomic_load(&q->epoch));
}

void qsbr_offline(struct qsbr *q, unsigned id)
{
    atomic_store(&q->slot[id].seen, UINT64_MAX);
}

void qsbr_online(struct qsbr *q, unsigned id)
{
    atomic_store(&q->slot[id].seen, atomic_load(&q->epoch));
    atomic_thread_fence(memory_order_seq_cst);
}

uint64_t qsbr_retire(struct qsbr *q)
{
    return atomic_fetch_add(&q->epoch, 1);
}

uint64_t qsbr_safe(const struct qsbr *q)
{
    uint64_t min = UINT64_MAX;
    for (unsigned i = 0; i < q->n; i++) {
        uint64_t s = atomic_load(&((struct qsbr *)q)->slot[i].seen);
        if (s < min)
            min = s;
    }
    return min;
}
