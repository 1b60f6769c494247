/*
 * exec.c: one whole request executed, any protocol (see exec.h).
 *
 * Every request of every protocol comes through exec_request(), once
 * parsed: text and meta commands (proto.c) and binary ones (proto_bin.c).
 * What it does, in memcached 1.6.18's terms:
 *
 *   - keyed commands run per key (exec_key): the key is hashed once
 *     (xxh3), the ring names its owner, and the key runs here
 *     (process_key, process_meta_key, process_bin_key, by protocol) or is
 *     handed to ctx->forward(), which reserves its reply's place in order;
 *   - a text retrieval walks every key, then writes "END": the terminator
 *     is part of the request, after every key's reply, local or not;
 *   - commands about the connection or the whole server (mn, version,
 *     verbosity, flush_all, stats, quit, shutdown, binary noop and quit)
 *     write what they can here and return the rest as an action: exec
 *     knows commands, io/ knows connections, shards and the process;
 *   - a parse error is answered as the parser said: req->error (unless
 *     noreply), then close when req->close.
 *
 * Invariant: for every request, the bytes exec writes plus the replies of
 * the keys it forwards, in the order they were reserved, are exactly what
 * memcached would answer on one connection; nothing is written after an
 * action that closes the connection.
 */
#include "exec.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "item.h"
#include "logline.h"
#include "peek.h"
#include "process_bin.h"
#include "process_meta.h"
#include "proto_bin.h"
#include "reply.h"
#include "store.h"

/* The key runs on this shard: the handler's own, else the store's
 * composer for the request's protocol. */
static inline __attribute__((always_inline)) bool
exec_run(const struct exec_ctx *ctx, const struct proto_req *req, const char *key, uint32_t nkey, uint64_t hash,
           struct sink *out)
{
    if (ctx->local != NULL)
        return ctx->local(ctx->local_state, req, key, nkey, hash, out);
    if (req->family == PROTO_FAMILY_BINARY)
        return process_bin_key(ctx->env, req, key, nkey, hash, out);
    if (req->cmd >= PROTO_MG && req->cmd <= PROTO_ME)
        return process_meta_key(ctx->env, req, key, nkey, hash, out);
    return process_key(ctx->env, req, key, nkey, hash, out);
}

/* get/gets/gat/gats hits so far on this shard's store: a retrieval hit iff
 * this grows while it runs (the store counts every hit, any protocol). */
static uint64_t store_hits(const struct exec_ctx *ctx)
{
    uint64_t values[store_metric_count];
    uint64_t hits = 0;
    store_metrics(ctx->env->store, values);
    for (size_t i = 0; i < store_metric_count; i++) {
        if (strcmp(store_metric_desc[i].name, "get_hits") == 0 ||
            strcmp(store_metric_desc[i].name, "touch_hits") == 0)
            hits += values[i];
    }
    return hits;
}

/*
 * Runs the key, counting it per prefix when `stats detail` is on, for the
 * commands memcached counts: text and binary retrievals (get), storage
 * commands (set) and deletes (del); meta commands are not counted, as in
 * memcached. The ceiling's own handler has no store and is not counted.
 */
static __attribute__((noinline)) bool exec_detailed(const struct exec_ctx *ctx, const struct proto_req *req,
                                                    const char *key, uint32_t nkey, uint64_t hash,
                                                    struct sink *out)
{
    if (ctx->local != NULL)
        return exec_run(ctx, req, key, nkey, hash, out);
    enum prefix_op op;
    switch (req->cmd) {
    case PROTO_GET:
    case PROTO_GETS:
    case PROTO_GAT:
    case PROTO_GATS: {
        uint64_t before = store_hits(ctx);
        bool ok = exec_run(ctx, req, key, nkey, hash, out);
        ctx->detail->note(ctx->detail->state, key, nkey, PREFIX_GET, store_hits(ctx) > before);
        return ok;
    }
    case PROTO_SET:
    case PROTO_ADD:
    case PROTO_REPLACE:
    case PROTO_APPEND:
    case PROTO_PREPEND:
    case PROTO_CAS:
        op = PREFIX_SET;
        break;
    case PROTO_DELETE:
        op = PREFIX_DELETE;
        break;
    default:
        return exec_run(ctx, req, key, nkey, hash, out);
    }
    ctx->detail->note(ctx->detail->state, key, nkey, op, false);
    return exec_run(ctx, req, key, nkey, hash, out);
}

