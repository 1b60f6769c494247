/*
 * test_fixture.h: what core's unit tests share instead of copying it.
 *
 *   - The store fixture: an arena, a store made from it, a hand-driven
 *     clock (env.now moves only when a test calls fixture_advance), the
 *     process_env that executes requests on them, a text parser and a
 *     test sink. One instance per test through cmocka's setup/teardown
 *     (fixture_setup, fixture_setup_no_evict, fixture_teardown), or
 *     fixture_init/fixture_deinit on an instance a test owns (several
 *     stores, one per fake shard).
 *   - The parser fixture: a bare proto_parser with the limits every parser
 *     test uses (parser_fixture_setup/parser_fixture_teardown).
 *   - The split feeder (Seastar's test_parsing_of_split_data): one buffer
 *     parsed whole and then fed split at every byte boundary; every prefix
 *     shorter than the first request must answer "need more" without
 *     changing the parser, every longer one exactly the whole answer.
 *
 * Header-only (static inline) so that each test executable stays one .c
 * file; every function asserts with cmocka, so include <cmocka.h> first.
 */
#ifndef CORECACHE_TESTS_TEST_FIXTURE_H
#define CORECACHE_TESTS_TEST_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "process.h"
#include "proto.h"
#include "store.h"
#include "test_sink.h"

#define FIXTURE_T0 1700000000 /* unix time of the fake process start */
#define FIXTURE_MIB (1024u * 1024)
#define FIXTURE_ARENA (4u * FIXTURE_MIB) /* the default store's arena */
#define FIXTURE_PAGE FIXTURE_MIB         /* its slab page and item size limit */
#define FIXTURE_ITEM_HEADER 48           /* the parser fixture's item overhead */

/* --- the store fixture ---------------------------------------------------- */

struct fixture {
    void *arena;
    struct store *store;
    struct store_cfg cfg; /* the store's, arena included */
    struct mc_clock clock;
    struct process_env env; /* env.now is the fixture's time */
    struct proto_parser parser;
    struct test_sink out;
};

/* The configuration every store test starts from: 1 MiB pages and items,
 * factor 1.25, 48-byte chunks, CAS on with stride 1 (the n-th item linked
 * or changed gets CAS n), evictions on. */
static inline struct store_cfg fixture_cfg(size_t arena_size)
{
    struct store_cfg cfg = {
        .arena_size = arena_size, .item_size_max = FIXTURE_PAGE, .slab_page_size = FIXTURE_PAGE,
        .growth_factor = 1.25, .chunk_min = 48, .evictions = true, .cas_enabled = true,
        .cas_offset = 0, .cas_stride = 1,
    };
    return cfg;
}

/* Replaces the fixture's store with one made from cfg, in a fresh arena,
 * at the fixture's current time. */
static inline struct store *fixture_remake(struct fixture *f, struct store_cfg cfg)
{
    store_destroy(&f->store);
    free(f->arena);
    f->arena = NULL;
    assert_int_equal(posix_memalign(&f->arena, 4096, cfg.arena_size), 0);
    cfg.arena = f->arena;
    f->cfg = cfg;
    assert_int_equal(store_create(&cfg, &f->store), MC_OK);
    f->env.store = f->store;
    store_set_clock(f->store, f->env.now);
    return f->store;
}

static inline void fixture_init(struct fixture *f, struct store_cfg cfg)
{
    memset(f, 0, sizeof(*f));
    mc_clock_init(&f->clock, FIXTURE_T0);
    f->env.clock = &f->clock;
    f->env.now = mc_clock_now(&f->clock, FIXTURE_T0);
    fixture_remake(f, cfg);
    struct proto_limits limits = {.item_size_max = cfg.item_size_max, .item_total = store_item_total};
    proto_parser_init(&f->parser, &limits);
    test_sink_init(&f->out, 64);
}

static inline void fixture_deinit(struct fixture *f)
{
    store_destroy(&f->store);
    assert_null(f->store);
    free(f->arena);
    test_sink_fini(&f->out);
}

/* Moves the fixture's time (and its store's) on by `seconds`. */
static inline void fixture_advance(struct fixture *f, mc_time_t seconds)
{
    f->env.now += seconds;
    store_set_clock(f->store, f->env.now);
}

