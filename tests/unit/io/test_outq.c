/*
 * test_outq.c: a connection's output queue without a socket: replies
 * written through its sink come out of outq_iov() in order, across
 * segments; a placeholder stops the iovecs until it is filled, whatever
 * order placeholders are filled in; partial sends resume where the kernel
 * stopped; sent segments go back to the shard's cache and are reused; and
 * bytes referenced without a copy (zero-copy values) are sent in place and
 * released once, only after they were sent or dropped.
 *
 * "Sending" here is what io/conn.c does with a completion: take the
 * iovecs, keep `n` bytes of them, report outq_sent(n).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <cmocka.h>

#include "outq.h"

#define IOV_MAX_TEST 64

struct fixture {
    struct outq_cache cache;
    struct outq q;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    outq_init(&f->q, &f->cache);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    outq_clear(&f->q);
    outq_cache_fini(&f->cache);
    free(f);
    return 0;
}

static void put(struct outq *q, const char *text)
{
    assert_true(sink_put(&q->sink, text, strlen(text)));
}

/* What the queue would send now (outq_iov), concatenated; *niov is the
 * number of iovecs (may be NULL). The caller frees. */
static char *peek(struct outq *q, unsigned max, unsigned *niov, size_t *len)
{
    struct iovec iov[IOV_MAX_TEST];
    assert_true(max <= IOV_MAX_TEST);
    unsigned n = outq_iov(q, iov, max);
    assert_true(n <= max);
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += iov[i].iov_len;
    char *out = malloc(total + 1);
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        assert_true(iov[i].iov_len > 0); /* no empty entries */
        memcpy(out + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    out[total] = '\0';
    if (niov != NULL)
        *niov = n;
    if (len != NULL)
        *len = total;
    return out;
}

/* Sends everything that can be sent now, `chunk` bytes per "completion"
 * (0: all of it at once); returns it, concatenated. The caller frees. */
static char *drain(struct outq *q, size_t chunk)
{
    char *all = malloc(1);
    size_t total = 0;
    for (;;) {
        size_t len;
        char *now = peek(q, IOV_MAX_TEST, NULL, &len);
        if (len == 0) {
            free(now);
            break;
        }
        size_t n = chunk == 0 || chunk > len ? len : chunk;
        all = realloc(all, total + n + 1);
        memcpy(all + total, now, n);
        total += n;
        free(now);
        outq_sent(q, n);
    }
    all[total] = '\0';
    return all;
}

static void expect_drain(struct outq *q, size_t chunk, const char *want)
{
    char *got = drain(q, chunk);
    assert_string_equal(got, want);
    free(got);
}

/* --- segments ---------------------------------------------------------------- */

static void test_outq_empty(void **state)
{
    struct fixture *f = *state;
    assert_false(outq_ready(&f->q));
    unsigned n;
    size_t len;
    free(peek(&f->q, IOV_MAX_TEST, &n, &len));
    assert_int_equal(n, 0);
    assert_int_equal(len, 0);
}

static void test_outq_segments_keep_order(void **state)
{
    struct fixture *f = *state;
    /* 40 KiB in 1000-byte replies: more than two segments */
    size_t total = 40 * 1000;
    char *want = malloc(total + 1);
    char reply[1001];
    for (unsigned i = 0; i < 40; i++) {
        memset(reply, 'a' + (char)(i % 26), 1000);
        reply[1000] = '\0';
        memcpy(want + i * 1000, reply, 1000);
        put(&f->q, reply);
    }
    want[total] = '\0';
    outq_sync(&f->q);
    assert_int_equal(f->q.bytes, total);
    assert_true(outq_ready(&f->q));
    unsigned n;
    size_t len;
    char *now = peek(&f->q, IOV_MAX_TEST, &n, &len);
    assert_int_equal(len, total);
    assert_true(n >= total / OUTQ_SEG_SIZE + 1);
    assert_memory_equal(now, want, total);
    free(now);
    /* max entries is honoured: one iovec is the head segment */
    now = peek(&f->q, 1, &n, &len);
    assert_int_equal(n, 1);
    assert_true(len <= OUTQ_SEG_SIZE);
    assert_memory_equal(now, want, len);
    free(now);
    expect_drain(&f->q, 0, want);
    assert_int_equal(f->q.bytes, 0);
    assert_false(outq_ready(&f->q));
    free(want);
}

static void test_outq_large_reply_is_contiguous(void **state)
{
    struct fixture *f = *state;
    put(&f->q, "VALUE k 0 50000\r\n");
    size_t big = 50000;
    char *p = sink_reserve(&f->q.sink, big); /* one reservation: one region */
    assert_non_null(p);
    for (size_t i = 0; i < big; i++)
        p[i] = (char)('0' + i % 10);
    sink_commit(&f->q.sink, big);
    put(&f->q, "\r\nEND\r\n");
    outq_sync(&f->q);
    assert_int_equal(f->q.bytes, 17 + big + 7);
    char *got = drain(&f->q, 0);
    assert_memory_equal(got, "VALUE k 0 50000\r\n0123456789", 27);
    assert_memory_equal(got + 17 + big, "\r\nEND\r\n", 7);
    free(got);
}

/* --- placeholders -------------------------------------------------------------- */

static void test_outq_placeholders_filled_out_of_order(void **state)
{
    struct fixture *f = *state;
    put(&f->q, "A");
    struct oseg *p1 = outq_reserve(&f->q);
    assert_non_null(p1);
    put(&f->q, "B");
    struct oseg *p2 = outq_reserve(&f->q);
    assert_non_null(p2);
    put(&f->q, "C");
    assert_int_equal(f->q.npending, 2);

    /* sending stops at the first pending placeholder */
    expect_drain(&f->q, 0, "A");
    assert_false(outq_ready(&f->q));
    /* the later placeholder first: still blocked behind the earlier one */
    assert_true(outq_fill(&f->q, p2, "two", 3));
    assert_int_equal(f->q.npending, 1);
    assert_false(outq_ready(&f->q));
    expect_drain(&f->q, 0, "");
    assert_true(outq_fill(&f->q, p1, "one", 3));
    assert_int_equal(f->q.npending, 0);
    assert_true(outq_ready(&f->q));
    expect_drain(&f->q, 0, "oneBtwoC");
    assert_int_equal(f->q.bytes, 0);
}

static void test_outq_placeholder_empty_and_large_fills(void **state)
{
    struct fixture *f = *state;
    struct oseg *empty = outq_reserve(&f->q);
    put(&f->q, "x");
    struct oseg *large = outq_reserve(&f->q);
    put(&f->q, "y");
    /* nothing to say (a quiet miss): the placeholder just goes away */
    assert_true(outq_fill(&f->q, empty, NULL, 0));
    expect_drain(&f->q, 0, "x");
    /* a reply larger than a placeholder's own room */
    size_t n = 3 * OUTQ_SMALL_SIZE + 7;
    char *reply = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        reply[i] = (char)('a' + i % 26);
    reply[n] = '\0';
    assert_true(outq_fill(&f->q, large, reply, n));
    outq_sync(&f->q);
    assert_int_equal(f->q.bytes, n + 1);
    char *got = drain(&f->q, 100);
    assert_int_equal(strlen(got), n + 1);
    assert_memory_equal(got, reply, n);
    assert_int_equal(got[n], 'y');
    free(got);
    free(reply);
}

/* Issue 17: a batch of replies split by filled placeholders leaves as one
 * iovec, in order, partly sent head included, and the sink writes on after
 * it; a REF segment or a pending placeholder leaves the queue as it is. */
static void test_outq_compact_one_iovec_in_order(void **state)
{
    struct fixture *f = *state;
    put(&f->q, "head");
    expect_drain(&f->q, 0, "head");
    put(&f->q, "A");
    struct oseg *p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = outq_reserve(&f->q);
        assert_non_null(p[i]);
        put(&f->q, i % 2 ? "b" : "c");
    }
    unsigned niov;
    outq_compact(&f->q); /* pending: nothing moves */
    for (int i = 3; i >= 0; i--)
        assert_true(outq_fill(&f->q, p[i], "xy", 2));
    free(peek(&f->q, IOV_MAX_TEST, &niov, NULL));
    assert_true(niov > 1);
    outq_compact(&f->q);
    char *got = peek(&f->q, IOV_MAX_TEST, &niov, NULL);
    assert_int_equal(niov, 1);
    assert_string_equal(got, "Axycxybxycxyb");
    free(got);
    outq_sync(&f->q);
    assert_int_equal(f->q.bytes, 13);
    /* a partial send, then more writes after the compacted bytes */
    outq_sent(&f->q, 3);
    put(&f->q, "Z");
    expect_drain(&f->q, 0, "cxybxycxybZ");
    assert_int_equal(f->q.bytes, 0);
}

