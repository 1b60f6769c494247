/*
 * test_process.c: requests executed on a real store produce memcached's
 * exact reply bytes; noreply suppresses every reply, errors included;
 * client exptimes are converted with the handed-in clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "hash.h"
#include "process.h"
#include "store.h"
#include "test_fixture.h"
#include "test_sink.h"

/* Runs one keyed command and returns its reply (caller frees). */
static char *run(struct fixture *f, enum proto_cmd cmd, const char *key, const char *value,
                 uint32_t flags, int64_t exptime, uint64_t num, bool noreply)
{
    struct proto_req req = {
        .cmd = cmd, .noreply = noreply, .key = key, .nkey = (uint32_t)strlen(key),
        .flags = flags, .exptime = exptime, .value = value,
        .nbytes = value ? (uint32_t)strlen(value) : 0, .cas = num, .delta = num,
    };
    test_sink_clear(&f->out);
    assert_true(process_key(&f->env, &req, key, req.nkey, hash_key(key, req.nkey), &f->out.sink));
    return test_sink_text(&f->out);
}

#define EXPECT(f, want, ...)                                                                 \
    do {                                                                                     \
        char *got_ = run((f), __VA_ARGS__);                                                  \
        assert_string_equal(got_, (want));                                                   \
        free(got_);                                                                          \
    } while (0)

static void test_process_get_hit_and_miss(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "", PROTO_GET, "k", NULL, 0, 0, 0, false);
    EXPECT(f, "STORED\r\n", PROTO_SET, "k", "hello", 42, 0, 0, false);
    EXPECT(f, "VALUE k 42 5\r\nhello\r\n", PROTO_GET, "k", NULL, 0, 0, 0, false);
}

static void test_process_gets_shows_cas_and_cas_command(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "STORED\r\n", PROTO_SET, "k", "v1", 0, 0, 0, false);
    char *reply = run(f, PROTO_GETS, "k", NULL, 0, 0, 0, false);
    unsigned long long cas = 0;
    assert_int_equal(sscanf(reply, "VALUE k 0 2 %llu\r\n", &cas), 1);
    assert_true(cas > 0);
    free(reply);
    EXPECT(f, "EXISTS\r\n", PROTO_CAS, "k", "v2", 0, 0, cas + 1, false);
    EXPECT(f, "STORED\r\n", PROTO_CAS, "k", "v2", 0, 0, cas, false);
    EXPECT(f, "EXISTS\r\n", PROTO_CAS, "k", "v3", 0, 0, cas, false);
    EXPECT(f, "NOT_FOUND\r\n", PROTO_CAS, "nokey", "v", 0, 0, 1, false);
}

static void test_process_storage_outcomes(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "NOT_STORED\r\n", PROTO_REPLACE, "k", "x", 0, 0, 0, false);
    EXPECT(f, "NOT_STORED\r\n", PROTO_APPEND, "k", "x", 0, 0, 0, false);
    EXPECT(f, "STORED\r\n", PROTO_ADD, "k", "b", 7, 0, 0, false);
    EXPECT(f, "NOT_STORED\r\n", PROTO_ADD, "k", "c", 0, 0, 0, false);
    EXPECT(f, "STORED\r\n", PROTO_APPEND, "k", "c", 0, 0, 0, false);
    EXPECT(f, "STORED\r\n", PROTO_PREPEND, "k", "a", 0, 0, 0, false);
    EXPECT(f, "VALUE k 7 3\r\nabc\r\n", PROTO_GET, "k", NULL, 0, 0, 0, false);
    EXPECT(f, "STORED\r\n", PROTO_REPLACE, "k", "z", 1, 0, 0, false);
    EXPECT(f, "VALUE k 1 1\r\nz\r\n", PROTO_GET, "k", NULL, 0, 0, 0, false);
}

