/*
 * conn.c: a client connection: bytes in, requests out, replies back in
 * order.
 *
 * Input. The shard's multishot recv lands data in a provided buffer that
 * must go back to the kernel as soon as this completion is handled. So the
 * connection's protocol step (conn_ops) parses and executes requests
 * straight out of that buffer (a forwarded request is copied into its
 * channel), and only what is left, a request's unfinished beginning, is
 * copied into the connection's own rbuf.
 * When rbuf holds something, new data is appended there and parsing
 * resumes from it; `rneed` (from the parser) says how many bytes a storage
 * command's data block needs, so a 1 MiB value is not re-parsed on every
 * 16 KiB that arrives.
 *
 * Output. Replies are written into the connection's output queue (outq.h),
 * in order, placeholders for forwarded replies included; the queue builds
 * the iovecs of one send per loop iteration and reclaims what was sent.
 *
 * Flow control. When the unsent output of a connection passes the server's
 * cap (a slow reader, or a client that pipelines without reading), the
 * connection stops parsing and cancels its recv, so neither its output nor
 * its input can grow further; it resumes when the output drains below half
 * the cap. The same pause applies while too many of its requests are out at
 * other shards.
 *
 * Lifetime. A connection is freed only when the kernel holds none of its
 * buffers: no recv armed, no send in flight. Its table slot then gets a new
 * generation, so late completions and late cross-shard replies addressed to
 * the old connection are recognized and dropped.
 */
#include "conn.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guard.h"
#include "log.h"
#include "shard.h"
#include "uring.h"
#include "watch.h"

/* The per-connection budget the README's RSS formula counts on: an idle
 * connection is one struct conn, in jemalloc's 256-byte class. A field
 * added past it costs every idle connection 64 bytes more (the next
 * class): say so in README's Reliability section if it must grow. */
_Static_assert(sizeof(struct conn) <= 256, "struct conn outgrew the 256-byte per-connection budget");

/* More forwarded requests than this in flight pause a connection's input. */
#define CONN_PENDING_MAX 1024
/* Smallest estimate of a forwarded reply's size (see conn_fill). */
#define CONN_REPLY_EST_MIN 64
/* A read buffer larger than this is freed once empty. */
#define CONN_RBUF_KEEP (64 * 1024)
/* issue 17: while forwarded replies are pending, what is ready before them
 * waits for them up to this many bytes, so a pipelined batch leaves in one
 * send, not one up to each placeholder and one after it. */
#define CONN_HOLD_BYTES (16 * 1024)

struct oseg *conn_reserve(struct conn *conn)
{
    return outq_reserve(&conn->out);
}

/* Could the replies this connection is waiting for, at their estimated
 * size, take its output past the cap? */
/* The cap on the shard's cross-shard backlog (guard.h, issue 15). */
static bool conn_xchan_backlog_full(const struct conn *conn)
{
    const struct shard *shard = conn->shard;
    return conn->out.npending > 0 &&
           shard->m.xchan_backlog_bytes > GUARD_XCHAN_BACKLOG_CAPS * (uint64_t)shard->srv->out_cap;
}

static bool conn_pending_too_large(const struct conn *conn)
{
    uint32_t npending = conn->out.npending;
    return npending >= CONN_PENDING_MAX || conn_xchan_backlog_full(conn) ||
           (npending > 0 &&
            conn->out.bytes + (uint64_t)npending * conn->reply_est > conn->shard->srv->out_cap);
}

void conn_fill(struct conn *conn, struct oseg *seg, const void *data, size_t len)
{
    if (!outq_fill(&conn->out, seg, data, len)) {
        conn_close(conn, "out of memory for a reply");
        return;
    }
    /* The estimate of a forwarded reply's size jumps to any larger reply
     * and decays slowly, so a few large values throttle the requests in
     * flight at once and small ones let a deep pipeline through. */
    if (len > conn->reply_est)
        conn->reply_est = (uint32_t)len;
    else
        conn->reply_est -= (conn->reply_est - (uint32_t)len) / 8;
    if (conn->reply_est < CONN_REPLY_EST_MIN)
        conn->reply_est = CONN_REPLY_EST_MIN;
    conn_want_flush(conn);
    if (conn->blocked && !conn_pending_too_large(conn)) {
        conn->blocked = false;
        conn_want_resume(conn);
    }
}

