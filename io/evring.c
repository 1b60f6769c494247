/*
 * evring.c: the epoll backend behind an io_uring-shaped queue (see
 * evring.h).
 *
 * Design. The shard's code keeps speaking io_uring: it prepares SQEs and
 * handles CQEs. This file stands in for the kernel's side of the ring:
 *
 *   evring_sqe()            appends to `sq` (grown as needed: the loop
 *                           queues a whole iteration's work before it
 *                           submits, as with io_uring)
 *   evring_submit_and_wait  performs each SQE in order (a send is tried at
 *                           once, as io_uring tries it inline), then one
 *                           epoll_wait, then the ready sockets' work, then
 *                           the expired timers; completions go to `cq`
 *   evring_drain()          hands `cq` to the loop's CQE handler
 *
 * A socket's pending operations live in `fds`, indexed by descriptor:
 *
 *   fds[fd]: want (epoll events registered), accept?, recv?, send?
 *            + each one's user_data; a waiting send keeps its SQE's fields
 *
 * and its epoll registration (level-triggered) is kept equal to what they
 * need: EPOLLIN for an accept or recv, EPOLLOUT for a send that found the
 * socket full. Level triggering keeps the multishot semantics simple: a
 * ready socket is served a bounded amount per wait and is reported again
 * by the next wait if more remains, so one busy socket cannot starve the
 * others.
 *
 * Invariants the loop relies on, the same as io_uring's:
 *   - a multishot completion without IORING_CQE_F_MORE ends the operation
 *     (EOF, error, cancellation, no buffer): nothing more comes for it;
 *   - a recv's buffer is taken from the provided ring in ring order and
 *     named by its id in the CQE flags; it is the caller's until it puts
 *     it back;
 *   - completions of one socket come in the order they happened.
 * A descriptor the loop closes has no pending operation here (conn.c
 * closes only once its recv ended and its send completed), except a
 * listener closed at shutdown with its accept armed: the kernel drops a
 * closed descriptor from epoll by itself, and if its number is reused the
 * stale accept is ended (-ECANCELED) when the new socket is registered.
 */
#include "evring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EVRING_EVENTS 256     /* ready sockets taken per wait */
#define EVRING_ACCEPT_BURST 64 /* connections accepted per ready listener per wait */
#define EVRING_RECV_BURST 8   /* buffers filled per ready socket per wait */

struct evfd {
    uint32_t want; /* epoll events registered; 0: not in the epoll set */
    bool accept, accept_multi, recv, send;
    int accept_flags;
    uint8_t send_op;   /* IORING_OP_SEND or IORING_OP_SENDMSG */
    uint8_t send_skip; /* IOSQE_CQE_SKIP_SUCCESS */
    uint32_t send_len;
    int send_flags;
    uint64_t send_addr;
    uint64_t accept_ud, recv_ud, send_ud;
};

struct evtimer {
    uint64_t deadline_ns;
    uint64_t ud;
};

struct evring {
    int epfd;
    int wakefd;

    struct io_uring_sqe *sq;
    unsigned sq_len, sq_cap;
    struct io_uring_cqe *cq;
    unsigned cq_len, cq_cap;

    struct evfd *fds;
    unsigned nfds; /* entries in fds (descriptors 0..nfds-1) */

    struct evtimer *timers;
    unsigned ntimers, timers_cap;

