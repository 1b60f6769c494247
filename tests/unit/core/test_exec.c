/*
 * test_exec.c: every command, of every protocol, executed end to end
 * without a socket: bytes parsed by the real parsers (proto_parse,
 * proto_bin_parse), executed by exec_request() against a real store, the
 * replies compared byte for byte with memcached 1.6.18's (the ones
 * test_process*.c pin per key) and the action exec hands to io/ checked.
 *
 * Multi-get across shards runs through a fake router: a two-shard ring
 * (ring.h), one store per shard, and a forward() that reserves an ordered
 * placeholder, copies the request as io/route.c's forwarding contract says
 * (proto.h); the owner runs exec_forwarded() only after the connection
 * has written everything after it (later keys, the END, an MN or NOOP),
 * in the order the keys were sent (a channel is FIFO), so each placeholder
 * is filled after the bytes that follow it. The assembled output must equal,
 * byte for byte, what one store answers to the same bytes (binary CAS
 * fields aside: each store numbers its own CAS values).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exec.h"
#include "hash.h"
#include "proto.h"
#include "proto_bin.h"
#include "ring.h"
#include "test_bin.h"
#include "test_fixture.h"
#include "test_sink.h"

#define VERSION "1.6.18-test"
#define VERBOSITY_MAX 2
#define LEN(lit) (sizeof(lit) - 1)

/* The context of a server of one shard: every key is local. */
static struct exec_ctx local_ctx(const struct fixture *f)
{
    struct exec_ctx ctx = {.env = &f->env, .version = VERSION, .verbosity_max = VERBOSITY_MAX};
    return ctx;
}

/*
 * Parses buf[0..len) with `parse` and executes every request in it into
 * `out`, as a connection would: each result but the last must be
 * EXEC_NEXT; a result that ends the connection must come with the last
 * bytes. Returns the last request's result.
 */
static struct exec_result exec_bytes(const struct exec_ctx *ctx, struct proto_parser *parser,
                                     split_parse_fn parse, const char *buf, size_t len, struct sink *out)
{
    struct exec_result r = {.action = EXEC_NEXT};
    size_t off = 0;
    while (off < len) {
        assert_int_equal(r.action, EXEC_NEXT);
        struct proto_req req;
        size_t n = parse(parser, buf + off, len - off, &req, NULL);
        assert_true(n > 0);
        off += n;
        exec_request(ctx, &req, out, &r);
    }
    return r;
}

/* exec_bytes on the fixture's parser and sink (cleared first). */
static struct exec_result run(struct fixture *f, const struct exec_ctx *ctx, split_parse_fn parse,
                              const char *buf, size_t len)
{
    test_sink_clear(&f->out);
    return exec_bytes(ctx, &f->parser, parse, buf, len, &f->out.sink);
}

/* Text: the whole output of `request` must be `want`, its last action `action`. */
static void expect_text(struct fixture *f, const struct exec_ctx *ctx, const char *request,
                        const char *want, enum exec_action action)
{
    struct exec_result r = run(f, ctx, proto_parse, request, strlen(request));
    char *got = test_sink_text(&f->out);
    assert_string_equal(got, want);
    free(got);
    assert_int_equal(r.action, action);
}

#define EXPECT(f, request, want) expect_text((f), &ctx, (request), (want), EXEC_NEXT)

/* --- text: retrievals ------------------------------------------------------- */

static void test_exec_text_get_multi_key_hits_misses_end(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    EXPECT(f, "get a\r\n", "END\r\n");
    EXPECT(f, "get a b c\r\n", "END\r\n");
    EXPECT(f, "set a 5 0 1\r\n1\r\nset c 0 0 3\r\n333\r\n", "STORED\r\nSTORED\r\n");
    EXPECT(f, "get a b c\r\n", "VALUE a 5 1\r\n1\r\nVALUE c 0 3\r\n333\r\nEND\r\n");
    EXPECT(f, "get c c\r\n", "VALUE c 0 3\r\n333\r\nVALUE c 0 3\r\n333\r\nEND\r\n");
    /* the fixture's store numbers CAS values 1, 2, ... */
    EXPECT(f, "gets a b c\r\n", "VALUE a 5 1 1\r\n1\r\nVALUE c 0 3 2\r\n333\r\nEND\r\n");
    EXPECT(f, "gat 100 a b\r\n", "VALUE a 5 1\r\n1\r\nEND\r\n");
    EXPECT(f, "gats 100 b c\r\n", "VALUE c 0 3 2\r\n333\r\nEND\r\n");
    EXPECT(f, "gat 10\r\n", "END\r\n"); /* no keys: memcached's bare END */
    /* gat moved a's expiry: it outlives a short TTL set later on c */
    EXPECT(f, "touch c 50\r\n", "TOUCHED\r\n");
    fixture_advance(f, 60);
    EXPECT(f, "get a c\r\n", "VALUE a 5 1\r\n1\r\nEND\r\n");
    fixture_advance(f, 50);
    EXPECT(f, "get a c\r\n", "END\r\n");
}

/* --- text: storage ----------------------------------------------------------- */

static uint64_t cas_of(struct fixture *f, const struct exec_ctx *ctx, const char *key)
{
    char request[64];
    snprintf(request, sizeof(request), "gets %s\r\n", key);
    run(f, ctx, proto_parse, request, strlen(request));
    char *got = test_sink_text(&f->out);
    unsigned long long cas = 0;
    size_t nkey = strlen(key);
    assert_true(strncmp(got, "VALUE ", 6) == 0 && strncmp(got + 6, key, nkey) == 0);
    assert_int_equal(sscanf(got + 6 + nkey, " %*u %*u %llu\r\n", &cas), 1);
    free(got);
    return cas;
}

static void test_exec_text_storage_commands(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    EXPECT(f, "set k 0 0 1\r\nx\r\n", "STORED\r\n");
    EXPECT(f, "add k 0 0 1\r\ny\r\n", "NOT_STORED\r\n");
    EXPECT(f, "add n 7 0 1\r\ny\r\n", "STORED\r\n");
    EXPECT(f, "replace k 0 0 1\r\nz\r\n", "STORED\r\n");
    EXPECT(f, "replace missing 0 0 1\r\nz\r\n", "NOT_STORED\r\n");
    EXPECT(f, "append k 0 0 2\r\nAB\r\n", "STORED\r\n");
    EXPECT(f, "prepend k 0 0 1\r\n<\r\n", "STORED\r\n");
    EXPECT(f, "append missing 0 0 1\r\n!\r\n", "NOT_STORED\r\n");
    EXPECT(f, "get k n\r\n", "VALUE k 0 4\r\n<zAB\r\nVALUE n 7 1\r\ny\r\nEND\r\n");
    uint64_t cas = cas_of(f, &ctx, "k");
    char request[64];
    snprintf(request, sizeof(request), "cas k 3 0 1 %llu\r\nc\r\n", (unsigned long long)cas);
    EXPECT(f, request, "STORED\r\n");
    EXPECT(f, request, "EXISTS\r\n"); /* the CAS moved on */
    EXPECT(f, "cas nope 0 0 1 1\r\nd\r\n", "NOT_FOUND\r\n");
    EXPECT(f, "get k\r\n", "VALUE k 3 1\r\nc\r\nEND\r\n");
}

