/*
 * test_resp.c: the reply parser: every reply kind, text and binary, fed
 * whole, split at every byte boundary, one byte at a time, and pipelined
 * back to back; malformed input is refused and stays refused.
 *
 * Each chunk is handed to the parser in its own heap copy that is wiped
 * and freed as soon as the parser returns, so a parser that kept a pointer
 * into a previous chunk reads garbage (and ASan reports it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "resp.h"

#define MAX_ELEMENTS 64

/* An element as the tests compare it (line text copied out). */
struct elem {
    enum resp_kind kind;
    uint32_t value_len;
    uint32_t flags;
    uint64_t number;
    uint8_t opcode;
    uint16_t status;
    char line[128];
};

struct stream {
    struct elem elems[MAX_ELEMENTS];
    size_t count;
    bool failed; /* MC_EINVAL seen */
};

static int setup_text(void **state)
{
    *state = resp_parser_create(RESP_MODE_TEXT);
    return *state == NULL ? -1 : 0;
}

static int setup_binary(void **state)
{
    *state = resp_parser_create(RESP_MODE_BINARY);
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    struct resp_parser *p = *state;
    resp_parser_destroy(&p);
    return 0;
}

/* Feeds one chunk (through a private copy) and collects what it yields. */
static void feed(struct resp_parser *p, const char *data, size_t len, struct stream *out)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, data, len);
    size_t off = 0;
    for (;;) {
        size_t used = 0;
        struct resp r;
        enum mc_status st = resp_parse(p, copy + off, len - off, &used, &r);
        assert_true(used <= len - off);
        off += used;
        if (st == MC_AGAIN) {
            assert_int_equal(off, len);
            break;
        }
        if (st == MC_EINVAL) {
            out->failed = true;
            break;
        }
        assert_int_equal(st, MC_OK);
        assert_true(out->count < MAX_ELEMENTS);
        struct elem *e = &out->elems[out->count++];
        memset(e, 0, sizeof(*e));
        e->kind = r.kind;
        e->value_len = r.value_len;
        e->flags = r.flags;
        e->number = r.number;
        e->opcode = r.opcode;
        e->status = r.status;
        if (r.line != NULL) {
            assert_true(r.line_len < sizeof(e->line));
            memcpy(e->line, r.line, r.line_len);
        }
        if (off == len)
            break;
    }
    memset(copy, 'X', len);
    free(copy);
}

static void assert_same(const struct stream *a, const struct stream *b)
{
    assert_int_equal(a->failed, b->failed);
    assert_int_equal(a->count, b->count);
    for (size_t i = 0; i < a->count; i++) {
        const struct elem *x = &a->elems[i], *y = &b->elems[i];
        if (x->kind != y->kind || x->value_len != y->value_len || x->flags != y->flags ||
            x->number != y->number || x->opcode != y->opcode || x->status != y->status ||
            strcmp(x->line, y->line) != 0)
            fail_msg("element %zu differs: %s/%u/%s vs %s/%u/%s", i, resp_kind_str(x->kind),
                     x->value_len, x->line, resp_kind_str(y->kind), y->value_len, y->line);
    }
}

/* Whole, every two-way split, and byte by byte must all give `want`. */
static void check_all_splits(enum resp_mode mode, const char *data, size_t len,
                             const struct stream *want)
{
    struct stream got;
    for (size_t cut = 0; cut <= len; cut++) {
        struct resp_parser *p = resp_parser_create(mode);
        memset(&got, 0, sizeof(got));
        feed(p, data, cut, &got);
        if (!got.failed)
            feed(p, data + cut, len - cut, &got);
        assert_same(&got, want);
        resp_parser_destroy(&p);
    }
    struct resp_parser *p = resp_parser_create(mode);
    memset(&got, 0, sizeof(got));
    for (size_t i = 0; i < len && !got.failed; i++)
        feed(p, data + i, 1, &got);
    assert_same(&got, want);
    resp_parser_destroy(&p);
}

#define E(k, ...) {.kind = (k), __VA_ARGS__}

