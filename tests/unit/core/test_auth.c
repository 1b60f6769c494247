/*
 * test_auth.c: password files, credential checks, SASL PLAIN messages and
 * memcached 1.6.18's ascii authentication exchange (each reply checked
 * against /usr/bin/memcached -Y by tests/integration/test_auth.py), with
 * every request split at every byte boundary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

static const char users[] = "alice:wonder land\nbob:b:o:b\r\n\ncarol:\n:nobody\n";

static int setup(void **state)
{
    size_t bad = 99;
    struct auth_db *db = auth_db_create(users, strlen(users), &bad);
    if (db == NULL)
        return -1;
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    struct auth_db *db = *state;
    auth_db_destroy(&db);
    return db == NULL ? 0 : -1;
}

#define CHECK(db, u, p) auth_db_check((db), (u), strlen(u), (p), strlen(p))

static void test_auth_db_parses_lines(void **state)
{
    struct auth_db *db = *state;
    assert_int_equal(auth_db_count(db), 4); /* the empty line is skipped */
    assert_true(CHECK(db, "alice", "wonder land"));
    assert_true(CHECK(db, "bob", "b:o:b")); /* password runs to the line's end, CR dropped */
    assert_true(CHECK(db, "carol", ""));
    assert_true(CHECK(db, "", "nobody"));
}

static void test_auth_db_rejects_near_misses(void **state)
{
    struct auth_db *db = *state;
    assert_false(CHECK(db, "alice", "wonder lan"));
    assert_false(CHECK(db, "alice", "wonder landx"));
    assert_false(CHECK(db, "alic", "wonder land"));
    assert_false(CHECK(db, "Alice", "wonder land"));
    assert_false(CHECK(db, "bob", "b:o:b\r"));
    assert_false(CHECK(db, "alice", "b:o:b")); /* another user's password */
    assert_false(CHECK(db, "mallory", ""));
    assert_false(auth_db_check(db, "alice\0", 6, "wonder land", 11));
}

static void test_auth_db_malformed_line_is_reported(void **state)
{
    (void)state;
    size_t bad = 0;
    const char text[] = "a:1\nb:2\nno colon here\nc:3\n";
    assert_null(auth_db_create(text, strlen(text), &bad));
    assert_int_equal(bad, 3);
    struct auth_db *db = auth_db_create("", 0, &bad);
    assert_non_null(db);
    assert_int_equal(auth_db_count(db), 0);
    assert_false(CHECK(db, "", ""));
    auth_db_destroy(&db);
    assert_null(db);
}

static void test_auth_pair_and_plain(void **state)
{
    struct auth_db *db = *state;
    assert_true(auth_db_check_pair(db, "alice:wonder land", 17));
    assert_true(auth_db_check_pair(db, "bob:b:o:b", 9));
    assert_false(auth_db_check_pair(db, "alice", 5));
    assert_true(auth_plain_check(db, "\0alice\0wonder land", 18));
    assert_true(auth_plain_check(db, "alice\0alice\0wonder land", 23));
    assert_false(auth_plain_check(db, "bob\0alice\0wonder land", 21)); /* act as another */
    assert_false(auth_plain_check(db, "\0alice\0wonder lan", 17));
    assert_false(auth_plain_check(db, "\0alice", 6));
    assert_false(auth_plain_check(db, "alice", 5));
    assert_false(auth_plain_check(db, "", 0));
}

/* Feeds `req` to auth_text_step whole and in every split: a prefix must
 * ask for more (or, for the first line, be undecided), the whole must give
 * `reply` after consuming `used`. */
static void expect_text(struct auth_db *db, const char *req, const char *reply, size_t used,
                        bool authenticated)
{
    size_t len = strlen(req);
    struct auth_text_result r;
    for (size_t cut = 0; cut < used; cut++) {
        auth_text_step(db, req, cut, &r);
        assert_int_equal(r.verdict, AUTH_TEXT_MORE);
        if (r.need != 0)
            assert_true(r.need > cut && r.need <= used);
    }
    auth_text_step(db, req, len, &r);
    assert_int_equal(r.verdict, AUTH_TEXT_REPLY);
    assert_string_equal(r.reply, reply);
    assert_int_equal(r.used, used);
    assert_int_equal(r.authenticated, authenticated);
}

static void test_auth_text_memcached_replies(void **state)
{
    struct auth_db *db = *state;
    const char *ok = "set x 0 0 17\r\nalice wonder land\r\n";
    /* "wonder land" has a space: memcached's token 2 is "wonder" */
    expect_text(db, ok, "CLIENT_ERROR authentication failure", strlen(ok), false);
    const char *bob = "set anything 5 6 9\r\nbob b:o:b\r\nget a\r\n";
    expect_text(db, bob, "STORED", strlen("set anything 5 6 9\r\nbob b:o:b\r\n"), true);
    expect_text(db, "get foo\r\n", "CLIENT_ERROR unauthenticated", 9, false);
    expect_text(db, "mg foo v\r\n", "CLIENT_ERROR unauthenticated", 10, false);
    expect_text(db, "set a 0 0\r\n", "CLIENT_ERROR unauthenticated", 11, false);
    expect_text(db, "set a 0 0 x\r\n", "CLIENT_ERROR unauthenticated", 13, false);
    expect_text(db, "set a 0 0 -1\r\n", "CLIENT_ERROR unauthenticated", 14, false);
    expect_text(db, "set a 0 0 3\r\nbob\r\n", "CLIENT_ERROR bad authentication token format", 18, false);
    expect_text(db, "set a 0 0 3\r\nbobXY", "CLIENT_ERROR bad command line termination", 18, false);
    expect_text(db, "set a 0 0 6\r\ncarol \r\n", "CLIENT_ERROR bad authentication token format", 21,
                false);
    expect_text(db, "set a 0 0 9 noreply\r\nbob b:o:b\r\n", "STORED", 32, true);
    expect_text(db, "set a 0 0 9\nbob b:o:b\r\n", "STORED", 23, true);
}

static void test_auth_text_counts_attempts(void **state)
{
    struct auth_db *db = *state;
    struct auth_text_result r;
    auth_text_step(db, "get a\r\n", 7, &r);
    assert_false(r.attempt);
    auth_text_step(db, "set a 0 0 7\r\nbob bad\r\n", 22, &r);
    assert_true(r.attempt);
    assert_false(r.authenticated);
}

static void test_auth_text_closes_on_junk(void **state)
{
    struct auth_db *db = *state;
    char junk[2100];
    memset(junk, 'a', sizeof(junk));
    struct auth_text_result r;
    auth_text_step(db, junk, 2048, &r);
    assert_int_equal(r.verdict, AUTH_TEXT_MORE);
    auth_text_step(db, junk, 2049, &r);
    assert_int_equal(r.verdict, AUTH_TEXT_CLOSE);
    /* a credential block we will not buffer */
    auth_text_step(db, "set a 0 0 100000\r\n", 18, &r);
    assert_int_equal(r.verdict, AUTH_TEXT_CLOSE);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_auth_db_parses_lines),
        T(test_auth_db_rejects_near_misses),
        T(test_auth_db_malformed_line_is_reported),
        T(test_auth_pair_and_plain),
        T(test_auth_text_memcached_replies),
        T(test_auth_text_counts_attempts),
        T(test_auth_text_closes_on_junk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