static void test_exec_text_storage_noreply(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    EXPECT(f,
           "set q 0 0 1 noreply\r\n1\r\n"
           "add q 0 0 1 noreply\r\n2\r\n"
           "replace zz 0 0 1 noreply\r\n3\r\n"
           "append q 0 0 1 noreply\r\n4\r\n"
           "prepend q 0 0 1 noreply\r\n5\r\n"
           "cas q 0 0 1 999 noreply\r\n6\r\n"
           "get q zz\r\n",
           "VALUE q 0 3\r\n514\r\nEND\r\n");
    uint64_t cas = cas_of(f, &ctx, "q");
    char request[64];
    snprintf(request, sizeof(request), "cas q 0 0 1 %llu noreply\r\n7\r\nget q\r\n", (unsigned long long)cas);
    EXPECT(f, request, "VALUE q 0 1\r\n7\r\nEND\r\n");
}

/* --- text: delete, incr/decr, touch -------------------------------------------- */

static void test_exec_text_delete_arith_touch(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    EXPECT(f, "delete k\r\n", "NOT_FOUND\r\n");
    EXPECT(f, "incr k 1\r\n", "NOT_FOUND\r\n");
    EXPECT(f, "decr k 1\r\n", "NOT_FOUND\r\n");
    EXPECT(f, "touch k 10\r\n", "NOT_FOUND\r\n");
    EXPECT(f, "set k 0 0 2\r\n10\r\n", "STORED\r\n");
    EXPECT(f, "incr k 5\r\n", "15\r\n");
    EXPECT(f, "decr k 20\r\n", "0\r\n");
    EXPECT(f, "incr k 18446744073709551615\r\n", "18446744073709551615\r\n");
    EXPECT(f, "touch k 10\r\n", "TOUCHED\r\n");
    EXPECT(f, "delete k\r\n", "DELETED\r\n");
    EXPECT(f, "set t 0 0 4\r\ntext\r\nincr t 1\r\n",
           "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    /* noreply: nothing, errors included */
    EXPECT(f, "incr t 1 noreply\r\ndecr nope 1 noreply\r\ntouch t 1 noreply\r\ndelete nope noreply\r\n", "");
    EXPECT(f, "delete t noreply\r\nget t\r\n", "END\r\n");
}

/* --- meta -------------------------------------------------------------------- */

static void test_exec_meta_commands(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    EXPECT(f, "mn\r\n", "MN\r\n");
    EXPECT(f, "mg m v\r\n", "EN\r\n");
    EXPECT(f, "ms m 2 F9\r\nhi\r\n", "HD\r\n");
    EXPECT(f, "mg m v f k O42\r\n", "VA 2 f9 km O42\r\nhi\r\n");
    EXPECT(f, "mg bQ== b v\r\n", "VA 2\r\nhi\r\n"); /* "m", base64 */
    EXPECT(f, "ms n 1\r\n5\r\nma n v\r\nma n MD D6 v\r\n", "HD\r\nVA 1\r\n6\r\nVA 1\r\n0\r\n");
    EXPECT(f, "ma nope\r\n", "NF\r\n");
    EXPECT(f, "md n\r\nmd n\r\n", "HD\r\nNF\r\n");
    EXPECT(f, "me nope\r\n", "EN\r\n");
    run(f, &ctx, proto_parse, "me m\r\n", LEN("me m\r\n"));
    char *got = test_sink_text(&f->out);
    assert_true(strncmp(got, "ME m exp=-1 la=0 cas=", 21) == 0);
    assert_true(strcmp(got + strlen(got) - 2, "\r\n") == 0);
    free(got);
    /* quiet mode: hits and failures answer, successes and misses do not,
     * and mn fences the pipeline */
    EXPECT(f, "ms q 1 q\r\n1\r\nmg q v q\r\nmg nope v q\r\nmd nope q\r\nmn\r\n", "VA 1\r\n1\r\nNF\r\nMN\r\n");
    /* errors: the parser's line, always sent */
    EXPECT(f, "mg m zz\r\n", "CLIENT_ERROR invalid flag\r\n");
}

/* --- whole-server commands ------------------------------------------------------- */

static void test_exec_version_and_verbosity(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    EXPECT(f, "version\r\n", "VERSION " VERSION "\r\n");

    struct exec_result r = run(f, &ctx, proto_parse, "verbosity 1\r\n", LEN("verbosity 1\r\n"));
    assert_int_equal(r.action, EXEC_VERBOSITY);
    assert_int_equal(r.level, 1);
    char *got = test_sink_text(&f->out);
    assert_string_equal(got, "OK\r\n");
    free(got);
    r = run(f, &ctx, proto_parse, "verbosity 9\r\n", LEN("verbosity 9\r\n"));
    assert_int_equal(r.action, EXEC_VERBOSITY);
    assert_int_equal(r.level, VERBOSITY_MAX); /* capped */
    r = run(f, &ctx, proto_parse, "verbosity 0 noreply\r\n", LEN("verbosity 0 noreply\r\n"));
    assert_int_equal(r.action, EXEC_VERBOSITY);
    assert_int_equal(r.level, 0);
    assert_int_equal(test_sink_len(&f->out), 0);
}

static void test_exec_flush_all(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    static const struct {
        const char *request;
        const char *reply;
        int64_t delay;
    } cases[] = {
        {"flush_all\r\n", "OK\r\n", 0},
        {"flush_all 10\r\n", "OK\r\n", 10},
        {"flush_all noreply\r\n", "", 0},
        {"flush_all 30 noreply\r\n", "", 30},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct exec_result r = run(f, &ctx, proto_parse, cases[i].request, strlen(cases[i].request));
        assert_int_equal(r.action, EXEC_FLUSH_ALL);
        assert_int_equal(r.delay, cases[i].delay);
        char *got = test_sink_text(&f->out);
        assert_string_equal(got, cases[i].reply);
        free(got);
    }
    expect_text(f, &ctx, "flush_all x\r\n", "CLIENT_ERROR invalid exptime argument\r\n", EXEC_NEXT);
}

static void test_exec_stats_groups(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    static const struct {
        const char *request;
        enum exec_stats group;
    } gathered[] = {
        {"stats\r\n", EXEC_STATS_GENERAL},   {"stats settings\r\n", EXEC_STATS_SETTINGS},
        {"stats items\r\n", EXEC_STATS_ITEMS}, {"stats slabs\r\n", EXEC_STATS_SLABS},
        {"stats conns\r\n", EXEC_STATS_CONNS}, {"stats shards\r\n", EXEC_STATS_SHARDS},
    };
    for (size_t i = 0; i < sizeof(gathered) / sizeof(gathered[0]); i++) {
        struct exec_result r = run(f, &ctx, proto_parse, gathered[i].request, strlen(gathered[i].request));
        assert_int_equal(r.action, EXEC_STATS);
        assert_int_equal(r.group, gathered[i].group);
        assert_int_equal(test_sink_len(&f->out), 0); /* io/ gathers and answers */
    }
    /* answered in place */
    EXPECT(f, "stats sizes\r\n", "STAT sizes_status disabled\r\nEND\r\n");
    expect_text(f, &ctx, "stats reset\r\n", "RESET\r\n", EXEC_STATS_RESET);
    EXPECT(f, "stats nonsense\r\n", "ERROR\r\n");
    EXPECT(f, "stats detail on\r\n", "ERROR\r\n");
}

static void test_exec_quit_and_shutdown(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    expect_text(f, &ctx, "quit\r\n", "", EXEC_QUIT);
    /* a pipeline: replies before the quit are written, then quit */
    expect_text(f, &ctx, "version\r\nquit\r\n", "VERSION " VERSION "\r\n", EXEC_QUIT);

    EXPECT(f, "shutdown\r\n", "ERROR: shutdown not enabled\r\n");
    EXPECT(f, "shutdown graceful\r\n", "ERROR: shutdown not enabled\r\n");
    ctx.enable_shutdown = true;
    expect_text(f, &ctx, "shutdown\r\n", "", EXEC_SHUTDOWN);
    expect_text(f, &ctx, "shutdown graceful\r\n", "", EXEC_SHUTDOWN);
    expect_text(f, &ctx, "shutdown now\r\n", "CLIENT_ERROR invalid shutdown mode\r\n", EXEC_NEXT);
}

static void test_exec_text_errors(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    EXPECT(f, "bogus\r\n", "ERROR\r\n");
    EXPECT(f, "\r\n", "ERROR\r\n");
    EXPECT(f, "incr k x\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n");
    /* noreply suppresses error replies too, as memcached's out_string */
    EXPECT(f, "incr k x noreply\r\n", "");
    EXPECT(f, "set k 0 abc 1 noreply\r\n", "");
    EXPECT(f, "get a\x01\r\n", "END\r\n"); /* memcached's keys: control bytes are key bytes */
    char longkey[300];
    snprintf(longkey, sizeof(longkey), "get %0251d\r\n", 0);
    expect_text(f, &ctx, longkey, "CLIENT_ERROR bad command line format\r\n", EXEC_NEXT);
    EXPECT(f, "set k 0 0 3\r\nabcde\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
    /* a value too large: the error, its block swallowed, the old value gone */
    EXPECT(f, "set big 0 0 1\r\nx\r\n", "STORED\r\n");
    char big[64];
    snprintf(big, sizeof(big), "set big 0 0 %u\r\n", 2 * FIXTURE_PAGE);
    expect_text(f, &ctx, big, "SERVER_ERROR object too large for cache\r\n", EXEC_NEXT);
    assert_int_equal(f->parser.swallow, 2 * FIXTURE_PAGE + 2); /* the block and its \r\n */
    f->parser.swallow = 0;
    EXPECT(f, "get big\r\n", "END\r\n");

    /* a line too long without a newline closes, saying nothing */
    size_t len = PROTO_LINE_MAX + 10;
    char *line = malloc(len);
    memset(line, 'x', len);
    struct exec_result r = run(f, &ctx, proto_parse, line, len);
    free(line);
    assert_int_equal(r.action, EXEC_CLOSE);
    assert_non_null(r.reason);
    assert_int_equal(test_sink_len(&f->out), 0);
    /* so does an HTTP request */
    expect_text(f, &ctx, "GET / HTTP/1.1\r\n", "", EXEC_CLOSE);
}

/* --- binary ---------------------------------------------------------------------- */

static void bin_store(struct pkt *pk, uint8_t opcode, const char *key, const char *value, uint32_t flags,
                      uint32_t exptime, uint64_t cas)
{
    char extras[8];
    put32(extras, flags);
    put32(extras + 4, exptime);
    request(pk, opcode, extras, 8, key, value, strlen(value), cas);
}

static void bin_arith(struct pkt *pk, uint8_t opcode, const char *key, uint64_t delta, uint64_t initial,
                      uint32_t exptime)
{
    char extras[20];
    put64(extras, delta);
    put64(extras + 8, initial);
    put32(extras + 16, exptime);
    request(pk, opcode, extras, 20, key, NULL, 0, 0);
}

static void bin_ttl(struct pkt *pk, uint8_t opcode, const char *key, uint32_t exptime)
{
    char extras[4];
    put32(extras, exptime);
    request(pk, opcode, extras, 4, key, NULL, 0, 0);
}

/* Executes the packets in pk; decodes every response into r[0..max) and
 * returns how many there are (the output must be whole responses). */
static size_t run_bin(struct fixture *f, const struct exec_ctx *ctx, const struct pkt *pk, struct resp *r,
                      size_t max, struct exec_result *result)
{
    struct exec_result res = run(f, ctx, proto_bin_parse, pk->data, pk->len);
    if (result != NULL)
        *result = res;
    else
        assert_int_equal(res.action, EXEC_NEXT);
    size_t len = test_sink_len(&f->out);
    size_t off = 0, count = 0;
    while (off < len) {
        assert_true(count < max);
        off += resp_decode(f->out.data + off, len - off, &r[count++]);
    }
    assert_int_equal(off, len);
    return count;
}

/* One request, one response of `status` with text `text` (errors). */
static void expect_bin_error(struct fixture *f, const struct exec_ctx *ctx, const struct pkt *pk,
                             uint16_t status, const char *text)
{
    struct resp r[2];
    assert_int_equal(run_bin(f, ctx, pk, r, 2, NULL), 1);
    assert_int_equal(r[0].opcode, (uint8_t)pk->data[1]);
    assert_int_equal(r[0].status, status);
    assert_int_equal(r[0].extlen, 0);
    assert_int_equal(r[0].keylen, 0);
    assert_int_equal(r[0].bodylen, strlen(text));
    assert_memory_equal(r[0].body, text, strlen(text));
}

static void test_exec_bin_get_family(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    struct resp r[4];
    struct pkt get = {0};
    simple(&get, PROTO_BIN_GET, "k");
    expect_bin_error(f, &ctx, &get, PROTO_BIN_KEY_ENOENT, "Not found");

    struct pkt set = {0};
    bin_store(&set, PROTO_BIN_SET, "k", "hello", 0xa1b2c3d4, 0, 0);
    assert_int_equal(run_bin(f, &ctx, &set, r, 4, NULL), 1);
    assert_int_equal(r[0].opcode, PROTO_BIN_SET);
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[0].bodylen, 0);
    uint64_t cas = r[0].cas;
    assert_true(cas != 0);

    assert_int_equal(run_bin(f, &ctx, &get, r, 4, NULL), 1);
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[0].extlen, 4);
    assert_int_equal(r[0].keylen, 0);
    assert_int_equal(r[0].cas, cas);
    assert_int_equal(r[0].bodylen, 9);
    assert_memory_equal(r[0].body, "\xa1\xb2\xc3\xd4hello", 9);

    struct pkt getk = {0};
    simple(&getk, PROTO_BIN_GETK, "k");
    simple(&getk, PROTO_BIN_GETK, "nope"); /* a miss carries the key, no text */
    assert_int_equal(run_bin(f, &ctx, &getk, r, 4, NULL), 2);
    assert_int_equal(r[0].keylen, 1);
    assert_memory_equal(r[0].body, "\xa1\xb2\xc3\xd4khello", 10);
    assert_int_equal(r[1].status, PROTO_BIN_KEY_ENOENT);
    assert_int_equal(r[1].keylen, 4);
    assert_int_equal(r[1].bodylen, 4);
    assert_memory_equal(r[1].body, "nope", 4);

    /* quiet: misses say nothing, hits answer, the NOOP fences */
    struct pkt quiet = {0};
    simple(&quiet, PROTO_BIN_GETQ, "nope");
    simple(&quiet, PROTO_BIN_GETKQ, "nope");
    simple(&quiet, PROTO_BIN_GETQ, "k");
    simple(&quiet, PROTO_BIN_GETKQ, "k");
    simple(&quiet, PROTO_BIN_NOOP, NULL);
    assert_int_equal(run_bin(f, &ctx, &quiet, r, 4, NULL), 3);
    assert_int_equal(r[0].opcode, PROTO_BIN_GETQ);
    assert_int_equal(r[0].bodylen, 9);
    assert_int_equal(r[1].opcode, PROTO_BIN_GETKQ);
    assert_int_equal(r[1].keylen, 1);
    assert_int_equal(r[2].opcode, PROTO_BIN_NOOP);
    assert_int_equal(r[2].status, 0);
    assert_int_equal(r[2].bodylen, 0);
}

