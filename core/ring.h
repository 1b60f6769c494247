/*
 * ring.h: the consistent-hash ring that assigns keys to shards (the
 * contract; see ring.c).
 *
 * Each shard owns `vnodes` points on a 64-bit circle, placed by xxh3 of
 * (shard id, vnode index), so a shard's points do not depend on how many
 * shards exist: growing from N to N+1 shards moves only the keys that land
 * on the new shard's arcs (about 1/(N+1) of them). A key belongs to the
 * first point at or after its hash (wrapping). Lookup is O(1) on average
 * through a prefix table over the sorted points.
 *
 * A ring is immutable after ring_create(), so every shard thread may call
 * ring_owner() on the same ring concurrently without synchronization.
 */
#ifndef CORECACHE_CORE_RING_H
#define CORECACHE_CORE_RING_H

#include <stdint.h>

#include "status.h"

struct ring;

/* Default points per shard: enough that 16 shards each own 1/16 of the
 * keys within a few percent. */
#define RING_VNODES_DEFAULT 1024

/* Creates a ring of `shards` shards (1..1024) with `vnodes` points each
 * (>= 1). MC_EINVAL on bad arguments, MC_ENOMEM. */
enum mc_status ring_create(unsigned shards, unsigned vnodes, struct ring **out) MC_MUST_CHECK;
void ring_destroy(struct ring **ring);

/* The shard that owns a key of this hash (hash_key()). Thread-safe. */
unsigned ring_owner(const struct ring *ring, uint64_t hash);

unsigned ring_shards(const struct ring *ring);

#endif
