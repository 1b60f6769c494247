/*
 * test_proto.c: the text protocol parser against memcached 1.6.18's
 * decisions (replies, token counts, bytes consumed), checked by hand
 * against a running memcached 1.6.18 while it was written.
 *
 * Every command is also fed split at every byte boundary (Seastar's
 * test_parsing_of_split_data): each prefix is copied into a heap buffer of
 * exactly its size, so AddressSanitizer catches any read past the bytes
 * the parser was given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"
#include "test_fixture.h"

/* A parser with --strict-keys: control bytes in keys refused. */
static int setup_strict(void **state)
{
    int ret = parser_fixture_setup(state);
    if (ret == 0)
        ((struct proto_parser *)*state)->limits.strict_keys = true;
    return ret;
}

/* Parses a literal (embedded NULs included). */
#define PARSE(parser, lit, req) proto_parse((parser), (lit), sizeof(lit) - 1, (req), NULL)

#define assert_bytes(p, n, lit)                                                                    \
    do {                                                                                           \
        assert_int_equal((n), sizeof(lit) - 1);                                                    \
        assert_memory_equal((p), (lit), sizeof(lit) - 1);                                          \
    } while (0)

/* Asserts that buf parses as one error request: reply, noreply, consumed. */
static void expect_error(struct proto_parser *parser, const char *buf, size_t len,
                         const char *error, bool noreply, size_t consumed)
{
    struct proto_req req;
    size_t n = proto_parse(parser, buf, len, &req, NULL);
    assert_int_equal(n, consumed);
    assert_int_equal(req.cmd, PROTO_ERROR);
    assert_non_null(req.error);
    assert_string_equal(req.error, error);
    assert_int_equal(req.noreply, noreply);
    assert_false(req.close);
    assert_null(req.key);
}

#define EXPECT_ERROR(parser, lit, error, noreply, consumed)                                        \
    expect_error((parser), (lit), sizeof(lit) - 1, (error), (noreply), (consumed))
/* The whole literal is one line that gives `error` and is consumed. */
#define EXPECT_LINE_ERROR(parser, lit, error, noreply)                                             \
    EXPECT_ERROR((parser), (lit), (error), (noreply), sizeof(lit) - 1)

#define BAD_FORMAT "CLIENT_ERROR bad command line format"
#define BAD_EXPTIME "CLIENT_ERROR invalid exptime argument"
#define BAD_DELTA "CLIENT_ERROR invalid numeric delta argument"
#define BAD_DELETE "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
#define BAD_CHUNK "CLIENT_ERROR bad data chunk"
#define TOO_LARGE "SERVER_ERROR object too large for cache"

#define CHECK_SPLIT(parser, lit) split_feed_text((parser), (lit), sizeof(lit) - 1)

/* --- retrieval ------------------------------------------------------- */

static void test_proto_get_single_key(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;
    const char buf[] = "get foo\r\n";
    assert_int_equal(PARSE(parser, buf, &req), 9);
    assert_int_equal(req.cmd, PROTO_GET);
    assert_bytes(req.key, req.nkey, "foo");
    assert_int_equal(req.nkeys, 1);
    assert_bytes(req.keys, req.keys_len, "foo");
    assert_false(req.noreply);
    assert_false(req.close);
    assert_null(req.error);
    assert_true(req.key == buf + 4); /* points into the buffer, no copy */
}

static void test_proto_get_bare_newline(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;
    assert_int_equal(PARSE(parser, "get foo\n", &req), 8);
    assert_int_equal(req.cmd, PROTO_GET);
    assert_bytes(req.key, req.nkey, "foo");
}

static void test_proto_get_multi_keys_walked(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;
    const char buf[] = "get  a bb   ccc \r\n";
    assert_int_equal(PARSE(parser, buf, &req), sizeof(buf) - 1);
    assert_int_equal(req.cmd, PROTO_GET);
    assert_int_equal(req.nkeys, 3);
    assert_bytes(req.key, req.nkey, "a");
    assert_bytes(req.keys, req.keys_len, "a bb   ccc");

    const char *want[] = {"a", "bb", "ccc"};
    uint32_t pos = 0;
    const char *key;
    uint32_t nkey;
    for (size_t i = 0; i < 3; i++) {
        assert_true(proto_next_key(&req, &pos, &key, &nkey));
        assert_int_equal(nkey, strlen(want[i]));
        assert_memory_equal(key, want[i], nkey);
    }
    assert_false(proto_next_key(&req, &pos, &key, &nkey));
    assert_false(proto_next_key(&req, &pos, &key, &nkey));
}

/* memcached re-tokenizes a multi-get past its 24 token slots: all keys
 * count, not just the first 23 tokens. */
static void test_proto_get_more_keys_than_tokens(void **state)
{
    struct proto_parser *parser = *state;
    char buf[512] = "gets";
    for (int i = 0; i < 40; i++) {
        char key[8];
        snprintf(key, sizeof(key), " k%d", i);
        strcat(buf, key);
    }
    strcat(buf, "\r\n");
    struct proto_req req;
    assert_int_equal(proto_parse(parser, buf, strlen(buf), &req, NULL), strlen(buf));
    assert_int_equal(req.cmd, PROTO_GETS);
    assert_int_equal(req.nkeys, 40);
    uint32_t pos = 0, nkey, count = 0;
    const char *key;
    while (proto_next_key(&req, &pos, &key, &nkey)) {
        char want[8];
        snprintf(want, sizeof(want), "k%u", count);
        assert_int_equal(nkey, strlen(want));
        assert_memory_equal(key, want, nkey);
        count++;
    }
    assert_int_equal(count, 40);
}

static void test_proto_get_aliases_and_touch_forms(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;

    assert_int_equal(PARSE(parser, "bget k\r\n", &req), 8);
    assert_int_equal(req.cmd, PROTO_GET);
    assert_bytes(req.key, req.nkey, "k");

    assert_int_equal(PARSE(parser, "gat 100 a b\r\n", &req), 13);
    assert_int_equal(req.cmd, PROTO_GAT);
    assert_int_equal(req.exptime, 100);
    assert_int_equal(req.nkeys, 2);
    assert_bytes(req.keys, req.keys_len, "a b");

    assert_int_equal(PARSE(parser, "gats -1 a\r\n", &req), 11);
    assert_int_equal(req.cmd, PROTO_GATS);
    assert_int_equal(req.exptime, -1);
    assert_bytes(req.key, req.nkey, "a");

    /* memcached answers "gat 10" with a bare END */
    assert_int_equal(PARSE(parser, "gat 10\r\n", &req), 8);
    assert_int_equal(req.cmd, PROTO_GAT);
    assert_int_equal(req.exptime, 10);
    assert_int_equal(req.nkeys, 0);
    assert_null(req.key);
    uint32_t pos = 0, nkey;
    const char *key;
    assert_false(proto_next_key(&req, &pos, &key, &nkey));
}