static void test_exec_bin_storage(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    struct resp r[4];
    struct pkt p = {0};
    bin_store(&p, PROTO_BIN_REPLACE, "k", "x", 0, 0, 0);
    expect_bin_error(f, &ctx, &p, PROTO_BIN_KEY_ENOENT, "Not found");
    p = (struct pkt){0};
    request(&p, PROTO_BIN_APPEND, NULL, 0, "k", "x", 1, 0);
    expect_bin_error(f, &ctx, &p, PROTO_BIN_NOT_STORED, "Not stored.");
    p = (struct pkt){0};
    bin_store(&p, PROTO_BIN_ADD, "k", "b", 5, 0, 0);
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, NULL), 1);
    assert_int_equal(r[0].status, 0);
    expect_bin_error(f, &ctx, &p, PROTO_BIN_KEY_EEXISTS, "Data exists for key.");
    p = (struct pkt){0};
    bin_store(&p, PROTO_BIN_ADDQ, "k", "b", 5, 0, 0);
    expect_bin_error(f, &ctx, &p, PROTO_BIN_KEY_EEXISTS, "Data exists for key."); /* never quiet */

    /* quiet successes say nothing */
    p = (struct pkt){0};
    request(&p, PROTO_BIN_APPENDQ, NULL, 0, "k", "c", 1, 0);
    request(&p, PROTO_BIN_PREPEND, NULL, 0, "k", "a", 1, 0);
    simple(&p, PROTO_BIN_GET, "k");
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, NULL), 2);
    assert_int_equal(r[0].opcode, PROTO_BIN_PREPEND);
    assert_int_equal(r[0].status, 0);
    assert_memory_equal(r[1].body, "\0\0\0\x05" "abc", 7);

    p = (struct pkt){0};
    bin_store(&p, PROTO_BIN_SETQ, "k", "z", 0, 0, 0);
    bin_store(&p, PROTO_BIN_REPLACEQ, "k", "y", 1, 0, 0);
    simple(&p, PROTO_BIN_GET, "k");
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, NULL), 1);
    assert_memory_equal(r[0].body, "\0\0\0\x01y", 5);
    uint64_t cas = r[0].cas;

    /* a CAS on every store */
    p = (struct pkt){0};
    bin_store(&p, PROTO_BIN_SET, "k", "w", 0, 0, cas + 1);
    expect_bin_error(f, &ctx, &p, PROTO_BIN_KEY_EEXISTS, "Data exists for key.");
    p = (struct pkt){0};
    bin_store(&p, PROTO_BIN_SET, "k", "w", 0, 0, cas);
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, NULL), 1);
    assert_int_equal(r[0].status, 0);
    assert_true(r[0].cas > cas);
}

