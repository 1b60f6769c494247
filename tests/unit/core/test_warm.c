/*
 * test_warm.c: a store's warm-restart image (core/warm.c) and the engine's
 * reattach (store_warm_adopt): a store is filled, saved, and a fresh store
 * over the same arena, on a clock started later, must find every unexpired
 * item with identical bytes, flags, CAS, meta state and absolute expiry,
 * nothing expired, deleted or flushed, and CAS values above the old ones;
 * any other setting, generation, release or a damaged byte of the image or
 * of the items refuses the image with the reason.
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
#include "warm.h"

#define MIB (1024u * 1024)
#define ARENA (8 * MIB)
#define S0 1700000000LL          /* unix time of the first clock's zero */
#define DOWN 1000                /* the second clock starts this much later */
#define NKEYS 6000

struct world {
    void *arena;
    struct store *store;
    struct store_cfg cfg;
    struct warm_params params;
    void *image;
    size_t image_len;
    enum warm_cold cold; /* the last restart's kind of refusal */
};

struct expect {
    uint32_t flags;
    uint64_t cas;
    mc_time_t exptime;
    uint8_t stale;
    size_t nbytes;
    int fill;
    int live; /* 1 live, 0 gone */
};

static struct expect model[NKEYS];

static void key_of(unsigned i, char *key)
{
    snprintf(key, 32, "key:%u", i);
}

static uint64_t h(const char *key)
{
    return hash_key(key, strlen(key));
}

static struct store *make(struct world *w, mc_time_t now)
{
    struct store *s = NULL;
    assert_int_equal(store_create(&w->cfg, &s), MC_OK);
    store_set_clock(s, now);
    return s;
}

static int setup(void **state)
{
    struct world *w = calloc(1, sizeof(*w));
    assert_int_equal(posix_memalign(&w->arena, 4096, ARENA), 0);
    w->cfg = (struct store_cfg){
        .arena = w->arena, .arena_size = ARENA, .item_size_max = MIB, .evictions = true,
        .cas_enabled = true, .cas_offset = 1, .cas_stride = 2,
    };
    w->params = (struct warm_params){
        .arena_size = ARENA, .item_size_max = MIB, .shards = 2, .shard = 1, .cas_enabled = true,
        .engine = "test-1",
    };
    w->store = make(w, 100);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    store_destroy(&w->store);
    free(w->image);
    free(w->arena);
    free(w);
    return 0;
}

/* Mixed sizes (a few larger than a segment) and TTLs: none, long enough to
 * outlive the downtime, and too short; some deleted, overwritten, stale. */
static void fill(struct world *w)
{
    char key[32], *value = malloc(200 * 1024);
    for (unsigned i = 0; i < NKEYS; i++) {
        key_of(i, key);
        size_t n = i % 500 == 7 ? 100 * 1024 + i : (size_t)(i * 37 % 700);
        memset(value, 'a' + (int)(i % 26), n);
        mc_time_t exp = i % 3 == 0 ? 0 : i % 3 == 1 ? 100 + 5000 : 100 + 500;
        uint64_t cas = 0;
        assert_int_equal(store_set(w->store, STORE_SET, key, strlen(key), h(key), i * 7u, exp, value, n,
                                   0, &cas),
                         MC_OK);
        model[i] = (struct expect){.flags = i * 7u, .cas = cas, .exptime = exp, .nbytes = n,
                                   .fill = 'a' + (int)(i % 26), .live = exp != 100 + 500};
        if (i % 11 == 0) {
            assert_int_equal(store_delete(w->store, key, strlen(key), h(key)), MC_OK);
            model[i].live = 0;
        } else if (i % 13 == 0 && model[i].live) {
            struct store_mdelete d = {.invalidate = true};
            assert_int_equal(store_mdelete(w->store, key, strlen(key), h(key), &d), MC_OK);
            const struct item *it = store_peek(w->store, key, strlen(key), h(key));
            assert_non_null(it);
            model[i].stale = 1;
            model[i].cas = item_cas(it);
        }
    }
    free(value);
    assert_true(store_check(w->store));
}

static void save(struct world *w, uint64_t generation)
{
    free(w->image);
    w->image_len = warm_image_size(w->store);
    w->image = malloc(w->image_len);
    warm_save(w->store, &w->params, generation, S0, w->image);
}

/* Destroys the store and attaches a fresh one over the same arena, on a
 * clock whose zero is DOWN seconds later, at its time 70. */
static enum mc_status restart(struct world *w, uint64_t generation, uint64_t *items, char *why)
{
    store_destroy(&w->store);
    w->store = make(w, 70);
    enum mc_status st = warm_attach(w->store, &w->params, generation, S0 + DOWN, 70, w->image,
                                    w->image_len, items, why, 256, &w->cold);
    if (st != MC_OK) {
        store_destroy(&w->store);
        w->store = make(w, 70);
    }
    return st;
}

