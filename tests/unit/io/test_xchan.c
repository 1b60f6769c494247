/*
 * test_xchan.c: the cross-shard channel: order, contents, wrap-around,
 * back-pressure, and the wakeup protocol, with a real producer and consumer
 * thread.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "xchan.h"

static void fill(unsigned char *p, size_t len, uint64_t seq)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(seq * 31 + i);
}

static int check(const unsigned char *p, size_t len, uint64_t seq)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != (unsigned char)(seq * 31 + i))
            return 0;
    }
    return 1;
}

static void test_xchan_single_thread_fifo_and_types(void **state)
{
    struct xchan *chan = xchan_create(4096);
    assert_non_null(chan);
    for (uint64_t i = 0; i < 10; i++) {
        unsigned char *p = xchan_reserve(chan, 100 + i);
        assert_non_null(p);
        fill(p, 100 + i, i);
        xchan_commit(chan, (uint16_t)(1 + i), 100 + i);
    }
    /* nothing is visible before publishing */
    assert_null(xchan_peek(chan));
    assert_true(xchan_unpublished(chan));
    assert_false(xchan_publish(chan)); /* a consumer that never slept is not woken */
    for (uint64_t i = 0; i < 10; i++) {
        const struct xrec *rec = xchan_peek(chan);
        assert_non_null(rec);
        assert_int_equal(rec->type, 1 + i);
        assert_int_equal(rec->len, 100 + i);
        assert_true(check(xrec_payload(rec), rec->len, i));
    }
    assert_null(xchan_peek(chan));
    assert_false(xchan_release(chan));
    xchan_destroy(&chan);
    assert_null(chan);
}

static void test_xchan_commit_shorter_than_reserved(void **state)
{
    struct xchan *chan = xchan_create(4096);
    char *p = xchan_reserve(chan, 1000);
    memcpy(p, "abc", 3);
    xchan_commit(chan, 7, 3);
    xchan_publish(chan);
    const struct xrec *rec = xchan_peek(chan);
    assert_int_equal(rec->len, 3);
    assert_memory_equal(xrec_payload(rec), "abc", 3);
    xchan_release(chan);
    xchan_destroy(&chan);
}

static void test_xchan_full_until_released(void **state)
{
    struct xchan *chan = xchan_create(4096);
    size_t n = 0;
    while (xchan_reserve(chan, 500) != NULL) {
        xchan_commit(chan, 1, 500);
        n++;
    }
    assert_true(n >= 6 && n <= 8); /* 4096 bytes of 508-byte records */
    xchan_publish(chan);
    /* a peek alone does not free room; a release does */
    assert_non_null(xchan_peek(chan));
    assert_null(xchan_reserve(chan, 500));
    xchan_release(chan);
    assert_non_null(xchan_reserve(chan, 500));
    xchan_destroy(&chan);
}

/* issue 15: records larger than the ring (a 1 MiB set through a 64 KiB
 * channel) go by pointer, in order with small ones, contents intact; the
 * blocks are freed at release, and by destroy when never read. */
static void test_xchan_records_larger_than_the_ring(void **state)
{
    struct xchan *chan = xchan_create(64 * 1024);
    size_t sizes[] = {100, 1u << 20, 7, 200 * 1024, 8 * 1024, 65 * 1024};
    size_t n = sizeof(sizes) / sizeof(sizes[0]);
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = xchan_reserve(chan, sizes[i]);
        assert_non_null(p);
        fill(p, sizes[i], i);
        xchan_commit(chan, (uint16_t)(i + 1), sizes[i]);
    }
    xchan_publish(chan);
    for (size_t i = 0; i < n; i++) {
        const struct xrec *rec = xchan_peek(chan);
        assert_non_null(rec);
        assert_int_equal(rec->type, i + 1);
        assert_int_equal(rec->len, sizes[i]);
        assert_true(check(xrec_payload(rec), sizes[i], i));
    }
    assert_null(xchan_peek(chan));
    xchan_release(chan);
    /* left unread: destroy frees them (the sanitizer build checks leaks) */
    unsigned char *p = xchan_reserve(chan, 300 * 1024);
    assert_non_null(p);
    xchan_commit(chan, 9, 300 * 1024);
    xchan_publish(chan);
    assert_non_null(xchan_reserve(chan, 500 * 1024)); /* reserved, never committed */
    xchan_destroy(&chan);
    assert_null(chan);
}

