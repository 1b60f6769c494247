/*
 * test_store.c: the storage engine against memcached 1.6's semantics:
 * every command's outcomes and counters, expiry with a hand-driven clock,
 * flush_all, CAS issue, LRU eviction order, -M, page moves, metrics and a
 * randomized run checked against a reference model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"
#include "item.h"
#include "store.h"
#include "test_fixture.h"

#define T0 FIXTURE_T0
#define MIB FIXTURE_MIB

/* --- Helpers ---------------------------------------------------------------- */

/* Every test starts from an 8 MiB store (test_fixture.h's configuration). */
static int setup(void **state)
{
    return fixture_setup_cfg(state, fixture_cfg(8 * MIB));
}

static uint64_t h(const char *key)
{
    return hash_key(key, strlen(key));
}

static enum mc_status op_exp(struct fixture *f, enum store_op op, const char *key, const char *value,
                             uint32_t flags, mc_time_t exptime, uint64_t cas, uint64_t *cas_out)
{
    return store_set(f->store, op, key, strlen(key), h(key), flags, exptime, value, strlen(value),
                     cas, cas_out);
}

static enum mc_status op(struct fixture *f, enum store_op op, const char *key, const char *value)
{
    return op_exp(f, op, key, value, 0, 0, 0, NULL);
}

static enum mc_status set(struct fixture *f, const char *key, const char *value)
{
    return op(f, STORE_SET, key, value);
}

static const struct item *get(struct fixture *f, const char *key)
{
    return store_get(f->store, key, strlen(key), h(key));
}

/* Asserts that key holds exactly `value`. */
static void assert_value(struct fixture *f, const char *key, const char *value)
{
    const struct item *it = get(f, key);
    assert_non_null(it);
    assert_int_equal(item_nbytes(it), strlen(value));
    assert_memory_equal(item_value(it), value, strlen(value));
    assert_int_equal(item_nkey(it), strlen(key));
    assert_memory_equal(item_key(it), key, strlen(key));
}

static void assert_missing(struct fixture *f, const char *key)
{
    assert_null(get(f, key));
}

static size_t metric_index(const struct metric_desc *desc, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(desc[i].name, name) == 0)
            return i;
    }
    fail_msg("no metric %s", name);
    return 0;
}

static uint64_t stat(struct fixture *f, const char *name)
{
    uint64_t v[64];
    assert_true(store_metric_count <= 64);
    store_metrics(f->store, v);
    return v[metric_index(store_metric_desc, store_metric_count, name)];
}

static uint64_t cstat(struct fixture *f, unsigned id, const char *name)
{
    uint64_t v[64];
    assert_true(store_class_metric_count <= 64);
    store_class_metrics(f->store, id, v);
    return v[metric_index(store_class_metric_desc, store_class_metric_count, name)];
}

/* A class metric summed over every class (items count in memcached's size
 * classes, sizeclass.h). */
static uint64_t csum(struct fixture *f, const char *name)
{
    uint64_t total = 0;
    for (unsigned id = 1; id <= store_class_count(f->store); id++)
        total += cstat(f, id, name);
    return total;
}

static enum mc_status arith(struct fixture *f, const char *key, bool incr, uint64_t delta,
                            uint64_t *result)
{
    return store_arith(f->store, key, strlen(key), h(key), incr, delta, result);
}

/* --- Creation ----------------------------------------------------------------- */

static void test_store_create_rejects_bad_config(void **state)
{
    struct fixture *f = *state;
    struct store_cfg good = fixture_cfg(8 * MIB);
    good.arena = f->arena;
    struct store *s = NULL;
    struct store_cfg bad = good;
    bad.seg_size = 1000; /* not a multiple of 8 */
    assert_int_equal(store_create(&bad, &s), MC_EINVAL);
    bad = good;
    bad.arena_size = MIB / 2; /* below item_size_max */
    assert_int_equal(store_create(&bad, &s), MC_EINVAL);
    bad = good;
    bad.seg_size = 1024;
    bad.arena_size = (size_t)1 << 34; /* 2^24 segments: over 2^23 */
    assert_int_equal(store_create(&bad, &s), MC_EINVAL);
    bad = good;
    bad.cas_stride = 0;
    assert_int_equal(store_create(&bad, &s), MC_EINVAL);
    bad = good;
    bad.arena = NULL;
    assert_int_equal(store_create(&bad, &s), MC_EINVAL);
    assert_null(s);
    bad = good;
    bad.cas_enabled = false;
    bad.cas_stride = 0; /* no CAS: stride unused */
    assert_int_equal(store_create(&bad, &s), MC_OK);
    store_destroy(&s);
}

/* --- Retrieval and storage ------------------------------------------------------ */

static void test_store_set_get_roundtrip(void **state)
{
    struct fixture *f = *state;
    uint64_t cas = 0;
    assert_int_equal(op_exp(f, STORE_SET, "foo", "hello", 0xdeadbeef, 0, 0, &cas), MC_OK);
    assert_int_not_equal(cas, 0);
    const struct item *it = get(f, "foo");
    assert_non_null(it);
    assert_int_equal(item_flags(it), 0xdeadbeef);
    assert_int_equal(item_cas(it), cas);
    assert_int_equal(item_exptime(it), 0);
    assert_int_equal(item_atime(it), f->env.now);
    assert_true(item_fetched(it));
    assert_int_equal(item_clsid(it), 1);
    assert_value(f, "foo", "hello");
    /* overwrite: new value, new CAS, still one item */
    uint64_t cas2 = 0;
    assert_int_equal(op_exp(f, STORE_SET, "foo", "", 1, 0, 0, &cas2), MC_OK);
    assert_true(cas2 > cas);
    assert_value(f, "foo", "");
    assert_int_equal(stat(f, "curr_items"), 1);
    assert_int_equal(stat(f, "total_items"), 2);
    assert_int_equal(stat(f, "bytes"), store_item_total(3, 0));
    assert_int_equal(stat(f, "cmd_set"), 2);
    assert_int_equal(stat(f, "cmd_get"), 3);
    assert_int_equal(stat(f, "get_hits"), 3);
}

static void test_store_get_miss_counts(void **state)
{
    struct fixture *f = *state;
    assert_missing(f, "nope");
    assert_int_equal(stat(f, "cmd_get"), 1);
    assert_int_equal(stat(f, "get_misses"), 1);
    assert_int_equal(stat(f, "get_hits"), 0);
}

static void test_store_add_outcomes(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(op(f, STORE_ADD, "k", "one"), MC_OK);
    assert_int_equal(op(f, STORE_ADD, "k", "two"), MC_NOT_STORED);
    assert_value(f, "k", "one");
    assert_int_equal(stat(f, "cmd_set"), 2); /* NOT_STORED counts too */
    assert_int_equal(stat(f, "total_items"), 1);
    assert_int_equal(stat(f, "curr_items"), 1);
}

/* add on an existing key refreshes its atime (do_item_update), at most once
 * per interval. */
static void test_store_add_existing_bumps_lru(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(set(f, "old", "v"), MC_OK);
    mc_time_t t0 = f->env.now;
    fixture_advance(f, 5);
    assert_int_equal(op(f, STORE_ADD, "old", "x"), MC_NOT_STORED);
    assert_int_equal(item_atime(store_peek(f->store, "old", 3, h("old"))), t0); /* too soon */
    fixture_advance(f, MC_ITEM_UPDATE_INTERVAL);
    assert_int_equal(op(f, STORE_ADD, "old", "x"), MC_NOT_STORED);
    assert_int_equal(item_atime(store_peek(f->store, "old", 3, h("old"))), f->env.now);
    assert_value(f, "old", "v");
}

static void test_store_replace_outcomes(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(op(f, STORE_REPLACE, "k", "one"), MC_NOT_STORED);
    assert_missing(f, "k");
    assert_int_equal(set(f, "k", "one"), MC_OK);
    assert_int_equal(op_exp(f, STORE_REPLACE, "k", "two", 7, 0, 0, NULL), MC_OK);
    assert_value(f, "k", "two");
    assert_int_equal(item_flags(get(f, "k")), 7);
    assert_int_equal(stat(f, "cmd_set"), 3);
}

static void test_store_cas_outcomes(void **state)
{
    struct fixture *f = *state;
    uint64_t cas = 0, cas2 = 0;
    assert_int_equal(op_exp(f, STORE_CAS, "k", "x", 0, 0, 1, NULL), MC_NOT_FOUND);
    assert_int_equal(stat(f, "cas_misses"), 1);
    assert_int_equal(op_exp(f, STORE_SET, "k", "one", 0, 0, 0, &cas), MC_OK);
    assert_int_equal(op_exp(f, STORE_CAS, "k", "two", 0, 0, cas + 1, NULL), MC_EXISTS);
    assert_int_equal(op_exp(f, STORE_CAS, "k", "two", 0, 0, 0, NULL), MC_EXISTS);
    assert_int_equal(stat(f, "cas_badval"), 2);
    assert_int_equal(csum(f, "cas_badval"), 2);
    assert_value(f, "k", "one");
    assert_int_equal(op_exp(f, STORE_CAS, "k", "two", 5, 0, cas, &cas2), MC_OK);
    assert_true(cas2 > cas);
    assert_int_equal(stat(f, "cas_hits"), 1);
    assert_value(f, "k", "two");
    assert_int_equal(item_flags(get(f, "k")), 5);
    assert_int_equal(op_exp(f, STORE_CAS, "k", "three", 0, 0, cas, NULL), MC_EXISTS);
    assert_int_equal(stat(f, "cmd_set"), 6); /* every cas whose item was allocated */
    /* for other commands the cas argument is not a check */
    assert_int_equal(op_exp(f, STORE_SET, "k", "four", 0, 0, 12345, NULL), MC_OK);
}

static void test_store_append_prepend(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(op(f, STORE_APPEND, "k", "x"), MC_NOT_STORED);
    assert_int_equal(op(f, STORE_PREPEND, "k", "x"), MC_NOT_STORED);
    assert_missing(f, "k");
    mc_time_t exptime = f->env.now + 100;
    uint64_t cas = 0, cas2 = 0;
    assert_int_equal(op_exp(f, STORE_SET, "k", "mid", 42, exptime, 0, &cas), MC_OK);
    assert_int_equal(op_exp(f, STORE_APPEND, "k", "_end", 1, f->env.now + 5, 0, &cas2), MC_OK);
    assert_true(cas2 > cas);
    assert_int_equal(op_exp(f, STORE_PREPEND, "k", "start_", 2, 0, 0, NULL), MC_OK);
    assert_value(f, "k", "start_mid_end");
    const struct item *it = get(f, "k");
    assert_int_equal(item_flags(it), 42);       /* kept */
    assert_int_equal(item_exptime(it), exptime); /* kept */
    assert_int_equal(stat(f, "curr_items"), 1);
    assert_int_equal(stat(f, "bytes"), store_item_total(1, 13));
    /* a bigger value is a new copy; the old ones are dead bytes */
    char big[200];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(op(f, STORE_APPEND, "k", big), MC_OK);
    assert_int_equal(item_nbytes(get(f, "k")), 13 + 199);
    assert_int_equal(csum(f, "number"), 1);
    assert_int_equal(stat(f, "bytes"), store_item_total(1, 13 + 199));
    assert_true(store_check(f->store));
}

