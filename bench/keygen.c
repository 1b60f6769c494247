/*
 * keygen.c: uniform and Zipf key draws (keygen.h).
 *
 * Uniform draws are rng_below(n).
 *
 * Zipf draws use rejection-inversion, W. Hormann and G. Derflinger,
 * "Rejection-inversion to generate variates from monotone discrete
 * distributions", ACM TOMACS 6(3), 1996 (the method Apache Commons RNG's
 * RejectionInversionZipfSampler also implements). It needs no table and
 * O(1) setup, so 1M or 1G keys cost the same, and it is exact for any n and
 * any skew s > 0, s = 1 included.
 *
 * The idea: let h(x) = x^-s, a decreasing hat over the probabilities
 * p(k) ~ k^-s, and H(x) an antiderivative of h:
 *
 *     H(x) = (x^(1-s) - 1) / (1-s)        (s != 1)
 *     H(x) = log(x)                       (s == 1, the limit)
 *
 * The area under h over [k - 1/2, k + 1/2] is at least h(k), because h is
 * convex. Draw u uniformly in (H(1.5) - h(1), H(n + 0.5)], invert x =
 * H^-1(u), round to k. Accept k when u falls in the part of k's strip that
 * has area exactly h(k): u >= H(k + 1/2) - h(k). The first bucket is
 * stretched (its lower end is H(1.5) - h(1)) so k = 1 is always accepted.
 * A cheap pre-test, k - x <= T with T = 2 - H^-1(H(2.5) - h(2)), accepts
 * most draws without evaluating H again (the paper's "squeeze").
 *
 * H and H^-1 are written with expm1/log1p around (1-s)log(x) so that they
 * stay accurate as s approaches 1 instead of dividing 0 by 0:
 *
 *     H(x)    = log(x) * expm1(t) / t,      t = (1-s) log(x)
 *     H^-1(y) = exp(y * log1p(t) / t),      t = (1-s) y
 *
 * with expm1(t)/t and log1p(t)/t replaced by their Taylor series near 0.
 */
#include "keygen.h"

#include <math.h>
#include <stdlib.h>

struct keygen {
    enum keygen_dist dist;
    uint64_t n;
    double skew;
    double h_low;   /* H(1.5) - h(1): lower end of the u interval */
    double h_high;  /* H(n + 0.5): upper end */
    double squeeze; /* T: k - x <= T accepts at once */
};

/* expm1(t) / t, accurate near t = 0. */
static double expm1_over(double t)
{
    if (fabs(t) > 1e-8)
        return expm1(t) / t;
    return 1.0 + t * 0.5 * (1.0 + t / 3.0 * (1.0 + t * 0.25));
}

/* log1p(t) / t, accurate near t = 0. */
static double log1p_over(double t)
{
    if (fabs(t) > 1e-8)
        return log1p(t) / t;
    return 1.0 - t * (0.5 - t * (1.0 / 3.0 - t * 0.25));
}

static double zipf_h(const struct keygen *kg, double x)
{
    return exp(-kg->skew * log(x));
}

static double zipf_big_h(const struct keygen *kg, double x)
{
    double log_x = log(x);
    return expm1_over((1.0 - kg->skew) * log_x) * log_x;
}

static double zipf_big_h_inverse(const struct keygen *kg, double y)
{
    double t = y * (1.0 - kg->skew);
    if (t < -1.0)
        t = -1.0; /* rounding at the far end; H^-1 is then n + 0.5 */
    return exp(log1p_over(t) * y);
}

enum mc_status keygen_create(struct keygen **out, enum keygen_dist dist, uint64_t n, double skew)
{
    *out = NULL;
    if (n == 0 || n > (1ull << 53))
        return MC_EINVAL;
    if (dist == KEYGEN_ZIPF && !(skew > 0.0 && skew <= KEYGEN_SKEW_MAX))
        return MC_EINVAL;
    if (dist != KEYGEN_UNIFORM && dist != KEYGEN_ZIPF)
        return MC_EINVAL;
    struct keygen *kg = calloc(1, sizeof(*kg));
    if (kg == NULL)
        return MC_ENOMEM;
    kg->dist = dist;
    kg->n = n;
    kg->skew = skew;
    if (dist == KEYGEN_ZIPF) {
        kg->h_low = zipf_big_h(kg, 1.5) - 1.0;
        kg->h_high = zipf_big_h(kg, (double)n + 0.5);
        kg->squeeze = 2.0 - zipf_big_h_inverse(kg, zipf_big_h(kg, 2.5) - zipf_h(kg, 2.0));
    }
    *out = kg;
    return MC_OK;
}

void keygen_destroy(struct keygen **keygen)
{
    free(*keygen);
    *keygen = NULL;
}

static uint64_t zipf_next(const struct keygen *kg, struct rng *rng)
{
    for (;;) {
        /* u in (h_low, h_high]: rng_double() is in [0, 1). */
        double u = kg->h_high + rng_double(rng) * (kg->h_low - kg->h_high);
        double x = zipf_big_h_inverse(kg, u);
        double rounded = floor(x + 0.5);
        uint64_t k;
        if (rounded < 1.0)
            k = 1;
        else if (rounded > (double)kg->n)
            k = kg->n;
        else
            k = (uint64_t)rounded;
        if ((double)k - x <= kg->squeeze || u >= zipf_big_h(kg, (double)k + 0.5) - zipf_h(kg, (double)k))
            return k - 1; /* rank k is key k-1 */
    }
}

uint64_t keygen_next(const struct keygen *keygen, struct rng *rng)
{
    if (keygen->dist == KEYGEN_ZIPF)
        return zipf_next(keygen, rng);
    return rng_below(rng, keygen->n);
}