static void test_xchan_wake_only_a_sleeping_consumer(void **state)
{
    struct xchan *chan = xchan_create(4096);
    /* a consumer that never said it sleeps is busy: no wakeup */
    assert_non_null(xchan_reserve(chan, 8));
    xchan_commit(chan, 1, 8);
    assert_false(xchan_publish(chan));
    /* it may not sleep while records wait */
    assert_false(xchan_sleep(chan));
    xchan_awake(chan);
    while (xchan_peek(chan) != NULL)
        ;
    assert_false(xchan_release(chan));
    /* drained and asleep: the next publish wakes it, once per sleep */
    assert_true(xchan_sleep(chan));
    assert_non_null(xchan_reserve(chan, 8));
    xchan_commit(chan, 1, 8);
    assert_true(xchan_publish(chan));
    assert_non_null(xchan_reserve(chan, 8));
    xchan_commit(chan, 1, 8);
    assert_false(xchan_publish(chan)); /* already woken for this sleep */
    /* publishing nothing never wakes */
    assert_false(xchan_publish(chan));
    /* awake again: busy, no wakeup */
    xchan_awake(chan);
    while (xchan_peek(chan) != NULL)
        ;
    assert_false(xchan_release(chan));
    assert_non_null(xchan_reserve(chan, 8));
    xchan_commit(chan, 1, 8);
    assert_false(xchan_publish(chan));
    /* a second sleep without an awake in between is a new sleep: woken */
    while (xchan_peek(chan) != NULL)
        ;
    assert_false(xchan_release(chan));
    assert_true(xchan_sleep(chan));
    assert_true(xchan_sleep(chan));
    assert_non_null(xchan_reserve(chan, 8));
    xchan_commit(chan, 1, 8);
    assert_true(xchan_publish(chan));
    xchan_destroy(&chan);
}

#define RECORDS 2000000

/* A wakeup is counted, like the CQE a MSG_RING posts: the consumer sleeps
 * until the count moves past what it saw before its last look. */
struct pair {
    struct xchan *chan;
    atomic_uint wakeups;
    int ok;
};

static void *producer(void *arg)
{
    struct pair *pr = arg;
    uint64_t seq = 0;
    while (seq < RECORDS) {
        size_t len = (seq * 7919) % 700;
        unsigned char *p = xchan_reserve(pr->chan, len + 8);
        if (p != NULL) {
            memcpy(p, &seq, 8);
            fill(p + 8, len, seq);
            xchan_commit(pr->chan, 1, len + 8);
            seq++;
        }
        if (p == NULL || seq % 64 == 0 || seq == RECORDS) {
            if (xchan_publish(pr->chan))
                atomic_fetch_add(&pr->wakeups, 1);
        }
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct pair *pr = arg;
    uint64_t expect = 0;
    pr->ok = 1;
    while (expect < RECORDS) {
        unsigned seen = atomic_load(&pr->wakeups);
        const struct xrec *rec;
        do {
            while ((rec = xchan_peek(pr->chan)) != NULL) {
                uint64_t seq;
                memcpy(&seq, xrec_payload(rec), 8);
                if (seq != expect || !check((const unsigned char *)xrec_payload(rec) + 8, rec->len - 8, seq))
                    pr->ok = 0;
                expect++;
            }
        } while (xchan_release(pr->chan));
        /* "Sleep": only a wakeup from the producer may end it. A lost
         * wakeup fails the test after 10 s instead of hanging it. */
        if (expect < RECORDS && xchan_sleep(pr->chan)) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            while (atomic_load(&pr->wakeups) == seen) {
                clock_gettime(CLOCK_MONOTONIC, &t1);
                if (t1.tv_sec - t0.tv_sec > 10) {
                    pr->ok = 0;
                    return NULL;
                }
            }
        }
        xchan_awake(pr->chan); /* running again: the producer stops waking */
    }
    return NULL;
}

static void test_xchan_two_threads_order_contents_and_wakeups(void **state)
{
    struct pair pr = {.chan = xchan_create(64 * 1024)};
    assert_non_null(pr.chan);
    pthread_t tp, tc;
    pthread_create(&tc, NULL, consumer, &pr);
    pthread_create(&tp, NULL, producer, &pr);
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    assert_true(pr.ok);
    assert_true(atomic_load(&pr.wakeups) > 0);
    xchan_destroy(&pr.chan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xchan_single_thread_fifo_and_types),
        cmocka_unit_test(test_xchan_commit_shorter_than_reserved),
        cmocka_unit_test(test_xchan_full_until_released),
        cmocka_unit_test(test_xchan_records_larger_than_the_ring),
        cmocka_unit_test(test_xchan_wake_only_a_sleeping_consumer),
        cmocka_unit_test(test_xchan_two_threads_order_contents_and_wakeups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
