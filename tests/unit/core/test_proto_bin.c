/*
 * test_proto_bin.c: the binary protocol parser and composer against
 * memcached 1.6.18's decisions (proto_bin.c: which layouts each opcode
 * takes, which errors close, what is swallowed), checked by hand against a
 * running memcached 1.6.18 while it was written.
 *
 * Every request is also fed split at every byte boundary: each prefix is
 * copied into a heap buffer of exactly its size, so AddressSanitizer
 * catches any read past the bytes the parser was given, and every prefix
 * shorter than the request must return 0 with a `need` that is right and
 * leave the parser's state alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto_bin.h"
#include "test_bin.h"
#include "test_fixture.h"
#include "test_sink.h"

#define OPAQUE TEST_BIN_OPAQUE

/* --- checking ------------------------------------------------------------ */

/*
 * Parses pk whole into *req (pointing into pk), then every prefix of it in
 * an exact-size heap buffer with a fresh parser (test_fixture.h's feeder):
 * shorter than what the whole parse consumed returns 0, with `need` past
 * the prefix and within the request, and swallows nothing; longer returns
 * the same request and the same swallow. Returns the bytes the whole parse
 * consumed.
 */
static size_t parse_split(const struct pkt *pk, struct proto_req *req, uint64_t *swallow)
{
    struct proto_parser fresh, after;
    struct proto_limits limits = fixture_limits();
    proto_parser_init(&fresh, &limits);
    size_t n = split_feed(&fresh, proto_bin_parse, SPLIT_NEED_PROGRESS, pk->data, pk->len, req, &after);
    assert_int_equal(req->family, PROTO_FAMILY_BINARY);
    if (swallow != NULL)
        *swallow = after.swallow;
    return n;
}

static void assert_opaque(const struct proto_req *req)
{
    assert_memory_equal(&req->bin.opaque, OPAQUE, 4);
}

/* The request must be a protocol error answered with `status` (then a
 * close when `close`), having consumed `consumed` bytes. */
static void expect_error(const struct pkt *pk, uint16_t status, const char *text, bool close,
                         size_t consumed)
{
    struct proto_req req;
    uint64_t swallow;
    assert_int_equal(parse_split(pk, &req, &swallow), consumed);
    assert_int_equal(req.cmd, PROTO_ERROR);
    assert_int_equal(req.bin.status, status);
    assert_string_equal(req.error, text);
    assert_int_equal(req.close, close);
    assert_false(req.noreply);
    assert_null(req.key);
    assert_opaque(&req);
    if (close)
        assert_int_equal(swallow, 0);
}

#define EINVAL_TEXT "Invalid arguments"
#define UNKNOWN_TEXT "Unknown command"

static void expect_invalid(const struct pkt *pk, size_t consumed)
{
    expect_error(pk, PROTO_BIN_EINVAL, EINVAL_TEXT, true, consumed);
}

/* --- every opcode ------------------------------------------------------- */

static void test_proto_bin_get_family(void **state)
{
    (void)state;
    static const struct {
        uint8_t op;
        bool quiet, key;
    } ops[] = {{PROTO_BIN_GET, false, false},
               {PROTO_BIN_GETQ, true, false},
               {PROTO_BIN_GETK, false, true},
               {PROTO_BIN_GETKQ, true, true}};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        struct pkt pk = {0};
        request(&pk, ops[i].op, NULL, 0, "key:1", NULL, 0, 77);
        struct proto_req req;
        assert_int_equal(parse_split(&pk, &req, NULL), pk.len);
        assert_int_equal(req.cmd, PROTO_GET);
        assert_int_equal(req.bin.opcode, ops[i].op);
        assert_int_equal(req.bin.quiet, ops[i].quiet);
        assert_int_equal(req.bin.return_key, ops[i].key);
        assert_int_equal(req.nkey, 5);
        assert_memory_equal(req.key, "key:1", 5);
        assert_ptr_equal(req.keys, req.key);
        assert_int_equal(req.nkeys, 1);
        assert_int_equal(req.cas, 77);
        assert_false(req.noreply);
        assert_opaque(&req);
    }
}