/*
 * issue 12: runs the key while someone watches, giving the watchers
 * memcached's item_get line (every keyed lookup) and, for a storage
 * command, its item_store line, both read from the store around the run
 * (core/logline.c says how). The ceiling's handler has no store: no lines.
 */
static __attribute__((noinline)) bool exec_watched(const struct exec_ctx *ctx, const struct proto_req *req,
                                                   const char *key, uint32_t nkey, uint64_t hash,
                                                   struct sink *out)
{
    unsigned kinds = atomic_load_explicit(ctx->watch->kinds, memory_order_relaxed);
    if (ctx->local != NULL || (kinds & (PROTO_WATCH_FETCHERS | PROTO_WATCH_MUTATIONS)) == 0)
        return exec_run(ctx, req, key, nkey, hash, out);
    struct logline_event ev;
    const struct item *before = store_peek(ctx->env->store, key, nkey, hash);
    uint64_t before_cas = before != NULL ? item_cas(before) : 0;
    if (kinds & PROTO_WATCH_FETCHERS) {
        logline_get_event(before, key, nkey, req->cfd, &ev);
        if (before != NULL)
            ev.clsid = store_item_class(ctx->env->store, before);
        ctx->watch->note(ctx->watch->state, &ev);
    }
    bool ok = ctx->detail != NULL && atomic_load_explicit(ctx->detail->enabled, memory_order_relaxed)
                  ? exec_detailed(ctx, req, key, nkey, hash, out)
                  : exec_run(ctx, req, key, nkey, hash, out);
    if ((kinds & PROTO_WATCH_MUTATIONS) && logline_is_store(req)) {
        const struct item *after = store_peek(ctx->env->store, key, nkey, hash);
        logline_store_event(req, before, before_cas, after, key, nkey, &ev);
        if (ev.clsid != 0 && after != NULL)
            ev.clsid = store_item_class(ctx->env->store, after);
        ctx->watch->note(ctx->watch->state, &ev);
    }
    return ok;
}

/* The key runs here; the detail and watch checks are one relaxed load
 * each, both off by default. */
static inline __attribute__((always_inline)) bool exec_local_run(const struct exec_ctx *ctx,
                                                                const struct proto_req *req, const char *key,
                                                                uint32_t nkey, uint64_t hash, struct sink *out)
{
    if (__builtin_expect(ctx->watch != NULL &&
                             atomic_load_explicit(ctx->watch->kinds, memory_order_relaxed) != 0, 0))
        return exec_watched(ctx, req, key, nkey, hash, out);
    if (__builtin_expect(ctx->detail != NULL &&
                             atomic_load_explicit(ctx->detail->enabled, memory_order_relaxed), 0))
        return exec_detailed(ctx, req, key, nkey, hash, out);
    return exec_run(ctx, req, key, nkey, hash, out);
}

/* issue 17: every command but get/gets runs inside this store's write
 * side, whatever path it takes (watched, detailed or not): other shards
 * may be reading the store (peek.c). */
static inline __attribute__((always_inline)) bool exec_local(const struct exec_ctx *ctx,
                                                            const struct proto_req *req, const char *key,
                                                            uint32_t nkey, uint64_t hash, struct sink *out)
{
    if (ctx->peek_self != NULL && req->cmd != PROTO_GET && req->cmd != PROTO_GETS) {
        peek_write_begin(ctx->peek_self);
        bool ok = exec_local_run(ctx, req, key, nkey, hash, out);
        peek_write_end(ctx->peek_self);
        return ok;
    }
    return exec_local_run(ctx, req, key, nkey, hash, out);
}

/* issue 17: a text get/gets or a binary get of another shard's key, served here from its
 * memory when peek.c can do so exactly (nothing watches or counts keys by
 * prefix); false in *done: forward it. */
