/*
 * test_snapshot.c: the snapshot gather's parts (io/snapshot.c), the one
 * wire format `stats`, `stats shards` and /metrics read: what a shard
 * collects is what the asking shard files under that shard, table by
 * table and class by class; a part that does not parse leaves its shard
 * at zero instead of shifting another's values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../core/hash.h"
#include "shard.h"
#include "snapshot.h"
#include "test_fixture.h"

struct snap_fixture {
    struct fixture store[2];
    struct shard shard[2];
};

static int setup(void **state)
{
    struct snap_fixture *sf = calloc(1, sizeof(*sf));
    for (unsigned i = 0; i < 2; i++) {
        fixture_init(&sf->store[i], fixture_cfg(FIXTURE_ARENA));
        sf->shard[i].id = i;
        sf->shard[i].store = sf->store[i].store;
        /* distinct counters per shard, so a value filed under the wrong
         * shard or the wrong row shows */
        for (size_t m = 0; m < SHARD_METRIC_COUNT; m++)
            sf->shard[i].m.v[m] = 1000 * (i + 1) + m;
        for (size_t l = 0; l < LATENCY_VALUES; l++)
            sf->shard[i].latency.v[l] = 7 * (i + 1) + l;
    }
    /* shard 1 stores items of two sizes, so it has classes in use */
    char value[600];
    memset(value, 'v', sizeof(value));
    for (unsigned k = 0; k < 20; k++) {
        char key[64];
        int n = snprintf(key, sizeof(key), "key%u", k);
        assert_int_equal(store_set(sf->store[1].store, STORE_SET, key, (uint32_t)n, hash_key(key, (size_t)n), 0, 0,
                                   value, k % 2 ? 10 : sizeof(value), 0, NULL),
                         MC_OK);
    }
    *state = sf;
    return 0;
}

static int teardown(void **state)
{
    struct snap_fixture *sf = *state;
    for (unsigned i = 0; i < 2; i++)
        fixture_deinit(&sf->store[i]);
    free(sf);
    return 0;
}

/* Collects shard i's part into a test sink and returns its bytes. */
static char *collect(struct snap_fixture *sf, unsigned i, size_t *len)
{
    struct test_sink ts;
    test_sink_init(&ts, 64); /* small blocks: the part spans several */
    assert_true(snapshot_collect(&sf->shard[i], 0, &ts.sink));
    test_sink_flush(&ts);
    *len = ts.len;
    return ts.data;
}

static void test_snapshot_round_trip_per_shard(void **state)
{
    struct snap_fixture *sf = *state;
    struct snapshots *snaps = snapshot_create(2);
    assert_non_null(snaps);
    for (unsigned i = 0; i < 2; i++) {
        size_t len;
        char *part = collect(sf, i, &len);
        snapshot_fold(snaps, i, part, len);
        free(part);
    }
    uint64_t store_v[2][256];
    assert_true(store_metric_count <= 256);
    for (unsigned i = 0; i < 2; i++) {
        assert_memory_equal(snapshot_shard_metrics(snaps, i), sf->shard[i].m.v, sizeof(sf->shard[i].m.v));
        assert_memory_equal(snapshot_latency(snaps, i), sf->shard[i].latency.v, sizeof(sf->shard[i].latency.v));
        store_metrics(sf->shard[i].store, store_v[i]);
        assert_memory_equal(snapshot_store_metrics(snaps, i), store_v[i], store_metric_count * sizeof(uint64_t));
    }
    /* every class arrives under its id, each shard's its own; a class
     * beyond a shard's count reads zero */
    uint32_t nclasses = store_class_count(sf->shard[1].store);
    uint32_t nclasses0 = store_class_count(sf->shard[0].store);
    assert_true(nclasses >= 1); /* the segment engine reports one pseudo-class (store.c) */
    assert_int_equal(snaps->nclasses, nclasses > nclasses0 ? nclasses : nclasses0);
    uint64_t *row = calloc(store_class_metric_count, sizeof(uint64_t));
    for (unsigned id = 1; id <= snaps->nclasses; id++) {
        for (unsigned i = 0; i < 2; i++) {
            if (id <= store_class_count(sf->shard[i].store))
                store_class_metrics(sf->shard[i].store, id, row);
            else
                memset(row, 0, store_class_metric_count * sizeof(uint64_t));
            assert_memory_equal(snapshot_class(snaps, i, id), row, store_class_metric_count * sizeof(uint64_t));
        }
    }
    free(row);
    snapshot_destroy(&snaps);
    assert_null(snaps);
}

static void test_snapshot_bad_part_leaves_shard_zero(void **state)
{
    struct snap_fixture *sf = *state;
    struct snapshots *snaps = snapshot_create(2);
    size_t len;
    char *part = collect(sf, 1, &len);
    snapshot_fold(snaps, 1, part, len - 8); /* truncated */
    snapshot_fold(snaps, 0, part, 3);       /* shorter than a header */
    snapshot_fold(snaps, 5, part, len);     /* no such shard */
    free(part);
    for (unsigned i = 0; i < 2; i++) {
        const uint64_t *v = snapshot_shard_metrics(snaps, i);
        for (size_t m = 0; m < SHARD_METRIC_COUNT; m++)
            assert_int_equal(v[m], 0);
    }
    assert_int_equal(snaps->nclasses, 0);
    snapshot_free(snaps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_snapshot_round_trip_per_shard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_bad_part_leaves_shard_zero, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
