/*
 * test_metrics.c: X-macro metric tables: struct layout, sums, resets and
 * memcached's STAT line format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"
#include "test_sink.h"

#define DEMO_METRIC(ACTION)                                                    \
    ACTION(get_hits, COUNTER, "hits")                                          \
    ACTION(curr_items, GAUGE, "items now")                                     \
    ACTION(evictions, COUNTER, "evicted items")                                \
    ACTION(hash_power_level, LEVEL, "hash table power")

struct demo_metrics {
    METRIC_STRUCT(DEMO_METRIC)
};
static const struct metric_desc demo_desc[] = {DEMO_METRIC(METRIC_DESC)};

static void test_metrics_struct_overlays_array(void **state)
{
    struct demo_metrics m = {0};
    assert_int_equal(METRIC_COUNT(DEMO_METRIC), 4);
    assert_int_equal(sizeof(m.v) / sizeof(m.v[0]), 4);
    m.curr_items = 7;
    assert_int_equal(m.v[1], 7);
    assert_string_equal(demo_desc[2].name, "evictions");
    assert_int_equal(demo_desc[1].type, METRIC_GAUGE);
}

static void test_metrics_sum_and_reset(void **state)
{
    struct demo_metrics a = {.get_hits = 1, .curr_items = 2, .evictions = 3, .hash_power_level = 16};
    struct demo_metrics b = {.get_hits = 10, .curr_items = 20, .evictions = 30, .hash_power_level = 17};
    metrics_sum(a.v, b.v, demo_desc, METRIC_COUNT(DEMO_METRIC));
    assert_int_equal(a.get_hits, 11);
    assert_int_equal(a.curr_items, 22);
    assert_int_equal(a.hash_power_level, 17); /* levels: the largest shard's */
    metrics_sum(a.v, b.v, demo_desc, METRIC_COUNT(DEMO_METRIC));
    assert_int_equal(a.hash_power_level, 17);
    metrics_reset(a.v, demo_desc, METRIC_COUNT(DEMO_METRIC));
    assert_int_equal(a.get_hits, 0);
    assert_int_equal(a.curr_items, 42); /* gauges survive stats reset */
    assert_int_equal(a.evictions, 0);
    assert_int_equal(a.hash_power_level, 17);
}

static void test_metrics_render_stat_lines(void **state)
{
    struct test_sink ts;
    test_sink_init(&ts, 7); /* tiny blocks: rendering must cross grows */
    struct demo_metrics m = {.get_hits = 18446744073709551615ULL, .curr_items = 0, .evictions = 42};
    assert_true(metrics_render_stats(&ts.sink, "items:1:", demo_desc, m.v, 3));
    assert_true(metrics_stat_str(&ts.sink, "version", "1.6.18"));
    assert_true(metrics_stat_u64(&ts.sink, "pid", 123));
    char *text = test_sink_text(&ts);
    assert_string_equal(text, "STAT items:1:get_hits 18446744073709551615\r\n"
                              "STAT items:1:curr_items 0\r\n"
                              "STAT items:1:evictions 42\r\n"
                              "STAT version 1.6.18\r\n"
                              "STAT pid 123\r\n");
    free(text);
    test_sink_fini(&ts);
}

static void test_metrics_render_fails_when_sink_full(void **state)
{
    struct test_sink ts;
    test_sink_init(&ts, 64);
    ts.limit = 30; /* refuse to grow beyond 30 bytes */
    struct demo_metrics m = {0};
    assert_false(metrics_render_stats(&ts.sink, "", demo_desc, m.v, 4));
    test_sink_fini(&ts);
}

static void test_metrics_u64toa_every_length(void **state)
{
    char buf[32], want[32];
    uint64_t v = 0;
    /* 0, then 9, 10, 99, 100, ... around every power of ten, and the max */
    for (int len = 1; len <= 20; len++) {
        uint64_t p10 = 1;
        for (int i = 1; i < len; i++)
            p10 *= 10;
        for (int64_t d = -1; d <= 1; d++) {
            v = p10 + (uint64_t)d;
            size_t n = metrics_u64toa(v, buf);
            buf[n] = '\0';
            snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
            assert_string_equal(buf, want);
        }
    }
    size_t n = metrics_u64toa(UINT64_MAX, buf);
    buf[n] = '\0';
    assert_string_equal(buf, "18446744073709551615");
    n = metrics_u64toa(0, buf);
    assert_int_equal(n, 1);
    assert_int_equal(buf[0], '0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_struct_overlays_array),
        cmocka_unit_test(test_metrics_sum_and_reset),
        cmocka_unit_test(test_metrics_render_stat_lines),
        cmocka_unit_test(test_metrics_render_fails_when_sink_full),
        cmocka_unit_test(test_metrics_u64toa_every_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
