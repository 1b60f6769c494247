/*
 * test_process_bin.c: binary requests executed on a real store (through
 * process_key, as the router calls it) produce memcached 1.6.18's binary
 * responses: statuses, texts, extras, keys, values and CAS values; quiet
 * commands say nothing on success and always answer errors.
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
#include "exec.h"
#include "hash.h"
#include "process.h"
#include "process_bin.h"
#include "proto_bin.h"
#include "store.h"
#include "test_bin.h"
#include "test_fixture.h"
#include "test_sink.h"

#define OPAQUE TEST_BIN_OPAQUE

/* A binary request as proto_bin_parse would fill it. */
static struct proto_req breq(uint8_t opcode, enum proto_cmd cmd, const char *key)
{
    struct proto_req req = {.cmd = cmd, .family = PROTO_FAMILY_BINARY, .key = key,
                            .nkey = (uint32_t)strlen(key), .bin = {.opcode = opcode}};
    memcpy(&req.bin.opaque, OPAQUE, 4);
    return req;
}

static struct proto_req bstore(uint8_t opcode, enum proto_cmd cmd, const char *key, const char *value,
                               uint32_t flags, uint64_t cas)
{
    struct proto_req req = breq(opcode, cmd, key);
    req.value = value;
    req.nbytes = (uint32_t)strlen(value);
    req.flags = flags;
    req.cas = cas;
    return req;
}

/* Runs req; returns the number of responses written (0 or 1) and decodes
 * the one there is into *r. */
static int run(struct fixture *f, struct proto_req *req, struct resp *r)
{
    test_sink_clear(&f->out);
    assert_true(process_bin_key(&f->env, req, req->key, req->nkey, hash_key(req->key, req->nkey), &f->out.sink));
    size_t len = test_sink_len(&f->out);
    if (len == 0)
        return 0;
    assert_int_equal(resp_decode(f->out.data, len, r), len); /* exactly one response */
    return 1;
}

static void expect_error(struct fixture *f, struct proto_req *req, uint16_t status, const char *text)
{
    struct resp r;
    assert_int_equal(run(f, req, &r), 1);
    assert_int_equal(r.opcode, req->bin.opcode);
    assert_int_equal(r.status, status);
    assert_int_equal(r.extlen, 0);
    assert_int_equal(r.keylen, 0);
    assert_int_equal(r.cas, 0);
    assert_int_equal(r.bodylen, strlen(text));
    assert_memory_equal(r.body, text, strlen(text));
}

/* Stores key=value with a plain set; returns the CAS answered. */
static uint64_t set(struct fixture *f, const char *key, const char *value, uint32_t flags)
{
    struct proto_req req = bstore(PROTO_BIN_SET, PROTO_SET, key, value, flags, 0);
    struct resp r;
    assert_int_equal(run(f, &req, &r), 1);
    assert_int_equal(r.status, PROTO_BIN_SUCCESS);
    assert_int_equal(r.bodylen, 0);
    assert_true(r.cas != 0);
    return r.cas;
}

static void test_process_bin_get_hit_and_miss(void **state)
{
    struct fixture *f = *state;
    struct proto_req get = breq(PROTO_BIN_GET, PROTO_GET, "k");
    expect_error(f, &get, PROTO_BIN_KEY_ENOENT, "Not found");
    uint64_t cas = set(f, "k", "hello", 0xa1b2c3d4);
    struct resp r;
    assert_int_equal(run(f, &get, &r), 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.extlen, 4);
    assert_int_equal(r.keylen, 0);
    assert_int_equal(r.bodylen, 4 + 5);
    assert_int_equal(r.cas, cas);
    assert_memory_equal(r.body, "\xa1\xb2\xc3\xd4hello", 9);
}

static void test_process_bin_getk_returns_key(void **state)
{
    struct fixture *f = *state;
    struct proto_req getk = breq(PROTO_BIN_GETK, PROTO_GET, "key");
    getk.bin.return_key = true;
    struct resp r;
    /* a miss carries the key and no text */
    assert_int_equal(run(f, &getk, &r), 1);
    assert_int_equal(r.status, PROTO_BIN_KEY_ENOENT);
    assert_int_equal(r.keylen, 3);
    assert_int_equal(r.bodylen, 3);
    assert_memory_equal(r.body, "key", 3);
    set(f, "key", "v", 7);
    assert_int_equal(run(f, &getk, &r), 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.extlen, 4);
    assert_int_equal(r.keylen, 3);
    assert_int_equal(r.bodylen, 4 + 3 + 1);
    assert_memory_equal(r.body, "\0\0\0\x07keyv", 8);
}

