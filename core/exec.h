/*
 * exec.h: executing one whole request, any protocol (the contract; see
 * exec.c).
 *
 * This is the one place a parsed request (proto.h, proto_bin.h) is
 * executed. io/ hands in the request, the connection's reply sink and an
 * exec_ctx (this shard's store, the ring that names each key's owner, and
 * a router for keys owned elsewhere); exec runs the whole request, every
 * key of a multi-get and its "END" included, writes every reply that can
 * be written here, and returns what io/ must still do that only io/ can:
 *
 *   parsed request ─> exec_request ─┬─ key owned here: process_key() -> sink
 *                                   ├─ key owned by shard N: ctx->forward()
 *                                   └─ returns an exec_result: NEXT, or an
 *                                      action on the connection (QUIT,
 *                                      CLOSE, NOMEM) or on the server
 *                                      (FLUSH_ALL, STATS, STATS_RESET,
 *                                      VERBOSITY, SHUTDOWN)
 *
 * Order: replies reach the sink in request order. A forwarded key's reply
 * comes later; the router reserves its place in the output when forward()
 * is called, so a later local reply (another key, the "END") lands after
 * it. The same holds for a STATS action: io/ reserves the place when it
 * takes the action, before the next request is executed.
 *
 * Pure: no syscalls, no clock reads, no allocation beyond what the sink
 * provides. Runs on the thread that owns ctx->env->store.
 */
#ifndef CORECACHE_CORE_EXEC_H
#define CORECACHE_CORE_EXEC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "prefix.h"
#include "process.h"
#include "proto.h"
#include "ring.h"
#include "sink.h"
#include "status.h"

/* The stats groups a client can ask for, in either protocol. */
enum exec_stats {
    EXEC_STATS_GENERAL,  /* stats */
    EXEC_STATS_SETTINGS, /* stats settings */
    EXEC_STATS_ITEMS,    /* stats items */
    EXEC_STATS_SLABS,    /* stats slabs */
    EXEC_STATS_CONNS,    /* stats conns (text only, as memcached) */
    EXEC_STATS_SHARDS,   /* stats shards: corecache's per-shard counters (text only) */
    EXEC_STATS_CACHEDUMP, /* stats cachedump <class> <limit> (text only; io/cachedump.c) */
};

enum exec_action {
    /* Done: replies are written or forwarded. Parse the next request. */
    EXEC_NEXT = 0,
    /* Stop reading; close once every reply before this point is sent
     * (quit, binary quit, a binary protocol error, a bad magic byte). */
    EXEC_QUIT,
    /* Close now, sending nothing more (a line too long, a text protocol
     * error memcached closes on). `reason` is for the log. */
    EXEC_CLOSE,
    /* The sink ran out of memory: close (`reason`). */
    EXEC_NOMEM,
    /* flush_all / binary flush: its reply is written; apply flush_all
     * with `delay` (the client's, 0 = now) on every shard. */
    EXEC_FLUSH_ALL,
    /* Answer `stats <group>` in place: gather, then render in the
     * request's protocol (the request is needed for binary replies). */
    EXEC_STATS,
    /* stats reset: its reply is written; reset every shard's counters. */
    EXEC_STATS_RESET,
    /* verbosity: its reply is written; set the server's level to `level`
     * (already capped by exec_ctx.verbosity_max). */
    EXEC_VERBOSITY,
    /* shutdown (allowed by -A): stop the server, close this connection. */
    EXEC_SHUTDOWN,
    /* refresh_certs: reload the TLS certificate and answer (io/tls.c);
     * `noreply` says whether a success is answered. */
    EXEC_REFRESH_CERTS,
    /* watch: the connection becomes a log stream of `watch_kinds`
     * (io/watch.c answers OK, or memcached's errors). Issue 12. */
    EXEC_WATCH,
    /* cache_memlimit: set the item memory limit to `level` megabytes
     * (within memcached's bounds) and answer, unless `noreply`
     * (io/memlimit.c). Issue 12. */
    EXEC_MEMLIMIT,
    /* lru_crawler <words>: answered by io/lrucrawl.c from req->args. */
    EXEC_LRU_CRAWLER,
};

struct exec_result {
    enum exec_action action;
    enum exec_stats group; /* EXEC_STATS */
    int64_t delay;         /* EXEC_FLUSH_ALL */
    uint32_t level;        /* EXEC_VERBOSITY; EXEC_MEMLIMIT: megabytes */
    const char *reason;    /* EXEC_CLOSE, EXEC_NOMEM: a string literal */
    bool noreply;          /* EXEC_REFRESH_CERTS, EXEC_MEMLIMIT */
    uint32_t watch_kinds;  /* EXEC_WATCH: PROTO_WATCH_* */
};

/*
 * Executes the keyed part of `req` for one key on this shard and appends
 * its reply to `out`; false when the sink ran out of memory. NULL in
 * exec_ctx.local means process_key() on ctx->env (the store); the
 * benchmark's ceiling server answers without a store instead.
 */
