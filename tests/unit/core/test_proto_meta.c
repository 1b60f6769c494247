/*
 * test_proto_meta.c: the meta command parser (mg ms md ma mn me) against
 * memcached 1.6.18's decisions: every flag of every command, every error
 * string and its precedence, the data block of ms (and what an error
 * swallows), base64 keys, the token limits. Expected replies were checked
 * by hand against a running memcached 1.6.18.
 *
 * Every request is also fed split at every byte boundary, each prefix in a
 * heap buffer of exactly its size (so AddressSanitizer catches a read past
 * the bytes given): the parser must answer "need more" until the request is
 * complete and then exactly what it answers for the whole buffer.
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

#define BAD_FORMAT "CLIENT_ERROR bad command line format"
#define BAD_TOKEN "CLIENT_ERROR bad token in command line format"
#define BAD_FLAG "CLIENT_ERROR invalid flag"
#define DUP_FLAG "CLIENT_ERROR duplicate flag"
#define BAD_OR_DUP "CLIENT_ERROR invalid or duplicate flag"
#define OPAQUE_LONG "CLIENT_ERROR opaque token too long"
#define BAD_KEY64 "CLIENT_ERROR error decoding key"

#define LEN(lit) (sizeof(lit) - 1)

/* --- helpers ------------------------------------------------------------ */

/* Parses a whole literal that must be one request of `cmd`, all consumed,
 * split at every byte too. */
static struct proto_req parse_one(struct proto_parser *parser, const char *buf, size_t len,
                                  enum proto_cmd cmd)
{
    assert_int_equal(split_feed_text(parser, buf, len), len);
    struct proto_req req;
    assert_int_equal(proto_parse(parser, buf, len, &req, NULL), len);
    assert_int_equal(req.cmd, cmd);
    assert_null(req.error);
    assert_false(req.noreply);
    assert_false(req.close);
    return req;
}

#define PARSE_ONE(parser, lit, cmd) parse_one((parser), (lit), LEN(lit), (cmd))

/* One error request; `consumed` bytes; split-checked. */
static void expect_error(struct proto_parser *parser, const char *buf, size_t len,
                         const char *error, size_t consumed, uint64_t swallow)
{
    assert_int_equal(split_feed_text(parser, buf, len), consumed);
    struct proto_req req;
    size_t n = proto_parse(parser, buf, len, &req, NULL);
    assert_int_equal(n, consumed);
    assert_int_equal(req.cmd, PROTO_ERROR);
    assert_non_null(req.error);
    assert_string_equal(req.error, error);
    assert_false(req.noreply); /* meta errors are always sent */
    assert_false(req.close);
    assert_null(req.key);
    assert_int_equal(parser->swallow, swallow);
    parser->swallow = 0;
}

#define EXPECT_ERROR(parser, lit, error) expect_error((parser), (lit), LEN(lit), (error), LEN(lit), 0)

/* An ms error after its length: the line is consumed, the block swallowed. */
static void expect_ms_error(struct proto_parser *parser, const char *header, const char *data,
                            const char *error)
{
    size_t hlen = strlen(header), dlen = strlen(data);
    char *buf = malloc(hlen + dlen);
    assert_non_null(buf);
    memcpy(buf, header, hlen);
    memcpy(buf + hlen, data, dlen);
    expect_error(parser, buf, hlen + dlen, error, hlen, dlen);
    free(buf);
}

static void assert_key(const struct proto_req *req, const char *key)
{
    assert_int_equal(req->nkey, strlen(key));
    assert_memory_equal(req->key, key, req->nkey);
}

static void assert_order(const struct proto_req *req, const char *order)
{
    assert_int_equal(req->meta.nflags, strlen(order));
    assert_memory_equal(req->meta.order, order, req->meta.nflags);
    for (const char *p = order; *p; p++)
        assert_true(proto_meta_has(&req->meta, *p));
}

/* --- mg ------------------------------------------------------------------ */

/* Every mg flag, alone, split at every byte: present, in order, with its
 * token parsed. */
