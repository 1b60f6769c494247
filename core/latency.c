/*
 * latency.c: the slow half of the service-time histogram (latency.h).
 *
 * Recording is inline in the header: one increment of the count, one add
 * to the sum and one increment of a bucket found with a count-leading-zeros
 * instruction, so measuring every request costs a clock read and a few
 * instructions. Power-of-two buckets make the relative error at most a
 * factor of two, which is enough to see where a shard's service time sits
 * and when it moves; Prometheus' histogram_quantile interpolates within a
 * bucket.
 */
#include "latency.h"

#include <string.h>

void latency_sum(uint64_t *acc, const uint64_t *add)
{
    for (unsigned i = 0; i < LATENCY_VALUES; i++)
        acc[i] += add[i];
}

void latency_reset(struct latency *h)
{
    memset(h, 0, sizeof(*h));
}