static const char text_stream[] =
    "VALUE key:1 0 5\r\nhello\r\n"
    "VALUE key:2 42 0 17\r\n\r\n" /* with a cas, empty value */
    "END\r\n"
    "END\r\n"
    "STORED\r\n"
    "NOT_STORED\r\n"
    "EXISTS\r\n"
    "NOT_FOUND\r\n"
    "DELETED\r\n"
    "TOUCHED\r\n"
    "OK\r\n"
    "12345\r\n"
    "ERROR\r\n"
    "CLIENT_ERROR bad data chunk\r\n"
    "SERVER_ERROR out of memory storing object\r\n"
    "VALUE k 7 10\r\nEND\r\nEND\r\n\r\n" /* a value that looks like replies */
    "END\r\n"
    "VA 3 f0\r\nabc\r\n"
    "VA 0\r\n\r\n"
    "HD\r\n"
    "HD c123\r\n"
    "EN\r\n"
    "NS\r\n"
    "EX\r\n"
    "NF\r\n"
    "MN\r\n";

static const struct stream text_want = {
    .count = 26,
    .elems = {
        E(RESP_VALUE, .value_len = 5),
        E(RESP_VALUE, .value_len = 0, .flags = 42),
        E(RESP_END, .line = "END"),
        E(RESP_END, .line = "END"),
        E(RESP_STORED, .line = "STORED"),
        E(RESP_NOT_STORED, .line = "NOT_STORED"),
        E(RESP_EXISTS, .line = "EXISTS"),
        E(RESP_NOT_FOUND, .line = "NOT_FOUND"),
        E(RESP_DELETED, .line = "DELETED"),
        E(RESP_TOUCHED, .line = "TOUCHED"),
        E(RESP_OK, .line = "OK"),
        E(RESP_NUMBER, .number = 12345, .line = "12345"),
        E(RESP_ERROR, .line = "ERROR"),
        E(RESP_CLIENT_ERROR, .line = "CLIENT_ERROR bad data chunk"),
        E(RESP_SERVER_ERROR, .line = "SERVER_ERROR out of memory storing object"),
        E(RESP_VALUE, .value_len = 10, .flags = 7),
        E(RESP_END, .line = "END"),
        E(RESP_VALUE, .value_len = 3),
        E(RESP_VALUE, .value_len = 0),
        E(RESP_HD, .line = "HD"),
        E(RESP_HD, .line = "HD c123"),
        E(RESP_MISS, .line = "EN"),
        E(RESP_NOT_STORED, .line = "NS"),
        E(RESP_EXISTS, .line = "EX"),
        E(RESP_NOT_FOUND, .line = "NF"),
        E(RESP_NOOP, .line = "MN"),
    },
};

static void test_resp_text_every_kind_whole(void **state)
{
    struct stream got = {0};
    feed(*state, text_stream, sizeof(text_stream) - 1, &got);
    assert_same(&got, &text_want);
}

static void test_resp_text_split_at_every_byte(void **state)
{
    check_all_splits(RESP_MODE_TEXT, text_stream, sizeof(text_stream) - 1, &text_want);
}

static void test_resp_text_large_value_across_chunks(void **state)
{
    /* A 100000-byte value in 4 KiB chunks: counted down, never buffered. */
    size_t n = 100000;
    char header[] = "VALUE big 0 100000\r\n";
    size_t total = strlen(header) + n + 2 + 5;
    char *data = malloc(total);
    memcpy(data, header, strlen(header));
    memset(data + strlen(header), 'v', n);
    memcpy(data + strlen(header) + n, "\r\nEND\r\n", 7);
    struct stream got = {0};
    for (size_t off = 0; off < total; off += 4096)
        feed(*state, data + off, total - off < 4096 ? total - off : 4096, &got);
    assert_false(got.failed);
    assert_int_equal(got.count, 2);
    assert_int_equal(got.elems[0].kind, RESP_VALUE);
    assert_int_equal(got.elems[0].value_len, n);
    assert_int_equal(got.elems[1].kind, RESP_END);
    free(data);
}

static void test_resp_text_error_line_is_available(void **state)
{
    const char data[] = "SERVER_ERROR out of memory\r\n";
    size_t used;
    struct resp r;
    assert_int_equal(resp_parse(*state, data, sizeof(data) - 1, &used, &r), MC_OK);
    assert_int_equal(used, sizeof(data) - 1);
    assert_int_equal(r.kind, RESP_SERVER_ERROR);
    assert_int_equal(r.line_len, strlen("SERVER_ERROR out of memory"));
    assert_memory_equal(r.line, "SERVER_ERROR out of memory", r.line_len);
}