static void test_proto_bin_gat_family_and_touch(void **state)
{
    (void)state;
    static const struct {
        uint8_t op;
        enum proto_cmd cmd;
        bool quiet, key;
    } ops[] = {{PROTO_BIN_GAT, PROTO_GAT, false, false},   {PROTO_BIN_GATQ, PROTO_GAT, true, false},
               {PROTO_BIN_GATK, PROTO_GAT, false, true},   {PROTO_BIN_GATKQ, PROTO_GAT, true, true},
               {PROTO_BIN_TOUCH, PROTO_TOUCH, false, false}};
    char ext[4];
    put32(ext, 0xfffffff0u); /* unsigned on the wire: never a negative exptime */
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        struct pkt pk = {0};
        request(&pk, ops[i].op, ext, 4, "k", NULL, 0, 0);
        struct proto_req req;
        assert_int_equal(parse_split(&pk, &req, NULL), pk.len);
        assert_int_equal(req.cmd, ops[i].cmd);
        assert_int_equal(req.bin.quiet, ops[i].quiet);
        assert_int_equal(req.bin.return_key, ops[i].key);
        assert_int_equal(req.exptime, 0xfffffff0LL);
        assert_memory_equal(req.key, "k", 1);
        assert_opaque(&req);
    }
}

static void test_proto_bin_set_family(void **state)
{
    (void)state;
    static const struct {
        uint8_t op;
        enum proto_cmd cmd;
        bool quiet;
    } ops[] = {{PROTO_BIN_SET, PROTO_SET, false},         {PROTO_BIN_SETQ, PROTO_SET, true},
               {PROTO_BIN_ADD, PROTO_ADD, false},         {PROTO_BIN_ADDQ, PROTO_ADD, true},
               {PROTO_BIN_REPLACE, PROTO_REPLACE, false}, {PROTO_BIN_REPLACEQ, PROTO_REPLACE, true}};
    char ext[8];
    put32(ext, 0xcafef00d);
    put32(ext + 4, 3600);
    static const char value[] = "a\r\nb\0c";
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        struct pkt pk = {0};
        request(&pk, ops[i].op, ext, 8, "kk", value, sizeof(value) - 1, 0x0102030405060708ULL);
        struct proto_req req;
        assert_int_equal(parse_split(&pk, &req, NULL), pk.len);
        assert_int_equal(req.cmd, ops[i].cmd);
        assert_int_equal(req.bin.quiet, ops[i].quiet);
        assert_int_equal(req.flags, 0xcafef00d);
        assert_int_equal(req.exptime, 3600);
        assert_int_equal(req.nbytes, sizeof(value) - 1);
        assert_memory_equal(req.value, value, sizeof(value) - 1);
        assert_memory_equal(req.key, "kk", 2);
        assert_int_equal(req.cas, 0x0102030405060708ULL);
        assert_false(req.too_large);
        assert_opaque(&req);
    }
}

static void test_proto_bin_set_empty_value(void **state)
{
    (void)state;
    char ext[8] = {0};
    struct pkt pk = {0};
    request(&pk, PROTO_BIN_SET, ext, 8, "k", NULL, 0, 0);
    struct proto_req req;
    assert_int_equal(parse_split(&pk, &req, NULL), pk.len);
    assert_int_equal(req.cmd, PROTO_SET);
    assert_int_equal(req.nbytes, 0);
    assert_non_null(req.value);
}

static void test_proto_bin_append_prepend(void **state)
{
    (void)state;
    static const struct {
        uint8_t op;
        enum proto_cmd cmd;
        bool quiet;
    } ops[] = {{PROTO_BIN_APPEND, PROTO_APPEND, false},
               {PROTO_BIN_APPENDQ, PROTO_APPEND, true},
               {PROTO_BIN_PREPEND, PROTO_PREPEND, false},
               {PROTO_BIN_PREPENDQ, PROTO_PREPEND, true}};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        struct pkt pk = {0};
        request(&pk, ops[i].op, NULL, 0, "k", "tail", 4, 9);
        struct proto_req req;
        assert_int_equal(parse_split(&pk, &req, NULL), pk.len);
        assert_int_equal(req.cmd, ops[i].cmd);
        assert_int_equal(req.bin.quiet, ops[i].quiet);
        assert_int_equal(req.flags, 0);
        assert_int_equal(req.nbytes, 4);
        assert_memory_equal(req.value, "tail", 4);
        assert_int_equal(req.cas, 9);
    }
}

static void test_proto_bin_delete(void **state)
{
    (void)state;
    for (int quiet = 0; quiet < 2; quiet++) {
        struct pkt pk = {0};
        request(&pk, quiet ? PROTO_BIN_DELETEQ : PROTO_BIN_DELETE, NULL, 0, "gone", NULL, 0, 5);
        struct proto_req req;
        assert_int_equal(parse_split(&pk, &req, NULL), pk.len);
        assert_int_equal(req.cmd, PROTO_DELETE);
        assert_int_equal(req.bin.quiet, quiet);
        assert_int_equal(req.cas, 5);
        assert_memory_equal(req.key, "gone", 4);
    }
}

