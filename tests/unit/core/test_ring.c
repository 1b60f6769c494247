/*
 * test_ring.c: the consistent-hash ring: balance, minimal movement on
 * growth, determinism, and lookups against a brute-force scan of the
 * sorted points.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"
#include "ring.h"

#define NKEYS 1000000

struct fixture {
    uint64_t *hashes; /* hash_key("key:<i>") for i < NKEYS */
    struct ring *ring;
    struct ring *other;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->hashes = malloc(NKEYS * sizeof(uint64_t));
    if (f->hashes == NULL) {
        free(f);
        return -1;
    }
    for (unsigned i = 0; i < NKEYS; i++) {
        /* 256, not 32: GCC 12 cannot bound snprintf's result and warns
         * (-Warray-bounds) about xxh3's inlined 17..240-byte paths
         * reading past a smaller buffer */
        char key[256];
        int len = snprintf(key, sizeof(key), "key:%u", i);
        f->hashes[i] = hash_key(key, (size_t)len);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ring_destroy(&f->ring);
    ring_destroy(&f->other);
    free(f->hashes);
    free(f);
    return 0;
}

/* xorshift64*: reproducible random hashes without libc's global rand(). */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(0x2545F4914F6CDD1D);
}

/* ---- the oracle: ring.c's documented placement, scanned by brute force - */

struct point {
    uint64_t point;
    unsigned shard;
};

static uint64_t point_of(unsigned shard, unsigned vnode)
{
    unsigned char bytes[8];
    for (int i = 0; i < 4; i++) {
        bytes[i] = (unsigned char)(shard >> (8 * i));
        bytes[4 + i] = (unsigned char)(vnode >> (8 * i));
    }
    return XXH3_64bits(bytes, sizeof(bytes));
}

static int point_cmp(const void *a, const void *b)
{
    const struct point *pa = a, *pb = b;
    if (pa->point != pb->point)
        return pa->point < pb->point ? -1 : 1;
    return pa->shard < pb->shard ? -1 : (pa->shard > pb->shard);
}

static struct point *sorted_points(unsigned shards, unsigned vnodes)
{
    struct point *points = malloc((size_t)shards * vnodes * sizeof(*points));
    assert_non_null(points);
    for (unsigned s = 0; s < shards; s++) {
        for (unsigned v = 0; v < vnodes; v++)
            points[s * vnodes + v] = (struct point){point_of(s, v), s};
    }
    qsort(points, (size_t)shards * vnodes, sizeof(*points), point_cmp);
    return points;
}

/* Owner by definition: the first point >= hash, wrapping to the lowest. */
static unsigned brute_owner(const struct point *points, size_t n, uint64_t hash)
{
    for (size_t i = 0; i < n; i++) {
        if (points[i].point >= hash)
            return points[i].shard;
    }
    return points[0].shard;
}

/* ---- tests ------------------------------------------------------------- */

static void test_ring_create_rejects_bad_arguments(void **state)
{
    struct fixture *f = *state;
    f->ring = NULL;
    assert_int_equal(ring_create(0, RING_VNODES_DEFAULT, &f->ring), MC_EINVAL);
    assert_int_equal(ring_create(1025, RING_VNODES_DEFAULT, &f->ring), MC_EINVAL);
    assert_int_equal(ring_create(4, 0, &f->ring), MC_EINVAL);
    assert_int_equal(ring_create(1024, 1u << 23, &f->ring), MC_EINVAL); /* 2^33 points */
    assert_null(f->ring);
    assert_int_equal(ring_create(1024, 1, &f->ring), MC_OK);
    assert_int_equal(ring_shards(f->ring), 1024);
}

static void test_ring_destroy_clears_pointer(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ring_create(3, 16, &f->ring), MC_OK);
    ring_destroy(&f->ring);
    assert_null(f->ring);
    ring_destroy(&f->ring); /* and is idempotent */
    assert_null(f->ring);
}

static void test_ring_one_shard_owns_everything(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ring_create(1, RING_VNODES_DEFAULT, &f->ring), MC_OK);
    assert_int_equal(ring_shards(f->ring), 1);
    for (unsigned i = 0; i < NKEYS; i += 7)
        assert_int_equal(ring_owner(f->ring, f->hashes[i]), 0);
    assert_int_equal(ring_owner(f->ring, 0), 0);
    assert_int_equal(ring_owner(f->ring, UINT64_MAX), 0);

    ring_destroy(&f->ring);
    assert_int_equal(ring_create(1, 1, &f->ring), MC_OK); /* a single point */
    assert_int_equal(ring_owner(f->ring, 0), 0);
    assert_int_equal(ring_owner(f->ring, point_of(0, 0)), 0);
    assert_int_equal(ring_owner(f->ring, UINT64_MAX), 0);
}