static void test_exec_bin_delete_arith_touch(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    struct resp r[4];
    struct pkt p = {0};
    simple(&p, PROTO_BIN_DELETE, "k");
    expect_bin_error(f, &ctx, &p, PROTO_BIN_KEY_ENOENT, "Not found");
    struct pkt set = {0};
    bin_store(&set, PROTO_BIN_SETQ, "k", "v", 3, 0, 0);
    assert_int_equal(run_bin(f, &ctx, &set, r, 4, NULL), 0);
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, NULL), 1);
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[0].bodylen, 0);
    p = (struct pkt){0};
    simple(&p, PROTO_BIN_DELETEQ, "k");
    expect_bin_error(f, &ctx, &p, PROTO_BIN_KEY_ENOENT, "Not found");

    /* incr/decr with initial: a miss creates, 0xffffffff refuses to */
    p = (struct pkt){0};
    bin_arith(&p, PROTO_BIN_INCREMENT, "n", 1, 5, UINT32_MAX);
    expect_bin_error(f, &ctx, &p, PROTO_BIN_KEY_ENOENT, "Not found");
    p = (struct pkt){0};
    bin_arith(&p, PROTO_BIN_INCREMENT, "n", 1, 5, 0);
    bin_arith(&p, PROTO_BIN_INCREMENT, "n", 10, 0, 0);
    bin_arith(&p, PROTO_BIN_DECREMENT, "n", 100, 0, 0);
    bin_arith(&p, PROTO_BIN_INCREMENTQ, "n", 7, 0, 0);
    bin_arith(&p, PROTO_BIN_DECREMENTQ, "q", 1, 9, 0);
    simple(&p, PROTO_BIN_GET, "n");
    simple(&p, PROTO_BIN_GET, "q");
    struct resp a[5];
    assert_int_equal(run_bin(f, &ctx, &p, a, 5, NULL), 5); /* the quiet ones say nothing */
    assert_int_equal(be((const unsigned char *)a[0].body, 8), 5);
    assert_int_equal(be((const unsigned char *)a[1].body, 8), 15);
    assert_int_equal(be((const unsigned char *)a[2].body, 8), 0);
    assert_memory_equal(a[3].body, "\0\0\0\0" "7", 5);
    assert_memory_equal(a[4].body, "\0\0\0\0" "9", 5);
    p = (struct pkt){0};
    bin_store(&p, PROTO_BIN_SETQ, "t", "text", 0, 0, 0);
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, NULL), 0);
    p = (struct pkt){0};
    bin_arith(&p, PROTO_BIN_INCREMENTQ, "t", 1, 0, 0);
    expect_bin_error(f, &ctx, &p, PROTO_BIN_DELTA_BADVAL, "Non-numeric server-side value for incr or decr");

    /* touch and gat */
    p = (struct pkt){0};
    bin_ttl(&p, PROTO_BIN_TOUCH, "none", 10);
    expect_bin_error(f, &ctx, &p, PROTO_BIN_KEY_ENOENT, "Not found");
    p = (struct pkt){0};
    bin_store(&p, PROTO_BIN_SETQ, "g", "val", 3, 10, 0);
    bin_ttl(&p, PROTO_BIN_TOUCH, "g", 10);
    bin_ttl(&p, PROTO_BIN_GATQ, "none", 10);
    bin_ttl(&p, PROTO_BIN_GATK, "g", 100);
    bin_ttl(&p, PROTO_BIN_GAT, "g", 100);
    bin_ttl(&p, PROTO_BIN_GATKQ, "g", 100);
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, NULL), 4);
    assert_int_equal(r[0].opcode, PROTO_BIN_TOUCH);
    assert_int_equal(r[0].bodylen, 4);
    assert_memory_equal(r[0].body, "\0\0\0\x03", 4);
    assert_int_equal(r[1].opcode, PROTO_BIN_GATK);
    assert_memory_equal(r[1].body, "\0\0\0\x03gval", 8);
    assert_int_equal(r[2].opcode, PROTO_BIN_GAT);
    assert_memory_equal(r[2].body, "\0\0\0\x03val", 7);
    assert_int_equal(r[3].opcode, PROTO_BIN_GATKQ);
    fixture_advance(f, 50); /* the gat moved expiry to +100 */
    p = (struct pkt){0};
    simple(&p, PROTO_BIN_GET, "g");
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, NULL), 1);
    assert_int_equal(r[0].status, 0);
    fixture_advance(f, 51);
    expect_bin_error(f, &ctx, &p, PROTO_BIN_KEY_ENOENT, "Not found");
}