static void test_store_append_beyond_item_max_not_stored(void **state)
{
    struct fixture *f = *state;
    struct store_cfg cfg = fixture_cfg(4 * MIB);
    cfg.item_size_max = 1024;
    fixture_remake(f, cfg);
    char value[1100];
    memset(value, 'v', sizeof(value));
    size_t half = 1024 - store_item_total(1, 0) - 10;
    assert_int_equal(store_set(f->store, STORE_SET, "k", 1, h("k"), 0, 0, value, half, 0, NULL), MC_OK);
    assert_int_equal(store_set(f->store, STORE_APPEND, "k", 1, h("k"), 0, 0, value, 11, 0, NULL),
                     MC_NOT_STORED);
    assert_int_equal(item_nbytes(get(f, "k")), half);
    assert_int_equal(store_set(f->store, STORE_APPEND, "k", 1, h("k"), 0, 0, value, 10, 0, NULL),
                     MC_OK);
    assert_int_equal(item_nbytes(get(f, "k")), half + 10);
    assert_int_equal(stat(f, "store_too_large"), 0);
}

static void test_store_too_large(void **state)
{
    struct fixture *f = *state;
    size_t max_value = MIB - store_item_total(1, 0);
    assert_true(store_item_fits(f->store, 1, max_value));
    assert_false(store_item_fits(f->store, 1, max_value + 1));
    assert_int_equal(store_item_total(10, 100), 138);

    assert_int_equal(set(f, "k", "old"), MC_OK);
    /* add/replace/append too large: refused, old item stays */
    assert_int_equal(store_set(f->store, STORE_ADD, "k", 1, h("k"), 0, 0, NULL, max_value + 1, 0, NULL),
                     MC_E2BIG);
    assert_int_equal(store_set(f->store, STORE_APPEND, "k", 1, h("k"), 0, 0, NULL, max_value + 1, 0,
                               NULL),
                     MC_E2BIG);
    assert_value(f, "k", "old");
    /* set too large: refused and the old value is gone; value is not read */
    assert_int_equal(store_set(f->store, STORE_SET, "k", 1, h("k"), 0, 0, NULL, max_value + 1, 0, NULL),
                     MC_E2BIG);
    assert_missing(f, "k");
    assert_int_equal(stat(f, "store_too_large"), 3);
    assert_int_equal(stat(f, "cmd_set"), 1);
    assert_int_equal(stat(f, "curr_items"), 0);

    /* exactly item_size_max fits (the one-page class) */
    char *value = malloc(max_value);
    memset(value, 'z', max_value);
    assert_int_equal(store_set(f->store, STORE_SET, "k", 1, h("k"), 0, 0, value, max_value, 0, NULL),
                     MC_OK);
    assert_int_equal(item_nbytes(get(f, "k")), max_value);
    free(value);
}

static void test_store_delete(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_delete(f->store, "k", 1, h("k")), MC_NOT_FOUND);
    assert_int_equal(set(f, "k", "v"), MC_OK);
    assert_int_equal(store_delete(f->store, "k", 1, h("k")), MC_OK);
    assert_missing(f, "k");
    assert_int_equal(store_delete(f->store, "k", 1, h("k")), MC_NOT_FOUND);
    assert_int_equal(stat(f, "delete_hits"), 1);
    assert_int_equal(csum(f, "delete_hits"), 1);
    assert_int_equal(stat(f, "delete_misses"), 2);
    assert_int_equal(stat(f, "curr_items"), 0);
    assert_int_equal(stat(f, "bytes"), 0);
    assert_int_equal(stat(f, "seg_free"), stat(f, "seg_segments")); /* its segment was freed */
}

static void test_store_touch_and_gat(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_touch(f->store, "k", 1, h("k"), f->env.now + 10), MC_NOT_FOUND);
    assert_null(store_gat(f->store, "k", 1, h("k"), f->env.now + 10));
    uint64_t cas = 0;
    assert_int_equal(op_exp(f, STORE_SET, "k", "v", 3, f->env.now + 5, 0, &cas), MC_OK);
    assert_int_equal(store_touch(f->store, "k", 1, h("k"), f->env.now + 100), MC_OK);
    const struct item *it = store_gat(f->store, "k", 1, h("k"), f->env.now + 200);
    assert_non_null(it);
    assert_int_equal(item_exptime(it), f->env.now + 200);
    assert_int_equal(item_cas(it), cas); /* touch and gat keep the CAS */
    assert_true(item_fetched(it));
    fixture_advance(f, 150);
    assert_value(f, "k", "v"); /* the first exptime (now + 5) no longer applies */
    assert_int_equal(stat(f, "cmd_touch"), 4);
    assert_int_equal(stat(f, "touch_hits"), 2);
    assert_int_equal(stat(f, "touch_misses"), 2);
    assert_int_equal(stat(f, "cmd_get"), 1); /* gat is not a get */
    assert_int_equal(stat(f, "get_hits"), 1);
    /* touch with an exptime in the past kills the item */
    assert_int_equal(store_touch(f->store, "k", 1, h("k"), 1), MC_OK);
    assert_missing(f, "k");
}

/* --- incr/decr ---------------------------------------------------------------------- */

static void test_store_incr_decr_basic(void **state)
{
    struct fixture *f = *state;
    uint64_t r = 0, cas = 0;
    assert_int_equal(arith(f, "n", true, 1, &r), MC_NOT_FOUND);
    assert_int_equal(arith(f, "n", false, 1, &r), MC_NOT_FOUND);
    assert_int_equal(stat(f, "incr_misses"), 1);
    assert_int_equal(stat(f, "decr_misses"), 1);
    assert_int_equal(op_exp(f, STORE_SET, "n", "41", 9, 0, 0, &cas), MC_OK);
    assert_int_equal(arith(f, "n", true, 1, &r), MC_OK);
    assert_int_equal(r, 42);
    assert_value(f, "n", "42");
    assert_true(item_cas(get(f, "n")) > cas); /* a new CAS */
    assert_int_equal(item_flags(get(f, "n")), 9);
    assert_int_equal(arith(f, "n", false, 2, &r), MC_OK);
    assert_int_equal(r, 40);
    assert_int_equal(stat(f, "incr_hits"), 1);
    assert_int_equal(stat(f, "decr_hits"), 1);
    assert_int_equal(csum(f, "incr_hits"), 1);
}

static void test_store_decr_pads_with_spaces(void **state)
{
    struct fixture *f = *state;
    uint64_t r = 0;
    assert_int_equal(set(f, "n", "10"), MC_OK);
    assert_int_equal(arith(f, "n", false, 1, &r), MC_OK);
    assert_int_equal(r, 9);
    assert_value(f, "n", "9 ");
    /* the padded value still parses, and grows back in place */
    assert_int_equal(arith(f, "n", true, 1, &r), MC_OK);
    assert_value(f, "n", "10");
    assert_int_equal(set(f, "n", "1000"), MC_OK);
    assert_int_equal(arith(f, "n", false, 999, &r), MC_OK);
    assert_value(f, "n", "1   ");
}

static void test_store_decr_floors_at_zero(void **state)
{
    struct fixture *f = *state;
    uint64_t r = 1;
    assert_int_equal(set(f, "n", "5"), MC_OK);
    assert_int_equal(arith(f, "n", false, 6, &r), MC_OK);
    assert_int_equal(r, 0);
    assert_value(f, "n", "0");
    assert_int_equal(arith(f, "n", false, UINT64_MAX, &r), MC_OK);
    assert_int_equal(r, 0);
}

static void test_store_incr_wraps_and_grows(void **state)
{
    struct fixture *f = *state;
    uint64_t r = 0;
    uint64_t cas_before = 0;
    assert_int_equal(op_exp(f, STORE_SET, "n", "18446744073709551615", 4, f->env.now + 100, 0,
                            &cas_before),
                     MC_OK);
    assert_int_equal(arith(f, "n", true, 2, &r), MC_OK);
    assert_int_equal(r, 1);
    char padded[21];
    memset(padded, ' ', 20);
    padded[0] = '1';
    padded[20] = '\0';
    assert_value(f, "n", padded);
    /* a longer result replaces the item, keeping flags and exptime */
    assert_int_equal(op_exp(f, STORE_SET, "m", "99", 4, f->env.now + 100, 0, NULL), MC_OK);
    assert_int_equal(arith(f, "m", true, 1, &r), MC_OK);
    assert_int_equal(r, 100);
    assert_value(f, "m", "100");
    const struct item *it = get(f, "m");
    assert_int_equal(item_flags(it), 4);
    assert_int_equal(item_exptime(it), f->env.now + 100);
    assert_int_equal(stat(f, "curr_items"), 2);
}

static void test_store_incr_non_numeric(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {"", "abc", "12a", "-1", " ", "1-2x", "18446744073709551616",
                                      "99999999999999999999", "+", "-"};
    uint64_t r = 7;
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(set(f, "n", bad[i]), MC_OK);
        assert_int_equal(arith(f, "n", true, 1, &r), MC_NON_NUMERIC);
        assert_value(f, "n", bad[i]);
    }
    assert_int_equal(r, 7);
    assert_int_equal(stat(f, "incr_hits"), 0);
    assert_int_equal(stat(f, "incr_misses"), 0);
}

/* safe_strtoull's quirks: leading white space and '+', trailing white
 * space, and "-0" (negative but not negative as a signed number). A
 * value with a '-' that reads as a huge number is refused even when the
 * '-' is after the digits. */
static void test_store_incr_accepts_strtoull_forms(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *value;
        uint64_t result;
    } good[] = {{"  7", 8}, {"+7", 8}, {"7 ", 8}, {"7\r", 8}, {"-0", 1},
                {"0007", 8}, {"18446744073709551614", 18446744073709551615ULL}};
    for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t r = 0;
        assert_int_equal(set(f, "n", good[i].value), MC_OK);
        assert_int_equal(arith(f, "n", true, 1, &r), MC_OK);
        assert_int_equal(r, good[i].result);
    }
    uint64_t r = 0;
    assert_int_equal(set(f, "n", "18446744073709551615 -"), MC_OK);
    assert_int_equal(arith(f, "n", true, 1, &r), MC_NON_NUMERIC);
}

/* --- Expiry -------------------------------------------------------------------------- */

