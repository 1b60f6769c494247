/*
 * loop.c: the event loop of one shard (see loop.h).
 *
 * One pinned thread runs this loop for the life of the server:
 *
 *   for (;;) {
 *       handle every completion in the CQ      (accept, recv, send, tick, wake)
 *       handle every record from other shards  (route_poll)
 *       resume connections that may parse again, re-arm ended recvs
 *       queue one send per connection with new output
 *       publish records to other shards, wake the sleeping ones
 *       submit everything and wait for at least one completion
 *   }
 *
 * So a loop iteration is one io_uring_enter: every send, every recv re-arm
 * and every cross-shard wakeup of the iteration travel together. The ring
 * is created with SINGLE_ISSUER and DEFER_TASKRUN where the kernel has them
 * (completions are then processed only when this thread asks, in batches).
 *
 * A periodic tick (100 ms) refreshes the clock the store sees, runs a slice
 * of the store's background reclaim of expired items, and notices a
 * requested shutdown. Shutdown drains: the listener closes, connections stop
 * reading, replies already owed are sent, then connections close; the loop
 * ends when every shard has drained (a shard keeps serving requests
 * forwarded by others until then), or after a deadline.
 *
 * The loop is the top of a shard: it dispatches completions to the
 * connections (conn.c) and records to the router (route.c); nothing below
 * calls back into it.
 */
#include "loop.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../core/store.h"
#include "../numa/place.h"
#include "conn.h"
#include "evring.h"
#include "guard.h"
#include "idle.h"
#include "lrucrawl.h"
#include "memlimit.h"
#include "watchconn.h"
#include "log.h"
#include "route.h"
#include "shard.h"
#include "tls.h"
#include "uring.h"

#define SHARD_DRAIN_TIMEOUT_NS (5ull * 1000 * 1000 * 1000)

/* --- completions ------------------------------------------------------- */

static void arm_accept(struct shard *shard, unsigned listener)
{
    struct io_uring_sqe *sqe = shard_sqe(shard);
    io_uring_prep_multishot_accept(sqe, shard->listen_fds[listener], NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud_make(UD_ACCEPT, listener, 0));
    shard->accept_armed[listener] = true;
}

static const struct __kernel_timespec tick_ts = {.tv_sec = 0, .tv_nsec = SHARD_TICK_NS};

static void arm_tick(struct shard *shard)
{
    struct io_uring_sqe *sqe = shard_sqe(shard);
    io_uring_prep_timeout(sqe, (struct __kernel_timespec *)&tick_ts, 0, 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_TIMER, 0, 0));
    shard->timer_armed = true;
}


/* A scraper with nothing in progress: no request bytes held, no gather
 * out, no reply unsent. */
static bool http_idle(const struct conn *conn)
{
    return conn->rlen == 0 && conn->out.npending == 0 && conn->out.bytes == 0 && !conn->send_inflight &&
           !conn->http_in_request;
}

static bool http_open(const struct conn *conn)
{
    return conn != NULL && conn->fd >= 0 && !conn->close_inflight && conn->ops->metrics_endpoint;
}

/* A scraper's connection, within guard.h's slots: when they are full the
 * oldest idle scraper is closed to make room, or the newcomer gets a 503. */
static struct conn *accept_http(struct shard *shard, int fd, const struct conn_ops *ops)
{
    if (shard->m.http_connections >= GUARD_HTTP_SLOTS) {
        struct conn *oldest = NULL;
        for (uint32_t i = 0; i < shard->nconns; i++) {
            struct conn *conn = shard->conns[i];
            if (http_open(conn) && http_idle(conn) &&
                (oldest == NULL || conn->http_since < oldest->http_since))
                oldest = conn;
        }
        if (oldest == NULL) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";
            ssize_t ignored = send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            (void)ignored;
            close(fd);
            return NULL;
        }
        shard->m.http_evicted++;
        /* Its slot frees when the kernel lets go of it, a completion or two
         * later; the count may pass the bound by the closing ones meanwhile. */
        conn_close(oldest, "metrics slots full: the oldest idle scraper makes room");
    }
    struct conn *conn = conn_create(shard, fd, ops);
    if (conn == NULL) {
        close(fd);
        shard->m.malloc_fails++;
        log_error(shard->srv, "shard %u: out of memory accepting a metrics connection", shard->id);
        return NULL;
    }
    conn->http_since = shard->now;
    return conn;
}

