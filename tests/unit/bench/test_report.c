/*
 * test_report.c: the text and JSON reports of a hand-made result: every
 * field present, undefined numbers as null (never NaN), the open-loop send
 * lag only for open loops, the errors broken down, strings escaped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../core/test_sink.h"
#include "report.h"

struct fixture {
    struct opts opts;
    struct load_result result;
    struct test_sink out;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    opts_defaults(&f->opts);
    f->result.latency = hist_create();
    f->result.send_lag = hist_create();
    test_sink_init(&f->out, 128);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    load_result_fini(&f->result);
    test_sink_fini(&f->out);
    free(f);
    return 0;
}

static char *render_json(struct fixture *f)
{
    test_sink_clear(&f->out);
    assert_true(report_json(&f->out.sink, &f->opts, &f->result));
    char *text = test_sink_text(&f->out);
    assert_null(strstr(text, "nan"));
    assert_null(strstr(text, "inf"));
    assert_true(text[0] == '{' && strcmp(text + strlen(text) - 2, "}\n") == 0);
    return text;
}

static void assert_has(const char *text, const char *fragment)
{
    if (strstr(text, fragment) == NULL)
        fail_msg("'%s' not in:\n%s", fragment, text);
}

static void test_report_json_of_a_clean_run(void **state)
{
    struct fixture *f = *state;
    f->result.seconds = 2.0;
    f->result.metrics.requests = 200;
    f->result.metrics.gets = 180;
    f->result.metrics.sets = 20;
    f->result.metrics.get_keys = 180;
    f->result.metrics.hits = 90;
    for (int i = 1; i <= 200; i++)
        hist_record(f->result.latency, (uint64_t)i * 1000);
    char *text = render_json(f);
    assert_has(text, "\"ops_per_sec\": 100.000");
    assert_has(text, "\"requests\": 200");
    assert_has(text, "\"hit_ratio\": 0.500000");
    assert_has(text, "\"p50\": 100.");
    assert_has(text, "\"p99.9\": 200.");
    assert_has(text, "\"max\": 200.000");
    assert_has(text, "\"send_lag_us\": null");
    assert_has(text, "\"errors\": 0");
    assert_has(text, "\"first_error\": null");
    assert_has(text, "\"connections\": 50");
    assert_has(text, "\"errors_timeout\": 0");
    free(text);
}

static void test_report_json_without_gets_or_time(void **state)
{
    struct fixture *f = *state;
    char *text = render_json(f); /* nothing ran: no division by zero */
    assert_has(text, "\"hit_ratio\": null");
    assert_has(text, "\"ops_per_sec\": 0.000");
    free(text);
}

static void test_report_open_loop_shows_send_lag(void **state)
{
    struct fixture *f = *state;
    f->opts.rate = 1000;
    hist_record(f->result.send_lag, 5000);
    f->result.seconds = 1;
    f->result.metrics.requests = 1;
    hist_record(f->result.latency, 7000);
    char *text = render_json(f);
    assert_has(text, "\"send_lag_us\": {\"mean\": 5.000");
    free(text);
    test_sink_clear(&f->out);
    assert_true(report_text(&f->out.sink, &f->opts, &f->result));
    text = test_sink_text(&f->out);
    assert_has(text, "open loop at 1000 requests/s");
    assert_has(text, "send lag us p50 5.0");
    free(text);
}

static void test_report_errors_are_broken_down(void **state)
{
    struct fixture *f = *state;
    f->result.metrics.errors_reply = 3;
    f->result.metrics.errors_timeout = 2;
    snprintf(f->result.first_error, sizeof(f->result.first_error),
             "server replied: SERVER_ERROR \"quoted\"\\");
    char *text = render_json(f);
    assert_has(text, "\"errors\": 5");
    assert_has(text, "\"first_error\": \"server replied: SERVER_ERROR \\\"quoted\\\"\\\\\"");
    free(text);
    test_sink_clear(&f->out);
    assert_true(report_text(&f->out.sink, &f->opts, &f->result));
    text = test_sink_text(&f->out);
    assert_has(text, "errors      5 (reply 3, timeout 2)");
    assert_has(text, "first error server replied");
    free(text);
}

static void test_report_progress_line(void **state)
{
    struct fixture *f = *state;
    struct load_progress prev = {.phase = "run", .seconds = 1.0, .done = 1000, .hits = 400,
                                 .get_keys = 900};
    struct load_progress now = {.phase = "run", .seconds = 2.0, .done = 3000, .hits = 1300,
                                .get_keys = 1800, .errors = 0};
    assert_true(report_progress(&f->out.sink, &now, &prev));
    char *text = test_sink_text(&f->out);
    assert_has(text, "2000 requests/s");
    assert_has(text, "3000 in all");
    assert_has(text, "hit 100.0%");
    assert_has(text, "errors 0\n");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_json_of_a_clean_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_json_without_gets_or_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_open_loop_shows_send_lag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_errors_are_broken_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_progress_line, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