struct conn *conn_lookup(struct shard *shard, uint32_t index, uint32_t gen)
{
    if (index >= shard->nconns)
        return NULL;
    struct conn *conn = shard->conns[index];
    if (conn == NULL || conn->gen != gen || conn->fd < 0)
        return NULL;
    return conn;
}

_Static_assert(GUARD_SEND_IOV_MAX == CONN_IOV_MAX, "a send buffer holds a connection's iovecs");

/* The shard-wide output backlog (guard.h's cap): this connection's part
 * of shard_out_bytes follows its unsent output. */
static void conn_out_sync(struct conn *conn)
{
    conn->shard->m.shard_out_bytes += conn->out.bytes - conn->out_counted;
    conn->out_counted = (uint32_t)conn->out.bytes;
}

static void conn_out_forget(struct conn *conn)
{
    conn->shard->m.shard_out_bytes -= conn->out_counted;
    conn->out_counted = 0;
}

/* Past the shard's cap, a connection with unsent output of its own
 * pauses too (counted in shard_out_yields). */
static bool conn_shard_out_full(struct conn *conn)
{
    struct shard *shard = conn->shard;
    conn_out_sync(conn);
    if (conn->out.bytes == 0 || shard->m.shard_out_bytes <= GUARD_SHARD_OUT_CAPS * shard->srv->out_cap)
        return false;
    shard->m.shard_out_yields++;
    return true;
}

/* Input buffer memory under --conn-memory: past the shard's share the
 * request is refused with memcached's error and the connection closes
 * once it is sent. */
static void conn_refuse_input(struct conn *conn)
{
    conn->closing = true;
    conn->close_after_write = true;
    if (sink_puts(&conn->out.sink, "SERVER_ERROR out of memory reading request\r\n"))
        conn_want_flush(conn);
    else
        conn_close(conn, "out of memory refusing a request");
}

static bool conn_input_reserve(struct conn *conn, uint64_t bytes)
{
    struct shard *shard = conn->shard;
    const struct server *srv = shard->srv;
    uint64_t share = srv->cfg.conn_memory / srv->nshards;
    if (srv->cfg.conn_memory != 0 && shard->m.conn_input_bytes + bytes > share) {
        shard->m.conn_mem_refused++;
        conn_refuse_input(conn);
        return false;
    }
    shard->m.conn_input_bytes += bytes;
    return true;
}


/* --- lists of the shard loop ------------------------------------------- */

void conn_want_flush(struct conn *conn)
{
    if (conn->on_flush_list)
        return;
    conn->on_flush_list = true;
    conn->flush_next = conn->shard->flush_list;
    conn->shard->flush_list = conn;
}

void conn_want_resume(struct conn *conn)
{
    if (conn->on_resume_list)
        return;
    conn->on_resume_list = true;
    conn->resume_next = conn->shard->resume_list;
    conn->shard->resume_list = conn;
}

static void conn_want_rearm(struct conn *conn)
{
    if (conn->on_rearm_list)
        return;
    conn->on_rearm_list = true;
    conn->rearm_next = conn->shard->rearm_list;
    conn->shard->rearm_list = conn;
}

/* --- lifetime ---------------------------------------------------------- */