static void test_process_bin_quiet_get_silent_on_miss(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    struct proto_req getq = breq(PROTO_BIN_GETQ, PROTO_GET, "k");
    getq.bin.quiet = true;
    struct proto_req getkq = breq(PROTO_BIN_GETKQ, PROTO_GET, "k");
    getkq.bin.quiet = getkq.bin.return_key = true;
    assert_int_equal(run(f, &getq, &r), 0);
    assert_int_equal(run(f, &getkq, &r), 0);
    set(f, "k", "v", 0);
    assert_int_equal(run(f, &getq, &r), 1); /* a hit is answered */
    assert_int_equal(r.opcode, PROTO_BIN_GETQ);
    assert_int_equal(r.bodylen, 5);
    assert_int_equal(run(f, &getkq, &r), 1);
    assert_int_equal(r.opcode, PROTO_BIN_GETKQ);
    assert_int_equal(r.keylen, 1);
}

static void test_process_bin_touch_and_gat(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    struct proto_req touch = breq(PROTO_BIN_TOUCH, PROTO_TOUCH, "k");
    touch.exptime = 10;
    expect_error(f, &touch, PROTO_BIN_KEY_ENOENT, "Not found");
    struct proto_req gatq = breq(PROTO_BIN_GATQ, PROTO_GAT, "k");
    gatq.bin.quiet = true;
    assert_int_equal(run(f, &gatq, &r), 0);

    uint64_t cas = set(f, "k", "val", 3);
    /* touch: flags and CAS, no value */
    assert_int_equal(run(f, &touch, &r), 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.extlen, 4);
    assert_int_equal(r.bodylen, 4);
    assert_int_equal(r.cas, cas);
    assert_memory_equal(r.body, "\0\0\0\x03", 4);
    fixture_advance(f, 9);
    struct proto_req gatk = breq(PROTO_BIN_GATK, PROTO_GAT, "k");
    gatk.bin.return_key = true;
    gatk.exptime = 100;
    assert_int_equal(run(f, &gatk, &r), 1);
    assert_int_equal(r.keylen, 1);
    assert_memory_equal(r.body, "\0\0\0\x03kval", 8);
    fixture_advance(f, 50); /* the gat moved expiry to +100 */
    struct proto_req get = breq(PROTO_BIN_GET, PROTO_GET, "k");
    assert_int_equal(run(f, &get, &r), 1);
    assert_int_equal(r.status, 0);
    fixture_advance(f, 51);
    expect_error(f, &get, PROTO_BIN_KEY_ENOENT, "Not found");
}

static void test_process_bin_store_outcomes(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    struct proto_req replace = bstore(PROTO_BIN_REPLACE, PROTO_REPLACE, "k", "x", 0, 0);
    expect_error(f, &replace, PROTO_BIN_KEY_ENOENT, "Not found");
    struct proto_req append = bstore(PROTO_BIN_APPEND, PROTO_APPEND, "k", "x", 0, 0);
    expect_error(f, &append, PROTO_BIN_NOT_STORED, "Not stored.");
    struct proto_req add = bstore(PROTO_BIN_ADD, PROTO_ADD, "k", "b", 5, 0);
    assert_int_equal(run(f, &add, &r), 1);
    assert_int_equal(r.status, 0);
    expect_error(f, &add, PROTO_BIN_KEY_EEXISTS, "Data exists for key.");
    struct proto_req addq = bstore(PROTO_BIN_ADDQ, PROTO_ADD, "k", "b", 5, 0);
    addq.bin.quiet = true;
    expect_error(f, &addq, PROTO_BIN_KEY_EEXISTS, "Data exists for key."); /* errors are never quiet */
    struct proto_req appendq = bstore(PROTO_BIN_APPENDQ, PROTO_APPEND, "k", "c", 0, 0);
    appendq.bin.quiet = true;
    assert_int_equal(run(f, &appendq, &r), 0);
    struct proto_req prepend = bstore(PROTO_BIN_PREPEND, PROTO_PREPEND, "k", "a", 9, 0);
    assert_int_equal(run(f, &prepend, &r), 1);
    struct proto_req get = breq(PROTO_BIN_GET, PROTO_GET, "k");
    assert_int_equal(run(f, &get, &r), 1);
    assert_memory_equal(r.body, "\0\0\0\x05" "abc", 7); /* flags kept */
    struct proto_req setq = bstore(PROTO_BIN_SETQ, PROTO_SET, "k", "z", 0, 0);
    setq.bin.quiet = true;
    assert_int_equal(run(f, &setq, &r), 0);
    assert_int_equal(run(f, &get, &r), 1);
    assert_memory_equal(r.body, "\0\0\0\0z", 5);
}

