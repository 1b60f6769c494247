/*
 * test_scrape.c: the metrics endpoint's tables as the server has them:
 * every memcached_exporter row names a metric that exists, the whole
 * exposition rendered from the real tables is well formed, and
 * --describe-metrics lists every metric of every table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../core/test_exposition.h"
#include "../core/test_sink.h"
#include "facts.h"
#include "latency.h"
#include "prom.h"
#include "scrape.h"
#include "shard.h"
#include "store.h"

static void test_scrape_exporter_rows_name_existing_metrics(void **state)
{
    (void)state;
    struct prom_table tables[8];
    size_t n = scrape_tables(tables, 8);
    assert_int_equal(n, 4);
    const char *missing = NULL;
    if (!prom_exporter_check(tables, n, store_class_metric_desc, store_class_metric_count, &missing))
        fail_msg("exporter row source or family at fault: %s", missing);
}

/* The exposition as scrape.c composes it, from the real tables with
 * non-zero values in every slot. */
static void test_scrape_exposition_from_real_tables_is_well_formed(void **state)
{
    (void)state;
    struct prom_table tables[4];
    scrape_tables(tables, 4); /* the fourth, the LRU settings, has its values */
    uint64_t facts[FACTS_COUNT], shard[SHARD_METRIC_COUNT];
    uint64_t *store = calloc(store_metric_count, sizeof(uint64_t));
    uint64_t *classes = calloc((size_t)STORE_CLASSES_MAX * store_class_metric_count, sizeof(uint64_t));
    for (size_t i = 0; i < FACTS_COUNT; i++)
        facts[i] = 1000 + i;
    for (size_t i = 0; i < SHARD_METRIC_COUNT; i++)
        shard[i] = 2000 + i;
    for (size_t i = 0; i < store_metric_count; i++)
        store[i] = 3000 + i;
    for (size_t i = 0; i < (size_t)STORE_CLASSES_MAX * store_class_metric_count; i++)
        classes[i] = i;
    tables[0].values = facts;
    tables[1].values = shard;
    tables[2].values = store;
    unsigned ids[] = {1, 2, 63};
    struct prom_classes cls = {store_class_metric_desc, store_class_metric_count, classes, ids, 3};
    struct latency h;
    latency_reset(&h);
    latency_record(&h, 5000);
    const uint64_t *shard_rows[] = {shard, shard}, *store_rows[] = {store, store}, *lat[] = {h.v, h.v};

    struct test_sink ts;
    test_sink_init(&ts, 4096);
    assert_true(prom_render_exporter(&ts.sink, tables, 4, &cls, "1.6.18-corecache-test"));
    assert_true(prom_render_shards(&ts.sink, "corecache_", shard_metric_desc, SHARD_METRIC_COUNT, shard_rows, 2));
    assert_true(prom_render_shards(&ts.sink, "corecache_", store_metric_desc, store_metric_count, store_rows, 2));
    assert_true(prom_render_latency(&ts.sink, "corecache_request_duration_seconds", "h", lat, 2));
    char *text = test_sink_text(&ts);
    size_t samples = check_exposition(text);
    assert_true(samples > 2 * (SHARD_METRIC_COUNT + store_metric_count));
    /* the series operators rely on */
    static const char *const want[] = {
        "\nmemcached_up 1\n",
        "\nmemcached_lru_crawler_enabled 1\n", /* io/facts.h's LRU settings */
        "\nmemcached_lru_crawler_sleep 50\n",
        "\nmemcached_uptime_seconds 1001\n",
        "\nmemcached_current_connections 2000\n",
        "\nmemcached_slab_current_items{slab=\"63\"} ",
        "\ncorecache_requests_total{shard=\"1\"} ",
        "\ncorecache_forwarded_out_total{shard=\"0\"} ",
        "\ncorecache_forwarded_in_total{shard=\"0\"} ",
        "\ncorecache_curr_items{shard=\"0\"} ",
        "\ncorecache_bytes{shard=\"0\"} ",
        "\ncorecache_evictions_total{shard=\"0\"} ",
        "\ncorecache_uring_submits_total{shard=\"0\"} ",
        "\ncorecache_uring_completions_total{shard=\"0\"} ",
        "\ncorecache_curr_connections{shard=\"0\"} ",
        "\ncorecache_request_duration_seconds_count{shard=\"1\"} 1\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (strstr(text, want[i]) == NULL)
            fail_msg("no %s", want[i]);
    }
    free(text);
    test_sink_fini(&ts);
    free(store);
    free(classes);
}

static void expect_listed(const char *text, const char *source, const struct metric_desc *desc, size_t n,
                          const char *prefix)
{
    for (size_t i = 0; i < n; i++) {
        char want[256];
        snprintf(want, sizeof(want), "\n%s\t%s\t%s%s\t", source, metrics_type_name(desc[i].type), prefix,
                 desc[i].name);
        if (strstr(text, want) == NULL)
            fail_msg("--describe-metrics lacks %s", want + 1);
    }
}

static void test_scrape_describe_lists_every_metric(void **state)
{
    (void)state;
    struct test_sink ts;
    test_sink_init(&ts, 256);
    assert_true(scrape_describe(&ts.sink));
    char *text = test_sink_text(&ts);
    size_t first_items = store_class_metric_items_first;
    expect_listed(text, "server", facts_desc, FACTS_COUNT, "");
    expect_listed(text, "shard", shard_metric_desc, SHARD_METRIC_COUNT, "");
    expect_listed(text, "store", store_metric_desc, store_metric_count, "");
    expect_listed(text, "slabs", store_class_metric_desc, first_items, "<class>:");
    expect_listed(text, "items", store_class_metric_desc + first_items, store_class_metric_count - first_items,
                  "items:<class>:");
    assert_non_null(strstr(text, "\nshard\thistogram\t-\tcorecache_request_duration_seconds{shard,le}\t"));
    assert_non_null(strstr(text, "\nshard\tratio\t<shard>:hit_ratio\t-\t"));
    assert_non_null(strstr(text, "\nshard\tcounter\trequests\tcorecache_requests_total{shard}\t"));
    assert_non_null(strstr(text, "\nexporter\tgauge\t1\tmemcached_up\t"));
    free(text);
    test_sink_fini(&ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrape_exporter_rows_name_existing_metrics),
        cmocka_unit_test(test_scrape_exposition_from_real_tables_is_well_formed),
        cmocka_unit_test(test_scrape_describe_lists_every_metric),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
