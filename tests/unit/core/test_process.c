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
#include "test_sink.h"

#define ARENA (4u * 1024 * 1024)
#define PAGE (1024u * 1024)
#define T0 1700000000

struct fixture {
    void *arena;
    struct store *store;
    struct mc_clock clock;
    struct process_env env;
    struct test_sink out;
};

static int setup_with(void **state, bool evictions)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->arena = aligned_alloc(4096, ARENA);
    struct store_cfg cfg = {
        .arena = f->arena, .arena_size = ARENA, .item_size_max = PAGE, .slab_page_size = PAGE,
        .growth_factor = 1.25, .chunk_min = 48, .evictions = evictions, .cas_enabled = true,
        .cas_offset = 0, .cas_stride = 1,
    };
    if (store_create(&cfg, &f->store) != MC_OK)
        return -1;
    mc_clock_init(&f->clock, T0);
    f->env.store = f->store;
    f->env.clock = &f->clock;
    f->env.now = mc_clock_now(&f->clock, T0);
    store_set_clock(f->store, f->env.now);
    test_sink_init(&f->out, 64);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, true);
}

static int setup_no_evict(void **state)
{
    return setup_with(state, false);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_destroy(&f->store);
    free(f->arena);
    test_sink_fini(&f->out);
    free(f);
    return 0;
}

static void advance(struct fixture *f, int seconds)
{
    f->env.now += (mc_time_t)seconds;
    store_set_clock(f->store, f->env.now);
}

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
    advance(f, 1);
    EXPECT(f, "VALUE k 0 1\r\nv\r\n", PROTO_GAT, "k", NULL, 0, 10, 0, false);
    advance(f, 5); /* the gat moved expiry to now + 10 */
    EXPECT(f, "VALUE k 0 1\r\nv\r\n", PROTO_GET, "k", NULL, 0, 0, 0, false);
    advance(f, 10);
    EXPECT(f, "", PROTO_GET, "k", NULL, 0, 0, 0, false);
    /* negative: stored already expired */
    EXPECT(f, "STORED\r\n", PROTO_SET, "n", "v", 0, -1, 0, false);
    EXPECT(f, "", PROTO_GET, "n", NULL, 0, 0, 0, false);
    /* absolute: a unix time 100 s after the start */
    EXPECT(f, "STORED\r\n", PROTO_SET, "a", "v", 0, T0 + 100, 0, false);
    EXPECT(f, "VALUE a 0 1\r\nv\r\n", PROTO_GET, "a", NULL, 0, 0, 0, false);
    advance(f, 100);
    EXPECT(f, "", PROTO_GET, "a", NULL, 0, 0, 0, false);
}

static void test_process_too_large_unlinks_old_value(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "STORED\r\n", PROTO_SET, "k", "old", 0, 0, 0, false);
    struct proto_req req = {.cmd = PROTO_SET, .key = "k", .nkey = 1, .nbytes = 2 * PAGE,
                            .too_large = true};
    test_sink_clear(&f->out);
    assert_true(process_key(&f->env, &req, "k", 1, hash_key("k", 1), &f->out.sink));
    char *reply = test_sink_text(&f->out);
    assert_string_equal(reply, "SERVER_ERROR object too large for cache\r\n");
    free(reply);
    EXPECT(f, "", PROTO_GET, "k", NULL, 0, 0, 0, false);
}

static void test_process_out_of_memory_without_evictions(void **state)
{
    struct fixture *f = *state;
    char *value = malloc(400 * 1024 + 1);
    memset(value, 'x', 400 * 1024);
    value[400 * 1024] = '\0';
    char key[16];
    bool oom = false;
    for (int i = 0; i < 64 && !oom; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        char *reply = run(f, PROTO_SET, key, value, 0, 0, 0, false);
        if (strcmp(reply, "SERVER_ERROR out of memory storing object\r\n") == 0)
            oom = true;
        else
            assert_string_equal(reply, "STORED\r\n");
        free(reply);
    }
    assert_true(oom);
    free(value);
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
    assert_int_equal(process_exptime(&f->env, T0 + 10000), now + 100); /* unix time */
    assert_int_equal(process_exptime(&f->env, -1), 1);            /* stays expired */
    assert_true(process_exptime(&f->env, T0 - 5) <= now);             /* a time gone by */
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
    advance(f, 5);
    EXPECT(f, "", PROTO_GET, "a", NULL, 0, 0, 0, false);
    EXPECT(f, "VALUE b 0 1\r\nv\r\n", PROTO_GET, "b", NULL, 0, 0, 0, false);
    EXPECT(f, "", PROTO_GET, "c", NULL, 0, 0, 0, false);
    advance(f, 15);
    EXPECT(f, "", PROTO_GET, "b", NULL, 0, 0, 0, false);
    EXPECT(f, "", PROTO_GET, "d", NULL, 0, 0, 0, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_process_get_hit_and_miss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_gets_shows_cas_and_cas_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_storage_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_delete_touch_arith, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_noreply_suppresses_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_exptime_relative_and_gat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_too_large_unlinks_old_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_out_of_memory_without_evictions, setup_no_evict,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_process_exptime_policy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