static bool exec_peek(const struct exec_ctx *ctx, const struct proto_req *req, unsigned owner,
                      const char *key, uint32_t nkey, uint64_t hash, struct sink *out, bool *done)
{
    *done = false;
    bool binary = req->family == PROTO_FAMILY_BINARY;
    if ((req->family != PROTO_FAMILY_TEXT && !binary) || (req->cmd != PROTO_GET && req->cmd != PROTO_GETS) ||
        (ctx->watch != NULL && atomic_load_explicit(ctx->watch->kinds, memory_order_relaxed) != 0) ||
        (ctx->detail != NULL && atomic_load_explicit(ctx->detail->enabled, memory_order_relaxed)))
        return true;
    struct peek_copy copy;
    const struct item *it = NULL;
    enum peek_result r = peek_lookup(ctx->peek, owner, key, nkey, hash, &copy, &it);
    if (r == PEEK_FORWARD)
        return true;
    *done = true;
    if (r == PEEK_HIT_BUMP)
        ctx->bump(ctx->router, owner, key, nkey, hash, copy.loc, copy.wseq);
    store_count_remote_get(ctx->env->store, it);
    if (binary)
        return process_bin_get_reply(req, it, key, nkey, out);
    return it == NULL || peek_write_text(it, req->cmd == PROTO_GETS, out);
}

bool exec_key(const struct exec_ctx *ctx, const struct proto_req *req, const char *key, uint32_t nkey,
              struct sink *out)
{
    /* A handler of its own without a ring (the ceiling) needs no hash. */
    uint64_t hash = ctx->ring != NULL || ctx->local == NULL ? hash_key(key, nkey) : 0;
    if (ctx->ring != NULL) {
        unsigned owner = ring_owner(ctx->ring, hash);
        if (owner != ctx->self) {
            bool done = false;
            if (ctx->peek != NULL) {
                bool ok = exec_peek(ctx, req, owner, key, nkey, hash, out, &done);
                if (done)
                    return ok;
            }
            return ctx->forward(ctx->router, owner, req, key, nkey, hash);
        }
    }
    return exec_local(ctx, req, key, nkey, hash, out);
}

bool exec_forwarded(const struct exec_ctx *ctx, const struct proto_req *req, const char *key,
                    uint32_t nkey, uint64_t hash, struct sink *out)
{
    return exec_local(ctx, req, key, nkey, hash, out);
}

bool exec_reply_nomem(const struct proto_req *req, struct sink *out)
{
    if (req->family == PROTO_FAMILY_BINARY)
        return proto_bin_error(req, PROTO_BIN_ENOMEM, "Out of memory writing get response", out);
    return sink_puts(out, "SERVER_ERROR out of memory writing get response\r\n");
}

/* --- stats groups --------------------------------------------------------- */

static bool arg_is(const struct proto_req *req, const char *word)
{
    size_t n = strlen(word);
    return req->nargs == n && memcmp(req->args, word, n) == 0;
}

static bool arg_starts(const struct proto_req *req, const char *word)
{
    size_t n = strlen(word);
    return req->nargs >= n && memcmp(req->args, word, n) == 0;
}

static const char stats_sizes[] = "STAT sizes_status disabled\r\nEND\r\n";

/*
 * `stats [group]`: the groups a gather answers become EXEC_STATS; the
 * ones answered by a fixed text are written here. Text matches group names
 * exactly (memcached answers anything else with a bare ERROR); binary
 * matches "reset" and "settings" by prefix and answers the rest, conns and
 * shards included, KEY_ENOENT, as memcached's process_bin_stat.
 */
/* A growable heap buffer as a sink, for the binary detail dump, whose
 * packet needs its value's length before the value. */
struct heap_sink {
    struct sink sink;
    char *base;
    size_t cap;
};

static bool heap_grow(struct sink *sink, size_t need)
{
    struct heap_sink *h = (struct heap_sink *)sink;
    size_t used = h->base != NULL ? (size_t)(sink->pos - h->base) : 0;
    size_t cap = h->cap != 0 ? h->cap : 4096;
    while (cap - used < need)
        cap *= 2;
    char *base = realloc(h->base, cap);
    if (base == NULL)
        return false;
    h->base = base;
    h->cap = cap;
    sink->pos = base + used;
    sink->end = base + cap;
    return true;
}