    struct io_uring_buf_ring *br;
    unsigned nbufs;
    uint16_t bgid;
    uint16_t br_head; /* the next provided buffer to take */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- queues -------------------------------------------------------------- */

static bool grow(void **array, unsigned *cap, size_t size, unsigned need)
{
    if (need <= *cap)
        return true;
    unsigned n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *p = realloc(*array, (size_t)n * size);
    if (p == NULL)
        return false;
    *array = p;
    *cap = n;
    return true;
}

/* Room for n more completions. False when memory ran out: the caller
 * leaves the work for a later wait instead of losing its completion. */
static bool cq_room(struct evring *ev, unsigned n)
{
    return grow((void **)&ev->cq, &ev->cq_cap, sizeof(*ev->cq), ev->cq_len + n);
}

/* Callers made room first (cq_room). */
static void post(struct evring *ev, uint64_t ud, int res, uint32_t flags)
{
    struct io_uring_cqe *cqe = &ev->cq[ev->cq_len++];
    cqe->user_data = ud;
    cqe->res = res;
    cqe->flags = flags;
}

static struct evfd *fd_rec(struct evring *ev, int fd)
{
    if (fd < 0)
        return NULL;
    if ((unsigned)fd >= ev->nfds) {
        unsigned n = ev->nfds ? ev->nfds : 64;
        while (n <= (unsigned)fd)
            n *= 2;
        struct evfd *p = realloc(ev->fds, (size_t)n * sizeof(*p));
        if (p == NULL)
            return NULL;
        memset(p + ev->nfds, 0, (size_t)(n - ev->nfds) * sizeof(*p));
        ev->fds = p;
        ev->nfds = n;
    }
    return &ev->fds[fd];
}

/* Ends, with -ECANCELED, the operations of a descriptor number whose file
 * was closed (see the invariants above). */
static void end_stale(struct evring *ev, struct evfd *rec)
{
    if (rec->accept)
        post(ev, rec->accept_ud, -ECANCELED, 0);
    if (rec->recv)
        post(ev, rec->recv_ud, -ECANCELED, 0);
    if (rec->send)
        post(ev, rec->send_ud, -ECANCELED, 0);
    rec->accept = rec->recv = rec->send = false;
    rec->want = 0;
}

/* Makes fd's epoll registration match its pending operations. Callers
 * made room for three completions: where epoll refuses the descriptor,
 * its operations end with epoll's error rather than wait forever. */
static void update_interest(struct evring *ev, int fd, struct evfd *rec)
{
    uint32_t want = ((rec->accept || rec->recv) ? EPOLLIN | EPOLLRDHUP : 0) | (rec->send ? EPOLLOUT : 0);
    if (want == rec->want)
        return;
    struct epoll_event e = {.events = want, .data.fd = fd};
    int ret = 0;
    if (want == 0) {
        epoll_ctl(ev->epfd, EPOLL_CTL_DEL, fd, &e); /* ENOENT: closed already */
    } else if (rec->want == 0) {
        ret = epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &e);
        if (ret != 0 && errno == EEXIST)
            ret = epoll_ctl(ev->epfd, EPOLL_CTL_MOD, fd, &e);
    } else {
        ret = epoll_ctl(ev->epfd, EPOLL_CTL_MOD, fd, &e);
        if (ret != 0 && errno == ENOENT) {
            /* Registered, yet unknown to epoll: the file this number named
             * was closed (which left the epoll set) and the number reused;
             * perform() ended the closed file's operations (end_stale). */
            ret = epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &e);
        }
    }
    if (ret != 0) {
        int err = -errno;
        if (rec->accept)
            post(ev, rec->accept_ud, err, 0);
        if (rec->recv)
            post(ev, rec->recv_ud, err, 0);
        if (rec->send)
            post(ev, rec->send_ud, err, 0);
        rec->accept = rec->recv = rec->send = false;
        want = 0;
    }
    rec->want = want;
}

/* --- operations ---------------------------------------------------------- */

/* One send attempt: true when it completed (posted), false when the socket
 * is full and it must wait for EPOLLOUT. */
