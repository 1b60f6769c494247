/*
 * watch.h: memcached's `watch` log streams for the whole server (the
 * contract; see watch.c), handed to every shard's exec_ctx.
 */
#ifndef CORECACHE_IO_WATCH_H
#define CORECACHE_IO_WATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/clock.h"
#include "../core/exec.h"

/* memcached's WATCHER_LIMIT */
#define WATCH_MAX 20

struct item;
struct logline_event;
struct sockaddr_in6;

struct watcher {
    bool used;
    unsigned shard;     /* the shard that owns the watching connection */
    uint32_t index;     /* its slot there, and the slot's generation */
    uint32_t gen;
    uint32_t kinds;     /* PROTO_WATCH_* */
    char *buf;          /* lines not yet handed to the connection */
    size_t len;
    uint64_t lines;     /* lines in buf */
    uint64_t skipped;   /* lines dropped since the last "skipped=" line */
};

struct watch {
    struct exec_watch hooks; /* what exec calls; hooks.state is this */
    atomic_uint kinds;       /* the union of every watcher's kinds */
    pthread_mutex_t lock;    /* everything below */
    size_t bufsize;          /* -o watcher_logbuf_size, in bytes */
    uint64_t gid;            /* the last line's id */
    struct watcher watchers[WATCH_MAX];
    unsigned nwatchers;
    /* memcached's log_* stats */
    uint64_t written;        /* log_worker_written: lines made */
    uint64_t skipped;        /* log_watcher_skipped */
    uint64_t sent;           /* log_watcher_sent */
};

/* A server with no watchers, each future one buffering `bufsize` bytes. */
int watch_init(struct watch *watch, size_t bufsize);
void watch_deinit(struct watch *watch);

/* Any shard: one finished event to every watcher asking for its kind. */
void watch_note(void *state, const struct logline_event *ev);

/* `watch` on connection (index, gen) of `shard`: 0, -EMFILE past
 * WATCH_MAX (memcached's WATCHER_TOO_MANY) or -ENOMEM. Any shard. */
int watch_add(struct watch *watch, unsigned shard, uint32_t index, uint32_t gen, uint32_t kinds);

/* What a shard did with one watcher's buffered lines (watch_pump). */
enum watch_delivery { WATCH_TAKEN, WATCH_WAIT, WATCH_GONE };
typedef enum watch_delivery (*watch_deliver_fn)(void *arg, uint32_t index, uint32_t gen, const char *buf,
                                                size_t len);

/* Offers each watcher of `shard` its buffered lines through deliver(),
 * under the lock: TAKEN empties the buffer, GONE forgets the watcher (its
 * connection closed). The shard's own thread, from its tick. */
void watch_pump(struct watch *watch, unsigned shard, watch_deliver_fn deliver, void *arg);

/* A connection opened (reason NULL) or is closing (conn.c's reason):
 * conn_new / conn_close lines; one relaxed load when nobody watches. */
void watch_conn_event(struct watch *watch, int fd, const struct sockaddr_in6 *peer, const char *reason);

/* The store's eviction hook (store_set_evict_hook): `arg` is the watch. */
void watch_evicted(void *arg, const struct item *it, unsigned clsid, mc_time_t now);

/* log_worker_dropped, log_worker_written, log_watcher_skipped,
 * log_watcher_sent, log_watchers, in memcached's order. */
void watch_stats(struct watch *watch, uint64_t out[5]);

#endif