static void conn_arm_recv(struct conn *conn)
{
    struct shard *shard = conn->shard;
    if (conn->transport != NULL && conn->transport->rearm != NULL) /* issue 13: kTLS RX */
        conn->transport->rearm(conn);
    struct io_uring_sqe *sqe = shard_sqe(shard);
    io_uring_prep_recv_multishot(sqe, conn->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = shard->bgid;
    io_uring_sqe_set_data64(sqe, ud_make(UD_RECV, conn->index, conn->gen));
    conn->recv_armed = true;
}

struct conn *conn_create(struct shard *shard, int fd, const struct conn_ops *ops)
{
    uint32_t index;
    struct conn *conn;
    if (shard->nfree > 0) {
        index = shard->free_idx[--shard->nfree];
        conn = shard->conns[index];
    } else {
        if (shard->nconns == shard->conns_cap) {
            uint32_t cap = shard->conns_cap ? shard->conns_cap * 2 : 64;
            struct conn **conns = realloc(shard->conns, cap * sizeof(*conns));
            if (conns == NULL)
                return NULL;
            shard->conns = conns;
            uint32_t *free_idx = realloc(shard->free_idx, cap * sizeof(*free_idx));
            if (free_idx == NULL)
                return NULL;
            shard->free_idx = free_idx;
            shard->conns_cap = cap;
        }
        conn = calloc(1, sizeof(*conn));
        if (conn == NULL)
            return NULL;
        index = shard->nconns++;
        shard->conns[index] = conn;
        conn->index = index;
        shard->m.connection_structures++;
    }
    uint32_t gen = (conn->gen + 1) & UD_GEN_MASK;
    memset(conn, 0, sizeof(*conn));
    conn->index = index;
    conn->gen = gen;
    conn->shard = shard;
    conn->ops = ops;
    conn->fd = fd;
    outq_init(&conn->out, &shard->outq_cache);
    conn->last_cmd_time = shard->now;
    /* Until replies show otherwise, a forwarded reply may be an item of the
     * largest size: a new connection starts with few requests in flight. */
    conn->reply_est = (uint32_t)shard->srv->cfg.item_size_max;
    conn->swallow = 0; /* the parser is the shard's (serve.c) */
    socklen_t plen = sizeof(conn->peer);
    if (getpeername(fd, (struct sockaddr *)&conn->peer, &plen) != 0)
        memset(&conn->peer, 0, sizeof(conn->peer));

    if (ops->metrics_endpoint) {
        shard->m.http_connections++;
    } else {
        shard->m.curr_connections++;
        shard->m.total_connections++;
    }
    conn_arm_recv(conn);
    if (!ops->metrics_endpoint) /* issue 12: watch connevents */
        watch_conn_event(&shard->srv->watch, fd, &conn->peer, NULL);
    log_debug(shard->srv, "<%d new client connection on shard %u", fd, shard->id);
    return conn;
}

/* The last step: the kernel holds nothing of this connection any more. */
static void conn_free(struct conn *conn)
{
    struct shard *shard = conn->shard;
    log_debug(shard->srv, "<%d connection closed", conn->fd);
    close(conn->fd);
    conn->fd = -1;
    outq_clear(&conn->out);
    conn_out_forget(conn); /* guard.h: the shard's totals */
    guard_input_release(shard, conn->rcap);
    conn->rcap = 0;
    free(conn->rbuf);
    conn->rbuf = NULL;
    if (conn->transport != NULL)
        conn->transport->destroy(conn);
    conn->transport = NULL;
    conn->gen = (conn->gen + 1) & UD_GEN_MASK; /* late replies are dropped */
    shard->free_idx[shard->nfree++] = conn->index;
    if (conn->ops->metrics_endpoint) {
        shard->m.http_connections--;
    } else {
        shard->m.curr_connections--;
        atomic_fetch_sub_explicit(&shard->srv->curr_conns, 1, memory_order_relaxed);
    }
}

static void conn_maybe_free(struct conn *conn)
{
    if (conn->fd >= 0 && conn->closing && conn->close_inflight && !conn->recv_armed &&
        !conn->send_inflight && !conn->cancel_inflight && !conn->on_flush_list &&
        !conn->on_rearm_list && !conn->on_resume_list)
        conn_free(conn);
}

void conn_close(struct conn *conn, const char *reason)
{
    if (conn->fd < 0 || conn->close_inflight)
        return;
    log_debug(conn->shard->srv, "<%d closing: %s", conn->fd, reason);
    if (!conn->ops->metrics_endpoint && !conn->ops->log_stream) /* issue 12: watch connevents */
        watch_conn_event(&conn->shard->srv->watch, conn->fd, &conn->peer, reason);
    conn->closing = true;
    conn->close_inflight = true;
    /* Wakes any recv or send the kernel holds for this socket; their
     * completions arrive, and the last one frees the connection. */
    shutdown(conn->fd, SHUT_RDWR);
    conn_maybe_free(conn);
}

void conn_drain(struct conn *conn)
{
    if (conn->fd < 0 || conn->closing)
        return;
    conn->close_after_write = true;
    conn->closing = true;
    /* Stop reading; what was received is parsed already or incomplete. */
    shutdown(conn->fd, SHUT_RD);
    conn_want_flush(conn);
}

void conn_destroy(struct conn *conn)
{
    guard_send_put(conn->shard, conn->send_buf);
    conn->send_buf = NULL;
    conn->iov = NULL;
    if (conn->fd >= 0) {
        close(conn->fd);
        conn->fd = -1;
    }
    outq_clear(&conn->out);
    free(conn->rbuf);
    if (conn->transport != NULL)
        conn->transport->destroy(conn);
    free(conn);
}

/* --- requests ---------------------------------------------------------- */

/* May the connection's receive be (re-)armed? Not while it is closing,
 * after the peer's end of stream, or while its input is held back (paused:
 * its output is over the cap; blocked: too many requests out at other
 * shards); conn_resume re-arms it when that ends. */
static bool conn_may_read(const struct conn *conn)
{
    return conn->fd >= 0 && !conn->recv_armed && !conn->closing && !conn->eof && !conn->paused &&
           !conn->blocked;
}

/* Cancels the connection's multishot receive, so the kernel's socket
 * buffer, not our memory, holds what the client keeps sending. */
static void conn_stop_recv(struct conn *conn)
{
    if (conn->recv_armed && !conn->cancel_inflight) {
        struct io_uring_sqe *sqe = shard_sqe(conn->shard);
        io_uring_prep_cancel64(sqe, ud_make(UD_RECV, conn->index, conn->gen), 0);
        io_uring_sqe_set_data64(sqe, ud_make(UD_CANCEL, conn->index, conn->gen));
        conn->cancel_inflight = true;
    }
}

/* Stops reading a connection whose unsent output passed the cap: parsing
 * stops, and so does its receive. Resumed by conn_on_send. */
static void conn_pause(struct conn *conn)
{
    conn->paused = true;
    conn->shard->m.conn_yields++;
    conn_stop_recv(conn);
}

/* Checked before every request, so one receive buffer full of pipelined
 * gets cannot produce more than about one reply beyond the cap, whether
 * the replies are written here or are still to come from other shards. */
static bool conn_may_parse(struct conn *conn)
{
    if (conn->closing || conn->paused)
        return false;
    if (conn_pending_too_large(conn)) {
        if (conn_xchan_backlog_full(conn))
            conn->shard->m.xchan_backlog_yields++;
        conn->blocked = true; /* conn_fill resumes it */
        return false;
    }
    outq_sync(&conn->out);
    if (conn->out.bytes > conn->shard->srv->out_cap || conn_shard_out_full(conn)) {
        conn_pause(conn); /* its own cap, or its shard's (guard.h) */
        return false;
    }
    return true;
}

void conn_close_after_write(struct conn *conn)
{
    conn->close_after_write = true;
    conn->closing = true;
}

/*
 * issue 12: with -R N (memcached's reqs_per_event), a connection that has
 * run N requests of what one receive delivered yields: the rest waits in
 * its rbuf while the shard serves its other connections, and the resume
 * list picks it up in the same loop iteration. memcached counts each such
 * yield in conn_yields. Without -R there is no cap: one receive is at most
 * one provided buffer, which already bounds a connection's turn.
 */
static bool conn_yield(struct conn *conn, uint32_t served)
{
    uint32_t cap = conn->shard->srv->cfg.reqs_per_event;
    if (cap == 0 || served < cap)
        return false;
    conn->shard->m.conn_yields++;
    conn_want_resume(conn);
    return true;
}

/* issue 17: some shard started a flush_all this one has not applied yet
 * (its record waits in a channel, io/route.c route_flush_all): requests
 * wait for it, so that a get after an acknowledged flush_all sees it on
 * every shard, served here or read from another's memory. */
static bool conn_flush_pending(const struct shard *shard)
{
    const struct server *srv = shard->srv;
    return atomic_load_explicit(&srv->flush_issued, memory_order_acquire) >
           atomic_load_explicit(&srv->peek[shard->id].flushes, memory_order_acquire);
}

/* Parses and executes requests from buf; returns the bytes consumed. */
static size_t conn_parse(struct conn *conn, const char *buf, size_t len)
{
    size_t off = 0;
    uint32_t served = 0; /* issue 12: -R, see conn_yield */
    conn->rneed = 0;
    conn->starved = false;
    if (conn_flush_pending(conn->shard)) {
        /* applied by route_poll later in this loop iteration; the
         * requests run from the resume list after it */
        conn_want_resume(conn);
        return 0;
    }
    while (off < len && conn_may_parse(conn)) {
        size_t need = 0;
        /* requests counted, a sample of them timed (shard.h) */
        bool metered = !conn->ops->metrics_endpoint;
        uint64_t start = 0;
        bool timed = metered && shard_request_begin(conn->shard, &start);
        size_t used = conn->ops->step(conn, buf + off, len - off, &need);
        if (used == 0) {
            shard_request_none(conn->shard, timed);
            conn->rneed = need;
            conn->starved = true;
            break;
        }
        off += used;
        if (metered)
            shard_request_end(conn->shard, timed, start);
        /* issue 12: -R N, memcached's reqs_per_event (conn_yield) */
        if (off < len && metered && conn_yield(conn, ++served))
            break;
    }
    return off;
}

static bool rbuf_append(struct conn *conn, const char *data, size_t len)
{
    if (conn->rlen + len > conn->rcap) {
        size_t cap = conn->rcap ? conn->rcap : 4096;
        while (cap < conn->rlen + len)
            cap *= 2;
        if (!conn_input_reserve(conn, cap - conn->rcap))
            return false; /* past --conn-memory: answered, closing (guard.h) */
        char *rbuf = realloc(conn->rbuf, cap);
        if (rbuf == NULL) { /* issue 15: memcached's answer, then close */
            guard_input_release(conn->shard, cap - conn->rcap);
            conn->shard->m.malloc_fails++;
            conn_refuse_input(conn);
            return false;
        }
        conn->rbuf = rbuf;
        conn->rcap = cap;
    }
    memcpy(conn->rbuf + conn->rlen, data, len);
    conn->rlen += len;
    return true;
}

/* Parses what rbuf holds, keeps the rest at its front. */
static void conn_parse_rbuf(struct conn *conn)
{
    if (conn->rlen == 0 || conn->rlen < conn->rneed || !conn_may_parse(conn))
        return;
    size_t used = conn_parse(conn, conn->rbuf, conn->rlen);
    if (conn->fd < 0 || conn->rbuf == NULL)
        return;
    conn->rlen -= used;
    if (conn->rlen > 0 && used > 0)
        memmove(conn->rbuf, conn->rbuf + used, conn->rlen);
    if (conn->rlen == 0 && conn->rcap > CONN_RBUF_KEEP) {
        guard_input_release(conn->shard, conn->rcap);
        free(conn->rbuf);
        conn->rbuf = NULL;
        conn->rcap = 0;
    }
}

void conn_input(struct conn *conn, const char *data, size_t len)
{
    size_t used = 0;
    if (conn->rlen == 0)
        used = conn_parse(conn, data, len);
    if (conn->fd >= 0 && !conn->close_inflight && used < len) {
        /* false: refused with memcached's error (--conn-memory or a failed
         * allocation, issue 15), and closing */
        bool kept = rbuf_append(conn, data + used, len - used);
        if (kept && used == 0)
            conn_parse_rbuf(conn);
        /* Held back by replies still to come from other shards (a deep
         * pipeline of forwarded writes, noreply ones too): past one
         * buffer's worth, the rest waits in the kernel, not in rbuf. */
        if (conn->blocked && conn->rlen > CONN_RBUF_KEEP)
            conn_stop_recv(conn);
    }
}

void conn_input_end(struct conn *conn)
{
    /* `echo stats | nc` shuts down its write side; a client pipelines
     * writes and closes: what it sent runs and is answered, as on
     * memcached, then the connection closes (conn_flush). */
    conn->eof = true;
    conn->close_after_write = true;
    conn_stop_recv(conn); /* TLS: a close_notify may come before the FIN */
    conn_want_flush(conn);
}

/* After the peer's end of stream: is there input left that will run once
 * the connection may parse again (not an incomplete request)? */
static bool conn_input_left(const struct conn *conn)
{
    return conn->eof && !conn->closing && conn->rlen > 0 && !conn->starved;
}

/* --- completions ------------------------------------------------------- */

/* Consumed incrementally (shard.c), a buffer the kernel has not finished
 * carries IORING_CQE_F_BUF_MORE and stays in the ring; the next receive
 * into it continues at buf_off[bid]. Only a finished one goes back. */
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4) /* linux 6.12; not in Debian 12's liburing */
#endif