/* Issue 17: the write after a placeholder continues in the same buffer,
 * right after the bytes before it; the buffer outlives its own segment's
 * reclaim while a continuation still uses it (ASan reports a use after
 * free or a leak otherwise), and a spare nobody took is given back. */
static void test_outq_continuation_shares_the_buffer(void **state)
{
    struct fixture *f = *state;
    put(&f->q, "AAAA");
    struct oseg *p1 = outq_reserve(&f->q);
    put(&f->q, "BB");
    struct oseg *p2 = outq_reserve(&f->q);
    put(&f->q, "C");
    struct iovec iov[4];
    assert_int_equal(outq_iov(&f->q, iov, 4), 1);
    const char *a = iov[0].iov_base;
    /* the base is sent and reclaimed; its buffer is still borrowed */
    outq_sent(&f->q, 4);
    assert_true(outq_fill(&f->q, p1, "1", 1));
    assert_int_equal(outq_iov(&f->q, iov, 4), 2);
    assert_ptr_equal(iov[1].iov_base, a + 4); /* BB right after AAAA */
    /* writes go on into the buffer; a later placeholder is left unfilled */
    put(&f->q, "D");
    expect_drain(&f->q, 0, "1BB");
    assert_true(outq_fill(&f->q, p2, "2", 1));
    struct oseg *p3 = outq_reserve(&f->q); /* its spare is never taken */
    assert_non_null(p3);
    expect_drain(&f->q, 0, "2CD");
    assert_true(outq_fill(&f->q, p3, "3", 1));
    expect_drain(&f->q, 0, "3");
    put(&f->q, "E");
    (void)outq_reserve(&f->q); /* dropped pending, spare and all, by teardown */
    put(&f->q, "F");
}