static void test_process_delete_touch_arith(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "NOT_FOUND\r\n", PROTO_DELETE, "k", NULL, 0, 0, 0, false);
    EXPECT(f, "NOT_FOUND\r\n", PROTO_INCR, "k", NULL, 0, 0, 1, false);
    EXPECT(f, "NOT_FOUND\r\n", PROTO_TOUCH, "k", NULL, 0, 10, 0, false);
    EXPECT(f, "STORED\r\n", PROTO_SET, "k", "10", 0, 0, 0, false);
    EXPECT(f, "15\r\n", PROTO_INCR, "k", NULL, 0, 0, 5, false);
    EXPECT(f, "6\r\n", PROTO_DECR, "k", NULL, 0, 0, 9, false);
    EXPECT(f, "VALUE k 0 2\r\n6 \r\n", PROTO_GET, "k", NULL, 0, 0, 0, false);
    EXPECT(f, "0\r\n", PROTO_DECR, "k", NULL, 0, 0, 100, false);
    EXPECT(f, "TOUCHED\r\n", PROTO_TOUCH, "k", NULL, 0, 10, 0, false);
    EXPECT(f, "DELETED\r\n", PROTO_DELETE, "k", NULL, 0, 0, 0, false);
    EXPECT(f, "STORED\r\n", PROTO_SET, "t", "text", 0, 0, 0, false);
    EXPECT(f, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n", PROTO_INCR,
           "t", NULL, 0, 0, 1, false);
}

static void test_process_noreply_suppresses_everything(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "", PROTO_SET, "k", "v", 0, 0, 0, true);
    EXPECT(f, "", PROTO_ADD, "k", "v", 0, 0, 0, true);
    EXPECT(f, "", PROTO_INCR, "k", NULL, 0, 0, 1, true); /* an error, suppressed */
    EXPECT(f, "", PROTO_DELETE, "missing", NULL, 0, 0, 0, true);
    EXPECT(f, "", PROTO_TOUCH, "k", NULL, 0, 5, 0, true);
    EXPECT(f, "VALUE k 0 1\r\nv\r\n", PROTO_GET, "k", NULL, 0, 0, 0, false);
}

static void test_process_exptime_relative_and_gat(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "STORED\r\n", PROTO_SET, "k", "v", 0, 2, 0, false);
    fixture_advance(f, 1);
    EXPECT(f, "VALUE k 0 1\r\nv\r\n", PROTO_GAT, "k", NULL, 0, 10, 0, false);
    fixture_advance(f, 5); /* the gat moved expiry to now + 10 */
    EXPECT(f, "VALUE k 0 1\r\nv\r\n", PROTO_GET, "k", NULL, 0, 0, 0, false);
    fixture_advance(f, 10);
    EXPECT(f, "", PROTO_GET, "k", NULL, 0, 0, 0, false);
    /* negative: stored already expired */
    EXPECT(f, "STORED\r\n", PROTO_SET, "n", "v", 0, -1, 0, false);
    EXPECT(f, "", PROTO_GET, "n", NULL, 0, 0, 0, false);
    /* absolute: a unix time 100 s after the start */
    EXPECT(f, "STORED\r\n", PROTO_SET, "a", "v", 0, FIXTURE_T0 + 100, 0, false);
    EXPECT(f, "VALUE a 0 1\r\nv\r\n", PROTO_GET, "a", NULL, 0, 0, 0, false);
    fixture_advance(f, 100);
    EXPECT(f, "", PROTO_GET, "a", NULL, 0, 0, 0, false);
}

static void test_process_too_large_unlinks_old_value(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "STORED\r\n", PROTO_SET, "k", "old", 0, 0, 0, false);
    struct proto_req req = {.cmd = PROTO_SET, .key = "k", .nkey = 1, .nbytes = 2 * FIXTURE_PAGE,
                            .too_large = true};
    test_sink_clear(&f->out);
    assert_true(process_key(&f->env, &req, "k", 1, hash_key("k", 1), &f->out.sink));
    char *reply = test_sink_text(&f->out);
    assert_string_equal(reply, "SERVER_ERROR object too large for cache\r\n");
    free(reply);
    EXPECT(f, "", PROTO_GET, "k", NULL, 0, 0, 0, false);
}