static bool bin_detail_dump(const struct proto_req *req, const struct exec_detail *d, struct sink *out)
{
    struct heap_sink h = {.sink = {.pos = NULL, .end = NULL, .grow = heap_grow}};
    bool ok = d->dump(d->state, &h.sink);
    size_t len = h.base != NULL ? (size_t)(h.sink.pos - h.base) : 0;
    ok = ok && proto_bin_stat(req, "detailed", 8, h.base, len, out) && proto_bin_stat(req, NULL, 0, NULL, 0, out);
    free(h.base);
    return ok;
}

/*
 * `stats detail on|off|dump`, memcached's process_stats_detail (text) and
 * process_bin_stat's "detail" branch (binary: on/off answer the empty
 * terminator; dump is one stat packet named "detailed" holding the text).
 */
static bool exec_stats_detail(const struct exec_ctx *ctx, const struct proto_req *req, struct sink *out,
                              struct exec_result *r)
{
    (void)r;
    bool binary = req->family == PROTO_FAMILY_BINARY;
    const struct exec_detail *d = ctx->detail;
    if (binary ? arg_starts(req, "detail on") : arg_is(req, "detail on")) {
        atomic_store_explicit(d->enabled, true, memory_order_relaxed);
        return binary ? proto_bin_stats_from_text(req, "END\r\n", 5, out) : sink_puts(out, "OK\r\n");
    }
    if (binary ? arg_starts(req, "detail off") : arg_is(req, "detail off")) {
        atomic_store_explicit(d->enabled, false, memory_order_relaxed);
        return binary ? proto_bin_stats_from_text(req, "END\r\n", 5, out) : sink_puts(out, "OK\r\n");
    }
    if (binary ? arg_starts(req, "detail dump") : arg_is(req, "detail dump")) {
        if (!binary)
            return d->dump(d->state, out);
        return bin_detail_dump(req, d, out);
    }
    return binary ? proto_bin_error(req, PROTO_BIN_KEY_ENOENT, NULL, out)
                  : sink_puts(out, "CLIENT_ERROR usage: stats detail on|off|dump\r\n");
}

static bool exec_stats(const struct exec_ctx *ctx, const struct proto_req *req, struct sink *out,
                       struct exec_result *r)
{
    bool binary = req->family == PROTO_FAMILY_BINARY;
    static const struct {
        const char *name;
        enum exec_stats group;
        bool binary;
    } groups[] = {
        {"settings", EXEC_STATS_SETTINGS, true}, {"items", EXEC_STATS_ITEMS, true},
        {"slabs", EXEC_STATS_SLABS, true},       {"conns", EXEC_STATS_CONNS, false},
        {"shards", EXEC_STATS_SHARDS, false},
    };
    r->action = EXEC_STATS;
    r->group = EXEC_STATS_GENERAL;
    if (req->nargs == 0)
        return true;
    if (binary ? arg_starts(req, "reset") : arg_is(req, "reset")) {
        r->action = EXEC_STATS_RESET;
        if (ctx->detail != NULL)
            ctx->detail->clear(ctx->detail->state);
        return binary ? proto_bin_stats_from_text(req, "END\r\n", 5, out) : sink_puts(out, "RESET\r\n");
    }
    if (binary && arg_starts(req, "settings")) {
        r->group = EXEC_STATS_SETTINGS;
        return true;
    }
    if (!binary && req->nargs >= 9 && memcmp(req->args, "cachedump", 9) == 0 &&
        (req->nargs == 9 || req->args[9] == ' ')) { /* its words are parsed where it runs */
        if (ctx->disable_dumping) { /* -X, memcached's words */
            r->action = EXEC_NEXT;
            return sink_puts(out, "CLIENT_ERROR stats cachedump not allowed\r\n");
        }
        r->group = EXEC_STATS_CACHEDUMP;
        return true;
    }
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        if (arg_is(req, groups[i].name) && (groups[i].binary || !binary)) {
            r->group = groups[i].group;
            return true;
        }
    }
    r->action = EXEC_NEXT;
    if (ctx->detail != NULL && arg_starts(req, "detail"))
        return exec_stats_detail(ctx, req, out, r);
    if (arg_is(req, "sizes"))
        return binary ? proto_bin_stats_from_text(req, stats_sizes, sizeof(stats_sizes) - 1, out)
                      : sink_puts(out, stats_sizes);
    return binary ? proto_bin_error(req, PROTO_BIN_KEY_ENOENT, NULL, out) : sink_puts(out, "ERROR\r\n");
}