static void test_exec_bin_server_commands(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    struct resp r[4];
    struct exec_result res;
    struct pkt p = {0};
    simple(&p, PROTO_BIN_NOOP, NULL);
    simple(&p, PROTO_BIN_VERSION, NULL);
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, NULL), 2);
    assert_int_equal(r[0].opcode, PROTO_BIN_NOOP);
    assert_int_equal(r[0].bodylen, 0);
    assert_int_equal(r[1].opcode, PROTO_BIN_VERSION);
    assert_int_equal(r[1].status, 0);
    assert_int_equal(r[1].bodylen, LEN(VERSION));
    assert_memory_equal(r[1].body, VERSION, LEN(VERSION));

    /* flush: its reply, and the action with the client's delay */
    p = (struct pkt){0};
    simple(&p, PROTO_BIN_FLUSH, NULL);
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, &res), 1);
    assert_int_equal(res.action, EXEC_FLUSH_ALL);
    assert_int_equal(res.delay, 0);
    assert_int_equal(r[0].opcode, PROTO_BIN_FLUSH);
    assert_int_equal(r[0].status, 0);
    p = (struct pkt){0};
    bin_ttl(&p, PROTO_BIN_FLUSHQ, NULL, 30);
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, &res), 0);
    assert_int_equal(res.action, EXEC_FLUSH_ALL);
    assert_int_equal(res.delay, 30);

    /* quit: answered, then the connection closes; quitq closes silently */
    p = (struct pkt){0};
    simple(&p, PROTO_BIN_QUIT, NULL);
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, &res), 1);
    assert_int_equal(res.action, EXEC_QUIT);
    assert_int_equal(r[0].opcode, PROTO_BIN_QUIT);
    assert_int_equal(r[0].status, 0);
    p = (struct pkt){0};
    simple(&p, PROTO_BIN_QUITQ, NULL);
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, &res), 0);
    assert_int_equal(res.action, EXEC_QUIT);
}

static void test_exec_bin_stat_groups(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    struct resp r[4];
    struct exec_result res;
    static const struct {
        const char *key;
        enum exec_stats group;
    } gathered[] = {
        {NULL, EXEC_STATS_GENERAL},
        {"settings", EXEC_STATS_SETTINGS},
        {"items", EXEC_STATS_ITEMS},
        {"slabs", EXEC_STATS_SLABS},
    };
    for (size_t i = 0; i < sizeof(gathered) / sizeof(gathered[0]); i++) {
        struct pkt p = {0};
        simple(&p, PROTO_BIN_STAT, gathered[i].key);
        assert_int_equal(run_bin(f, &ctx, &p, r, 4, &res), 0);
        assert_int_equal(res.action, EXEC_STATS);
        assert_int_equal(res.group, gathered[i].group);
    }
    /* reset: answered with the empty packet that ends a stat reply */
    struct pkt p = {0};
    simple(&p, PROTO_BIN_STAT, "reset");
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, &res), 1);
    assert_int_equal(res.action, EXEC_STATS_RESET);
    assert_int_equal(r[0].opcode, PROTO_BIN_STAT);
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[0].keylen, 0);
    assert_int_equal(r[0].bodylen, 0);
    /* sizes: answered in place, as the text group */
    p = (struct pkt){0};
    simple(&p, PROTO_BIN_STAT, "sizes");
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, NULL), 2);
    assert_int_equal(r[0].keylen, LEN("sizes_status"));
    assert_memory_equal(r[0].body, "sizes_statusdisabled", LEN("sizes_statusdisabled"));
    assert_int_equal(r[1].bodylen, 0);
    /* text-only groups and unknown ones: Not found */
    static const char *const missing[] = {"conns", "shards", "detail", "bogus"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        p = (struct pkt){0};
        simple(&p, PROTO_BIN_STAT, missing[i]);
        expect_bin_error(f, &ctx, &p, PROTO_BIN_KEY_ENOENT, "Not found");
    }
}