void conn_recycle_buffer(struct shard *shard, unsigned bid, int res, uint32_t cqe_flags)
{
    if (cqe_flags & IORING_CQE_F_BUF_MORE) {
        if (res > 0)
            shard->buf_off[bid] += (uint32_t)res;
        return;
    }
    shard->buf_off[bid] = 0;
    io_uring_buf_ring_add(shard->br, shard->bufs + (size_t)bid * shard->buf_size, shard->buf_size,
                          (unsigned short)bid, io_uring_buf_ring_mask(shard->nbufs), 0);
    io_uring_buf_ring_advance(shard->br, 1);
}

void conn_on_recv(struct conn *conn, int res, uint32_t cqe_flags)
{
    struct shard *shard = conn->shard;
    bool more = (cqe_flags & IORING_CQE_F_MORE) != 0;

    if (cqe_flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe_flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && !conn->closing && !conn->eof) {
            const char *data = shard->bufs + (size_t)bid * shard->buf_size + shard->buf_off[bid];
            shard->m.bytes_read += (uint64_t)res;
            if (conn->transport == NULL)
                conn_input(conn, data, (size_t)res);
            else /* TLS: decrypted, then conn_input */
                conn->transport->on_recv(conn, data, (size_t)res);
            conn_want_flush(conn);
        }
        conn_recycle_buffer(shard, bid, res, cqe_flags);
    }
    if (conn->fd < 0)
        return;
    if (!more)
        conn->recv_armed = false;

    if (res == 0) {
        conn_input_end(conn);
    } else if (res == -ENOBUFS) {
        shard->m.recv_nobufs++; /* every provided buffer taken: re-armed */
        if (conn_may_read(conn))
            conn_want_rearm(conn);
    } else if (res < 0 && res != -ECANCELED && conn->transport != NULL && conn->transport->recv_failed != NULL &&
               conn->transport->recv_failed(conn, res)) { /* issue 13: a kTLS control record */
        conn_want_flush(conn);
        if (conn_may_read(conn))
            conn_want_rearm(conn);
    } else if (res < 0 && res != -ECANCELED) {
        if (res != -ECONNRESET)
            log_info(shard->srv, "<%d recv failed: %s", conn->fd, strerror(-res));
        conn_close(conn, "recv error");
    } else if (conn_may_read(conn)) {
        conn_want_rearm(conn);
    }
    conn_maybe_free(conn);
}

