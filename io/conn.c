/*
 * conn.c: a client connection: bytes in, requests out, replies back in
 * order.
 *
 * Input. The shard's multishot recv lands data in a provided buffer that
 * must go back to the kernel as soon as this completion is handled. So we
 * parse requests straight out of that buffer and execute them at once (a
 * forwarded request is copied into its channel), and copy only what is
 * left, a request's unfinished beginning, into the connection's own rbuf.
 * When rbuf holds something, new data is appended there and parsing
 * resumes from it; `rneed` (from the parser) says how many bytes a storage
 * command's data block needs, so a 1 MiB value is not re-parsed on every
 * 16 KiB that arrives.
 *
 * Output. Replies are written through the connection's sink into a chain of
 * segments (see conn.h). A forwarded request appends a PENDING segment that
 * its reply fills later; sending stops at the first pending segment. Full
 * segments go back to a per-shard cache once sent, so an idle connection
 * holds no output memory and a busy one allocates nothing per request.
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

#include "../core/metrics.h"
#include "../core/proto_bin.h"
#include "guard.h"
#include "log.h"
#include "route.h"
#include "shard.h"
#include "stats.h"
#include "uring.h"

/* More forwarded requests than this in flight pause a connection's input. */
#define CONN_PENDING_MAX 1024
/* Smallest estimate of a forwarded reply's size (see conn_fill). */
#define CONN_REPLY_EST_MIN 64
/* A read buffer larger than this is freed once empty. */
#define CONN_RBUF_KEEP (64 * 1024)
/* How many bytes of segments to keep in a shard's caches. */
#define SEG_CACHE_MAX 256
#define SMALL_CACHE_MAX 4096

/* --- output segments -------------------------------------------------- */

enum { SEG_FROM_CACHE = 1, SEG_FROM_SMALL = 2, SEG_FROM_MALLOC = 3 };

static struct oseg *seg_get(struct shard *shard, size_t need)
{
    struct oseg *seg;
    if (need <= OSEG_SIZE) {
        if (shard->seg_cache != NULL) {
            seg = shard->seg_cache;
            shard->seg_cache = seg->next;
            shard->nseg_cache--;
        } else {
            seg = malloc(sizeof(*seg) + OSEG_SIZE);
            if (seg == NULL)
                return NULL;
        }
        seg->cap = OSEG_SIZE;
        seg->origin = SEG_FROM_CACHE;
    } else {
        seg = malloc(sizeof(*seg) + need);
        if (seg == NULL)
            return NULL;
        seg->cap = (uint32_t)need;
        seg->origin = SEG_FROM_MALLOC;
    }
    seg->next = NULL;
    seg->data = (char *)(seg + 1);
    seg->len = 0;
    seg->sent = 0;
    seg->kind = OSEG_DATA;
    seg->ext_data = 0;
    return seg;
}

static struct oseg *seg_get_small(struct shard *shard)
{
    struct oseg *seg;
    if (shard->small_cache != NULL) {
        seg = shard->small_cache;
        shard->small_cache = seg->next;
        shard->nsmall_cache--;
    } else {
        seg = malloc(sizeof(*seg) + OSEG_SMALL_SIZE);
        if (seg == NULL)
            return NULL;
    }
    seg->next = NULL;
    seg->data = (char *)(seg + 1);
    seg->len = 0;
    seg->cap = OSEG_SMALL_SIZE;
    seg->sent = 0;
    seg->kind = OSEG_PENDING;
    seg->origin = SEG_FROM_SMALL;
    seg->ext_data = 0;
    return seg;
}

static void seg_put(struct shard *shard, struct oseg *seg)
{
    if (seg->ext_data)
        free(seg->data);
    if (seg->origin == SEG_FROM_CACHE && shard->nseg_cache < SEG_CACHE_MAX) {
        seg->next = shard->seg_cache;
        shard->seg_cache = seg;
        shard->nseg_cache++;
    } else if (seg->origin == SEG_FROM_SMALL && shard->nsmall_cache < SMALL_CACHE_MAX) {
        seg->next = shard->small_cache;
        shard->small_cache = seg;
        shard->nsmall_cache++;
    } else {
        free(seg);
    }
}