static void test_store_expiry_relative_absolute_negative(void **state)
{
    struct fixture *f = *state;
    mc_time_t rel = mc_clock_exptime(&f->clock, f->env.now, 10);
    mc_time_t abs = mc_clock_exptime(&f->clock, f->env.now, T0 + 20);
    mc_time_t neg = mc_clock_exptime(&f->clock, f->env.now, -1);
    mc_time_t past = mc_clock_exptime(&f->clock, f->env.now, T0 - 100);
    assert_int_equal(op_exp(f, STORE_SET, "rel", "v", 0, rel, 0, NULL), MC_OK);
    assert_int_equal(op_exp(f, STORE_SET, "abs", "v", 0, abs, 0, NULL), MC_OK);
    assert_int_equal(op_exp(f, STORE_SET, "neg", "v", 0, neg, 0, NULL), MC_OK);
    assert_int_equal(op_exp(f, STORE_SET, "past", "v", 0, past, 0, NULL), MC_OK);
    assert_int_equal(op_exp(f, STORE_SET, "never", "v", 0, 0, 0, NULL), MC_OK);
    assert_missing(f, "neg");
    assert_missing(f, "past");
    fixture_advance(f, 9);
    assert_value(f, "rel", "v");
    fixture_advance(f, 1); /* exptime <= now: dead */
    assert_missing(f, "rel");
    assert_value(f, "abs", "v");
    fixture_advance(f, 10);
    assert_missing(f, "abs");
    fixture_advance(f, 100000);
    assert_value(f, "never", "v");
    assert_int_equal(stat(f, "get_expired"), 4);
    assert_int_equal(stat(f, "curr_items"), 1);
}

/* Every lookup, not only get, unlinks an expired item and counts it. */
static void test_store_lazy_expiry_on_any_lookup(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(op_exp(f, STORE_SET, "a", "v", 0, f->env.now + 1, 0, NULL), MC_OK);
    assert_int_equal(op_exp(f, STORE_SET, "b", "1", 0, f->env.now + 1, 0, NULL), MC_OK);
    assert_int_equal(op_exp(f, STORE_SET, "c", "v", 0, f->env.now + 1, 0, NULL), MC_OK);
    fixture_advance(f, 1);
    assert_int_equal(op(f, STORE_ADD, "a", "new"), MC_OK); /* the expired one is gone */
    assert_value(f, "a", "new");
    uint64_t r;
    assert_int_equal(arith(f, "b", true, 1, &r), MC_NOT_FOUND);
    assert_int_equal(store_delete(f->store, "c", 1, h("c")), MC_NOT_FOUND);
    assert_int_equal(stat(f, "get_expired"), 3);
    assert_int_equal(stat(f, "curr_items"), 1);
    assert_int_equal(stat(f, "reclaimed"), 0); /* as memcached: lookups are not reclaims */
}

static void test_store_crawler_reclaims_expired(void **state)
{
    struct fixture *f = *state;
    char key[16], value[200];
    memset(value, 'v', sizeof(value));
    unsigned n = 3000;
    for (unsigned i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "k%u", i);
        size_t nbytes = i % 3 == 0 ? 150 : 10; /* two classes, two pages */
        mc_time_t exptime = i % 2 == 0 ? f->env.now + 5 : 0;
        assert_int_equal(store_set(f->store, STORE_SET, key, strlen(key), h(key), 0, exptime,
                                   value, nbytes, 0, NULL),
                         MC_OK);
    }
    snprintf(key, sizeof(key), "k%u", 1);
    assert_non_null(get(f, key)); /* fetched items are not "unfetched" */
    snprintf(key, sizeof(key), "k%u", 2);
    assert_non_null(get(f, key));
    assert_int_equal(store_crawl(f->store, 100000), 0); /* nothing expired yet */
    assert_int_equal(stat(f, "crawler_items_checked"), 0); /* so no item was read */
    fixture_advance(f, 5);
    unsigned freed = 0;
    for (int calls = 0; calls < 1000 && freed < n / 2; calls++)
        freed += store_crawl(f->store, 37); /* small budgets resume */
    assert_int_equal(freed, n / 2);
    assert_int_equal(stat(f, "crawler_reclaimed"), n / 2);
    assert_int_equal(stat(f, "expired_unfetched"), n / 2 - 1);
    assert_int_equal(stat(f, "curr_items"), n / 2);
    assert_int_equal(stat(f, "get_expired"), 0);
    for (unsigned i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "k%u", i);
        if (i % 2 == 0)
            assert_missing(f, key);
        else
            assert_non_null(get(f, key));
    }
    assert_int_equal(stat(f, "get_expired"), 0); /* the crawler got them all */
}

/* --- Flush --------------------------------------------------------------------------- */

static void test_store_flush_now(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(set(f, "early", "v"), MC_OK);
    fixture_advance(f, 5);
    assert_int_equal(set(f, "same_second", "v"), MC_OK);
    store_flush(f->store, f->env.now);
    assert_int_equal(set(f, "after", "v"), MC_OK); /* same second, after the flush */
    assert_missing(f, "early");
    assert_missing(f, "same_second");
    assert_value(f, "after", "v");
    assert_int_equal(stat(f, "get_flushed"), 2);
    assert_int_equal(stat(f, "curr_items"), 1);
    fixture_advance(f, 1);
    assert_value(f, "after", "v");
    assert_int_equal(set(f, "later", "v"), MC_OK);
    assert_value(f, "later", "v");
}

static void test_store_flush_delayed(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(set(f, "a", "v"), MC_OK);
    store_flush(f->store, f->env.now + 10);
    fixture_advance(f, 8);
    assert_value(f, "a", "v");
    assert_int_equal(set(f, "b", "v"), MC_OK);
    fixture_advance(f, 1); /* memcached: oldest_live = when - 1 */
    assert_missing(f, "a");
    assert_missing(f, "b");
    assert_int_equal(stat(f, "get_flushed"), 2);
    fixture_advance(f, 1);
    assert_int_equal(set(f, "c", "v"), MC_OK);
    assert_value(f, "c", "v");
}

static void test_store_flush_crawled_and_reclaimed(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(set(f, key, "v"), MC_OK);
    }
    store_flush(f->store, f->env.now);
    assert_int_equal(store_crawl(f->store, 1000), 100);
    assert_int_equal(stat(f, "crawler_reclaimed"), 100);
    assert_int_equal(stat(f, "expired_unfetched"), 0); /* flushed is not expired */
    assert_int_equal(stat(f, "curr_items"), 0);
}

static void test_store_flush_without_cas(void **state)
{
    struct fixture *f = *state;
    struct store_cfg cfg = fixture_cfg(4 * MIB);
    cfg.cas_enabled = false;
    fixture_remake(f, cfg);
    uint64_t cas = 1;
    assert_int_equal(op_exp(f, STORE_SET, "a", "v", 0, 0, 0, &cas), MC_OK);
    assert_int_equal(cas, 0);
    assert_int_equal(item_cas(get(f, "a")), 0);
    store_flush(f->store, f->env.now);
    assert_missing(f, "a");
    /* without CAS memcached cannot tell this second's later items apart */
    assert_int_equal(set(f, "b", "v"), MC_OK);
    assert_missing(f, "b");
    fixture_advance(f, 1);
    assert_int_equal(set(f, "c", "v"), MC_OK);
    assert_value(f, "c", "v");
}

/* --- CAS ----------------------------------------------------------------------------- */

static void test_store_cas_unique_across_stores(void **state)
{
    struct fixture *f = *state;
    enum { STORES = 3, STRIDE = 4, N = 200 };
    struct store *stores[STORES];
    void *arenas[STORES];
    uint64_t seen[STORES * N];
    unsigned nseen = 0;
    for (int s = 0; s < STORES; s++) {
        struct store_cfg cfg = fixture_cfg(MIB);
        assert_int_equal(posix_memalign(&arenas[s], 4096, cfg.arena_size), 0);
        cfg.arena = arenas[s];
        cfg.cas_offset = (uint32_t)s + 1;
        cfg.cas_stride = STRIDE;
        assert_int_equal(store_create(&cfg, &stores[s]), MC_OK);
        store_set_clock(stores[s], f->env.now);
        uint64_t last = 0;
        for (int i = 0; i < N; i++) {
            uint64_t cas = 0;
            char key[16];
            snprintf(key, sizeof(key), "k%d", i % 7);
            assert_int_equal(store_set(stores[s], STORE_SET, key, strlen(key), h(key), 0, 0, "v", 1,
                                       0, &cas),
                             MC_OK);
            assert_true(cas > last); /* monotonic */
            assert_int_equal(cas % STRIDE, (uint64_t)(s + 1) % STRIDE);
            last = cas;
            seen[nseen++] = cas;
        }
        assert_int_equal(last, (uint64_t)s + 1 + (uint64_t)N * STRIDE);
    }
    for (unsigned i = 0; i < nseen; i++) {
        assert_int_not_equal(seen[i], 0);
        for (unsigned j = i + 1; j < nseen; j++)
            assert_int_not_equal(seen[i], seen[j]);
    }
    for (int s = 0; s < STORES; s++) {
        store_destroy(&stores[s]);
        free(arenas[s]);
    }
}

static void test_store_cas_disabled_is_zero(void **state)
{
    struct fixture *f = *state;
    struct store_cfg cfg = fixture_cfg(4 * MIB);
    cfg.cas_enabled = false;
    fixture_remake(f, cfg);
    uint64_t cas = 99, r;
    assert_int_equal(op_exp(f, STORE_SET, "n", "1", 0, 0, 0, &cas), MC_OK);
    assert_int_equal(cas, 0);
    assert_int_equal(arith(f, "n", true, 1, &r), MC_OK);
    assert_int_equal(item_cas(get(f, "n")), 0);
    assert_int_equal(op_exp(f, STORE_CAS, "n", "x", 0, 0, 1, NULL), MC_EXISTS);
}

/* --- Memory pressure ------------------------------------------------------------------- */

#define SEG (32 * 1024)

/* A store of `segs` segments of 32 KiB, items up to one segment. */
static void small_store(struct fixture *f, unsigned segs, bool evictions)
{
    struct store_cfg cfg = fixture_cfg((size_t)segs * SEG);
    cfg.item_size_max = SEG;
    cfg.seg_size = SEG;
    cfg.evictions = evictions;
    fixture_remake(f, cfg);
}

static enum mc_status set_n_exp(struct fixture *f, unsigned i, size_t nbytes, mc_time_t exptime)
{
    char key[16];
    static char value[256 * 1024];
    snprintf(key, sizeof(key), "k%u", i);
    memset(value, 'a' + (char)(i % 26), nbytes);
    return store_set(f->store, STORE_SET, key, strlen(key), h(key), 0, exptime, value, nbytes, 0,
                     NULL);
}

static enum mc_status set_n(struct fixture *f, unsigned i, size_t nbytes)
{
    return set_n_exp(f, i, nbytes, 0);
}

static const struct item *get_n(struct fixture *f, unsigned i)
{
    char key[16];
    snprintf(key, sizeof(key), "k%u", i);
    return get(f, key);
}

static const struct item *peek_n(struct fixture *f, unsigned i)
{
    char key[16];
    snprintf(key, sizeof(key), "k%u", i);
    return store_peek(f->store, key, strlen(key), h(key));
}

/* S3-FIFO: items read again survive any amount of one-time traffic, which
 * leaves through the small queue. */