static void sweep_http(struct shard *shard)
{
    mc_time_t now = shard->now; /* seconds: enough for timeouts of seconds */
    uint32_t idle_s = shard->srv->cfg.metrics_idle_timeout;
    for (uint32_t i = 0; i < shard->nconns && shard->m.http_connections > 0; i++) {
        struct conn *conn = shard->conns[i];
        if (!http_open(conn))
            continue;
        uint32_t age = now - conn->http_since;
        bool idle = http_idle(conn);
        if ((idle && age >= idle_s) || (!idle && age >= GUARD_HTTP_DEADLINE_S)) {
            shard->m.http_timeouts++;
            conn_close(conn, idle ? "metrics connection idle" : "metrics request past its deadline");
        }
    }
}

/* Every GUARD_SWEEP_TICKS ticks: metrics connections past their idle
 * timeout or request deadline are closed. */
static void http_tick(struct shard *shard)
{
    if (++shard->guard_ticks % GUARD_SWEEP_TICKS == 0 && shard->m.http_connections > 0)
        sweep_http(shard);
}

static void on_accept(struct shard *shard, unsigned listener, int res, uint32_t flags)
{
    struct server *srv = shard->srv;
    if (listener >= shard->nlisten)
        return;
    if (!(flags & IORING_CQE_F_MORE))
        shard->accept_armed[listener] = false;
    if (res < 0) {
        if (!shard->stopping && guard_accept_failed(shard, listener, res))
            return; /* out of descriptors: a backoff timer re-arms it */
        if (res != -ECANCELED && res != -EBADF && res != -EINVAL)
            log_info(srv, "shard %u: accept failed: %s", shard->id, strerror(-res));
        if (!shard->accept_armed[listener] && !shard->stopping)
            arm_accept(shard, listener);
        return;
    }
    int fd = res;
    guard_accept_ok(shard);
    if (shard->stopping) {
        close(fd);
        return;
    }
    if (shard->listen_ops[listener]->metrics_endpoint) {
        /* Scrapers are not counted against -c (the endpoint must answer
         * when the cache is full of clients), but their number is bounded. */
        struct conn *conn = accept_http(shard, fd, shard->listen_ops[listener]);
        if (conn != NULL && shard->listen_tls[listener] && !tls_conn_attach(srv->tls, conn))
            conn_close(conn, "out of memory starting TLS");
        if (!shard->accept_armed[listener] && !shard->stopping)
            arm_accept(shard, listener);
        return;
    }
    unsigned open = atomic_fetch_add_explicit(&srv->curr_conns, 1, memory_order_relaxed);
    if (open >= srv->cfg.conn_limit) {
        /* memcached's answer under maxconns_fast, then close. */
        static const char msg[] = "ERROR Too many open connections\r\n";
        ssize_t ignored = send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)ignored;
        close(fd);
        atomic_fetch_sub_explicit(&srv->curr_conns, 1, memory_order_relaxed);
        shard->m.rejected_connections++;
        log_info(srv, "shard %u: too many open connections (-c %u)", shard->id, srv->cfg.conn_limit);
    } else {
        struct conn *conn = conn_create(shard, fd, shard->listen_ops[listener]);
        if (conn == NULL) {
            close(fd);
            atomic_fetch_sub_explicit(&srv->curr_conns, 1, memory_order_relaxed);
            shard->m.malloc_fails++;
            log_error(srv, "shard %u: out of memory accepting a connection", shard->id);
        } else if (shard->listen_tls[listener] && !tls_conn_attach(srv->tls, conn)) {
            conn_close(conn, "out of memory starting TLS");
        }
    }
    if (!shard->accept_armed[listener] && !shard->stopping)
        arm_accept(shard, listener);
}

static void begin_stop(struct shard *shard)
{
    shard->stopping = true;
    shard->stop_deadline_ns = shard_clock_ns() + SHARD_DRAIN_TIMEOUT_NS;
    for (unsigned i = 0; i < shard->nlisten; i++) {
        if (shard->listen_fds[i] >= 0) {
            /* Ends the multishot accept: no new connections. */
            shutdown(shard->listen_fds[i], SHUT_RDWR);
            close(shard->listen_fds[i]);
            shard->listen_fds[i] = -1;
        }
    }
    for (uint32_t i = 0; i < shard->nconns; i++) {
        struct conn *conn = shard->conns[i];
        if (conn != NULL && conn->fd >= 0)
            conn_drain(conn);
    }
}