static void test_proto_meta_mg_every_flag(void **state)
{
    struct proto_parser *parser = *state;
    static const char flags[] = "bcfhklqstuvIx";
    for (const char *f = flags; *f; f++) {
        char line[32];
        /* b needs a base64 key: "Zm9v" is "foo" */
        int n = snprintf(line, sizeof(line), "mg %s %c\r\n", *f == 'b' ? "Zm9v" : "foo", *f);
        struct proto_req req = parse_one(parser, line, (size_t)n, PROTO_MG);
        assert_key(&req, "foo");
        char one[2] = {*f, 0};
        assert_order(&req, one);
    }
    struct proto_req req = PARSE_ONE(parser, "mg foo Oabc\r\n", PROTO_MG);
    assert_order(&req, "O");
    assert_int_equal(req.nopaque, 3);
    assert_memory_equal(req.opaque, "abc", 3);
    req = PARSE_ONE(parser, "mg foo N30\r\n", PROTO_MG);
    assert_int_equal(req.meta.vivify_ttl, 30);
    req = PARSE_ONE(parser, "mg foo R-5\r\n", PROTO_MG);
    assert_int_equal(req.meta.recache_ttl, -5);
    req = PARSE_ONE(parser, "mg foo T2147483647\r\n", PROTO_MG);
    assert_int_equal(req.meta.ttl, 2147483647);
    req = PARSE_ONE(parser, "mg foo E18446744073709551615\r\n", PROTO_MG);
    assert_true(req.meta.new_cas == UINT64_MAX);
    /* flags meant for other commands are accepted too, as memcached's
     * shared flag parser accepts them */
    req = PARSE_ONE(parser, "mg foo C1 F2 D3 J4 MS\r\n", PROTO_MG);
    assert_order(&req, "CFDJM");
    assert_int_equal(req.meta.cas, 1);
    assert_int_equal(req.meta.client_flags, 2);
    assert_int_equal(req.meta.delta, 3);
    assert_int_equal(req.meta.initial, 4);
    assert_int_equal(req.meta.mode, 'S');
    /* proxy hints P and L are accepted and ignored */
    req = PARSE_ONE(parser, "mg foo Pa/b L/x\r\n", PROTO_MG);
    assert_order(&req, "PL");
    assert_int_equal(req.meta.delta, 1); /* D's default */
}

/* Flags keep the request's order (replies follow it); q is a flag, never
 * noreply. */
static void test_proto_meta_flags_keep_order(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req = PARSE_ONE(parser, "mg k t T30 v q O1 N5 k c R9 s f h l u\r\n", PROTO_MG);
    assert_order(&req, "tTvqONkcRsfhlu");
    assert_int_equal(req.meta.ttl, 30);
    assert_int_equal(req.meta.vivify_ttl, 5);
    assert_int_equal(req.meta.recache_ttl, 9);
    assert_false(req.noreply);
    assert_false(proto_meta_has(&req.meta, 'b'));
    /* a flag's first byte names it; the rest of a switch flag is ignored */
    req = PARSE_ONE(parser, "mg k vvv kx\r\n", PROTO_MG);
    assert_order(&req, "vk");
}