static void test_store_eviction_keeps_read_items(void **state)
{
    struct fixture *f = *state;
    small_store(f, 64, true);
    unsigned hot = 300, next = hot;
    for (unsigned i = 0; i < hot; i++)
        assert_int_equal(set_n(f, i, 100), MC_OK);
    for (unsigned round = 0; round < 40; round++) {
        for (unsigned i = 0; i < hot; i++)
            assert_non_null(get_n(f, i)); /* never missed */
        for (unsigned n = 0; n < 2000; n++)
            assert_int_equal(set_n(f, next++, 100), MC_OK); /* read never */
        assert_true(store_check(f->store));
    }
    /* the one-time items: 80,000 x 136 bytes through 2 MiB */
    assert_true(stat(f, "evictions") > 60000);
    assert_true(stat(f, "evict_kept") >= hot);
    assert_int_equal(stat(f, "evicted_unfetched"), stat(f, "evictions"));
    assert_true(stat(f, "bytes") >= 64 * SEG * 8 / 10);
    for (unsigned i = 0; i < hot; i++)
        assert_non_null(get_n(f, i));
}

/* Evicted items are counted as memcached counts them. */
static void test_store_eviction_counts(void **state)
{
    struct fixture *f = *state;
    small_store(f, 4, true);
    unsigned n = 0;
    for (; stat(f, "evictions") == 0; n++)
        assert_int_equal(set_n_exp(f, n, 100, n == 0 ? f->env.now + 100000 : 0), MC_OK);
    /* k0 (exptime set, never read) went with the first segment */
    assert_null(peek_n(f, 0));
    assert_true(csum(f, "evicted_nonzero") == 1);
    assert_int_equal(stat(f, "evicted_unfetched"), stat(f, "evictions"));
    assert_int_equal(stat(f, "seg_evicted"), 1);
    /* items read once: kept out of SMALL into MAIN, then evicted from MAIN
     * fetched and active (hit within the update interval) */
    small_store(f, 8, true);
    for (n = 0; stat(f, "evictions") < 100; n++) {
        assert_int_equal(set_n(f, n, 100), MC_OK);
        assert_non_null(get_n(f, n));
        if (n % 1000 == 0)
            fixture_advance(f, 1);
    }
    assert_true(stat(f, "evict_kept") > 100);
    assert_int_equal(stat(f, "evicted_active"), stat(f, "evictions"));
    assert_int_equal(stat(f, "evicted_unfetched"), 0);
    assert_true(csum(f, "evicted_time") >= 1);
    assert_true(store_check(f->store));
}

static void fill(struct fixture *f, unsigned *n, size_t nbytes)
{
    while (set_n(f, *n, nbytes) == MC_OK)
        (*n)++;
}

static void test_store_no_evictions_enomem(void **state)
{
    struct fixture *f = *state;
    small_store(f, 2, false);
    unsigned n = 0;
    fill(f, &n, 100);
    assert_true(n > 400);
    assert_null(peek_n(f, n)); /* the refused set left nothing */
    assert_int_equal(stat(f, "store_no_memory"), 1);
    assert_int_equal(set_n(f, 0, 100), MC_ENOMEM); /* set: the old value goes */
    assert_null(get_n(f, 0));
    /* its bytes are reused: the segment is compacted, nothing evicted */
    assert_int_equal(set_n(f, n, 100), MC_OK);
    assert_int_equal(stat(f, "seg_compacted"), 1);
    n++;
    char key[] = "k1", value[100] = {0};
    assert_int_equal(store_set(f->store, STORE_ADD, key, 2, h(key), 0, 0, value, 100, 0, NULL),
                     MC_ENOMEM);
    assert_non_null(get(f, key)); /* add: the old value stays */
    assert_int_equal(stat(f, "evictions"), 0);
    assert_int_equal(stat(f, "curr_items"), n - 1);
    assert_true(csum(f, "outofmemory") >= 3);
    assert_true(store_check(f->store));

    /* deleting every item of a segment frees it whole, for any size */
    for (unsigned i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%u", i);
        const struct item *it = store_peek(f->store, k, strlen(k), h(k));
        if (it != NULL && (const char *)it < (const char *)f->arena + SEG)
            assert_int_equal(store_delete(f->store, k, strlen(k), h(k)), MC_OK);
    }
    assert_int_equal(stat(f, "seg_free"), 1);
    assert_int_equal(set_n(f, 100000, 30000), MC_OK);
    assert_non_null(get_n(f, 100000));

    /* expired segments are reclaimed whole under -M too */
    small_store(f, 2, false);
    n = 0;
    while (set_n_exp(f, n, 100, f->env.now + 10) == MC_OK)
        n++;
    fixture_advance(f, 10);
    assert_int_equal(set_n(f, 100000, 100), MC_OK);
    assert_true(stat(f, "reclaimed") > 0);
    assert_int_equal(stat(f, "evictions"), 0);
}

/* incr writes a new copy (items are immutable): with -M and no room, it
 * fails and the old value stays. */
static void test_store_incr_enomem(void **state)
{
    struct fixture *f = *state;
    small_store(f, 1, false);
    char key[] = "k0";
    assert_int_equal(store_set(f->store, STORE_SET, key, 2, h(key), 0, 0, "9", 1, 0, NULL), MC_OK);
    unsigned n = 1;
    fill(f, &n, 1);
    uint64_t r = 0;
    assert_int_equal(arith(f, key, true, 1, &r), MC_ENOMEM);
    assert_value(f, key, "9");
}

/* TTL reclaim with a hand-driven clock: items of one TTL share segments,
 * which are freed whole once the TTL passed, by the crawler or by the
 * next allocation, before anything live is evicted. */
static void test_store_ttl_segments_reclaimed_whole(void **state)
{
    struct fixture *f = *state;
    small_store(f, 16, true);
    unsigned n = 0;
    for (; n < 800; n++) /* ~4 segments of TTL 100 */
        assert_int_equal(set_n_exp(f, n, 120, f->env.now + 100), MC_OK);
    for (; n < 1200; n++) /* never expire: other segments */
        assert_int_equal(set_n(f, n, 120), MC_OK);
    uint64_t free_before = stat(f, "seg_free");
    assert_int_equal(store_crawl(f->store, 100000), 0);
    assert_int_equal(stat(f, "crawler_items_checked"), 0); /* nothing dead: no item read */
    fixture_advance(f, 99);
    assert_int_equal(store_crawl(f->store, 100000), 0);
    fixture_advance(f, 1);
    assert_int_equal(store_crawl(f->store, 100000), 800);
    assert_int_equal(stat(f, "crawler_reclaimed"), 800);
    assert_int_equal(stat(f, "expired_unfetched"), 800);
    assert_true(stat(f, "seg_expired") >= 4);
    assert_true(stat(f, "seg_free") >= free_before + 4);
    assert_int_equal(stat(f, "curr_items"), 400);
    assert_true(store_check(f->store));

    /* without the crawler: a full store frees expired segments first */
    small_store(f, 8, true);
    n = 0;
    for (; n < 600; n++)
        assert_int_equal(set_n_exp(f, n, 120, f->env.now + 5), MC_OK);
    while (stat(f, "seg_free") > 1)
        assert_int_equal(set_n(f, n++, 120), MC_OK);
    fixture_advance(f, 5);
    for (unsigned i = 0; i < 600; i++)
        assert_int_equal(set_n(f, n++, 120), MC_OK);
    assert_int_equal(stat(f, "evictions"), 0);
    assert_int_equal(stat(f, "reclaimed"), 600);
    assert_true(store_check(f->store));
}

/* Memory freed by any size serves any size: segments have no class. */
static void test_store_segment_reuse_any_size(void **state)
{
    struct fixture *f = *state;
    small_store(f, 32, true);
    unsigned n = 0;
    for (unsigned i = 0; i < 20000; i++)
        assert_int_equal(set_n(f, n++, 50), MC_OK);
    for (unsigned i = 0; i < 2000; i++)
        assert_int_equal(set_n(f, n++, 9000), MC_OK);
    for (unsigned i = 0; i < 20000; i++)
        assert_int_equal(set_n(f, n++, 700), MC_OK);
    assert_int_equal(stat(f, "slabs_moved"), 0);
    assert_true(stat(f, "bytes") >= 32 * SEG * 9 / 10);
    for (unsigned i = n - 1000; i < n; i++)
        assert_non_null(get_n(f, i));
    uint64_t gen0 = store_seg_gen(f->store, 0);
    assert_true(gen0 > 10); /* segment 0 was reused many times */
    assert_true(store_check(f->store));
}

/* Items larger than a segment take a run of adjacent segments. */
static void test_store_large_items_take_runs(void **state)
{
    struct fixture *f = *state;
    struct store_cfg cfg = fixture_cfg(16 * SEG);
    cfg.seg_size = SEG;
    cfg.item_size_max = 4 * SEG;
    fixture_remake(f, cfg);
    size_t big = 3 * SEG + 100;
    assert_int_equal(set_n(f, 0, 1000), MC_OK);
    assert_int_equal(set_n(f, 1, big), MC_OK);
    const struct item *it = get_n(f, 1);
    assert_non_null(it);
    assert_int_equal(item_nbytes(it), big);
    assert_int_equal(item_value(it)[big - 1], 'b');
    assert_int_equal(stat(f, "seg_free"), 16 - 1 - 4);
    assert_int_equal(set_n(f, 1, big), MC_OK); /* overwrite: the old run is freed */
    assert_int_equal(stat(f, "seg_free"), 16 - 1 - 4);
    assert_int_equal(store_delete(f->store, "k1", 2, h("k1")), MC_OK);
    assert_int_equal(stat(f, "seg_free"), 16 - 1);
    /* many large items: runs evict runs and small segments alike */
    for (unsigned i = 10; i < 100; i++) {
        assert_int_equal(set_n(f, i, big - i), MC_OK);
        assert_true(store_check(f->store));
    }
    assert_non_null(get_n(f, 99));
    assert_true(stat(f, "evictions") > 50);
    /* -m 8 with -t 2 and 100 KiB values (a 4 MiB shard of 32 KiB
     * segments): the newest items are always there */
    cfg = fixture_cfg(4 * MIB);
    cfg.item_size_max = MIB;
    fixture_remake(f, cfg);
    assert_int_equal(stat(f, "seg_size"), SEG);
    for (unsigned i = 0; i < 300; i++) {
        assert_int_equal(set_n(f, i, 100 * 1024), MC_OK);
        for (unsigned j = i > 5 ? i - 5 : 0; j <= i; j++)
            assert_non_null(peek_n(f, j));
    }
    assert_true(store_check(f->store));
    /* a run's last segment keeps ~28 KiB no 100 KiB item fits in: 78% */
    assert_true(stat(f, "bytes") >= 4 * MIB * 3 / 4);
    /* an item within -I but above the arena cannot exist */
    cfg = fixture_cfg(16 * SEG);
    cfg.seg_size = SEG;
    cfg.item_size_max = 4 * SEG;
    fixture_remake(f, cfg);
    assert_false(store_item_fits(f->store, 2, 4 * SEG));
}

/* A reference pins its segment: the bytes a pending reply points at stay
 * until the reference is dropped, whatever happens to the item. */
