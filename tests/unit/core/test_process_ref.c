/*
 * test_process_ref.c: zero-copy values (issue 11). A get of a value of
 * PROCESS_REF_MIN bytes or more into a sink that can reference bytes hands
 * the sink the item's bytes in place, the item's segment pinned until the
 * sink releases them; smaller values, and sinks without `ref`, are copied.
 * The pinned bytes survive an overwrite and heavy eviction unchanged.
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
#include "process.h"
#include "store.h"
#include "test_fixture.h"
#include "test_sink.h"

/* A test sink that records references instead of copying them. */
struct ref_sink {
    struct test_sink ts; /* first member: the sink casts back */
    unsigned nrefs;
    const void *data[8];
    size_t len[8];
    void (*release)(void *, const void *, size_t);
    void *owner;
};

static bool ref_sink_ref(struct sink *sink, const void *data, size_t len,
                         void (*release)(void *, const void *, size_t), void *owner)
{
    struct ref_sink *rs = (struct ref_sink *)sink;
    assert_true(rs->nrefs < 8);
    test_sink_flush(&rs->ts);
    rs->data[rs->nrefs] = data;
    rs->len[rs->nrefs] = len;
    rs->nrefs++;
    rs->release = release;
    rs->owner = owner;
    /* mark the place in the output */
    return sink_puts(sink, "<ref>");
}

static int setup(void **state)
{
    /* 32 segments of 32 KiB: a few thousand sets evict everything */
    struct store_cfg cfg = fixture_cfg(FIXTURE_MIB);
    cfg.seg_size = 32 * 1024;
    cfg.item_size_max = 32 * 1024;
    return fixture_setup_cfg(state, cfg);
}

static void set(struct fixture *f, const char *key, const char *value, size_t nbytes)
{
    struct proto_req req = {.cmd = PROTO_SET, .key = key, .nkey = (uint32_t)strlen(key),
                            .value = value, .nbytes = (uint32_t)nbytes, .noreply = true};
    assert_true(process_key(&f->env, &req, key, req.nkey, hash_key(key, req.nkey), &f->out.sink));
}

static char *get(struct fixture *f, struct sink *out, struct test_sink *ts, const char *key)
{
    struct proto_req req = {.cmd = PROTO_GET, .key = key, .nkey = (uint32_t)strlen(key)};
    test_sink_clear(ts);
    assert_true(process_key(&f->env, &req, key, req.nkey, hash_key(key, req.nkey), out));
    return test_sink_text(ts);
}

static void test_process_ref_large_value_in_place(void **state)
{
    struct fixture *f = *state;
    static char big[4096], other[4096];
    memset(big, 'B', sizeof(big));
    memset(other, 'O', sizeof(other));
    set(f, "big", big, sizeof(big));
    set(f, "small", "tiny", 4);

    struct ref_sink rs = {0};
    test_sink_init(&rs.ts, 64);
    rs.ts.sink.ref = ref_sink_ref;
    char *text = get(f, &rs.ts.sink, &rs.ts, "big");
    assert_string_equal(text, "VALUE big 0 4096\r\n<ref>\r\n");
    free(text);
    assert_int_equal(rs.nrefs, 1);
    assert_int_equal(rs.len[0], sizeof(big));
    assert_int_equal(store_refs(f->store), 1);
    text = get(f, &rs.ts.sink, &rs.ts, "small"); /* below PROCESS_REF_MIN: copied */
    assert_string_equal(text, "VALUE small 0 4\r\ntiny\r\n");
    free(text);
    assert_int_equal(rs.nrefs, 1);

    /* overwrite it and churn the store many times over: the referenced
     * bytes stay as they were until released */
    set(f, "big", other, sizeof(other));
    char key[16];
    for (unsigned i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "k%u", i);
        set(f, key, other, 1000);
    }
    const char *p = rs.data[0];
    for (size_t i = 0; i < sizeof(big); i++)
        assert_int_equal(p[i], 'B');
    rs.release(rs.owner, rs.data[0], rs.len[0]);
    assert_int_equal(store_refs(f->store), 0);
    assert_true(store_check(f->store));
    test_sink_fini(&rs.ts);
}

/* A sink without `ref` (a cross-shard reply record) gets a copy. */
static void test_process_ref_sink_without_ref_copies(void **state)
{
    struct fixture *f = *state;
    static char big[2000];
    memset(big, 'x', sizeof(big));
    set(f, "big", big, sizeof(big));
    char *text = get(f, &f->out.sink, &f->out, "big");
    assert_int_equal(strlen(text), strlen("VALUE big 0 2000\r\n") + 2000 + 2);
    free(text);
    assert_int_equal(store_refs(f->store), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_process_ref_large_value_in_place, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_process_ref_sink_without_ref_copies, setup,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