static void test_proto_meta_mg_errors(void **state)
{
    struct proto_parser *parser = *state;
    EXPECT_ERROR(parser, "mg\r\n", "ERROR");
    EXPECT_ERROR(parser, "mg \r\n", "ERROR");
    EXPECT_ERROR(parser, "mg k v v\r\n", DUP_FLAG);
    EXPECT_ERROR(parser, "mg k Nx N1\r\n", DUP_FLAG); /* a failed flag still counts as seen */
    EXPECT_ERROR(parser, "mg k \x80\r\n", DUP_FLAG);   /* memcached: any byte >= 127 */
    EXPECT_ERROR(parser, "mg k \x7f\r\n", DUP_FLAG);
    EXPECT_ERROR(parser, "mg k Zz\r\n", BAD_FLAG);
    EXPECT_ERROR(parser, "mg k 1\r\n", BAD_FLAG);
    EXPECT_ERROR(parser, "mg k N\r\n", BAD_TOKEN);
    EXPECT_ERROR(parser, "mg k Nx\r\n", BAD_TOKEN);
    EXPECT_ERROR(parser, "mg k T1x\r\n", BAD_TOKEN);
    EXPECT_ERROR(parser, "mg k R\r\n", BAD_TOKEN);
    EXPECT_ERROR(parser, "mg k C-1\r\n", BAD_TOKEN);
    EXPECT_ERROR(parser, "mg k E\r\n", BAD_TOKEN);
    EXPECT_ERROR(parser, "mg k M\r\n", "CLIENT_ERROR incorrect length for M token");
    EXPECT_ERROR(parser, "mg k MEE\r\n", "CLIENT_ERROR incorrect length for M token");
    EXPECT_ERROR(parser, "mg k J-1\r\n", "CLIENT_ERROR invalid numeric initial value");
    EXPECT_ERROR(parser, "mg k Dx\r\n", "CLIENT_ERROR invalid numeric delta value");
    /* F fails without a message of its own: the default (or an earlier) one */
    EXPECT_ERROR(parser, "mg k Fx\r\n", BAD_FORMAT);
    EXPECT_ERROR(parser, "mg k Nx Fx\r\n", BAD_TOKEN);
    /* the last message wins; an unknown or repeated flag stops at once */
    EXPECT_ERROR(parser, "mg k Nx Mab\r\n", "CLIENT_ERROR incorrect length for M token");
    EXPECT_ERROR(parser, "mg k Nx z Mab\r\n", BAD_FLAG);
    EXPECT_ERROR(parser, "mg !!! b\r\n", BAD_KEY64);
    EXPECT_ERROR(parser, "mg Zm9 b\r\n", BAD_KEY64);
    /* the key's length is checked before anything else */
    char line[400];
    int n = snprintf(line, sizeof(line), "mg %0251d Zz\r\n", 0);
    expect_error(parser, line, (size_t)n, BAD_FORMAT, (size_t)n, 0);
    n = snprintf(line, sizeof(line), "mg %0250d v\r\n", 0);
    struct proto_req req = parse_one(parser, line, (size_t)n, PROTO_MG);
    assert_int_equal(req.nkey, 250);
    /* a TTL outside strtol's long */
    EXPECT_ERROR(parser, "mg k T9223372036854775808\r\n", BAD_TOKEN);
    EXPECT_ERROR(parser, "mg k N-9223372036854775809\r\n", BAD_TOKEN);
}

/* --strict-keys: a key with a control byte is refused, a NUL in a flag is
 * an invalid flag, and ms swallows its block. */
static void test_proto_meta_strict_keys(void **state)
{
    struct proto_parser *parser = *state;
    parser->limits.strict_keys = true;
    EXPECT_ERROR(parser, "mg k\x01y v\r\n", BAD_FORMAT);
    expect_error(parser, "mg k O\0x\r\n", LEN("mg k O\0x\r\n"), BAD_FLAG, LEN("mg k O\0x\r\n"), 0);
    expect_ms_error(parser, "ms k\x01 2\r\n", "hi\r\n", BAD_FORMAT);
}

/* issue 16: meta numbers as memcached 1.6.18 reads them (T, N, R strtol's
 * low 32 bits, F strtoul's), control bytes in keys accepted, and a NUL
 * ending the line. */
static void test_issue16_meta_numbers_and_keys(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req = PARSE_ONE(parser, "mg k\x01y T4294967295 N2147483648 v\r\n", PROTO_MG);
    assert_int_equal(req.nkey, 3);
    assert_int_equal(req.meta.ttl, -1);
    assert_int_equal(req.meta.vivify_ttl, INT32_MIN);
    req = PARSE_ONE(parser, "ms k\x7f 2 F4294967297 T4294967295\r\nhi\r\n", PROTO_MS);
    assert_int_equal(req.meta.client_flags, 1);
    assert_int_equal(req.flags, 1);
    assert_int_equal(req.meta.ttl, -1);
    req = PARSE_ONE(parser, "ms k 4294967298 T0\r\nhi\r\n", PROTO_MS);
    assert_int_equal(req.nbytes, 2);
    req = PARSE_ONE(parser, "mg k v\0 zzz\r\n", PROTO_MG);
    assert_int_equal(req.meta.nflags, 1);
}

/* More than 19 tokens (memcached's ntokens > 20) are refused, before the
 * flags are looked at. */