static void test_proto_get_errors(void **state)
{
    struct proto_parser *parser = *state;
    EXPECT_LINE_ERROR(parser, "get\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "get \r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "gets\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "bget\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "gat\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "gx a\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "gat x a\r\n", BAD_EXPTIME, false);
    EXPECT_LINE_ERROR(parser, "gats 99999999999999999999 a\r\n", BAD_EXPTIME, false);
    /* get has no noreply: it is a key */
    struct proto_req req;
    assert_int_equal(PARSE(parser, "get a noreply\r\n", &req), 15);
    assert_int_equal(req.cmd, PROTO_GET);
    assert_false(req.noreply);
    assert_int_equal(req.nkeys, 2);
}

static void test_proto_get_key_length_limit(void **state)
{
    struct proto_parser *parser = *state;
    char buf[600];
    struct proto_req req;

    memcpy(buf, "get ", 4);
    memset(buf + 4, 'k', PROTO_KEY_MAX);
    memcpy(buf + 4 + PROTO_KEY_MAX, "\r\n", 2);
    size_t len = 4 + PROTO_KEY_MAX + 2;
    assert_int_equal(proto_parse(parser, buf, len, &req, NULL), len);
    assert_int_equal(req.cmd, PROTO_GET);
    assert_int_equal(req.nkey, PROTO_KEY_MAX);

    /* one byte more, as the last of several keys: the whole get fails */
    memcpy(buf, "get a b ", 8);
    memset(buf + 8, 'k', PROTO_KEY_MAX + 1);
    memcpy(buf + 8 + PROTO_KEY_MAX + 1, "\r\n", 2);
    len = 8 + PROTO_KEY_MAX + 1 + 2;
    expect_error(parser, buf, len, BAD_FORMAT, false, len);
}

/* --strict-keys: a key with a control byte is refused; a storage
 * command's block is swallowed so the connection stays in step. */
static void test_proto_key_control_bytes_refused(void **state)
{
    struct proto_parser *parser = *state;
    EXPECT_LINE_ERROR(parser, "get a\tb\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "get ok a\x7f\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "get a\r\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "get ok \x01\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "set a\x1b 0 0 1 noreply\r\n", BAD_FORMAT, true);
    assert_int_equal(parser->swallow, 3); /* "x\r\n" to come */
    parser->swallow = 0;
    EXPECT_LINE_ERROR(parser, "delete a\x02\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "incr a\x03 1\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "touch a\x04 1 noreply\r\n", BAD_FORMAT, true);
    /* bytes above 0x7f (UTF-8) are fine */
    struct proto_req req;
    assert_int_equal(PARSE(parser, "get \xc3\xa9t\xc3\xa9\r\n", &req), 11);
    assert_int_equal(req.cmd, PROTO_GET);
    assert_bytes(req.key, req.nkey, "\xc3\xa9t\xc3\xa9");
}

/* The tokenizer tests 8 bytes per step: a control byte, DEL or a space must
 * be found at every offset of a long key, and UTF-8 bytes never flagged. */
static void test_proto_special_byte_at_every_offset(void **state)
{
    struct proto_parser *parser = *state;
    char line[128];
    struct proto_req req;
    static const char specials[] = {'\x01', '\x1f', '\x7f', '\t', '\0'};
    for (unsigned s = 0; s < sizeof(specials); s++) {
        for (unsigned at = 0; at < 40; at++) {
            char key[41];
            memset(key, 'k', 40);
            key[40] = '\0';
            key[at] = specials[s];
            memcpy(line, "get ", 4);
            memcpy(line + 4, key, 40);
            memcpy(line + 44, "\r\n", 2);
            assert_int_equal(proto_parse(parser, line, 46, &req, NULL), 46);
            assert_int_equal(req.cmd, PROTO_ERROR);
            assert_string_equal(req.error, "CLIENT_ERROR bad command line format");
        }
    }
    for (unsigned at = 1; at < 39; at++) { /* a space splits the key in two */
        memset(line, 'k', sizeof(line));
        memcpy(line, "get ", 4);
        line[4 + at] = ' ';
        memcpy(line + 44, "\r\n", 2);
        assert_int_equal(proto_parse(parser, line, 46, &req, NULL), 46);
        assert_int_equal(req.cmd, PROTO_GET);
        assert_int_equal(req.nkeys, 2);
        assert_int_equal(req.nkey, at);
        uint32_t pos = 0, nkey = 0;
        const char *key = NULL;
        assert_true(proto_next_key(&req, &pos, &key, &nkey));
        assert_int_equal(nkey, at);
        assert_true(proto_next_key(&req, &pos, &key, &nkey));
        assert_int_equal(nkey, 39 - at);
        assert_false(proto_next_key(&req, &pos, &key, &nkey));
    }
    /* bytes >= 0x80 are key bytes (UTF-8), at every offset */
    for (unsigned at = 0; at < 40; at++) {
        memset(line, 'k', sizeof(line));
        memcpy(line, "get ", 4);
        line[4 + at] = (char)0xc3;
        line[4 + ((at + 1) % 40)] = (char)0xa9;
        memcpy(line + 44, "\r\n", 2);
        assert_int_equal(proto_parse(parser, line, 46, &req, NULL), 46);
        assert_int_equal(req.cmd, PROTO_GET);
        assert_int_equal(req.nkey, 40);
    }
}

/* --strict-keys: a NUL is a control byte like any other (memcached would
 * end the line there and serve key "a" for "a\0zzz"): the key is refused,
 * and a NUL elsewhere makes its token invalid. */
