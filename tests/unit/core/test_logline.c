/*
 * test_logline.c: memcached 1.6.18's `watch` lines (core/logline.c), byte
 * for byte as its logger.c writes them, and the close reasons and store
 * verdicts corecache maps onto memcached's words (issue 12).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "logline.h"

static void expect_line(const struct logline_event *ev, const char *want)
{
    char buf[LOGLINE_MAX];
    size_t n = logline_format(ev, 1700000000, 42, 7, buf, sizeof(buf));
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
}

static void test_logline_item_lines(void **state)
{
    (void)state;
    struct logline_event get = {.type = LOGLINE_ITEM_GET, .key = "foo", .nkey = 3, .found = true,
                                .clsid = 1, .cfd = 12, .size = 5};
    /* microseconds unpadded, as memcached's "%d" */
    expect_line(&get, "ts=1700000000.42 gid=7 type=item_get key=foo status=found clsid=1 cfd=12 size=5\n");
    get.found = false;
    get.clsid = 0;
    get.size = 0;
    expect_line(&get, "ts=1700000000.42 gid=7 type=item_get key=foo status=not_found clsid=0 cfd=12 size=0\n");
    struct logline_event store = {.type = LOGLINE_ITEM_STORE, .key = "a b#~.-_Z9", .nkey = 10,
                                  .status = LOGLINE_NOT_STORED, .cmd = PROTO_ADD, .ttl = 30, .clsid = 1,
                                  .cfd = 3, .size = 4};
    /* util.c's uriencode: alnum and -._~ kept, the rest %XX in capitals */
    expect_line(&store, "ts=1700000000.42 gid=7 type=item_store key=a%20b%23~.-_Z9 status=not_stored cmd=add "
                        "ttl=30 clsid=1 cfd=3 size=4\n");
    struct logline_event ev = {.type = LOGLINE_EVICTION, .key = "k", .nkey = 1, .found = false, .ttl = -1,
                               .last_access = 9, .clsid = 1, .size = 11000};
    expect_line(&ev, "ts=1700000000.42 gid=7 type=eviction key=k fetch=no ttl=-1 la=9 clsid=1 size=11000\n");
}

static void test_logline_conn_lines(void **state)
{
    (void)state;
    struct logline_event ev = {.type = LOGLINE_CONN_NEW, .rip = "127.0.0.1", .rport = 5555, .cfd = 9};
    expect_line(&ev, "ts=1700000000.42 gid=7 type=conn_new rip=127.0.0.1 rport=5555 transport=tcp cfd=9\n");
    ev.type = LOGLINE_CONN_CLOSE;
    ev.local = true;
    ev.reason = logline_reason_of("quit");
    expect_line(&ev, "ts=1700000000.42 gid=7 type=conn_close rip=127.0.0.1 rport=5555 transport=local "
                     "reason=normal cfd=9\n");
    assert_int_equal(logline_reason_of("end of stream"), LOGLINE_NORMAL);
    assert_int_equal(logline_reason_of("idle timeout"), LOGLINE_IDLE_TIMEOUT);
    assert_int_equal(logline_reason_of("shutdown deadline"), LOGLINE_SHUTDOWN);
    assert_int_equal(logline_reason_of("protocol close"), LOGLINE_ERROR);
    assert_int_equal(logline_reason_of(NULL), LOGLINE_ERROR);
}

/* A 250-byte key of bytes all encoded fits; a buffer too small gives 0. */
static void test_logline_longest_key(void **state)
{
    (void)state;
    char key[PROTO_KEY_MAX];
    memset(key, '#', sizeof(key));
    struct logline_event get = {.type = LOGLINE_ITEM_GET, .key = key, .nkey = sizeof(key)};
    char buf[LOGLINE_MAX];
    size_t n = logline_format(&get, 1, 0, 1, buf, sizeof(buf));
    assert_true(n > 0);
    const char *k = strstr(buf, "key=");
    assert_non_null(k);
    assert_int_equal(strcspn(k, " "), 4 + 3 * PROTO_KEY_MAX); /* t/watcher.t's length */
    assert_int_equal(logline_format(&get, 1, 0, 1, buf, 100), 0);
}

static void test_logline_kinds(void **state)
{
    (void)state;
    assert_int_equal(logline_kind(LOGLINE_ITEM_GET), PROTO_WATCH_FETCHERS);
    assert_int_equal(logline_kind(LOGLINE_ITEM_STORE), PROTO_WATCH_MUTATIONS);
    assert_int_equal(logline_kind(LOGLINE_EVICTION), PROTO_WATCH_EVICTIONS);
    assert_int_equal(logline_kind(LOGLINE_CONN_CLOSE), PROTO_WATCH_CONNEVENTS);
    struct proto_req req = {.cmd = PROTO_SET};
    assert_true(logline_is_store(&req));
    req.cmd = PROTO_MS;
    assert_true(logline_is_store(&req));
    req.cmd = PROTO_DELETE;
    assert_false(logline_is_store(&req));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logline_item_lines),
        cmocka_unit_test(test_logline_conn_lines),
        cmocka_unit_test(test_logline_longest_key),
        cmocka_unit_test(test_logline_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