static void noop_release(void *owner, const void *data, size_t len)
{
    (void)owner;
    (void)data;
    (void)len;
}

static void test_outq_compact_leaves_ref_segments(void **state)
{
    struct fixture *f = *state;
    static const char value[] = "VALUE-BYTES";
    for (int i = 0; i < 3; i++) {
        struct oseg *ph = outq_reserve(&f->q);
        assert_true(outq_fill(&f->q, ph, "r", 1));
        put(&f->q, "l");
    }
    assert_true(outq_ref(&f->q, value, 5, noop_release, NULL));
    put(&f->q, "!");
    unsigned before, after;
    free(peek(&f->q, IOV_MAX_TEST, &before, NULL));
    outq_compact(&f->q);
    free(peek(&f->q, IOV_MAX_TEST, &after, NULL));
    assert_int_equal(before, after);
    expect_drain(&f->q, 0, "rlrlrlVALUE!");
}

/* --- partial sends ---------------------------------------------------------------- */

static void test_outq_partial_sends_resume(void **state)
{
    struct fixture *f = *state;
    put(&f->q, "0123456789");
    size_t len;
    char *now = peek(&f->q, IOV_MAX_TEST, NULL, &len); /* offered to the kernel */
    assert_string_equal(now, "0123456789");
    free(now);
    outq_sent(&f->q, 3); /* which took 3 bytes */
    assert_int_equal(f->q.bytes, 7);
    now = peek(&f->q, IOV_MAX_TEST, NULL, &len);
    assert_string_equal(now, "3456789");
    free(now);
    /* writing after a partial send appends behind it */
    put(&f->q, "abc");
    expect_drain(&f->q, 2, "3456789abc");

    /* a send that ends inside the second of two segments */
    size_t total = OUTQ_SEG_SIZE + 500;
    char *want = malloc(total + 1);
    for (size_t i = 0; i < total; i++)
        want[i] = (char)('A' + i % 23);
    want[total] = '\0';
    for (size_t off = 0; off < total; off += 100) {
        size_t n = total - off < 100 ? total - off : 100;
        assert_true(sink_put(&f->q.sink, want + off, n));
    }
    char *got = drain(&f->q, OUTQ_SEG_SIZE + 5);
    assert_string_equal(got, want);
    free(got);
    free(want);
    assert_int_equal(f->q.bytes, 0);
}

/* --- reclaim ------------------------------------------------------------------------ */

static void test_outq_sent_segments_return_to_cache(void **state)
{
    struct fixture *f = *state;
    char chunk[1024];
    memset(chunk, 'z', sizeof(chunk));
    for (unsigned i = 0; i < 40; i++) /* 40 KiB: three segments */
        assert_true(sink_put(&f->q.sink, chunk, sizeof(chunk)));
    assert_int_equal(f->cache.nsegs, 0);
    char *all = drain(&f->q, 0);
    free(all);
    unsigned cached = f->cache.nsegs;
    assert_true(cached >= 2); /* every fully sent segment came back */
    assert_int_equal(f->q.bytes, 0);

    /* the next replies reuse them instead of allocating */
    for (unsigned i = 0; i < 20; i++)
        assert_true(sink_put(&f->q.sink, chunk, sizeof(chunk)));
    assert_true(f->cache.nsegs < cached);
    all = drain(&f->q, 0);
    assert_int_equal(strlen(all), 20 * sizeof(chunk));
    free(all);

    /* placeholders too come from (and return to) the shard's cache */
    struct oseg *p = outq_reserve(&f->q);
    assert_true(outq_fill(&f->q, p, "r", 1));
    expect_drain(&f->q, 0, "r");
    unsigned small = f->cache.nsmall;
    assert_true(small >= 1);
    p = outq_reserve(&f->q);
    assert_int_equal(f->cache.nsmall, small - 1);
    assert_true(outq_fill(&f->q, p, "s", 1));
    expect_drain(&f->q, 0, "s");
}

