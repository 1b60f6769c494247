/*
 * guard.h: what a shard does when a resource runs out (the contract; see
 * guard.c).
 *
 * Every limit the server can hit is handled here, in one place, so the
 * event loop (shard.c) and the connection (conn.c) carry only a one-line
 * hook each, and every exhaustion has one counter (io/shard.h's
 * SHARD_METRIC) that `stats` and /metrics show:
 *
 *   descriptors       soft RLIMIT_NOFILE raised at start to what -c needs;
 *                     EMFILE/ENFILE on accept pauses accepting with a
 *                     backoff timer (listen_disabled_num), then re-arms
 *   io_uring CQ       an overflowed completion queue is noticed and counted
 *                     (uring_cq_overflows); multishot requests it ended are
 *                     re-armed by their owners (a full SQ is submitted
 *                     early by shard_sqe, counted as uring_sq_full)
 *   connection memory input buffers capped by --conn-memory (conn_mem_refused)
 *   output backlog    a shard's unsent replies are capped (shard_out_yields),
 *                     as each connection's are (conn.c, conn_yields)
 *   metrics endpoint  GUARD_HTTP_SLOTS connections per shard; a new scraper
 *                     takes the slot of the oldest idle one (http_evicted);
 *                     idle connections time out, a request has a deadline
 *                     (http_timeouts)
 *
 * The others (provided buffers, output backlogs, cross-shard backlog,
 * connection memory) are counted where they happen (conn.c, route.c)
 * through the counters declared next to these.
 */
#ifndef CORECACHE_IO_GUARD_H
#define CORECACHE_IO_GUARD_H

#include <stdbool.h>
#include <stdint.h>

struct server;
struct shard;
struct conn_ops;

/* Connections to the metrics endpoint per shard. */
#define GUARD_HTTP_SLOTS 64
/* A metrics request must be answered (request read, gathered and the reply
 * sent) within this many seconds of its first byte. */
#define GUARD_HTTP_DEADLINE_S 10
/* Accept pauses after EMFILE/ENFILE: first wait, and the longest. */
#define GUARD_ACCEPT_BACKOFF_MIN_MS 10
#define GUARD_ACCEPT_BACKOFF_MAX_MS 1000

/*
 * Descriptors the server needs: -c client connections, the metrics slots,
 * every shard's listeners and ring, and a few for the process itself.
 * Main thread, after server_setup.
 */
uint64_t guard_nofile_need(const struct server *srv);

/*
 * Raises the soft RLIMIT_NOFILE to `need` (never lowers it). Returns 0 when
 * the limit is at least `need` afterwards; otherwise -EPERM with *have set
 * to the limit the process has (the hard limit is below `need`). Main
 * thread.
 */
int guard_raise_nofile(uint64_t need, uint64_t *have);

/*
 * The shard's multishot accept on `listener` failed with `res` (-errno).
 * For a shortage of descriptors or memory it counts listen_disabled_num,
 * arms a backoff timer (UD_ACCEPT_RETRY) and returns true: the caller must
 * not re-arm the accept, the timer's completion does, after calling
 * guard_accept_resumed. Until then `accepting_conns` reads 0.
 * Otherwise returns false. Shard thread.
 */
bool guard_accept_failed(struct shard *shard, unsigned listener, int res);

/* The backoff timer of a pause begun by guard_accept_failed completed:
 * the listener accepts again. Shard thread. */
void guard_accept_resumed(struct shard *shard);

/* A connection was accepted: the next pause starts from the shortest
 * backoff again. Shard thread. */
void guard_accept_ok(struct shard *shard);

/*
 * The metrics endpoint's slots are kept by the loop (loop.c, which owns
 * the connections): a scraper accepted when all GUARD_HTTP_SLOTS are taken
 * closes the oldest idle one, or gets a 503 when every slot is busy with a
 * request (each ends within GUARD_HTTP_DEADLINE_S); every GUARD_SWEEP_TICKS
 * ticks, scrapers idle past --metrics-idle-timeout or past their deadline
 * are closed.
 */