/* Every store carries the client's CAS: set, add and replace with one are a
 * cas; append and prepend with one must match too. */
static void test_process_bin_cas_on_every_store(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    struct proto_req set_missing = bstore(PROTO_BIN_SET, PROTO_SET, "k", "v", 0, 12345);
    expect_error(f, &set_missing, PROTO_BIN_KEY_ENOENT, "Not found");
    uint64_t cas = set(f, "k", "v", 0);
    struct proto_req set_bad = bstore(PROTO_BIN_SET, PROTO_SET, "k", "w", 0, cas + 1);
    expect_error(f, &set_bad, PROTO_BIN_KEY_EEXISTS, "Data exists for key.");
    struct proto_req add_cas = bstore(PROTO_BIN_ADD, PROTO_ADD, "k", "w", 0, cas);
    assert_int_equal(run(f, &add_cas, &r), 1); /* an add with a CAS is a cas */
    assert_int_equal(r.status, 0);
    assert_true(r.cas > cas);
    cas = r.cas;
    struct proto_req append_bad = bstore(PROTO_BIN_APPEND, PROTO_APPEND, "k", "x", 0, cas - 1);
    expect_error(f, &append_bad, PROTO_BIN_KEY_EEXISTS, "Data exists for key.");
    struct proto_req append_ok = bstore(PROTO_BIN_APPEND, PROTO_APPEND, "k", "x", 0, cas);
    assert_int_equal(run(f, &append_ok, &r), 1);
    assert_int_equal(r.status, 0);
    struct proto_req replace_old = bstore(PROTO_BIN_REPLACE, PROTO_REPLACE, "k", "y", 0, cas);
    expect_error(f, &replace_old, PROTO_BIN_KEY_EEXISTS, "Data exists for key.");
    struct proto_req get = breq(PROTO_BIN_GET, PROTO_GET, "k");
    assert_int_equal(run(f, &get, &r), 1);
    assert_memory_equal(r.body + 4, "wx", 2);
}

static void test_process_bin_too_large_unlinks_old_value(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    uint64_t cas = set(f, "k", "old", 0);
    /* a set too large, even with a CAS, unlinks the old item */
    struct proto_req big = breq(PROTO_BIN_SETQ, PROTO_SET, "k");
    big.bin.quiet = true;
    big.nbytes = 2 * FIXTURE_PAGE;
    big.too_large = true;
    big.cas = cas;
    expect_error(f, &big, PROTO_BIN_E2BIG, "Too large.");
    struct proto_req get = breq(PROTO_BIN_GET, PROTO_GET, "k");
    expect_error(f, &get, PROTO_BIN_KEY_ENOENT, "Not found");
    /* an append too large keeps it */
    set(f, "k", "old", 0);
    struct proto_req app = breq(PROTO_BIN_APPEND, PROTO_APPEND, "k");
    app.nbytes = 2 * FIXTURE_PAGE;
    app.too_large = true;
    expect_error(f, &app, PROTO_BIN_E2BIG, "Too large.");
    assert_int_equal(run(f, &get, &r), 1);
    assert_int_equal(r.status, 0);
}

