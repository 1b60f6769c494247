/*
 * test_process_meta.c: meta commands, parsed from their text and executed
 * on a real store with a hand-driven clock, give memcached 1.6.18's exact
 * reply bytes (checked against a running 1.6.18 where its replies do not
 * depend on timing), and the stampede-protection semantics hold: one W per
 * vivified, recached or invalidated item, Z for everyone else, stale values
 * served while one client recomputes.
 *
 * CAS values are predictable here: one store, offset 0, stride 1, so the
 * n-th item linked or changed gets CAS n.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "exec.h"
#include "hash.h"
#include "process.h"
#include "process_meta.h"
#include "reply.h"
#include "proto.h"
#include "store.h"
#include "test_fixture.h"
#include "test_sink.h"

/*
 * Parses and executes every request in `text` as a connection would:
 * errors are written unless noreply, mn answers MN, keyed commands run
 * through process_key(). Returns everything written (the caller frees).
 */
static char *run_text(struct fixture *f, const char *text, size_t len)
{
    /* as a connection runs them: every request through exec, one store */
    struct exec_ctx ctx = {.env = &f->env, .version = "test"};
    test_sink_clear(&f->out);
    size_t off = 0;
    while (off < len) {
        struct proto_req req;
        size_t n = proto_parse(&f->parser, text + off, len - off, &req, NULL);
        assert_true(n > 0);
        off += n;
        struct exec_result r;
        enum exec_action action = exec_request(&ctx, &req, &f->out.sink, &r);
        assert_true(action == EXEC_NEXT || action == EXEC_CLOSE);
    }
    return test_sink_text(&f->out);
}

#define EXPECT(f, request, want)                                                             \
    do {                                                                                     \
        char *got_ = run_text((f), (request), sizeof(request) - 1);                          \
        assert_string_equal(got_, (want));                                                   \
        free(got_);                                                                          \
    } while (0)

/* --- mg ------------------------------------------------------------------- */

static void test_process_meta_mg_hit_flags_in_request_order(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "ms foo 2 F42 T100\r\nhi\r\n", "HD\r\n");
    EXPECT(f, "mg foo s v t f c k Oab\r\n", "VA 2 s2 t100 f42 c1 kfoo Oab\r\nhi\r\n");
    EXPECT(f, "mg foo Oab k c f t v s\r\n", "VA 2 Oab kfoo c1 f42 t100 s2\r\nhi\r\n");
    EXPECT(f, "mg foo\r\n", "HD\r\n");
    /* h and l show the state before this command (no-bump u keeps it) */
    EXPECT(f, "ms h 1\r\nx\r\n", "HD\r\n");
    fixture_advance(f, 3);
    EXPECT(f, "mg h h l u\r\n", "HD h0 l3\r\n");
    EXPECT(f, "mg h h\r\n", "HD h0\r\n");
    EXPECT(f, "mg h h\r\n", "HD h1\r\n");
    /* a TTL of none reads -1 */
    EXPECT(f, "mg h t\r\n", "HD t-1\r\n");
}

static void test_process_meta_mg_miss_and_quiet(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "mg foo v\r\n", "EN\r\n");
    EXPECT(f, "mg foo v k O1 t c\r\n", "EN kfoo O1\r\n");
    EXPECT(f, "mg foo v q k\r\nmn\r\n", "MN\r\n");
    /* q hides EN only: a hit still answers, errors always do */
    EXPECT(f, "ms foo 1\r\nx\r\n", "HD\r\n");
    EXPECT(f, "mg foo q\r\nmg foo q v\r\nmg bar q v\r\nmn\r\n", "HD\r\nVA 1\r\nx\r\nMN\r\n");
    EXPECT(f, "mg foo q v v\r\n", "CLIENT_ERROR duplicate flag\r\n");
    /* a binary key comes back encoded */
    EXPECT(f, "mg Zm9vYmFy b k q\r\nmg Zm9vYmFy b k\r\n", "EN kZm9vYmFy b\r\n");
}

/* mg's opaque length is checked while replying: memcached has then
 * already acted on the item (here: created it, N after O so without TTL). */
static void test_process_meta_mg_opaque_too_long(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "mg v1 O1234567890123456789012345678901 v\r\n", "EN O1234567890123456789012345678901\r\n");
    EXPECT(f, "mg v1 O12345678901234567890123456789012 N30\r\n",
           "CLIENT_ERROR opaque token too long\r\n");
    EXPECT(f, "mg v1 v t c\r\n", "VA 0 t-1 c1\r\n\r\n");
    /* T before the too-long O stays applied */
    EXPECT(f, "mg v1 T50 O12345678901234567890123456789012\r\n",
           "CLIENT_ERROR opaque token too long\r\n");
    EXPECT(f, "mg v1 t\r\n", "HD t50\r\n");
}

