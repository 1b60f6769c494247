/*
 * test_peek.c: reads served where they arrive (issue 17, core/peek.c),
 * against the engine directly: one owner thread writes a small store
 * (sets of checksummed values, deletes, TTLs that run out, eviction, index
 * growth, compaction) while reader threads read it with peek_get(). A read
 * that returns a torn value (bad checksum, a key that is not the one asked
 * for) or one older than what the owner had acknowledged before the read
 * began fails the test; so does a run in which no read was served.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "hash.h"
#include "peek.h"
#include "segidx.h"
#include "store.h"

#define NKEYS 20000
#define WRITES 60000
#define READERS 2
#define ARENA ((size_t)4 << 20)

struct run {
    unsigned nkeys;      /* keys in play (<= NKEYS) */
    unsigned writes;     /* the owner's writes */
    size_t len_min, len_span; /* value lengths */
    struct store *store;
    struct peek_shard owner;
    atomic_uint_least64_t acked[NKEYS]; /* version acknowledged per key */
    atomic_bool done;
    atomic_uint_least64_t epoch;
    atomic_uint_least64_t seen[READERS]; /* epoch seen at each reader's quiescent point */
    atomic_uint_least64_t hits, misses, forwards;
    atomic_uint failures;
    char why[256];
};

static uint32_t checksum(const char *p, size_t n)
{
    return (uint32_t)hash_key(p, n);
}

/* "<key>:<version>:" padded with letters, then 8 hex digits of checksum. */
static size_t make_value(char *out, const char *key, uint64_t version, size_t len)
{
    int n = snprintf(out, len, "%s:%llu:", key, (unsigned long long)version);
    for (size_t i = (size_t)n; i < len - 8; i++)
        out[i] = (char)('a' + (i + version) % 26);
    char hex[9];
    snprintf(hex, sizeof(hex), "%08x", checksum(out, len - 8));
    memcpy(out + len - 8, hex, 8);
    return len;
}

static bool sink_full(struct sink *s, size_t need)
{
    (void)s;
    (void)need;
    return false;
}

static void note_bad(struct run *r, const char *msg, const char *data, size_t n)
{
    if (atomic_fetch_add(&r->failures, 1) == 0)
        snprintf(r->why, sizeof(r->why), "%s: %.*s", msg, (int)(n > 150 ? 150 : n), data);
}

/* Checks one reply "VALUE <key> <flags> <bytes>\r\n<data>\r\n" */
static void check_reply(struct run *r, unsigned k, uint64_t acked, const char *buf, size_t len)
{
    char key[32];
    snprintf(key, sizeof(key), "key%u", k);
    char rkey[64];
    unsigned flags, bytes;
    int consumed = 0;
    if (sscanf(buf, "VALUE %63s %u %u\r\n%n", rkey, &flags, &bytes, &consumed) != 3 || consumed == 0 ||
        strcmp(rkey, key) != 0 || (size_t)consumed + bytes + 2 != len) {
        note_bad(r, "malformed reply", buf, len);
        return;
    }
    const char *v = buf + consumed;
    char hex[9];
    snprintf(hex, sizeof(hex), "%08x", checksum(v, bytes - 8));
    if (memcmp(hex, v + bytes - 8, 8) != 0) {
        note_bad(r, "torn value (checksum)", v, bytes);
        return;
    }
    unsigned long long version = 0;
    char vkey[32];
    if (sscanf(v, "%31[^:]:%llu:", vkey, &version) != 2 || strcmp(vkey, key) != 0) {
        note_bad(r, "value of another key", v, bytes);
        return;
    }
    if (flags != (unsigned)(version & 0xffff))
        note_bad(r, "flags of another version", v, bytes);
    if (version < acked)
        note_bad(r, "stale after ack", v, bytes);
}

static void *reader(void *arg)
{
    struct run *r = ((void **)arg)[0];
    unsigned id = (unsigned)(uintptr_t)((void **)arg)[1];
    static _Thread_local uint32_t pending[PEEK_SLOTS];
    static atomic_uint_least64_t flush_issued; /* no flush_all in this run */
    struct peek_reader pr = {.shards = &r->owner, .nshards = 1, .pending = pending,
                             .flush_issued = &flush_issued};
    static _Thread_local char out[8192];
    uint64_t x = 88172645463325252ull + id;
    while (!atomic_load(&r->done)) {
        /* quiescent point: holds nothing of the owner's now */
        atomic_store(&r->seen[id], atomic_load(&r->epoch));
        for (int i = 0; i < 64; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            unsigned k = (unsigned)(x % r->nkeys);
            char key[32];
            int nkey = snprintf(key, sizeof(key), "key%u", k);
            uint64_t acked = atomic_load_explicit(&r->acked[k], memory_order_acquire);
            struct sink s = {.pos = out, .end = out + sizeof(out), .grow = sink_full};
            enum peek_result res = peek_get(&pr, 0, key, (uint32_t)nkey, hash_key(key, (size_t)nkey),
                                            false, &s);
            if (res == PEEK_HIT || res == PEEK_HIT_BUMP) {
                atomic_fetch_add(&r->hits, 1);
                check_reply(r, k, acked, out, (size_t)(s.pos - out));
            } else if (res == PEEK_MISS) {
                atomic_fetch_add(&r->misses, 1);
            } else {
                atomic_fetch_add(&r->forwards, 1);
            }
        }
    }
    atomic_store(&r->seen[id], UINT64_MAX);
    return NULL;
}