/* Brings otail->len up to date with what the sink wrote into it. */
static void conn_sync(struct conn *conn)
{
    struct oseg *tail = conn->otail;
    if (conn->sink.pos == NULL || tail == NULL)
        return;
    uint32_t len = (uint32_t)(conn->sink.pos - tail->data);
    conn->out_bytes += len - tail->len;
    conn->shard->m.shard_out_bytes += len - tail->len; /* guard.h */
    tail->len = len;
}

static void conn_append(struct conn *conn, struct oseg *seg)
{
    if (conn->otail != NULL)
        conn->otail->next = seg;
    else
        conn->ohead = seg;
    conn->otail = seg;
}

static bool conn_sink_grow(struct sink *sink, size_t need)
{
    struct conn *conn = (struct conn *)sink;
    conn_sync(conn);
    struct oseg *seg = seg_get(conn->shard, need);
    if (seg == NULL)
        return false;
    conn_append(conn, seg);
    sink->pos = seg->data;
    sink->end = seg->data + seg->cap;
    return true;
}

struct oseg *conn_pending(struct conn *conn)
{
    conn_sync(conn);
    struct oseg *seg = seg_get_small(conn->shard);
    if (seg == NULL)
        return NULL;
    conn_append(conn, seg);
    /* The next write must start a new segment after the placeholder. */
    conn->sink.pos = conn->sink.end = NULL;
    conn->npending++;
    return seg;
}

/* Could the replies this connection is waiting for, at their estimated
 * size, take its output past the cap? */
static bool conn_pending_too_large(const struct conn *conn)
{
    return conn->npending >= CONN_PENDING_MAX ||
           (conn->npending > 0 &&
            conn->out_bytes + (uint64_t)conn->npending * conn->reply_est > conn->shard->srv->out_cap);
}

void conn_fill(struct conn *conn, struct oseg *seg, const void *data, size_t len)
{
    if (len > seg->cap) {
        char *ext = malloc(len);
        if (ext == NULL) {
            conn->shard->m.malloc_fails++;
            conn_close(conn, "out of memory for a reply");
            return;
        }
        seg->data = ext;
        seg->cap = (uint32_t)len;
        seg->ext_data = 1;
    }
    memcpy(seg->data, data, len);
    seg->len = (uint32_t)len;
    seg->kind = OSEG_DATA;
    conn->out_bytes += len;
    conn->shard->m.shard_out_bytes += len; /* guard.h */
    conn->npending--;
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
        shard_resume_later(conn->shard, conn);
    }
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
    conn->sink.grow = conn_sink_grow;
    conn->last_cmd_time = shard->now;
    /* Until replies show otherwise, a forwarded reply may be an item of the
     * largest size: a new connection starts with few requests in flight. */
    conn->reply_est = (uint32_t)shard->srv->cfg.item_size_max;
    proto_parser_init(&conn->parser, &shard->srv->limits);
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
    while (conn->ohead != NULL) {
        struct oseg *seg = conn->ohead;
        conn->ohead = seg->next;
        seg_put(shard, seg);
    }
    conn->otail = NULL;
    shard->m.shard_out_bytes -= conn->out_bytes; /* unsent, dropped (guard.h) */
    conn->out_bytes = 0;
    guard_input_release(shard, conn->rcap);
    free(conn->rbuf);
    conn->rbuf = NULL;
    conn->rcap = 0;
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
    struct shard *shard = conn->shard;
    if (conn->fd >= 0) {
        close(conn->fd);
        conn->fd = -1;
    }
    while (conn->ohead != NULL) {
        struct oseg *seg = conn->ohead;
        conn->ohead = seg->next;
        seg_put(shard, seg);
    }
    free(conn->rbuf);
    free(conn);
}

/* --- requests ---------------------------------------------------------- */

static bool reply_line(struct conn *conn, const char *line)
{
    size_t len = strlen(line);
    char *p = sink_reserve(&conn->sink, len + 2);
    if (p == NULL)
        return false;
    memcpy(p, line, len);
    p[len] = '\r';
    p[len + 1] = '\n';
    sink_commit(&conn->sink, len + 2);
    return true;
}

/* Stops reading a connection whose unsent output passed the cap: parsing
 * stops, and its recv is cancelled so the kernel's socket buffer, not our
 * memory, holds what the client keeps sending. Resumed by conn_on_send. */
