/*
 * ht.h: the store's hash table of items (the contract; see ht.c).
 *
 * Buckets are 32-bit item refs (item.h) and chains run through each item's
 * `hnext`, so the table costs 4 bytes per bucket and nothing per item. The
 * low bits of the key's 64-bit hash pick the bucket. The table doubles when
 * it holds more than 1.5 items per bucket and moves the old buckets over
 * incrementally, a few per insert or remove, so no operation pauses.
 *
 * Every `hash` argument must be hash_key(key, nkey) (hash.h): moving an
 * item to the doubled table recomputes it from the key, because the item
 * does not store it. Single-threaded, like the store that owns the table.
 */
#ifndef CORECACHE_CORE_HT_H
#define CORECACHE_CORE_HT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "item.h"
#include "status.h"

#define HT_POWER_DEFAULT 16 /* 65536 buckets, as memcached's -o hashpower */
#define HT_POWER_MAX 30     /* refs address < 2^32 items; 2^30 buckets suffice */
#define HT_MIGRATE_STEP 8   /* old buckets moved per insert or remove */

struct ht; /* opaque: one per store */

/*
 * Creates a table of 2^power buckets (1 <= power <= HT_POWER_MAX) over the
 * arena whose refs use `base` (item_ref_base). MC_EINVAL for a bad power,
 * MC_ENOMEM when the buckets cannot be allocated.
 */
enum mc_status ht_create(unsigned power, uintptr_t base, struct ht **out) MC_MUST_CHECK;
void ht_destroy(struct ht **ht);

/* The item with this key, or NULL. Compares key lengths before bytes. */
struct item *ht_find(const struct ht *ht, const char *key, size_t nkey, uint64_t hash);

/*
 * Links `it` (not in the table; its key not present) into its bucket.
 * May start a doubling (one calloc; if that fails the table keeps its size
 * and retries later) and moves up to HT_MIGRATE_STEP old buckets.
 */
void ht_insert(struct ht *ht, struct item *it, uint64_t hash);

/* Unlinks `it`, which is in the table under `hash`; moves up to
 * HT_MIGRATE_STEP old buckets. Returns false if `it` was not found. */
bool ht_remove(struct ht *ht, struct item *it, uint64_t hash);

/* Moves up to `nbuckets` old buckets to the doubled table (background
 * progress for tables that see few writes). Returns true while a doubling
 * is still in progress. */
bool ht_migrate(struct ht *ht, uint32_t nbuckets);

uint64_t ht_count(const struct ht *ht);
/* log2 of the bucket count (the doubled table's during a doubling). */
unsigned ht_power(const struct ht *ht);
/* Bytes of bucket arrays, both tables during a doubling. */
uint64_t ht_bytes(const struct ht *ht);
bool ht_is_expanding(const struct ht *ht);

#endif
