/*
 * test_prom.c: one metric table rendered both ways, memcached's STAT lines
 * and Prometheus' text format; the memcached_exporter rows (values,
 * labels, sources that must exist); the histogram; and the structure of
 * everything rendered, checked by a small exposition-format checker with
 * promtool's naming rules (a counter ends in _total, nothing else does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "latency.h"
#include "metrics.h"
#include "prom.h"
#include "store.h"
#include "test_exposition.h"
#include "test_sink.h"

#define DEMO_METRIC(ACTION)                                                    \
    ACTION(get_hits, COUNTER, "keys found")                                    \
    ACTION(curr_items, GAUGE, "items now")                                     \
    ACTION(hash_power_level, LEVEL, "hash table power")                        \
    ACTION(rusage_user, USEC, "user CPU \\ time\nof the process")

struct demo_metrics {
    METRIC_STRUCT(DEMO_METRIC)
};
static const struct metric_desc demo_desc[] = {DEMO_METRIC(METRIC_DESC)};
#define DEMO_COUNT METRIC_COUNT(DEMO_METRIC)

static char *render_text(bool (*render)(struct sink *, void *), void *arg)
{
    struct test_sink ts;
    test_sink_init(&ts, 13); /* tiny blocks: every line crosses a grow */
    assert_true(render(&ts.sink, arg));
    char *text = test_sink_text(&ts);
    test_sink_fini(&ts);
    return text;
}

/* --- one table, both formats -------------------------------------------- */

static void test_prom_family_names_follow_type(void **state)
{
    (void)state;
    char name[64];
    assert_true(prom_family_name(name, sizeof(name), "corecache_", &demo_desc[0]));
    assert_string_equal(name, "corecache_get_hits_total");
    assert_true(prom_family_name(name, sizeof(name), "corecache_", &demo_desc[1]));
    assert_string_equal(name, "corecache_curr_items");
    assert_true(prom_family_name(name, sizeof(name), "corecache_", &demo_desc[2]));
    assert_string_equal(name, "corecache_hash_power_level");
    assert_true(prom_family_name(name, sizeof(name), "corecache_", &demo_desc[3]));
    assert_string_equal(name, "corecache_rusage_user_seconds_total");
    assert_false(prom_family_name(name, 10, "corecache_", &demo_desc[0]));
}

struct shards_arg {
    const struct metric_desc *desc;
    size_t n;
    const uint64_t *const *rows;
    unsigned nshards;
};

static bool render_shards(struct sink *out, void *arg)
{
    struct shards_arg *a = arg;
    return prom_render_shards(out, "corecache_", a->desc, a->n, a->rows, a->nshards);
}

/* Every entry of a table appears in the STAT lines and in the Prometheus
 * text, with the same value, for each shard. */
static void check_both_formats(const struct metric_desc *desc, size_t n, const uint64_t *const *rows,
                               unsigned nshards)
{
    struct shards_arg arg = {desc, n, rows, nshards};
    char *prom = render_text(render_shards, &arg);
    assert_int_equal(check_exposition(prom), n * nshards);
    for (unsigned s = 0; s < nshards; s++) {
        struct test_sink ts;
        test_sink_init(&ts, 9);
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "%u:", s);
        assert_true(metrics_render_stats(&ts.sink, prefix, desc, rows[s], n));
        char *stats = test_sink_text(&ts);
        for (size_t i = 0; i < n; i++) {
            char family[128], want[256], value[32];
            if (desc[i].type == METRIC_USEC)
                value[metrics_usec_format(rows[s][i], value)] = '\0';
            else
                value[metrics_u64toa(rows[s][i], value)] = '\0';
            snprintf(want, sizeof(want), "STAT %u:%s %s\r\n", s, desc[i].name, value);
            if (strstr(stats, want) == NULL)
                fail_msg("no '%s' in STAT lines", want);
            assert_true(prom_family_name(family, sizeof(family), "corecache_", &desc[i]));
            snprintf(want, sizeof(want), "\n%s{shard=\"%u\"} %s\n", family, s, value);
            if (strstr(prom, want) == NULL)
                fail_msg("no '%s' in Prometheus text", want + 1);
            snprintf(want, sizeof(want), "# TYPE %s %s\n", family,
                     desc[i].type == METRIC_COUNTER || desc[i].type == METRIC_USEC ? "counter" : "gauge");
            assert_non_null(strstr(prom, want));
        }
        free(stats);
        test_sink_fini(&ts);
    }
    free(prom);
}