/* Stampede protection, N: the first miss creates an empty item and wins;
 * everyone after it sees Z until the winner stores the value. */
static void test_process_meta_vivify_one_winner(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "mg foo N30 v t c O123 k q\r\n", "VA 0 t30 c1 O123 kfoo W\r\n\r\n");
    for (int i = 0; i < 5; i++)
        EXPECT(f, "mg foo N30 v t Oab k\r\n", "VA 0 t30 Oab kfoo Z\r\n\r\n");
    fixture_advance(f, 10);
    EXPECT(f, "mg foo N30 t\r\n", "HD t20 Z\r\n");
    /* the winner stores the value: a fresh item, no flags for anyone */
    EXPECT(f, "ms foo 3 T60\r\nnew\r\n", "HD\r\n");
    EXPECT(f, "mg foo N30 v\r\n", "VA 3\r\nnew\r\n");
    /* the stub expires with N's TTL if the winner never comes back */
    EXPECT(f, "mg bar N5 v\r\n", "VA 0 W\r\n\r\n");
    fixture_advance(f, 5);
    EXPECT(f, "mg bar v\r\n", "EN\r\n");
    EXPECT(f, "mg bar N5 v\r\n", "VA 0 W\r\n\r\n");
}

/* Stampede protection, R: once the TTL left falls below R's, one reader
 * wins the right to refresh early; the others keep the value and see Z. */
static void test_process_meta_recache_one_winner(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "ms k 1 T100\r\nv\r\n", "HD\r\n");
    EXPECT(f, "mg k R30 v t\r\n", "VA 1 t100\r\nv\r\n");
    fixture_advance(f, 71);
    EXPECT(f, "mg k R30 v t\r\n", "VA 1 t29 W\r\nv\r\n");
    EXPECT(f, "mg k R30 v t\r\n", "VA 1 t29 Z\r\nv\r\n");
    EXPECT(f, "mg k v\r\n", "VA 1 Z\r\nv\r\n");
    /* an item without a TTL never wins by R */
    EXPECT(f, "ms n 1\r\nv\r\n", "HD\r\n");
    EXPECT(f, "mg n R30\r\n", "HD\r\n");
    /* T before R: R compares with the new TTL (memcached walks in order) */
    EXPECT(f, "ms o 1\r\nv\r\n", "HD\r\n");
    EXPECT(f, "mg o T30 t R40\r\n", "HD t30 W\r\n");
    EXPECT(f, "mg o R40 t\r\n", "HD t30 Z\r\n");
    EXPECT(f, "ms p 1 T100\r\nv\r\n", "HD\r\n");
    EXPECT(f, "mg p R40 T30 t\r\n", "HD t30\r\n");
}

/* Stampede protection, invalidation: md I marks the item stale; readers
 * get the stale value with X, exactly one of them W. */
static void test_process_meta_invalidate_serves_stale(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "ms s1 3 T100\r\nold\r\n", "HD\r\n");
    EXPECT(f, "md s1 I T30 q\r\nmn\r\n", "MN\r\n");
    EXPECT(f, "mg s1 v c t\r\n", "VA 3 c2 t30 X W\r\nold\r\n");
    EXPECT(f, "mg s1 v c t\r\n", "VA 3 c2 t30 Z X\r\nold\r\n");
    EXPECT(f, "mg s1 s\r\n", "HD s3 Z X\r\n");
    /* a store with the pre-invalidation CAS and I: still stale (memcached) */
    EXPECT(f, "ms s1 3 C1 I\r\nnew\r\n", "HD\r\n");
    EXPECT(f, "mg s1 v\r\n", "VA 3 Z X\r\nnew\r\n");
    /* without I, the old CAS is refused */
    EXPECT(f, "ms s1 3 C1\r\nbad\r\n", "EX\r\n");
    /* a plain store ends it */
    EXPECT(f, "ms s1 3 T100\r\nnew\r\n", "HD\r\n");
    EXPECT(f, "mg s1 v c\r\n", "VA 3 c4\r\nnew\r\n");
    /* invalidating again re-arms the token */
    EXPECT(f, "md s1 I\r\n", "HD\r\n");
    EXPECT(f, "mg s1\r\n", "HD X W\r\n");
    EXPECT(f, "mg s1\r\n", "HD Z X\r\n");
    EXPECT(f, "md s1 I\r\n", "HD\r\n");
    EXPECT(f, "mg s1\r\n", "HD X W\r\n");
}

/* --- ms ------------------------------------------------------------------- */