#define GUARD_SWEEP_TICKS 5

/*
 * The shard's cap on unsent reply bytes over all its connections: 4 times
 * the per-connection cap (srv->out_cap), 1 MiB. True (and shard_out_yields counted)
 * when the shard is past it and `conn` has unsent output of its own: conn.c
 * then pauses the connection's reading as for its own cap, and the send of
 * that output resumes it. A connection with nothing unsent always proceeds,
 * so every client keeps getting one reply at a time. Shard thread.
 */
#define GUARD_SHARD_OUT_CAPS 4

/*
 * The per-connection cap (srv->out_cap): unsent reply bytes a connection may
 * hold before conn.c stops parsing and receiving its requests, whatever -I
 * is. The check is before each request, so one reply of any size passes it
 * (a large value is referenced, not copied); reading resumes once half has
 * been sent. The client's pipeline then waits in the kernel's socket
 * buffers, as on memcached, which stops reading a connection it cannot
 * write to. It was max(1 MiB, -I): a slow reader of 100k pipelined gets
 * held 1 MiB of reply copies and the input behind them.
 */
#define GUARD_CONN_OUT_CAP (256u * 1024)

/*
 * The shard's cap on its cross-shard backlog (records that found their
 * channel full, xchan_backlog_bytes): 16 times the per-connection cap (4 MiB). Past
 * it, a connection with requests out at other shards parses nothing more
 * (xchan_backlog_yields) until one of its replies arrives and the backlog
 * is back under the cap; a connection with none out always proceeds, and
 * forwarded requests and their replies are never held, so every backlog
 * keeps draining. What passes the cap is at most one request per
 * connection that was under it. Shard thread (conn.c).
 */
#define GUARD_XCHAN_BACKLOG_CAPS 16

/* The shard's shard_out_bytes follows each connection's out.bytes when
 * asked: before a request (guard_shard_out_full), after a send
 * (guard_out_sync), and at its end (guard_out_forget). Between, replies
 * filled by other shards make it lag a little. Shard thread. */

/*
 * Connection memory: the input buffers of requests being received (a
 * request's unparsed beginning, up to -I plus its line) count against
 * --conn-memory, split evenly between the shards. guard_input_reserve is
 * asked before a buffer grows by `bytes`: false when the shard's share
 * would be passed, after answering memcached's "SERVER_ERROR out of memory
 * reading request" and marking the connection to close once that is sent
 * (conn_mem_refused). guard_input_release gives bytes back. Shard thread.
 */

void guard_input_release(struct shard *shard, uint64_t bytes);

/*
 * The per-connection memory budget: a connection holds no output iovecs
 * of its own. A send takes a struct conn_send (msghdr and CONN_IOV_MAX
 * iovecs, 1 KiB) from the shard's pool for as long as it is in flight
 * (a single-buffer send not even that), so an idle connection costs its
 * struct conn alone. get: NULL when memory ran out (malloc_fails); put:
 * NULL is ignored; the pool keeps GUARD_SEND_POOL_MAX free. Shard thread.
 */
#include <sys/socket.h>
#include <sys/uio.h>
#define GUARD_SEND_IOV_MAX 64 /* CONN_IOV_MAX */
#define GUARD_SEND_POOL_MAX 256
struct conn_send {
    struct conn_send *next; /* the pool's free list */
    struct msghdr msg;
    struct iovec iov[GUARD_SEND_IOV_MAX];
};
struct conn_send *guard_send_get(struct shard *shard);
void guard_send_put(struct shard *shard, struct conn_send *sb);
/* Frees the pool (shard teardown). */
void guard_send_pool_fini(struct shard *shard);

/* Once per loop iteration: counts an overflowed completion queue (a read
 * of the ring's shared flags, no syscall). Shard thread. */
void guard_check_ring(struct shard *shard);

#endif