static uint64_t safe_epoch(struct run *r)
{
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t min = UINT64_MAX;
    for (unsigned i = 0; i < READERS; i++) {
        uint64_t s = atomic_load(&r->seen[i]);
        if (s < min)
            min = s;
    }
    return min;
}

/* The owner: every write inside the write side, as core/exec.c does; gets
 * (which saturate the items' read counts, so readers may serve them)
 * outside it, as on a shard. */
static void owner_run(struct run *r)
{
    static uint64_t version[NKEYS];
    memset(version, 0, sizeof(version));
    static char value[8192];
    mc_time_t now = 1000;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (unsigned op = 0; op < r->writes; op++) {
        if (op % 2000 == 0)
            store_set_clock(r->store, ++now); /* TTLs of 1-2 s run out as we go */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned k = (unsigned)(x % r->nkeys);
        char key[32];
        int nkey = snprintf(key, sizeof(key), "key%u", k);
        uint64_t hash = hash_key(key, (size_t)nkey);
        uint64_t ver = ++version[k];
        peek_write_begin(&r->owner);
        if (x % 20 == 0) {
            (void)store_delete(r->store, key, (size_t)nkey, hash);
        } else {
            size_t len = r->len_min + (size_t)(x >> 20) % r->len_span;
            make_value(value, key, ver, len);
            mc_time_t exptime = x % 4 == 0 ? now + 1 + (mc_time_t)(x % 2) : 0;
            enum mc_status st = store_set(r->store, STORE_SET, key, (size_t)nkey, hash,
                                          (uint32_t)(ver & 0xffff), exptime, value, len, 0, NULL);
            assert_int_equal(st, MC_OK);
        }
        peek_write_end(&r->owner);
        if (x % 2 == 0) /* half the items are read to saturation by the owner */
            for (int i = 0; i < ITEM_FREQ_MAX + 2; i++)
                (void)store_get(r->store, key, (size_t)nkey, hash);
        atomic_store_explicit(&r->acked[k], ver, memory_order_release);
        /* retired index tables: stamped, freed once both readers passed a
         * quiescent point since (what io/qsbr.c does between shards) */
        struct segidx *idx = store_index(r->store);
        if (segidx_has_unstamped(idx))
            segidx_stamp_retired(idx, atomic_fetch_add(&r->epoch, 1));
        (void)segidx_reclaim(idx, safe_epoch(r));
    }
}