static void test_warm_reattaches_every_live_item(void **state)
{
    struct world *w = *state;
    fill(w);
    save(w, 5);
    uint64_t items = 0, max_cas = 0;
    char why[256] = "";
    assert_int_equal(restart(w, 5, &items, why), MC_OK);
    assert_int_equal(w->cold, WARM_COLD_NONE);
    assert_true(store_check(w->store));
    char key[32];
    uint64_t live = 0;
    for (unsigned i = 0; i < NKEYS; i++) {
        key_of(i, key);
        const struct item *it = store_peek(w->store, key, strlen(key), h(key));
        if (!model[i].live) {
            assert_null(it);
            continue;
        }
        live++;
        assert_non_null(it);
        assert_int_equal(item_nbytes(it), model[i].nbytes);
        for (size_t b = 0; b < model[i].nbytes; b++)
            assert_int_equal(item_value(it)[b], model[i].fill);
        assert_int_equal(item_flags(it), model[i].flags);
        assert_int_equal(item_cas(it), model[i].cas);
        assert_int_equal(item_stale(it), model[i].stale);
        /* the absolute end is kept: the old clock's time minus the shift */
        assert_int_equal(item_exptime(it), model[i].exptime == 0 ? 0 : model[i].exptime - DOWN);
        if (model[i].cas > max_cas)
            max_cas = model[i].cas;
    }
    assert_int_equal(items, live);
    /* the CAS counter continues above every reattached CAS, on this shard's stride */
    uint64_t cas = 0;
    assert_int_equal(store_set(w->store, STORE_SET, "new", 3, h("new"), 0, 0, "v", 1, 0, &cas), MC_OK);
    assert_true(cas > max_cas);
    assert_int_equal(cas % 2, 1);
    /* the reattached store keeps working: overwrite, evict, check */
    char *value = malloc(4096);
    memset(value, 'z', 4096);
    for (unsigned i = 0; i < 4000; i++) {
        snprintf(key, sizeof(key), "more:%u", i);
        assert_int_equal(store_set(w->store, STORE_SET, key, strlen(key), h(key), 0, 0, value, 4096, 0,
                                   NULL),
                         MC_OK);
    }
    free(value);
    assert_true(store_check(w->store));
}

static void test_warm_drops_flushed_items(void **state)
{
    struct world *w = *state;
    fill(w);
    store_set_clock(w->store, 120);
    store_flush(w->store, 120);
    save(w, 1);
    uint64_t items = 9;
    char why[256] = "";
    assert_int_equal(restart(w, 1, &items, why), MC_OK);
    assert_int_equal(items, 0);
    assert_null(store_peek(w->store, "key:1", 5, h("key:1")));
    assert_true(store_check(w->store));
}

static void expect_refused(struct world *w, uint64_t generation, const char *reason)
{
    uint64_t items = 0;
    char why[256] = "";
    assert_int_equal(restart(w, generation, &items, why), MC_EINVAL);
    if (strstr(why, reason) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", why, reason);
    /* the kind behind the warm_restart_cold fact: settings, or damage */
    bool settings = strstr(reason, "differs") != NULL || strstr(reason, "engine") != NULL;
    assert_int_equal(w->cold, settings ? WARM_COLD_SETTINGS : WARM_COLD_DAMAGED);
    assert_null(store_peek(w->store, "key:1", 5, h("key:1")));
    assert_true(store_check(w->store));
}

static void test_warm_refuses_other_settings(void **state)
{
    struct world *w = *state;
    fill(w);
    save(w, 3);
    struct warm_params saved = w->params;
    w->params.shards = 4;
    expect_refused(w, 3, "-t differs (4 shards now, 2 when saved)");
    w->params = saved;
    w->params.arena_size = 16 * MIB;
    expect_refused(w, 3, "-m differs");
    w->params = saved;
    w->params.item_size_max = 2 * MIB;
    expect_refused(w, 3, "-I differs");
    w->params = saved;
    w->params.engine = "test-2";
    expect_refused(w, 3, "saved by engine test-1");
    w->params = saved;
    expect_refused(w, 4, "generation");
}

static void test_warm_refuses_damaged_image(void **state)
{
    struct world *w = *state;
    fill(w);
    save(w, 3);
    ((unsigned char *)w->image)[w->image_len - 3] ^= 0x40;
    expect_refused(w, 3, "checksum");
    uint64_t items;
    char why[256];
    assert_int_equal(warm_attach(w->store, &w->params, 3, S0, 100, w->image, 10, &items, why,
                                 sizeof(why), NULL),
                     MC_EINVAL);
    assert_non_null(strstr(why, "truncated"));
}

static void test_warm_refuses_damaged_items(void **state)
{
    struct world *w = *state;
    fill(w);
    save(w, 3);
    /* one byte of some item's value (the arena's first segment is in use) */
    ((unsigned char *)w->arena)[200] ^= 0x01;
    expect_refused(w, 3, "item memory fails its checksum");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_warm_reattaches_every_live_item, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warm_drops_flushed_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warm_refuses_other_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warm_refuses_damaged_image, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warm_refuses_damaged_items, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
