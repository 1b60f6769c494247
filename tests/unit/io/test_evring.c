/*
 * test_evring.c: the epoll backend's io_uring semantics on real sockets
 * (socketpairs and a loopback listener): multishot recv into provided
 * buffers in ring order with F_MORE, ENOBUFS when the ring is empty, EOF
 * ending the recv, cancel by user_data, a send that waits for room, a
 * multishot accept, a timeout, a MSG_RING wakeup across evrings, and the
 * SKIP_SUCCESS flag.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "evring.h"

#define NBUFS 4
#define BUFSZ 64

struct fixture {
    struct evring *ev;
    struct io_uring_buf_ring *br;
    char bufs[NBUFS][BUFSZ];
    int sv[2];
    struct io_uring_cqe cqes[64];
    unsigned ncqes;
};

static void collect(void *arg, const struct io_uring_cqe *cqe)
{
    struct fixture *f = arg;
    assert_true(f->ncqes < 64);
    f->cqes[f->ncqes++] = *cqe;
}

/* Submits, waits (bounded), and collects the completions. */
static unsigned step(struct fixture *f, int64_t timeout_ns)
{
    f->ncqes = 0;
    assert_int_equal(evring_submit_and_wait(f->ev, timeout_ns), 0);
    return evring_drain(f->ev, collect, f);
}

static void give_buffer(struct fixture *f, unsigned bid)
{
    io_uring_buf_ring_add(f->br, f->bufs[bid], BUFSZ, (unsigned short)bid, io_uring_buf_ring_mask(NBUFS), 0);
    io_uring_buf_ring_advance(f->br, 1);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(evring_create(&f->ev), 0);
    f->br = mmap(NULL, NBUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                 -1, 0);
    assert_true(f->br != MAP_FAILED);
    io_uring_buf_ring_init(f->br);
    evring_provide_buffers(f->ev, f->br, NBUFS, 7);
    for (unsigned i = 0; i < NBUFS; i++)
        give_buffer(f, i);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->sv), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    evring_destroy(&f->ev);
    assert_null(f->ev);
    munmap(f->br, NBUFS * sizeof(struct io_uring_buf));
    close(f->sv[0]);
    close(f->sv[1]);
    free(f);
    return 0;
}

