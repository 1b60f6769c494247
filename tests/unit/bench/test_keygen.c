/*
 * test_keygen.c: key draws. Zipf against theory (the frequency of the top
 * ranks over 1M keys at skew 0.99, and at other skews), uniform against a
 * chi-square test, bounds, and refused parameters. Seeds are fixed, so the
 * statistical checks are deterministic; their tolerances are 5 standard
 * deviations, so a correct generator passes with any seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <math.h>

#include "keygen.h"
#include "rng.h"

struct fixture {
    struct keygen *kg;
    struct rng rng;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    rng_init(&f->rng, 12345);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    keygen_destroy(&f->kg);
    free(f);
    return 0;
}

/* H(n, s) = sum_{k=1..n} k^-s, summed from the small terms up. */
static double harmonic(uint64_t n, double s)
{
    double sum = 0;
    for (uint64_t k = n; k >= 1; k--)
        sum += pow((double)k, -s);
    return sum;
}

/* Draws `draws` keys and checks the frequency of keys 0, 1, 9 (ranks 1, 2,
 * 10) against (rank^-s / H) within 5 binomial standard deviations. */
static void check_zipf(struct fixture *f, uint64_t n, double s, uint64_t draws)
{
    assert_int_equal(keygen_create(&f->kg, KEYGEN_ZIPF, n, s), MC_OK);
    uint64_t counts[10] = {0};
    for (uint64_t i = 0; i < draws; i++) {
        uint64_t k = keygen_next(f->kg, &f->rng);
        assert_true(k < n);
        if (k < 10)
            counts[k]++;
    }
    double h = harmonic(n, s);
    static const unsigned ranks[] = {1, 2, 10};
    for (size_t i = 0; i < 3; i++) {
        double p = pow(ranks[i], -s) / h;
        double expect = p * (double)draws;
        double sigma = sqrt((double)draws * p * (1 - p));
        double got = (double)counts[ranks[i] - 1];
        if (fabs(got - expect) > 5 * sigma)
            fail_msg("zipf n=%llu s=%g rank %u: %.0f draws, theory %.0f +- %.0f",
                     (unsigned long long)n, s, ranks[i], got, expect, 5 * sigma);
    }
    assert_true(counts[0] > counts[1] && counts[1] > counts[9]);
    keygen_destroy(&f->kg);
}

static void test_keygen_zipf_099_over_1m_keys_matches_theory(void **state)
{
    /* the comparison's workload: key 0 should be ~6.9% of all draws */
    check_zipf(*state, 1000000, 0.99, 2000000);
}

static void test_keygen_zipf_other_skews_match_theory(void **state)
{
    check_zipf(*state, 1000, 0.5, 1000000);
    check_zipf(*state, 1000, 1.0, 1000000); /* exactly 1: the log limit */
    check_zipf(*state, 100000, 1.2, 1000000);
    check_zipf(*state, 50, 2.0, 1000000);
}

static void test_keygen_zipf_tail_is_reached(void **state)
{
    /* Over 10 keys at skew 0.99, every key appears, the last ~3.4% of the
     * time; a sampler that never reaches the tail fails this. */
    struct fixture *f = *state;
    assert_int_equal(keygen_create(&f->kg, KEYGEN_ZIPF, 10, 0.99), MC_OK);
    uint64_t counts[10] = {0};
    for (int i = 0; i < 200000; i++)
        counts[keygen_next(f->kg, &f->rng)]++;
    double h = harmonic(10, 0.99);
    for (int k = 0; k < 10; k++) {
        double p = pow(k + 1, -0.99) / h;
        double sigma = sqrt(200000 * p * (1 - p));
        assert_true(fabs((double)counts[k] - 200000 * p) < 5 * sigma);
    }
}

static void test_keygen_uniform_passes_chi_square(void **state)
{
    struct fixture *f = *state;
    enum { BINS = 100, DRAWS = 1000000 };
    assert_int_equal(keygen_create(&f->kg, KEYGEN_UNIFORM, BINS, 0), MC_OK);
    uint64_t counts[BINS] = {0};
    for (int i = 0; i < DRAWS; i++)
        counts[keygen_next(f->kg, &f->rng)]++;
    double expect = (double)DRAWS / BINS, chi2 = 0;
    for (int i = 0; i < BINS; i++)
        chi2 += ((double)counts[i] - expect) * ((double)counts[i] - expect) / expect;
    /* 99 degrees of freedom: 0.1% and 99.9% points are 61.9 and 148.2.
     * Too small is as wrong as too large (a counter, not a random draw). */
    if (chi2 < 61.9 || chi2 > 148.2)
        fail_msg("chi-square %.1f outside [61.9, 148.2]", chi2);
}

static void test_keygen_uniform_large_n_stays_in_range(void **state)
{
    struct fixture *f = *state;
    uint64_t n = 3000000001ull; /* not a power of two, above 2^31 */
    assert_int_equal(keygen_create(&f->kg, KEYGEN_UNIFORM, n, 0), MC_OK);
    uint64_t above_half = 0;
    for (int i = 0; i < 100000; i++) {
        uint64_t k = keygen_next(f->kg, &f->rng);
        assert_true(k < n);
        above_half += k >= n / 2;
    }
    assert_true(above_half > 48500 && above_half < 51500);
}

static void test_keygen_single_key(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(keygen_create(&f->kg, KEYGEN_ZIPF, 1, 0.99), MC_OK);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(keygen_next(f->kg, &f->rng), 0);
    keygen_destroy(&f->kg);
    assert_null(f->kg);
    assert_int_equal(keygen_create(&f->kg, KEYGEN_UNIFORM, 1, 0), MC_OK);
    assert_int_equal(keygen_next(f->kg, &f->rng), 0);
}

static void test_keygen_refuses_bad_parameters(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(keygen_create(&f->kg, KEYGEN_UNIFORM, 0, 0), MC_EINVAL);
    assert_null(f->kg);
    assert_int_equal(keygen_create(&f->kg, KEYGEN_ZIPF, 100, 0), MC_EINVAL);
    assert_int_equal(keygen_create(&f->kg, KEYGEN_ZIPF, 100, -1), MC_EINVAL);
    assert_int_equal(keygen_create(&f->kg, KEYGEN_ZIPF, 100, KEYGEN_SKEW_MAX * 2), MC_EINVAL);
    assert_int_equal(keygen_create(&f->kg, KEYGEN_ZIPF, 100, NAN), MC_EINVAL);
    assert_int_equal(keygen_create(&f->kg, KEYGEN_UNIFORM, (1ull << 53) + 1, 0), MC_EINVAL);
    assert_null(f->kg);
}

static void test_keygen_same_seed_same_keys(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(keygen_create(&f->kg, KEYGEN_ZIPF, 1000000, 0.99), MC_OK);
    struct rng a, b, c;
    rng_init(&a, 99);
    rng_init(&b, 99);
    rng_init(&c, 100);
    int same_as_other_seed = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t ka = keygen_next(f->kg, &a), kb = keygen_next(f->kg, &b);
        assert_int_equal(ka, kb);
        same_as_other_seed += ka == keygen_next(f->kg, &c);
    }
    assert_true(same_as_other_seed < 200); /* key 0 is ~7%, so some matches */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keygen_zipf_099_over_1m_keys_matches_theory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_keygen_zipf_other_skews_match_theory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keygen_zipf_tail_is_reached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keygen_uniform_passes_chi_square, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keygen_uniform_large_n_stays_in_range, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_keygen_single_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keygen_refuses_bad_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keygen_same_seed_same_keys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