static inline int fixture_setup_cfg(void **state, struct store_cfg cfg)
{
    struct fixture *f = malloc(sizeof(*f));
    if (f == NULL)
        return -1;
    fixture_init(f, cfg);
    *state = f;
    return 0;
}

/* cmocka setup: the default store (fixture_cfg(FIXTURE_ARENA)). */
static inline int fixture_setup(void **state)
{
    return fixture_setup_cfg(state, fixture_cfg(FIXTURE_ARENA));
}

/* cmocka setup: the default store with evictions off (-M). */
static inline int fixture_setup_no_evict(void **state)
{
    struct store_cfg cfg = fixture_cfg(FIXTURE_ARENA);
    cfg.evictions = false;
    return fixture_setup_cfg(state, cfg);
}

static inline int fixture_teardown(void **state)
{
    fixture_deinit(*state);
    free(*state);
    return 0;
}

/*
 * Stores 400 KiB values under k0, k1, ... through `store_one` until it
 * answers true (the store said out of memory) or 64 keys were tried;
 * returns whether it did. With evictions off (fixture_setup_no_evict) a
 * 4 MiB store must say so. `store_one` asserts what each reply must be.
 */
typedef bool (*fixture_store_fn)(struct fixture *f, const char *key, const char *value);

static inline bool fixture_fill(struct fixture *f, fixture_store_fn store_one)
{
    enum { VALUE_LEN = 400 * 1024, KEYS = 64 };
    char *value = malloc(VALUE_LEN + 1);
    assert_non_null(value);
    memset(value, 'x', VALUE_LEN);
    value[VALUE_LEN] = '\0';
    char key[16];
    bool oom = false;
    for (int i = 0; i < KEYS && !oom; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        oom = store_one(f, key, value);
    }
    free(value);
    return oom;
}

/* --- the parser fixture ---------------------------------------------------- */

/* An item's size as the parser fixture's limits count it. */
static inline size_t fixture_item_total(size_t nkey, size_t nbytes)
{
    return nkey + nbytes + FIXTURE_ITEM_HEADER;
}

/* The limits of every parser test: 1 MiB items, fixture_item_total. */
static inline struct proto_limits fixture_limits(void)
{
    struct proto_limits limits = {.item_size_max = FIXTURE_PAGE, .item_total = fixture_item_total};
    return limits;
}

/* cmocka setup: *state is a proto_parser with fixture_limits(). */
static inline int parser_fixture_setup(void **state)
{
    struct proto_parser *parser = malloc(sizeof(*parser));
    if (parser == NULL)
        return -1;
    struct proto_limits limits = fixture_limits();
    proto_parser_init(parser, &limits);
    *state = parser;
    return 0;
}

static inline int parser_fixture_teardown(void **state)
{
    free(*state);
    return 0;
}

/* --- the split feeder ------------------------------------------------------ */

/* proto_parse and proto_bin_parse. */
typedef size_t (*split_parse_fn)(struct proto_parser *parser, const char *buf, size_t len,
                                 struct proto_req *req, size_t *need);

/* What a "need more" answer's `need` may be. */
enum split_need {
    /* 0 (unknown) or the request's whole length (the text protocol knows
     * a storage command's total once its line is in). */
    SPLIT_NEED_TOTAL,
    /* 0 for an empty prefix, else more than the prefix and at most the
     * request (the binary protocol asks for its header, then its body). */
    SPLIT_NEED_PROGRESS,
};

/* A pointer field: NULL in both, or the same offset into each buffer when
 * it points into it (the buffers hold the same bytes), else (a meta
 * command's decoded key, which lives in the parser) the same n bytes. */
static inline void split_field_same(const char *a, const char *abuf, size_t alen, const char *b,
                                    const char *bbuf, size_t blen, size_t n)
{
    if (a == NULL || b == NULL) {
        assert_true(a == NULL && b == NULL);
        return;
    }
    bool a_in = a >= abuf && a < abuf + alen;
    bool b_in = b >= bbuf && b < bbuf + blen;
    assert_int_equal(a_in, b_in);
    if (a_in)
        assert_int_equal(a - abuf, b - bbuf);
    else
        assert_memory_equal(a, b, n);
}

/* Two parses of the same bytes, each request pointing into its own buffer,
 * gave the same request: every field of every protocol. */
