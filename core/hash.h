/*
 * hash.h: the one key hash of the project.
 *
 * Every key is hashed exactly once, by the connection that receives it, with
 * xxh3 (libxxhash; never a hand-written hash). The 64-bit result picks the
 * owning shard on the ring (ring.h) and, inside that shard, the hash table
 * bucket (store.c), so it travels with forwarded requests instead of being
 * recomputed. Inlined: this is on every request's path.
 */
#ifndef CORECACHE_CORE_HASH_H
#define CORECACHE_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static inline uint64_t hash_key(const void *key, size_t nkey)
{
    return XXH3_64bits(key, nkey);
}

#endif
