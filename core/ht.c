/*
 * ht.c: a chained hash table of item refs that doubles incrementally.
 *
 * Layout. `buckets` holds 2^power refs; each chain runs through the items'
 * `hnext` refs, newest first. A lookup costs the bucket's cache line plus
 * one line per item walked; the key length is compared before the bytes,
 * so a colliding item rarely costs a memcmp.
 *
 * Doubling. When an insert makes count > 1.5 * 2^power, a table of twice
 * the size is allocated and becomes `buckets`; the old one stays as `old`
 * with a cursor `migrated`. Old buckets below the cursor have been moved;
 * a key whose old bucket is at or past the cursor still lives in `old`:
 *
 *     old     [ moved | moved | moved | b3 | b4 | ... | b(n-1) ]
 *                                      ^ migrated
 *     buckets [ 2n buckets: chains of moved old buckets, plus new inserts
 *               whose old bucket was already moved ]
 *
 * Each insert and remove moves HT_MIGRATE_STEP old buckets (and
 * ht_migrate() lets a timer move more), so a doubling of 2^p buckets ends
 * after 2^p / HT_MIGRATE_STEP writes, long before the 1.5 * 2^p further
 * inserts that would call for the next one. No operation ever walks the
 * whole table. Moving an item needs the bit of its hash that the old mask
 * left out; items do not store their hash, so it is recomputed from the key
 * with hash_key(), as memcached's assoc_expand does with hash().
 *
 * Invariants: every item in the table is reachable from exactly one bucket,
 * the one its hash picks in `old` when that bucket is at or past
 * `migrated`, else the one its hash picks in `buckets`.
 */
#include "ht.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct ht {
    uint32_t *buckets; /* 2^power refs */
    uint32_t *old;     /* 2^(power-1) refs while doubling, else NULL */
    uintptr_t base;    /* item_ref_base of the arena */
    unsigned power;
    uint32_t migrated; /* old buckets [0, migrated) are empty, moved over */
    uint64_t count;
    uint64_t grow_retry_at; /* after a failed calloc: count that retries */
};

static uint64_t ht_size(unsigned power)
{
    return (uint64_t)1 << power;
}

enum mc_status ht_create(unsigned power, uintptr_t base, struct ht **out)
{
    *out = NULL;
    if (power < 1 || power > HT_POWER_MAX)
        return MC_EINVAL;
    struct ht *ht = calloc(1, sizeof(*ht));
    if (ht == NULL)
        goto fail;
    ht->base = base;
    ht->power = power;
    ht->buckets = calloc(ht_size(power), sizeof(*ht->buckets));
    if (ht->buckets == NULL)
        goto fail;
    *out = ht;
    return MC_OK;

fail:
    ht_destroy(&ht);
    return MC_ENOMEM;
}

void ht_destroy(struct ht **ht)
{
    if (*ht == NULL)
        return;
    free((*ht)->buckets);
    free((*ht)->old);
    free(*ht);
    *ht = NULL;
}

/* The slot heading the chain that holds (or would hold) `hash`. */
static uint32_t *ht_bucket(const struct ht *ht, uint64_t hash)
{
    if (ht->old != NULL) {
        uint64_t i = hash & (ht_size(ht->power - 1) - 1);
        if (i >= ht->migrated)
            return &ht->old[i];
    }
    return &ht->buckets[hash & (ht_size(ht->power) - 1)];
}

struct item *ht_find(const struct ht *ht, const char *key, size_t nkey, uint64_t hash)
{
    uint32_t ref = *ht_bucket(ht, hash);
    while (ref != 0) {
        struct item *it = item_at(ht->base, ref);
        if (it->nkey == nkey && memcmp(it->data, key, nkey) == 0)
            return it;
        ref = it->hnext;
    }
    return NULL;
}

bool ht_migrate(struct ht *ht, uint32_t nbuckets)
{
    if (ht->old == NULL)
        return false;
    uint64_t old_size = ht_size(ht->power - 1);
    uint64_t mask = ht_size(ht->power) - 1;
    while (nbuckets-- > 0 && ht->migrated < old_size) {
        uint32_t ref = ht->old[ht->migrated];
        while (ref != 0) {
            struct item *it = item_at(ht->base, ref);
            uint32_t next = it->hnext;
            uint32_t *slot = &ht->buckets[hash_key(it->data, it->nkey) & mask];
            it->hnext = *slot;
            *slot = ref;
            ref = next;
        }
        ht->old[ht->migrated++] = 0;
    }
    if (ht->migrated < old_size)
        return true;
    free(ht->old);
    ht->old = NULL;
    ht->migrated = 0;
    return false;
}

/* Starts a doubling: the current table becomes `old`, emptied bucket by
 * bucket into a new one twice its size. */
static void ht_grow(struct ht *ht)
{
    if (ht->power >= HT_POWER_MAX || ht->count < ht->grow_retry_at)
        return;
    uint32_t *bigger = calloc(ht_size(ht->power + 1), sizeof(*bigger));
    if (bigger == NULL) {
        /* Longer chains are slower, not wrong: try again after a while. */
        ht->grow_retry_at = ht->count + ht_size(ht->power) / 4 + 1;
        return;
    }
    ht->old = ht->buckets;
    ht->buckets = bigger;
    ht->power++;
    ht->migrated = 0;
}

void ht_insert(struct ht *ht, struct item *it, uint64_t hash)
{
    uint32_t *slot = ht_bucket(ht, hash);
    it->hnext = *slot;
    *slot = item_ref(ht->base, it);
    ht->count++;
    if (ht->old != NULL)
        ht_migrate(ht, HT_MIGRATE_STEP);
    else if (ht->count > ht_size(ht->power) + ht_size(ht->power) / 2)
        ht_grow(ht);
}

bool ht_remove(struct ht *ht, struct item *it, uint64_t hash)
{
    uint32_t ref = item_ref(ht->base, it);
    uint32_t *slot = ht_bucket(ht, hash);
    while (*slot != 0 && *slot != ref)
        slot = &item_at(ht->base, *slot)->hnext;
    if (*slot == 0)
        return false;
    *slot = it->hnext;
    it->hnext = 0;
    ht->count--;
    if (ht->old != NULL)
        ht_migrate(ht, HT_MIGRATE_STEP);
    return true;
}

uint64_t ht_count(const struct ht *ht)
{
    return ht->count;
}

unsigned ht_power(const struct ht *ht)
{
    return ht->power;
}

uint64_t ht_bytes(const struct ht *ht)
{
    uint64_t bytes = ht_size(ht->power) * sizeof(*ht->buckets);
    if (ht->old != NULL)
        bytes += ht_size(ht->power - 1) * sizeof(*ht->old);
    return bytes;
}

bool ht_is_expanding(const struct ht *ht)
{
    return ht->old != NULL;
}
