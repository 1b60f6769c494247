/*
 * logline.h: memcached 1.6.18's `watch` log lines (its logger.c), the
 * contract; see logline.c.
 *
 * What a watcher asks for is a mask of PROTO_WATCH_* kinds (proto.h); an event is
 * a plain struct (key bytes borrowed) that logline_format() turns into
 * memcached's text, e.g.
 *   ts=1700000000.123456 gid=7 type=item_get key=foo status=found clsid=1 cfd=12 size=5\n
 * Keys are URI-encoded as memcached encodes them (alnum and "-._~" kept).
 * logline_observe_*() derive an item event from the store around one
 * keyed command, as memcached logs it from do_item_get and do_store_item.
 * Pure: the caller supplies the time, the id and the buffer.
 */
#ifndef CORECACHE_CORE_LOGLINE_H
#define CORECACHE_CORE_LOGLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct store;
struct item;

enum logline_type {
    LOGLINE_ITEM_GET,   /* PROTO_WATCH_FETCHERS */
    LOGLINE_ITEM_STORE, /* PROTO_WATCH_MUTATIONS */
    LOGLINE_EVICTION,   /* PROTO_WATCH_EVICTIONS */
    LOGLINE_CONN_NEW,   /* PROTO_WATCH_CONNEVENTS */
    LOGLINE_CONN_CLOSE, /* PROTO_WATCH_CONNEVENTS */
};

/* memcached's status words, in its order (logger.c's status_map). */
enum logline_store_status {
    LOGLINE_NOT_STORED,
    LOGLINE_STORED,
    LOGLINE_EXISTS,
    LOGLINE_NOT_FOUND,
    LOGLINE_TOO_LARGE,
    LOGLINE_NO_MEMORY,
};

enum logline_close_reason { LOGLINE_ERROR, LOGLINE_NORMAL, LOGLINE_IDLE_TIMEOUT, LOGLINE_SHUTDOWN };

struct logline_event {
    enum logline_type type;
    const char *key; /* item events: borrowed */
    size_t nkey;
    bool found;      /* item_get; eviction: fetched */
    enum logline_store_status status;
    enum proto_cmd cmd; /* item_store: PROTO_SET ... PROTO_CAS */
    int64_t ttl;        /* item_store: exptime as stored; eviction: seconds left, -1 none */
    uint32_t last_access; /* eviction: seconds since its last access */
    unsigned clsid;
    int cfd;            /* the client's socket (conn events, item events) */
    size_t size;        /* the value's bytes */
    /* conn events */
    const char *rip;    /* the peer's address as text */
    uint16_t rport;
    bool local;         /* transport=local (a UNIX socket), else tcp */
    enum logline_close_reason reason;
};

/* The kind (PROTO_WATCH_* bit) that asks for events of this type. */
unsigned logline_kind(enum logline_type type);

/* memcached's close reason for corecache's conn_close() reason text. */
enum logline_close_reason logline_reason_of(const char *reason);

/* Writes the line (with its '\n') into buf; returns its length, or 0 if
 * cap is too small (LOGLINE_MAX always suffices). */
#define LOGLINE_MAX 1024
size_t logline_format(const struct logline_event *ev, int64_t ts_sec, int32_t ts_usec, uint64_t gid, char *buf,
                      size_t cap);

/* The commands memcached logs an item_store for (text, binary and meta
 * storage commands), and those it logs an item_get for (every keyed one:
 * its do_item_get runs for gets, stores, deletes, arithmetic and touch). */
bool logline_is_store(const struct proto_req *req);

/* util.c's uriencode: `n` bytes of `src` into `dst` (alnum and "-._~"
 * kept, every other byte %XX), NUL-terminated, cut short where `cap`
 * runs out; returns the length written. Also
 * lru_crawler metadump's key= (io/lrucrawl.c). */
size_t logline_uriencode(const char *src, size_t n, char *dst, size_t cap);

/*
 * Around one keyed command on its owner's store: logline_peek() before it
 * runs (memcached's item_get line: found, class, size), then
 * logline_store_outcome() after a storage command, which tells its status
 * from the item before and the item after (a stored command always leaves
 * a new item). `before`/`after` are store_peek() results, read right away.
 */
void logline_get_event(const struct item *it, const char *key, size_t nkey, int cfd, struct logline_event *ev);
void logline_store_event(const struct proto_req *req, const struct item *before, uint64_t before_cas,
                         const struct item *after, const char *key, size_t nkey, struct logline_event *ev);

/* An item about to be evicted at time `now` (the store's clock). */
void logline_evict_event(const struct item *it, uint32_t now, struct logline_event *ev);

#endif