static void test_proto_bin_incr_decr(void **state)
{
    (void)state;
    static const struct {
        uint8_t op;
        enum proto_cmd cmd;
        bool quiet;
    } ops[] = {{PROTO_BIN_INCREMENT, PROTO_INCR, false},
               {PROTO_BIN_INCREMENTQ, PROTO_INCR, true},
               {PROTO_BIN_DECREMENT, PROTO_DECR, false},
               {PROTO_BIN_DECREMENTQ, PROTO_DECR, true}};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        for (int no_create = 0; no_create < 2; no_create++) {
            char ext[20];
            put64(ext, 0xffffffffffffffffULL);
            put64(ext + 8, 1234567890123ULL);
            put32(ext + 16, no_create ? 0xffffffffu : 60);
            struct pkt pk = {0};
            request(&pk, ops[i].op, ext, 20, "n", NULL, 0, 0);
            struct proto_req req;
            assert_int_equal(parse_split(&pk, &req, NULL), pk.len);
            assert_int_equal(req.cmd, ops[i].cmd);
            assert_int_equal(req.bin.quiet, ops[i].quiet);
            assert_int_equal(req.delta, 0xffffffffffffffffULL);
            assert_int_equal(req.bin.initial, 1234567890123ULL);
            assert_int_equal(req.bin.no_create, no_create);
            assert_int_equal(req.exptime, no_create ? 0xffffffffLL : 60);
        }
    }
}

static void test_proto_bin_noop_version_quit(void **state)
{
    (void)state;
    static const struct {
        uint8_t op;
        enum proto_cmd cmd;
        bool quiet;
    } ops[] = {{PROTO_BIN_NOOP, PROTO_NOOP, false},
               {PROTO_BIN_VERSION, PROTO_VERSION, false},
               {PROTO_BIN_QUIT, PROTO_QUIT, false},
               {PROTO_BIN_QUITQ, PROTO_QUIT, true}};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        struct pkt pk = {0};
        simple(&pk, ops[i].op, NULL);
        struct proto_req req;
        assert_int_equal(parse_split(&pk, &req, NULL), PROTO_BIN_HEADER_LEN);
        assert_int_equal(req.cmd, ops[i].cmd);
        assert_int_equal(req.bin.quiet, ops[i].quiet);
        assert_int_equal(req.bin.opcode, ops[i].op);
        assert_false(req.close);
        assert_opaque(&req);
    }
}

static void test_proto_bin_flush(void **state)
{
    (void)state;
    for (int quiet = 0; quiet < 2; quiet++) {
        uint8_t op = quiet ? PROTO_BIN_FLUSHQ : PROTO_BIN_FLUSH;
        struct pkt now = {0};
        simple(&now, op, NULL);
        struct proto_req req;
        assert_int_equal(parse_split(&now, &req, NULL), now.len);
        assert_int_equal(req.cmd, PROTO_FLUSH_ALL);
        assert_int_equal(req.bin.quiet, quiet);
        assert_int_equal(req.exptime, 0);

        char ext[4];
        put32(ext, 100);
        struct pkt later = {0};
        request(&later, op, ext, 4, NULL, NULL, 0, 0);
        assert_int_equal(parse_split(&later, &req, NULL), later.len);
        assert_int_equal(req.cmd, PROTO_FLUSH_ALL);
        assert_int_equal(req.exptime, 100);
    }
}

static void test_proto_bin_stat(void **state)
{
    (void)state;
    struct pkt all = {0};
    simple(&all, PROTO_BIN_STAT, NULL);
    struct proto_req req;
    assert_int_equal(parse_split(&all, &req, NULL), all.len);
    assert_int_equal(req.cmd, PROTO_STATS);
    assert_int_equal(req.nargs, 0);

    struct pkt group = {0};
    simple(&group, PROTO_BIN_STAT, "settings");
    assert_int_equal(parse_split(&group, &req, NULL), group.len);
    assert_int_equal(req.cmd, PROTO_STATS);
    assert_int_equal(req.nargs, 8);
    assert_memory_equal(req.args, "settings", 8);
    assert_null(req.key); /* not keyed: never routed */
}