static void test_ring_balance_16_shards(void **state)
{
    struct fixture *f = *state;
    const unsigned shards = 16;
    assert_int_equal(ring_create(shards, RING_VNODES_DEFAULT, &f->ring), MC_OK);
    unsigned counts[16] = {0};
    for (unsigned i = 0; i < NKEYS; i++) {
        unsigned owner = ring_owner(f->ring, f->hashes[i]);
        assert_true(owner < shards);
        counts[owner]++;
    }
    double ideal = (double)NKEYS / shards, worst = 0;
    for (unsigned s = 0; s < shards; s++) {
        double dev = ((double)counts[s] - ideal) / ideal;
        if (dev < 0)
            dev = -dev;
        if (dev > worst)
            worst = dev;
        assert_true(dev <= 0.10);
    }
    print_message("ring balance: 16 shards x %u vnodes, 1M keys: max deviation %.2f%%\n",
                  RING_VNODES_DEFAULT, worst * 100);
}

static void test_ring_growth_moves_only_to_new_shard(void **state)
{
    struct fixture *f = *state;
    unsigned *before = malloc(NKEYS * sizeof(unsigned));
    assert_non_null(before);
    assert_int_equal(ring_create(1, RING_VNODES_DEFAULT, &f->ring), MC_OK);
    for (unsigned i = 0; i < NKEYS; i++)
        before[i] = ring_owner(f->ring, f->hashes[i]);

    double worst_excess = 0;
    for (unsigned n = 1; n <= 16; n++) {
        assert_int_equal(ring_create(n + 1, RING_VNODES_DEFAULT, &f->other), MC_OK);
        unsigned moved = 0;
        for (unsigned i = 0; i < NKEYS; i++) {
            unsigned after = ring_owner(f->other, f->hashes[i]);
            if (after != before[i]) {
                assert_int_equal(after, n); /* only ever to the new shard */
                moved++;
            }
            before[i] = after;
        }
        double share = (double)moved / NKEYS, fair = 1.0 / (n + 1);
        if (share / fair - 1 > worst_excess)
            worst_excess = share / fair - 1;
        assert_true(share <= fair * 1.10); /* about 1/(N+1), within the balance tolerance */
        assert_true(share >= fair * 0.90); /* and the new shard does get its share */
        ring_destroy(&f->ring);
        f->ring = f->other;
        f->other = NULL;
    }
    print_message("ring growth 1..17 shards: moved at most %.2f%% more than 1/(N+1)\n",
                  worst_excess * 100);
    free(before);
}

static void test_ring_is_deterministic(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ring_create(7, 100, &f->ring), MC_OK);
    assert_int_equal(ring_create(7, 100, &f->other), MC_OK);
    for (unsigned i = 0; i < NKEYS; i++)
        assert_int_equal(ring_owner(f->ring, f->hashes[i]), ring_owner(f->other, f->hashes[i]));
    /* and follows the documented placement */
    struct point *points = sorted_points(7, 100);
    for (unsigned i = 0; i < 10000; i++)
        assert_int_equal(ring_owner(f->ring, f->hashes[i]), brute_owner(points, 700, f->hashes[i]));
    free(points);
}

static void check_against_brute_force(struct fixture *f, unsigned shards, unsigned vnodes)
{
    size_t n = (size_t)shards * vnodes;
    struct point *points = sorted_points(shards, vnodes);
    assert_int_equal(ring_create(shards, vnodes, &f->ring), MC_OK);

    /* every exact point, one below and one above it */
    for (size_t i = 0; i < n; i++) {
        uint64_t p = points[i].point;
        assert_int_equal(ring_owner(f->ring, p), brute_owner(points, n, p));
        assert_int_equal(ring_owner(f->ring, p - 1), brute_owner(points, n, p - 1));
        assert_int_equal(ring_owner(f->ring, p + 1), brute_owner(points, n, p + 1));
    }
    /* around the wrap: below the lowest point, above the highest, the ends */
    static const uint64_t edges[] = {0, 1, UINT64_MAX, UINT64_MAX - 1, UINT64_C(1) << 63,
                                     (UINT64_C(1) << 63) - 1};
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        assert_int_equal(ring_owner(f->ring, edges[i]), brute_owner(points, n, edges[i]));
    assert_int_equal(ring_owner(f->ring, points[n - 1].point + 1), points[0].shard);
    assert_int_equal(ring_owner(f->ring, UINT64_MAX), points[0].shard);
    assert_int_equal(ring_owner(f->ring, 0), points[0].shard);
    /* random hashes */
    uint64_t seed = UINT64_C(0x9E3779B97F4A7C15) ^ n;
    for (unsigned i = 0; i < 20000; i++) {
        uint64_t h = next_random(&seed);
        assert_int_equal(ring_owner(f->ring, h), brute_owner(points, n, h));
    }
    ring_destroy(&f->ring);
    free(points);
}

static void test_ring_owner_matches_brute_force(void **state)
{
    struct fixture *f = *state;
    check_against_brute_force(f, 1, 1);
    check_against_brute_force(f, 1, 200); /* crowded: buckets of 3+ points */
    check_against_brute_force(f, 4, 60);
    check_against_brute_force(f, 2, 3);
    check_against_brute_force(f, 5, 64);
    check_against_brute_force(f, 16, 256);
    check_against_brute_force(f, 3, 1500); /* 4500 points: not a power of two */
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_ring_create_rejects_bad_arguments),
        T(test_ring_destroy_clears_pointer),
        T(test_ring_one_shard_owns_everything),
        T(test_ring_balance_16_shards),
        T(test_ring_growth_moves_only_to_new_shard),
        T(test_ring_is_deterministic),
        T(test_ring_owner_matches_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