static void test_store_ref_pins_segment(void **state)
{
    struct fixture *f = *state;
    small_store(f, 8, true);
    assert_int_equal(set_n(f, 0, 200), MC_OK);
    const struct item *it = get_n(f, 0);
    struct store_ref ref = store_ref_get(f->store, it);
    const char *value = item_value(it);
    assert_int_equal(stat(f, "seg_refs"), 1);
    assert_int_equal(store_delete(f->store, "k0", 2, h("k0")), MC_OK);
    for (unsigned i = 1; i < 5000; i++)
        assert_int_equal(set_n(f, i, 200), MC_OK);
    assert_true(stat(f, "seg_evicted") > 20);
    assert_int_equal(store_seg_gen(f->store, ref.seg), ref.gen); /* never reused */
    for (unsigned i = 0; i < 200; i++)
        assert_int_equal(value[i], 'a');
    struct store_ref again = store_ref_get(f->store, it); /* a second pin, released by address */
    assert_int_equal(store_refs(f->store), 2);
    store_ref_release(f->store, value + 100, 100);
    assert_int_equal(store_refs(f->store), 1);
    assert_int_equal(again.seg, ref.seg);
    store_ref_put(f->store, ref);
    assert_int_equal(store_refs(f->store), 0);
    for (unsigned i = 5000; i < 10000; i++)
        assert_int_equal(set_n(f, i, 200), MC_OK);
    assert_true(store_seg_gen(f->store, ref.seg) != ref.gen); /* reused once released */
    assert_true(store_check(f->store));

    /* every segment pinned: sets fail cleanly */
    small_store(f, 2, true);
    struct store_ref refs[2];
    assert_int_equal(set_n(f, 0, 30000), MC_OK);
    refs[0] = store_ref_get(f->store, get_n(f, 0));
    assert_int_equal(set_n(f, 1, 30000), MC_OK);
    refs[1] = store_ref_get(f->store, get_n(f, 1));
    assert_int_equal(set_n(f, 2, 30000), MC_ENOMEM);
    store_ref_put(f->store, refs[0]);
    store_ref_put(f->store, refs[1]);
    assert_int_equal(set_n(f, 2, 30000), MC_OK);
}

/* The item an append reads from is pinned while the joined item is
 * allocated, even when its segment is the next victim. */
static void test_store_append_pins_old_item(void **state)
{
    struct fixture *f = *state;
    small_store(f, 2, true);
    assert_int_equal(set_n(f, 0, 10), MC_OK);
    unsigned n = 1;
    while (stat(f, "seg_free") > 0)
        assert_int_equal(set_n(f, n++, 3000), MC_OK);
    char key[] = "k0";
    assert_int_equal(store_set(f->store, STORE_APPEND, key, 2, h(key), 0, 0, "0123456789", 10, 0,
                               NULL),
                     MC_OK);
    assert_value(f, key, "aaaaaaaaaa0123456789");
    assert_true(store_check(f->store));
}

/* flush_all: the crawler frees every flushed segment whole. */
static void test_store_flush_frees_segments(void **state)
{
    struct fixture *f = *state;
    small_store(f, 16, true);
    for (unsigned i = 0; i < 2000; i++)
        assert_int_equal(set_n(f, i, 100), MC_OK);
    assert_true(stat(f, "seg_free") < 16);
    store_flush(f->store, f->env.now);
    assert_int_equal(set_n(f, 5000, 100), MC_OK); /* after the flush: kept */
    assert_int_equal(store_crawl(f->store, 100000), 2000);
    assert_int_equal(stat(f, "seg_free"), 15);
    assert_non_null(get_n(f, 5000));
    assert_true(store_check(f->store));
}

/* Two immediate flushes in one second: the crawler, which walked the
 * segments after the first, walks them again after the second. */
static void test_store_flush_twice_in_a_second_crawled(void **state)
{
    struct fixture *f = *state;
    store_flush(f->store, f->env.now);
    for (unsigned i = 0; i < 500; i++)
        assert_int_equal(set_n(f, i, 10), MC_OK);
    assert_int_equal(store_crawl(f->store, 100000), 0); /* all stored after it */
    store_flush(f->store, f->env.now);
    assert_int_equal(store_crawl(f->store, 100000), 500);
    assert_int_equal(stat(f, "curr_items"), 0);
    assert_true(store_check(f->store));
}

/* --- Hash table through the store ------------------------------------------------------ */

static void test_store_hash_table_grows(void **state)
{
    struct fixture *f = *state;
    fixture_remake(f, fixture_cfg(16 * MIB));
    /* memcached's units (issue 14): 1024 buckets of 7 items / 1.5 -> 2^12 */
    assert_int_equal(stat(f, "hash_power_level"), 12);
    assert_int_equal(stat(f, "hash_bytes"), 1024 * 64);
    unsigned n = 100000;
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(set_n(f, i, 1), MC_OK);
    assert_true(stat(f, "hash_power_level") >= 16); /* >= 2^14 buckets */
    assert_int_equal(stat(f, "hash_is_expanding"), 0);
    for (unsigned i = 0; i < n; i++)
        assert_non_null(get_n(f, i));
    assert_true(store_check(f->store));
}

/* --- Metrics ------------------------------------------------------------------------------ */

static void test_store_metric_tables_follow_memcached(void **state)
{
    (void)state;
    static const char *const global[] = {
        "cmd_get", "cmd_set", "cmd_touch", "cmd_meta", "get_hits", "get_misses", "get_expired",
        "get_flushed", "delete_misses", "delete_hits", "incr_misses", "incr_hits", "decr_misses", "decr_hits",
        "cas_misses", "cas_hits", "cas_badval", "touch_hits", "touch_misses", "store_too_large",
        "store_no_memory", "hash_power_level", "hash_bytes", "hash_is_expanding",
        "slab_reassign_evictions_nomem", "slabs_moved", "lru_crawler_starts", "bytes", "curr_items",
        "total_items", "expired_unfetched", "evicted_unfetched", "evicted_active", "evictions",
        "reclaimed", "crawler_reclaimed", "crawler_items_checked", "moves_to_cold", "moves_to_warm",
        "moves_within_lru", "seg_size", "seg_segments", "seg_free",
        "seg_small", "seg_dead_bytes", "seg_evicted", "seg_expired", "evict_kept", "seg_compacted", "ghost_hits", "seg_refs",
        "total_malloced"};
    assert_int_equal(store_metric_count, sizeof(global) / sizeof(global[0]));
    for (size_t i = 0; i < store_metric_count; i++)
        assert_string_equal(store_metric_desc[i].name, global[i]);

    static const char *const slabs[] = {"chunk_size", "chunks_per_page", "total_pages",
                                        "total_chunks", "used_chunks", "free_chunks",
                                        "free_chunks_end", "get_hits", "cmd_set", "delete_hits",
                                        "incr_hits", "decr_hits", "cas_hits", "cas_badval",
                                        "touch_hits"};
    static const char *const items[] = {
        "number", "number_hot", "number_warm", "number_cold", "age_hot", "age_warm", "age",
        "mem_requested", "evicted", "evicted_nonzero", "evicted_time", "outofmemory", "tailrepairs",
        "reclaimed", "expired_unfetched", "evicted_unfetched", "evicted_active", "crawler_reclaimed",
        "crawler_items_checked", "lrutail_reflocked", "moves_to_cold", "moves_to_warm",
        "moves_within_lru", "direct_reclaims", "hits_to_hot", "hits_to_warm", "hits_to_cold",
        "hits_to_temp"};
    size_t nslabs = sizeof(slabs) / sizeof(slabs[0]), nitems = sizeof(items) / sizeof(items[0]);
    assert_int_equal(store_class_metric_items_first, nslabs);
    assert_int_equal(store_class_metric_count, nslabs + nitems);
    for (size_t i = 0; i < nslabs; i++)
        assert_string_equal(store_class_metric_desc[i].name, slabs[i]);
    for (size_t i = 0; i < nitems; i++)
        assert_string_equal(store_class_metric_desc[nslabs + i].name, items[i]);
    /* levels survive `stats reset`, counters do not */
    assert_int_equal(store_metric_desc[metric_index(store_metric_desc, store_metric_count,
                                                    "curr_items")]
                         .type,
                     METRIC_GAUGE);
    assert_int_equal(store_metric_desc[metric_index(store_metric_desc, store_metric_count,
                                                    "total_items")]
                         .type,
                     METRIC_COUNTER);
}

static void test_store_metrics_and_reset(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(set(f, "a", "1"), MC_OK);
    assert_int_equal(set(f, "b", "22"), MC_OK);
    assert_non_null(get(f, "a"));
    assert_null(get(f, "zz"));
    fixture_advance(f, 3);
    assert_int_equal(csum(f, "number"), 2);
    /* both in memcached's first class (a 48-byte header, key, value, CAS) */
    unsigned cls = store_item_class(f->store, store_peek(f->store, "b", 1, h("b")));
    assert_int_equal(cstat(f, cls, "number"), 2);
    assert_int_equal(cstat(f, cls, "age"), 3);
    assert_int_equal(cstat(f, cls, "mem_requested"),
                     item_footprint(store_item_total(1, 1)) + item_footprint(store_item_total(1, 2)) + 16);
    assert_int_equal(stat(f, "seg_size"), 64 * 1024); /* 8 MiB: 128 segments */
    assert_int_equal(cstat(f, cls, "used_chunks"), 2);
    assert_int_equal(cstat(f, cls, "total_pages"), 0); /* no class owns a segment */
    assert_int_equal(csum(f, "cmd_set"), 2);
    assert_int_equal(csum(f, "get_hits"), 1);
    assert_int_equal(stat(f, "get_misses"), 1);
    assert_int_equal(stat(f, "total_malloced"), 64 * 1024);
    assert_int_equal(cstat(f, 0, "number"), 0); /* no class 0 */
    assert_int_equal(cstat(f, 99, "number"), 0);

    store_reset_metrics(f->store);
    assert_int_equal(stat(f, "cmd_get"), 0);
    assert_int_equal(stat(f, "get_hits"), 0);
    assert_int_equal(stat(f, "get_misses"), 0);
    assert_int_equal(stat(f, "cmd_set"), 0);
    assert_int_equal(stat(f, "total_items"), 0);
    assert_int_equal(csum(f, "get_hits"), 0);
    assert_int_equal(stat(f, "curr_items"), 2);
    assert_int_equal(stat(f, "bytes"), store_item_total(1, 1) + store_item_total(1, 2));
    assert_int_equal(csum(f, "number"), 2);
    assert_int_equal(csum(f, "used_chunks"), 2);
    assert_int_equal(stat(f, "total_malloced"), 64 * 1024);
    assert_int_equal(stat(f, "hash_power_level"), 12); /* memcached's units, issue 14 */
}

/* --- Randomized model test -------------------------------------------------------------------
 *
 * ~200k random commands over a few thousand keys with random sizes on a
 * small arena, against a model that knows every value: a present item
 * must match the model exactly; a missing one must be missing in the model,
 * expired in it, or evicted (the store counted an eviction since the key
 * was last written).
 */

#define MODEL_KEYS_MAX 32000
#define MODEL_OPS 200000
#define MODEL_VALUE_MAX 20000

struct model_entry {
    bool present;
    char *value;
    size_t nbytes;
    uint32_t flags;
    mc_time_t exptime;
    uint64_t cas;
    uint64_t evictions_at_write;
};

struct model {
    struct fixture *f;
    unsigned nkeys;
    struct model_entry e[MODEL_KEYS_MAX];
    uint64_t rng;
    char buf[MODEL_VALUE_MAX * 2 + 64];
};

