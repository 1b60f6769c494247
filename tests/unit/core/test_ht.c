/*
 * test_ht.c: the hash table of item refs: lookups by length and bytes,
 * removal from any chain position, and incremental doubling through
 * several powers with every key found at every step of the migration.
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
#include "ht.h"

#define SLOT 64 /* bytes per test item: header + a short key */
#define NITEMS 20000

struct fixture {
    char *arena;
    uintptr_t base;
    struct ht *ht;
};

static struct item *item_n(struct fixture *f, unsigned i)
{
    return (struct item *)(f->arena + (size_t)i * SLOT);
}

/* Writes key "k<i>" into slot i and returns its hash. */
static uint64_t make_item(struct fixture *f, unsigned i, const char *prefix)
{
    struct item *it = item_n(f, i);
    memset(it, 0, sizeof(*it));
    int n = snprintf(it->data, SLOT - sizeof(*it), "%s%u", prefix, i);
    it->nkey = (uint8_t)n;
    return hash_key(it->data, it->nkey);
}

static struct item *find(struct fixture *f, const char *key)
{
    return ht_find(f->ht, key, strlen(key), hash_key(key, strlen(key)));
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_int_equal(posix_memalign((void **)&f->arena, 4096, (size_t)NITEMS * SLOT), 0);
    f->base = item_ref_base(f->arena);
    assert_int_equal(ht_create(4, f->base, &f->ht), MC_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ht_destroy(&f->ht);
    assert_null(f->ht);
    free(f->arena);
    free(f);
    return 0;
}

static void test_ht_create_rejects_bad_power(void **state)
{
    struct fixture *f = *state;
    struct ht *ht = NULL;
    assert_int_equal(ht_create(0, f->base, &ht), MC_EINVAL);
    assert_int_equal(ht_create(HT_POWER_MAX + 1, f->base, &ht), MC_EINVAL);
    assert_null(ht);
    assert_int_equal(ht_create(HT_POWER_DEFAULT, f->base, &ht), MC_OK);
    assert_int_equal(ht_power(ht), 16);
    assert_int_equal(ht_bytes(ht), 65536 * 4);
    ht_destroy(&ht);
}

static void test_ht_find_insert_remove(void **state)
{
    struct fixture *f = *state;
    for (unsigned i = 0; i < 10; i++)
        ht_insert(f->ht, item_n(f, i), make_item(f, i, "k"));
    assert_int_equal(ht_count(f->ht), 10);
    assert_ptr_equal(find(f, "k3"), item_n(f, 3));
    assert_null(find(f, "k10"));
    assert_null(find(f, "k"));
    assert_true(ht_remove(f->ht, item_n(f, 3), hash_key("k3", 2)));
    assert_null(find(f, "k3"));
    assert_false(ht_remove(f->ht, item_n(f, 3), hash_key("k3", 2)));
    assert_int_equal(ht_count(f->ht), 9);
    assert_ptr_equal(find(f, "k4"), item_n(f, 4));
}

/* Same hash, different keys: a chain walk must compare keys, not hashes,
 * and a prefix of a key is a different key. */
static void test_ht_chain_compares_length_and_bytes(void **state)
{
    struct fixture *f = *state;
    const char *keys[] = {"abc", "abcd", "abd", "ab"};
    uint64_t same = 7; /* force one chain */
    for (unsigned i = 0; i < 4; i++) {
        struct item *it = item_n(f, i);
        memset(it, 0, sizeof(*it));
        memcpy(it->data, keys[i], strlen(keys[i]));
        it->nkey = (uint8_t)strlen(keys[i]);
        ht_insert(f->ht, it, same);
    }
    for (unsigned i = 0; i < 4; i++)
        assert_ptr_equal(ht_find(f->ht, keys[i], strlen(keys[i]), same), item_n(f, i));
    assert_null(ht_find(f->ht, "abce", 4, same));
    /* remove from the middle, the head and the tail of the chain */
    assert_true(ht_remove(f->ht, item_n(f, 1), same));
    assert_true(ht_remove(f->ht, item_n(f, 3), same));
    assert_true(ht_remove(f->ht, item_n(f, 0), same));
    assert_ptr_equal(ht_find(f->ht, "abd", 3, same), item_n(f, 2));
    assert_null(ht_find(f->ht, "abc", 3, same));
}

static void check_all(struct fixture *f, unsigned from, unsigned to)
{
    char key[32];
    for (unsigned i = from; i < to; i++) {
        snprintf(key, sizeof(key), "k%u", i);
        assert_ptr_equal(find(f, key), item_n(f, i));
    }
}

/* From 16 buckets to 16384: ten doublings, each migrated a few buckets per
 * insert, with every key checked after every insert while a doubling runs. */
static void test_ht_grows_incrementally_and_finds_all_midway(void **state)
{
    struct fixture *f = *state;
    unsigned expansions_seen = 0;
    bool was_expanding = false;
    for (unsigned i = 0; i < NITEMS; i++) {
        ht_insert(f->ht, item_n(f, i), make_item(f, i, "k"));
        bool expanding = ht_is_expanding(f->ht);
        if (expanding && !was_expanding) {
            expansions_seen++;
            /* a doubling starts once the load passes 1.5 */
            assert_int_equal(i + 1, (1u << (ht_power(f->ht) - 1)) * 3 / 2 + 1);
        }
        was_expanding = expanding;
        if (expanding && i < 4000)
            check_all(f, 0, i + 1);
    }
    check_all(f, 0, NITEMS);
    assert_int_equal(ht_count(f->ht), NITEMS);
    assert_int_equal(ht_power(f->ht), 14); /* 20000 <= 1.5 * 16384 */
    assert_true(expansions_seen >= 10);
    assert_false(ht_is_expanding(f->ht));
    assert_int_equal(ht_bytes(f->ht), 16384 * 4);
}

static void test_ht_remove_during_migration(void **state)
{
    struct fixture *f = *state;
    unsigned n = 0;
    /* insert until a doubling starts */
    while (!ht_is_expanding(f->ht)) {
        ht_insert(f->ht, item_n(f, n), make_item(f, n, "k"));
        n++;
    }
    assert_int_equal(ht_bytes(f->ht), (32 + 16) * 4);
    /* remove every other key: removes hit both old and new tables */
    for (unsigned i = 0; i < n; i += 2) {
        char key[32];
        snprintf(key, sizeof(key), "k%u", i);
        assert_true(ht_remove(f->ht, item_n(f, i), hash_key(key, strlen(key))));
    }
    for (unsigned i = 1; i < n; i += 2) {
        char key[32];
        snprintf(key, sizeof(key), "k%u", i);
        assert_ptr_equal(find(f, key), item_n(f, i));
    }
    assert_int_equal(ht_count(f->ht), n / 2);
    while (ht_migrate(f->ht, 1))
        ;
    assert_false(ht_is_expanding(f->ht));
    for (unsigned i = 1; i < n; i += 2) {
        char key[32];
        snprintf(key, sizeof(key), "k%u", i);
        assert_ptr_equal(find(f, key), item_n(f, i));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ht_create_rejects_bad_power, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ht_find_insert_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ht_chain_compares_length_and_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ht_grows_incrementally_and_finds_all_midway, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ht_remove_during_migration, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