static void test_resp_text_pipelined_returns_one_at_a_time(void **state)
{
    const char data[] = "STORED\r\nEND\r\nSTORED\r\n";
    size_t used, off = 0;
    struct resp r;
    assert_int_equal(resp_parse(*state, data, sizeof(data) - 1, &used, &r), MC_OK);
    assert_int_equal(used, 8);
    assert_int_equal(r.kind, RESP_STORED);
    off += used;
    assert_int_equal(resp_parse(*state, data + off, sizeof(data) - 1 - off, &used, &r), MC_OK);
    assert_int_equal(r.kind, RESP_END);
    assert_int_equal(used, 5);
    off += used;
    assert_int_equal(resp_parse(*state, data + off, sizeof(data) - 1 - off, &used, &r), MC_OK);
    assert_int_equal(r.kind, RESP_STORED);
    off += used;
    assert_int_equal(off, sizeof(data) - 1);
    assert_int_equal(resp_parse(*state, data + off, 0, &used, &r), MC_AGAIN);
    assert_int_equal(used, 0);
}

/* Each of these must be refused, whole or split anywhere. */
static const char *const malformed_text[] = {
    "STORED\n",                       /* bare newline */
    "STORED \r\n",                    /* trailing junk on an exact word */
    "ENDX\r\n",                       /* unknown word */
    "HELLO\r\n",                      /* unknown word */
    "VALUE k 0 3\r\nabcd\r\n",        /* data longer than announced */
    "VALUE k 0 3\r\nab\r\n\r\n",      /* data shorter than announced */
    "VALUE k 0\r\n",                  /* no length */
    "VALUE k x 3\r\nabc\r\n",         /* flags not a number */
    "VALUE k 0 3 x\r\nabc\r\n",       /* cas not a number */
    "VALUE k 0 99999999999\r\n",      /* length beyond RESP_VALUE_MAX */
    "VA x\r\n",                       /* VA without a size */
    "12a\r\n",                        /* not a number */
    "99999999999999999999999\r\n",    /* number overflow */
    "\r\n",                           /* empty line */
};

static void test_resp_text_malformed_is_refused(void **state)
{
    for (size_t i = 0; i < sizeof(malformed_text) / sizeof(malformed_text[0]); i++) {
        const char *m = malformed_text[i];
        struct stream want = {.failed = true};
        /* Elements before the fault may come out; compare against whole. */
        struct resp_parser *p = resp_parser_create(RESP_MODE_TEXT);
        feed(p, m, strlen(m), &want);
        resp_parser_destroy(&p);
        if (!want.failed)
            fail_msg("accepted malformed reply %zu: %s", i, m);
        check_all_splits(RESP_MODE_TEXT, m, strlen(m), &want);
    }
}

static void test_resp_text_line_too_long_is_refused(void **state)
{
    size_t n = RESP_LINE_MAX + 10;
    char *line = malloc(n);
    memcpy(line, "SERVER_ERROR ", 13);
    memset(line + 13, 'x', n - 15);
    memcpy(line + n - 2, "\r\n", 2);
    struct stream got = {0};
    feed(*state, line, n, &got);
    assert_true(got.failed);
    free(line);
}

static void test_resp_broken_parser_stays_broken(void **state)
{
    size_t used;
    struct resp r;
    assert_int_equal(resp_parse(*state, "BOGUS\r\n", 7, &used, &r), MC_EINVAL);
    assert_non_null(r.line);
    assert_memory_equal(r.line, "BOGUS", 5);
    assert_int_equal(resp_parse(*state, "END\r\n", 5, &used, &r), MC_EINVAL);
}

/* Appends one binary response: header, extras, key, value. */
static size_t bin(char *out, uint8_t opcode, uint16_t status, size_t extras, size_t key,
                  size_t value)
{
    unsigned char *h = (unsigned char *)out;
    size_t body = extras + key + value;
    memset(h, 0, 24);
    h[0] = 0x81;
    h[1] = opcode;
    h[2] = (unsigned char)(key >> 8);
    h[3] = (unsigned char)key;
    h[4] = (unsigned char)extras;
    h[6] = (unsigned char)(status >> 8);
    h[7] = (unsigned char)status;
    h[8] = (unsigned char)(body >> 24);
    h[9] = (unsigned char)(body >> 16);
    h[10] = (unsigned char)(body >> 8);
    h[11] = (unsigned char)body;
    memset(out + 24, 'b', body);
    return 24 + body;
}

