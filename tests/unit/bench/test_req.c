/*
 * test_req.c: request composition: exact bytes for every protocol and
 * shape, and the size bounds callers allocate by.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "req.h"

#define CHECK_TEXT(got_len, buf, want)                                                             \
    do {                                                                                           \
        assert_int_equal((got_len), sizeof(want) - 1);                                             \
        assert_memory_equal((buf), (want), sizeof(want) - 1);                                      \
    } while (0)

static void test_req_key_spelling(void **state)
{
    char buf[64];
    size_t n = req_key(buf, "key:", 4, 0);
    CHECK_TEXT(n, buf, "key:0");
    n = req_key(buf, "", 0, UINT64_MAX);
    CHECK_TEXT(n, buf, "18446744073709551615");
}

static void test_req_text_get_and_multiget(void **state)
{
    char buf[256];
    uint64_t ids[] = {7, 42, 1000000};
    CHECK_TEXT(req_get(REQ_TEXT, buf, "key:", 4, ids, 1), buf, "get key:7\r\n");
    CHECK_TEXT(req_get(REQ_TEXT, buf, "key:", 4, ids, 3), buf, "get key:7 key:42 key:1000000\r\n");
}

static void test_req_meta_get_and_multiget(void **state)
{
    char buf[256];
    uint64_t ids[] = {7, 42};
    CHECK_TEXT(req_get(REQ_META, buf, "k", 1, ids, 1), buf, "mg k7 v\r\n");
    CHECK_TEXT(req_get(REQ_META, buf, "k", 1, ids, 2), buf, "mg k7 v q\r\nmg k42 v q\r\nmn\r\n");
}

static void test_req_text_and_meta_set(void **state)
{
    char buf[256];
    CHECK_TEXT(req_set(REQ_TEXT, buf, "key:", 4, 5, "hello", 5), buf,
               "set key:5 0 0 5\r\nhello\r\n");
    CHECK_TEXT(req_set(REQ_META, buf, "key:", 4, 5, "hello", 5), buf, "ms key:5 5\r\nhello\r\n");
    CHECK_TEXT(req_set(REQ_TEXT, buf, "key:", 4, 5, "", 0), buf, "set key:5 0 0 0\r\n\r\n");
}

static void test_req_binary_get(void **state)
{
    unsigned char buf[256];
    uint64_t ids[] = {3, 12};
    size_t n = req_get(REQ_BINARY, (char *)buf, "k", 1, ids, 1);
    assert_int_equal(n, 24 + 2);
    static const unsigned char get[24] = {0x80, 0x00, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2};
    assert_memory_equal(buf, get, 24);
    assert_memory_equal(buf + 24, "k3", 2);

    n = req_get(REQ_BINARY, (char *)buf, "k", 1, ids, 2);
    assert_int_equal(n, (24 + 2) + (24 + 3) + 24);
    assert_int_equal(buf[0], 0x80);
    assert_int_equal(buf[1], 0x0d); /* GETKQ */
    assert_memory_equal(buf + 24, "k3", 2);
    assert_int_equal(buf[26 + 1], 0x0d);
    assert_int_equal(buf[26 + 3], 3); /* key length */
    assert_int_equal(buf[26 + 11], 3); /* body length */
    assert_memory_equal(buf + 26 + 24, "k12", 3);
    static const unsigned char noop[24] = {0x80, 0x0a};
    assert_memory_equal(buf + 26 + 27, noop, 24);
}

static void test_req_binary_set(void **state)
{
    unsigned char buf[512];
    char value[300];
    memset(value, 'v', sizeof(value));
    size_t n = req_set(REQ_BINARY, (char *)buf, "key:", 4, 9, value, sizeof(value));
    size_t body = 8 + 5 + 300;
    assert_int_equal(n, 24 + body);
    assert_int_equal(buf[0], 0x80);
    assert_int_equal(buf[1], 0x01);
    assert_int_equal(buf[2], 0);
    assert_int_equal(buf[3], 5);
    assert_int_equal(buf[4], 8);
    assert_int_equal(buf[8] << 24 | buf[9] << 16 | buf[10] << 8 | buf[11], body);
    static const unsigned char zeros[8] = {0};
    assert_memory_equal(buf + 24, zeros, 8); /* flags 0, exptime 0 */
    assert_memory_equal(buf + 32, "key:9", 5);
    assert_memory_equal(buf + 37, value, 300);
}

static void test_req_max_bounds_hold(void **state)
{
    /* The largest ids and every protocol stay within the advertised bound. */
    static const enum req_proto protos[] = {REQ_TEXT, REQ_META, REQ_BINARY};
    char prefix[200];
    memset(prefix, 'p', sizeof(prefix));
    uint64_t ids[16];
    for (int i = 0; i < 16; i++)
        ids[i] = UINT64_MAX - (uint64_t)i;
    char *buf = malloc(1 << 16);
    char value[1000];
    memset(value, 'x', sizeof(value));
    for (size_t p = 0; p < 3; p++) {
        for (unsigned width = 1; width <= 16; width++) {
            size_t n = req_get(protos[p], buf, prefix, sizeof(prefix), ids, width);
            assert_true(n <= req_get_max(protos[p], sizeof(prefix), width));
        }
        size_t n = req_set(protos[p], buf, prefix, sizeof(prefix), UINT64_MAX, value, sizeof(value));
        assert_true(n <= req_set_max(protos[p], sizeof(prefix), sizeof(value)));
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_req_key_spelling),
        cmocka_unit_test(test_req_text_get_and_multiget),
        cmocka_unit_test(test_req_meta_get_and_multiget),
        cmocka_unit_test(test_req_text_and_meta_set),
        cmocka_unit_test(test_req_binary_get),
        cmocka_unit_test(test_req_binary_set),
        cmocka_unit_test(test_req_max_bounds_hold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