typedef bool (*exec_local_fn)(void *state, const struct proto_req *req, const char *key, uint32_t nkey,
                              uint64_t hash, struct sink *out);

/*
 * Sends the keyed part of `req` for one key to shard `owner`, reserving the
 * place of its reply in the connection's output now, under noreply too (an
 * empty reply then comes back), so that what the connection answers next
 * waits until the key was executed. False when memory ran out.
 */
typedef bool (*exec_forward_fn)(void *router, unsigned owner, const struct proto_req *req,
                                const char *key, uint32_t nkey, uint64_t hash);

/*
 * memcached's `stats detail` (per-prefix counts, -D): one table for the
 * whole server, owned by io/ (io/detail.c), which serializes access to it.
 * exec reads `enabled` once per key and calls note() only when it is set,
 * so with detail off (the default) a key costs one relaxed load.
 */
struct exec_detail {
    atomic_bool *enabled;
    void (*note)(void *state, const char *key, uint32_t nkey, enum prefix_op op, bool hit);
    bool (*dump)(void *state, struct sink *out); /* "PREFIX ..." lines and END */
    void (*clear)(void *state);                  /* stats reset */
    void *state;
};

/*
 * memcached's `watch` (issue 12): the server's watchers, owned by io/
 * (io/watch.c). `kinds` is the union of what every watcher asks for, 0
 * when none: exec reads it once per key, so with nobody watching a key
 * costs one relaxed load. note() takes a finished event (core/logline.h).
 */
struct logline_event;
struct exec_watch {
    atomic_uint *kinds;
    void (*note)(void *state, const struct logline_event *ev);
    void *state;
};

struct peek_reader;
struct peek_shard;
struct exec_ctx {
    const struct process_env *env; /* this shard's store, clock, TTL policy */
    /* issue 17: reads served where they arrive (core/peek.h); NULL: none.
     * peek_self is this shard's write sequence, held around every command
     * but get/gets; peek serves other shards' gets from their memory. */
    struct peek_shard *peek_self;
    const struct peek_reader *peek;
    /* issue 17: a get served from shard `owner`'s memory that its store
     * must still count in the item (store_remote_hit): one-way, no reply */
    void (*bump)(void *router, unsigned owner, const char *key, uint32_t nkey, uint64_t hash,
                 uint64_t loc, unsigned wseq);
    const struct ring *ring;       /* which shard owns a key; NULL: all keys are local */
    unsigned self;                 /* this shard's id in the ring */
    exec_forward_fn forward;       /* keys another shard owns (ring != NULL) */
    void *router;                  /* forward()'s first argument */
    exec_local_fn local;           /* NULL: process_key() */
    void *local_state;
    const char *version;           /* the VERSION reply's text */
    bool enable_shutdown;          /* -A: the shutdown command is allowed */
    bool disable_flush_all;        /* -F: flush_all is refused, as memcached refuses it */
    bool disable_dumping;          /* -X: stats cachedump is refused */
    const struct exec_detail *detail; /* NULL: `stats detail` is not served */
    const struct exec_watch *watch; /* NULL: nobody can watch (issue 12) */
    bool disable_watch;            /* -W: watch is refused, as memcached refuses it */
    bool slab_reassign;            /* slabs reassign answered (-o no_slab_reassign: refused) */
    unsigned slab_classes;         /* memcached's largest class id (store_class_count) */
    uint32_t verbosity_max;        /* verbosity levels above this are capped */
};

/*
 * Executes `req` (any protocol, any command) against ctx, writing its
 * replies to `out`, and returns what io/ must still do (also in
 * result->action). The result's other fields are written only for an
 * action that has arguments, so the common EXEC_NEXT costs one store. Never fails silently: an
 * out-of-memory sink or router gives EXEC_NOMEM. Runs on the thread that
 * owns ctx->env->store and `out`.
 */
enum exec_action exec_request(const struct exec_ctx *ctx, const struct proto_req *req, struct sink *out,
                              struct exec_result *result);

/*
 * Executes one key of `req` on this shard or forwards it to its owner:
 * the step exec_request takes for every key (exposed for the cross-shard
 * path's tests). False when memory ran out.
 */
bool exec_key(const struct exec_ctx *ctx, const struct proto_req *req, const char *key, uint32_t nkey,
              struct sink *out) MC_MUST_CHECK;

/*
 * The owner's side of a forwarded key: executes it against this shard's
 * store (or ctx->local) into `out`. The key's hash travels with it, so it
 * is not computed again. False when the sink ran out of memory: the caller
 * discards what was written and answers exec_reply_nomem() instead.
 */
bool exec_forwarded(const struct exec_ctx *ctx, const struct proto_req *req, const char *key,
                    uint32_t nkey, uint64_t hash, struct sink *out) MC_MUST_CHECK;

/* The protocol's out-of-memory error for `req` (memcached's "SERVER_ERROR
 * out of memory writing get response", or the binary ENOMEM packet). */
bool exec_reply_nomem(const struct proto_req *req, struct sink *out) MC_MUST_CHECK;

#endif