/* fixture_fill's step: a set answers STORED until memory runs out. */
static bool set_until_oom(struct fixture *f, const char *key, const char *value)
{
    char *reply = run(f, PROTO_SET, key, value, 0, 0, 0, false);
    bool oom = strcmp(reply, "SERVER_ERROR out of memory storing object\r\n") == 0;
    if (!oom)
        assert_string_equal(reply, "STORED\r\n");
    free(reply);
    return oom;
}

static void test_process_out_of_memory_without_evictions(void **state)
{
    assert_true(fixture_fill(*state, set_until_oom));
}

/* --default-ttl / --max-ttl through process_exptime(), for the classic
 * commands (meta: test_process_meta.c). */
static void test_process_exptime_policy(void **state)
{
    struct fixture *f = *state;
    mc_time_t now = f->env.now;
    /* off: memcached's conversion unchanged */
    assert_int_equal(process_exptime(&f->env, 0), 0);
    assert_int_equal(process_exptime(&f->env, 10), now + 10);
    assert_int_equal(process_exptime(&f->env, -1), 1);
    f->env.default_ttl = 60;
    assert_int_equal(process_exptime(&f->env, 0), now + 60);
    assert_int_equal(process_exptime(&f->env, 10), now + 10);
    /* default TTLs are plain seconds: no 30-day rule */
    f->env.default_ttl = 60 * 60 * 24 * 365;
    assert_int_equal(process_exptime(&f->env, 0), now + 60 * 60 * 24 * 365);
    f->env.default_ttl = 0;
    f->env.max_ttl = 100;
    assert_int_equal(process_exptime(&f->env, 0), now + 100);     /* never -> capped */
    assert_int_equal(process_exptime(&f->env, 50), now + 50);
    assert_int_equal(process_exptime(&f->env, 500), now + 100);
    assert_int_equal(process_exptime(&f->env, FIXTURE_T0 + 10000), now + 100); /* unix time */
    assert_int_equal(process_exptime(&f->env, -1), 1);            /* stays expired */
    assert_true(process_exptime(&f->env, FIXTURE_T0 - 5) <= now);             /* a time gone by */
    f->env.default_ttl = 1000;                                    /* the cap wins */
    assert_int_equal(process_exptime(&f->env, 0), now + 100);

    /* every classic command that sets a TTL obeys it */
    f->env.default_ttl = 5;
    f->env.max_ttl = 20;
    EXPECT(f, "STORED\r\n", PROTO_SET, "a", "v", 0, 0, 0, false);
    EXPECT(f, "STORED\r\n", PROTO_ADD, "b", "v", 0, 1000, 0, false);
    EXPECT(f, "STORED\r\n", PROTO_SET, "c", "v", 0, 0, 0, false);
    EXPECT(f, "TOUCHED\r\n", PROTO_TOUCH, "c", NULL, 0, 0, 0, false); /* touch 0: default */
    EXPECT(f, "STORED\r\n", PROTO_SET, "d", "v", 0, 10, 0, false);
    EXPECT(f, "VALUE d 0 1\r\nv\r\n", PROTO_GAT, "d", NULL, 0, 9999, 0, false);
    fixture_advance(f, 5);
    EXPECT(f, "", PROTO_GET, "a", NULL, 0, 0, 0, false);
    EXPECT(f, "VALUE b 0 1\r\nv\r\n", PROTO_GET, "b", NULL, 0, 0, 0, false);
    EXPECT(f, "", PROTO_GET, "c", NULL, 0, 0, 0, false);
    fixture_advance(f, 15);
    EXPECT(f, "", PROTO_GET, "b", NULL, 0, 0, 0, false);
    EXPECT(f, "", PROTO_GET, "d", NULL, 0, 0, 0, false);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_process_get_hit_and_miss),
        T(test_process_gets_shows_cas_and_cas_command),
        T(test_process_storage_outcomes),
        T(test_process_delete_touch_arith),
        T(test_process_noreply_suppresses_everything),
        T(test_process_exptime_relative_and_gat),
        T(test_process_too_large_unlinks_old_value),
        cmocka_unit_test_setup_teardown(test_process_out_of_memory_without_evictions, fixture_setup_no_evict,
                                        fixture_teardown),
        T(test_process_exptime_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
