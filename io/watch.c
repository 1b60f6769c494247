/*
 * watch.c: memcached 1.6's `watch` for the whole server: a client
 * connection that sends `watch [fetchers|mutations|evictions|connevents
 * ...]` becomes a stream of memcached's log lines (core/logline.h).
 *
 * memcached gives each worker thread a log buffer, and one logger thread
 * copies them into each watcher's buffer and writes them to its socket.
 * Here one table of at most WATCH_MAX watchers, each with its own buffer of
 * -o watcher_logbuf_size bytes, sits under one mutex:
 *
 *   any shard (exec.c, conn.c, the store's eviction hook)
 *        | watch_note: format once, append to every watcher asking for
 *        v            the kind (or count it skipped when its buffer is full)
 *   watcher buffers  [ts=.. gid=.. type=item_get ...\n ...]
 *        | watch_pump, on the watcher's own shard, every tick (100 ms):
 *        v           the buffer moves into the connection's output queue
 *   the watching connection's socket (sent like any reply)
 *
 * The watching connection stays an ordinary connection of its shard (its
 * input is ignored from `watch` on), so no other thread touches it and it
 * closes like any other; the pump forgets a watcher whose connection is
 * gone. A watcher that does not read backs up: its output queue stops
 * taking the buffer past the buffer's size, the buffer fills, and lines are
 * dropped and counted; memcached's "skipped=N" line is written as soon as
 * there is room for it, before the next line (t/watcher.t).
 *
 * Cost: with nobody watching, `kinds` is 0 and every hook is one relaxed
 * load. The mutex is taken only while someone watches, as memcached's
 * logger costs only then.
 */
#include "watch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "../core/logline.h"

int watch_init(struct watch *watch, size_t bufsize)
{
    memset(watch, 0, sizeof(*watch));
    atomic_init(&watch->kinds, 0);
    if (pthread_mutex_init(&watch->lock, NULL) != 0)
        return -1;
    watch->bufsize = bufsize < LOGLINE_MAX ? LOGLINE_MAX : bufsize;
    watch->hooks = (struct exec_watch){.kinds = &watch->kinds, .note = watch_note, .state = watch};
    return 0;
}

void watch_deinit(struct watch *watch)
{
    for (unsigned i = 0; i < WATCH_MAX; i++)
        free(watch->watchers[i].buf);
    pthread_mutex_destroy(&watch->lock);
}

/* Under the lock: the kinds anyone asks for. */
static void watch_update_kinds(struct watch *watch)
{
    unsigned kinds = 0;
    for (unsigned i = 0; i < WATCH_MAX; i++) {
        if (watch->watchers[i].used)
            kinds |= watch->watchers[i].kinds;
    }
    atomic_store_explicit(&watch->kinds, kinds, memory_order_relaxed);
}

/* Under the lock: one line into one watcher's buffer, after the pending
 * "skipped=N" line (logger.c's _logger_thread_poll_watchers). */
static void watcher_put(struct watch *watch, struct watcher *w, const char *line, size_t n)
{
    if (w->skipped > 0) {
        /* only with room for the line too: a skipped= line is always
         * followed by a real one (t/watcher.t reads one after it) */
        char skip[40];
        int k = snprintf(skip, sizeof(skip), "skipped=%llu\n", (unsigned long long)w->skipped);
        if (w->len + (size_t)k + n > watch->bufsize) {
            w->skipped++;
            watch->skipped++;
            return;
        }
        memcpy(w->buf + w->len, skip, (size_t)k);
        w->len += (size_t)k;
        w->lines++;
        w->skipped = 0;
    }
    if (w->len + n > watch->bufsize) {
        w->skipped++;
        watch->skipped++;
        return;
    }
    memcpy(w->buf + w->len, line, n);
    w->len += n;
    w->lines++;
}

