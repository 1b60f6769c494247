/*
 * shard.h: one shard, the unit of the thread-per-core design (the contract;
 * see shard.c).
 *
 * A shard is one pinned thread that owns, with no sharing:
 *   - an io_uring ring (single issuer, deferred task running), on which it
 *     accepts (multishot, on its own SO_REUSEPORT listener), receives
 *     (multishot, into a ring of provided buffers) and sends;
 *   - a store (core/store.h) over a slab arena on its NUMA node: the keys
 *     the consistent-hash ring assigns to it;
 *   - its connections, and the metrics it is the only writer of.
 * It talks to other shards only through xchan channels (route.h).
 *
 * The struct is exposed to the other io/ modules of the same shard (conn.c,
 * route.c, stats.c, loop.c), never to other threads: another shard may read
 * only `ring_fd` (to wake it) and `id`. This header depends on no other
 * io/ module but server.h and outq.h: the modules above it (conn, route,
 * serve, stats, scrape, loop) each include it, and it includes none of
 * them.
 */
#ifndef CORECACHE_IO_SHARD_H
#define CORECACHE_IO_SHARD_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "../core/latency.h"
#include "../core/metrics.h"
#include "../core/exec.h"
#include "../core/peek.h"
#include "../core/process.h"
#include "../core/store.h"
#include "listen.h"
#include "outq.h"
#include "server.h"

/* The tick (clock refresh, crawler slice) and the items the crawler
 * examines per tick: `stats settings` reports their ratio as memcached's
 * lru_crawler_sleep (microseconds per item). */
#define SHARD_TICK_NS (100 * 1000 * 1000)
#define SHARD_CRAWL_BUDGET 2000

/* A shard's own metrics (memcached's names where memcached has them). */
#define SHARD_METRIC(ACTION) \
    ACTION(curr_connections, GAUGE, "Number of open connections")                             \
    ACTION(total_connections, COUNTER, "Total number of connections opened since start")      \
    ACTION(rejected_connections, COUNTER, "Connections rejected because of the -c limit")     \
    ACTION(connection_structures, GAUGE, "Number of connection structures allocated")         \
    ACTION(http_connections, GAUGE, "Open connections to the metrics endpoint (--metrics-port)") \
    ACTION(cmd_flush, COUNTER, "Number of flush_all requests")                                \
    ACTION(bytes_read, COUNTER, "Bytes read from the network")                                \
    ACTION(bytes_written, COUNTER, "Bytes written to the network")                            \
    ACTION(conn_yields, COUNTER,                                                              \
           "Times a connection yielded: -R's request cap reached, or its reading paused (slow reader)") \
    ACTION(requests, COUNTER, "Requests parsed and served on this shard's connections")      \
    ACTION(forwarded_out, COUNTER, "Keyed requests sent to the shard that owns the key")      \
    ACTION(forwarded_in, COUNTER, "Keyed requests served for other shards")                   \
    ACTION(xchan_wakeups, COUNTER, "Wakeups sent to other shards that said they may block")   \
    ACTION(peek_bumps_out, COUNTER, "Gets served from another shard's memory that it still had to count (issue 17)") \
    ACTION(uring_submits, COUNTER, "io_uring_enter submissions")                              \
    ACTION(uring_completions, COUNTER, "io_uring completions handled")                        \
    ACTION(ssl_handshake_errors, COUNTER, "TLS handshakes that failed (bad certificate, protocol)") \
    ACTION(ssl_new_sessions, COUNTER, "TLS sessions created (with -o ssl_session_cache)")    \
    /* issue 13: which record layer each open TLS connection uses (io/tls.c) */               \
    ACTION(ssl_record_layer_openssl, GAUGE, "TLS connections whose records OpenSSL seals and opens") \
    ACTION(ssl_record_layer_corecache, GAUGE,                                                 \
           "TLS 1.3 connections whose records corecache seals and opens with OpenSSL's AEAD")  \
    ACTION(ssl_record_layer_kernel, GAUGE, "TLS connections whose records the kernel (kTLS) seals") \
    ACTION(ssl_record_layer_kernel_rx, GAUGE,                                                 \
           "TLS connections whose received records the kernel (kTLS) opens too")              \
    ACTION(auth_cmds, COUNTER, "Authentication attempts (-Y and -S)")                        \
    ACTION(auth_errors, COUNTER, "Failed authentication attempts")                                 \
    /* exhaustion: each counts one way a resource ran out (io/guard.h) */                    \
    ACTION(uring_sq_full, COUNTER,                                                            \
           "Times the io_uring submission queue was full and was submitted early")           \
    ACTION(uring_cq_overflows, COUNTER,                                                       \
           "Loop iterations that found the io_uring completion queue overflowed")            \
    ACTION(recv_nobufs, COUNTER, "Receives that found every provided buffer taken (ENOBUFS)") \
    ACTION(shard_out_yields, COUNTER,                                                         \
           "Times a connection's reading paused because its shard's unsent output passed the cap") \
    ACTION(shard_out_bytes, GAUGE, "Unsent reply bytes held by the shard's connections")     \
    ACTION(xchan_backlogged, COUNTER,                                                         \
           "Cross-shard records that found their channel full and waited in the backlog")    \
    ACTION(xchan_backlog_bytes, GAUGE, "Bytes of cross-shard records waiting in the backlog") \
    ACTION(xchan_backlog_yields, COUNTER,                                                     \
           "Times a connection waited for its cross-shard replies because the backlog passed its cap") \
    ACTION(conn_input_bytes, GAUGE, "Bytes of input buffers held by connections (--conn-memory)") \
    ACTION(conn_mem_refused, COUNTER,                                                         \
           "Requests refused because connections' input buffers reached --conn-memory")      \
    ACTION(malloc_fails, COUNTER,                                                             \
           "Allocations for a connection that failed (it was refused or closed)")            \
    ACTION(http_evicted, COUNTER,                                                             \
           "Idle metrics connections closed to give a new scraper a slot")                   \
    ACTION(http_timeouts, COUNTER,                                                            \
           "Metrics connections closed idle, or past their request's deadline") \
    ACTION(idle_kicks, COUNTER, "Connections closed by -o idle_timeout (issue 12, io/idle.c)")

