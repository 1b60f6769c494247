/*
 * segidx.c: a tag hash table of item locations, two-choice and bucketed.
 *
 *     bucket = 8 entries = 64 bytes (one cache line)
 *     +--------+--------+-----+--------+
 *     | entry  | entry  | ... | entry  |     entry (64 bits):
 *     +--------+--------+-----+--------+     | tag:16 | used:1 | seg:23 | off/8:24 |
 *
 * A key may live in either of two buckets, b1 from the hash's low bits and
 * b2 from its middle bits; insertion takes the emptier one, which keeps
 * buckets balanced enough to run the table at up to 7/8 occupancy (two-way
 * bucketed hashing fails to place an entry only near ~95%). The tag is the
 * hash's top 16 bits, so a lookup reads a key on a false tag match once in
 * 65536 per occupied entry it compares; an absent key costs two cache lines.
 *
 * Nothing is stored per item: the 8 bytes of the entry, divided by the
 * occupancy (between 7/16 and 7/8 after the first doubling), are the whole
 * per-item index cost, against memcached's 8-byte h_next plus 8 bytes of
 * bucket array.
 *
 * Growth doubles the bucket array and reinserts every entry, recomputing
 * each hash from its key (the resolver maps a location to its item). It is
 * done at once, not incrementally: a pause of a few milliseconds per
 * million items, taken log2(items) times over the life of a store.
 *
 * Invariants: `count` is the number of used entries; every used entry is in
 * one of the two candidate buckets of its key's hash; no two used entries
 * hold the same location.
 *
 * issue 17, shared reads: other shards read the table (core/peek.c) while
 * the owner writes it. Every entry is stored with a relaxed atomic store
 * (an 8-byte word is never seen torn) and the table the readers use is
 * published through `shared`, a pointer to the whole allocation whose
 * first word is the mask, so a reader never pairs one table with another's
 * mask. A table replaced by growth is not freed at once: it is retired,
 * stamped by the caller with an epoch (io/qsbr.c) and freed by
 * segidx_reclaim() once every reader has passed a quiescent point after
 * the stamp. Ordering between entries and item bytes is not this file's:
 * readers validate against the owner's write sequence (peek.c).
 *
 *     allocation: | mask | next retired | stamp | 5 words unused | slots ... |
 */
#include "segidx.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define SEGIDX_SLOTS 8
#define SEGIDX_USED ((uint64_t)1 << 47)
#define SEGIDX_LOC_MASK (SEGIDX_USED - 1)
#define SEGIDX_POWER_MAX 30
#define SEGIDX_HDR 8 /* words before the slots: mask, next retired, stamp (issue 17) */
#define SEGIDX_UNSTAMPED UINT64_MAX

_Static_assert(SEGIDX_SEG_BITS + SEGIDX_OFF_BITS == 47, "location fits below the used bit");

struct segidx {
    uint64_t *slots; /* nbuckets * SEGIDX_SLOTS entries */
    uint64_t *table; /* the allocation slots lie in (SEGIDX_HDR words first) */
    uint64_t *shared; /* the table readers use: atomic, == table (issue 17) */
    uint64_t *retired; /* tables replaced by growth, not yet freed */
    uint64_t mask;   /* nbuckets - 1 */
    unsigned power;
    uint64_t count;
    segidx_resolve_fn resolve;
    const void *ctx;
};

static uint16_t tag_of(uint64_t hash)
{
    return (uint16_t)(hash >> 48);
}

static uint64_t bucket1(const struct segidx *idx, uint64_t hash)
{
    return hash & idx->mask;
}

static uint64_t bucket2(const struct segidx *idx, uint64_t hash)
{
    /* bits 20..47 mixed, so b2 is independent of b1 and of the tag */
    uint64_t b = (hash >> 20) * 0x9e3779b97f4a7c15ull;
    return (b >> 32) & idx->mask;
}

static uint64_t entry(uint64_t hash, uint64_t loc)
{
    return ((uint64_t)tag_of(hash) << 48) | SEGIDX_USED | (loc & SEGIDX_LOC_MASK);
}

/* A zeroed table of 2^power buckets behind its header, mask set. */
static uint64_t *table_alloc(unsigned power)
{
    uint64_t *t = calloc(SEGIDX_HDR + ((size_t)SEGIDX_SLOTS << power), sizeof(uint64_t));
    if (t != NULL)
        t[0] = ((uint64_t)1 << power) - 1;
    return t;
}

/* Entries are written atomically: other shards read them (issue 17). */
static void slot_store(uint64_t *slot, uint64_t e)
{
    __atomic_store_n(slot, e, __ATOMIC_RELAXED);
}