static void test_outq_write_after_everything_sent(void **state)
{
    struct fixture *f = *state;
    put(&f->q, "first");
    expect_drain(&f->q, 0, "first");
    /* the tail may have been let go: the sink must still work */
    put(&f->q, "second");
    assert_true(outq_ready(&f->q));
    expect_drain(&f->q, 0, "second");
    /* and clear drops what was not sent, leaving a usable queue */
    put(&f->q, "dropped");
    struct oseg *p = outq_reserve(&f->q);
    assert_non_null(p);
    outq_clear(&f->q);
    assert_int_equal(f->q.bytes, 0);
    assert_int_equal(f->q.npending, 0);
    assert_false(outq_ready(&f->q));
    put(&f->q, "third");
    expect_drain(&f->q, 0, "third");
}

/* --- references (zero copy) ------------------------------------------------------------ */

struct owner {
    unsigned releases;
    const void *data;
    size_t len;
};

static void release(void *owner, const void *data, size_t len)
{
    struct owner *o = owner;
    o->releases++;
    o->data = data;
    o->len = len;
}

static void test_outq_ref_sent_in_place_then_released(void **state)
{
    struct fixture *f = *state;
    static const char value[] = "a value the store owns";
    struct owner o = {0};
    put(&f->q, "VALUE k 0 22\r\n");
    assert_true(outq_ref(&f->q, value, sizeof(value) - 1, release, &o));
    put(&f->q, "\r\nEND\r\n");
    outq_sync(&f->q);
    assert_int_equal(f->q.bytes, 14 + 22 + 7);

    /* the value's bytes are sent from where they are: no copy */
    struct iovec iov[8];
    unsigned n = outq_iov(&f->q, iov, 8);
    assert_int_equal(n, 3);
    assert_ptr_equal(iov[1].iov_base, value);
    assert_int_equal(iov[1].iov_len, 22);

    /* not released while any of it is unsent */
    outq_sent(&f->q, 14 + 10);
    assert_int_equal(o.releases, 0);
    outq_sent(&f->q, 12);
    /* all sent: released once, with its own bytes */
    assert_int_equal(o.releases, 1);
    assert_ptr_equal(o.data, value);
    assert_int_equal(o.len, 22);
    expect_drain(&f->q, 0, "\r\nEND\r\n");
    assert_int_equal(o.releases, 1);
}

static void test_outq_ref_released_when_dropped(void **state)
{
    struct fixture *f = *state;
    static const char value[] = "zero-copy";
    struct owner o = {0}, behind = {0};
    struct oseg *p = outq_reserve(&f->q); /* blocks everything behind it */
    assert_true(outq_ref(&f->q, value, 4, release, &o));
    assert_true(outq_ref(&f->q, value + 5, 4, release, &behind));
    expect_drain(&f->q, 0, "");
    assert_int_equal(o.releases + behind.releases, 0);
    /* in order, behind the placeholder */
    assert_true(outq_fill(&f->q, p, "<", 1));
    expect_drain(&f->q, 3, "<zerocopy");
    assert_int_equal(o.releases, 1);
    assert_int_equal(behind.releases, 1);

    /* a connection closed with a REF unsent: released by the clear */
    struct owner dropped = {0};
    put(&f->q, "x");
    assert_true(outq_ref(&f->q, value, 9, release, &dropped));
    outq_sent(&f->q, 1);
    assert_int_equal(dropped.releases, 0);
    outq_clear(&f->q);
    assert_int_equal(dropped.releases, 1);
    assert_ptr_equal(dropped.data, value);
    assert_int_equal(dropped.len, 9);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_outq_empty),
        T(test_outq_segments_keep_order),
        T(test_outq_large_reply_is_contiguous),
        T(test_outq_placeholders_filled_out_of_order),
        T(test_outq_placeholder_empty_and_large_fills),
        T(test_outq_compact_one_iovec_in_order),
        T(test_outq_compact_leaves_ref_segments),
        T(test_outq_continuation_shares_the_buffer),
        T(test_outq_partial_sends_resume),
        T(test_outq_sent_segments_return_to_cache),
        T(test_outq_write_after_everything_sent),
        T(test_outq_ref_sent_in_place_then_released),
        T(test_outq_ref_released_when_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