static void test_proto_nul_is_a_control_byte(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;
    const char get[] = "get a\0zzz\r\n";
    assert_int_equal(PARSE(parser, get, &req), sizeof(get) - 1);
    assert_int_equal(req.cmd, PROTO_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR bad command line format");

    const char set[] = "set k\0 0 0 1\r\nx\r\n";
    assert_int_equal(PARSE(parser, set, &req), sizeof("set k\0 0 0 1\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR bad command line format");
    assert_int_equal(parser->swallow, 3);
    parser->swallow = 0;

    const char setlen[] = "set k 0 0 1\0junk\r\nx\r\n";
    assert_int_equal(PARSE(parser, setlen, &req), sizeof("set k 0 0 1\0junk\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR bad command line format");

    EXPECT_LINE_ERROR(parser, "\0get a\r\n", "ERROR", false);
}

/* issue 16: memcached's tokenizer splits on ' ' only, so control bytes,
 * DEL and tabs are key bytes (memaslap's keys hold them). */
static void test_issue16_control_byte_keys_accepted(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;
    assert_int_equal(PARSE(parser, "get a\tb\r\n", &req), sizeof("get a\tb\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_GET);
    assert_bytes(req.key, req.nkey, "a\tb");
    assert_int_equal(PARSE(parser, "get ok \x01\x7f\r\n", &req), sizeof("get ok \x01\x7f\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_GET);
    assert_int_equal(req.nkeys, 2);
    assert_int_equal(PARSE(parser, "get a\r\r\n", &req), sizeof("get a\r\r\n") - 1);
    assert_bytes(req.key, req.nkey, "a\r");
    assert_int_equal(PARSE(parser, "set a\x1b\x02 0 0 1 noreply\r\nx\r\n", &req), sizeof("set a\x1b\x02 0 0 1 noreply\r\nx\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_SET);
    assert_bytes(req.key, req.nkey, "a\x1b\x02");
    assert_int_equal(PARSE(parser, "incr a\x03 1\r\n", &req), sizeof("incr a\x03 1\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_INCR);
    assert_int_equal(PARSE(parser, "touch a\x04 1 noreply\r\n", &req), sizeof("touch a\x04 1 noreply\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_TOUCH);
    assert_true(req.noreply);
    assert_int_equal(PARSE(parser, "delete a\x05\r\n", &req), sizeof("delete a\x05\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_DELETE);
    /* every offset of a long key, through the word-at-a-time scan */
    static const char specials[] = {'\x01', '\x1f', '\x7f', '\t'};
    for (unsigned s = 0; s < sizeof(specials); s++) {
        for (unsigned at = 0; at < 40; at++) {
            char line[46];
            memcpy(line, "get ", 4);
            memset(line + 4, 'k', 40);
            line[4 + at] = specials[s];
            memcpy(line + 44, "\r\n", 2);
            assert_int_equal(proto_parse(parser, line, 46, &req, NULL), 46);
            assert_int_equal(req.cmd, PROTO_GET);
            assert_int_equal(req.nkey, 40);
        }
    }
}

/* issue 16: a NUL ends memcached's command text (strlen), whatever
 * follows on the line; the data block still starts after the newline. */
static void test_issue16_nul_ends_the_line(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;
    const char get[] = "get a\0zzz\r\n";
    assert_int_equal(PARSE(parser, get, &req), sizeof(get) - 1);
    assert_int_equal(req.cmd, PROTO_GET);
    assert_bytes(req.key, req.nkey, "a");
    assert_int_equal(req.nkeys, 1);

    const char set[] = "set k 0 0 1\0junk\r\nx\r\n";
    assert_int_equal(PARSE(parser, set, &req), sizeof(set) - 1);
    assert_int_equal(req.cmd, PROTO_SET);
    assert_bytes(req.value, req.nbytes, "x");

    const char short_set[] = "set k\0 0 0 1\r\nx\r\n"; /* two tokens: ERROR */
    assert_int_equal(PARSE(parser, short_set, &req), sizeof("set k\0 0 0 1\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_ERROR);
    assert_string_equal(req.error, "ERROR");
    EXPECT_LINE_ERROR(parser, "\0get a\r\n", "ERROR", false);
}

/* issue 16: numbers as memcached 1.6.18 reads them. Exptimes and lengths
 * are strtol() kept to their low 32 bits as signed (4294967295 is -1:
 * libmemcached sends Django's timeout=0 so), flags strtoul() kept to 32
 * bits. Each line is accepted whole, so nothing is left to desynchronize. */
static void test_issue16_numbers_truncate_as_memcached(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;
    assert_int_equal(PARSE(parser, "set k 16 4294967295 1\r\nx\r\n", &req), sizeof("set k 16 4294967295 1\r\nx\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_SET);
    assert_int_equal(req.exptime, -1);
    assert_int_equal(req.flags, 16);
    assert_int_equal(PARSE(parser, "set k 4294967296 2147483648 1\r\nx\r\n", &req), sizeof("set k 4294967296 2147483648 1\r\nx\r\n") - 1);
    assert_int_equal(req.flags, 0);
    assert_int_equal(req.exptime, INT32_MIN);
    assert_int_equal(PARSE(parser, "set k 4294967297 -2147483649 1\r\nx\r\n", &req), sizeof("set k 4294967297 -2147483649 1\r\nx\r\n") - 1);
    assert_int_equal(req.flags, 1);
    assert_int_equal(req.exptime, INT32_MAX);
    /* a length of 4294967297 is 1 */
    assert_int_equal(PARSE(parser, "add k 0 0 4294967297\r\nx\r\n", &req), sizeof("add k 0 0 4294967297\r\nx\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_ADD);
    assert_int_equal(req.nbytes, 1);
    assert_int_equal(PARSE(parser, "cas k 0 8589934591 1 7\r\nx\r\n", &req), sizeof("cas k 0 8589934591 1 7\r\nx\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_CAS);
    assert_int_equal(req.exptime, -1);
    assert_int_equal(PARSE(parser, "touch k 4294967295\r\n", &req), sizeof("touch k 4294967295\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_TOUCH);
    assert_int_equal(req.exptime, -1);
    assert_int_equal(PARSE(parser, "gat 4294967296 k\r\n", &req), sizeof("gat 4294967296 k\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_GAT);
    assert_int_equal(req.exptime, 0);
    assert_int_equal(PARSE(parser, "flush_all 4294967306\r\n", &req), sizeof("flush_all 4294967306\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_FLUSH_ALL);
    assert_int_equal(req.exptime, 10);
    assert_int_equal(PARSE(parser, "flush_all 2147483648\r\n", &req), sizeof("flush_all 2147483648\r\n") - 1);
    assert_int_equal(req.exptime, 0); /* INT32_MIN: now */
    /* a delta is 64-bit as in memcached */
    assert_int_equal(PARSE(parser, "incr k 18446744073709551615\r\n", &req), sizeof("incr k 18446744073709551615\r\n") - 1);
    assert_int_equal(req.cmd, PROTO_INCR);
    assert_true(req.delta == UINT64_MAX);
}

/* --- storage --------------------------------------------------------- */

static void test_proto_storage_commands(void **state)
{
    struct proto_parser *parser = *state;
    static const struct {
        const char *name;
        enum proto_cmd cmd;
    } cmds[] = {
        {"set", PROTO_SET},         {"add", PROTO_ADD},         {"replace", PROTO_REPLACE},
        {"append", PROTO_APPEND},   {"prepend", PROTO_PREPEND},
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        for (int noreply = 0; noreply <= 1; noreply++) {
            char buf[128];
            int line = snprintf(buf, sizeof(buf), "%s key 4294967295 -30 5%s\r\n", cmds[i].name,
                                noreply ? " noreply" : "");
            memcpy(buf + line, "hello\r\n", 7);
            size_t len = (size_t)line + 7;
            struct proto_req req;
            size_t need = 99;
            assert_int_equal(proto_parse(parser, buf, len, &req, &need), len);
            assert_int_equal(need, 0);
            assert_int_equal(req.cmd, cmds[i].cmd);
            assert_true(proto_is_keyed(req.cmd));
            assert_bytes(req.key, req.nkey, "key");
            assert_int_equal(req.flags, UINT32_MAX);
            assert_int_equal(req.exptime, -30);
            assert_int_equal(req.nbytes, 5);
            assert_true(req.value == buf + line);
            assert_int_equal(req.noreply, noreply);
            assert_false(req.too_large);
            assert_null(req.error);
        }
    }
}

static void test_proto_cas_command(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;
    const char buf[] = "cas k 7 0 3 18446744073709551615\r\nabc\r\n";
    assert_int_equal(PARSE(parser, buf, &req), sizeof(buf) - 1);
    assert_int_equal(req.cmd, PROTO_CAS);
    assert_int_equal(req.cas, UINT64_MAX);
    assert_int_equal(req.flags, 7);
    assert_bytes(req.value, req.nbytes, "abc");
    assert_false(req.noreply);

    const char nr[] = "cas k 0 0 1 42 noreply\nx\r\n";
    assert_int_equal(PARSE(parser, nr, &req), sizeof(nr) - 1);
    assert_int_equal(req.cmd, PROTO_CAS);
    assert_int_equal(req.cas, 42);
    assert_true(req.noreply);

    /* the cas unique is required: "noreply" in its place is a bad number,
     * and the error is silenced */
    EXPECT_ERROR(parser, "cas k 0 0 1 noreply\r\nx\r\n", BAD_FORMAT, true, 21);
    EXPECT_ERROR(parser, "cas k 0 0 1 x\r\nx\r\n", BAD_FORMAT, false, 15);
    EXPECT_LINE_ERROR(parser, "cas k 0 0 1\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "cas k 0 0 1 1 noreply x\r\n", "ERROR", false);
}

static void test_proto_storage_value_framing(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;

    /* an empty value */
    assert_int_equal(PARSE(parser, "set k 0 0 0\r\n\r\n", &req), 15);
    assert_int_equal(req.cmd, PROTO_SET);
    assert_int_equal(req.nbytes, 0);
    assert_non_null(req.value);

    /* the value is binary: newlines inside do not end it */
    const char bin[] = "set k 0 0 6\r\na\r\nb\nc\r\n";
    assert_int_equal(PARSE(parser, bin, &req), sizeof(bin) - 1);
    assert_bytes(req.value, req.nbytes, "a\r\nb\nc");

    /* an extra sixth token that is not "noreply" is ignored (memcached) */
    assert_int_equal(PARSE(parser, "set k 0 0 1 foo\r\nx\r\n", &req), 20);
    assert_int_equal(req.cmd, PROTO_SET);
    assert_false(req.noreply);
}

static void test_proto_storage_waits_for_data_block(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;
    size_t need = 99;
    const char buf[] = "set k 0 0 5\r\nhello\r\n";
    assert_int_equal(proto_parse(parser, buf, 16, &req, &need), 0);
    assert_int_equal(need, sizeof(buf) - 1);
    need = 99;
    assert_int_equal(proto_parse(parser, buf, 8, &req, &need), 0);
    assert_int_equal(need, 0); /* the line is not complete yet */
    assert_int_equal(proto_parse(parser, buf, sizeof(buf) - 2, &req, &need), 0);
    assert_int_equal(need, sizeof(buf) - 1);
}

static void test_proto_storage_token_counts(void **state)
{
    struct proto_parser *parser = *state;
    EXPECT_LINE_ERROR(parser, "set k 0 0\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "set\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "add k 0 0 1 noreply x\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "replace k 0\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "sets k 0 0 1\r\n", "ERROR", false);
    /* 24 tokens and more are still too many */
    EXPECT_LINE_ERROR(parser,
                      "set k 0 0 1 z z z z z z z z z z z z z z z z z z z z z z z z z z\r\n",
                      "ERROR", false);
}

/* Header errors consume only the line; the data block is then parsed as
 * commands, as memcached does. */
static void test_proto_storage_header_errors(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;

    EXPECT_ERROR(parser, "set k -1 0 1\r\nx\r\n", BAD_FORMAT, false, 14);
    assert_int_equal(PARSE(parser, "x\r\n", &req), 3);
    assert_int_equal(req.cmd, PROTO_ERROR);
    assert_string_equal(req.error, "ERROR");

    EXPECT_LINE_ERROR(parser, "set k 18446744073709551616 0 1\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "set k 1x 0 1\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "set k 0x10 0 1\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "set k + 0 1\r\n", BAD_FORMAT, false);
    /* exptime outside strtol's long: ERANGE */
    EXPECT_LINE_ERROR(parser, "set k 0 99999999999999999999 1\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "set k 0 -9223372036854775809 1\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "set k 0 abc 1 noreply\r\n", BAD_FORMAT, true);
    /* vlen: negative, above INT32_MAX - 2, or wrapping */
    EXPECT_LINE_ERROR(parser, "set k 0 0 -1\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "set k 0 0 2147483646\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "set k 0 0 4294967295\r\n", BAD_FORMAT, false); /* -1 */
    EXPECT_LINE_ERROR(parser, "set k 0 0 99999999999999999999\r\n", BAD_FORMAT, false);
    /* "noreply" as the length: silenced, as memcached */
    EXPECT_LINE_ERROR(parser, "set k 0 0 noreply\r\n", BAD_FORMAT, true);
    /* key too long */
    char buf[300];
    int n = snprintf(buf, sizeof(buf), "prepend %0251d 0 0 1 noreply\r\n", 0);
    expect_error(parser, buf, (size_t)n, BAD_FORMAT, true, (size_t)n);
}

/* safe_strtoul/safe_strtol quirks that memcached accepts. */
static void test_proto_number_syntax_as_memcached(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;

    assert_int_equal(PARSE(parser, "set k +5 0 1\r\nx\r\n", &req), 17);
    assert_int_equal(req.flags, 5);
    /* leading white space other than ' ' is skipped */
    assert_int_equal(PARSE(parser, "set k \t5 0 1\r\nx\r\n", &req), 17);
    assert_int_equal(req.flags, 5);
    /* a white space byte ends the number; the rest is ignored */
    assert_int_equal(PARSE(parser, "set k 5\tx 0 1\r\nx\r\n", &req), 18);
    assert_int_equal(req.flags, 5);
    /* strtoul("-18446744073709551615") is 1 and positive: accepted */
    const char neg[] = "set k -18446744073709551615 0 1\r\nx\r\n";
    assert_int_equal(PARSE(parser, neg, &req), sizeof(neg) - 1);
    assert_int_equal(req.flags, 1);
    assert_int_equal(PARSE(parser, "set k -0 -0 1\r\nx\r\n", &req), 18);
    assert_int_equal(req.flags, 0);
    assert_int_equal(req.exptime, 0);
    assert_int_equal(PARSE(parser, "touch k 5\x0b\r\n", &req), 12);
    assert_int_equal(req.cmd, PROTO_TOUCH);
    assert_int_equal(req.exptime, 5);
    assert_int_equal(PARSE(parser, "set k 0 -2147483648 1\r\nx\r\n", &req), 26);
    assert_int_equal(req.exptime, INT32_MIN);
}

static void test_proto_storage_bad_data_chunk(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;

    /* the whole block is consumed; what follows is the next command */
    const char buf[] = "set k 0 0 1\r\nxyz\r\n";
    EXPECT_ERROR(parser, buf, BAD_CHUNK, false, 16);
    assert_int_equal(PARSE(parser, "\r\n", &req), 2);
    assert_string_equal(req.error, "ERROR");

    EXPECT_ERROR(parser, "set k 0 0 1 noreply\r\nxyz\r\n", BAD_CHUNK, true, 24);
    EXPECT_ERROR(parser, "append k 0 0 2\r\nab\n\r", BAD_CHUNK, false, 20);
    EXPECT_ERROR(parser, "cas k 0 0 2 1\r\nab\r\r", BAD_CHUNK, false, 19);
}

static void test_proto_storage_too_large_swallows(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_limits limits = {.item_size_max = 100, .item_total = fixture_item_total};
    proto_parser_init(parser, &limits);
    struct proto_req req;

    /* 1 + 51 + 48 == 100: fits exactly */
    char fits[128];
    int line = snprintf(fits, sizeof(fits), "set k 0 0 51\r\n");
    memset(fits + line, 'v', 51);
    memcpy(fits + line + 51, "\r\n", 2);
    assert_int_equal(proto_parse(parser, fits, (size_t)line + 53, &req, NULL), (size_t)line + 53);
    assert_int_equal(req.cmd, PROTO_SET);
    assert_false(req.too_large);

    /* one byte more: reported with the command, the line consumed */
    const char head[] = "set k 5 0 52 noreply\r\n";
    char buf[256];
    size_t hl = sizeof(head) - 1;
    memcpy(buf, head, hl);
    memset(buf + hl, 'v', 52);
    memcpy(buf + hl + 52, "\r\nget k\r\n", 9);
    size_t len = hl + 52 + 9;

    assert_int_equal(proto_parse(parser, buf, 10, &req, NULL), 0);
    assert_int_equal(proto_parse(parser, buf, hl, &req, NULL), hl);
    assert_int_equal(req.cmd, PROTO_SET);
    assert_true(req.too_large);
    assert_string_equal(req.error, TOO_LARGE);
    assert_true(req.noreply);
    assert_bytes(req.key, req.nkey, "k");
    assert_int_equal(req.nbytes, 52);
    assert_int_equal(req.flags, 5);
    assert_null(req.value);
    assert_int_equal(parser->swallow, 54);

    /* swallowed across calls, 20 bytes at a time */
    size_t off = hl;
    while (parser->swallow > 0) {
        size_t chunk = len - off < 20 ? len - off : 20;
        size_t n = proto_parse(parser, buf + off, chunk, &req, NULL);
        assert_true(n > 0 && n <= chunk);
        assert_int_equal(req.cmd, PROTO_NONE);
        assert_null(req.error);
        assert_false(req.close);
        off += n;
    }
    assert_int_equal(off, hl + 54);
    assert_int_equal(proto_parse(parser, buf + off, len - off, &req, NULL), len - off);
    assert_int_equal(req.cmd, PROTO_GET);

    /* an empty buffer during a swallow is "need more", not progress */
    assert_int_equal(PARSE(parser, "add k 0 0 1000\r\n", &req), 16);
    assert_true(req.too_large);
    assert_int_equal(req.cmd, PROTO_ADD);
    assert_false(req.noreply);
    assert_int_equal(proto_parse(parser, buf, 0, &req, NULL), 0);
    assert_int_equal(parser->swallow, 1002);
}

/* --- keyed commands -------------------------------------------------- */

static void test_proto_delete_forms(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;

    assert_int_equal(PARSE(parser, "delete k\r\n", &req), 10);
    assert_int_equal(req.cmd, PROTO_DELETE);
    assert_bytes(req.key, req.nkey, "k");
    assert_false(req.noreply);

    assert_int_equal(PARSE(parser, "delete k noreply\r\n", &req), 18);
    assert_int_equal(req.cmd, PROTO_DELETE);
    assert_true(req.noreply);

    assert_int_equal(PARSE(parser, "delete k 0\r\n", &req), 12);
    assert_int_equal(req.cmd, PROTO_DELETE);
    assert_false(req.noreply);

    assert_int_equal(PARSE(parser, "delete k 0 noreply\r\n", &req), 20);
    assert_int_equal(req.cmd, PROTO_DELETE);
    assert_true(req.noreply);

    /* "delete noreply" deletes the key "noreply" */
    assert_int_equal(PARSE(parser, "delete noreply\r\n", &req), 16);
    assert_bytes(req.key, req.nkey, "noreply");
    assert_false(req.noreply);

    EXPECT_LINE_ERROR(parser, "delete\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "delete a b c d\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "delete k 1\r\n", BAD_DELETE, false);
    EXPECT_LINE_ERROR(parser, "delete k 1 noreply\r\n", BAD_DELETE, true);
    EXPECT_LINE_ERROR(parser, "delete k 0 0\r\n", BAD_DELETE, false);
    EXPECT_LINE_ERROR(parser, "delete k noreply x\r\n", BAD_DELETE, false);
    /* the form is checked before the key */
    char buf[300];
    int n = snprintf(buf, sizeof(buf), "delete %0251d 1\r\n", 0);
    expect_error(parser, buf, (size_t)n, BAD_DELETE, false, (size_t)n);
    n = snprintf(buf, sizeof(buf), "delete %0251d noreply\r\n", 0);
    expect_error(parser, buf, (size_t)n, BAD_FORMAT, true, (size_t)n);
}

static void test_proto_arithmetic(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;

    assert_int_equal(PARSE(parser, "incr k 18446744073709551615\r\n", &req), 29);
    assert_int_equal(req.cmd, PROTO_INCR);
    assert_int_equal(req.delta, UINT64_MAX);
    assert_bytes(req.key, req.nkey, "k");
    assert_false(req.noreply);

    assert_int_equal(PARSE(parser, "decr k 7 noreply\r\n", &req), 18);
    assert_int_equal(req.cmd, PROTO_DECR);
    assert_int_equal(req.delta, 7);
    assert_true(req.noreply);

    /* a fourth token that is not noreply is ignored */
    assert_int_equal(PARSE(parser, "incr k 1 x\r\n", &req), 12);
    assert_int_equal(req.cmd, PROTO_INCR);
    assert_false(req.noreply);

    /* strtoull("-18446744073709551615") == 1, accepted by memcached */
    assert_int_equal(PARSE(parser, "incr k -18446744073709551615\r\n", &req), 30);
    assert_int_equal(req.delta, 1);

    EXPECT_LINE_ERROR(parser, "incr k -1\r\n", BAD_DELTA, false);
    EXPECT_LINE_ERROR(parser, "incr k 18446744073709551616\r\n", BAD_DELTA, false);
    EXPECT_LINE_ERROR(parser, "decr k x noreply\r\n", BAD_DELTA, true);
    EXPECT_LINE_ERROR(parser, "incr k noreply\r\n", BAD_DELTA, true);
    EXPECT_LINE_ERROR(parser, "incr k\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "decr k 1 2 3\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "incrx k 1\r\n", "ERROR", false);
    /* the key is checked before the delta */
    char buf[300];
    int n = snprintf(buf, sizeof(buf), "incr %0251d x\r\n", 0);
    expect_error(parser, buf, (size_t)n, BAD_FORMAT, false, (size_t)n);
}

static void test_proto_touch(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;

    assert_int_equal(PARSE(parser, "touch k 300\r\n", &req), 13);
    assert_int_equal(req.cmd, PROTO_TOUCH);
    assert_int_equal(req.exptime, 300);
    assert_bytes(req.key, req.nkey, "k");
    assert_false(req.noreply);

    assert_int_equal(PARSE(parser, "touch k -1 noreply\n", &req), 19);
    assert_int_equal(req.exptime, -1);
    assert_true(req.noreply);

    EXPECT_LINE_ERROR(parser, "touch k x\r\n", BAD_EXPTIME, false);
    EXPECT_LINE_ERROR(parser, "touch k 9223372036854775808 noreply\r\n", BAD_EXPTIME, true);
    EXPECT_LINE_ERROR(parser, "touch k\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "touch k 1 2 3\r\n", "ERROR", false);
}

/* --- whole-server commands ------------------------------------------- */

static void test_proto_stats_args(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;

    assert_int_equal(PARSE(parser, "stats\r\n", &req), 7);
    assert_int_equal(req.cmd, PROTO_STATS);
    assert_int_equal(req.nargs, 0);
    assert_non_null(req.args);

    assert_int_equal(PARSE(parser, "stats   slabs  \r\n", &req), 17);
    assert_int_equal(req.cmd, PROTO_STATS);
    assert_bytes(req.args, req.nargs, "slabs");

    assert_int_equal(PARSE(parser, "stats detail  on\n", &req), 17);
    assert_bytes(req.args, req.nargs, "detail  on");

    EXPECT_LINE_ERROR(parser, "stats\tslabs\r\n", "ERROR", false);
}

static void test_proto_flush_all_forms(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;

    assert_int_equal(PARSE(parser, "flush_all\r\n", &req), 11);
    assert_int_equal(req.cmd, PROTO_FLUSH_ALL);
    assert_int_equal(req.exptime, 0);
    assert_false(req.noreply);

    assert_int_equal(PARSE(parser, "flush_all noreply\r\n", &req), 19);
    assert_int_equal(req.cmd, PROTO_FLUSH_ALL);
    assert_true(req.noreply);

    assert_int_equal(PARSE(parser, "flush_all 10\r\n", &req), 14);
    assert_int_equal(req.exptime, 10);

    assert_int_equal(PARSE(parser, "flush_all 10 noreply\r\n", &req), 22);
    assert_int_equal(req.exptime, 10);
    assert_true(req.noreply);

    /* memcached reads only the second token: "10 20" is a delay of 10 */
    assert_int_equal(PARSE(parser, "flush_all 10 20\r\n", &req), 17);
    assert_int_equal(req.cmd, PROTO_FLUSH_ALL);
    assert_int_equal(req.exptime, 10);

    /* a negative delay means now */
    assert_int_equal(PARSE(parser, "flush_all -5\r\n", &req), 14);
    assert_int_equal(req.cmd, PROTO_FLUSH_ALL);
    assert_int_equal(req.exptime, 0);

    EXPECT_LINE_ERROR(parser, "flush_all x\r\n", BAD_EXPTIME, false);
    EXPECT_LINE_ERROR(parser, "flush_all noreply 10\r\n", BAD_EXPTIME, false);
    EXPECT_LINE_ERROR(parser, "flush_all noreply noreply\r\n", BAD_EXPTIME, true);
    EXPECT_LINE_ERROR(parser, "flush_all 9223372036854775808\r\n", BAD_EXPTIME, false);
    EXPECT_LINE_ERROR(parser, "flush_all 1 2 3\r\n", "ERROR", false);
}

static void test_proto_version_quit_verbosity(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;

    assert_int_equal(PARSE(parser, "version\r\n", &req), 9);
    assert_int_equal(req.cmd, PROTO_VERSION);
    assert_int_equal(PARSE(parser, "version foo bar\r\n", &req), 17);
    assert_int_equal(req.cmd, PROTO_VERSION);

    assert_int_equal(PARSE(parser, "quit\r\n", &req), 6);
    assert_int_equal(req.cmd, PROTO_QUIT);
    assert_true(req.close);
    assert_null(req.error);

    assert_int_equal(PARSE(parser, "verbosity 2\r\n", &req), 13);
    assert_int_equal(req.cmd, PROTO_VERBOSITY);
    assert_int_equal(req.level, 2);
    assert_false(req.noreply);

    assert_int_equal(PARSE(parser, "verbosity 1 noreply\r\n", &req), 21);
    assert_int_equal(req.level, 1);
    assert_true(req.noreply);

    assert_int_equal(PARSE(parser, "verbosity 1 2\r\n", &req), 15);
    assert_int_equal(req.level, 1);
    assert_false(req.noreply);

    /* memcached's safe_strtoul into an unsigned int truncates */
    assert_int_equal(PARSE(parser, "verbosity 4294967297\r\n", &req), 22);
    assert_int_equal(req.cmd, PROTO_VERBOSITY);
    assert_int_equal(req.level, 1);

    EXPECT_LINE_ERROR(parser, "verbosity\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "verbosity 1 2 3\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "verbosity x\r\n", BAD_FORMAT, false);
    EXPECT_LINE_ERROR(parser, "verbosity noreply\r\n", BAD_FORMAT, true);
}

static void test_proto_shutdown_forms(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;

    assert_int_equal(PARSE(parser, "shutdown\r\n", &req), 10);
    assert_int_equal(req.cmd, PROTO_SHUTDOWN);
    assert_false(req.graceful);

    assert_int_equal(PARSE(parser, "shutdown graceful\r\n", &req), 19);
    assert_int_equal(req.cmd, PROTO_SHUTDOWN);
    assert_true(req.graceful);

    EXPECT_LINE_ERROR(parser, "shutdown now\r\n", "CLIENT_ERROR invalid shutdown mode", false);
    EXPECT_LINE_ERROR(parser, "shutdown graceful x\r\n", "CLIENT_ERROR invalid shutdown mode",
                      false);
    EXPECT_LINE_ERROR(parser, "shutdown noreply\r\n", "CLIENT_ERROR invalid shutdown mode", false);
}

/* Meta commands have their own tests (test_proto_meta.c); here only the
 * routing of two-byte 'm' commands: unknown ones are ERROR, without the
 * HTTP check. */
static void test_proto_meta_dispatch(void **state)
{
    struct proto_parser *parser = *state;
    EXPECT_LINE_ERROR(parser, "mx k\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "mz HTTP/1.1\r\n", "ERROR", false);
    struct proto_req req;
    assert_int_equal(PARSE(parser, "mn\r\n", &req), 4);
    assert_int_equal(req.cmd, PROTO_MN);
    assert_int_equal(PARSE(parser, "mg k v\r\n", &req), 8);
    assert_int_equal(req.cmd, PROTO_MG);
}

static void test_proto_empty_and_short_lines(void **state)
{
    struct proto_parser *parser = *state;
    EXPECT_LINE_ERROR(parser, "\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "   \r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "x\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "x\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "bogus\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "GET\r\n", "ERROR", false);
    /* memcached knows these; we do not implement them */
    EXPECT_LINE_ERROR(parser, "lru_crawler metadump all\r\n", "ERROR", false);
    /* slabs automove: answered as memcached answers (issue 12); reassign is
     * parsed for exec.c, which answers it */
    EXPECT_LINE_ERROR(parser, "slabs automove invalid\r\n", "CLIENT_ERROR bad command line format", false);
    EXPECT_LINE_ERROR(parser, "slabs automove 2\r\n", "OK", false);
    EXPECT_LINE_ERROR(parser, "slabs automove 3\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "slabs\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "slabs reassign 1 2 3\r\n", "ERROR", false);
    struct proto_req req;
    {
        const char *line = "slabs reassign -1 25\r\n";
        assert_int_equal(proto_parse(parser, line, strlen(line), &req, NULL), strlen(line));
        assert_int_equal(req.cmd, PROTO_SLABS_REASSIGN);
        assert_true(req.slab_args_ok);
        assert_int_equal(req.slab_src, -1);
        assert_int_equal(req.slab_dst, 25);
        line = "slabs reassign 1 2x\r\n"; /* memcached's safe_strtol refuses it */
        assert_int_equal(proto_parse(parser, line, strlen(line), &req, NULL), strlen(line));
        assert_int_equal(req.cmd, PROTO_SLABS_REASSIGN);
        assert_false(req.slab_args_ok);
        line = "slabs reassign 4294967297 2\r\n"; /* out of int32 range */
        assert_int_equal(proto_parse(parser, line, strlen(line), &req, NULL), strlen(line));
        assert_false(req.slab_args_ok);
    }
    assert_int_equal(PARSE(parser, "", &req), 0);
    assert_int_equal(PARSE(parser, "get k", &req), 0);
    /* leading spaces are skipped */
    assert_int_equal(PARSE(parser, "   get   k\r\n", &req), 12);
    assert_int_equal(req.cmd, PROTO_GET);
    assert_bytes(req.key, req.nkey, "k");
}

/* --- connection-level decisions -------------------------------------- */

static void test_proto_http_request_closes(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;

    assert_int_equal(PARSE(parser, "GET / HTTP/1.1\r\nHost: x\r\n", &req), 16);
    assert_int_equal(req.cmd, PROTO_NONE);
    assert_true(req.close);
    assert_null(req.error);

    assert_int_equal(PARSE(parser, "HTTP/1.0\r\n", &req), 10);
    assert_true(req.close);
    assert_int_equal(PARSE(parser, "XX HTTP/\n", &req), 9);
    assert_true(req.close);

    /* the check only runs for commands outside memcached's first-byte
     * branches, and is case sensitive */
    EXPECT_LINE_ERROR(parser, "sxx / HTTP/1.1\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "delete / HTTP/1.1\r\n", BAD_DELETE, false);
    EXPECT_LINE_ERROR(parser, "XX / http/1.1\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "X HTTP/1.1\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "lru HTTP/1.1\r\n", "ERROR", false);
    EXPECT_LINE_ERROR(parser, "XX HTTP\r\n", "ERROR", false);

    /* "last token" is the 23rd when there are more (memcached's slots) */
    const char t23[] = "XX z z z z z z z z z z z z z z z z z z z z z HTTP/1.1 z\r\n";
    assert_int_equal(PARSE(parser, t23, &req), sizeof(t23) - 1);
    assert_true(req.close);
    EXPECT_LINE_ERROR(parser, "XX z z z z z z z z z z z z z z z z z z z z z z HTTP/1.1 z\r\n",
                      "ERROR", false);
}

static void test_proto_line_too_long_closes(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;
    size_t big = PROTO_GET_LINE_MAX + 16;
    char *buf = malloc(big);
    assert_non_null(buf);

    memset(buf, 'x', big);
    assert_int_equal(proto_parse(parser, buf, PROTO_LINE_MAX, &req, NULL), 0);
    assert_int_equal(proto_parse(parser, buf, PROTO_LINE_MAX + 1, &req, NULL), PROTO_LINE_MAX + 1);
    assert_int_equal(req.cmd, PROTO_NONE);
    assert_true(req.close);
    assert_null(req.error);

    /* a set is not allowed to grow */
    memcpy(buf, "set ", 4);
    assert_int_equal(proto_parse(parser, buf, 3000, &req, NULL), 3000);
    assert_true(req.close);

    /* gat is not a get here (memcached looks for "get " and "gets ") */
    memcpy(buf, "gat 1 ", 6);
    assert_int_equal(proto_parse(parser, buf, 3000, &req, NULL), 3000);
    assert_true(req.close);

    /* a long line with its newline is parsed as usual */
    memcpy(buf, "set ", 4);
    memcpy(buf + 2998, "\r\n", 2);
    assert_int_equal(proto_parse(parser, buf, 3000, &req, NULL), 3000);
    assert_int_equal(req.cmd, PROTO_ERROR);
    assert_false(req.close);

    free(buf);
}

static void test_proto_long_multiget_allowed(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;
    size_t big = PROTO_GET_LINE_MAX + 16;
    char *buf = malloc(big);
    assert_non_null(buf);

    for (size_t i = 0; i < big; i += 2)
        memcpy(buf + i, "k ", 2);
    memcpy(buf, "get ", 4);
    assert_int_equal(proto_parse(parser, buf, 5000, &req, NULL), 0);
    assert_int_equal(proto_parse(parser, buf, PROTO_GET_LINE_MAX, &req, NULL), 0);
    assert_int_equal(proto_parse(parser, buf, PROTO_GET_LINE_MAX + 1, &req, NULL),
                     PROTO_GET_LINE_MAX + 1);
    assert_true(req.close);

    memcpy(buf + 4998, "\r\n", 2);
    assert_int_equal(proto_parse(parser, buf, 5000, &req, NULL), 5000);
    assert_int_equal(req.cmd, PROTO_GET);
    assert_int_equal(req.nkeys, (5000 - 4 - 2) / 2);
    buf[4998] = 'k';
    buf[4999] = ' ';

    memcpy(buf, "gets ", 5);
    assert_int_equal(proto_parse(parser, buf, 5000, &req, NULL), 0);

    /* up to 100 leading spaces may precede it */
    memset(buf, ' ', 100);
    memcpy(buf + 100, "get ", 4);
    assert_int_equal(proto_parse(parser, buf, 5000, &req, NULL), 0);
    memset(buf, ' ', 101);
    memcpy(buf + 101, "get ", 4);
    assert_int_equal(proto_parse(parser, buf, 5000, &req, NULL), 5000);
    assert_true(req.close);

    free(buf);
}

static void test_proto_pipelined_requests(void **state)
{
    struct proto_parser *parser = *state;
    const char buf[] = "set a 0 0 1\r\n1\r\n"
                       "get a b\n"
                       "incr a 5 noreply\r\n"
                       "bogus\r\n"
                       "set b 0 0 2 noreply\n22\r\n"
                       "delete a\r\n"
                       "stats\n"
                       "version\r\n"
                       "quit\r\n";
    const enum proto_cmd want[] = {PROTO_SET,    PROTO_GET,   PROTO_INCR,
                                   PROTO_ERROR,  PROTO_SET,   PROTO_DELETE,
                                   PROTO_STATS,  PROTO_VERSION, PROTO_QUIT};
    size_t off = 0, count = 0;
    while (off < sizeof(buf) - 1) {
        struct proto_req req;
        size_t n = proto_parse(parser, buf + off, sizeof(buf) - 1 - off, &req, NULL);
        assert_true(n > 0);
        assert_true(count < sizeof(want) / sizeof(want[0]));
        assert_int_equal(req.cmd, want[count]);
        off += n;
        count++;
    }
    assert_int_equal(count, sizeof(want) / sizeof(want[0]));
    assert_int_equal(off, sizeof(buf) - 1);
}

/* --- every command split at every byte ------------------------------- */

static void test_proto_split_at_every_byte(void **state)
{
    struct proto_parser *parser = *state;
    static const char *const inputs[] = {
        "get foo\r\n",
        "get foo\n",
        "gets a bb ccc\r\n",
        "bget k\r\n",
        "gat 10 a b\r\n",
        "gats 0 k\n",
        "gat 10\r\n",
        "set key 5 100 5\r\nhello\r\n",
        "set key 5 100 5 noreply\r\nhello\r\n",
        "set key 5 100 5\nhello\r\n",
        "add k 0 0 0\r\n\r\n",
        "replace k 1 2 3\r\nabc\r\n",
        "append k 1 2 3 noreply\r\nabc\r\n",
        "prepend k 1 2 3\r\nabc\r\n",
        "cas k 1 2 3 99\r\na\nc\r\n",
        "cas k 1 2 3 99 noreply\r\nabc\r\n",
        "delete k\r\n",
        "delete k 0 noreply\r\n",
        "incr k 1\r\n",
        "decr k 1 noreply\r\n",
        "touch k 10\r\n",
        "touch k 10 noreply\r\n",
        "stats\r\n",
        "stats items\r\n",
        "flush_all\r\n",
        "flush_all 10 noreply\r\n",
        "version\r\n",
        "verbosity 1\r\n",
        "verbosity 1 noreply\r\n",
        "quit\r\n",
        "shutdown\r\n",
        "shutdown graceful\r\n",
        /* errors */
        "\r\n",
        "x\r\n",
        "bogus cmd\r\n",
        "get\r\n",
        "get a\x01\r\n",
        "set k 0 0 3\r\nabcde",
        "set k 0 0 3 noreply\r\nabc\n\n",
        "set k x 0 3\r\n",
        "set k 0 0 -1\r\n",
        "delete k 1\r\n",
        "incr k x\r\n",
        "touch k x\r\n",
        "flush_all x\r\n",
        "shutdown now\r\n",
        "mg k v\r\n",
        "GET / HTTP/1.1\r\n",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        size_t len = strlen(inputs[i]);
        assert_int_equal(split_feed_text(parser, inputs[i], len), len);
    }

    /* a buffer holding more than one request: only the first one counts */
    assert_int_equal(CHECK_SPLIT(parser, "set a 0 0 1\r\n1\r\nget a\r\n"), 16);
    /* a too-large header is complete at its newline */
    struct proto_limits limits = {.item_size_max = 64, .item_total = fixture_item_total};
    proto_parser_init(parser, &limits);
    assert_int_equal(CHECK_SPLIT(parser, "set k 0 0 100\r\n"), 15);
}

static void test_proto_cmd_helpers(void **state)
{
    assert_true(proto_is_retrieval(PROTO_GET));
    assert_true(proto_is_retrieval(PROTO_GATS));
    assert_false(proto_is_retrieval(PROTO_SET));
    assert_false(proto_is_retrieval(PROTO_ERROR));
    assert_true(proto_is_keyed(PROTO_SET));
    assert_true(proto_is_keyed(PROTO_CAS));
    assert_true(proto_is_keyed(PROTO_TOUCH));
    assert_false(proto_is_keyed(PROTO_GET));
    assert_false(proto_is_keyed(PROTO_STATS));
    assert_string_equal(proto_cmd_name(PROTO_GET), "get");
    assert_string_equal(proto_cmd_name(PROTO_FLUSH_ALL), "flush_all");
    assert_string_equal(proto_cmd_name(PROTO_SHUTDOWN), "shutdown");
    for (int c = 0; c < PROTO_CMD_COUNT; c++)
        assert_non_null(proto_cmd_name((enum proto_cmd)c));
    assert_string_equal(proto_cmd_name(PROTO_CMD_COUNT), "unknown");
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, parser_fixture_setup, parser_fixture_teardown)
#define TEST_STRICT(name) cmocka_unit_test_setup_teardown(name, setup_strict, parser_fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_proto_get_single_key),
        TEST(test_proto_get_bare_newline),
        TEST(test_proto_get_multi_keys_walked),
        TEST(test_proto_get_more_keys_than_tokens),
        TEST(test_proto_get_aliases_and_touch_forms),
        TEST(test_proto_get_errors),
        TEST(test_proto_get_key_length_limit),
        TEST_STRICT(test_proto_key_control_bytes_refused),
        TEST_STRICT(test_proto_nul_is_a_control_byte),
        TEST_STRICT(test_proto_special_byte_at_every_offset),
        TEST(test_issue16_control_byte_keys_accepted),
        TEST(test_issue16_nul_ends_the_line),
        TEST(test_issue16_numbers_truncate_as_memcached),
        TEST(test_proto_storage_commands),
        TEST(test_proto_cas_command),
        TEST(test_proto_storage_value_framing),
        TEST(test_proto_storage_waits_for_data_block),
        TEST(test_proto_storage_token_counts),
        TEST(test_proto_storage_header_errors),
        TEST(test_proto_number_syntax_as_memcached),
        TEST(test_proto_storage_bad_data_chunk),
        TEST(test_proto_storage_too_large_swallows),
        TEST(test_proto_delete_forms),
        TEST(test_proto_arithmetic),
        TEST(test_proto_touch),
        TEST(test_proto_stats_args),
        TEST(test_proto_flush_all_forms),
        TEST(test_proto_version_quit_verbosity),
        TEST(test_proto_shutdown_forms),
        TEST(test_proto_meta_dispatch),
        TEST(test_proto_empty_and_short_lines),
        TEST(test_proto_http_request_closes),
        TEST(test_proto_line_too_long_closes),
        TEST(test_proto_long_multiget_allowed),
        TEST(test_proto_pipelined_requests),
        TEST(test_proto_split_at_every_byte),
        TEST(test_proto_cmd_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