static void on_tick(struct shard *shard)
{
    shard->timer_armed = false;
    shard_clock(shard);
    route_write_begin(shard); /* issue 17: peers may be reading the store */
    lrucrawl_tick(shard);     /* issue 12: while lru_crawler is enabled */
    route_write_end(shard);
    http_tick(shard);
    idle_sweep(shard); /* issue 12: -o idle_timeout */
    watchconn_pump(shard); /* issue 12: watch */
    memlimit_apply(shard); /* issue 12: cache_memlimit */
    if (!shard->stopping && atomic_load_explicit(&shard->srv->stopping, memory_order_acquire))
        begin_stop(shard);
    if (shard->stopping && shard_clock_ns() > shard->stop_deadline_ns) {
        for (uint32_t i = 0; i < shard->nconns; i++) {
            struct conn *conn = shard->conns[i];
            if (conn != NULL && conn->fd >= 0)
                conn_close(conn, "shutdown deadline");
        }
    }
    arm_tick(shard);
}

static struct conn *conn_of(struct shard *shard, uint64_t ud)
{
    return conn_lookup(shard, ud_index(ud), ud_gen(ud));
}

static void handle_cqe(struct shard *shard, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    struct conn *conn;
    switch (ud_type(ud)) {
    case UD_ACCEPT:
        on_accept(shard, ud_index(ud), cqe->res, cqe->flags);
        break;
    case UD_RECV:
        conn = conn_of(shard, ud);
        if (conn != NULL) {
            conn_on_recv(conn, cqe->res, cqe->flags);
        } else if (cqe->flags & IORING_CQE_F_BUFFER) {
            /* Never expected (a connection is freed only after its recv
             * ended), but a buffer must never leak from the ring. */
            conn_recycle_buffer(shard, cqe->flags >> IORING_CQE_BUFFER_SHIFT, cqe->res, cqe->flags);
        }
        break;
    case UD_SEND:
        conn = conn_of(shard, ud);
        if (conn != NULL)
            conn_on_send(conn, cqe->res);
        break;
    case UD_CANCEL:
        conn = conn_of(shard, ud);
        if (conn != NULL)
            conn_on_cancel(conn, cqe->res);
        break;
    case UD_TIMER:
        on_tick(shard);
        break;
    case UD_ACCEPT_RETRY: /* the pause after EMFILE is over (guard.c) */
        guard_accept_resumed(shard);
        if (ud_index(ud) < shard->nlisten && !shard->stopping && !shard->accept_armed[ud_index(ud)] &&
            shard->listen_fds[ud_index(ud)] >= 0)
            arm_accept(shard, ud_index(ud));
        break;
    case UD_WAKE:
    case UD_IGNORE:
    case UD_NONE:
        break;
    }
}

static void handle_evring_cqe(void *shard, const struct io_uring_cqe *cqe)
{
    handle_cqe(shard, cqe);
}

static unsigned drain_cq(struct shard *shard)
{
    if (shard->evring != NULL) { /* the epoll backend: the same records */
        unsigned done = evring_drain(shard->evring, handle_evring_cqe, shard);
        shard->m.uring_completions += done;
        return done;
    }
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&shard->ring, head, cqe)
    {
        handle_cqe(shard, cqe);
        n++;
    }
    io_uring_cq_advance(&shard->ring, n);
    shard->m.uring_completions += n;
    return n;
}

static void run_lists(struct shard *shard)
{
    /* Handlers may push the same connection onto another list; each list
     * is taken whole before it is walked, so nothing is lost or looped. */
    while (shard->resume_list != NULL || shard->rearm_list != NULL || shard->flush_list != NULL) {
        struct conn *list = shard->resume_list;
        shard->resume_list = NULL;
        while (list != NULL) {
            struct conn *next = list->resume_next;
            conn_resume(list);
            list = next;
        }
        list = shard->rearm_list;
        shard->rearm_list = NULL;
        while (list != NULL) {
            struct conn *next = list->rearm_next;
            conn_rearm(list);
            list = next;
        }
        list = shard->flush_list;
        shard->flush_list = NULL;
        while (list != NULL) {
            struct conn *next = list->flush_next;
            conn_flush(list);
            list = next;
        }
    }
}

