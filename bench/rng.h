/*
 * rng.h: a small, fast, seedable pseudo-random generator for the load
 * generator (the contract; see rng.c).
 *
 * Every worker thread owns one generator, so draws take no lock and a run
 * with a given --seed issues the same key sequence each time. The state is
 * a plain struct, exposed so that a worker embeds it and the hot draw is
 * inline; its fields are private to rng.c and rng_next().
 */
#ifndef CORECACHE_BENCH_RNG_H
#define CORECACHE_BENCH_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4]; /* xoshiro256** state; never all zero */
};

/* Seeds the generator; any seed (0 included) gives a valid, distinct stream. */
void rng_init(struct rng *rng, uint64_t seed);

/* The next 64 uniformly distributed bits (xoshiro256**). */
static inline uint64_t rng_next(struct rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* A uniform integer in [0, bound), without modulo bias. bound must be > 0. */
uint64_t rng_below(struct rng *rng, uint64_t bound);

/* A uniform double in [0, 1) with 53 random bits. */
static inline double rng_double(struct rng *rng)
{
    return (double)(rng_next(rng) >> 11) * 0x1.0p-53;
}

#endif