void watch_note(void *state, const struct logline_event *ev)
{
    struct watch *watch = state;
    unsigned kind = logline_kind(ev->type);
    if ((atomic_load_explicit(&watch->kinds, memory_order_relaxed) & kind) == 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char line[LOGLINE_MAX];
    pthread_mutex_lock(&watch->lock);
    size_t n = logline_format(ev, (int64_t)ts.tv_sec, (int32_t)(ts.tv_nsec / 1000), ++watch->gid, line,
                              sizeof(line));
    if (n > 0) {
        watch->written++;
        for (unsigned i = 0; i < WATCH_MAX; i++) {
            struct watcher *w = &watch->watchers[i];
            if (w->used && (w->kinds & kind) != 0)
                watcher_put(watch, w, line, n);
        }
    }
    pthread_mutex_unlock(&watch->lock);
}

int watch_add(struct watch *watch, unsigned shard, uint32_t index, uint32_t gen, uint32_t kinds)
{
    struct watcher *w = NULL;
    int ret = 0;
    pthread_mutex_lock(&watch->lock);
    for (unsigned i = 0; i < WATCH_MAX && w == NULL; i++) {
        if (!watch->watchers[i].used)
            w = &watch->watchers[i];
    }
    if (w == NULL) {
        ret = -EMFILE;
    } else if (w->buf == NULL && (w->buf = malloc(watch->bufsize)) == NULL) {
        ret = -ENOMEM;
    } else {
        *w = (struct watcher){.used = true, .shard = shard, .index = index, .gen = gen, .kinds = kinds,
                              .buf = w->buf};
        watch->nwatchers++;
        watch_update_kinds(watch);
    }
    pthread_mutex_unlock(&watch->lock);
    return ret;
}

void watch_pump(struct watch *watch, unsigned shard, watch_deliver_fn deliver, void *arg)
{
    if (atomic_load_explicit(&watch->kinds, memory_order_relaxed) == 0) /* every watcher asks for some kind */
        return;
    pthread_mutex_lock(&watch->lock);
    for (unsigned i = 0; i < WATCH_MAX; i++) {
        struct watcher *w = &watch->watchers[i];
        if (!w->used || w->shard != shard)
            continue;
        switch (deliver(arg, w->index, w->gen, w->buf, w->len)) {
        case WATCH_GONE:
            w->used = false;
            watch->nwatchers--;
            watch_update_kinds(watch);
            break;
        case WATCH_TAKEN:
            watch->sent += w->lines;
            w->len = 0;
            w->lines = 0;
            break;
        case WATCH_WAIT:
            break;
        }
    }
    pthread_mutex_unlock(&watch->lock);
}

void watch_conn_event(struct watch *watch, int fd, const struct sockaddr_in6 *peer, const char *reason)
{
    if ((atomic_load_explicit(&watch->kinds, memory_order_relaxed) & PROTO_WATCH_CONNEVENTS) == 0)
        return;
    char rip[INET6_ADDRSTRLEN] = "";
    struct logline_event ev = {.type = reason == NULL ? LOGLINE_CONN_NEW : LOGLINE_CONN_CLOSE, .cfd = fd};
    if (peer->sin6_family == AF_INET6) {
        inet_ntop(AF_INET6, &peer->sin6_addr, rip, sizeof(rip));
        ev.rport = ntohs(peer->sin6_port);
    } else if (peer->sin6_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)peer;
        inet_ntop(AF_INET, &a->sin_addr, rip, sizeof(rip));
        ev.rport = ntohs(a->sin_port);
    } else {
        ev.local = true; /* -s: a UNIX-domain socket */
    }
    ev.rip = rip;
    ev.reason = logline_reason_of(reason);
    watch_note(watch, &ev);
}

void watch_evicted(void *arg, const struct item *it, unsigned clsid, mc_time_t now)
{
    struct watch *watch = arg;
    if ((atomic_load_explicit(&watch->kinds, memory_order_relaxed) & PROTO_WATCH_EVICTIONS) == 0)
        return;
    struct logline_event ev;
    logline_evict_event(it, now, &ev);
    ev.clsid = clsid; /* memcached's size class (core/sizeclass.h) */
    watch_note(watch, &ev);
}

void watch_stats(struct watch *watch, uint64_t out[5])
{
    pthread_mutex_lock(&watch->lock);
    out[0] = 0; /* log_worker_dropped: lines are made under the lock, never dropped before it */
    out[1] = watch->written;
    out[2] = watch->skipped;
    out[3] = watch->sent;
    out[4] = watch->nwatchers;
    pthread_mutex_unlock(&watch->lock);
}