void conn_rearm(struct conn *conn)
{
    conn->on_rearm_list = false;
    if (conn_may_read(conn) && !conn->cancel_inflight)
        conn_arm_recv(conn);
    conn_maybe_free(conn);
}

void conn_cycle_recv(struct conn *conn)
{
    conn_stop_recv(conn); /* its last completion, or the cancel's, arms it again */
}

void conn_on_cancel(struct conn *conn, int res)
{
    conn->cancel_inflight = false;
    if (conn_may_read(conn))
        conn_want_rearm(conn);
    conn_maybe_free(conn);
}

void conn_resume(struct conn *conn)
{
    conn->on_resume_list = false;
    if (conn->fd >= 0 && !conn->close_inflight) {
        conn_parse_rbuf(conn);
        if (conn_may_read(conn))
            conn_want_rearm(conn);
        conn_want_flush(conn);
    }
    conn_maybe_free(conn);
}

/* The first `bytes` of the output are gone (sent, or sealed by TLS). */
static void conn_output_done(struct conn *conn, size_t bytes)
{
    outq_sent(&conn->out, bytes);
    conn_out_sync(conn); /* the shard's total (guard.h) */
    if (conn->paused && conn->out.bytes <= conn->shard->srv->out_cap / 2) {
        conn->paused = false;
        conn_want_resume(conn);
    }
}

