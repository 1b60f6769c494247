/*
 * test_opts.c: the option table and parser: defaults, every spelling
 * (long=, long value, short attached/separate, bundled flags), every typed
 * value, and error messages that name the option and the value.
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
#include "opts.h"

struct fixture {
    struct opts opts;
    struct test_sink err;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    opts_defaults(&f->opts);
    test_sink_init(&f->err, 64);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    test_sink_fini(&f->err);
    free(f);
    return 0;
}

#define ARGV(...) (char *[]){"corecache-bench", __VA_ARGS__, NULL}
#define ARGC(...) ((int)(sizeof((char *[]){"corecache-bench", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(f, ...) opts_parse(&(f)->opts, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), &(f)->err.sink)

/* Parsing must fail with an error mentioning every given fragment. */
static void expect_error(struct fixture *f, const char *frag1, const char *frag2)
{
    char *text = test_sink_text(&f->err);
    if (strstr(text, frag1) == NULL || (frag2 != NULL && strstr(text, frag2) == NULL))
        fail_msg("error '%s' does not mention '%s' / '%s'", text, frag1, frag2 ? frag2 : "");
    assert_true(strncmp(text, "corecache-bench: ", 17) == 0);
    assert_true(text[strlen(text) - 1] == '\n');
    free(text);
    test_sink_clear(&f->err);
}

static void test_opts_defaults_are_valid(void **state)
{
    struct fixture *f = *state;
    const struct opts *o = &f->opts;
    assert_string_equal(o->server, "127.0.0.1");
    assert_int_equal(o->port, 11211);
    assert_int_equal(o->connections, 50);
    assert_int_equal(o->threads, 1);
    assert_int_equal(o->pipeline, 1);
    assert_true(o->duration == 10.0);
    assert_int_equal(o->requests, 0);
    assert_true(o->rate == 0.0);
    assert_int_equal(o->arrival, OPTS_ARRIVAL_FIXED);
    assert_int_equal(o->ratio.get, 9);
    assert_int_equal(o->ratio.set, 1);
    assert_int_equal(o->multiget, 1);
    assert_int_equal(o->keys, 100000);
    assert_string_equal(o->key_prefix, "key:");
    assert_int_equal(o->key_dist, KEYGEN_UNIFORM);
    assert_true(o->zipf_skew == 0.99);
    assert_int_equal(o->value_size.min, 100);
    assert_int_equal(o->value_size.max, 100);
    assert_int_equal(o->protocol, REQ_TEXT);
    assert_false(o->prefill);
    assert_int_equal(o->cpus.count, 0);
    assert_int_equal(o->seed, 1);
    assert_false(o->json);
    /* and the defaults pass the cross checks */
    assert_true(opts_parse(&f->opts, 1, ARGV(NULL), &f->err.sink));
    assert_int_equal(test_sink_len(&f->err), 0);
}

static void test_opts_every_spelling(void **state)
{
    struct fixture *f = *state;
    assert_true(PARSE(f, "--connections=20", "--threads", "2", "-P16", "-p", "12345", "-qs",
                      "localhost", "--json"));
    assert_int_equal(f->opts.connections, 20);
    assert_int_equal(f->opts.threads, 2);
    assert_int_equal(f->opts.pipeline, 16);
    assert_int_equal(f->opts.port, 12345);
    assert_true(f->opts.quiet);
    assert_string_equal(f->opts.server, "localhost");
    assert_true(f->opts.json);
}

static void test_opts_typed_values(void **state)
{
    struct fixture *f = *state;
    assert_true(PARSE(f, "--ratio=1:0", "--value-size", "64-4096", "--cpus", "1,3,5-7",
                      "--protocol=binary", "--key-dist", "zipf", "--zipf-skew", "1.2", "--rate",
                      "25000.5", "--arrival", "poisson", "-n", "18446744073709551615", "-d", "0.5",
                      "--keys", "1000000", "--multiget", "10"));
    assert_int_equal(f->opts.ratio.get, 1);
    assert_int_equal(f->opts.ratio.set, 0);
    assert_int_equal(f->opts.value_size.min, 64);
    assert_int_equal(f->opts.value_size.max, 4096);
    assert_int_equal(f->opts.cpus.count, 5);
    static const uint16_t cpus[] = {1, 3, 5, 6, 7};
    for (int i = 0; i < 5; i++)
        assert_int_equal(f->opts.cpus.cpu[i], cpus[i]);
    assert_int_equal(f->opts.protocol, REQ_BINARY);
    assert_int_equal(f->opts.key_dist, KEYGEN_ZIPF);
    assert_true(f->opts.zipf_skew == 1.2);
    assert_true(f->opts.rate == 25000.5);
    assert_int_equal(f->opts.arrival, OPTS_ARRIVAL_POISSON);
    assert_true(f->opts.requests == UINT64_MAX);
    assert_true(f->opts.duration == 0.5);
    assert_int_equal(f->opts.keys, 1000000);
    assert_int_equal(f->opts.multiget, 10);
}

static void test_opts_prefill_only_implies_prefill(void **state)
{
    struct fixture *f = *state;
    assert_true(PARSE(f, "--prefill-only", "-d", "0"));
    assert_true(f->opts.prefill);
    assert_true(f->opts.prefill_only);
}