enum mc_status segidx_create(unsigned power, segidx_resolve_fn resolve, const void *ctx,
                             struct segidx **out)
{
    *out = NULL;
    if (power < SEGIDX_POWER_MIN || power > SEGIDX_POWER_MAX || resolve == NULL)
        return MC_EINVAL;
    struct segidx *idx = calloc(1, sizeof(*idx));
    if (idx == NULL)
        return MC_ENOMEM;
    idx->table = table_alloc(power);
    if (idx->table == NULL) {
        free(idx);
        return MC_ENOMEM;
    }
    idx->slots = idx->table + SEGIDX_HDR;
    idx->power = power;
    idx->mask = ((uint64_t)1 << power) - 1;
    __atomic_store_n(&idx->shared, idx->table, __ATOMIC_RELEASE);
    idx->resolve = resolve;
    idx->ctx = ctx;
    *out = idx;
    return MC_OK;
}

void segidx_destroy(struct segidx **idx)
{
    if (*idx == NULL)
        return;
    free((*idx)->table);
    segidx_reclaim(*idx, SEGIDX_UNSTAMPED);
    free(*idx);
    *idx = NULL;
}

static bool bucket_find(const struct segidx *idx, uint64_t b, uint16_t tag, const char *key,
                        size_t nkey, uint64_t *loc)
{
    const uint64_t *s = idx->slots + b * SEGIDX_SLOTS;
    for (int i = 0; i < SEGIDX_SLOTS; i++) {
        uint64_t e = s[i];
        if ((e & SEGIDX_USED) == 0 || (uint16_t)(e >> 48) != tag)
            continue;
        const struct item *it = idx->resolve(idx->ctx, e & SEGIDX_LOC_MASK);
        if (it->nkey == nkey && memcmp(it->data, key, nkey) == 0) {
            *loc = e & SEGIDX_LOC_MASK;
            return true;
        }
    }
    return false;
}

bool segidx_find(const struct segidx *idx, const char *key, size_t nkey, uint64_t hash,
                 uint64_t *loc)
{
    uint16_t tag = tag_of(hash);
    uint64_t b1 = bucket1(idx, hash), b2 = bucket2(idx, hash);
    return bucket_find(idx, b1, tag, key, nkey, loc) ||
           (b2 != b1 && bucket_find(idx, b2, tag, key, nkey, loc));
}

/* The free slot of the emptier candidate bucket, or NULL if both are full. */
static uint64_t *free_slot(struct segidx *idx, uint64_t hash)
{
    uint64_t *s1 = idx->slots + bucket1(idx, hash) * SEGIDX_SLOTS;
    uint64_t *s2 = idx->slots + bucket2(idx, hash) * SEGIDX_SLOTS;
    uint64_t *f1 = NULL, *f2 = NULL;
    int used1 = 0, used2 = 0;
    for (int i = 0; i < SEGIDX_SLOTS; i++) {
        if (s1[i] & SEGIDX_USED)
            used1++;
        else if (f1 == NULL)
            f1 = &s1[i];
        if (s2[i] & SEGIDX_USED)
            used2++;
        else if (f2 == NULL)
            f2 = &s2[i];
    }
    if (f1 != NULL && (f2 == NULL || used1 <= used2))
        return f1;
    return f2;
}

/* Doubles the table. False (table unchanged) if memory is short or the
 * table is at its largest. */
static bool segidx_grow(struct segidx *idx)
{
    for (unsigned power = idx->power + 1; power <= SEGIDX_POWER_MAX; power++) {
        uint64_t *table = table_alloc(power);
        if (table == NULL)
            return false;
        uint64_t *slots = table + SEGIDX_HDR;
        struct segidx next = *idx;
        next.table = table;
        next.slots = slots;
        next.power = power;
        next.mask = ((uint64_t)1 << power) - 1;
        bool ok = true;
        uint64_t n = (uint64_t)SEGIDX_SLOTS << idx->power;
        for (uint64_t i = 0; i < n && ok; i++) {
            uint64_t e = idx->slots[i];
            if ((e & SEGIDX_USED) == 0)
                continue;
            const struct item *it = idx->resolve(idx->ctx, e & SEGIDX_LOC_MASK);
            uint64_t *slot = free_slot(&next, hash_key(it->data, it->nkey));
            if (slot == NULL)
                ok = false; /* astronomically rare at half load: try twice the size */
            else
                *slot = e;
        }
        if (ok) {
            uint64_t *old = idx->table;
            old[1] = (uint64_t)(uintptr_t)idx->retired;
            old[2] = SEGIDX_UNSTAMPED;
            /* field by field: `shared` is read by other shards, and is
             * written only atomically (a struct copy would write it too) */
            idx->retired = old; /* readers may still be in it: see segidx_reclaim */
            idx->table = table;
            idx->slots = next.slots;
            idx->mask = next.mask;
            idx->power = next.power;
            __atomic_store_n(&idx->shared, table, __ATOMIC_RELEASE);
            return true;
        }
        free(table);
    }
    return false;
}