static void test_proto_meta_token_limits(void **state)
{
    struct proto_parser *parser = *state;
    /* mg k + 17 flags = 19 tokens: fine */
    struct proto_req req = PARSE_ONE(parser, "mg k c f h k l q s t u v O N1 R1 T1 P L I\r\n", PROTO_MG);
    assert_int_equal(req.meta.nflags, 17);
    EXPECT_ERROR(parser, "mg k c f h k l q s t u v O N1 R1 T1 P L I E1\r\n",
                 "CLIENT_ERROR options flags are too long");
    EXPECT_ERROR(parser, "mg k a b c d e f g h i j k l m n o p q r\r\n",
                 "CLIENT_ERROR options flags are too long");
    EXPECT_ERROR(parser, "md k a b c d e f g h i j k l m n o p q r\r\n",
                 "CLIENT_ERROR options flags too long");
    EXPECT_ERROR(parser, "ma k a b c d e f g h i j k l m n o p q r\r\n",
                 "CLIENT_ERROR options flags too long");
    /* ms: its length is a token too; the error comes before the length is
     * read, so nothing is swallowed */
    EXPECT_ERROR(parser, "ms k 2 a b c d e f g h i j k l m n o p q\r\n",
                 "CLIENT_ERROR options flags too long");
    /* more tokens than memcached's tokenizer holds: the same */
    EXPECT_ERROR(parser, "mg k 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24\r\n",
                 "CLIENT_ERROR options flags are too long");
}

/* --- base64 keys ---------------------------------------------------------- */

static void test_proto_meta_base64_key(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req = PARSE_ONE(parser, "mg Zm9vYmFy b k v\r\n", PROTO_MG);
    assert_key(&req, "foobar");
    assert_true(proto_meta_has(&req.meta, 'b'));
    /* memcached's leniency: bytes outside the alphabet are skipped */
    req = PARSE_ONE(parser, "mg Zm9v-YmFy b\r\n", PROTO_MG);
    assert_key(&req, "foobar");
    /* a binary key may hold any byte */
    req = PARSE_ONE(parser, "mg AAEgDQo= b\r\n", PROTO_MG);
    assert_int_equal(req.nkey, 5);
    assert_memory_equal(req.key, "\x00\x01 \r\n", 5);
    /* b after other flags decodes the key all the same */
    req = PARSE_ONE(parser, "md Zm9v q b\r\n", PROTO_MD);
    assert_key(&req, "foo");
    assert_order(&req, "qb");
    /* fewer than four alphabet bytes, or a bad padding: refused */
    EXPECT_ERROR(parser, "mg k b\r\n", BAD_KEY64);
    EXPECT_ERROR(parser, "mg A=== b\r\n", BAD_KEY64);
}

/* --- ms ------------------------------------------------------------------ */

static void test_proto_meta_ms_every_flag(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req = PARSE_ONE(parser, "ms foo 5\r\nhello\r\n", PROTO_MS);
    assert_key(&req, "foo");
    assert_int_equal(req.nbytes, 5);
    assert_memory_equal(req.value, "hello", 5);
    assert_int_equal(req.meta.nflags, 0);

    req = PARSE_ONE(parser, "ms foo 2 c C99 E7 F4294967295 I k O1 q T-1 MA s\r\nhi\r\n", PROTO_MS);
    assert_order(&req, "cCEFIkOqTMs");
    assert_int_equal(req.meta.cas, 99);
    assert_int_equal(req.meta.new_cas, 7);
    assert_int_equal(req.meta.client_flags, UINT32_MAX);
    assert_int_equal(req.flags, UINT32_MAX);
    assert_int_equal(req.meta.ttl, -1);
    assert_int_equal(req.meta.mode, 'A');
    for (const char *mode = "EAPRS"; *mode; mode++) {
        char line[32];
        int n = snprintf(line, sizeof(line), "ms k 1 M%c\r\nx\r\n", *mode);
        req = parse_one(parser, line, (size_t)n, PROTO_MS);
        assert_int_equal(req.meta.mode, *mode);
    }
    req = PARSE_ONE(parser, "ms Zm9v 0 b\r\n\r\n", PROTO_MS);
    assert_key(&req, "foo");
    assert_int_equal(req.nbytes, 0);
    /* the data block may hold anything, "\r\n" included */
    req = PARSE_ONE(parser, "ms k 4 q\r\n\r\n\r\n\r\n", PROTO_MS);
    assert_memory_equal(req.value, "\r\n\r\n", 4);
}

