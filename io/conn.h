/*
 * conn.h: a client connection (the contract; see conn.c).
 *
 * A connection lives on the shard that accepted it. Bytes arrive by
 * multishot recv into the shard's provided buffers; conn.c parses requests
 * (core/proto.h) straight out of those buffers, hands each to the router
 * (route.h), and keeps only the unparsed tail of a request in its own
 * buffer. Replies are appended to an output chain that the router may fill
 * out of order (a forwarded request reserves a pending segment), and the
 * chain is sent in order, once per loop iteration.
 *
 * Output chain:
 *
 *   ohead                                                         otail
 *   [INLINE 16K: replies..] -> [PENDING: awaiting shard 3] -> [INLINE: ..]
 *        ^sent so far                                          ^sink.pos
 *
 * Sending stops at the first pending segment, so replies reach the client in
 * request order even when a pipeline or a multi-get spans shards.
 */
#ifndef CORECACHE_IO_CONN_H
#define CORECACHE_IO_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "../core/clock.h"
#include "../core/proto.h"
#include "../core/sink.h"

struct shard;
struct conn;

/*
 * A connection's protocol. `step` consumes one request from buf: parses it,
 * executes it (replies go to conn->sink or through the router), and returns
 * the bytes used; or returns 0 when buf holds no complete request, with
 * *need set to the total bytes it needs from buf when known (else 0). It
 * may close the connection or stop it from reading (conn->closing). A
 * protocol may replace conn->ops (auto-negotiation does, on the first byte).
 */
struct conn_ops {
    const char *name;
    size_t (*step)(struct conn *conn, const char *buf, size_t len, size_t *need);
    /* A connection to the metrics endpoint, not a cache client: counted
     * in http_connections, not in curr_connections, total_connections or
     * against -c, and its requests are not the cache's `requests` nor in
     * the service-time histogram. */
    bool metrics_endpoint;
};

/* memcached's text protocol. */
extern const struct conn_ops conn_text_ops;
/* memcached's default (-B auto): decided by a connection's first byte. */
extern const struct conn_ops conn_auto_ops;
/* memcached's binary protocol (conn_bin.c). */
extern const struct conn_ops conn_binary_ops;
/* The protocol new connections start with, for -B "ascii", "binary" or
 * "auto" (anything else: auto). Any thread. */
const struct conn_ops *conn_ops_for_protocol(const char *protocol);

enum oseg_kind {
    OSEG_DATA,    /* bytes ready to send */
    OSEG_PENDING, /* a forwarded request's reply, not here yet */
};

/* Segment sizes: regular segments come from a per-shard cache, small ones
 * (a forwarded reply's placeholder) from another; larger needs are
 * malloc'ed exactly. */
#define OSEG_SIZE (16 * 1024)
#define OSEG_SMALL_SIZE 512
#define CONN_IOV_MAX 64

struct oseg {
    struct oseg *next;
    char *data;
    uint32_t len;  /* bytes written */
    uint32_t cap;
    uint32_t sent; /* bytes already sent */
    uint8_t kind;
    uint8_t origin;    /* OSEG_SIZE, OSEG_SMALL_SIZE cache, or malloc */
    uint8_t ext_data;  /* data was malloc'ed separately */
};

struct conn {
    struct sink sink; /* writes into otail; first member, grow() casts back */
    struct shard *shard;
    const struct conn_ops *ops;
    int fd;
    uint32_t index;
    uint32_t gen;

    /* input */
    struct proto_parser parser;
    char *rbuf;       /* unparsed bytes (a request's beginning) */
    size_t rlen;
    size_t rcap;
    size_t rneed;     /* parsing makes no progress before rlen reaches this */

    /* output */
    struct oseg *ohead;
    struct oseg *otail;
    uint64_t out_bytes; /* written and not yet sent, pending excluded */
    uint32_t npending;  /* forwarded requests whose replies are awaited */
    uint32_t reply_est; /* expected size of a forwarded reply (conn_fill) */
    struct msghdr msg;
    struct iovec iov[CONN_IOV_MAX];

    /* list links (each list a singly linked stack in the shard) */
    struct conn *flush_next;
    struct conn *rearm_next;
    struct conn *resume_next;

    /* state */
    bool recv_armed;     /* a multishot recv is outstanding */
    bool send_inflight;
    bool cancel_inflight;
    bool close_inflight;
    bool on_flush_list;
    bool on_rearm_list;
    bool on_resume_list;
    bool paused;         /* slow reader: not reading until output drains */
    bool blocked;        /* too many requests out at other shards */
    bool closing;        /* no more input is processed */
    bool close_after_write; /* quit: close once all output is sent */
    bool eof;            /* the peer closed its side */

    mc_time_t last_cmd_time;
    /* metrics endpoint (scrape.c, guard.c): accept, or the latest request's
     * first byte; and whether a request is being read */
    uint64_t http_since_ns;
    bool http_in_request;
    struct sockaddr_storage peer;
};

/* Takes over an accepted socket speaking `ops`; arms its recv. NULL on
 * allocation failure (the caller closes fd). Shard thread only. */
struct conn *conn_create(struct shard *shard, int fd, const struct conn_ops *ops);

/* Completion handlers, called by the shard loop. */
void conn_on_recv(struct conn *conn, int res, uint32_t cqe_flags);
void conn_on_send(struct conn *conn, int res);
void conn_on_cancel(struct conn *conn, int res);
void conn_on_close(struct conn *conn, int res);

/* Re-arms a multishot recv that ended (buffer ring was empty). */
void conn_rearm(struct conn *conn);
/* Parses input held back (paused or blocked) if the connection may go on. */
void conn_resume(struct conn *conn);
/* Submits a send if output is ready and none is in flight. */
void conn_flush(struct conn *conn);

/* Marks the connection for sending at the end of this loop iteration. */
void conn_want_flush(struct conn *conn);

/* Reserves a placeholder for a forwarded request's reply, in order. */
struct oseg *conn_pending(struct conn *conn);
/* Fills a placeholder (data may be empty: the reply was suppressed). */
void conn_fill(struct conn *conn, struct oseg *seg, const void *data, size_t len);

/* Starts closing: stops input, sends nothing more, frees when the kernel
 * has released every buffer. `reason` is logged at -vv. */
void conn_close(struct conn *conn, const char *reason);

/* Begins a graceful stop for shutdown: no more reading; close after the
 * output already produced has been sent. */
void conn_drain(struct conn *conn);

/* Frees a connection's memory (shard teardown). */
void conn_destroy(struct conn *conn);

#endif