static void arm_recv(struct fixture *f, uint64_t ud)
{
    struct io_uring_sqe *sqe = evring_sqe(f->ev);
    io_uring_prep_recv_multishot(sqe, f->sv[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 7;
    io_uring_sqe_set_data64(sqe, ud);
}

static void test_evring_recv_multishot_buffers_in_ring_order(void **state)
{
    struct fixture *f = *state;
    arm_recv(f, 42);
    assert_int_equal(write(f->sv[1], "hello", 5), 5);
    assert_int_equal(step(f, 1000 * 1000 * 1000), 1);
    assert_int_equal(f->cqes[0].user_data, 42);
    assert_int_equal(f->cqes[0].res, 5);
    assert_true(f->cqes[0].flags & IORING_CQE_F_MORE);
    assert_true(f->cqes[0].flags & IORING_CQE_F_BUFFER);
    unsigned bid = f->cqes[0].flags >> IORING_CQE_BUFFER_SHIFT;
    assert_int_equal(bid, 0);
    assert_memory_equal(f->bufs[bid], "hello", 5);
    /* the recv stays armed: more data, the next buffer */
    assert_int_equal(write(f->sv[1], "world!", 6), 6);
    assert_int_equal(step(f, 1000 * 1000 * 1000), 1);
    assert_int_equal(f->cqes[0].res, 6);
    assert_int_equal(f->cqes[0].flags >> IORING_CQE_BUFFER_SHIFT, 1);
    assert_memory_equal(f->bufs[1], "world!", 6);
    /* EOF ends it: no F_MORE, no buffer */
    shutdown(f->sv[1], SHUT_WR);
    assert_int_equal(step(f, 1000 * 1000 * 1000), 1);
    assert_int_equal(f->cqes[0].res, 0);
    assert_int_equal(f->cqes[0].flags, 0);
}

static void test_evring_recv_enobufs_when_ring_empty(void **state)
{
    struct fixture *f = *state;
    arm_recv(f, 1);
    char big[NBUFS * BUFSZ + 10];
    memset(big, 'x', sizeof(big));
    assert_int_equal(write(f->sv[1], big, sizeof(big)), (ssize_t)sizeof(big));
    unsigned got = 0, total = 0;
    bool nobufs = false;
    for (int i = 0; i < 10 && !nobufs; i++) {
        step(f, 1000 * 1000 * 1000);
        for (unsigned j = 0; j < f->ncqes; j++) {
            if (f->cqes[j].res == -ENOBUFS) {
                assert_false(f->cqes[j].flags & IORING_CQE_F_MORE);
                nobufs = true;
            } else {
                assert_true(f->cqes[j].res > 0);
                total += (unsigned)f->cqes[j].res;
                got++;
            }
        }
    }
    assert_true(nobufs);
    assert_int_equal(got, NBUFS);
    assert_int_equal(total, NBUFS * BUFSZ);
    /* a buffer back and the recv re-armed: the rest arrives */
    give_buffer(f, 2);
    arm_recv(f, 1);
    assert_int_equal(step(f, 1000 * 1000 * 1000), 1);
    assert_int_equal(f->cqes[0].res, 10);
    assert_int_equal(f->cqes[0].flags >> IORING_CQE_BUFFER_SHIFT, 2);
}

static void test_evring_cancel_ends_recv(void **state)
{
    struct fixture *f = *state;
    arm_recv(f, 9);
    struct io_uring_sqe *sqe = evring_sqe(f->ev);
    io_uring_prep_cancel64(sqe, 9, 0);
    io_uring_sqe_set_data64(sqe, 10);
    assert_int_equal(step(f, 0), 2);
    assert_int_equal(f->cqes[0].user_data, 9);
    assert_int_equal(f->cqes[0].res, -ECANCELED);
    assert_int_equal(f->cqes[0].flags, 0);
    assert_int_equal(f->cqes[1].user_data, 10);
    assert_int_equal(f->cqes[1].res, 0);
    /* nothing left to cancel */
    sqe = evring_sqe(f->ev);
    io_uring_prep_cancel64(sqe, 9, 0);
    io_uring_sqe_set_data64(sqe, 11);
    assert_int_equal(step(f, 0), 1);
    assert_int_equal(f->cqes[0].res, -ENOENT);
    /* and data sent now produces nothing */
    assert_int_equal(write(f->sv[1], "x", 1), 1);
    assert_int_equal(step(f, 10 * 1000 * 1000), 0);
}

static void test_evring_send_waits_for_room(void **state)
{
    struct fixture *f = *state;
    int sndbuf = 4096;
    setsockopt(f->sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    /* fill the socket until a send would block */
    static char chunk[65536];
    while (send(f->sv[0], chunk, sizeof(chunk), MSG_DONTWAIT) > 0)
        ;
    struct io_uring_sqe *sqe = evring_sqe(f->ev);
    io_uring_prep_send(sqe, f->sv[0], "tail", 4, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, 5);
    assert_int_equal(step(f, 10 * 1000 * 1000), 0); /* no room: it waits */
    /* the peer reads: the send completes */
    static char sink[1 << 20];
    unsigned done = 0;
    for (int i = 0; i < 100 && done == 0; i++) {
        ssize_t n = recv(f->sv[1], sink, sizeof(sink), MSG_DONTWAIT);
        (void)n;
        done = step(f, 10 * 1000 * 1000);
    }
    assert_int_equal(done, 1);
    assert_int_equal(f->cqes[0].user_data, 5);
    assert_int_equal(f->cqes[0].res, 4);
}

static void test_evring_accept_multishot_timeout_and_wake(void **state)
{
    struct fixture *f = *state;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 8), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    struct io_uring_sqe *sqe = evring_sqe(f->ev);
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, 77);
    int c1 = socket(AF_INET, SOCK_STREAM, 0), c2 = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c1, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(connect(c2, (struct sockaddr *)&a, sizeof(a)), 0);
    unsigned accepted = 0;
    for (int i = 0; i < 10 && accepted < 2; i++) {
        step(f, 100 * 1000 * 1000);
        for (unsigned j = 0; j < f->ncqes; j++) {
            assert_int_equal(f->cqes[j].user_data, 77);
            assert_true(f->cqes[j].res >= 0);
            assert_true(f->cqes[j].flags & IORING_CQE_F_MORE);
            close(f->cqes[j].res);
            accepted++;
        }
    }
    assert_int_equal(accepted, 2);
    close(c1);
    close(c2);

    /* a relative timeout completes with -ETIME, not before its time */
    static struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
    sqe = evring_sqe(f->ev);
    io_uring_prep_timeout(sqe, &ts, 0, 0);
    io_uring_sqe_set_data64(sqe, 88);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned n = 0;
    for (int i = 0; i < 10 && n == 0; i++)
        n = step(f, -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(n, 1);
    assert_int_equal(f->cqes[0].user_data, 88);
    assert_int_equal(f->cqes[0].res, -ETIME);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 20);

    /* MSG_RING to another evring wakes its wait (no CQE there; none here
     * with SKIP_SUCCESS) */
    struct evring *other;
    assert_int_equal(evring_create(&other), 0);
    sqe = evring_sqe(f->ev);
    io_uring_prep_msg_ring(sqe, evring_wake_fd(other), 0, 123, 0);
    io_uring_sqe_set_data64(sqe, 99);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    assert_int_equal(step(f, 0), 0);
    /* the other's wait returns at once instead of after its 5 s limit */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(evring_submit_and_wait(other, 5ll * 1000 * 1000 * 1000), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 4);
    evring_destroy(&other);
    close(lfd);
}

static void test_evring_unknown_op_is_einval(void **state)
{
    struct fixture *f = *state;
    struct io_uring_sqe *sqe = evring_sqe(f->ev);
    io_uring_prep_fsync(sqe, f->sv[0], 0);
    io_uring_sqe_set_data64(sqe, 3);
    assert_int_equal(step(f, 0), 1);
    assert_int_equal(f->cqes[0].res, -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_evring_recv_multishot_buffers_in_ring_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evring_recv_enobufs_when_ring_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evring_cancel_ends_recv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evring_send_waits_for_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evring_accept_multishot_timeout_and_wake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evring_unknown_op_is_einval, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