static void test_proto_meta_ms_errors(void **state)
{
    struct proto_parser *parser = *state;
    /* before the length: no swallow, the data line is read as a command */
    EXPECT_ERROR(parser, "ms\r\n", "ERROR");
    EXPECT_ERROR(parser, "ms k\r\n", BAD_FORMAT);
    EXPECT_ERROR(parser, "ms k x\r\n", BAD_FORMAT);
    EXPECT_ERROR(parser, "ms k -1\r\n", BAD_FORMAT);
    EXPECT_ERROR(parser, "ms k 2147483646\r\n", BAD_FORMAT);
    EXPECT_ERROR(parser, "ms k 4294967295\r\n", BAD_FORMAT); /* -1 as int32 */
    EXPECT_ERROR(parser, "ms k 99999999999999999999\r\n", BAD_FORMAT);
    /* after the length: the data block (and its \r\n) is swallowed */
    expect_ms_error(parser, "ms k 2 v v\r\n", "hi\r\n", DUP_FLAG);
    expect_ms_error(parser, "ms k 2 z\r\n", "hi\r\n", BAD_FLAG);
    expect_ms_error(parser, "ms k 2 T\r\n", "hi\r\n", BAD_TOKEN);
    expect_ms_error(parser, "ms k 2 Fx\r\n", "hi\r\n", BAD_FORMAT);
    expect_ms_error(parser, "ms !!! 2 b\r\n", "hi\r\n", BAD_KEY64);
    expect_ms_error(parser, "ms k 2 MX\r\n", "hi\r\n", "CLIENT_ERROR invalid mode for ms M token");
    expect_ms_error(parser, "ms k 2 MAA\r\n", "hi\r\n", "CLIENT_ERROR incorrect length for M token");
    /* opaque: 31 bytes fine, 32 too long; a bad mode wins over it */
    struct proto_req req = PARSE_ONE(parser, "ms k 1 O1234567890123456789012345678901\r\nx\r\n", PROTO_MS);
    assert_int_equal(req.nopaque, 31);
    expect_ms_error(parser, "ms k 1 O12345678901234567890123456789012\r\n", "x\r\n", OPAQUE_LONG);
    expect_ms_error(parser, "ms k 1 MZ O12345678901234567890123456789012\r\n", "x\r\n",
                    "CLIENT_ERROR invalid mode for ms M token");
    expect_ms_error(parser, "ms k 1 O12345678901234567890123456789012 Tx\r\n", "x\r\n", BAD_TOKEN);
    /* the data block: a bad end is answered after exactly <len> + 2 bytes
     * (the rest, here "\n", is the next request, as in memcached) */
    expect_error(parser, "ms k 2 q\r\nhiX\r\n", 15, "CLIENT_ERROR bad data chunk", 14, 0);
    expect_error(parser, "ms k 3\r\nhi\r\n\r\n", 14, "CLIENT_ERROR bad data chunk", 13, 0);
}

/* A value too large for the cache: the request still goes to the store
 * (which unlinks the old item) with the error set; the block is swallowed. */
static void test_proto_meta_ms_too_large(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_limits limits = {.item_size_max = 64, .item_total = fixture_item_total};
    proto_parser_init(parser, &limits);
    assert_int_equal(split_feed_text(parser, "ms k 100 q\r\n", 12), 12);
    struct proto_req req;
    assert_int_equal(proto_parse(parser, "ms k 100 q\r\n", 12, &req, NULL), 12);
    assert_int_equal(req.cmd, PROTO_MS);
    assert_true(req.too_large);
    assert_string_equal(req.error, "SERVER_ERROR object too large for cache");
    assert_int_equal(parser->swallow, 102);
    assert_false(req.noreply);
}

/* --- md ma me mn ------------------------------------------------------------ */