static void test_exec_bin_protocol_errors(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    struct resp r[4];
    struct exec_result res;
    /* an unknown opcode: answered, the connection goes on */
    struct pkt p = {0};
    simple(&p, PROTO_BIN_VERBOSITY, NULL);
    expect_bin_error(f, &ctx, &p, PROTO_BIN_UNKNOWN_COMMAND, "Unknown command");
    /* invalid arguments (a get with extras): answered, then close */
    p = (struct pkt){0};
    request(&p, PROTO_BIN_GET, "\0\0\0\0", 4, "k", NULL, 0, 0);
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, &res), 1);
    assert_int_equal(res.action, EXEC_QUIT);
    assert_int_equal(r[0].status, PROTO_BIN_EINVAL);
    assert_memory_equal(r[0].body, "Invalid arguments", LEN("Invalid arguments"));
    /* a bad magic byte: close at once, nothing said */
    p = (struct pkt){0};
    header(&p, PROTO_BIN_RES_MAGIC, PROTO_BIN_GET, 0, 0, 0, 0);
    assert_int_equal(run_bin(f, &ctx, &p, r, 4, &res), 0);
    assert_int_equal(res.action, EXEC_QUIT);
}

/* --- out of memory ------------------------------------------------------------------ */

static void test_exec_out_of_memory_sink(void **state)
{
    struct fixture *f = *state;
    struct exec_ctx ctx = local_ctx(f);
    EXPECT(f, "set k 0 0 100\r\n"
              "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
              "\r\n",
           "STORED\r\n");
    static const char *const requests[] = {"get k\r\n", "gets k k k\r\n", "version\r\n", "stats sizes\r\n",
                                           "mg k v\r\n"};
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
        test_sink_clear(&f->out);
        f->out.limit = 8;
        struct exec_result r = run(f, &ctx, proto_parse, requests[i], strlen(requests[i]));
        f->out.limit = 0;
        assert_int_equal(r.action, EXEC_NOMEM);
        assert_non_null(r.reason);
    }
    struct pkt p = {0};
    simple(&p, PROTO_BIN_GET, "k");
    test_sink_clear(&f->out);
    f->out.limit = 30;
    struct exec_result r = exec_bytes(&ctx, &f->parser, proto_bin_parse, p.data, p.len, &f->out.sink);
    f->out.limit = 0;
    assert_int_equal(r.action, EXEC_NOMEM);

    /* the reply io/ sends instead, in each protocol */
    struct proto_req text_req;
    assert_int_equal(proto_parse(&f->parser, "get k\r\n", 7, &text_req, NULL), 7);
    test_sink_clear(&f->out);
    assert_true(exec_reply_nomem(&text_req, &f->out.sink));
    char *got = test_sink_text(&f->out);
    assert_string_equal(got, "SERVER_ERROR out of memory writing get response\r\n");
    free(got);
    struct proto_req bin_req;
    assert_int_equal(proto_bin_parse(&f->parser, p.data, p.len, &bin_req, NULL), p.len);
    test_sink_clear(&f->out);
    assert_true(exec_reply_nomem(&bin_req, &f->out.sink));
    struct resp resp;
    assert_int_equal(resp_decode(f->out.data, test_sink_len(&f->out), &resp), test_sink_len(&f->out));
    assert_int_equal(resp.opcode, PROTO_BIN_GET);
    assert_int_equal(resp.status, PROTO_BIN_ENOMEM);
}

/* --- across shards, through a fake router --------------------------------------------- */

#define SHARDS 2
#define SEGMENTS_MAX 512

/* A forwarded key: the request as the forwarding contract copies it, and
 * the placeholder its reply fills. */
struct forwarded {
    struct proto_req req; /* key, keys, value and opaque point into bytes */
    char *bytes;
    uint64_t hash;
    unsigned owner;
    struct test_sink reply;
};

/* The connection's output, in order: bytes written here, or a placeholder. */
struct segment {
    char *bytes; /* NULL: a placeholder */
    size_t len;
    struct forwarded *fwd;
};

struct router {
    struct fixture single; /* the reference: one store, every key local */
    struct fixture shard[SHARDS];
    struct exec_ctx ctx[SHARDS];
    struct ring *ring;
    struct test_sink *conn_out; /* the connection's sink, on shard 0 */
    struct segment seg[SEGMENTS_MAX];
    size_t nseg;
    unsigned forwards;  /* placeholders reserved */
    unsigned noreplies; /* forwarded under noreply (their places stay empty) */
    bool fail;          /* forward() runs out of memory */
};

/* Moves what the connection wrote since the last placeholder into a
 * segment of its own. */
static void router_cut(struct router *rt)
{
    size_t len = test_sink_len(rt->conn_out);
    if (len == 0)
        return;
    assert_true(rt->nseg < SEGMENTS_MAX);
    rt->seg[rt->nseg++] = (struct segment){.bytes = test_sink_text(rt->conn_out), .len = len};
    test_sink_clear(rt->conn_out);
}