static void test_prom_renders_every_metric_in_both_formats(void **state)
{
    (void)state;
    struct demo_metrics a = {.get_hits = 18446744073709551615ull, .curr_items = 7, .hash_power_level = 16,
                             .rusage_user = 3000042};
    struct demo_metrics b = {.get_hits = 1};
    const uint64_t *rows[] = {a.v, b.v};
    check_both_formats(demo_desc, DEMO_COUNT, rows, 2);

    /* the USEC entry reads the same way in both: seconds.microseconds */
    struct shards_arg arg = {demo_desc, DEMO_COUNT, rows, 1};
    char *prom = render_text(render_shards, &arg);
    assert_non_null(strstr(prom, "corecache_rusage_user_seconds_total{shard=\"0\"} 3.000042\n"));
    /* help text is escaped */
    assert_non_null(strstr(prom, "# HELP corecache_rusage_user_seconds_total user CPU \\\\ time\\nof the process\n"));
    free(prom);
}

static void test_prom_renders_store_tables_in_both_formats(void **state)
{
    (void)state;
    uint64_t *v0 = calloc(store_metric_count, sizeof(uint64_t));
    uint64_t *v1 = calloc(store_metric_count, sizeof(uint64_t));
    for (size_t i = 0; i < store_metric_count; i++) {
        v0[i] = i * 1000 + 1;
        v1[i] = i;
    }
    const uint64_t *rows[] = {v0, v1};
    check_both_formats(store_metric_desc, store_metric_count, rows, 2);
    free(v0);
    free(v1);
}

/* --- memcached_exporter's families --------------------------------------- */

#define FAKE_SERVER(ACTION)                                                                 \
    ACTION(uptime, GAUGE, "up")                                                            \
    ACTION(time, GAUGE, "now")                                                             \
    ACTION(rusage_user, USEC, "user")                                                      \
    ACTION(rusage_system, USEC, "system")                                                  \
    ACTION(max_connections, GAUGE, "-c")                                                   \
    ACTION(limit_maxbytes, GAUGE, "-m")                                                    \
    ACTION(accepting_conns, GAUGE, "accepting")                                            \
    ACTION(listen_disabled_num, COUNTER, "listen disabled")                                \
    ACTION(lru_crawler, GAUGE, "crawler on")                                               \
    ACTION(lru_crawler_sleep, GAUGE, "us per item")                                        \
    ACTION(lru_crawler_tocrawl, GAUGE, "per run")                                          \
    ACTION(lru_maintainer_thread, GAUGE, "maintainer")                                     \
    ACTION(hot_lru_pct, GAUGE, "hot pct")                                                  \
    ACTION(warm_lru_pct, GAUGE, "warm pct")                                                \
    ACTION(hot_max_factor, GAUGE, "hot factor")                                            \
    ACTION(warm_max_factor, GAUGE, "warm factor")                                          \
    ACTION(curr_connections, GAUGE, "conns")                                               \
    ACTION(total_connections, COUNTER, "conns ever")                                       \
    ACTION(rejected_connections, COUNTER, "rejected")                                      \
    ACTION(conn_yields, COUNTER, "yields")                                                 \
    ACTION(bytes_read, COUNTER, "read")                                                    \
    ACTION(bytes_written, COUNTER, "written")                                              \
    ACTION(cmd_flush, COUNTER, "flushes")
struct fake_server {
    METRIC_STRUCT(FAKE_SERVER)
};
static const struct metric_desc fake_server_desc[] = {FAKE_SERVER(METRIC_DESC)};

struct exporter_fixture {
    struct fake_server server;
    uint64_t *store;
    uint64_t *classes; /* STORE_CLASSES_MAX x store_class_metric_count */
    unsigned ids[2];
    struct prom_table tables[2];
    struct prom_classes cls;
};

static size_t idx(const struct metric_desc *desc, size_t n, const char *name)
{
    size_t i = metrics_find(desc, n, name);
    if (i == n)
        fail_msg("no metric %s", name);
    return i;
}

static int exporter_setup(void **state)
{
    struct exporter_fixture *f = calloc(1, sizeof(*f));
    f->store = calloc(store_metric_count, sizeof(uint64_t));
    f->classes = calloc((size_t)STORE_CLASSES_MAX * store_class_metric_count, sizeof(uint64_t));
    f->server.uptime = 42;
    f->server.rusage_user = 1500000;
    f->server.cmd_flush = 2;
    size_t n = store_metric_count;
    f->store[idx(store_metric_desc, n, "get_hits")] = 90;
    f->store[idx(store_metric_desc, n, "get_misses")] = 10;
    f->store[idx(store_metric_desc, n, "cmd_set")] = 100;
    f->store[idx(store_metric_desc, n, "cas_hits")] = 3;
    f->store[idx(store_metric_desc, n, "cas_misses")] = 2;
    f->store[idx(store_metric_desc, n, "cas_badval")] = 1;
    f->store[idx(store_metric_desc, n, "evictions")] = 7;
    f->store[idx(store_metric_desc, n, "curr_items")] = 55;
    size_t c = store_class_metric_count;
    f->classes[5 * c + idx(store_class_metric_desc, c, "number")] = 11;
    f->classes[5 * c + idx(store_class_metric_desc, c, "cmd_set")] = 20;
    f->classes[5 * c + idx(store_class_metric_desc, c, "cas_hits")] = 4;
    f->classes[9 * c + idx(store_class_metric_desc, c, "chunk_size")] = 480;
    f->ids[0] = 5;
    f->ids[1] = 9;
    f->tables[0] = (struct prom_table){fake_server_desc, METRIC_COUNT(FAKE_SERVER), f->server.v};
    f->tables[1] = (struct prom_table){store_metric_desc, store_metric_count, f->store};
    f->cls = (struct prom_classes){store_class_metric_desc, c, f->classes, f->ids, 2};
    *state = f;
    return 0;
}