struct shard_metrics {
    METRIC_STRUCT(SHARD_METRIC)
};
extern const struct metric_desc shard_metric_desc[];
#define SHARD_METRIC_COUNT METRIC_COUNT(SHARD_METRIC)

struct conn;
struct conn_ops;
struct backlog_rec;
struct evring;

/* Listening sockets per shard: the cache's (-l) and the metrics endpoint's
 * (--metrics-port) on the same addresses. */
#define SHARD_LISTENERS_MAX (2 * LISTEN_ADDRS_MAX)

struct backlog {
    struct backlog_rec *head, *tail;
};

struct shard {
    struct server *srv;
    unsigned id;
    unsigned cpu;
    int node;
    pthread_t thread;
    int exit_code;

    struct io_uring ring;
    bool ring_ready;
    struct evring *evring; /* the epoll backend instead of `ring` (evring.h); NULL: io_uring */
    int ring_fd; /* read by other shards to wake this one (MSG_RING) */
    int listen_fds[SHARD_LISTENERS_MAX];
    bool accept_armed[SHARD_LISTENERS_MAX];
    const struct conn_ops *listen_ops[SHARD_LISTENERS_MAX]; /* what accepted sockets speak */
    bool listen_tls[SHARD_LISTENERS_MAX]; /* accepted sockets start TLS (-Z, not notls:) */
    unsigned nlisten;
    bool timer_armed;
    /* accept paused after EMFILE/ENFILE (io/guard.c) */
    unsigned accept_backoff_ms;
    struct __kernel_timespec accept_retry_ts[SHARD_LISTENERS_MAX];
    unsigned guard_ticks;
    mc_time_t idle_swept_at; /* -o idle_timeout's last sweep (io/idle.c) */
    struct conn_send *send_pool; /* free send buffers (io/guard.h) */
    unsigned send_pool_len;
    unsigned sqes_pending; /* prepared since the last submit */