static inline void split_req_same(const struct proto_req *a, const char *abuf, size_t alen,
                                  const struct proto_req *b, const char *bbuf, size_t blen)
{
    assert_int_equal(a->cmd, b->cmd);
    assert_int_equal(a->family, b->family);
    assert_int_equal(a->noreply, b->noreply);
    assert_int_equal(a->close, b->close);
    assert_int_equal(a->nkey, b->nkey);
    split_field_same(a->key, abuf, alen, b->key, bbuf, blen, a->nkey);
    assert_int_equal(a->keys_len, b->keys_len);
    assert_int_equal(a->nkeys, b->nkeys);
    split_field_same(a->keys, abuf, alen, b->keys, bbuf, blen, a->keys_len);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->exptime, b->exptime);
    assert_int_equal(a->nbytes, b->nbytes);
    split_field_same(a->value, abuf, alen, b->value, bbuf, blen, a->nbytes);
    assert_int_equal(a->cas, b->cas);
    assert_int_equal(a->delta, b->delta);
    assert_int_equal(a->level, b->level);
    assert_int_equal(a->too_large, b->too_large);
    assert_int_equal(a->nargs, b->nargs);
    split_field_same(a->args, abuf, alen, b->args, bbuf, blen, a->nargs);
    assert_int_equal(a->graceful, b->graceful);
    assert_int_equal(a->nopaque, b->nopaque);
    split_field_same(a->opaque, abuf, alen, b->opaque, bbuf, blen, a->nopaque);
    if (a->error == NULL || b->error == NULL)
        assert_true(a->error == NULL && b->error == NULL);
    else
        assert_string_equal(a->error, b->error);
    assert_memory_equal(&a->bin, &b->bin, sizeof(a->bin));
    assert_memory_equal(&a->meta, &b->meta, sizeof(a->meta));
}

/* An exact-size heap copy, so that ASan sees a read past the end. */
static inline char *split_copy(const char *buf, size_t len)
{
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    if (len > 0)
        memcpy(copy, buf, len);
    return copy;
}

/*
 * Parses buf[0..len) whole with a copy of `model` into *whole (pointing into
 * buf; the parser's state after it in *after, if not NULL), then every
 * prefix buf[0..k), k = 0..len, in an exact-size copy with a fresh copy of
 * `model`: a prefix shorter than what the whole parse consumed answers 0
 * with `need` as `rule` says and leaves the parser's swallow as it was;
 * a longer one answers the same count, need 0, the same request and the
 * same parser state. Returns what the whole parse consumed (> 0). A key
 * the whole parse decoded into its parser (meta b) is not valid after the
 * return: the caller's *whole may use only fields that point into buf.
 */
static inline size_t split_feed(const struct proto_parser *model, split_parse_fn parse, enum split_need rule,
                                const char *buf, size_t len, struct proto_req *whole,
                                struct proto_parser *after)
{
    struct proto_parser full_parser = *model;
    size_t full_need = 12345;
    size_t full_n = parse(&full_parser, buf, len, whole, &full_need);
    assert_true(full_n > 0);
    assert_true(full_n <= len);
    assert_int_equal(full_need, 0);

    for (size_t k = 0; k <= len; k++) {
        char *part = split_copy(buf, k);
        struct proto_parser parser = *model;
        struct proto_req req;
        size_t need = 12345;
        size_t n = parse(&parser, part, k, &req, &need);
        if (k < full_n) {
            assert_int_equal(n, 0);
            assert_int_equal(parser.swallow, model->swallow);
            if (rule == SPLIT_NEED_TOTAL) {
                assert_true(need == 0 || need == full_n);
            } else if (k > 0) {
                assert_true(need > k);
                assert_true(need <= full_n);
            }
        } else {
            assert_int_equal(n, full_n);
            assert_int_equal(need, 0);
            assert_int_equal(parser.swallow, full_parser.swallow);
            split_req_same(&req, part, k, whole, buf, len);
        }
        free(part);
    }
    if (after != NULL)
        *after = full_parser;
    return full_n;
}

/* The text protocol's feeder: returns what the whole buffer consumed. */
static inline size_t split_feed_text(const struct proto_parser *model, const char *buf, size_t len)
{
    struct proto_req whole;
    return split_feed(model, proto_parse, SPLIT_NEED_TOTAL, buf, len, &whole, NULL);
}

#endif
