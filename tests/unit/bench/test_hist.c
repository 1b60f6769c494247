/*
 * test_hist.c: the log-linear histogram: exact small values, the precision
 * bound over the whole range, percentiles of known distributions against
 * exact order statistics, merging, clamping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <math.h>

#include "hist.h"
#include "rng.h"

/* The histogram's documented bound: reported values are within 1/256. */
#define REL_BOUND (1.0 / 256.0)

static int setup(void **state)
{
    *state = hist_create();
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    struct hist *h = *state;
    hist_destroy(&h);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The exact value at percentile pct of sorted[0 .. n): rank ceil(pct% n). */
static uint64_t exact_percentile(const uint64_t *sorted, size_t n, double pct)
{
    size_t rank = (size_t)ceil(pct / 100.0 * (double)n);
    if (rank == 0)
        rank = 1;
    return sorted[rank - 1];
}

static void assert_close(uint64_t got, uint64_t want)
{
    double err = fabs((double)got - (double)want);
    if (err > REL_BOUND * (double)want + 0.5)
        fail_msg("got %llu, want %llu (relative error %.5f > %.5f)", (unsigned long long)got,
                 (unsigned long long)want, err / (double)want, REL_BOUND);
}

static void test_hist_empty_reports_zero(void **state)
{
    struct hist *h = *state;
    assert_int_equal(hist_count(h), 0);
    assert_int_equal(hist_percentile(h, 50), 0);
    assert_int_equal(hist_max(h), 0);
    assert_true(hist_mean(h) == 0.0);
}

static void test_hist_small_values_are_exact(void **state)
{
    struct hist *h = *state;
    for (uint64_t v = 0; v < 100; v++)
        hist_record(h, v);
    assert_int_equal(hist_count(h), 100);
    assert_int_equal(hist_min(h), 0);
    assert_int_equal(hist_max(h), 99);
    assert_int_equal(hist_percentile(h, 50), 49);
    assert_int_equal(hist_percentile(h, 90), 89);
    assert_int_equal(hist_percentile(h, 1), 0);
    assert_int_equal(hist_percentile(h, 100), 99);
    assert_true(fabs(hist_mean(h) - 49.5) < 1e-9);
}

static void test_hist_bucket_width_is_within_precision(void **state)
{
    /* Every bucket from 1 us to 60 s is at most 1/128 of its values wide,
     * and buckets tile the range with no gap or overlap. */
    uint64_t prev_high = 0;
    for (uint64_t v = 1000; v <= HIST_MAX_VALUE;) {
        uint64_t low, high;
        hist_bucket_bounds(v, &low, &high);
        assert_true(low <= v && v <= high);
        assert_true((double)(high - low + 1) <= (double)low / 128.0 + 1.0);
        if (prev_high != 0)
            assert_int_equal(low, prev_high + 1);
        prev_high = high;
        v = high + 1;
    }
}

/* Records n samples, then checks p50 .. p99.99 against the sorted samples. */
static void check_distribution(struct hist *h, uint64_t *samples, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hist_record(h, samples[i]);
    qsort(samples, n, sizeof(samples[0]), cmp_u64);
    static const double pcts[] = {0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99};
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        assert_close(hist_percentile(h, pcts[i]), exact_percentile(samples, n, pcts[i]));
    assert_int_equal(hist_min(h), samples[0]);
    assert_int_equal(hist_max(h), samples[n - 1]);
    assert_int_equal(hist_percentile(h, 100), samples[n - 1]);
}

static void test_hist_uniform_percentiles_within_bound(void **state)
{
    size_t n = 200000;
    uint64_t *samples = malloc(n * sizeof(*samples));
    struct rng rng;
    rng_init(&rng, 7);
    for (size_t i = 0; i < n; i++)
        samples[i] = 1000 + rng_below(&rng, 10 * 1000 * 1000); /* 1 us .. 10 ms */
    check_distribution(*state, samples, n);
    free(samples);
}

static void test_hist_lognormal_percentiles_within_bound(void **state)
{
    /* Latency-like: median 200 us, a long tail into tens of ms. */
    size_t n = 200000;
    uint64_t *samples = malloc(n * sizeof(*samples));
    struct rng rng;
    rng_init(&rng, 11);
    for (size_t i = 0; i < n; i += 2) {
        double u1 = rng_double(&rng), u2 = rng_double(&rng);
        double r = sqrt(-2.0 * log1p(-u1));
        double z[2] = {r * cos(2 * M_PI * u2), r * sin(2 * M_PI * u2)};
        for (int k = 0; k < 2 && i + (size_t)k < n; k++)
            samples[i + (size_t)k] = (uint64_t)(200000.0 * exp(1.2 * z[k]));
    }
    check_distribution(*state, samples, n);
    free(samples);
}

static void test_hist_merge_equals_recording_everything(void **state)
{
    struct hist *all = *state;
    struct hist *a = hist_create(), *b = hist_create();
    struct rng rng;
    rng_init(&rng, 3);
    for (int i = 0; i < 50000; i++) {
        uint64_t v = 500 + rng_below(&rng, 5000000);
        hist_record(all, v);
        hist_record(i % 3 ? a : b, v);
    }
    hist_merge(a, b);
    assert_int_equal(hist_count(a), hist_count(all));
    assert_int_equal(hist_min(a), hist_min(all));
    assert_int_equal(hist_max(a), hist_max(all));
    assert_true(hist_mean(a) == hist_mean(all));
    static const double pcts[] = {1, 50, 90, 99, 99.9, 100};
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        assert_int_equal(hist_percentile(a, pcts[i]), hist_percentile(all, pcts[i]));
    /* merging an empty histogram changes nothing; into an empty one copies */
    struct hist *empty = hist_create();
    hist_merge(a, empty);
    assert_int_equal(hist_count(a), hist_count(all));
    hist_merge(empty, a);
    assert_int_equal(hist_min(empty), hist_min(all));
    assert_int_equal(hist_percentile(empty, 99), hist_percentile(all, 99));
    hist_destroy(&a);
    hist_destroy(&b);
    hist_destroy(&empty);
    assert_null(a);
}

static void test_hist_clamps_above_max_but_keeps_true_max(void **state)
{
    struct hist *h = *state;
    hist_record(h, 1000);
    hist_record(h, 3 * HIST_MAX_VALUE);
    assert_int_equal(hist_count(h), 2);
    assert_int_equal(hist_max(h), 3 * HIST_MAX_VALUE);
    uint64_t p100 = hist_percentile(h, 100);
    assert_int_equal(p100, 3 * HIST_MAX_VALUE);
    uint64_t p75 = hist_percentile(h, 75);
    assert_true(p75 >= HIST_MAX_VALUE - HIST_MAX_VALUE / 128);
    assert_close(hist_percentile(h, 50), 1000);
}

static void test_hist_reset_forgets(void **state)
{
    struct hist *h = *state;
    hist_record(h, 5000);
    hist_reset(h);
    assert_int_equal(hist_count(h), 0);
    hist_record(h, 7);
    assert_int_equal(hist_min(h), 7);
    assert_int_equal(hist_percentile(h, 50), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hist_empty_reports_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hist_small_values_are_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hist_bucket_width_is_within_precision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hist_uniform_percentiles_within_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hist_lognormal_percentiles_within_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hist_merge_equals_recording_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hist_clamps_above_max_but_keeps_true_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hist_reset_forgets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