static uint64_t rnd(struct model *m)
{
    /* xorshift64*: deterministic across runs */
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return m->rng * 2685821657736338717ULL;
}

static unsigned rnd_below(struct model *m, unsigned n)
{
    return (unsigned)(rnd(m) % n);
}

static uint64_t evictions_total(struct fixture *f)
{
    return stat(f, "evictions") + stat(f, "slab_reassign_evictions_nomem");
}

static void model_key(unsigned k, char *key)
{
    snprintf(key, 32, "key:%u", k);
}

static uint64_t outofmemory_total(struct fixture *f)
{
    uint64_t total = 0;
    for (unsigned id = 1; id <= store_class_count(f->store); id++)
        total += cstat(f, id, "outofmemory");
    return total;
}

static bool model_live(struct model *m, unsigned k)
{
    struct model_entry *e = &m->e[k];
    return e->present && !(e->exptime != 0 && e->exptime <= m->f->env.now);
}

static bool model_may_be_gone(struct model *m, unsigned k)
{
    return evictions_total(m->f) > m->e[k].evictions_at_write;
}

static void model_drop(struct model *m, unsigned k)
{
    free(m->e[k].value);
    m->e[k].value = NULL;
    m->e[k].present = false;
}

static void model_write(struct model *m, unsigned k, const char *value, size_t nbytes,
                        uint32_t flags, mc_time_t exptime, uint64_t cas)
{
    struct model_entry *e = &m->e[k];
    char *copy = malloc(nbytes + 1);
    memcpy(copy, value, nbytes);
    free(e->value);
    e->value = copy;
    e->nbytes = nbytes;
    e->flags = flags;
    e->exptime = exptime;
    e->cas = cas;
    e->present = true;
    e->evictions_at_write = evictions_total(m->f);
}

static void model_assert_same(struct model *m, unsigned k, const struct item *it)
{
    struct model_entry *e = &m->e[k];
    assert_true(e->present);
    assert_int_equal(item_nbytes(it), e->nbytes);
    assert_memory_equal(item_value(it), e->value, e->nbytes);
    assert_int_equal(item_flags(it), e->flags);
    assert_int_equal(item_exptime(it), e->exptime);
    assert_int_equal(item_cas(it), e->cas);
}

/* Checks a lookup's result: a present item must be live in the model and
 * equal to it; if the store lacks a key the model thinks live, the key
 * must have been evicted. */
static void model_check_item(struct model *m, unsigned k, const struct item *it)
{
    if (it == NULL) {
        if (model_live(m, k))
            assert_true(model_may_be_gone(m, k));
        model_drop(m, k);
        return;
    }
    assert_true(model_live(m, k));
    model_assert_same(m, k, it);
}

static size_t model_value(struct model *m, char *out)
{
    unsigned kind = rnd_below(m, 100);
    size_t n;
    if (kind < 15) { /* a number, for incr/decr */
        n = (size_t)snprintf(out, 32, "%llu", (unsigned long long)(rnd(m) >> rnd_below(m, 64)));
        return n;
    }
    if (kind < 70)
        n = rnd_below(m, 100);
    else if (kind < 97)
        n = rnd_below(m, 3000);
    else
        n = rnd_below(m, MODEL_VALUE_MAX);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)('a' + rnd_below(m, 26));
    return n;
}

static mc_time_t model_exptime(struct model *m)
{
    unsigned kind = rnd_below(m, 10);
    if (kind < 7)
        return 0;
    if (kind < 9)
        return m->f->env.now + 1 + rnd_below(m, 20);
    return 1; /* already expired */
}

/* Parses a value as memcached would, for the values the model writes
 * (never a leading space or sign): digits, then the end or a space;
 * whatever follows the space does not matter ("0    ABC" is 0). */