static void test_process_bin_delete(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    struct proto_req del = breq(PROTO_BIN_DELETE, PROTO_DELETE, "k");
    expect_error(f, &del, PROTO_BIN_KEY_ENOENT, "Not found");
    uint64_t cas = set(f, "k", "v", 0);
    del.cas = cas + 1;
    expect_error(f, &del, PROTO_BIN_KEY_EEXISTS, "Data exists for key.");
    del.cas = cas;
    assert_int_equal(run(f, &del, &r), 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.bodylen, 0);
    assert_int_equal(r.cas, 0);
    set(f, "k", "v", 0);
    struct proto_req delq = breq(PROTO_BIN_DELETEQ, PROTO_DELETE, "k");
    delq.bin.quiet = true;
    assert_int_equal(run(f, &delq, &r), 0);
    expect_error(f, &delq, PROTO_BIN_KEY_ENOENT, "Not found");
}

static struct proto_req arith(uint8_t opcode, enum proto_cmd cmd, const char *key, uint64_t delta,
                              uint64_t initial, uint32_t expiration)
{
    struct proto_req req = breq(opcode, cmd, key);
    req.delta = delta;
    req.bin.initial = initial;
    req.exptime = expiration;
    req.bin.no_create = expiration == UINT32_MAX;
    return req;
}

static uint64_t number(const struct resp *r)
{
    assert_int_equal(r->status, 0);
    assert_int_equal(r->bodylen, 8);
    return be((const unsigned char *)r->body, 8);
}

static void test_process_bin_incr_decr(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    /* a miss with expiration 0xffffffff stays a miss */
    struct proto_req no_create = arith(PROTO_BIN_INCREMENT, PROTO_INCR, "n", 1, 5, UINT32_MAX);
    expect_error(f, &no_create, PROTO_BIN_KEY_ENOENT, "Not found");
    /* otherwise it creates the item with `initial` */
    struct proto_req create = arith(PROTO_BIN_INCREMENT, PROTO_INCR, "n", 1, 5, 0);
    assert_int_equal(run(f, &create, &r), 1);
    assert_int_equal(number(&r), 5);
    uint64_t cas = r.cas;
    assert_true(cas != 0);
    struct proto_req get = breq(PROTO_BIN_GET, PROTO_GET, "n");
    struct resp g;
    assert_int_equal(run(f, &get, &g), 1);
    assert_memory_equal(g.body, "\0\0\0\0" "5", 5);
    assert_int_equal(g.cas, cas);

    struct proto_req incr = arith(PROTO_BIN_INCREMENT, PROTO_INCR, "n", 10, 0, 0);
    assert_int_equal(run(f, &incr, &r), 1);
    assert_int_equal(number(&r), 15);
    assert_int_equal(run(f, &get, &g), 1);
    assert_int_equal(r.cas, g.cas); /* the answer carries the new CAS */
    assert_true(g.cas > cas);

    struct proto_req decr = arith(PROTO_BIN_DECREMENT, PROTO_DECR, "n", 100, 0, 0);
    assert_int_equal(run(f, &decr, &r), 1);
    assert_int_equal(number(&r), 0);
    struct proto_req wrap = arith(PROTO_BIN_INCREMENT, PROTO_INCR, "n", UINT64_MAX, 0, 0);
    assert_int_equal(run(f, &wrap, &r), 1);
    assert_int_equal(number(&r), UINT64_MAX);

    struct proto_req incrq = arith(PROTO_BIN_INCREMENTQ, PROTO_INCR, "n", 1, 0, 0);
    incrq.bin.quiet = true;
    assert_int_equal(run(f, &incrq, &r), 0);
    struct proto_req decrq = arith(PROTO_BIN_DECREMENTQ, PROTO_DECR, "q", 1, 7, 0);
    decrq.bin.quiet = true;
    assert_int_equal(run(f, &decrq, &r), 0); /* created, quietly */
    struct proto_req getq = breq(PROTO_BIN_GET, PROTO_GET, "q");
    assert_int_equal(run(f, &getq, &g), 1);
    assert_memory_equal(g.body + 4, "7", 1);

    set(f, "t", "text", 0);
    struct proto_req bad = arith(PROTO_BIN_INCREMENTQ, PROTO_INCR, "t", 1, 0, 0);
    bad.bin.quiet = true;
    expect_error(f, &bad, PROTO_BIN_DELTA_BADVAL, "Non-numeric server-side value for incr or decr");
}

static void test_process_bin_incr_cas(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    uint64_t cas = set(f, "n", "1", 0);
    struct proto_req incr = arith(PROTO_BIN_INCREMENT, PROTO_INCR, "n", 1, 0, 0);
    incr.cas = cas + 1;
    expect_error(f, &incr, PROTO_BIN_KEY_EEXISTS, "Data exists for key.");
    incr.cas = cas;
    assert_int_equal(run(f, &incr, &r), 1);
    assert_int_equal(number(&r), 2);
}

