/*
 * test_clock.c: memcached's exptime rules (realtime()), with a hand-driven
 * clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "clock.h"

#define T0 1700000000 /* the unix time at which the "process" started */

static void test_clock_now_starts_past_update_interval(void **state)
{
    struct mc_clock clock;
    mc_clock_init(&clock, T0);
    assert_int_equal(mc_clock_now(&clock, T0), MC_ITEM_UPDATE_INTERVAL + 2);
    assert_int_equal(mc_clock_now(&clock, T0 + 10), MC_ITEM_UPDATE_INTERVAL + 12);
    assert_int_equal(mc_clock_unix(&clock, mc_clock_now(&clock, T0 + 10)), T0 + 10);
}

static void test_clock_exptime_zero_never_expires(void **state)
{
    struct mc_clock clock;
    mc_clock_init(&clock, T0);
    assert_int_equal(mc_clock_exptime(&clock, 100, 0), 0);
}

static void test_clock_exptime_negative_is_expired(void **state)
{
    struct mc_clock clock;
    mc_clock_init(&clock, T0);
    assert_int_equal(mc_clock_exptime(&clock, 100, -1), 1);
    assert_int_equal(mc_clock_exptime(&clock, 100, INT32_MIN), 1);
}

static void test_clock_exptime_relative_up_to_30_days(void **state)
{
    struct mc_clock clock;
    mc_clock_init(&clock, T0);
    mc_time_t now = mc_clock_now(&clock, T0 + 5);
    assert_int_equal(mc_clock_exptime(&clock, now, 10), now + 10);
    assert_int_equal(mc_clock_exptime(&clock, now, MC_REALTIME_MAXDELTA),
                     now + MC_REALTIME_MAXDELTA);
}

static void test_clock_exptime_absolute_beyond_30_days(void **state)
{
    struct mc_clock clock;
    mc_clock_init(&clock, T0);
    mc_time_t now = mc_clock_now(&clock, T0 + 5);
    /* an absolute time one minute from now */
    assert_int_equal(mc_clock_exptime(&clock, now, T0 + 65), now + 60);
    /* an absolute time before the start: expired */
    assert_int_equal(mc_clock_exptime(&clock, now, T0 - 1000), 1);
    /* the first absolute value is treated as a timestamp (1970): expired */
    assert_int_equal(mc_clock_exptime(&clock, now, MC_REALTIME_MAXDELTA + 1), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_now_starts_past_update_interval),
        cmocka_unit_test(test_clock_exptime_zero_never_expires),
        cmocka_unit_test(test_clock_exptime_negative_is_expired),
        cmocka_unit_test(test_clock_exptime_relative_up_to_30_days),
        cmocka_unit_test(test_clock_exptime_absolute_beyond_30_days),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
