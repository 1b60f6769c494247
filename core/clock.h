/*
 * clock.h: memcached's notion of time, as pure functions.
 *
 * The engine counts time in whole seconds relative to the process start
 * (mc_time_t), like memcached's rel_time_t. io/ reads the real clock once per
 * loop iteration and hands the value in; nothing in core/ reads a clock, so
 * tests drive time by hand.
 *
 * As in memcached, the start is set ITEM_UPDATE_INTERVAL + 2 seconds before
 * the real start, so "now" is never 0 or 1: 0 means "never expires" and 1
 * means "expired at the start".
 */
#ifndef CORECACHE_CORE_CLOCK_H
#define CORECACHE_CORE_CLOCK_H

#include <stdint.h>

typedef uint32_t mc_time_t;

/* Relative TTLs up to 30 days; larger client exptimes are unix timestamps. */
#define MC_REALTIME_MAXDELTA (60 * 60 * 24 * 30)
/* An item is moved to the LRU head at most once per this many seconds. */
#define MC_ITEM_UPDATE_INTERVAL 60

struct mc_clock {
    int64_t started; /* unix time of mc_time_t 0 */
};

/* Sets started so that mc_clock_now(clock, unix_now) == ITEM_UPDATE_INTERVAL + 2. */
void mc_clock_init(struct mc_clock *clock, int64_t unix_now);

/* Relative time of a unix timestamp (clamped at 0 below the start). */
mc_time_t mc_clock_now(const struct mc_clock *clock, int64_t unix_now);

/*
 * Converts a client's exptime to engine time, exactly as memcached's
 * realtime(EXPTIME_TO_POSITIVE_TIME(exptime)):
 *   0              -> 0 (never expires)
 *   negative       -> 1 (already expired)
 *   <= 30 days     -> now + exptime
 *   > 30 days      -> absolute unix time; at or before the start -> 1
 */
mc_time_t mc_clock_exptime(const struct mc_clock *clock, mc_time_t now, int64_t exptime);

/* Unix time of an engine time (for `stats`, meta `t` flags and the like). */
int64_t mc_clock_unix(const struct mc_clock *clock, mc_time_t t);

#endif
