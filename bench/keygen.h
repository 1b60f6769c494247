/*
 * keygen.h: which key a request uses, uniform or Zipf (the contract; see
 * keygen.c).
 *
 * Keys are numbered 0 .. n-1 (the load generator spells key i as
 * "<prefix><i>"). Under Zipf with skew s, key i is drawn with probability
 * (i+1)^-s / H(n,s), H(n,s) = sum_{k=1..n} k^-s: key 0 is the hottest.
 * A generator is immutable after creation and holds no random state (the
 * caller's rng is passed in), so one may be shared by threads, though each
 * worker keeps its own next to its rng.
 */
#ifndef CORECACHE_BENCH_KEYGEN_H
#define CORECACHE_BENCH_KEYGEN_H

#include <stdint.h>

#include "rng.h"
#include "status.h"

enum keygen_dist {
    KEYGEN_UNIFORM,
    KEYGEN_ZIPF,
};

/* Largest Zipf skew accepted: beyond it almost every draw is key 0. */
#define KEYGEN_SKEW_MAX 10.0

struct keygen; /* opaque */

/*
 * Creates a generator over n keys (1 <= n <= 2^53, so that ranks are exact
 * in a double). skew is used by KEYGEN_ZIPF only and must be in
 * (0, KEYGEN_SKEW_MAX]. Returns MC_OK and sets *out; MC_EINVAL for a bad
 * n or skew; MC_ENOMEM.
 */
MC_MUST_CHECK enum mc_status keygen_create(struct keygen **out, enum keygen_dist dist, uint64_t n,
                                           double skew);

/* Frees *keygen and sets it to NULL; a NULL *keygen is ignored. */
void keygen_destroy(struct keygen **keygen);

/* The next key number, in [0, n). O(1); Zipf draws loop a few times at most
 * on average (rejection-inversion accepts over 90% of first tries). */
uint64_t keygen_next(const struct keygen *keygen, struct rng *rng);

#endif