static void test_proto_meta_md_ma_every_flag(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req;
    req = PARSE_ONE(parser, "md Zm9v b C5 E6 I k O9 q T30 x F3\r\n", PROTO_MD);
    assert_key(&req, "foo");
    assert_order(&req, "bCEIkOqTxF");
    assert_int_equal(req.meta.cas, 5);
    assert_int_equal(req.meta.new_cas, 6);
    assert_int_equal(req.meta.ttl, 30);
    assert_int_equal(req.meta.client_flags, 3);

    req = PARSE_ONE(parser, "ma foo C1 D10 E2 J7 N30 T40 MD O1 q t c v k\r\n", PROTO_MA);
    assert_order(&req, "CDEJNTMOqtcvk");
    assert_int_equal(req.meta.delta, 10);
    assert_int_equal(req.meta.initial, 7);
    assert_int_equal(req.meta.vivify_ttl, 30);
    assert_int_equal(req.meta.mode, 'D');
    for (const char *mode = "I+D-"; *mode; mode++) {
        char line[32];
        int n = snprintf(line, sizeof(line), "ma k M%c\r\n", *mode);
        req = parse_one(parser, line, (size_t)n, PROTO_MA);
        assert_int_equal(req.meta.mode, *mode);
    }
    req = PARSE_ONE(parser, "ma k\r\n", PROTO_MA);
    assert_int_equal(req.meta.delta, 1);
    req = PARSE_ONE(parser, "ma k D18446744073709551615 J18446744073709551615\r\n", PROTO_MA);
    assert_true(req.meta.delta == UINT64_MAX && req.meta.initial == UINT64_MAX);
}

static void test_proto_meta_md_ma_errors(void **state)
{
    struct proto_parser *parser = *state;
    EXPECT_ERROR(parser, "md\r\n", "ERROR");
    EXPECT_ERROR(parser, "ma\r\n", "ERROR");
    /* every flag error is the same one for md and ma */
    EXPECT_ERROR(parser, "md k z\r\n", BAD_OR_DUP);
    EXPECT_ERROR(parser, "md k q q\r\n", BAD_OR_DUP);
    EXPECT_ERROR(parser, "md k T\r\n", BAD_OR_DUP);
    EXPECT_ERROR(parser, "md !!! b\r\n", BAD_OR_DUP);
    EXPECT_ERROR(parser, "ma k Dx\r\n", BAD_OR_DUP);
    EXPECT_ERROR(parser, "ma k J\r\n", BAD_OR_DUP);
    EXPECT_ERROR(parser, "ma k Nx\r\n", BAD_OR_DUP);
    EXPECT_ERROR(parser, "ma k MDD\r\n", BAD_OR_DUP);
    EXPECT_ERROR(parser, "ma k MX\r\n", "CLIENT_ERROR invalid mode for ma M token");
    /* md checks the opaque before the item; mg and ma only when replying */
    EXPECT_ERROR(parser, "md k O12345678901234567890123456789012\r\n", OPAQUE_LONG);
    struct proto_req req = PARSE_ONE(parser, "ma k O12345678901234567890123456789012\r\n", PROTO_MA);
    assert_int_equal(req.nopaque, 32);
    req = PARSE_ONE(parser, "mg k O12345678901234567890123456789012\r\n", PROTO_MG);
    assert_int_equal(req.nopaque, 32);
    char line[400];
    int n = snprintf(line, sizeof(line), "md %0251d\r\n", 0);
    expect_error(parser, line, (size_t)n, BAD_FORMAT, (size_t)n, 0);
    n = snprintf(line, sizeof(line), "ma %0251d\r\n", 0);
    expect_error(parser, line, (size_t)n, BAD_FORMAT, (size_t)n, 0);
}

static void test_proto_meta_me_and_mn(void **state)
{
    struct proto_parser *parser = *state;
    struct proto_req req = PARSE_ONE(parser, "me foo\r\n", PROTO_ME);
    assert_key(&req, "foo");
    assert_false(proto_meta_has(&req.meta, 'b'));
    req = PARSE_ONE(parser, "me Zm9v b\r\n", PROTO_ME);
    assert_key(&req, "foo");
    assert_true(proto_meta_has(&req.meta, 'b'));
    /* only a first flag of exactly "b" counts; the rest is ignored */
    req = PARSE_ONE(parser, "me Zm9v v b\r\n", PROTO_ME);
    assert_key(&req, "Zm9v");
    req = PARSE_ONE(parser, "me Zm9v bb\r\n", PROTO_ME);
    assert_key(&req, "Zm9v");
    EXPECT_ERROR(parser, "me\r\n", BAD_FORMAT);
    EXPECT_ERROR(parser, "me !!! b\r\n", BAD_FORMAT);
    char line[400];
    int n = snprintf(line, sizeof(line), "me %0251d\r\n", 0);
    expect_error(parser, line, (size_t)n, BAD_FORMAT, (size_t)n, 0);

    req = PARSE_ONE(parser, "mn\r\n", PROTO_MN);
    req = PARSE_ONE(parser, "mn extra tokens\n", PROTO_MN);
    EXPECT_ERROR(parser, "mq k\r\n", "ERROR");
    EXPECT_ERROR(parser, "mgg k\r\n", "ERROR");
}