/* A key may hold any byte in the binary protocol (it is length-framed). */
static void test_proto_bin_key_any_bytes(void **state)
{
    (void)state;
    struct pkt pk = {0};
    header(&pk, PROTO_BIN_REQ_MAGIC, PROTO_BIN_GET, 4, 0, 4, 0);
    append(&pk, "a \0\r", 4);
    struct proto_req req;
    assert_int_equal(parse_split(&pk, &req, NULL), pk.len);
    assert_int_equal(req.cmd, PROTO_GET);
    assert_int_equal(req.nkey, 4);
    assert_memory_equal(req.key, "a \0\r", 4);
}

static void test_proto_bin_key_250_ok_251_invalid(void **state)
{
    (void)state;
    char key[252];
    memset(key, 'k', 251);
    key[251] = '\0';
    struct pkt bad = {0};
    simple(&bad, PROTO_BIN_GET, key);
    expect_invalid(&bad, bad.len);
    key[250] = '\0';
    struct pkt ok = {0};
    simple(&ok, PROTO_BIN_GET, key);
    struct proto_req req;
    assert_int_equal(parse_split(&ok, &req, NULL), ok.len);
    assert_int_equal(req.nkey, 250);
}

/* Two requests in one buffer: one at a time. */
static void test_proto_bin_pipeline_one_at_a_time(void **state)
{
    struct proto_parser *parser = *state;
    struct pkt pk = {0};
    simple(&pk, PROTO_BIN_GETKQ, "a");
    simple(&pk, PROTO_BIN_GETKQ, "b");
    simple(&pk, PROTO_BIN_NOOP, NULL);
    struct proto_req req;
    size_t off = 0;
    const char *keys[] = {"a", "b"};
    for (int i = 0; i < 2; i++) {
        size_t n = proto_bin_parse(parser, pk.data + off, pk.len - off, &req, NULL);
        assert_int_equal(n, PROTO_BIN_HEADER_LEN + 1);
        assert_memory_equal(req.key, keys[i], 1);
        off += n;
    }
    assert_int_equal(proto_bin_parse(parser, pk.data + off, pk.len - off, &req, NULL), PROTO_BIN_HEADER_LEN);
    assert_int_equal(req.cmd, PROTO_NOOP);
}

/* --- unknown opcodes ------------------------------------------------------ */

/* memcached 1.6 does not implement verbosity, the range commands or SASL
 * (not configured): "Unknown command", the body swallowed, the connection
 * goes on. */
static void test_proto_bin_unknown_opcodes_swallow_their_body(void **state)
{
    struct proto_parser *parser = *state;
    static const uint8_t ops[] = {PROTO_BIN_VERBOSITY, 0x1f, 0x30, 0x3c, 0x80, 0xff};
    for (size_t i = 0; i < sizeof(ops); i++) {
        struct pkt pk = {0};
        request(&pk, ops[i], "\0\0\0\1", 4, "kk", "valu", 4, 0);
        size_t head = PROTO_BIN_HEADER_LEN + 4 + 2;
        expect_error(&pk, PROTO_BIN_UNKNOWN_COMMAND, UNKNOWN_TEXT, false, head);

        /* the rest of the packet (the value) is swallowed, then a request */
        simple(&pk, PROTO_BIN_NOOP, NULL);
        struct proto_limits limits = fixture_limits();
        proto_parser_init(parser, &limits);
        struct proto_req req;
        size_t off = proto_bin_parse(parser, pk.data, pk.len, &req, NULL);
        assert_int_equal(off, head);
        assert_int_equal(parser->swallow, 4);
        assert_int_equal(proto_bin_parse(parser, pk.data + off, 3, &req, NULL), 3);
        assert_int_equal(req.cmd, PROTO_NONE);
        assert_false(req.close);
        off += 3;
        assert_int_equal(proto_bin_parse(parser, pk.data + off, pk.len - off, &req, NULL), 1);
        off += 1;
        assert_int_equal(proto_bin_parse(parser, pk.data + off, pk.len - off, &req, NULL), PROTO_BIN_HEADER_LEN);
        assert_int_equal(req.cmd, PROTO_NOOP);
    }
}

static void test_proto_bin_sasl_is_unknown(void **state)
{
    (void)state;
    struct pkt list = {0};
    simple(&list, PROTO_BIN_SASL_LIST_MECHS, NULL);
    expect_error(&list, PROTO_BIN_UNKNOWN_COMMAND, UNKNOWN_TEXT, false, list.len);

    struct pkt auth = {0};
    request(&auth, PROTO_BIN_SASL_AUTH, NULL, 0, "PLAIN", "\0u\0p", 4, 0);
    struct proto_req req;
    uint64_t swallow;
    assert_int_equal(parse_split(&auth, &req, &swallow), PROTO_BIN_HEADER_LEN + 5);
    assert_int_equal(req.bin.status, PROTO_BIN_UNKNOWN_COMMAND);
    assert_int_equal(swallow, 4);

    struct pkt step_no_key = {0};
    simple(&step_no_key, PROTO_BIN_SASL_STEP, NULL);
    expect_invalid(&step_no_key, step_no_key.len);
    struct pkt list_with_key = {0};
    simple(&list_with_key, PROTO_BIN_SASL_LIST_MECHS, "k");
    expect_invalid(&list_with_key, list_with_key.len);
}

