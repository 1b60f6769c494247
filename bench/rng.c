/*
 * rng.c: seeding and bounded draws for xoshiro256** (rng.h).
 *
 * xoshiro256** (Blackman and Vigna, "Scrambled linear pseudorandom number
 * generators", 2018) passes the usual statistical batteries, has a 2^256-1
 * period and costs a few cycles a draw, which matters because the load
 * generator draws a key, an operation and a value size per request. Seeds
 * are expanded with splitmix64, as its authors recommend, so that nearby
 * seeds (thread 0, 1, 2 ...) give unrelated streams and the state is never
 * all zero.
 *
 * rng_below() uses Lemire's multiply-and-reject method ("Fast random integer
 * generation in an interval", 2019): one 64x64->128 multiply, and a division
 * only on the rare path that may need a rejection.
 */
#include "rng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rng_init(struct rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
    /* splitmix64 is a bijection of a counter, so four consecutive outputs
     * cannot all be zero; no fix-up is needed. */
}

uint64_t rng_below(struct rng *rng, uint64_t bound)
{
    unsigned __int128 m = (unsigned __int128)rng_next(rng) * bound;
    uint64_t low = (uint64_t)m;
    if (low < bound) {
        /* (2^64 - bound) mod bound: the count of low words that would make
         * some results more likely than others. */
        uint64_t threshold = -bound % bound;
        while (low < threshold) {
            m = (unsigned __int128)rng_next(rng) * bound;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}