enum mc_status segidx_insert(struct segidx *idx, uint64_t hash, uint64_t loc)
{
    uint64_t capacity = (uint64_t)SEGIDX_SLOTS << idx->power;
    if (idx->count + 1 > capacity - capacity / 8)
        (void)segidx_grow(idx); /* if it fails, fill on while buckets have room */
    uint64_t *slot = free_slot(idx, hash);
    if (slot == NULL) {
        if (!segidx_grow(idx))
            return MC_ENOMEM;
        slot = free_slot(idx, hash);
        if (slot == NULL)
            return MC_ENOMEM;
    }
    slot_store(slot, entry(hash, loc));
    idx->count++;
    return MC_OK;
}

static uint64_t *slot_of(struct segidx *idx, uint64_t hash, uint64_t loc)
{
    uint64_t want = entry(hash, loc);
    uint64_t *s1 = idx->slots + bucket1(idx, hash) * SEGIDX_SLOTS;
    uint64_t *s2 = idx->slots + bucket2(idx, hash) * SEGIDX_SLOTS;
    for (int i = 0; i < SEGIDX_SLOTS; i++) {
        if (s1[i] == want)
            return &s1[i];
        if (s2[i] == want)
            return &s2[i];
    }
    return NULL;
}

bool segidx_update(struct segidx *idx, uint64_t hash, uint64_t old_loc, uint64_t new_loc)
{
    uint64_t *slot = slot_of(idx, hash, old_loc);
    if (slot == NULL)
        return false;
    slot_store(slot, entry(hash, new_loc));
    return true;
}

bool segidx_remove(struct segidx *idx, uint64_t hash, uint64_t loc)
{
    uint64_t *slot = slot_of(idx, hash, loc);
    if (slot == NULL)
        return false;
    slot_store(slot, 0);
    idx->count--;
    return true;
}

void segidx_clear(struct segidx *idx)
{
    uint64_t n = (uint64_t)SEGIDX_SLOTS << idx->power;
    for (uint64_t i = 0; i < n; i++)
        slot_store(&idx->slots[i], 0);
    idx->count = 0;
}

uint64_t segidx_count(const struct segidx *idx)
{
    return idx->count;
}

unsigned segidx_power(const struct segidx *idx)
{
    return idx->power;
}

uint64_t segidx_bytes(const struct segidx *idx)
{
    return ((uint64_t)SEGIDX_SLOTS << idx->power) * sizeof(uint64_t);
}

/* --- issue 17: shared reads and retired tables ----------------------------- */

unsigned segidx_shared_candidates(const struct segidx *idx, uint64_t hash,
                                  uint64_t locs[SEGIDX_CANDIDATES_MAX])
{
    const uint64_t *t = __atomic_load_n(&idx->shared, __ATOMIC_ACQUIRE);
    uint64_t mask = t[0];
    const uint64_t *slots = t + SEGIDX_HDR;
    uint64_t b1 = hash & mask;
    uint64_t b2 = (((hash >> 20) * 0x9e3779b97f4a7c15ull) >> 32) & mask; /* bucket2() */
    uint16_t tag = tag_of(hash);
    unsigned n = 0;
    for (int pass = 0; pass < 2; pass++) {
        const uint64_t *s = slots + (pass == 0 ? b1 : b2) * SEGIDX_SLOTS;
        for (int i = 0; i < SEGIDX_SLOTS; i++) {
            uint64_t e = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
            if ((e & SEGIDX_USED) != 0 && (uint16_t)(e >> 48) == tag)
                locs[n++] = e & SEGIDX_LOC_MASK;
        }
        if (b2 == b1)
            break;
    }
    return n;
}

bool segidx_has_unstamped(const struct segidx *idx)
{
    return idx->retired != NULL && idx->retired[2] == SEGIDX_UNSTAMPED;
}

void segidx_stamp_retired(struct segidx *idx, uint64_t stamp)
{
    /* newest first: stop at the first one already stamped */
    for (uint64_t *t = idx->retired; t != NULL && t[2] == SEGIDX_UNSTAMPED;
         t = (uint64_t *)(uintptr_t)t[1])
        t[2] = stamp;
}

bool segidx_reclaim(struct segidx *idx, uint64_t safe)
{
    /* stamps grow towards the head: free the tail that is safe */
    uint64_t **link = &idx->retired;
    while (*link != NULL && ((*link)[2] == SEGIDX_UNSTAMPED || (*link)[2] >= safe))
        link = (uint64_t **)(void *)&(*link)[1];
    if (safe == SEGIDX_UNSTAMPED) /* destroy: everything */
        link = &idx->retired;
    uint64_t *t = *link;
    *link = NULL;
    while (t != NULL) {
        uint64_t *next = (uint64_t *)(uintptr_t)t[1];
        free(t);
        t = next;
    }
    return idx->retired != NULL;
}