static void test_process_meta_ms_replies(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "ms foo 2 c k O1 T0\r\nhi\r\n", "HD c1 kfoo O1\r\n");
    EXPECT(f, "ms foo 2 q\r\nhi\r\nmn\r\n", "MN\r\n");
    EXPECT(f, "ms nope 2 MR c\r\nhi\r\n", "NS c0\r\n");
    EXPECT(f, "ms nope 2 MA k O5\r\nhi\r\n", "NS knope O5\r\n");
    EXPECT(f, "ms foo 2 ME q\r\nhi\r\n", "NS\r\n");
    EXPECT(f, "ms foo 2 C99 q\r\nhi\r\n", "EX\r\n");
    EXPECT(f, "ms gone 2 C99 q\r\nhi\r\n", "NF\r\n");
    EXPECT(f, "ms foo 1 MA C99\r\nX\r\n", "EX\r\n");
    EXPECT(f, "ms foo 1 MA C0\r\nX\r\nms foo 1 MP\r\nY\r\nmg foo v\r\n", "HD\r\nHD\r\nVA 4\r\nYhiX\r\n");
    EXPECT(f, "ms foo 1 MR F7\r\nz\r\nmg foo v f\r\n", "HD\r\nVA 1 f7\r\nz\r\n");
    EXPECT(f, "ms foo 1 MS\r\ns\r\nmg foo v\r\n", "HD\r\nVA 1\r\ns\r\n");
    /* E: the client's CAS */
    EXPECT(f, "ms e 1 E777 c\r\nx\r\nmg e c\r\n", "HD c777\r\nHD c777\r\n");
    /* b: the key is returned encoded, by ms and later by mg and me */
    EXPECT(f, "ms Zm9vYmFy 2 b k\r\nhi\r\nmg foobar k\r\n", "HD kZm9vYmFy b\r\nHD kZm9vYmFy b\r\n");
    /* errors are sent whatever q says */
    EXPECT(f, "ms k 2 q\r\nhiX\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
    EXPECT(f, "ms k 2 q MZ\r\nhi\r\nmn\r\n", "CLIENT_ERROR invalid mode for ms M token\r\nMN\r\n");
    EXPECT(f, "ms k x\r\nab\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
}

/* A too-large ms unlinks the old item whatever the mode (memcached's mset). */
static void test_process_meta_ms_too_large(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "ms k 3\r\nold\r\n", "HD\r\n");
    size_t big = 2 * FIXTURE_PAGE;
    char *req = malloc(big + 64);
    int n = snprintf(req, 64, "ms k %zu MA q\r\n", big);
    memset(req + n, 'x', big);
    memcpy(req + n + big, "\r\n", 2);
    char *got = run_text(f, req, (size_t)n + big + 2);
    assert_string_equal(got, "SERVER_ERROR object too large for cache\r\n");
    free(got);
    free(req);
    EXPECT(f, "mg k\r\n", "EN\r\n");
}

/* --- md ------------------------------------------------------------------- */

static void test_process_meta_md_replies(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "md k k O5\r\n", "NF kk O5\r\n");
    EXPECT(f, "md k q\r\nmn\r\n", "NF\r\nMN\r\n");
    EXPECT(f, "ms k 1\r\nv\r\n", "HD\r\n");
    EXPECT(f, "md k C9 O1\r\n", "EX O1\r\n");
    EXPECT(f, "md k C1 O1 k\r\n", "HD O1 kk\r\n");
    EXPECT(f, "mg k\r\n", "EN\r\n");
    EXPECT(f, "ms k 1\r\nv\r\nmd k q\r\nmd k q\r\nmn\r\n", "HD\r\nNF\r\nMN\r\n");
    /* x keeps the key with an empty value, flags F, TTL T */
    EXPECT(f, "ms x 5 F3 T100\r\nvalue\r\nmd x x F9 T10\r\nmg x v f t\r\n",
           "HD\r\nHD\r\nVA 0 f9 t10\r\n\r\n");
    EXPECT(f, "md Zm9v b k\r\n", "NF kZm9v b\r\n");
}

/* --- ma ------------------------------------------------------------------- */