/* Runs the owner against READERS readers; returns the run (checked by the caller). */
static struct run *run_owner_and_readers(unsigned nkeys, unsigned writes, size_t len_min,
                                         size_t len_span, size_t arena_size, void **arena_out)
{
    /* struct peek_shard is cache-line aligned: so must its holder be */
    struct run *r = aligned_alloc(64, (sizeof(*r) + 63) / 64 * 64);
    assert_non_null(r);
    memset(r, 0, sizeof(*r));
    r->nkeys = nkeys;
    r->writes = writes;
    r->len_min = len_min;
    r->len_span = len_span;
    void *arena = aligned_alloc(4096, arena_size);
    assert_non_null(arena);
    *arena_out = arena;
    struct store_cfg cfg = {
        .arena = arena, .arena_size = arena_size, .item_size_max = 64 << 10, .evictions = true,
        .cas_enabled = true, .cas_offset = 0, .cas_stride = 1, .growth_factor = 1.25,
    };
    assert_int_equal(store_create(&cfg, &r->store), MC_OK);
    store_set_clock(r->store, 1000);
    store_peek_view(r->store, &r->owner.view);
    atomic_store(&r->owner.readable, true);
    atomic_store(&r->epoch, 1);
    pthread_t th[READERS];
    void *args[READERS][2];
    for (unsigned i = 0; i < READERS; i++) {
        atomic_store(&r->seen[i], 1);
        args[i][0] = r;
        args[i][1] = (void *)(uintptr_t)i;
        assert_int_equal(pthread_create(&th[i], NULL, reader, args[i]), 0);
    }
    owner_run(r);
    atomic_store(&r->done, true);
    for (unsigned i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    print_message("peek: %llu hits, %llu misses, %llu forwarded; index 2^%u buckets\n",
                  (unsigned long long)r->hits, (unsigned long long)r->misses,
                  (unsigned long long)r->forwards, segidx_power(store_index(r->store)));
    return r;
}

static void test_peek_concurrent_reads_are_whole_and_fresh(void **state)
{
    (void)state;
    void *arena;
    struct run *r = run_owner_and_readers(NKEYS, WRITES, 40, 500, ARENA, &arena);
    if (r->failures != 0)
        fail_msg("%u bad reads, first: %s", r->failures, r->why);
    assert_true(r->hits > 0);   /* reads were served... */
    assert_true(r->misses > 0); /* ...deleted, expired or evicted keys seen absent... */
    assert_true(segidx_power(store_index(r->store)) > 10); /* ...while the index grew */
    assert_true(store_check(r->store));
    store_destroy(&r->store);
    free(arena);
    free(r);
}

/* A few keys overwritten with large values in a small arena: segments are
 * evicted, compacted and rewritten under the readers all the time, so a
 * read that is not validated returns torn values here. */
static void test_peek_reads_under_segment_reuse_are_whole(void **state)
{
    (void)state;
    void *arena;
    struct run *r = run_owner_and_readers(48, 150000, 1000, 3000, (size_t)1 << 20, &arena);
    if (r->failures != 0)
        fail_msg("%u bad reads, first: %s", r->failures, r->why);
    assert_true(r->hits > 0);
    assert_true(store_check(r->store));
    store_destroy(&r->store);
    free(arena);
    free(r);
}

/* A reader whose connection has forwarded requests in flight, or that sent
 * a flush_all the owner has not applied, does not read remotely. */
static void test_peek_forwards_while_its_writes_are_in_flight(void **state)
{
    (void)state;
    void *arena = aligned_alloc(4096, ARENA);
    struct store_cfg cfg = {
        .arena = arena, .arena_size = ARENA, .item_size_max = 64 << 10, .evictions = true,
        .cas_enabled = true, .cas_offset = 0, .cas_stride = 1, .growth_factor = 1.25,
    };
    struct store *store;
    assert_int_equal(store_create(&cfg, &store), MC_OK);
    store_set_clock(store, 1000);
    static struct peek_shard owner;
    store_peek_view(store, &owner.view);
    atomic_store(&owner.readable, true);
    uint64_t hash = hash_key("k", 1);
    assert_int_equal(store_set(store, STORE_SET, "k", 1, hash, 7, 0, "v", 1, 0, NULL), MC_OK);
    static uint32_t pending[PEEK_SLOTS];
    static atomic_uint_least64_t flush_issued;
    struct peek_reader pr = {.shards = &owner, .nshards = 1, .pending = pending, .flush_issued = &flush_issued};
    char out[256];
    struct sink s = {.pos = out, .end = out + sizeof(out), .grow = sink_full};
    /* fresh: served, and the owner must count the read in the item; once
     * it has (store_remote_hit, as io/route.c's X_BUMP does), served as is */
    assert_int_equal(peek_get(&pr, 0, "k", 1, hash, true, &s), PEEK_HIT_BUMP);
    *s.pos = '\0';
    assert_string_equal(out, "VALUE k 7 1 1\r\nv\r\n");
    struct peek_copy copy;
    const struct item *it = NULL;
    assert_int_equal(peek_lookup(&pr, 0, "k", 1, hash, &copy, &it), PEEK_HIT_BUMP);
    store_remote_hit_at(store, copy.loc); /* by location: nothing written since */
    for (int i = 1; i < ITEM_FREQ_MAX; i++)
        store_remote_hit(store, "k", 1, hash);
    s.pos = out;
    assert_int_equal(peek_get(&pr, 0, "k", 1, hash, true, &s), PEEK_HIT);
    *s.pos = '\0';
    assert_string_equal(out, "VALUE k 7 1 1\r\nv\r\n");
    /* a request for a key of the same slot in flight: forwarded */
    pending[peek_slot(hash)] = 1;
    assert_int_equal(peek_get(&pr, 0, "k", 1, hash, true, &s), PEEK_FORWARD);
    pending[peek_slot(hash)] = 0;
    /* a flush_all some shard started and the owner has not applied: forwarded */
    atomic_store(&flush_issued, 1);
    assert_int_equal(peek_get(&pr, 0, "k", 1, hash, true, &s), PEEK_FORWARD);
    atomic_store(&owner.flushes, 1);
    assert_int_equal(peek_get(&pr, 0, "absent", 6, hash_key("absent", 6), false, &s), PEEK_MISS);
    /* the owner in a write: forwarded */
    peek_write_begin(&owner);
    assert_int_equal(peek_get(&pr, 0, "k", 1, hash, true, &s), PEEK_FORWARD);
    peek_write_end(&owner);
    /* expired at the owner's clock: forwarded (the owner unlinks and counts it) */
    assert_int_equal(store_touch(store, "k", 1, hash, 1001), MC_OK);
    store_set_clock(store, 1001);
    assert_int_equal(peek_get(&pr, 0, "k", 1, hash, true, &s), PEEK_FORWARD);
    store_destroy(&store);
    free(arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_forwards_while_its_writes_are_in_flight),
        cmocka_unit_test(test_peek_concurrent_reads_are_whole_and_fresh),
        cmocka_unit_test(test_peek_reads_under_segment_reuse_are_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
