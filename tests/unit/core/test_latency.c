/*
 * test_latency.c: the service-time histogram: bucket bounds (inclusive
 * upper bounds, as Prometheus' le), overflow, sums and reset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "latency.h"

static void test_latency_bucket_bounds_are_inclusive(void **state)
{
    (void)state;
    assert_int_equal(latency_bucket(0), 0);
    assert_int_equal(latency_bucket(1), 0);
    assert_int_equal(latency_bucket(128), 0);
    assert_int_equal(latency_bucket(129), 1);
    assert_int_equal(latency_bucket(256), 1);
    assert_int_equal(latency_bucket(257), 2);
    for (unsigned i = 0; i < LATENCY_BUCKETS; i++) {
        assert_int_equal(latency_bucket(LATENCY_LE_NS(i)), i);
        assert_int_equal(latency_bucket(LATENCY_LE_NS(i) + 1), i + 1);
    }
    assert_int_equal(latency_bucket(LATENCY_LE_NS(LATENCY_BUCKETS - 1) + 1), LATENCY_BUCKETS);
    assert_int_equal(latency_bucket(UINT64_MAX), LATENCY_BUCKETS);
}

static void test_latency_record_sum_reset(void **state)
{
    (void)state;
    struct latency a, b;
    latency_reset(&a);
    latency_reset(&b);
    latency_record(&a, 100);
    latency_record(&a, 1000);
    latency_record(&a, 5000000000ull); /* 5 s: beyond the last bound */
    assert_int_equal(a.count, 3);
    assert_int_equal(a.sum_ns, 5000001100ull);
    assert_int_equal(a.bucket[0], 1);
    assert_int_equal(a.bucket[latency_bucket(1000)], 1);
    assert_int_equal(a.bucket[LATENCY_BUCKETS], 1);
    latency_record(&b, 1000);
    latency_sum(b.v, a.v);
    assert_int_equal(b.count, 4);
    assert_int_equal(b.bucket[latency_bucket(1000)], 2);
    latency_reset(&b);
    for (unsigned i = 0; i < LATENCY_VALUES; i++)
        assert_int_equal(b.v[i], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_latency_bucket_bounds_are_inclusive),
        cmocka_unit_test(test_latency_record_sum_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