static bool loop_idle_after_stop(struct shard *shard)
{
    if (!shard->stopping)
        return false;
    if (!shard->drained && shard->m.curr_connections == 0 && shard->m.http_connections == 0) {
        shard->drained = true;
        atomic_fetch_add_explicit(&shard->srv->drained, 1, memory_order_acq_rel);
    }
    if (!shard->drained)
        return false;
    if (atomic_load_explicit(&shard->srv->drained, memory_order_acquire) != shard->srv->nshards)
        return false;
    /* Records still waiting for a peer that has left its loop (its channel
     * full) would wait forever: past the drain deadline they are dropped,
     * as every connection they could answer is closed. */
    return !route_backlogged(shard) || shard_clock_ns() > shard->stop_deadline_ns;
}

static void loop_run(struct shard *shard)
{
    for (;;) {
        route_quiescent(shard); /* issue 17: holds nothing of a peer's now */
        guard_check_ring(shard);
        drain_cq(shard);
        route_poll(shard);
        run_lists(shard);
        route_publish(shard);
        if (loop_idle_after_stop(shard))
            break;
        int ret;
        /* issue 17: peers wake this shard only while it may block; when
         * their records already wait, it does not block at all */
        bool may_block = route_sleep(shard);
        if (shard->evring != NULL) {
            bool soon = shard->resume_list != NULL || route_backlogged(shard);
            ret = evring_submit_and_wait(shard->evring, !may_block ? 0 : soon ? 1000 * 1000 : -1);
        } else if (!may_block) {
            ret = io_uring_submit(&shard->ring);
        } else if (shard->resume_list != NULL || route_backlogged(shard)) {
            /* Work is waiting on others: look again soon even if nothing
             * completes. */
            struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 1000 * 1000};
            struct io_uring_cqe *cqe;
            ret = io_uring_submit_and_wait_timeout(&shard->ring, &cqe, 1, &ts, NULL);
        } else {
            ret = io_uring_submit_and_wait(&shard->ring, 1);
        }
        route_awake(shard);
        shard->m.uring_submits++;
        if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EAGAIN && ret != -EBUSY)
            log_error(shard->srv, "shard %u: io_uring_enter failed: %s", shard->id, strerror(-ret));
    }
}

/* Every connection and record still held, then the shard's own resources. */
static void loop_teardown(struct shard *shard)
{
    for (uint32_t i = 0; i < shard->nconns; i++) {
        if (shard->conns[i] != NULL)
            conn_destroy(shard->conns[i]);
    }
    route_drop_backlogs(shard);
    route_teardown(shard); /* issue 17: no peer reads the store from here on */
    guard_send_pool_fini(shard);
    shard_teardown(shard);
}

void *loop_main(void *arg)
{
    struct shard *shard = arg;
    struct server *srv = shard->srv;
    int ret = place_pin_self(shard->cpu);
    if (ret < 0)
        log_info(srv, "shard %u: cannot pin to CPU %u: %s", shard->id, shard->cpu, strerror(-ret));

    const char *step = "setup";
    ret = shard_setup(shard, &step);
    if (ret == 0) {
        route_setup(shard);
        memlimit_apply(shard); /* issue 12: cache_memlimit, T_MEMD_INITIAL_MALLOC */
    }
    if (ret < 0) {
        log_error(srv, "corecache: shard %u: %s failed: %s%s", shard->id, step, strerror(-ret),
                  ret == -ENOMEM && shard->ring_fd == 0
                      ? " (io_uring rings count against the locked-memory limit: raise `ulimit -l`,"
                        " LimitMEMLOCK= in a systemd unit)"
                      : "");
        shard->exit_code = 1;
        atomic_store(&srv->start_failed, true);
    }
    /* Every ring exists (so every ring_fd is known) before anyone sends. */
    server_shard_ready(srv);
    if (!atomic_load(&srv->start_failed)) {
        for (unsigned i = 0; i < shard->nlisten; i++)
            arm_accept(shard, i);
        arm_tick(shard);
        loop_run(shard);
    }
    loop_teardown(shard);
    return NULL;
}