static void conn_pause(struct conn *conn)
{
    conn->paused = true;
    conn->shard->m.conn_yields++;
    if (conn->recv_armed && !conn->cancel_inflight) {
        struct io_uring_sqe *sqe = shard_sqe(conn->shard);
        io_uring_prep_cancel64(sqe, ud_make(UD_RECV, conn->index, conn->gen), 0);
        io_uring_sqe_set_data64(sqe, ud_make(UD_CANCEL, conn->index, conn->gen));
        conn->cancel_inflight = true;
    }
}

/* Checked before every request, so one receive buffer full of pipelined
 * gets cannot produce more than about one reply beyond the cap, whether
 * the replies are written here or are still to come from other shards. */
static bool conn_may_parse(struct conn *conn)
{
    if (conn->closing || conn->paused)
        return false;
    if (conn_pending_too_large(conn)) {
        conn->blocked = true; /* conn_fill resumes it */
        return false;
    }
    conn_sync(conn);
    if (conn->out_bytes > conn->shard->srv->out_cap) {
        conn_pause(conn);
        return false;
    }
    if (guard_shard_out_full(conn)) { /* the shard's cap (guard.h) */
        conn_pause(conn);
        return false;
    }
    return true;
}

/* Executes one parsed request. Returns false if the connection must stop
 * parsing (closing, or out of memory). */
static bool conn_execute(struct conn *conn, const struct proto_req *req)
{
    struct shard *shard = conn->shard;
    struct server *srv = shard->srv;
    bool ok = true;

    conn->last_cmd_time = shard->now;
    switch (req->cmd) {
    case PROTO_NONE: /* swallowed bytes, or a close with nothing to say */
        break;
    case PROTO_ERROR:
        if (req->error != NULL && !req->noreply && !req->close)
            ok = reply_line(conn, req->error);
        break;
    case PROTO_GET:
    case PROTO_GETS:
    case PROTO_GAT:
    case PROTO_GATS: {
        uint32_t pos = 0;
        const char *key;
        uint32_t nkey;
        while (ok && proto_next_key(req, &pos, &key, &nkey))
            ok = srv->handler->keyed(conn, req, key, nkey);
        if (ok)
            ok = sink_puts(&conn->sink, "END\r\n");
        break;
    }
    case PROTO_SET:
    case PROTO_ADD:
    case PROTO_REPLACE:
    case PROTO_APPEND:
    case PROTO_PREPEND:
    case PROTO_CAS:
    case PROTO_DELETE:
    case PROTO_INCR:
    case PROTO_DECR:
    case PROTO_TOUCH:
        ok = srv->handler->keyed(conn, req, req->key, req->nkey);
        break;
    /* meta commands: keyed ones go where their key lives; mn is answered
     * here, in order after every reply before it (placeholders included) */
    case PROTO_MG:
    case PROTO_MS:
    case PROTO_MD:
    case PROTO_MA:
    case PROTO_ME:
        ok = srv->handler->keyed(conn, req, req->key, req->nkey);
        break;
    case PROTO_MN:
        ok = reply_line(conn, "MN");
        break;
    case PROTO_STATS:
        ok = stats_command(conn, req);
        break;
    case PROTO_FLUSH_ALL:
        shard->m.cmd_flush++;
        route_flush_all(shard, req->exptime);
        if (!req->noreply)
            ok = reply_line(conn, "OK");
        break;
    case PROTO_VERSION:
        ok = reply_line(conn, "VERSION " SERVER_VERSION_STRING);
        break;
    case PROTO_VERBOSITY:
        atomic_store_explicit(&srv->verbosity, req->level > LOG_LEVEL_MAX ? LOG_LEVEL_MAX : req->level,
                              memory_order_relaxed);
        if (!req->noreply)
            ok = reply_line(conn, "OK");
        break;
    case PROTO_QUIT:
        conn->close_after_write = true;
        conn->closing = true;
        return false;
    case PROTO_SHUTDOWN:
        if (!srv->cfg.enable_shutdown) {
            ok = reply_line(conn, "ERROR: shutdown not enabled");
            break;
        }
        log_info(srv, "shutdown requested by a client");
        server_stop(srv);
        conn_close(conn, "shutdown command");
        return false;
    case PROTO_NOOP: /* binary only (conn_bin.c) */
    case PROTO_CMD_COUNT:
        break;
    }
    if (!ok) {
        conn_close(conn, "out of memory composing a reply");
        return false;
    }
    if (req->close) {
        conn_close(conn, req->error != NULL ? req->error : "protocol close");
        return false;
    }
    return true;
}