static int exporter_teardown(void **state)
{
    struct exporter_fixture *f = *state;
    free(f->store);
    free(f->classes);
    free(f);
    return 0;
}

static bool render_exporter(struct sink *out, void *arg)
{
    struct exporter_fixture *f = arg;
    return prom_render_exporter(out, f->tables, 2, &f->cls, "1.6.18-x\"y");
}

static void test_prom_exporter_series_and_values(void **state)
{
    struct exporter_fixture *f = *state;
    char *text = render_text(render_exporter, f);
    check_exposition(text);
    static const char *const want[] = {
        "\nmemcached_up 1\n",
        "\nmemcached_uptime_seconds 42\n",
        "\nmemcached_version{version=\"1.6.18-x\\\"y\"} 1\n",
        "\nmemcached_commands_total{command=\"get\",status=\"hit\"} 90\n",
        "\nmemcached_commands_total{command=\"get\",status=\"miss\"} 10\n",
        "\nmemcached_commands_total{command=\"cas\",status=\"badval\"} 1\n",
        "\nmemcached_commands_total{command=\"flush\",status=\"hit\"} 2\n",
        /* cmd_set less the cas commands, as the exporter computes it */
        "\nmemcached_commands_total{command=\"set\",status=\"hit\"} 94\n",
        "\nmemcached_process_user_cpu_seconds_total 1.500000\n",
        "\nmemcached_items_evicted_total 7\n",
        "\nmemcached_current_items 55\n",
        "\nmemcached_slab_current_items{slab=\"5\"} 11\n",
        "\nmemcached_slab_current_items{slab=\"9\"} 0\n",
        "\nmemcached_slab_commands_total{slab=\"5\",command=\"set\",status=\"hit\"} 16\n",
        "\nmemcached_slab_chunk_size_bytes{slab=\"9\"} 480\n",
        "# TYPE memcached_commands_total counter\n",
        "# TYPE memcached_slab_commands_total counter\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (strstr(text, want[i]) == NULL)
            fail_msg("no %s in\n%s", want[i], text);
    }
    /* only the classes asked for */
    assert_null(strstr(text, "slab=\"1\""));
    free(text);
}

static void test_prom_exporter_slab_families_without_classes(void **state)
{
    struct exporter_fixture *f = *state;
    f->cls.nids = 0;
    char *text = render_text(render_exporter, f);
    check_exposition(text);
    /* described, no samples */
    assert_non_null(strstr(text, "# TYPE memcached_slab_current_items gauge\n"));
    assert_null(strstr(text, "memcached_slab_current_items{"));
    free(text);
}

static void test_prom_exporter_check_finds_missing_sources(void **state)
{
    struct exporter_fixture *f = *state;
    const char *missing = NULL;
    /* the fake server table lacks total_items (a shard table's) and others */
    struct prom_table only_store = {store_metric_desc, store_metric_count, NULL};
    assert_false(prom_exporter_check(&only_store, 1, store_class_metric_desc, store_class_metric_count,
                                     &missing));
    assert_non_null(missing);
    assert_false(prom_exporter_check(f->tables, 2, store_class_metric_desc, 3, &missing));
    assert_true(prom_exporter_check(f->tables, 2, store_class_metric_desc, store_class_metric_count, &missing));
}

static void test_prom_exporter_fails_when_sink_full(void **state)
{
    struct exporter_fixture *f = *state;
    struct test_sink ts;
    test_sink_init(&ts, 64);
    ts.limit = 500;
    assert_false(prom_render_exporter(&ts.sink, f->tables, 2, &f->cls, "v"));
    test_sink_fini(&ts);
}

/* --- the histogram ------------------------------------------------------- */

static bool render_latency(struct sink *out, void *arg)
{
    const uint64_t *const *rows = arg;
    return prom_render_latency(out, "corecache_request_duration_seconds", "service time", rows, 2);
}