static bool model_number(const struct model_entry *e, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    for (; i < e->nbytes && e->value[i] >= '0' && e->value[i] <= '9'; i++) {
        if (v > (UINT64_MAX - (uint64_t)(e->value[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(e->value[i] - '0');
    }
    if (i == 0 || (i < e->nbytes && e->value[i] != ' '))
        return false;
    *out = v;
    return true;
}

static void model_step(struct model *m)
{
    struct fixture *f = m->f;
    unsigned k = rnd_below(m, m->nkeys);
    struct model_entry *e = &m->e[k];
    char key[32];
    model_key(k, key);
    size_t nkey = strlen(key);
    uint64_t hash = h(key);
    unsigned what = rnd_below(m, 100);

    if (what < 30) { /* get */
        model_check_item(m, k, store_get(f->store, key, nkey, hash));
    } else if (what < 55) { /* set, add, replace, cas */
        enum store_op ops[] = {STORE_SET, STORE_SET, STORE_ADD, STORE_REPLACE, STORE_CAS};
        enum store_op o = ops[rnd_below(m, 5)];
        size_t nbytes = model_value(m, m->buf);
        uint32_t flags = (uint32_t)rnd(m);
        mc_time_t exptime = model_exptime(m);
        bool live = model_live(m, k);
        uint64_t cas_arg = live && rnd_below(m, 4) != 0 ? e->cas : rnd(m) % 1000;
        uint64_t cas = 0;
        bool fits = store_item_fits(f->store, nkey, nbytes);
        enum mc_status st = store_set(f->store, o, key, nkey, hash, flags, exptime, m->buf, nbytes,
                                      cas_arg, &cas);
        if (!fits) {
            assert_int_equal(st, MC_E2BIG);
            if (o == STORE_SET)
                model_drop(m, k);
            return;
        }
        if (st == MC_ENOMEM) { /* possible only when pages are pinned; rare */
            if (o == STORE_SET)
                model_drop(m, k);
            return;
        }
        bool expect_present = live;
        switch (o) {
        case STORE_SET:
            assert_int_equal(st, MC_OK);
            break;
        case STORE_ADD:
            if (st == MC_OK && live)
                assert_true(model_may_be_gone(m, k));
            if (st != MC_OK)
                assert_int_equal(st, MC_NOT_STORED);
            if (st != MC_OK)
                assert_true(live);
            break;
        case STORE_REPLACE:
            if (st == MC_NOT_STORED && live) {
                assert_true(model_may_be_gone(m, k));
                expect_present = false;
            }
            if (st == MC_OK)
                assert_true(live);
            break;
        case STORE_CAS:
            if (st == MC_NOT_FOUND && live) {
                assert_true(model_may_be_gone(m, k));
                expect_present = false;
            }
            if (st == MC_OK)
                assert_true(live && cas_arg == e->cas);
            if (st == MC_EXISTS)
                assert_true(live && cas_arg != e->cas);
            break;
        default:
            break;
        }
        if (st == MC_OK) {
            model_write(m, k, m->buf, nbytes, flags, exptime, cas);
        } else if (!expect_present || !live) {
            model_drop(m, k);
        }
    } else if (what < 62) { /* append/prepend */
        bool app = rnd_below(m, 2) == 0;
        size_t nbytes = rnd_below(m, 2) ? rnd_below(m, 50) : rnd_below(m, 2000);
        for (size_t i = 0; i < nbytes; i++)
            m->buf[i] = (char)('A' + rnd_below(m, 26));
        bool live = model_live(m, k);
        uint64_t cas = 0, oom_before = outofmemory_total(f);
        enum mc_status st = store_set(f->store, app ? STORE_APPEND : STORE_PREPEND, key, nkey, hash,
                                      0, 0, m->buf, nbytes, 0, &cas);
        if (st == MC_OK) {
            assert_true(live);
            size_t total = e->nbytes + nbytes;
            char *joined = malloc(total + 1);
            if (app) {
                memcpy(joined, e->value, e->nbytes);
                memcpy(joined + e->nbytes, m->buf, nbytes);
            } else {
                memcpy(joined, m->buf, nbytes);
                memcpy(joined + nbytes, e->value, e->nbytes);
            }
            model_write(m, k, joined, total, e->flags, e->exptime, cas);
            free(joined);
        } else {
            assert_true(st == MC_NOT_STORED || st == MC_ENOMEM);
            if (!live)
                model_drop(m, k);
            /* live and NOT_STORED: too large, no memory or evicted; the
             * old value (if still there) is unchanged */
            if (live && store_item_fits(f->store, nkey, e->nbytes + nbytes) &&
                st == MC_NOT_STORED && !model_may_be_gone(m, k) &&
                outofmemory_total(f) == oom_before)
                fail_msg("append to a live key refused without cause");
        }
    } else if (what < 68) { /* delete */
        bool live = model_live(m, k);
        enum mc_status st = store_delete(f->store, key, nkey, hash);
        if (st == MC_OK)
            assert_true(live);
        else if (live)
            assert_true(model_may_be_gone(m, k));
        model_drop(m, k);
    } else if (what < 78) { /* incr/decr */
        bool incr = rnd_below(m, 2) == 0;
        uint64_t delta = rnd_below(m, 3) == 0 ? rnd(m) : rnd_below(m, 1000);
        bool live = model_live(m, k);
        uint64_t r = 0;
        enum mc_status st = store_arith(f->store, key, nkey, hash, incr, delta, &r);
        if (st == MC_NOT_FOUND) {
            if (live)
                assert_true(model_may_be_gone(m, k));
            model_drop(m, k);
            return;
        }
        assert_true(live);
        uint64_t v;
        if (!model_number(e, &v)) {
            assert_int_equal(st, MC_NON_NUMERIC);
            return;
        }
        if (st == MC_ENOMEM)
            return;
        assert_int_equal(st, MC_OK);
        uint64_t want = incr ? v + delta : (delta > v ? 0 : v - delta);
        assert_int_equal(r, want);
        char *digits = m->buf; /* room for the padding of long values */
        size_t len = (size_t)snprintf(digits, 32, "%llu", (unsigned long long)want);
        const struct item *it = store_get(f->store, key, nkey, hash);
        assert_non_null(it);
        if (len < e->nbytes) {
            memset(digits + len, ' ', e->nbytes - len);
            len = e->nbytes;
        }
        model_write(m, k, digits, len, e->flags, e->exptime, item_cas(it));
        model_check_item(m, k, it);
    } else if (what < 88) { /* touch / gat */
        mc_time_t exptime = model_exptime(m);
        bool live = model_live(m, k);
        const struct item *it = store_gat(f->store, key, nkey, hash, exptime);
        if (it == NULL) {
            if (live)
                assert_true(model_may_be_gone(m, k));
            model_drop(m, k);
            return;
        }
        assert_true(live);
        e->exptime = exptime; /* gat answers with the item, then it may be dead */
        model_assert_same(m, k, it);
    } else if (what < 95) { /* time passes */
        fixture_advance(f, rnd_below(m, 3) == 0 ? MC_ITEM_UPDATE_INTERVAL + 1 : rnd_below(m, 3));
    } else if (what < 99) {
        store_crawl(f->store, rnd_below(m, 500));
    } else if (rnd_below(m, 400) == 0) { /* rare flush_all */
        store_flush(f->store, f->env.now);
        for (unsigned i = 0; i < m->nkeys; i++)
            model_drop(m, i);
    }
}

static void check_invariants(struct fixture *f)
{
    assert_true(store_check(f->store)); /* table, segments and counters agree */
    assert_int_equal(csum(f, "number"), stat(f, "curr_items"));
    assert_true(csum(f, "mem_requested") >= stat(f, "bytes")); /* + alignment, table entries */
    assert_true(stat(f, "total_malloced") <= f->cfg.arena_size);
    assert_true(stat(f, "bytes") <= stat(f, "total_malloced"));
}

static struct model *model_run(struct fixture *f, size_t arena_size, unsigned nkeys)
{
    assert_true(nkeys <= MODEL_KEYS_MAX);
    struct store_cfg cfg = fixture_cfg(arena_size);
    cfg.item_size_max = 16 * 1024;
    cfg.slab_page_size = 64 * 1024;
    fixture_remake(f, cfg);
    struct model *m = calloc(1, sizeof(*m));
    m->f = f;
    m->nkeys = nkeys;
    m->rng = 0x9E3779B97F4A7C15ULL;
    for (unsigned i = 0; i < MODEL_OPS; i++) {
        model_step(m);
        if (i % 10000 == 0)
            check_invariants(f);
    }
    check_invariants(f);
    /* a final pass: every key the model holds live is present or evicted */
    for (unsigned k = 0; k < nkeys; k++) {
        char key[32];
        model_key(k, key);
        model_check_item(m, k, store_get(f->store, key, strlen(key), h(key)));
    }
    print_message("model: %llu evictions, %llu segments evicted (%llu items kept), %llu reclaimed, "
                  "%llu crawled, %llu expired, %llu too large\n",
                  (unsigned long long)stat(f, "evictions"),
                  (unsigned long long)stat(f, "seg_evicted"),
                  (unsigned long long)stat(f, "evict_kept"),
                  (unsigned long long)stat(f, "reclaimed"),
                  (unsigned long long)stat(f, "crawler_reclaimed"),
                  (unsigned long long)stat(f, "get_expired"),
                  (unsigned long long)stat(f, "store_too_large"));
    print_message("model: %llu items, %llu bytes, %llu free segments of %llu, %llu dead bytes\n",
                  (unsigned long long)stat(f, "curr_items"), (unsigned long long)stat(f, "bytes"),
                  (unsigned long long)stat(f, "seg_free"), (unsigned long long)stat(f, "seg_segments"),
                  (unsigned long long)stat(f, "seg_dead_bytes"));
    assert_true(stat(f, "get_expired") > 0);
    assert_true(stat(f, "crawler_reclaimed") > 0);
    assert_true(stat(f, "store_too_large") > 0);
    return m;
}

static void model_free(struct model *m)
{
    for (unsigned k = 0; k < m->nkeys; k++)
        free(m->e[k].value);
    free(m);
}

/* More keys than fit: segments are evicted, read items kept by S3-FIFO. */
static void test_store_randomized_against_model(void **state)
{
    struct model *m = model_run(*state, MIB, 32000);
    assert_true(stat(m->f, "evictions") > 500);
    assert_true(stat(m->f, "evict_kept") > 0);
    model_free(m);
}

/* A tiny arena (16 segments of 32 KiB, items up to half a segment): every
 * segment is reused many times over, under items of every size, and
 * overwrites leave segments half dead, which compaction reuses. */
static void test_store_randomized_segment_thrash(void **state)
{
    struct model *m = model_run(*state, MIB / 2, 3000);
    assert_int_equal(stat(m->f, "seg_size"), 32 * 1024);
    assert_true(stat(m->f, "seg_evicted") > 200);
    assert_true(stat(m->f, "seg_compacted") > 50);
    assert_true(stat(m->f, "evictions") > 0);
    assert_int_equal(stat(m->f, "slabs_moved"), 0);
    model_free(m);
}

/* --- Meta commands ---------------------------------------------------------------------- */

static const struct item *meta_get(struct fixture *f, const char *key,
                                   const struct store_vivify *viv, bool *created)
{
    return store_meta_get(f->store, key, strlen(key), h(key), viv, created);
}

static enum mc_status mset(struct fixture *f, const char *key, const char *value,
                           struct store_mset m, uint64_t *cas_out)
{
    m.value = value;
    m.nbytes = strlen(value);
    return store_mset(f->store, key, strlen(key), h(key), &m, cas_out);
}

static enum mc_status mdelete(struct fixture *f, const char *key, struct store_mdelete d)
{
    return store_mdelete(f->store, key, strlen(key), h(key), &d);
}

static enum mc_status marith(struct fixture *f, const char *key, struct store_marith a,
                             struct store_marith_result *r)
{
    return store_marith(f->store, key, strlen(key), h(key), &a, r);
}

static void test_store_meta_get_vivifies_once(void **state)
{
    struct fixture *f = *state;
    struct store_vivify viv = {.exptime = f->env.now + 30};
    bool created;
    assert_null(meta_get(f, "k", NULL, &created));
    assert_false(created);
    const struct item *it = meta_get(f, "k", &viv, &created);
    assert_non_null(it);
    assert_true(created);
    assert_int_equal(item_nbytes(it), 0);
    assert_int_equal(item_flags(it), 0);
    assert_int_equal(item_exptime(it), f->env.now + 30);
    assert_false(item_token_sent(it));
    store_meta_get_done(f->store, it, false, true, true);
    assert_true(item_token_sent(it));
    assert_true(item_fetched(it));

    /* the second caller finds the stub: not created, token already out */
    it = meta_get(f, "k", &viv, &created);
    assert_non_null(it);
    assert_false(created);
    assert_true(item_token_sent(it));
    store_meta_get_done(f->store, it, false, false, true);
    assert_int_equal(stat(f, "curr_items"), 1);
    assert_int_equal(stat(f, "total_items"), 1);
}

static void test_store_meta_get_counts_and_bump(void **state)
{
    struct fixture *f = *state;
    bool created;
    store_meta_get_done(f->store, meta_get(f, "k", NULL, &created), false, false, true);
    assert_int_equal(stat(f, "cmd_get"), 1);
    assert_int_equal(stat(f, "get_misses"), 1);
    assert_int_equal(set(f, "k", "v"), MC_OK);

    /* u: no bump, so not fetched */
    const struct item *it = meta_get(f, "k", NULL, &created);
    store_meta_get_done(f->store, it, false, false, false);
    assert_false(item_fetched(it));
    assert_int_equal(stat(f, "get_hits"), 1);

    /* T: counted as a touch, not a get */
    it = meta_get(f, "k", NULL, &created);
    store_meta_set_exptime(f->store, it, f->env.now + 5);
    store_meta_get_done(f->store, it, true, false, true);
    assert_true(item_fetched(it));
    assert_int_equal(stat(f, "cmd_touch"), 1);
    assert_int_equal(stat(f, "touch_hits"), 1);
    assert_int_equal(stat(f, "cmd_get"), 2);
    fixture_advance(f, 5);
    assert_null(meta_get(f, "k", NULL, &created));
}

static void test_store_meta_vivify_key_binary_and_cas(void **state)
{
    struct fixture *f = *state;
    struct store_vivify viv = {.exptime = 0, .cas = 777, .key_binary = true};
    bool created;
    const struct item *it = meta_get(f, "bin", &viv, &created);
    assert_true(created);
    assert_true(item_key_binary(it));
    assert_int_equal(item_cas(it), 777);
}

static void test_store_mset_modes_and_cas(void **state)
{
    struct fixture *f = *state;
    uint64_t cas = 99;
    /* replace and append of a missing key: not stored, c0 */
    assert_int_equal(mset(f, "k", "v", (struct store_mset){.op = STORE_REPLACE}, &cas), MC_NOT_STORED);
    assert_int_equal(cas, 0);
    assert_int_equal(mset(f, "k", "ab", (struct store_mset){.op = STORE_SET, .flags = 3}, &cas), MC_OK);
    uint64_t first = cas;
    assert_true(first != 0);
    assert_int_equal(item_flags(get(f, "k")), 3);
    /* append with a wrong CAS: EXISTS; with none or the right one: appended */
    assert_int_equal(mset(f, "k", "c", (struct store_mset){.op = STORE_APPEND, .cas = first + 1}, NULL),
                     MC_EXISTS);
    assert_int_equal(mset(f, "k", "c", (struct store_mset){.op = STORE_APPEND, .cas = first}, &cas), MC_OK);
    assert_value(f, "k", "abc");
    /* CAS mode: mismatch, match */
    assert_int_equal(mset(f, "k", "x", (struct store_mset){.op = STORE_CAS, .cas = 1}, NULL), MC_EXISTS);
    assert_int_equal(csum(f, "cas_badval"), 1);
    assert_int_equal(mset(f, "k", "x", (struct store_mset){.op = STORE_CAS, .cas = cas}, NULL), MC_OK);
    assert_value(f, "k", "x");
    /* CAS 0 compares nothing: EXISTS as the classic cas 0 */
    assert_int_equal(mset(f, "k", "y", (struct store_mset){.op = STORE_CAS}, NULL), MC_EXISTS);
    assert_int_equal(mset(f, "nope", "y", (struct store_mset){.op = STORE_CAS, .cas = 5}, NULL),
                     MC_NOT_FOUND);
    /* E: the stored item's CAS is the client's; add of a present key: NS */
    assert_int_equal(mset(f, "k", "z", (struct store_mset){.op = STORE_SET, .new_cas = 4242}, &cas), MC_OK);
    assert_int_equal(cas, 4242);
    assert_int_equal(item_cas(get(f, "k")), 4242);
    assert_int_equal(mset(f, "k", "w", (struct store_mset){.op = STORE_ADD}, &cas), MC_NOT_STORED);
    assert_int_equal(cas, 0);
    /* b: the item remembers its key was binary */
    assert_int_equal(mset(f, "b", "1", (struct store_mset){.op = STORE_SET, .key_binary = true}, NULL),
                     MC_OK);
    assert_true(item_key_binary(get(f, "b")));
    assert_false(item_key_binary(get(f, "k")));
}

static void test_store_mset_invalidate_stores_stale(void **state)
{
    struct fixture *f = *state;
    uint64_t cas;
    assert_int_equal(mset(f, "k", "old", (struct store_mset){.exptime = f->env.now + 100}, &cas), MC_OK);
    assert_int_equal(mdelete(f, "k", (struct store_mdelete){.invalidate = true}), MC_OK);
    bool created;
    const struct item *it = meta_get(f, "k", NULL, &created);
    store_meta_get_done(f->store, it, false, true, true); /* a reader won */
    uint64_t now_cas = item_cas(it);
    assert_true(now_cas > cas);

    /* an older CAS without I: EXISTS; with I: stored, still stale, old TTL,
     * the token still out */
    assert_int_equal(mset(f, "k", "new", (struct store_mset){.op = STORE_CAS, .cas = cas}, NULL),
                     MC_EXISTS);
    assert_int_equal(mset(f, "k", "new", (struct store_mset){.op = STORE_CAS, .cas = cas,
                                                            .invalidate = true, .exptime = 0},
                          NULL),
                     MC_OK);
    it = get(f, "k");
    assert_memory_equal(item_value(it), "new", 3);
    assert_true(item_stale(it));
    assert_true(item_token_sent(it));
    assert_int_equal(item_exptime(it), f->env.now + 100);
    /* a newer CAS with I is not "stale": it is a plain mismatch */
    assert_int_equal(mset(f, "k", "x", (struct store_mset){.op = STORE_CAS, .cas = item_cas(it) + 10,
                                                          .invalidate = true},
                          NULL),
                     MC_EXISTS);
    /* the matching CAS stores a fresh, valid item */
    assert_int_equal(mset(f, "k", "fresh", (struct store_mset){.op = STORE_CAS, .cas = item_cas(it)},
                          NULL),
                     MC_OK);
    assert_false(item_stale(get(f, "k")));
    assert_false(item_token_sent(get(f, "k")));
}

static void test_store_mset_failure_unlinks_any_mode(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(set(f, "k", "old"), MC_OK);
    struct store_mset m = {.op = STORE_APPEND, .value = NULL, .nbytes = 2 * MIB};
    assert_int_equal(store_mset(f->store, "k", 1, h("k"), &m, NULL), MC_E2BIG);
    assert_missing(f, "k");
    /* the classic append keeps it (memcached unlinks only for set) */
    assert_int_equal(set(f, "k", "old"), MC_OK);
    assert_int_equal(store_set(f->store, STORE_APPEND, "k", 1, h("k"), 0, 0, NULL, 2 * MIB, 0, NULL),
                     MC_E2BIG);
    assert_value(f, "k", "old");
}

static void test_store_mdelete_outcomes(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(mdelete(f, "k", (struct store_mdelete){0}), MC_NOT_FOUND);
    assert_int_equal(stat(f, "delete_misses"), 1);
    uint64_t cas;
    assert_int_equal(op_exp(f, STORE_SET, "k", "v", 0, 0, 0, &cas), MC_OK);
    /* C compares even when 0 */
    assert_int_equal(mdelete(f, "k", (struct store_mdelete){.has_cas = true, .cas = 0}), MC_EXISTS);
    assert_int_equal(mdelete(f, "k", (struct store_mdelete){.has_cas = true, .cas = cas + 1}), MC_EXISTS);
    assert_int_equal(stat(f, "delete_misses"), 3);
    assert_int_equal(mdelete(f, "k", (struct store_mdelete){.has_cas = true, .cas = cas}), MC_OK);
    assert_missing(f, "k");
    assert_int_equal(stat(f, "delete_hits"), 1);
}

static void test_store_mdelete_invalidate(void **state)
{
    struct fixture *f = *state;
    uint64_t cas;
    assert_int_equal(op_exp(f, STORE_SET, "k", "v", 0, f->env.now + 100, 0, &cas), MC_OK);
    bool created;
    const struct item *it = meta_get(f, "k", NULL, &created);
    store_meta_get_done(f->store, it, false, true, true);
    assert_true(item_token_sent(it));
    /* I without T keeps the TTL; clears the token; new CAS; not a delete */
    assert_int_equal(mdelete(f, "k", (struct store_mdelete){.invalidate = true}), MC_OK);
    it = get(f, "k");
    assert_non_null(it);
    assert_true(item_stale(it));
    assert_false(item_token_sent(it));
    assert_true(item_cas(it) > cas);
    assert_int_equal(item_exptime(it), f->env.now + 100);
    assert_int_equal(stat(f, "delete_hits"), 0);
    /* with T: the stale item's TTL shrinks; E gives the CAS */
    assert_int_equal(mdelete(f, "k", (struct store_mdelete){.invalidate = true, .has_ttl = true,
                                                             .exptime = f->env.now + 3, .new_cas = 555}),
                     MC_OK);
    it = get(f, "k");
    assert_int_equal(item_exptime(it), f->env.now + 3);
    assert_int_equal(item_cas(it), 555);
    fixture_advance(f, 3);
    assert_missing(f, "k");
}

static void test_store_mdelete_remove_value(void **state)
{
    struct fixture *f = *state;
    uint64_t cas;
    assert_int_equal(op_exp(f, STORE_SET, "k", "value", 7, 0, 0, &cas), MC_OK);
    assert_int_equal(mdelete(f, "k", (struct store_mdelete){.remove_value = true, .flags = 9,
                                                             .exptime = f->env.now + 50}),
                     MC_OK);
    const struct item *it = get(f, "k");
    assert_non_null(it);
    assert_int_equal(item_nbytes(it), 0);
    assert_int_equal(item_flags(it), 9);
    assert_int_equal(item_exptime(it), f->env.now + 50);
    assert_int_equal(item_cas(it), cas); /* x keeps the CAS (1.6.27) */
    assert_int_equal(stat(f, "delete_hits"), 1);
    assert_int_equal(stat(f, "curr_items"), 1);
}

static void test_store_marith_outcomes(void **state)
{
    struct fixture *f = *state;
    struct store_marith_result r;
    assert_int_equal(marith(f, "n", (struct store_marith){.incr = true, .delta = 1}, &r), MC_NOT_FOUND);
    assert_true(r.missed);
    assert_int_equal(stat(f, "incr_misses"), 1);
    /* N: created at J, with the vivify TTL; not counted as a miss */
    struct store_vivify viv = {.exptime = f->env.now + 9};
    assert_int_equal(marith(f, "n", (struct store_marith){.incr = true, .delta = 1, .viv = &viv,
                                                          .initial = 41},
                            &r),
                     MC_OK);
    assert_true(r.created);
    assert_int_equal(r.value, 41);
    assert_int_equal(item_exptime(r.it), f->env.now + 9);
    assert_int_equal(stat(f, "incr_misses"), 1);
    assert_value(f, "n", "41");
    /* C mismatch: EX; C match: applied; E overrides the new CAS */
    uint64_t cas = item_cas(get(f, "n"));
    assert_int_equal(marith(f, "n", (struct store_marith){.incr = true, .delta = 1, .cas = cas + 1}, &r),
                     MC_EXISTS);
    assert_int_equal(marith(f, "n", (struct store_marith){.incr = false, .delta = 2, .cas = cas,
                                                          .new_cas = 31337},
                            &r),
                     MC_OK);
    assert_int_equal(r.value, 39);
    assert_int_equal(item_cas(r.it), 31337);
    /* growing past the old length replaces the item: r.it is the new one */
    assert_int_equal(marith(f, "n", (struct store_marith){.incr = true, .delta = 1000}, &r), MC_OK);
    assert_int_equal(r.value, 1039);
    assert_ptr_equal(r.it, get(f, "n"));
    /* an empty value is non-numeric before the CAS is compared */
    assert_int_equal(set(f, "e", ""), MC_OK);
    assert_int_equal(marith(f, "e", (struct store_marith){.incr = true, .delta = 1, .cas = 1}, &r),
                     MC_NON_NUMERIC);
    assert_int_equal(set(f, "t", "abc"), MC_OK);
    assert_int_equal(marith(f, "t", (struct store_marith){.incr = true, .delta = 1, .cas = 1}, &r),
                     MC_EXISTS);
}

static void test_store_meta_debug_counts(void **state)
{
    struct fixture *f = *state;
    assert_null(store_meta_debug(f->store, "k", 1, h("k")));
    assert_int_equal(set(f, "k", "v"), MC_OK);
    const struct item *it = store_meta_debug(f->store, "k", 1, h("k"));
    assert_non_null(it);
    assert_false(item_fetched(it)); /* not a read */
    assert_int_equal(stat(f, "cmd_meta"), 2);
    assert_int_equal(stat(f, "cmd_get"), 0);
}

/* A CAS the client chose (meta E) does not decide whether an item stored
 * in the flush's own second predates the flush: the order of link and
 * flush does, whatever the CAS. */
static void test_store_flush_ignores_explicit_cas(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 10; i++)
        assert_int_equal(set(f, "x", "1"), MC_OK);
    assert_int_equal(mset(f, "before", "v", (struct store_mset){.new_cas = UINT64_MAX}, NULL), MC_OK);
    store_flush(f->store, f->env.now);
    assert_int_equal(mset(f, "after", "v", (struct store_mset){.new_cas = 2}, NULL), MC_OK);
    assert_value(f, "after", "v");
    assert_missing(f, "before");
    assert_missing(f, "x");
    fixture_advance(f, 100);
    assert_value(f, "after", "v");
    /* a second flush in the same second takes what the first one spared */
    assert_int_equal(mset(f, "again", "v", (struct store_mset){.new_cas = 1}, NULL), MC_OK);
    store_flush(f->store, f->env.now);
    assert_int_equal(set(f, "last", "v"), MC_OK);
    assert_missing(f, "again");
    assert_missing(f, "after");
    assert_value(f, "last", "v");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_store_create_rejects_bad_config),
        T(test_store_set_get_roundtrip),
        T(test_store_get_miss_counts),
        T(test_store_add_outcomes),
        T(test_store_add_existing_bumps_lru),
        T(test_store_replace_outcomes),
        T(test_store_cas_outcomes),
        T(test_store_append_prepend),
        T(test_store_append_beyond_item_max_not_stored),
        T(test_store_too_large),
        T(test_store_delete),
        T(test_store_touch_and_gat),
        T(test_store_incr_decr_basic),
        T(test_store_decr_pads_with_spaces),
        T(test_store_decr_floors_at_zero),
        T(test_store_incr_wraps_and_grows),
        T(test_store_incr_non_numeric),
        T(test_store_incr_accepts_strtoull_forms),
        T(test_store_expiry_relative_absolute_negative),
        T(test_store_lazy_expiry_on_any_lookup),
        T(test_store_crawler_reclaims_expired),
        T(test_store_flush_now),
        T(test_store_flush_delayed),
        T(test_store_flush_crawled_and_reclaimed),
        T(test_store_flush_without_cas),
        T(test_store_cas_unique_across_stores),
        T(test_store_cas_disabled_is_zero),
        T(test_store_no_evictions_enomem),
        T(test_store_incr_enomem),
        T(test_store_hash_table_grows),
        T(test_store_eviction_keeps_read_items),
        T(test_store_eviction_counts),
        T(test_store_ttl_segments_reclaimed_whole),
        T(test_store_segment_reuse_any_size),
        T(test_store_large_items_take_runs),
        T(test_store_ref_pins_segment),
        T(test_store_append_pins_old_item),
        T(test_store_flush_frees_segments),
        T(test_store_flush_twice_in_a_second_crawled),
        T(test_store_metric_tables_follow_memcached),
        T(test_store_metrics_and_reset),
        T(test_store_randomized_against_model),
        T(test_store_randomized_segment_thrash),
        T(test_store_meta_get_vivifies_once),
        T(test_store_meta_get_counts_and_bump),
        T(test_store_meta_vivify_key_binary_and_cas),
        T(test_store_mset_modes_and_cas),
        T(test_store_mset_invalidate_stores_stale),
        T(test_store_mset_failure_unlinks_any_mode),
        T(test_store_mdelete_outcomes),
        T(test_store_mdelete_invalidate),
        T(test_store_mdelete_remove_value),
        T(test_store_marith_outcomes),
        T(test_store_meta_debug_counts),
        T(test_store_flush_ignores_explicit_cas),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