/* The text protocol's step: one request parsed and executed. */
static size_t text_step(struct conn *conn, const char *buf, size_t len, size_t *need)
{
    struct proto_req req;
    size_t used = proto_parse(&conn->parser, buf, len, &req, need);
    if (used > 0)
        conn_execute(conn, &req);
    return used;
}

const struct conn_ops conn_text_ops = {
    .name = "ascii",
    .step = text_step,
};

/* memcached negotiates per connection from the first byte: 0x80 (the
 * binary request magic) means binary (conn_bin.c), anything else text. */
static size_t auto_step(struct conn *conn, const char *buf, size_t len, size_t *need)
{
    conn->ops = (unsigned char)buf[0] == PROTO_BIN_REQ_MAGIC ? &conn_binary_ops : &conn_text_ops;
    return conn->ops->step(conn, buf, len, need);
}

const struct conn_ops conn_auto_ops = {
    .name = "auto-negotiate",
    .step = auto_step,
};

/* Parses and executes requests from buf; returns the bytes consumed. */
static size_t conn_parse(struct conn *conn, const char *buf, size_t len)
{
    size_t off = 0;
    conn->rneed = 0;
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
            break;
        }
        off += used;
        if (metered)
            shard_request_end(conn->shard, timed, start);
    }
    conn_sync(conn);
    return off;
}