/* --- the protocols -------------------------------------------------------- */

static bool text_line(const struct proto_req *req, const char *line, struct sink *out)
{
    return req->noreply || reply_put_line(out, line, strlen(line));
}

static bool exec_text(const struct exec_ctx *ctx, const struct proto_req *req, struct sink *out,
                      struct exec_result *r)
{
    switch (req->cmd) {
    case PROTO_NONE: /* swallowed bytes, or a close with nothing to say */
        return true;
    case PROTO_ERROR:
        if (req->error == proto_flush_all_bad_delay && ctx->disable_flush_all)
            return text_line(req, "CLIENT_ERROR flush_all not allowed", out); /* -F first */
        return req->error == NULL || req->close || text_line(req, req->error, out);
    case PROTO_GET:
    case PROTO_GETS:
    case PROTO_GAT:
    case PROTO_GATS: {
        uint32_t pos = 0;
        const char *key;
        uint32_t nkey;
        while (proto_next_key(req, &pos, &key, &nkey)) {
            if (!exec_key(ctx, req, key, nkey, out))
                return false;
        }
        return sink_puts(out, "END\r\n");
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
    case PROTO_MG:
    case PROTO_MS:
    case PROTO_MD:
    case PROTO_MA:
    case PROTO_ME:
        return exec_key(ctx, req, req->key, req->nkey, out);
    case PROTO_MN: /* in order after every reply before it, forwarded ones included */
        return sink_puts(out, "MN\r\n");
    case PROTO_STATS:
        return exec_stats(ctx, req, out, r);
    case PROTO_FLUSH_ALL:
        if (ctx->disable_flush_all)
            return text_line(req, "CLIENT_ERROR flush_all not allowed", out);
        r->action = EXEC_FLUSH_ALL;
        r->delay = req->exptime;
        return text_line(req, "OK", out);
    case PROTO_VERSION:
        return sink_puts(out, "VERSION ") && reply_put_line(out, ctx->version, strlen(ctx->version));
    case PROTO_VERBOSITY:
        r->action = EXEC_VERBOSITY;
        r->level = req->level > ctx->verbosity_max ? ctx->verbosity_max : req->level;
        return text_line(req, "OK", out);
    case PROTO_QUIT:
        r->action = EXEC_QUIT;
        return true;
    case PROTO_SHUTDOWN:
        if (!ctx->enable_shutdown)
            return sink_puts(out, "ERROR: shutdown not enabled\r\n");
        r->action = EXEC_SHUTDOWN;
        r->reason = "shutdown command";
        return true;
    case PROTO_REFRESH_CERTS: /* the TLS context is io/'s */
        r->action = EXEC_REFRESH_CERTS;
        r->noreply = req->noreply;
        return true;
    case PROTO_SLABS_REASSIGN: /* issue 12: memcached 1.6.18's checks, in its order */
        if (!ctx->slab_reassign)
            return text_line(req, "CLIENT_ERROR slab reassignment disabled", out);
        if (!req->slab_args_ok)
            return text_line(req, "CLIENT_ERROR bad command line format", out);
        if (req->slab_src == req->slab_dst)
            return text_line(req, "SAME src and dst class are identical", out);
        /* src -1 asks memcached to pick a class with a spare page; none
         * has one here, so it stays -1 and is a bad class */
        if (req->slab_src < 0 || req->slab_src > (int64_t)ctx->slab_classes || req->slab_dst < 0 ||
            req->slab_dst > (int64_t)ctx->slab_classes)
            return text_line(req, "BADCLASS invalid src or dst class id", out);
        /* memcached's answer for a class owning fewer than 2 pages: here
         * no class owns any (README, Compatibility; store.c reports
         * total_pages 0). Memory is shared by all sizes, so the
         * destination's items take room freed from any class without a
         * move; slabs_moved stays 0. */
        return text_line(req, "NOSPARE source class has no spare pages", out);
    case PROTO_WATCH: /* issue 12: the watchers are io/'s (io/watch.c) */
        if (ctx->disable_watch)
            return sink_puts(out, "CLIENT_ERROR watch commands not allowed\r\n");
        if (req->watch_kinds == 0) /* a word memcached does not know */
            return sink_puts(out, "ERROR\r\n");
        r->action = EXEC_WATCH;
        r->watch_kinds = req->watch_kinds;
        return true;
    case PROTO_MEMLIMIT: /* issue 12: memcached's bounds; the arena's are io/'s (io/memlimit.c) */
        if (req->level < 8)
            return text_line(req, "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m", out);
        if (req->level > 1000000000)
            return text_line(req, "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes", out);
        r->action = EXEC_MEMLIMIT;
        r->level = req->level;
        r->noreply = req->noreply;
        return true;
    case PROTO_LRU_CRAWLER: /* issue 12: the crawler and the dumps are io/'s (io/lrucrawl.c) */
        r->action = EXEC_LRU_CRAWLER;
        return true;
    case PROTO_NOOP: /* binary only */
    case PROTO_CMD_COUNT:
        return true;
    }
    return true;
}

static bool bin_empty(const struct proto_req *req, struct sink *out)
{
    return proto_bin_reply(req, PROTO_BIN_SUCCESS, NULL, 0, NULL, 0, 0, out);
}

/*
 * The binary protocol: a request never has noreply (a quiet command still
 * answers its errors), and the protocol errors memcached closes on are
 * answered first, then the connection closes once they are sent.
 */
static bool exec_binary(const struct exec_ctx *ctx, const struct proto_req *req, struct sink *out,
                        struct exec_result *r)
{
    switch (req->cmd) {
    case PROTO_NONE: /* swallowed bytes, or a bad magic byte (close, no reply) */
        if (req->close)
            r->action = EXEC_QUIT;
        return true;
    case PROTO_ERROR:
        if (req->close)
            r->action = EXEC_QUIT;
        return proto_bin_error(req, req->bin.status, req->error, out);
    case PROTO_GET:
    case PROTO_GAT:
    case PROTO_TOUCH:
    case PROTO_SET:
    case PROTO_ADD:
    case PROTO_REPLACE:
    case PROTO_APPEND:
    case PROTO_PREPEND:
    case PROTO_DELETE:
    case PROTO_INCR:
    case PROTO_DECR:
        return exec_key(ctx, req, req->key, req->nkey, out);
    case PROTO_NOOP: /* in order behind every earlier reply: the client's fence */
        return bin_empty(req, out);
    case PROTO_VERSION:
        return proto_bin_reply(req, PROTO_BIN_SUCCESS, NULL, 0, ctx->version,
                               (uint32_t)strlen(ctx->version), 0, out);
    case PROTO_QUIT:
        r->action = EXEC_QUIT;
        return req->bin.quiet || bin_empty(req, out);
    case PROTO_FLUSH_ALL:
        if (ctx->disable_flush_all)
            return proto_bin_error(req, PROTO_BIN_AUTH_ERROR, NULL, out);
        r->action = EXEC_FLUSH_ALL;
        r->delay = req->exptime;
        return req->bin.quiet || bin_empty(req, out);
    case PROTO_STATS:
        return exec_stats(ctx, req, out, r);
    default: /* text-only commands: the binary parser never returns them */
        return true;
    }
}

enum exec_action exec_request(const struct exec_ctx *ctx, const struct proto_req *req, struct sink *out,
                              struct exec_result *result)
{
    result->action = EXEC_NEXT;
    bool ok = req->family == PROTO_FAMILY_BINARY ? exec_binary(ctx, req, out, result)
                                                 : exec_text(ctx, req, out, result);
    if (!ok) {
        *result = (struct exec_result){.action = EXEC_NOMEM, .reason = "out of memory composing a reply"};
    } else if (req->close && result->action == EXEC_NEXT) {
        *result = (struct exec_result){.action = EXEC_CLOSE,
                                       .reason = req->error != NULL ? req->error : "protocol close"};
    }
    return result->action;
}
