/*
 * conn.h: a client connection (the contract; see conn.c).
 *
 * A connection lives on the shard that accepted it and moves bytes: they
 * arrive by multishot recv into the shard's provided buffers, go to the
 * connection's protocol step (conn_ops: parse and execute, io/serve.c for
 * the cache's protocols, io/scrape.c for HTTP) straight out of those
 * buffers, and only a request's unparsed beginning is kept in the
 * connection's own buffer. Replies go into the connection's output queue
 * (outq.h), which a forwarded request's reply fills out of order, and the
 * queue is sent in order, once per loop iteration. The connection knows no
 * command: it parses nothing itself and executes nothing.
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
#include "outq.h"

struct shard;
struct conn;
struct conn_transport;

/*
 * A connection's protocol. `step` consumes one request from buf: parses it,
 * executes it (replies go to conn->out or through the router), and returns
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
    /* A `watch` connection (io/watchconn.c): its close is not logged to
     * the watchers (issue 12). */
    bool log_stream;
};

#define CONN_IOV_MAX 64

struct conn {
    struct outq out; /* replies; write through &conn->out.sink */
    struct shard *shard;
    const struct conn_ops *ops;
    int fd;
    uint32_t index;
    uint32_t gen;
    uint32_t reply_est; /* expected size of a forwarded reply (conn_fill); here, it fills a hole */

    /* input */
    /* The parser's only state between requests: the rest of a value still
     * to discard. The parser itself (its 250-byte scratch for meta keys
     * included) is the shard's, swapped in per request (serve.c): an idle
     * connection does not carry it (issue 15). */
    uint64_t swallow;
    char *rbuf;       /* unparsed bytes (a request's beginning) */
    size_t rlen;
    size_t rcap;
    size_t rneed;     /* parsing makes no progress before rlen reaches this */

    /* output */
    /* the msghdr and iovecs of the send in flight, from the shard's pool
     * (guard.h): an idle connection holds none */
    struct conn_send *send_buf;
    struct iovec *iov; /* send_buf's, or the pool's while a send is prepared */

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
    bool eof;            /* the peer closed its side: what it sent is still run */
    bool starved;        /* the last parse stopped at an incomplete request */
    bool http_in_request; /* metrics endpoint: a request is being read */

    /* A transport between the socket and the protocol (TLS, io/tls.c), or
     * NULL for plain TCP; `transport_state` is its per-connection state. */
    const struct conn_transport *transport;
    void *transport_state;

    mc_time_t last_cmd_time;
    /* metrics endpoint (scrape.c, guard.c): accept, or the latest request's
     * first byte, in the shard's clock (seconds) */
    mc_time_t http_since;
    /* out.bytes as last added to the shard's shard_out_bytes (conn.c):
     * 32 bits, as output pauses at the 1 MiB cap and no reply reaches 4 GiB
     * (-I is at most 1 GiB); it keeps struct conn in its 256-byte class */
    uint32_t out_counted;
    /* AF_INET or AF_INET6 (a sockaddr_in fits; both keep the family first):
     * not sockaddr_storage, 100 bytes more on every connection (issue 15) */
    struct sockaddr_in6 peer;
};

/*
 * A transport (TLS) sits between the socket and the protocol: the recv
 * path hands it what arrived, and it gives conn_input what the protocol
 * reads; before a send it turns the output's iovecs into what goes on the
 * wire. conn.c calls it only where conn->transport is set, so plain
 * connections pay one branch per completion. Shard thread only.
 */
struct conn_transport {
    /* `len` bytes arrived: decode them, call conn_input with the result. */
    void (*on_recv)(struct conn *conn, const char *data, size_t len);
    /* Encode (a prefix of) conn->iov[0..n); *taken: the output bytes it
     * took. False on a transport error (the connection closes). Only when
     * no send is in flight. */
    bool (*seal)(struct conn *conn, unsigned n, size_t *taken);
    /* What to send now (into iov, at most one entry); it stays valid until
     * on_sent. */
    unsigned (*out_iov)(struct conn *conn, struct iovec *iov);
    /* `bytes` of what out_iov gave were sent. */
    void (*on_sent)(struct conn *conn, size_t bytes);
    /* Frees transport_state (the connection is closed). */
    void (*destroy)(struct conn *conn);
    /* Optional (issue 13, kTLS receive): called just before the receive is
     * armed again, when none is outstanding and all it took is handled. */
    void (*rearm)(struct conn *conn);
    /* Optional: a receive failed with res (< 0); true when the transport
     * dealt with it and the connection reads on (kTLS: a record that is
     * not application data). */
    bool (*recv_failed)(struct conn *conn, int res);
};

/* Takes over an accepted socket speaking `ops`; arms its recv. NULL on
 * allocation failure (the caller closes fd). Shard thread only. */
struct conn *conn_create(struct shard *shard, int fd, const struct conn_ops *ops);

/* The live connection in slot `index` of the shard's table with
 * generation `gen`, or NULL if it has closed since (a late completion or a
 * late cross-shard reply). Shard thread only. */
struct conn *conn_lookup(struct shard *shard, uint32_t index, uint32_t gen);

/* Completion handlers, called by the shard loop. */
void conn_on_recv(struct conn *conn, int res, uint32_t cqe_flags);
void conn_on_send(struct conn *conn, int res);
void conn_on_cancel(struct conn *conn, int res);

/* Parses and executes received plaintext (copied if a request is left
 * incomplete). The recv path calls it, or io/tls.c after decrypting. */
void conn_input(struct conn *conn, const char *data, size_t len);

/* The peer's end of stream (a FIN, or TLS's close_notify): the input
 * received before it still runs, then the connection closes. */
void conn_input_end(struct conn *conn);

/* Returns a provided buffer to the shard's ring unless its completion (res,
 * cqe_flags) says the kernel keeps filling it (IORING_CQE_F_BUF_MORE).
 * Shard thread only. */
void conn_recycle_buffer(struct shard *shard, unsigned bid, int res, uint32_t cqe_flags);


/* Re-arms a multishot recv that ended (buffer ring was empty). */
void conn_rearm(struct conn *conn);
/* Cancels the receive and arms a new one once the old one has ended
 * (the transport's rearm hook runs in between). Shard thread only. */
void conn_cycle_recv(struct conn *conn);
/* Parses input held back (paused or blocked) if the connection may go on. */
void conn_resume(struct conn *conn);
/* Submits a send if output is ready and none is in flight. */
void conn_flush(struct conn *conn);

/* Marks the connection for sending at the end of this loop iteration. */
void conn_want_flush(struct conn *conn);
/* Makes sure the loop looks at this connection's held-back input again
 * before it sleeps. */
void conn_want_resume(struct conn *conn);

/* Reserves a placeholder for a forwarded request's reply, in order; NULL
 * when memory ran out. */
struct oseg *conn_reserve(struct conn *conn);
/* Fills a placeholder (data may be empty: the reply was suppressed). */
void conn_fill(struct conn *conn, struct oseg *seg, const void *data, size_t len);

/* Stop reading; close once every reply produced so far is sent (quit). */
void conn_close_after_write(struct conn *conn);

/* Starts closing: stops input, sends nothing more, frees when the kernel
 * has released every buffer. `reason` is logged at -vv. */
void conn_close(struct conn *conn, const char *reason);

/* Begins a graceful stop for shutdown: no more reading; close after the
 * output already produced has been sent. */
void conn_drain(struct conn *conn);

/* Frees a connection's memory (shard teardown). */
void conn_destroy(struct conn *conn);

#endif
