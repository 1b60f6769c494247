/*
 * segidx.h: the store's compact hash table of item locations (the
 * contract; see segidx.c).
 *
 * Each entry is one 64-bit word: a 16-bit tag taken from the key's hash and
 * the item's location (segment id and 8-byte offset). Items hold no link
 * and no hash: a lookup compares tags in two candidate buckets of eight
 * entries (one cache line each) and reads the key of an item only when its
 * tag matches, through a resolver the store hands in. Single-threaded, like
 * the store that owns the table.
 */
#ifndef CORECACHE_CORE_SEGIDX_H
#define CORECACHE_CORE_SEGIDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "item.h"
#include "status.h"

/* A location: segment id (< 2^SEGIDX_SEG_BITS) << 24 | offset / 8. */
#define SEGIDX_SEG_BITS 23
#define SEGIDX_OFF_BITS 24
#define SEGIDX_LOC(seg, off) (((uint64_t)(seg) << SEGIDX_OFF_BITS) | ((uint64_t)(off) >> 3))
#define SEGIDX_LOC_SEG(loc) ((uint32_t)((loc) >> SEGIDX_OFF_BITS))
#define SEGIDX_LOC_OFF(loc) ((size_t)((loc) & ((1u << SEGIDX_OFF_BITS) - 1)) << 3)

#define SEGIDX_POWER_MIN 4 /* log2 of the smallest bucket count */

struct segidx; /* opaque: one per store */

/* Maps a location to the item there; the item must be linked. */
typedef const struct item *(*segidx_resolve_fn)(const void *ctx, uint64_t loc);

/* A table of 2^power buckets (SEGIDX_POWER_MIN..30). MC_EINVAL, MC_ENOMEM. */
enum mc_status segidx_create(unsigned power, segidx_resolve_fn resolve, const void *ctx,
                             struct segidx **out) MC_MUST_CHECK;
void segidx_destroy(struct segidx **idx);

/* The location of the item with this key: true and *loc, or false. */
bool segidx_find(const struct segidx *idx, const char *key, size_t nkey, uint64_t hash,
                 uint64_t *loc);

/*
 * Adds `loc` for a key not in the table. Doubles the table (one calloc and
 * a rehash of every entry, reading each key through the resolver) when it
 * is 7/8 full or both buckets are; MC_ENOMEM if that calloc fails while
 * both buckets are full (the entry is then not added).
 */
enum mc_status segidx_insert(struct segidx *idx, uint64_t hash, uint64_t loc) MC_MUST_CHECK;

/* Points the entry at `old_loc` to `new_loc` (the item moved or was
 * replaced by a copy under the same key). False if absent. */
bool segidx_update(struct segidx *idx, uint64_t hash, uint64_t old_loc, uint64_t new_loc);

/* Removes the entry at `loc`. False if absent. */
bool segidx_remove(struct segidx *idx, uint64_t hash, uint64_t loc);

/* Removes every entry (keeps the size). */
void segidx_clear(struct segidx *idx);

/*
 * --- issue 17: reads from other shards (core/peek.c) -----------------------
 * segidx_shared_candidates() may be called by any thread while the owner
 * writes the table: it returns the locations of up to 16 entries whose tag
 * matches `hash` (the keys are not compared: the caller checks them, and
 * validates what it read against the owner's write sequence). The table it
 * reads stays allocated until the owner reclaims it: after a growth, the
 * owner stamps the retired table with an epoch (segidx_stamp_retired, once
 * segidx_has_unstamped says there is one) and frees it with
 * segidx_reclaim(idx, safe) once every reader has been quiescent at an
 * epoch above the stamp (io/qsbr.c). The other three are the owner's.
 */
#define SEGIDX_CANDIDATES_MAX 16
unsigned segidx_shared_candidates(const struct segidx *idx, uint64_t hash,
                                  uint64_t locs[SEGIDX_CANDIDATES_MAX]);
bool segidx_has_unstamped(const struct segidx *idx);
void segidx_stamp_retired(struct segidx *idx, uint64_t stamp);
/* Frees retired tables stamped below `safe`; true while some remain. */
bool segidx_reclaim(struct segidx *idx, uint64_t safe);

uint64_t segidx_count(const struct segidx *idx);
unsigned segidx_power(const struct segidx *idx); /* log2 of the bucket count */
uint64_t segidx_bytes(const struct segidx *idx);

#endif