/* A pipeline of meta requests parses one at a time. */
static void test_proto_meta_pipelined(void **state)
{
    struct proto_parser *parser = *state;
    static const char buf[] = "ms a 1 q\r\n1\r\nmg a v q\r\nmn\r\n";
    struct proto_req req;
    size_t off = 0, n;
    n = proto_parse(parser, buf + off, LEN(buf) - off, &req, NULL);
    assert_int_equal(req.cmd, PROTO_MS);
    off += n;
    n = proto_parse(parser, buf + off, LEN(buf) - off, &req, NULL);
    assert_int_equal(req.cmd, PROTO_MG);
    off += n;
    n = proto_parse(parser, buf + off, LEN(buf) - off, &req, NULL);
    assert_int_equal(req.cmd, PROTO_MN);
    off += n;
    assert_int_equal(off, LEN(buf));
}

/* Every flag of every meta command, and every error form, split at every
 * byte boundary. */
static void test_proto_meta_split_at_every_byte(void **state)
{
    struct proto_parser *parser = *state;
    static const char *const inputs[] = {
        "mg foo\r\n",
        "mg foo\n",
        "mg foo b\r\n",
        "mg Zm9v b c f h k l O123 q s t u v\r\n",
        "mg foo N30 R10 T-1 E5 P/x L/y\r\n",
        "mg foo t v q O1\n",
        "ms foo 5\r\nhello\r\n",
        "ms foo 5 c C1 E2 F3 I k O4 q T5 MS\r\nhello\r\n",
        "ms foo 0 ME\r\n\r\n",
        "ms foo 2 MA\nhi\r\n",
        "ms foo 2 MP b\r\nhi\r\n",
        "ms foo 2 MR\r\nhi\r\n",
        "md foo\r\n",
        "md foo C1 E2 I k O3 q T4 x F5\r\n",
        "md Zm9v b\r\n",
        "ma foo\r\n",
        "ma foo C1 D2 E3 J4 N5 T6 MI O7 q t c v k\r\n",
        "ma foo M+\r\n",
        "ma foo M-\r\n",
        "ma Zm9v b MD\r\n",
        "me foo\r\n",
        "me Zm9v b\r\n",
        "mn\r\n",
        /* errors */
        "mg\r\n",
        "mg foo z\r\n",
        "mg foo v v\r\n",
        "mg foo N\r\n",
        "mg !!! b\r\n",
        "ms foo\r\n",
        "ms foo x\r\nab\r\n",
        "ms foo 2 z\r\nhi\r\n",
        "ms foo 2 MX\r\nhi\r\n",
        "ms foo 2\r\nhiX\r\n",
        "md foo z\r\n",
        "md foo O12345678901234567890123456789012\r\n",
        "ma foo MX\r\n",
        "me\r\n",
        "mx\r\n",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        size_t len = strlen(inputs[i]);
        size_t n = split_feed_text(parser, inputs[i], len);
        /* an ms error after the length consumes only its line */
        assert_true(n == len || strncmp(inputs[i], "ms", 2) == 0);
    }
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, parser_fixture_setup, parser_fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_proto_meta_mg_every_flag),
        TEST(test_proto_meta_flags_keep_order),
        TEST(test_proto_meta_mg_errors),
        TEST(test_proto_meta_strict_keys),
        TEST(test_issue16_meta_numbers_and_keys),
        TEST(test_proto_meta_token_limits),
        TEST(test_proto_meta_base64_key),
        TEST(test_proto_meta_ms_every_flag),
        TEST(test_proto_meta_ms_errors),
        TEST(test_proto_meta_ms_too_large),
        TEST(test_proto_meta_md_ma_every_flag),
        TEST(test_proto_meta_md_ma_errors),
        TEST(test_proto_meta_me_and_mn),
        TEST(test_proto_meta_pipelined),
        TEST(test_proto_meta_split_at_every_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