    /* storage */
    void *arena;
    size_t arena_size;
    uint64_t mem_limit_seen; /* issue 12: the limit the store has (io/memlimit.c) */
    struct memfile *memfile; /* -e: the arena is this file's mapping (io/memfile.c) */
    struct store *store;
    struct process_env env;
    struct exec_ctx exec;  /* how this shard executes requests (route_setup) */
    struct conn *serving;  /* the connection whose request exec_request runs */
    struct peek_reader peek; /* issue 17: this shard's reads of peers' stores (route.c) */
    uint32_t *peek_pending;  /* issue 17: [peek_slot(hash)] forwarded, unanswered (route.c) */
    bool qsbr_offline;       /* issue 17: blocked in the kernel (qsbr.h) */
    mc_time_t now;

    /* provided receive buffers */
    struct io_uring_buf_ring *br;
    char *bufs;
    size_t br_size;
    unsigned nbufs;
    unsigned buf_size;
    uint16_t bgid;
    uint32_t *buf_off; /* issue 15: bytes the kernel has filled of each buffer (IOU_PBUF_RING_INC) */

    /* connections: a table indexed by the low bits of user_data */
    struct conn **conns;
    uint32_t conns_cap;
    uint32_t *free_idx;
    uint32_t nfree;
    uint32_t nconns;
    struct conn *flush_list;  /* connections with output to send */
    struct conn *rearm_list;  /* connections whose multishot recv ended */
    struct conn *resume_list; /* connections that may continue parsing */

    /* output segments of every connection (no malloc per request) */
    struct outq_cache outq_cache;

    /* cross-shard */
    struct backlog *backlog; /* per destination: records the channel had no room for */
    char *scratch;           /* reply composition for forwarded requests */
    size_t scratch_cap;
    struct sink scratch_sink;

    struct proto_parser parser; /* every connection's, one request at a time (serve.c) */

    void *handler_state; /* srv->handler->shard_state_size bytes, zeroed */

    /* shutdown */
    bool stopping;
    bool drained;
    uint64_t stop_deadline_ns;

    struct shard_metrics m;
    struct latency latency;    /* sampled request service time, same writer and readers as m */
    uint32_t sample_countdown; /* requests until the next timed one */
    uint32_t sample_rng;       /* xorshift32 state, never 0 */
};

/* Creates the shard's ring, provided buffers and store, on the shard's
 * thread. Returns 0 or -errno, with *step naming what failed. */
int shard_setup(struct shard *shard, const char **step);

/* Frees what shard_setup made (connections and records first: loop.c). */
void shard_teardown(struct shard *shard);

/* Refreshes the shard's and its store's notion of now. Shard thread. */
void shard_clock(struct shard *shard);

/* An SQE on the shard's ring, submitting what is queued if it is full.
 * Never returns NULL. Shard thread only. */
struct io_uring_sqe *shard_sqe(struct shard *shard);

/* The monotonic clock in nanoseconds: a vDSO read, not a syscall. */
static inline uint64_t shard_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Request accounting (conn.c, around each request a connection serves):
 * every request counts in `requests`; about one in SHARD_SAMPLE_MEAN, at
 * random, also has its service time measured into the histogram. A clock
 * read costs ~30 ns (vDSO, kvm-clock), several percent of a pipelined
 * request's cost, so the histogram samples rather than timing every one.
 *
 *     uint64_t start;
 *     bool timed = shard_request_begin(shard, &start);
 *     ... parse and serve one request ...
 *     served ? shard_request_end(shard, timed, start) : shard_request_none(shard, timed);
 *
 * Shard thread only.
 */
#define SHARD_SAMPLE_MEAN 16

static inline bool shard_request_begin(struct shard *shard, uint64_t *start)
{
    if (--shard->sample_countdown != 0)
        return false;
    *start = shard_clock_ns();
    return true;
}

static inline void shard_request_end(struct shard *shard, bool timed, uint64_t start)
{
    shard->m.requests++;
    if (!timed)
        return;
    latency_record(&shard->latency, shard_clock_ns() - start);
    /* the next sample in 1..2*MEAN-1 requests (xorshift32) */
    uint32_t x = shard->sample_rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    shard->sample_rng = x;
    shard->sample_countdown = 1 + x % (2 * SHARD_SAMPLE_MEAN - 1);
}

/* The step served nothing (incomplete input): the next request is timed. */
static inline void shard_request_none(struct shard *shard, bool timed)
{
    if (timed)
        shard->sample_countdown = 1;
}

#endif