/* Creation by incr takes the request's expiration. */
static void test_process_bin_incr_create_expires(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    struct proto_req create = arith(PROTO_BIN_INCREMENT, PROTO_INCR, "n", 1, 3, 10);
    assert_int_equal(run(f, &create, &r), 1);
    assert_int_equal(number(&r), 3);
    fixture_advance(f, 11);
    struct proto_req get = breq(PROTO_BIN_GET, PROTO_GET, "n");
    expect_error(f, &get, PROTO_BIN_KEY_ENOENT, "Not found");
}

static void test_process_bin_exptime_conversion(void **state)
{
    struct fixture *f = *state;
    mc_time_t now = f->env.now;
    assert_int_equal(process_exptime(&f->env, 0), 0);
    assert_int_equal(process_exptime(&f->env, 100), now + 100);
    assert_int_equal(process_exptime(&f->env, FIXTURE_T0 + 50), now + 50); /* absolute */
    assert_int_equal(process_exptime(&f->env, 2592001), 1);         /* in the past */
}

/* Binary stores obey --max-ttl like every other command: a "never" set
 * expires when the cap says. */
static void test_process_bin_set_obeys_max_ttl(void **state)
{
    struct fixture *f = *state;
    f->env.max_ttl = 60;
    struct proto_req set = breq(PROTO_BIN_SET, PROTO_SET, "k");
    set.value = "v";
    set.nbytes = 1;
    set.exptime = 0;
    struct resp r;
    assert_int_equal(run(f, &set, &r), 1);
    fixture_advance(f, 59);
    struct proto_req get = breq(PROTO_BIN_GET, PROTO_GET, "k");
    assert_int_equal(run(f, &get, &r), 1);
    assert_int_equal(r.status, 0);
    fixture_advance(f, 2);
    expect_error(f, &get, PROTO_BIN_KEY_ENOENT, "Not found");
}

/* fixture_fill's step: a quiet set says nothing until memory runs out,
 * then answers ENOMEM. */
static bool setq_until_oom(struct fixture *f, const char *key, const char *value)
{
    struct proto_req req = bstore(PROTO_BIN_SETQ, PROTO_SET, key, value, 0, 0);
    req.bin.quiet = true;
    struct resp r;
    if (run(f, &req, &r) == 0)
        return false;
    assert_int_equal(r.status, PROTO_BIN_ENOMEM);
    assert_memory_equal(r.body, "Out of memory allocating item", 29);
    return true;
}

static void test_process_bin_out_of_memory_without_evictions(void **state)
{
    assert_true(fixture_fill(*state, setq_until_oom));
}

/* A text request still gets text replies: exec picks the composer by the
 * request's family. */
static void test_process_bin_text_family_untouched(void **state)
{
    struct fixture *f = *state;
    struct proto_req req = {.cmd = PROTO_DELETE, .key = "k", .nkey = 1};
    struct exec_ctx ctx = {.env = &f->env};
    test_sink_clear(&f->out);
    assert_true(exec_forwarded(&ctx, &req, "k", 1, hash_key("k", 1), &f->out.sink));
    char *text = test_sink_text(&f->out);
    assert_string_equal(text, "NOT_FOUND\r\n");
    free(text);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_process_bin_get_hit_and_miss),
        T(test_process_bin_getk_returns_key),
        T(test_process_bin_quiet_get_silent_on_miss),
        T(test_process_bin_touch_and_gat),
        T(test_process_bin_store_outcomes),
        T(test_process_bin_cas_on_every_store),
        T(test_process_bin_too_large_unlinks_old_value),
        T(test_process_bin_delete),
        T(test_process_bin_incr_decr),
        T(test_process_bin_incr_cas),
        T(test_process_bin_incr_create_expires),
        T(test_process_bin_exptime_conversion),
        T(test_process_bin_set_obeys_max_ttl),
        cmocka_unit_test_setup_teardown(test_process_bin_out_of_memory_without_evictions, fixture_setup_no_evict,
                                        fixture_teardown),
        T(test_process_bin_text_family_untouched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