static bool fake_forward(void *state, unsigned owner, const struct proto_req *req, const char *key,
                         uint32_t nkey, uint64_t hash)
{
    struct router *rt = state;
    if (rt->fail)
        return false;
    /* the contract: a key another shard owns, hashed once */
    assert_true(owner < SHARDS);
    assert_int_not_equal(owner, 0);
    assert_int_equal(hash, hash_key(key, nkey));
    assert_int_equal(ring_owner(rt->ring, hash), owner);

    /* the forwarding contract (proto.h): a byte copy, then key, keys,
     * value and opaque re-pointed into the copy, args cleared */
    struct forwarded *fwd = calloc(1, sizeof(*fwd));
    uint32_t nvalue = req->value != NULL ? req->nbytes : 0;
    fwd->bytes = malloc((size_t)nkey + nvalue + req->nopaque + 1);
    memcpy(fwd->bytes, key, nkey);
    if (nvalue > 0)
        memcpy(fwd->bytes + nkey, req->value, nvalue);
    if (req->nopaque > 0)
        memcpy(fwd->bytes + nkey + nvalue, req->opaque, req->nopaque);
    fwd->req = *req;
    fwd->req.key = fwd->req.keys = fwd->bytes;
    fwd->req.nkey = fwd->req.keys_len = nkey;
    fwd->req.nkeys = 1;
    fwd->req.value = req->value != NULL ? fwd->bytes + nkey : NULL;
    fwd->req.opaque = req->nopaque > 0 ? fwd->bytes + nkey + nvalue : NULL;
    fwd->req.args = NULL;
    fwd->req.nargs = 0;
    fwd->hash = hash;
    fwd->owner = owner;
    test_sink_init(&fwd->reply, 16);

    /* under noreply too: its owner fills the place with nothing, and what
     * the connection answers next waits for it (exec.h) */
    if (req->noreply)
        rt->noreplies++;
    router_cut(rt);
    assert_true(rt->nseg < SEGMENTS_MAX);
    rt->seg[rt->nseg++] = (struct segment){.fwd = fwd};
    rt->forwards++;
    return true;
}

static int router_setup(void **state)
{
    struct router *rt = calloc(1, sizeof(*rt));
    if (rt == NULL || ring_create(SHARDS, RING_VNODES_DEFAULT, &rt->ring) != MC_OK)
        return -1;
    for (unsigned i = 0; i < SHARDS; i++) {
        fixture_init(&rt->shard[i], fixture_cfg(FIXTURE_ARENA));
        rt->ctx[i] = (struct exec_ctx){.env = &rt->shard[i].env, .ring = rt->ring, .self = i,
                                       .forward = fake_forward, .router = rt, .version = VERSION,
                                       .verbosity_max = VERBOSITY_MAX};
    }
    fixture_init(&rt->single, fixture_cfg(FIXTURE_ARENA));
    rt->conn_out = &rt->shard[0].out;
    *state = rt;
    return 0;
}

static int router_teardown(void **state)
{
    struct router *rt = *state;
    for (unsigned i = 0; i < SHARDS; i++)
        fixture_deinit(&rt->shard[i]);
    fixture_deinit(&rt->single);
    ring_destroy(&rt->ring);
    free(rt);
    return 0;
}

/*
 * Executes `buf` on shard 0's connection; then the owner executes what was
 * forwarded to it, in the order it was sent (a channel is FIFO), filling
 * placeholders that lie before bytes the connection wrote later (the END,
 * an MN, a NOOP, later local keys); then the output is assembled in
 * request order. Returns it (the caller frees), its length in *out_len.
 */
static char *router_run(struct router *rt, split_parse_fn parse, const char *buf, size_t len, size_t *out_len)
{
    rt->nseg = 0;
    test_sink_clear(rt->conn_out);
    struct exec_result r = exec_bytes(&rt->ctx[0], &rt->shard[0].parser, parse, buf, len, &rt->conn_out->sink);
    assert_int_equal(r.action, EXEC_NEXT);
    router_cut(rt);
    for (size_t i = 0; i < rt->nseg; i++) {
        struct forwarded *fwd = rt->seg[i].fwd;
        if (fwd == NULL)
            continue;
        assert_true(exec_forwarded(&rt->ctx[fwd->owner], &fwd->req, fwd->req.key, fwd->req.nkey, fwd->hash,
                                   &fwd->reply.sink));
    }
    size_t total = 0;
    char *out = malloc(1);
    for (size_t i = 0; i < rt->nseg; i++) {
        struct segment *s = &rt->seg[i];
        char *bytes = s->bytes;
        size_t n = s->len;
        if (s->fwd != NULL) {
            n = test_sink_len(&s->fwd->reply);
            bytes = s->fwd->reply.data;
        }
        out = realloc(out, total + n + 1);
        memcpy(out + total, bytes, n);
        total += n;
        if (s->fwd != NULL) {
            test_sink_fini(&s->fwd->reply);
            free(s->fwd->bytes);
            free(s->fwd);
        } else {
            free(s->bytes);
        }
    }
    out[total] = '\0';
    *out_len = total;
    return out;
}

/* The same bytes on one store (a fixture of its own): the reference. */
static char *single_run(struct fixture *single, split_parse_fn parse, const char *buf, size_t len,
                        size_t *out_len)
{
    struct exec_ctx ctx = local_ctx(single);
    struct exec_result r = run(single, &ctx, parse, buf, len);
    assert_int_equal(r.action, EXEC_NEXT);
    *out_len = test_sink_len(&single->out);
    char *out = malloc(*out_len + 1);
    memcpy(out, single->out.data, *out_len);
    out[*out_len] = '\0';
    return out;
}

/* Binary replies carry CAS values, which each store numbers its own way. */
static void zero_cas(char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        struct resp r;
        size_t n = resp_decode(buf + off, len - off, &r);
        memset(buf + off + 16, 0, 8);
        off += n;
    }
}

/* Runs buf both ways and asserts the outputs are the same bytes, and that
 * the sharded run did forward keys (else it proves nothing). */
static void expect_same(struct router *rt, split_parse_fn parse, const char *buf, size_t len)
{
    size_t want_len, got_len;
    char *want = single_run(&rt->single, parse, buf, len, &want_len);
    rt->forwards = 0;
    char *got = router_run(rt, parse, buf, len, &got_len);
    assert_true(rt->forwards > 0);
    if (parse == proto_bin_parse) {
        zero_cas(want, want_len);
        zero_cas(got, got_len);
    }
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    free(want);
    free(got);
}

#define KEYS 24

/* Appends text to a growing buffer. */
struct buf {
    char data[16384];
    size_t len;
};

static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, sizeof(b->data) - b->len, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(b->data) - b->len);
    b->len += (size_t)n;
}

/* Both shards must own some of the keys, or the test proves nothing. */
static void assert_keys_spread(struct router *rt)
{
    unsigned owned[SHARDS] = {0};
    for (unsigned i = 0; i < KEYS; i++) {
        char key[16];
        snprintf(key, sizeof(key), "key%u", i);
        owned[ring_owner(rt->ring, hash_key(key, strlen(key)))]++;
    }
    for (unsigned s = 0; s < SHARDS; s++)
        assert_true(owned[s] > 0);
}