/* --- errors ---------------------------------------------------------------- */

/* A first byte other than 0x80 closes without a reply, whatever follows,
 * from its very first byte. */
static void test_proto_bin_bad_magic_closes(void **state)
{
    struct proto_parser *parser = *state;
    static const char *inputs[] = {"\x81", "get k\r\n", "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                                                        "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"};
    static const size_t lens[] = {1, 7, 24};
    for (size_t i = 0; i < 3; i++) {
        char *buf = malloc(lens[i]);
        memcpy(buf, inputs[i], lens[i]);
        struct proto_req req;
        size_t need = 99;
        assert_int_equal(proto_bin_parse(parser, buf, lens[i], &req, &need), lens[i]);
        assert_int_equal(req.cmd, PROTO_NONE);
        assert_true(req.close);
        assert_null(req.error);
        free(buf);
    }
}

/* memcached's first check once extras and key are in: "Unknown command",
 * then close. */
static void test_proto_bin_key_and_extras_over_body_close(void **state)
{
    (void)state;
    struct pkt key_over = {0};
    header(&key_over, PROTO_BIN_REQ_MAGIC, PROTO_BIN_GET, 3, 0, 2, 0);
    append(&key_over, "abc", 3);
    expect_error(&key_over, PROTO_BIN_UNKNOWN_COMMAND, UNKNOWN_TEXT, true, key_over.len);

    struct pkt ext_over = {0};
    header(&ext_over, PROTO_BIN_REQ_MAGIC, PROTO_BIN_SET, 1, 8, 8, 0);
    append(&ext_over, "\0\0\0\0\0\0\0\0k", 9);
    expect_error(&ext_over, PROTO_BIN_UNKNOWN_COMMAND, UNKNOWN_TEXT, true, ext_over.len);

    /* even for an opcode that does not exist */
    struct pkt unknown = {0};
    header(&unknown, PROTO_BIN_REQ_MAGIC, 0xee, 1, 0, 0, 0);
    append(&unknown, "k", 1);
    expect_error(&unknown, PROTO_BIN_UNKNOWN_COMMAND, UNKNOWN_TEXT, true, unknown.len);
}

/* Nothing is decided before the header, extras and key are in: a key of
 * 65535 bytes is waited for, then refused. */
static void test_proto_bin_waits_for_extras_and_key(void **state)
{
    struct proto_parser *parser = *state;
    size_t len = PROTO_BIN_HEADER_LEN + 65535;
    char *buf = calloc(1, len);
    struct pkt pk = {0};
    header(&pk, PROTO_BIN_REQ_MAGIC, PROTO_BIN_GET, 65535, 0, 65535, 0);
    memcpy(buf, pk.data, PROTO_BIN_HEADER_LEN);
    struct proto_req req;
    size_t need = 0;
    assert_int_equal(proto_bin_parse(parser, buf, len - 1, &req, &need), 0);
    assert_int_equal(need, len);
    assert_int_equal(proto_bin_parse(parser, buf, len, &req, &need), len);
    assert_int_equal(req.cmd, PROTO_ERROR);
    assert_int_equal(req.bin.status, PROTO_BIN_EINVAL);
    assert_true(req.close);
    free(buf);
}

/* Each opcode's layout, as memcached's dispatch_bin_command checks it: a
 * wrong one is "Invalid arguments", then close. */
static void test_proto_bin_wrong_layouts_are_invalid(void **state)
{
    (void)state;
    static const char zeros[20];
    struct {
        uint8_t op;
        uint8_t extlen;
        const char *key;
        size_t nvalue;
    } bad[] = {
        {PROTO_BIN_GET, 0, NULL, 0},       /* no key */
        {PROTO_BIN_GET, 4, "k", 0},        /* extras */
        {PROTO_BIN_GETQ, 0, "k", 1},       /* a body past the key */
        {PROTO_BIN_GETK, 0, NULL, 0},      {PROTO_BIN_GETKQ, 0, NULL, 3},
        {PROTO_BIN_SET, 0, "k", 1},        /* no extras */
        {PROTO_BIN_SET, 4, "k", 1},        /* short extras */
        {PROTO_BIN_SETQ, 8, NULL, 1},      /* no key */
        {PROTO_BIN_ADD, 12, "k", 0},       {PROTO_BIN_REPLACEQ, 0, "k", 0},
        {PROTO_BIN_APPEND, 8, "k", 1},     /* extras */
        {PROTO_BIN_PREPENDQ, 0, NULL, 1},  /* no key */
        {PROTO_BIN_DELETE, 0, NULL, 0},    {PROTO_BIN_DELETEQ, 4, "k", 0},
        {PROTO_BIN_DELETE, 0, "k", 2},     /* a body past the key */
        {PROTO_BIN_INCREMENT, 0, "k", 0},  /* no extras */
        {PROTO_BIN_INCREMENT, 8, "k", 0},  {PROTO_BIN_DECREMENTQ, 20, NULL, 0},
        {PROTO_BIN_DECREMENT, 20, "k", 1}, /* a body past the key */
        {PROTO_BIN_TOUCH, 0, "k", 0},      {PROTO_BIN_TOUCH, 4, NULL, 0},
        {PROTO_BIN_TOUCH, 4, "k", 2},      /* a body past the key (memcached parses it as a request) */
        {PROTO_BIN_GAT, 8, "k", 0},        {PROTO_BIN_GATQ, 4, NULL, 0},
        {PROTO_BIN_GATK, 0, "k", 0},       {PROTO_BIN_GATKQ, 4, "k", 1},
        {PROTO_BIN_NOOP, 0, "k", 0},       {PROTO_BIN_NOOP, 4, NULL, 0},
        {PROTO_BIN_NOOP, 0, NULL, 1},      {PROTO_BIN_VERSION, 0, NULL, 1},
        {PROTO_BIN_QUIT, 0, "k", 0},       {PROTO_BIN_QUITQ, 4, NULL, 0},
        {PROTO_BIN_FLUSH, 8, NULL, 0},     /* extras neither 0 nor 4 */
        {PROTO_BIN_FLUSHQ, 0, "k", 0},     {PROTO_BIN_FLUSH, 4, NULL, 1},
        {PROTO_BIN_STAT, 4, NULL, 0},      /* extras */
        {PROTO_BIN_STAT, 0, "items", 2},   /* a body past the key */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pkt pk = {0};
        request(&pk, bad[i].op, zeros, bad[i].extlen, bad[i].key, "vvvv", bad[i].nvalue, 0);
        size_t head = PROTO_BIN_HEADER_LEN + bad[i].extlen + (bad[i].key ? strlen(bad[i].key) : 0);
        expect_invalid(&pk, head);
    }
}

/* --- too large: E2BIG with the value swallowed ------------------------ */

static void test_proto_bin_set_too_large_swallows_value(void **state)
{
    struct proto_parser *parser = *state;
    uint32_t nbytes = FIXTURE_PAGE; /* + key + header: over the limit */
    size_t len = PROTO_BIN_HEADER_LEN + 8 + 1 + (size_t)nbytes;
    char *buf = calloc(1, len + PROTO_BIN_HEADER_LEN);
    struct pkt pk = {0};
    header(&pk, PROTO_BIN_REQ_MAGIC, PROTO_BIN_SETQ, 1, 8, 8 + 1 + nbytes, 0);
    append(&pk, "\0\0\0\0\0\0\0\0k", 9);
    memcpy(buf, pk.data, pk.len);
    struct pkt noop = {0};
    simple(&noop, PROTO_BIN_NOOP, NULL);
    memcpy(buf + len, noop.data, noop.len);

    /* decided on the head alone: the value need not be buffered */
    struct proto_req req;
    size_t n = proto_bin_parse(parser, buf, pk.len, &req, NULL);
    assert_int_equal(n, pk.len);
    assert_int_equal(req.cmd, PROTO_SET);
    assert_true(req.too_large);
    assert_true(req.bin.quiet);
    assert_null(req.value);
    assert_int_equal(req.nbytes, nbytes);
    assert_memory_equal(req.key, "k", 1);
    assert_int_equal(parser->swallow, nbytes);

    /* swallowed in whatever pieces arrive, then the next request */
    size_t off = n;
    while (parser->swallow > 0) {
        size_t chunk = len - off < 65536 ? len - off : 65536;
        assert_int_equal(proto_bin_parse(parser, buf + off, chunk, &req, NULL), chunk);
        assert_int_equal(req.cmd, PROTO_NONE);
        off += chunk;
    }
    assert_int_equal(off, len);
    assert_int_equal(proto_bin_parse(parser, buf + off, PROTO_BIN_HEADER_LEN, &req, NULL), PROTO_BIN_HEADER_LEN);
    assert_int_equal(req.cmd, PROTO_NOOP);
    free(buf);
}

/* A body length of 4 GiB: no buffering, no overflow, E2BIG. */
static void test_proto_bin_body_4g_is_too_large(void **state)
{
    (void)state;
    struct pkt pk = {0};
    header(&pk, PROTO_BIN_REQ_MAGIC, PROTO_BIN_APPEND, 1, 0, UINT32_MAX, 0);
    append(&pk, "k", 1);
    struct proto_req req;
    uint64_t swallow;
    assert_int_equal(parse_split(&pk, &req, &swallow), pk.len);
    assert_int_equal(req.cmd, PROTO_APPEND);
    assert_true(req.too_large);
    assert_int_equal(swallow, UINT32_MAX - 1);
}

static void test_proto_bin_value_at_limit_is_accepted(void **state)
{
    struct proto_parser *parser = *state;
    uint32_t nbytes = FIXTURE_PAGE - FIXTURE_ITEM_HEADER - 1; /* key "k": exactly the limit */
    size_t len = PROTO_BIN_HEADER_LEN + 8 + 1 + (size_t)nbytes;
    char *buf = calloc(1, len);
    struct pkt pk = {0};
    header(&pk, PROTO_BIN_REQ_MAGIC, PROTO_BIN_SET, 1, 8, 8 + 1 + nbytes, 0);
    append(&pk, "\0\0\0\0\0\0\0\0k", 9);
    memcpy(buf, pk.data, pk.len);
    struct proto_req req;
    size_t need = 0;
    assert_int_equal(proto_bin_parse(parser, buf, len - 1, &req, &need), 0);
    assert_int_equal(need, len);
    assert_int_equal(parser->swallow, 0);
    assert_int_equal(proto_bin_parse(parser, buf, len, &req, &need), len);
    assert_false(req.too_large);
    assert_ptr_equal(req.value, buf + PROTO_BIN_HEADER_LEN + 9);
    free(buf);
}

/* --- composing ------------------------------------------------------------ */

static struct proto_req reply_to(uint8_t opcode)
{
    struct proto_req req = {.family = PROTO_FAMILY_BINARY, .bin = {.opcode = opcode}};
    memcpy(&req.bin.opaque, OPAQUE, 4);
    return req;
}

static void test_proto_bin_header_layout(void **state)
{
    (void)state;
    struct proto_req req = reply_to(PROTO_BIN_GETK);
    char p[PROTO_BIN_HEADER_LEN];
    proto_bin_header(p, &req, 0x0102, 4, 0x0304, 0x05060708, 0x1112131415161718ULL);
    static const char want[] = "\x81\x0c\x03\x04\x04\x00\x01\x02\x05\x06\x07\x08" OPAQUE
                               "\x11\x12\x13\x14\x15\x16\x17\x18";
    assert_memory_equal(p, want, PROTO_BIN_HEADER_LEN);
}

static void test_proto_bin_error_texts(void **state)
{
    (void)state;
    struct test_sink out;
    test_sink_init(&out, 16);
    struct proto_req req = reply_to(PROTO_BIN_SETQ);
    assert_true(proto_bin_error(&req, PROTO_BIN_KEY_EEXISTS, NULL, &out.sink));
    static const char want[] = "\x81\x11\x00\x00\x00\x00\x00\x02\x00\x00\x00\x14" OPAQUE
                               "\x00\x00\x00\x00\x00\x00\x00\x00"
                               "Data exists for key.";
    assert_int_equal(test_sink_len(&out), sizeof(want) - 1);
    assert_memory_equal(out.data, want, sizeof(want) - 1);
    test_sink_clear(&out);
    assert_true(proto_bin_error(&req, PROTO_BIN_ENOMEM, "Out of memory allocating item", &out.sink));
    assert_int_equal(test_sink_len(&out), PROTO_BIN_HEADER_LEN + 29);
    assert_memory_equal(out.data + PROTO_BIN_HEADER_LEN, "Out of memory allocating item", 29);
    test_sink_fini(&out);

    assert_string_equal(proto_bin_status_text(PROTO_BIN_KEY_ENOENT), "Not found");
    assert_string_equal(proto_bin_status_text(PROTO_BIN_E2BIG), "Too large.");
    assert_string_equal(proto_bin_status_text(PROTO_BIN_EINVAL), EINVAL_TEXT);
    assert_string_equal(proto_bin_status_text(PROTO_BIN_NOT_STORED), "Not stored.");
    assert_string_equal(proto_bin_status_text(PROTO_BIN_DELTA_BADVAL),
                        "Non-numeric server-side value for incr or decr");
    assert_string_equal(proto_bin_status_text(PROTO_BIN_UNKNOWN_COMMAND), UNKNOWN_TEXT);
    assert_string_equal(proto_bin_status_text(PROTO_BIN_ENOMEM), "Out of memory");
    assert_string_equal(proto_bin_status_text(PROTO_BIN_SUCCESS), "");
}

static void test_proto_bin_reply_key_and_value(void **state)
{
    (void)state;
    struct test_sink out;
    test_sink_init(&out, 8);
    struct proto_req req = reply_to(PROTO_BIN_GETK);
    assert_true(proto_bin_reply(&req, PROTO_BIN_KEY_ENOENT, "kk", 2, "vvv", 3, 9, &out.sink));
    static const char want[] = "\x81\x0c\x00\x02\x00\x00\x00\x01\x00\x00\x00\x05" OPAQUE
                               "\x00\x00\x00\x00\x00\x00\x00\x09"
                               "kkvvv";
    assert_int_equal(test_sink_len(&out), sizeof(want) - 1);
    assert_memory_equal(out.data, want, sizeof(want) - 1);
    /* a sink without memory fails */
    out.limit = out.len + 10;
    assert_false(proto_bin_reply(&req, 0, NULL, 0, NULL, 0, 0, &out.sink));
    test_sink_fini(&out);
}

static void test_proto_bin_stats_from_text(void **state)
{
    (void)state;
    struct test_sink out;
    test_sink_init(&out, 32);
    struct proto_req req = reply_to(PROTO_BIN_STAT);
    static const char text[] = "STAT pid 42\r\nSTAT version 1.6.18 x\r\nSTAT empty \r\nnoise\r\nEND\r\n";
    assert_true(proto_bin_stats_from_text(&req, text, sizeof(text) - 1, &out.sink));
    static const char want[] = "\x81\x10\x00\x03\x00\x00\x00\x00\x00\x00\x00\x05" OPAQUE
                               "\x00\x00\x00\x00\x00\x00\x00\x00"
                               "pid42"
                               "\x81\x10\x00\x07\x00\x00\x00\x00\x00\x00\x00\x0f" OPAQUE
                               "\x00\x00\x00\x00\x00\x00\x00\x00"
                               "version1.6.18 x"
                               "\x81\x10\x00\x05\x00\x00\x00\x00\x00\x00\x00\x05" OPAQUE
                               "\x00\x00\x00\x00\x00\x00\x00\x00"
                               "empty"
                               "\x81\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" OPAQUE
                               "\x00\x00\x00\x00\x00\x00\x00\x00";
    assert_int_equal(test_sink_len(&out), sizeof(want) - 1);
    assert_memory_equal(out.data, want, sizeof(want) - 1);
    test_sink_fini(&out);
}

#define T(name) cmocka_unit_test_setup_teardown(name, parser_fixture_setup, parser_fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_proto_bin_get_family),
        T(test_proto_bin_gat_family_and_touch),
        T(test_proto_bin_set_family),
        T(test_proto_bin_set_empty_value),
        T(test_proto_bin_append_prepend),
        T(test_proto_bin_delete),
        T(test_proto_bin_incr_decr),
        T(test_proto_bin_noop_version_quit),
        T(test_proto_bin_flush),
        T(test_proto_bin_stat),
        T(test_proto_bin_key_any_bytes),
        T(test_proto_bin_key_250_ok_251_invalid),
        T(test_proto_bin_pipeline_one_at_a_time),
        T(test_proto_bin_unknown_opcodes_swallow_their_body),
        T(test_proto_bin_sasl_is_unknown),
        T(test_proto_bin_bad_magic_closes),
        T(test_proto_bin_key_and_extras_over_body_close),
        T(test_proto_bin_waits_for_extras_and_key),
        T(test_proto_bin_wrong_layouts_are_invalid),
        T(test_proto_bin_set_too_large_swallows_value),
        T(test_proto_bin_body_4g_is_too_large),
        T(test_proto_bin_value_at_limit_is_accepted),
        T(test_proto_bin_header_layout),
        T(test_proto_bin_error_texts),
        T(test_proto_bin_reply_key_and_value),
        T(test_proto_bin_stats_from_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