void conn_flush(struct conn *conn)
{
    conn->on_flush_list = false;
    if (conn->fd < 0)
        return;
    if (conn->send_inflight || conn->close_inflight) {
        conn_maybe_free(conn);
        return;
    }
    outq_sync(&conn->out);
    if (conn->out.npending > 0 && conn->out.bytes < CONN_HOLD_BYTES) {
        /* issue 17: the last conn_fill flushes it. Meanwhile the filled
         * placeholders of forwarded noreply writes go: a long noreply
         * pipeline across shards would otherwise hold one each (512 B)
         * until the connection next sends. */
        outq_trim(&conn->out);
        return;
    }
    outq_compact(&conn->out); /* issue 17: one iovec, not one per reply */
    /* The send's iovecs are borrowed from the shard's pool (guard.h); a
     * TLS transport seals conn->iov and writes its records' there too. */
    struct conn_send *sb = guard_send_get(conn->shard);
    if (sb == NULL) {
        conn_close(conn, "out of memory sending");
        conn_maybe_free(conn);
        return;
    }
    conn->iov = sb->iov;
    unsigned n = outq_iov(&conn->out, conn->iov, CONN_IOV_MAX);
    if (conn->transport != NULL) {
        /* TLS: the plaintext iov is sealed into records, and what goes out
         * is the ciphertext */
        size_t sealed = 0;
        if (!conn->transport->seal(conn, n, &sealed)) {
            guard_send_put(conn->shard, sb);
            conn->iov = NULL;
            conn_close(conn, "TLS error");
            conn_maybe_free(conn);
            return;
        }
        conn_output_done(conn, sealed);
        n = conn->transport->out_iov(conn, conn->iov);
    }
    if (n <= 1) {
        /* a plain send keeps no iovec: back to the pool once it is read */
        struct iovec one = n == 1 ? sb->iov[0] : (struct iovec){0};
        guard_send_put(conn->shard, sb);
        conn->iov = NULL;
        sb = NULL;
        if (n == 1) {
            struct io_uring_sqe *sqe = shard_sqe(conn->shard);
            io_uring_prep_send(sqe, conn->fd, one.iov_base, one.iov_len, MSG_NOSIGNAL);
            io_uring_sqe_set_data64(sqe, ud_make(UD_SEND, conn->index, conn->gen));
            conn->send_inflight = true;
            return;
        }
    } else {
        conn->send_buf = sb;
    }
    if (n == 0) {
        if (conn->close_after_write && conn->out.npending == 0 && !conn_input_left(conn))
            conn_close(conn, conn->eof ? "end of stream" : "quit");
        conn_maybe_free(conn);
        return;
    }
    struct io_uring_sqe *sqe = shard_sqe(conn->shard);
    memset(&sb->msg, 0, sizeof(sb->msg));
    sb->msg.msg_iov = sb->iov;
    sb->msg.msg_iovlen = n;
    io_uring_prep_sendmsg(sqe, conn->fd, &sb->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, ud_make(UD_SEND, conn->index, conn->gen));
    conn->send_inflight = true;
}

void conn_on_send(struct conn *conn, int res)
{
    struct shard *shard = conn->shard;
    conn->send_inflight = false;
    guard_send_put(shard, conn->send_buf);
    conn->send_buf = NULL;
    conn->iov = NULL;
    if (res < 0) {
        if (res != -EPIPE && res != -ECONNRESET)
            log_info(shard->srv, "<%d send failed: %s", conn->fd, strerror(-res));
        conn_close(conn, "send error");
        conn_maybe_free(conn);
        return;
    }
    shard->m.bytes_written += (uint64_t)res;
    if (conn->transport == NULL)
        conn_output_done(conn, (size_t)res);
    else /* ciphertext sent; its plaintext was done when sealed */
        conn->transport->on_sent(conn, (size_t)res);
    if (conn->close_inflight) {
        conn_maybe_free(conn);
        return;
    }
    conn_want_flush(conn);
}