static void test_exec_key_routes_by_owner(void **state)
{
    struct router *rt = *state;
    assert_keys_spread(rt);
    struct proto_req req;
    assert_int_equal(proto_parse(&rt->shard[0].parser, "get x\r\n", 7, &req, NULL), 7);
    for (unsigned i = 0; i < KEYS; i++) {
        char key[16];
        snprintf(key, sizeof(key), "key%u", i);
        unsigned owner = ring_owner(rt->ring, hash_key(key, strlen(key)));
        rt->nseg = 0;
        rt->forwards = 0;
        test_sink_clear(rt->conn_out);
        assert_true(exec_key(&rt->ctx[0], &req, key, (uint32_t)strlen(key), &rt->conn_out->sink));
        /* a miss writes nothing here either way; the router saw the key
         * exactly when shard 1 owns it */
        assert_int_equal(rt->forwards, owner == 1 ? 1 : 0);
        assert_int_equal(test_sink_len(rt->conn_out), 0);
        if (rt->nseg > 0) {
            test_sink_fini(&rt->seg[0].fwd->reply);
            free(rt->seg[0].fwd->bytes);
            free(rt->seg[0].fwd);
        }
    }
    /* a router out of memory is the connection's EXEC_NOMEM */
    rt->fail = true;
    struct buf b = {0};
    put(&b, "get");
    for (unsigned i = 0; i < KEYS; i++)
        put(&b, " key%u", i);
    put(&b, "\r\n");
    struct exec_result r = exec_bytes(&rt->ctx[0], &rt->shard[0].parser, proto_parse, b.data, b.len,
                                      &rt->conn_out->sink);
    assert_int_equal(r.action, EXEC_NOMEM);
    rt->fail = false;
}

static void test_exec_cross_shard_text_pipeline(void **state)
{
    struct router *rt = *state;
    struct buf b = {0};
    for (unsigned i = 0; i < KEYS; i++)
        put(&b, "set key%u %u 0 %u\r\nvalue-%u\r\n", i, i, (unsigned)strlen("value-") + (i >= 10 ? 2 : 1), i);
    put(&b, "set quiet 0 0 1 noreply\r\nq\r\n");
    expect_same(rt, proto_parse, b.data, b.len);
    /* a noreply key another shard owns is forwarded too, its place left empty */
    assert_int_equal(rt->noreplies, ring_owner(rt->ring, hash_key("quiet", 5)) == 1 ? 1 : 0);

    b.len = 0;
    put(&b, "get");
    for (unsigned i = 0; i < KEYS; i++)
        put(&b, " key%u missing%u", i, i);
    put(&b, "\r\nget quiet\r\ngat 100 key1 key2 key3 nope\r\ndelete key5\r\nincr key6 1\r\n");
    put(&b, "touch key7 100\r\nappend key8 0 0 1\r\n!\r\nget key5 key8 key9\r\nversion\r\nget\r\n");
    expect_same(rt, proto_parse, b.data, b.len);
}

static void test_exec_cross_shard_meta_pipeline(void **state)
{
    struct router *rt = *state;
    struct buf b = {0};
    for (unsigned i = 0; i < KEYS; i++)
        put(&b, "ms key%u 2 F%u T0 q\r\nv%u\r\n", i, i, i % 10);
    put(&b, "mn\r\n");
    expect_same(rt, proto_parse, b.data, b.len);

    /* quiet mode fenced by mn: hits answer, misses do not, MN comes last */
    b.len = 0;
    for (unsigned i = 0; i < KEYS; i++)
        put(&b, "mg key%u v k f O%u q\r\nmg nokey%u v q\r\n", i, i, i);
    put(&b, "mg a2V5MQ== b v k\r\nma key1 q\r\nmd key2 q\r\nmd key2 q\r\nmn\r\n");
    expect_same(rt, proto_parse, b.data, b.len);
}

static void test_exec_cross_shard_binary_pipeline(void **state)
{
    struct router *rt = *state;
    struct pkt p = {0};
    char key[16], value[16];
    for (unsigned i = 0; i < KEYS; i++) {
        snprintf(key, sizeof(key), "key%u", i);
        snprintf(value, sizeof(value), "v%u", i);
        bin_store(&p, i % 2 ? PROTO_BIN_SETQ : PROTO_BIN_SET, key, value, i, 0, 0);
    }
    simple(&p, PROTO_BIN_NOOP, NULL);
    expect_same(rt, proto_bin_parse, p.data, p.len);

    p = (struct pkt){0};
    for (unsigned i = 0; i < KEYS; i++) {
        snprintf(key, sizeof(key), "key%u", i);
        simple(&p, PROTO_BIN_GETKQ, key);
        snprintf(key, sizeof(key), "nokey%u", i);
        simple(&p, i % 3 ? PROTO_BIN_GETKQ : PROTO_BIN_GETK, key);
    }
    simple(&p, PROTO_BIN_NOOP, NULL);
    expect_same(rt, proto_bin_parse, p.data, p.len);

    p = (struct pkt){0};
    simple(&p, PROTO_BIN_GET, "key3");
    simple(&p, PROTO_BIN_DELETE, "key4");
    bin_arith(&p, PROTO_BIN_INCREMENT, "counter", 2, 40, 0);
    bin_ttl(&p, PROTO_BIN_GATK, "key5", 100);
    simple(&p, PROTO_BIN_GETK, "key4");
    simple(&p, PROTO_BIN_VERSION, NULL);
    simple(&p, PROTO_BIN_NOOP, NULL);
    expect_same(rt, proto_bin_parse, p.data, p.len);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)
#define R(name) cmocka_unit_test_setup_teardown(name, router_setup, router_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_exec_text_get_multi_key_hits_misses_end),
        T(test_exec_text_storage_commands),
        T(test_exec_text_storage_noreply),
        T(test_exec_text_delete_arith_touch),
        T(test_exec_meta_commands),
        T(test_exec_version_and_verbosity),
        T(test_exec_flush_all),
        T(test_exec_stats_groups),
        T(test_exec_quit_and_shutdown),
        T(test_exec_text_errors),
        T(test_exec_bin_get_family),
        T(test_exec_bin_storage),
        T(test_exec_bin_delete_arith_touch),
        T(test_exec_bin_server_commands),
        T(test_exec_bin_stat_groups),
        T(test_exec_bin_protocol_errors),
        T(test_exec_out_of_memory_sink),
        R(test_exec_key_routes_by_owner),
        R(test_exec_cross_shard_text_pipeline),
        R(test_exec_cross_shard_meta_pipeline),
        R(test_exec_cross_shard_binary_pipeline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