static bool try_send(struct evring *ev, int fd, struct evfd *rec)
{
    for (;;) {
        ssize_t n;
        if (rec->send_op == IORING_OP_SEND)
            n = send(fd, (const void *)(uintptr_t)rec->send_addr, rec->send_len,
                     rec->send_flags | MSG_DONTWAIT);
        else
            n = sendmsg(fd, (const struct msghdr *)(uintptr_t)rec->send_addr, rec->send_flags | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return false;
        int res = n < 0 ? -errno : (int)n;
        if (!(rec->send_skip && res >= 0))
            post(ev, rec->send_ud, res, 0);
        return true;
    }
}

static void do_accepts(struct evring *ev, int fd, struct evfd *rec)
{
    for (unsigned i = 0; i < EVRING_ACCEPT_BURST && rec->accept; i++) {
        if (!cq_room(ev, 1))
            return;
        int nfd = accept4(fd, NULL, NULL, rec->accept_flags);
        if (nfd < 0 && (errno == EINTR || errno == ECONNABORTED || errno == EPROTO))
            continue;
        if (nfd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (nfd < 0 || !rec->accept_multi) {
            rec->accept = false; /* an error ends a multishot accept */
            post(ev, rec->accept_ud, nfd < 0 ? -errno : nfd, 0);
            return;
        }
        post(ev, rec->accept_ud, nfd, IORING_CQE_F_MORE);
    }
}

static void do_recvs(struct evring *ev, int fd, struct evfd *rec)
{
    for (unsigned i = 0; i < EVRING_RECV_BURST && rec->recv; i++) {
        if (!cq_room(ev, 1))
            return;
        uint16_t tail = ev->br != NULL ? __atomic_load_n(&ev->br->tail, __ATOMIC_ACQUIRE) : ev->br_head;
        if (tail == ev->br_head) {
            rec->recv = false; /* every buffer taken: io_uring's ENOBUFS */
            post(ev, rec->recv_ud, -ENOBUFS, 0);
            return;
        }
        struct io_uring_buf *buf = &ev->br->bufs[ev->br_head & (ev->nbufs - 1)];
        ssize_t n = recv(fd, (void *)(uintptr_t)buf->addr, buf->len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            rec->recv = false; /* EOF or an error ends it, holding no buffer */
            post(ev, rec->recv_ud, n < 0 ? -errno : 0, 0);
            return;
        }
        ev->br_head++;
        post(ev, rec->recv_ud, (int)n,
             IORING_CQE_F_BUFFER | IORING_CQE_F_MORE | ((uint32_t)buf->bid << IORING_CQE_BUFFER_SHIFT));
        if ((size_t)n < buf->len)
            return; /* the socket is most likely empty: epoll says if not */
    }
}

static void add_timer(struct evring *ev, const struct io_uring_sqe *sqe)
{
    const struct __kernel_timespec *ts = (const struct __kernel_timespec *)(uintptr_t)sqe->addr;
    uint64_t ns = (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
    if (!grow((void **)&ev->timers, &ev->timers_cap, sizeof(*ev->timers), ev->ntimers + 1)) {
        post(ev, sqe->user_data, -ENOMEM, 0);
        return;
    }
    ev->timers[ev->ntimers++] = (struct evtimer){now_ns() + ns, sqe->user_data};
}

/* The cancel of user_data `target`: the operation ends with -ECANCELED and
 * the cancel completes with 0, or -ENOENT when nothing matched. */
static void cancel(struct evring *ev, const struct io_uring_sqe *sqe)
{
    uint64_t target = sqe->addr;
    for (unsigned fd = 0; fd < ev->nfds; fd++) {
        struct evfd *rec = &ev->fds[fd];
        if (rec->want == 0)
            continue;
        bool found = false;
        if (rec->recv && rec->recv_ud == target) {
            rec->recv = false;
            found = true;
        } else if (rec->accept && rec->accept_ud == target) {
            rec->accept = false;
            found = true;
        } else if (rec->send && rec->send_ud == target) {
            rec->send = false;
            found = true;
        }
        if (found) {
            post(ev, target, -ECANCELED, 0);
            post(ev, sqe->user_data, 0, 0);
            update_interest(ev, (int)fd, rec); /* removes interest: no post */
            return;
        }
    }
    for (unsigned i = 0; i < ev->ntimers; i++) {
        if (ev->timers[i].ud == target) {
            ev->timers[i] = ev->timers[--ev->ntimers];
            post(ev, target, -ECANCELED, 0);
            post(ev, sqe->user_data, 0, 0);
            return;
        }
    }
    post(ev, sqe->user_data, -ENOENT, 0);
}

/* Starts one queued operation. Callers made room for six completions. */
static void perform(struct evring *ev, const struct io_uring_sqe *sqe)
{
    bool skip = (sqe->flags & IOSQE_CQE_SKIP_SUCCESS) != 0;
    struct evfd *rec;
    switch (sqe->opcode) {
    case IORING_OP_NOP:
        if (!skip)
            post(ev, sqe->user_data, 0, 0);
        return;
    case IORING_OP_ACCEPT:
    case IORING_OP_RECV:
    case IORING_OP_SEND:
    case IORING_OP_SENDMSG:
        rec = fd_rec(ev, sqe->fd);
        if (rec == NULL) {
            post(ev, sqe->user_data, sqe->fd < 0 ? -EBADF : -ENOMEM, 0);
            return;
        }
        break;
    case IORING_OP_MSG_RING: {
        uint64_t one = 1;
        ssize_t n = write(sqe->fd, &one, sizeof(one));
        /* EAGAIN: the counter is near its maximum, so it is readable: woken */
        int res = n == (ssize_t)sizeof(one) || errno == EAGAIN ? 0 : -errno;
        if (!(skip && res == 0))
            post(ev, sqe->user_data, res, 0);
        return;
    }
    case IORING_OP_TIMEOUT:
        add_timer(ev, sqe);
        return;
    case IORING_OP_ASYNC_CANCEL:
        cancel(ev, sqe);
        return;
    default:
        post(ev, sqe->user_data, -EINVAL, 0);
        return;
    }

    int fd = sqe->fd;
    switch (sqe->opcode) {
    case IORING_OP_ACCEPT: {
        if (rec->recv || rec->send)
            end_stale(ev, rec); /* the number was a closed connection's */
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && !(fl & O_NONBLOCK))
            fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        rec->accept = true;
        rec->accept_multi = (sqe->ioprio & IORING_ACCEPT_MULTISHOT) != 0;
        rec->accept_flags = (int)sqe->accept_flags;
        rec->accept_ud = sqe->user_data;
        break;
    }
    case IORING_OP_RECV:
        if (rec->accept)
            end_stale(ev, rec); /* the number was a closed listener's */
        if (!(sqe->flags & IOSQE_BUFFER_SELECT) || ev->br == NULL || sqe->buf_group != ev->bgid ||
            !(sqe->ioprio & IORING_RECV_MULTISHOT) || rec->recv) {
            post(ev, sqe->user_data, -EINVAL, 0); /* not a form corecache submits */
            return;
        }
        rec->recv = true;
        rec->recv_ud = sqe->user_data;
        break;
    case IORING_OP_SEND:
    case IORING_OP_SENDMSG:
        if (rec->accept)
            end_stale(ev, rec);
        if (rec->send) {
            post(ev, sqe->user_data, -EBUSY, 0); /* one send per connection at a time */
            return;
        }
        rec->send_op = sqe->opcode;
        rec->send_skip = skip;
        rec->send_addr = sqe->addr;
        rec->send_len = sqe->len;
        rec->send_flags = (int)sqe->msg_flags;
        rec->send_ud = sqe->user_data;
        if (try_send(ev, fd, rec))
            return;
        rec->send = true;
        break;
    }
    update_interest(ev, fd, rec);
}

/* --- the queue's two ends ------------------------------------------------- */

/* Performs the queued SQEs in order; stops early (keeping the rest queued)
 * only when memory for their completions ran out. */
static void submit(struct evring *ev)
{
    unsigned i = 0;
    for (; i < ev->sq_len; i++) {
        if (!cq_room(ev, 6))
            break;
        perform(ev, &ev->sq[i]);
    }
    if (i < ev->sq_len)
        memmove(ev->sq, ev->sq + i, (size_t)(ev->sq_len - i) * sizeof(*ev->sq));
    ev->sq_len -= i;
}

struct io_uring_sqe *evring_sqe(struct evring *ev)
{
    if (!grow((void **)&ev->sq, &ev->sq_cap, sizeof(*ev->sq), ev->sq_len + 1)) {
        submit(ev); /* out of memory: make room by performing what is queued */
        if (ev->sq_len == ev->sq_cap)
            return NULL;
    }
    struct io_uring_sqe *sqe = &ev->sq[ev->sq_len++];
    memset(sqe, 0, sizeof(*sqe));
    return sqe;
}

static void on_ready(struct evring *ev, int fd, uint32_t events)
{
    if (fd == ev->wakefd) {
        uint64_t count;
        ssize_t n = read(fd, &count, sizeof(count)); /* EAGAIN: drained already */
        (void)n;
        return;
    }
    if ((unsigned)fd >= ev->nfds)
        return;
    struct evfd *rec = &ev->fds[fd];
    if (rec->accept)
        do_accepts(ev, fd, rec);
    if (rec->send && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && cq_room(ev, 1) && try_send(ev, fd, rec))
        rec->send = false;
    if (rec->recv && (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
        do_recvs(ev, fd, rec);
    if (cq_room(ev, 3))
        update_interest(ev, fd, rec); /* else the next wait reports it again */
}

static void expire_timers(struct evring *ev)
{
    uint64_t now = now_ns();
    for (unsigned i = 0; i < ev->ntimers;) {
        if (ev->timers[i].deadline_ns <= now && cq_room(ev, 1)) {
            post(ev, ev->timers[i].ud, -ETIME, 0);
            ev->timers[i] = ev->timers[--ev->ntimers];
        } else {
            i++;
        }
    }
}

int evring_submit_and_wait(struct evring *ev, int64_t timeout_ns)
{
    submit(ev);
    /* epoll_wait's unit is the millisecond: rounded up, so a timer is never
     * reported before its time */
    int64_t wait_ns = ev->cq_len > 0 ? 0 : timeout_ns;
    if (ev->ntimers > 0 && wait_ns != 0) {
        uint64_t now = now_ns();
        for (unsigned i = 0; i < ev->ntimers; i++) {
            int64_t left = ev->timers[i].deadline_ns > now ? (int64_t)(ev->timers[i].deadline_ns - now) : 0;
            if (wait_ns < 0 || left < wait_ns)
                wait_ns = left;
        }
    }
    int ms = wait_ns < 0 ? -1 : (int)((wait_ns + 999999) / 1000000);
    struct epoll_event events[EVRING_EVENTS];
    int n = epoll_wait(ev->epfd, events, EVRING_EVENTS, ms);
    int ret = n < 0 ? -errno : 0;
    for (int i = 0; i < n; i++)
        on_ready(ev, events[i].data.fd, events[i].events);
    if (ev->ntimers > 0)
        expire_timers(ev);
    return ret;
}

unsigned evring_drain(struct evring *ev, evring_cqe_fn *fn, void *arg)
{
    /* By index, on a copy: fn may queue SQEs, and when memory is short a
     * queued SQE may be performed at once and append here. */
    unsigned i = 0;
    for (; i < ev->cq_len; i++) {
        struct io_uring_cqe cqe = ev->cq[i];
        fn(arg, &cqe);
    }
    ev->cq_len = 0;
    return i;
}

/* --- lifecycle ------------------------------------------------------------ */

int evring_create(struct evring **out)
{
    struct evring *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return -ENOMEM;
    ev->wakefd = -1;
    ev->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ev->epfd < 0)
        goto fail;
    ev->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ev->wakefd < 0)
        goto fail;
    struct epoll_event e = {.events = EPOLLIN, .data.fd = ev->wakefd};
    if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, ev->wakefd, &e) != 0)
        goto fail;
    *out = ev;
    return 0;
fail:;
    int ret = -errno;
    if (ev->wakefd >= 0)
        close(ev->wakefd);
    if (ev->epfd >= 0)
        close(ev->epfd);
    free(ev);
    return ret;
}

void evring_destroy(struct evring **evp)
{
    struct evring *ev = *evp;
    if (ev == NULL)
        return;
    close(ev->epfd); /* the wake eventfd stays open: see evring.h */
    free(ev->sq);
    free(ev->cq);
    free(ev->fds);
    free(ev->timers);
    free(ev);
    *evp = NULL;
}

int evring_wake_fd(const struct evring *ev)
{
    return ev->wakefd;
}

void evring_provide_buffers(struct evring *ev, struct io_uring_buf_ring *br, unsigned nbufs, uint16_t bgid)
{
    ev->br = br;
    ev->nbufs = nbufs;
    ev->bgid = bgid;
    ev->br_head = 0;
}
