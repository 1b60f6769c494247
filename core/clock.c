/*
 * clock.c: memcached's relative time, without reading a clock.
 *
 * mc_time_t counts seconds since a start that is placed
 * MC_ITEM_UPDATE_INTERVAL + 2 seconds before the real one, as memcached's
 * process_started is, so that the values 0 ("never") and 1 ("expired at the
 * start") are never a real "now". The conversion of client exptimes follows
 * memcached's realtime() and EXPTIME_TO_POSITIVE_TIME() exactly; see
 * clock.h for the table.
 */
#include "clock.h"

void mc_clock_init(struct mc_clock *clock, int64_t unix_now)
{
    clock->started = unix_now - MC_ITEM_UPDATE_INTERVAL - 2;
}

mc_time_t mc_clock_now(const struct mc_clock *clock, int64_t unix_now)
{
    int64_t rel = unix_now - clock->started;
    if (rel < 0)
        return 0;
    if (rel > UINT32_MAX)
        return UINT32_MAX;
    return (mc_time_t)rel;
}

mc_time_t mc_clock_exptime(const struct mc_clock *clock, mc_time_t now, int64_t exptime)
{
    if (exptime == 0)
        return 0;
    if (exptime < 0) /* EXPTIME_TO_POSITIVE_TIME: an absolute time in 1970 */
        exptime = MC_REALTIME_MAXDELTA + 1;
    if (exptime > MC_REALTIME_MAXDELTA) {
        if (exptime <= clock->started)
            return 1;
        int64_t rel = exptime - clock->started;
        return rel > UINT32_MAX ? UINT32_MAX : (mc_time_t)rel;
    }
    uint64_t rel = (uint64_t)now + (uint64_t)exptime;
    return rel > UINT32_MAX ? UINT32_MAX : (mc_time_t)rel;
}

int64_t mc_clock_unix(const struct mc_clock *clock, mc_time_t t)
{
    return clock->started + (int64_t)t;
}