static void test_resp_binary_every_kind_split_at_every_byte(void **state)
{
    char data[1024];
    size_t n = 0;
    n += bin(data + n, 0x00, 0x00, 4, 0, 5);      /* GET hit */
    n += bin(data + n, 0x0d, 0x00, 4, 5, 3);      /* GETKQ hit with key */
    n += bin(data + n, 0x00, 0x01, 0, 0, 9);      /* GET miss "Not found" */
    n += bin(data + n, 0x0a, 0x00, 0, 0, 0);      /* NOOP */
    n += bin(data + n, 0x01, 0x00, 0, 0, 0);      /* SET ok */
    n += bin(data + n, 0x01, 0x05, 0, 0, 10);     /* SET not stored */
    n += bin(data + n, 0x02, 0x02, 0, 0, 0);      /* ADD exists */
    n += bin(data + n, 0x04, 0x00, 0, 0, 0);      /* DELETE ok */
    n += bin(data + n, 0x04, 0x01, 0, 0, 9);      /* DELETE not found */
    n += bin(data + n, 0x1c, 0x00, 0, 0, 0);      /* TOUCH ok */
    n += bin(data + n, 0x0b, 0x00, 0, 0, 6);      /* VERSION: other ok */
    n += bin(data + n, 0x3f, 0x81, 0, 0, 15);     /* unknown command */
    n += bin(data + n, 0x01, 0x04, 0, 0, 16);     /* invalid arguments */
    n += bin(data + n, 0x01, 0x82, 0, 0, 13);     /* out of memory */
    n += bin(data + n, 0x01, 0x03, 0, 0, 5);      /* too large */
    static const struct stream want = {
        .count = 15,
        .elems = {
            E(RESP_VALUE, .value_len = 5, .opcode = 0x00),
            E(RESP_VALUE, .value_len = 3, .opcode = 0x0d),
            E(RESP_MISS, .opcode = 0x00, .status = 1),
            E(RESP_NOOP, .opcode = 0x0a),
            E(RESP_STORED, .opcode = 0x01),
            E(RESP_NOT_STORED, .opcode = 0x01, .status = 5),
            E(RESP_EXISTS, .opcode = 0x02, .status = 2),
            E(RESP_DELETED, .opcode = 0x04),
            E(RESP_NOT_FOUND, .opcode = 0x04, .status = 1),
            E(RESP_TOUCHED, .opcode = 0x1c),
            E(RESP_OK, .opcode = 0x0b),
            E(RESP_ERROR, .opcode = 0x3f, .status = 0x81),
            E(RESP_CLIENT_ERROR, .opcode = 0x01, .status = 4),
            E(RESP_SERVER_ERROR, .opcode = 0x01, .status = 0x82),
            E(RESP_SERVER_ERROR, .opcode = 0x01, .status = 3),
        },
    };
    struct stream got = {0};
    feed(*state, data, n, &got);
    assert_same(&got, &want);
    check_all_splits(RESP_MODE_BINARY, data, n, &want);
}

static void test_resp_binary_malformed_is_refused(void **state)
{
    char data[64];
    size_t n = bin(data, 0x00, 0x00, 4, 0, 5);
    data[0] = (char)0x80; /* a request's magic, not a response's */
    struct stream got = {0};
    feed(*state, data, n, &got);
    assert_true(got.failed);

    struct resp_parser *p = resp_parser_create(RESP_MODE_BINARY);
    n = bin(data, 0x0c, 0x00, 4, 10, 0);
    data[11] = 5; /* body shorter than extras + key */
    memset(&got, 0, sizeof(got));
    feed(p, data, 24, &got);
    assert_true(got.failed);
    resp_parser_destroy(&p);
}

static void test_resp_kind_names(void **state)
{
    assert_string_equal(resp_kind_str(RESP_STORED), "STORED");
    assert_string_equal(resp_kind_str(RESP_SERVER_ERROR), "SERVER_ERROR");
    assert_string_equal(resp_kind_str((enum resp_kind)999), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resp_text_every_kind_whole, setup_text, teardown),
        cmocka_unit_test_setup_teardown(test_resp_text_split_at_every_byte, setup_text, teardown),
        cmocka_unit_test_setup_teardown(test_resp_text_large_value_across_chunks, setup_text,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resp_text_error_line_is_available, setup_text,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resp_text_pipelined_returns_one_at_a_time, setup_text,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resp_text_malformed_is_refused, setup_text, teardown),
        cmocka_unit_test_setup_teardown(test_resp_text_line_too_long_is_refused, setup_text,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resp_broken_parser_stays_broken, setup_text, teardown),
        cmocka_unit_test_setup_teardown(test_resp_binary_every_kind_split_at_every_byte,
                                        setup_binary, teardown),
        cmocka_unit_test_setup_teardown(test_resp_binary_malformed_is_refused, setup_binary,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resp_kind_names, setup_text, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
