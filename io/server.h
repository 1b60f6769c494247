/*
 * server.h: what the shards of one process share (the contract; see
 * server.c; boot.c builds, starts and joins them).
 *
 * Everything here is written once by the main thread before the shards
 * start and only read afterwards, except the few atomics at the bottom,
 * which are written rarely (shutdown, verbosity, accept/close for -c) and
 * never on the request path.
 */
#ifndef CORECACHE_IO_SERVER_H
#define CORECACHE_IO_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/cfg.h"
#include "../core/clock.h"
#include "../core/exec.h"
#include "../core/peek.h"
#include "../core/proto.h"
#include "../core/ring.h"
#include "detail.h"
#include "qsbr.h"
#include "watch.h"
#include "../numa/place.h"

struct shard;
struct xchan;
struct conn;
struct tls_server;
struct login;

/*
 * What a server does with a request's keys. corecache's handler (local
 * NULL) routes each key to its owning shard's store (core/exec.c, route.c);
 * the benchmark's ceiling answers every key where it arrives from a fixed
 * reply, without storage (bench/ceiling.c).
 */
struct server_handler {
    const char *name; /* the program, for -V and logs */
    /* NULL, or what answers every key on the shard that received it,
     * called with shard_state as its state (exec.h). Shard thread. */
    exec_local_fn local;
    /* Bytes of zeroed per-shard state the handler keeps (shard->handler_state),
     * and what releases what the handler put there (may be NULL). */
    size_t shard_state_size;
    void (*shard_fini)(void *state);
};

/* The version `version` answers: the memcached release whose protocol we
 * follow, alone, because clients parse it (the Node `memcached` package
 * reads the last x.y.z of the line, others gate features on it). Our own
 * release is CORECACHE_VERSION, shown by -V, `stats` (corecache_version)
 * and /metrics (corecache_build_info). */
#define CORECACHE_VERSION "0.1.0"
#define SERVER_VERSION_STRING "1.6.18"

struct server {
    const struct server_handler *handler;
    struct cfg cfg;
    struct mc_clock clock;
    struct proto_limits limits;
    struct ring *ring;
    struct place_plan plan;
    unsigned nshards;
    struct shard **shards;
    struct xchan **chans;   /* chans[from * nshards + to] */
    unsigned nlisten;       /* addresses in -l */
    pid_t pid;
    int64_t started_unix;   /* real start, for uptime */
    uint64_t out_cap;       /* unsent bytes per connection before reading pauses */
    struct tls_server *tls; /* -Z (io/tls.c); NULL without */
    struct login *login;    /* -Y, -S, --metrics-auth-file (io/login.c); NULL without */
    struct detail detail;   /* `stats detail`: per-prefix counts (detail.c) */
    struct watch watch;     /* `watch`: log streams (watch.c, issue 12) */
    bool io_epoll;          /* shards run the epoll backend, not io_uring (evring.h; app.c) */
    struct peek_shard *peek; /* issue 17: [shard] write sequence and store view (core/peek.h) */
    atomic_uint_least64_t flush_issued; /* issue 17: flush_alls any shard started (core/peek.h) */
    struct qsbr *qsbr;       /* issue 17: reclamation of what peers may read (qsbr.h) */

    /* Startup gate: shards count themselves ready, main opens the gate once
     * every started shard has its ring (so every ring_fd is known). */
    pthread_mutex_t start_lock;
    pthread_cond_t start_cond;
    unsigned ready;
    bool go;
    atomic_bool start_failed;
    pthread_t main_thread;

    /* Rarely written. */
    atomic_bool stopping;        /* SIGTERM/SIGINT/shutdown: drain and exit */
    atomic_uint drained;         /* shards that have closed all connections */
    atomic_uint verbosity;       /* -v level, changed by `verbosity` */
    atomic_uint curr_conns;      /* open connections, for -c */
    atomic_uint_least64_t listen_disabled_num; /* accepts failed with EMFILE/ENFILE */
    atomic_uint accept_paused;   /* listeners waiting out an accept backoff (guard.c) */

    struct { /* issue 14: -e FILE (io/memfile.c) */
        bool committed;                 /* the last stop left FILE.meta (read before shards start) */
        atomic_uint saved;              /* shards whose save completed at this stop */
        atomic_uint numa_bound;         /* shards whose mapping mbind() bound to their node */
        atomic_uint_least64_t items;    /* items the start reattached */
        atomic_uint cold;               /* enum warm_cold: why the start did not reattach */
        atomic_uint_least64_t unit;     /* the memory files' page size (4 KiB, or huge) */
    } warm;
    atomic_uint_least64_t paused_since_ns, paused_total_ns; /* time_in_listen_disabled_us (guard.c) */
    /* issue 12 (io/memlimit.c): the item memory limit now (cache_memlimit),
     * and the bytes T_MEMD_INITIAL_MALLOC counts as allocated */
    atomic_uint_least64_t mem_limit;
    atomic_bool crawler_on; /* issue 12 (io/lrucrawl.c): lru_crawler enable|disable */
    uint64_t mem_held;
};

/* The shared channel from shard `from` to shard `to`. */
static inline struct xchan *server_chan(const struct server *srv, unsigned from, unsigned to)
{
    return srv->chans[from * srv->nshards + to];
}

/* Called by each shard once set up (or failed): waits for the gate. */
void server_shard_ready(struct server *srv);

/* Asks every shard to drain and stop (thread-safe, async-signal-unsafe). */
void server_stop(struct server *srv);

#endif