static void test_opts_refuses_bad_values(void **state)
{
    struct fixture *f = *state;
    assert_false(PARSE(f, "--bogus"));
    expect_error(f, "--bogus", "unknown option");
    assert_false(PARSE(f, "-Z"));
    expect_error(f, "-Z", "unknown option");
    assert_false(PARSE(f, "-c", "0"));
    expect_error(f, "-c 0", "from 1 to 65536");
    assert_false(PARSE(f, "--connections=abc"));
    expect_error(f, "--connections abc", "integer");
    assert_false(PARSE(f, "--port", "70000"));
    expect_error(f, "--port 70000", "65535");
    assert_false(PARSE(f, "--pipeline"));
    expect_error(f, "--pipeline", "missing value");
    assert_false(PARSE(f, "--ratio", "9"));
    expect_error(f, "--ratio 9", "GET:SET");
    assert_false(PARSE(f, "--ratio", "0:0"));
    expect_error(f, "--ratio 0:0", "not both 0");
    assert_false(PARSE(f, "--value-size", "200-100"));
    expect_error(f, "--value-size 200-100", "MIN-MAX");
    assert_false(PARSE(f, "--value-size", "0"));
    expect_error(f, "--value-size 0", "from 1");
    assert_false(PARSE(f, "--cpus", "3-1"));
    expect_error(f, "--cpus 3-1", "CPU list");
    assert_false(PARSE(f, "--cpus", "1,"));
    expect_error(f, "--cpus 1,", "CPU list");
    assert_false(PARSE(f, "--cpus", "5000"));
    expect_error(f, "--cpus 5000", "CPU list");
    assert_false(PARSE(f, "--protocol", "udp"));
    expect_error(f, "--protocol udp", "text, meta or binary");
    assert_false(PARSE(f, "--rate", "-5"));
    expect_error(f, "--rate -5", "number");
    assert_false(PARSE(f, "--duration", "nan"));
    expect_error(f, "--duration nan", "number");
    assert_false(PARSE(f, "--zipf-skew", "0"));
    expect_error(f, "--zipf-skew 0", "number");
    assert_false(PARSE(f, "--json=1"));
    expect_error(f, "--json", "takes no value");
    assert_false(PARSE(f, "extra"));
    expect_error(f, "extra", "unexpected argument");
}

static void test_opts_cross_checks(void **state)
{
    struct fixture *f = *state;
    assert_false(PARSE(f, "-c", "2", "-t", "4"));
    expect_error(f, "--threads 4", "--connections (2)");
    opts_defaults(&f->opts);
    assert_false(PARSE(f, "--key-prefix", "a b"));
    expect_error(f, "--key-prefix 'a b'", "spaces");
    opts_defaults(&f->opts);
    char long_prefix[260];
    memset(long_prefix, 'k', 245);
    long_prefix[245] = '\0';
    assert_false(PARSE(f, "--key-prefix", long_prefix, "--keys", "1000000"));
    expect_error(f, "--key-prefix", "longer than memcached's 250");
    opts_defaults(&f->opts);
    assert_false(PARSE(f, "-d", "0"));
    expect_error(f, "--duration 0", "nothing would be measured");
}

static void test_opts_usage_lists_every_option(void **state)
{
    struct fixture *f = *state;
    assert_true(opts_usage(&f->err.sink));
    char *text = test_sink_text(&f->err);
    assert_true(strncmp(text, "usage: corecache-bench", 22) == 0);
    for (size_t i = 0; i < opts_count(); i++) {
        char name[64];
        snprintf(name, sizeof(name), "--%s", opts_name(i));
        if (strstr(text, name) == NULL)
            fail_msg("--help does not list %s", name);
    }
    assert_non_null(strstr(text, "(default: 50)"));
    free(text);
    assert_null(opts_name(opts_count()));
}

static void test_opts_value_json(void **state)
{
    struct fixture *f = *state;
    assert_true(PARSE(f, "--cpus", "1-2", "--key-prefix", "q\"\\x", "--value-size", "10-20"));
    for (size_t i = 0; i < opts_count(); i++) {
        test_sink_clear(&f->err);
        assert_true(opts_value_json(&f->opts, i, &f->err.sink));
        char *text = test_sink_text(&f->err);
        const char *name = opts_name(i);
        if (strcmp(name, "cpus") == 0)
            assert_string_equal(text, "[1, 2]");
        else if (strcmp(name, "key-prefix") == 0)
            assert_string_equal(text, "\"q\\\"\\\\x\"");
        else if (strcmp(name, "value-size") == 0)
            assert_string_equal(text, "[10, 20]");
        else if (strcmp(name, "ratio") == 0)
            assert_string_equal(text, "\"9:1\"");
        else if (strcmp(name, "connections") == 0)
            assert_string_equal(text, "50");
        else if (strcmp(name, "protocol") == 0)
            assert_string_equal(text, "\"text\"");
        else if (strcmp(name, "json") == 0)
            assert_string_equal(text, "false");
        assert_true(strlen(text) > 0);
        free(text);
    }
    assert_false(opts_value_json(&f->opts, opts_count(), &f->err.sink));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_opts_defaults_are_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opts_every_spelling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opts_typed_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opts_prefill_only_implies_prefill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opts_refuses_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opts_cross_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opts_usage_lists_every_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opts_value_json, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