static void test_process_meta_ma_replies(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "ma cnt O1 k\r\n", "NF O1 kcnt\r\n");
    EXPECT(f, "ma cnt q\r\n", "NF\r\n");
    EXPECT(f, "ma cnt N0 J5 v\r\n", "VA 1\r\n5\r\n");
    EXPECT(f, "ma cnt v t c\r\n", "VA 1 t-1 c2\r\n6\r\n");
    EXPECT(f, "ma cnt v MD D10 t\r\n", "VA 1 t-1\r\n0\r\n");
    EXPECT(f, "ma cnt M+ D100 v\r\nma cnt M- D1 v\r\nma cnt MI v\r\n", "VA 3\r\n100\r\nVA 2\r\n99\r\nVA 3\r\n100\r\n");
    /* q hides the HD of an increment, not that of an N creation */
    EXPECT(f, "ma cnt q\r\nma new N0 q O1\r\nmn\r\n", "HD O1\r\nMN\r\n");
    EXPECT(f, "ma cnt C1 q\r\n", "EX\r\n");
    EXPECT(f, "ms t 1\r\nx\r\nma t q\r\n", "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    /* T and N in order: t shows the TTL at that point */
    EXPECT(f, "ma viv N30 t J9 v\r\nma viv T100 t\r\n", "VA 1 t30\r\n9\r\nHD t100\r\n");
    EXPECT(f, "ma viv2 t N30\r\nmg viv2 t\r\n", "HD t-1\r\nHD t30\r\n");
    /* our difference: T holds when the value grows a digit */
    EXPECT(f, "ms m 1\r\n9\r\nma m T100 t\r\nmg m t v\r\n", "HD\r\nHD t100\r\nVA 2 t100\r\n10\r\n");
    /* the opaque's length is checked after the increment (memcached) */
    EXPECT(f, "ma n1 N0 O12345678901234567890123456789012\r\nmg n1 v\r\n",
           "CLIENT_ERROR opaque token too long\r\nVA 1\r\n0\r\n");
}

/* --- me ------------------------------------------------------------------- */

static void test_process_meta_me(void **state)
{
    struct fixture *f = *state;
    EXPECT(f, "me k\r\n", "EN\r\n");
    EXPECT(f, "ms k 2 T100\r\nhi\r\n", "HD\r\n");
    fixture_advance(f, 4);
    /* exp is 1.6.18's: now - exptime */
    EXPECT(f, "me k\r\n", "ME k exp=-96 la=4 cas=1 fetch=no cls=1 size=31\r\n");
    EXPECT(f, "mg k\r\nme k\r\n", "HD\r\nME k exp=-96 la=4 cas=1 fetch=yes cls=1 size=31\r\n");
    EXPECT(f, "ms Zm9v 1\r\nx\r\nme Zm9v\r\n", "HD\r\nME Zm9v exp=-1 la=0 cas=2 fetch=no cls=1 size=33\r\n");
    EXPECT(f, "ms Zm9vYmFy 2 b\r\nhi\r\nme Zm9vYmFy b\r\nme foobar\r\n",
           "HD\r\nME Zm9vYmFy exp=-1 la=0 cas=3 fetch=no cls=1 size=36\r\n"
           "ME Zm9vYmFy exp=-1 la=0 cas=3 fetch=no cls=1 size=36\r\n");
}

/* --- the TTL policy --------------------------------------------------------- */

/* --max-ttl caps every TTL a meta command sets, "never" and N included;
 * --default-ttl gives one to items stored without. */
static void test_process_meta_ttl_policy(void **state)
{
    struct fixture *f = *state;
    f->env.default_ttl = 300;
    f->env.max_ttl = 3600;
    EXPECT(f, "ms a 1\r\nx\r\nmg a t\r\n", "HD\r\nHD t300\r\n");
    EXPECT(f, "ms b 1 T0\r\nx\r\nmg b t\r\n", "HD\r\nHD t300\r\n");
    EXPECT(f, "ms c 1 T86400\r\nx\r\nmg c t\r\n", "HD\r\nHD t3600\r\n");
    EXPECT(f, "mg c T0 t\r\n", "HD t300\r\n");
    EXPECT(f, "mg c T7200 t\r\n", "HD t3600\r\n");
    EXPECT(f, "mg d N0 t\r\n", "HD t300 W\r\n");
    EXPECT(f, "ma e N99999 t\r\n", "HD t3600\r\n");
    EXPECT(f, "md c I T99999\r\nmg c t\r\n", "HD\r\nHD t3600 X W\r\n");
    /* a negative TTL still expires at once */
    EXPECT(f, "ms g 1 T-1\r\nx\r\nmg g\r\n", "HD\r\nEN\r\n");
    /* R is a threshold, not a TTL: not capped */
    EXPECT(f, "ms r 1 T100\r\nx\r\nmg r R200 t\r\n", "HD\r\nHD t100 W\r\n");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_process_meta_mg_hit_flags_in_request_order),
        T(test_process_meta_mg_miss_and_quiet),
        T(test_process_meta_mg_opaque_too_long),
        T(test_process_meta_vivify_one_winner),
        T(test_process_meta_recache_one_winner),
        T(test_process_meta_invalidate_serves_stale),
        T(test_process_meta_ms_replies),
        T(test_process_meta_ms_too_large),
        T(test_process_meta_md_replies),
        T(test_process_meta_ma_replies),
        T(test_process_meta_me),
        T(test_process_meta_ttl_policy),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