static bool rbuf_append(struct conn *conn, const char *data, size_t len)
{
    if (conn->rlen + len > conn->rcap) {
        size_t cap = conn->rcap ? conn->rcap : 4096;
        while (cap < conn->rlen + len)
            cap *= 2;
        if (!guard_input_reserve(conn, cap - conn->rcap))
            return false; /* past the connections' memory budget: answered, closing */
        char *rbuf = realloc(conn->rbuf, cap);
        if (rbuf == NULL) {
            guard_input_release(conn->shard, cap - conn->rcap);
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

/* --- completions ------------------------------------------------------- */

static void recycle_buffer(struct shard *shard, unsigned bid)
{
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
        if (res > 0 && !conn->closing) {
            const char *data = shard->bufs + (size_t)bid * shard->buf_size;
            shard->m.bytes_read += (uint64_t)res;
            size_t used = 0;
            if (conn->rlen == 0)
                used = conn_parse(conn, data, (size_t)res);
            if (conn->fd >= 0 && !conn->close_inflight && used < (size_t)res) {
                if (!rbuf_append(conn, data + used, (size_t)res - used) && !conn->close_after_write) {
                    shard->m.malloc_fails++;
                    conn_close(conn, "out of memory buffering input");
                }
                else if (used == 0)
                    conn_parse_rbuf(conn);
            }
            conn_want_flush(conn);
        }
        recycle_buffer(shard, bid);
    }
    if (conn->fd < 0)
        return;
    if (!more)
        conn->recv_armed = false;

    if (res == 0) {
        /* The peer finished sending (`echo stats | nc` shuts down its write
         * side): answer what it sent, then close. */
        conn->eof = true;
        conn->closing = true;
        conn->close_after_write = true;
        conn_want_flush(conn);
    } else if (res == -ENOBUFS) {
        shard->m.recv_nobufs++; /* every provided buffer taken: re-armed below */
        if (!conn->recv_armed && !conn->closing && !conn->paused)
            conn_want_rearm(conn);
    } else if (res < 0 && res != -ECANCELED) {
        if (res != -ECONNRESET)
            log_info(shard->srv, "<%d recv failed: %s", conn->fd, strerror(-res));
        conn_close(conn, "recv error");
    } else if (!conn->recv_armed && !conn->closing && !conn->paused) {
        conn_want_rearm(conn);
    }
    conn_maybe_free(conn);
}

void conn_rearm(struct conn *conn)
{
    conn->on_rearm_list = false;
    if (conn->fd >= 0 && !conn->recv_armed && !conn->closing && !conn->paused && !conn->cancel_inflight)
        conn_arm_recv(conn);
    conn_maybe_free(conn);
}

void conn_on_cancel(struct conn *conn, int res)
{
    conn->cancel_inflight = false;
    if (conn->fd >= 0 && !conn->paused && !conn->recv_armed && !conn->closing)
        conn_want_rearm(conn);
    conn_maybe_free(conn);
}

void conn_on_close(struct conn *conn, int res)
{
    (void)res;
    conn_maybe_free(conn);
}

void conn_resume(struct conn *conn)
{
    conn->on_resume_list = false;
    if (conn->fd >= 0 && !conn->close_inflight) {
        conn_parse_rbuf(conn);
        if (conn->fd >= 0 && !conn->recv_armed && !conn->closing && !conn->paused)
            conn_want_rearm(conn);
        conn_want_flush(conn);
    }
    conn_maybe_free(conn);
}

/* Returns fully sent segments to the caches. */
static void conn_reclaim(struct conn *conn)
{
    struct shard *shard = conn->shard;
    while (conn->ohead != NULL) {
        struct oseg *seg = conn->ohead;
        if (seg->kind != OSEG_DATA || seg->sent < seg->len)
            break;
        if (seg == conn->otail) {
            /* The sink may still be writing here; only let go when the
             * segment is exactly full or the sink is elsewhere. */
            if (conn->sink.pos != NULL && conn->sink.pos != seg->data + seg->len)
                break;
            conn->otail = NULL;
            conn->sink.pos = conn->sink.end = NULL;
        }
        conn->ohead = seg->next;
        seg_put(shard, seg);
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
    conn_sync(conn);
    conn_reclaim(conn);

    unsigned n = 0;
    for (struct oseg *seg = conn->ohead; seg != NULL && n < CONN_IOV_MAX; seg = seg->next) {
        if (seg->kind == OSEG_PENDING)
            break;
        if (seg->len > seg->sent) {
            conn->iov[n].iov_base = seg->data + seg->sent;
            conn->iov[n].iov_len = seg->len - seg->sent;
            n++;
        }
    }
    if (n == 0) {
        if (conn->close_after_write && conn->npending == 0)
            conn_close(conn, conn->eof ? "end of stream" : "quit");
        conn_maybe_free(conn);
        return;
    }
    struct io_uring_sqe *sqe = shard_sqe(conn->shard);
    if (n == 1) {
        io_uring_prep_send(sqe, conn->fd, conn->iov[0].iov_base, conn->iov[0].iov_len, MSG_NOSIGNAL);
    } else {
        memset(&conn->msg, 0, sizeof(conn->msg));
        conn->msg.msg_iov = conn->iov;
        conn->msg.msg_iovlen = n;
        io_uring_prep_sendmsg(sqe, conn->fd, &conn->msg, MSG_NOSIGNAL);
    }
    io_uring_sqe_set_data64(sqe, ud_make(UD_SEND, conn->index, conn->gen));
    conn->send_inflight = true;
}

void conn_on_send(struct conn *conn, int res)
{
    struct shard *shard = conn->shard;
    conn->send_inflight = false;
    if (res < 0) {
        if (res != -EPIPE && res != -ECONNRESET)
            log_info(shard->srv, "<%d send failed: %s", conn->fd, strerror(-res));
        conn_close(conn, "send error");
        conn_maybe_free(conn);
        return;
    }
    shard->m.bytes_written += (uint64_t)res;
    conn->out_bytes -= (uint64_t)res;
    shard->m.shard_out_bytes -= (uint64_t)res; /* guard.h */
    size_t left = (size_t)res;
    for (struct oseg *seg = conn->ohead; seg != NULL && left > 0; seg = seg->next) {
        size_t take = seg->len - seg->sent;
        if (take > left)
            take = left;
        seg->sent += (uint32_t)take;
        left -= take;
    }
    conn_reclaim(conn);
    if (conn->paused && conn->out_bytes <= shard->srv->out_cap / 2) {
        conn->paused = false;
        shard_resume_later(shard, conn);
    }
    if (conn->close_inflight) {
        conn_maybe_free(conn);
        return;
    }
    conn_want_flush(conn);
}