static void test_prom_latency_histogram(void **state)
{
    (void)state;
    struct latency a, b;
    latency_reset(&a);
    latency_reset(&b);
    latency_record(&a, 100);       /* le 1.28e-07 */
    latency_record(&a, 3000);      /* le 4.096e-06 */
    latency_record(&a, 3000);
    latency_record(&a, 2000000000ull); /* 2 s: only +Inf */
    const uint64_t *rows[] = {a.v, b.v};
    char *text = render_text(render_latency, rows);
    assert_int_equal(check_exposition(text), 2 * (LATENCY_BUCKETS + 3));
    static const char *const want[] = {
        "# TYPE corecache_request_duration_seconds histogram\n",
        "corecache_request_duration_seconds_bucket{shard=\"0\",le=\"1.28e-07\"} 1\n",
        "corecache_request_duration_seconds_bucket{shard=\"0\",le=\"2.048e-06\"} 1\n",
        "corecache_request_duration_seconds_bucket{shard=\"0\",le=\"4.096e-06\"} 3\n",
        "corecache_request_duration_seconds_bucket{shard=\"0\",le=\"1.073741824\"} 3\n",
        "corecache_request_duration_seconds_bucket{shard=\"0\",le=\"+Inf\"} 4\n",
        "corecache_request_duration_seconds_sum{shard=\"0\"} 2.000006100\n",
        "corecache_request_duration_seconds_count{shard=\"0\"} 4\n",
        "corecache_request_duration_seconds_bucket{shard=\"1\",le=\"+Inf\"} 0\n",
        "corecache_request_duration_seconds_count{shard=\"1\"} 0\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (strstr(text, want[i]) == NULL)
            fail_msg("no %s in\n%s", want[i], text);
    }
    /* cumulative counts never decrease */
    uint64_t last = 0;
    for (const char *p = strstr(text, "_bucket{shard=\"0\""); p != NULL && strstr(p, "shard=\"0\"") == p + 8;
         p = strstr(p + 1, "_bucket{shard=\"")) {
        const char *v = strchr(p, ' ') + 1;
        uint64_t count = strtoull(v, NULL, 10);
        assert_true(count >= last);
        last = count;
    }
    assert_int_equal(last, 4);
    free(text);
}

/* --- listings ------------------------------------------------------------ */

static void test_prom_describe_lists_every_entry(void **state)
{
    (void)state;
    struct test_sink ts;
    test_sink_init(&ts, 32);
    assert_true(prom_describe_table(&ts.sink, "demo", "", "corecache_", demo_desc, DEMO_COUNT));
    assert_true(prom_describe_table(&ts.sink, "items", "items:<class>:", NULL, demo_desc, 1));
    assert_true(prom_describe_exporter(&ts.sink));
    char *text = test_sink_text(&ts);
    assert_non_null(strstr(text, "demo\tcounter\tget_hits\tcorecache_get_hits_total{shard}\tkeys found\n"));
    assert_non_null(strstr(text, "demo\tusec\trusage_user\tcorecache_rusage_user_seconds_total{shard}\t"));
    assert_non_null(strstr(text, "items\tcounter\titems:<class>:get_hits\t-\tkeys found\n"));
    assert_non_null(strstr(text, "exporter\tcounter\tget_hits\tmemcached_commands_total{command=\"get\",status=\"hit\"}\t"));
    assert_non_null(strstr(text, "exporter\tgauge\tnumber\tmemcached_slab_current_items{slab}\t"));
    /* every line has five columns */
    for (char *line = text; *line != '\0';) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        int tabs = 0;
        for (char *c = line; c < nl; c++)
            tabs += *c == '\t';
        assert_int_equal(tabs, 4);
        line = nl + 1;
    }
    free(text);
    test_sink_fini(&ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prom_family_names_follow_type),
        cmocka_unit_test(test_prom_renders_every_metric_in_both_formats),
        cmocka_unit_test(test_prom_renders_store_tables_in_both_formats),
        cmocka_unit_test_setup_teardown(test_prom_exporter_series_and_values, exporter_setup, exporter_teardown),
        cmocka_unit_test_setup_teardown(test_prom_exporter_slab_families_without_classes, exporter_setup,
                                        exporter_teardown),
        cmocka_unit_test_setup_teardown(test_prom_exporter_check_finds_missing_sources, exporter_setup,
                                        exporter_teardown),
        cmocka_unit_test_setup_teardown(test_prom_exporter_fails_when_sink_full, exporter_setup,
                                        exporter_teardown),
        cmocka_unit_test(test_prom_latency_histogram),
        cmocka_unit_test(test_prom_describe_lists_every_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
