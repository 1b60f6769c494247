/*
 * route.c: the routing of requests between shards (see route.h).
 *
 * core/exec.c decides where each key runs: the ring says this shard owns
 * the key, and it runs against this shard's store, writing straight into
 * the connection's output (no lock, no allocation, no message); or exec
 * calls route_forward(), this file's half of the hop.
 *
 * Forwarding: the connection reserves a placeholder for the reply, and the
 * request is copied, key and value included, into the channel to its owner.
 * A noreply request reserves one too, which its owner fills with nothing
 * (memcached suppresses every reply under noreply): what the connection
 * answers after it (an mn, a get, stats) waits until the write is applied,
 * as on memcached, whose connection runs one command after the other.
 *
 *   shard A (connection)                  shard B (owner of the key)
 *   route_forward ── X_REQ {cmd, key, value} ──> route_poll: exec_forwarded()
 *   conn_fill <── X_REPLY {placeholder, bytes} ── reply composed in scratch
 *
 * Records are published once per loop iteration, so a batch grows with the
 * load of the iteration; the owner is woken (one MSG_RING) only if it said
 * it may block (route_sleep, xchan.c) and nobody woke it since: a busy
 * owner reads its channels at its next iteration without one. A full
 * channel never blocks a shard: records wait in a per-destination backlog,
 * in order, until the consumer makes room.
 *
 * A reply names its connection by slot index and generation; if the
 * connection closed meanwhile the generation differs and the reply is
 * dropped, so the placeholder pointer it carries is never dereferenced for
 * a connection that no longer owns it.
 *
 * Broadcasts (flush_all, stats reset) and gathers (stats) ride on the same
 * channels, so they are ordered with the connection's earlier requests to
 * each shard.
 *
 * issue 17, reads served where they arrive: a get of another shard's key
 * is usually not forwarded at all: core/peek.c reads it from the owner's
 * memory. This file keeps what that needs: the shard's store made readable
 * (route_setup), the write side around store changes made outside exec
 * (flush_all here, the crawler in loop.c), the per-key-slot count of
 * forwarded requests not yet answered (a get of such a key is forwarded
 * behind them), the flush_all counts, the quiescent points and offline
 * spells of QSBR (qsbr.h) that free retired index tables, and X_BUMP: a
 * one-way record by which a shard that served a read tells the owner to
 * count it in the item, as its own get would have.
 */
#include "route.h"

#include <stdlib.h>
#include <string.h>

#include "../core/exec.h"
#include "../core/ring.h"
#include "../core/segidx.h"
#include "conn.h"
#include "log.h"
#include "memlimit.h"
#include "qsbr.h"
#include "shard.h"
#include "uring.h"
#include "xchan.h"

enum xtype {
    X_PAD = 0, /* reserved by xchan */
    X_REQ,
    X_REPLY,
    X_FLUSH,
    X_RESET,
    X_GATHER_REQ,
    X_GATHER_REPLY,
    X_MEMLIMIT, /* issue 12: cache_memlimit changed the limit (io/memlimit.c) */
    X_BUMP, /* issue 17: a read served from the owner's memory, for it to count */
};

struct x_bump {
    uint64_t hash;
    uint64_t loc;  /* where the reader found it... */
    uint32_t wseq; /* ...at this write sequence of the owner's */
    uint32_t nkey;
    /* then: key */
};

struct x_req {
    uint64_t hash;
    struct oseg *seg; /* the placeholder the reply fills (empty under noreply) */
    uint32_t conn_index;
    uint32_t conn_gen;
    uint32_t nvalue; /* value bytes carried (0 when too large: swallowed) */
    struct proto_req req; /* pointers re-aimed on arrival (proto.h) */
    /* then: key, value, opaque */
};

struct x_reply {
    struct oseg *seg;
    uint32_t conn_index;
    uint32_t conn_gen;
    uint32_t peek_slot; /* issue 17: the key's slot, counted down on arrival */
    /* reply bytes */
};

struct x_flush {
    int64_t delay;
};

struct gather {
    const struct gather_ops *ops;
    void *state;
    struct oseg *seg;
    uint32_t conn_index;
    uint32_t conn_gen;
    int kind;
    unsigned remaining;
};

struct x_gather_req {
    struct gather *gather;
    const struct gather_ops *ops;
    int32_t kind;
};

struct x_gather_reply {
    struct gather *gather;
    uint32_t from;
    /* the part */
};

struct backlog_rec {
    struct backlog_rec *next;
    uint16_t type;
    size_t len;
    /* payload */
};

/* --- sending ----------------------------------------------------------- */

/* Sends a record made of a header and up to three byte ranges to `dst`:
 * into the channel if it has room and nothing is waiting before it, else
 * into the destination's backlog, keeping the order. */
static bool route_send3(struct shard *shard, unsigned dst, uint16_t type, const void *hdr,
                        size_t hdr_len, const void *a, size_t a_len, const void *b, size_t b_len,
                        const void *c, size_t c_len)
{
    size_t len = hdr_len + a_len + b_len + c_len;
    struct backlog *bl = &shard->backlog[dst];
    char *p = NULL;
    struct backlog_rec *rec = NULL;

    if (bl->head == NULL)
        p = xchan_reserve(server_chan(shard->srv, shard->id, dst), len);
    if (p == NULL) {
        rec = malloc(sizeof(*rec) + len);
        if (rec == NULL)
            return false;
        shard->m.xchan_backlogged++; /* guard.h */
        shard->m.xchan_backlog_bytes += len;
        rec->next = NULL;
        rec->type = type;
        rec->len = len;
        p = (char *)(rec + 1);
    }
    char *q = p;
    if (hdr_len) {
        memcpy(q, hdr, hdr_len);
        q += hdr_len;
    }
    if (a_len) {
        memcpy(q, a, a_len);
        q += a_len;
    }
    if (b_len) {
        memcpy(q, b, b_len);
        q += b_len;
    }
    if (c_len)
        memcpy(q, c, c_len);
    if (rec == NULL) {
        xchan_commit(server_chan(shard->srv, shard->id, dst), type, len);
    } else {
        if (bl->tail != NULL)
            bl->tail->next = rec;
        else
            bl->head = rec;
        bl->tail = rec;
    }
    return true;
}

static bool route_send(struct shard *shard, unsigned dst, uint16_t type, const void *hdr,
                       size_t hdr_len, const void *a, size_t a_len, const void *b, size_t b_len)
{
    return route_send3(shard, dst, type, hdr, hdr_len, a, a_len, b, b_len, NULL, 0);
}

bool route_backlogged(const struct shard *shard)
{
    for (unsigned i = 0; i < shard->srv->nshards; i++) {
        if (shard->backlog[i].head != NULL)
            return true;
    }
    return false;
}

void route_drop_backlogs(struct shard *shard)
{
    if (shard->backlog == NULL)
        return;
    for (unsigned i = 0; i < shard->srv->nshards; i++) {
        struct backlog *bl = &shard->backlog[i];
        while (bl->head != NULL) {
            struct backlog_rec *rec = bl->head;
            bl->head = rec->next;
            shard->m.xchan_backlog_bytes -= rec->len;
            free(rec);
        }
        bl->tail = NULL;
    }
}

void route_publish(struct shard *shard)
{
    struct server *srv = shard->srv;
    for (unsigned dst = 0; dst < srv->nshards; dst++) {
        if (dst == shard->id)
            continue;
        struct xchan *chan = server_chan(srv, shard->id, dst);
        struct backlog *bl = &shard->backlog[dst];
        while (bl->head != NULL) {
            struct backlog_rec *rec = bl->head;
            void *p = xchan_reserve(chan, rec->len);
            if (p == NULL)
                break;
            memcpy(p, rec + 1, rec->len);
            xchan_commit(chan, rec->type, rec->len);
            bl->head = rec->next;
            if (bl->head == NULL)
                bl->tail = NULL;
            shard->m.xchan_backlog_bytes -= rec->len;
            free(rec);
        }
        if (xchan_publish(chan)) {
            struct io_uring_sqe *sqe = shard_sqe(shard);
            io_uring_prep_msg_ring(sqe, srv->shards[dst]->ring_fd, 0,
                                   ud_make(UD_WAKE, shard->id, 0), 0);
            io_uring_sqe_set_data64(sqe, ud_make(UD_IGNORE, 0, 0));
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            shard->m.xchan_wakeups++;
        }
    }
}

/* --- the request path -------------------------------------------------- */

static void scratch_reset(struct shard *shard)
{
    shard->scratch_sink.pos = shard->scratch;
    shard->scratch_sink.end = shard->scratch + shard->scratch_cap;
}

static size_t scratch_len(const struct shard *shard)
{
    return (size_t)(shard->scratch_sink.pos - shard->scratch);
}

/* exec_ctx.forward: the key of shard->serving's request goes to `owner`. */
static bool route_forward(void *router, unsigned owner, const struct proto_req *req, const char *key,
                          uint32_t nkey, uint64_t hash)
{
    struct shard *shard = router;
    struct conn *conn = shard->serving;
    struct oseg *seg = conn_reserve(conn);
    if (seg == NULL)
        return false;
    struct x_req x = {
        .hash = hash,
        .seg = seg,
        .conn_index = conn->index,
        .conn_gen = conn->gen,
        .nvalue = (proto_is_storage(req->cmd) && !req->too_large && req->value != NULL) ? req->nbytes : 0,
        .req = *req,
    };
    x.req.nkey = nkey; /* a retrieval forwards one of its keys */
    if (!route_send3(shard, owner, X_REQ, &x, sizeof(x), key, nkey, req->value, x.nvalue,
                     req->opaque, req->nopaque))
        return false;
    shard->m.forwarded_out++;
    if (shard->peek_pending != NULL) /* issue 17: gets of this key wait for it */
        shard->peek_pending[peek_slot(hash)]++;
    return true;
}

/* issue 17: exec_ctx.bump: the owner counts a read served from its memory */
static void route_bump(void *router, unsigned owner, const char *key, uint32_t nkey, uint64_t hash,
                       uint64_t loc, unsigned wseq)
{
    struct shard *shard = router;
    struct x_bump x = {.hash = hash, .loc = loc, .wseq = wseq, .nkey = nkey};
    if (!route_send(shard, owner, X_BUMP, &x, sizeof(x), key, nkey, NULL, 0))
        log_error(shard->srv, "shard %u: out of memory sending a read count", shard->id);
    shard->m.peek_bumps_out++;
}

void route_setup(struct shard *shard)
{
    const struct server *srv = shard->srv;
    const struct server_handler *h = srv->handler;
    shard->exec = (struct exec_ctx){
        .env = &shard->env,
        /* A handler that answers keys itself (the benchmark's ceiling)
         * answers them where they arrive. */
        .ring = h->local != NULL ? NULL : srv->ring,
        .self = shard->id,
        .forward = route_forward,
        .router = shard,
        .local = h->local,
        .local_state = shard->handler_state,
        .version = SERVER_VERSION_STRING,
        .enable_shutdown = srv->cfg.enable_shutdown,
        .disable_flush_all = srv->cfg.disable_flush_all,
        .disable_dumping = srv->cfg.disable_dumping,
        .detail = &srv->detail.hooks,
        .watch = &srv->watch.hooks, /* issue 12 */
        .disable_watch = srv->cfg.disable_watch,
        .slab_reassign = !srv->cfg.no_slab_reassign, /* issue 12 */
        .slab_classes = store_class_count(shard->store),
        .verbosity_max = LOG_LEVEL_MAX,
    };
    /* issue 17: with peers, gets of their keys are read from their memory
     * (core/peek.c) and this store is readable by them */
    if (shard->exec.ring != NULL && srv->nshards > 1) {
        shard->peek = (struct peek_reader){
            .shards = srv->peek,
            .nshards = srv->nshards,
            .flush_issued = &srv->flush_issued,
        };
        shard->peek_pending = calloc(PEEK_SLOTS, sizeof(uint32_t));
        shard->peek.pending = shard->peek_pending;
        if (shard->peek_pending != NULL) {
            struct peek_shard *self = &srv->peek[shard->id];
            store_peek_view(shard->store, &self->view);
            atomic_store_explicit(&self->readable, true, memory_order_release);
            shard->exec.peek_self = self;
            shard->exec.peek = &shard->peek;
            shard->exec.bump = route_bump;
        }
    }
}

/* --- issue 17: reads served where they arrive (core/peek.h) ------------- */

void route_write_begin(struct shard *shard)
{
    if (shard->exec.peek_self != NULL)
        peek_write_begin(shard->exec.peek_self);
}

void route_write_end(struct shard *shard)
{
    if (shard->exec.peek_self != NULL)
        peek_write_end(shard->exec.peek_self);
}

void route_quiescent(struct shard *shard)
{
    struct qsbr *q = shard->srv->qsbr;
    if (shard->exec.peek_self == NULL)
        return;
    qsbr_quiescent(q, shard->id);
    /* index tables retired by growth: stamped now, freed once every peer
     * has been quiescent since (core/segidx.h) */
    struct segidx *idx = store_index(shard->store);
    if (segidx_has_unstamped(idx))
        segidx_stamp_retired(idx, qsbr_retire(q));
    (void)segidx_reclaim(idx, qsbr_safe(q));
}

void route_teardown(struct shard *shard)
{
    if (shard->exec.peek_self != NULL) {
        /* Peers read only while they serve connections, and every
         * connection of every shard is closed before any loop ends
         * (loop_idle_after_stop), so none reads this store any more. */
        atomic_store_explicit(&shard->exec.peek_self->readable, false, memory_order_release);
        qsbr_offline(shard->srv->qsbr, shard->id);
        shard->exec.peek_self = NULL;
        shard->exec.peek = NULL;
    }
    free(shard->peek_pending);
    shard->peek_pending = NULL;
}


static void handle_req(struct shard *shard, unsigned from, const struct x_req *x, size_t len)
{
    /* The record is read only: work on a copy of the request whose
     * pointers are aimed at the key, value and opaque that follow it. */
    struct proto_req req = x->req;
    const char *key = (const char *)(x + 1);
    req.key = key;
    req.keys = key;
    req.keys_len = req.nkey;
    req.nkeys = 1;
    req.value = x->nvalue > 0 ? key + req.nkey : NULL;
    req.opaque = req.nopaque > 0 ? key + req.nkey + x->nvalue : NULL;
    req.args = NULL;
    req.nargs = 0;
    (void)len;
    shard->m.forwarded_in++;
    scratch_reset(shard);
    if (!exec_forwarded(&shard->exec, &req, key, req.nkey, x->hash, &shard->scratch_sink)) {
        scratch_reset(shard);
        bool ok = exec_reply_nomem(&req, &shard->scratch_sink);
        (void)ok; /* the scratch buffer always holds this much */
    }
    struct x_reply reply = {.seg = x->seg, .conn_index = x->conn_index, .conn_gen = x->conn_gen,
                            .peek_slot = peek_slot(x->hash)};
    if (!route_send(shard, from, X_REPLY, &reply, sizeof(reply), shard->scratch,
                    scratch_len(shard), NULL, 0)) {
        /* No memory for a large reply's record: the requester gets
         * memcached's out-of-memory answer in its place (a few bytes), so
         * its placeholder is filled and the replies after it go out. */
        scratch_reset(shard);
        bool ok = exec_reply_nomem(&req, &shard->scratch_sink);
        (void)ok; /* the scratch buffer always holds this much */
        shard->m.malloc_fails++;
        if (!route_send(shard, from, X_REPLY, &reply, sizeof(reply), shard->scratch,
                        scratch_len(shard), NULL, 0))
            log_error(shard->srv, "shard %u: out of memory forwarding a reply", shard->id);
    }
}

static void handle_reply(struct shard *shard, const struct x_reply *x, size_t len)
{
    struct conn *conn = conn_lookup(shard, x->conn_index, x->conn_gen);
    if (conn != NULL)
        conn_fill(conn, x->seg, x + 1, len - sizeof(*x));
}

/* --- broadcasts -------------------------------------------------------- */

static void flush_local(struct shard *shard, int64_t delay)
{
    mc_time_t when = delay > 0 ? mc_clock_exptime(&shard->srv->clock, shard->now, delay) : shard->now;
    route_write_begin(shard);
    store_flush(shard->store, when);
    route_write_end(shard);
    /* issue 17: readers on other shards read this store again once it
     * has applied every flush_all issued (peek_lookup) */
    atomic_fetch_add_explicit(&shard->srv->peek[shard->id].flushes, 1, memory_order_release);
}

void route_flush_all(struct shard *shard, int64_t delay)
{
    struct x_flush x = {.delay = delay};
    flush_local(shard, delay);
    for (unsigned dst = 0; dst < shard->srv->nshards; dst++) {
        if (dst == shard->id)
            continue;
        if (!route_send(shard, dst, X_FLUSH, &x, sizeof(x), NULL, 0, NULL, 0))
            log_error(shard->srv, "shard %u: out of memory broadcasting flush_all", shard->id);
    }
    /* issue 17: counted once its records are on their way, and before the
     * client hears OK: until a shard has applied every flush_all counted
     * here, no shard reads its store directly (peek_lookup), and its own
     * connections wait before running requests (conn.c, conn_flush_pending) */
    atomic_fetch_add_explicit(&shard->srv->flush_issued, 1, memory_order_release);
}

static void reset_local(struct shard *shard)
{
    store_reset_metrics(shard->store);
    metrics_reset(shard->m.v, shard_metric_desc, SHARD_METRIC_COUNT);
    latency_reset(&shard->latency);
}

void route_stats_reset(struct shard *shard)
{
    reset_local(shard);
    for (unsigned dst = 0; dst < shard->srv->nshards; dst++) {
        if (dst != shard->id && !route_send(shard, dst, X_RESET, NULL, 0, NULL, 0, NULL, 0))
            log_error(shard->srv, "shard %u: out of memory broadcasting stats reset", shard->id);
    }
}

/* issue 12: every other shard applies the new limit before anything this
 * shard sends it later (a forwarded set) */
void route_memlimit(struct shard *shard)
{
    for (unsigned dst = 0; dst < shard->srv->nshards; dst++) {
        if (dst != shard->id && !route_send(shard, dst, X_MEMLIMIT, NULL, 0, NULL, 0, NULL, 0))
            log_error(shard->srv, "shard %u: out of memory broadcasting cache_memlimit", shard->id);
    }
}

/* --- gathers ----------------------------------------------------------- */

static void gather_finish(struct shard *shard, struct gather *g)
{
    struct conn *conn = conn_lookup(shard, g->conn_index, g->conn_gen);
    if (conn != NULL) {
        scratch_reset(shard);
        if (!g->ops->render(shard, g->state, g->kind, &shard->scratch_sink)) {
            scratch_reset(shard);
            sink_puts(&shard->scratch_sink, "SERVER_ERROR out of memory writing stats\r\n");
        }
        conn_fill(conn, g->seg, shard->scratch, scratch_len(shard));
    }
    g->ops->free_state(g->state);
    free(g);
}

static void gather_fold(struct shard *shard, struct gather *g, unsigned from, const void *part,
                        size_t len)
{
    g->ops->fold(g->state, from, part, len);
    if (--g->remaining == 0)
        gather_finish(shard, g);
}

bool route_gather(struct conn *conn, const struct gather_ops *ops, int kind, void *state)
{
    struct shard *shard = conn->shard;
    struct gather *g = malloc(sizeof(*g));
    if (g == NULL) {
        ops->free_state(state);
        return false;
    }
    g->seg = conn_reserve(conn);
    if (g->seg == NULL) {
        ops->free_state(state);
        free(g);
        return false;
    }
    g->ops = ops;
    g->state = state;
    g->conn_index = conn->index;
    g->conn_gen = conn->gen;
    g->kind = kind;
    g->remaining = shard->srv->nshards;

    struct x_gather_req x = {.gather = g, .ops = ops, .kind = kind};
    for (unsigned dst = 0; dst < shard->srv->nshards; dst++) {
        if (dst != shard->id && !route_send(shard, dst, X_GATHER_REQ, &x, sizeof(x), NULL, 0, NULL, 0)) {
            /* That shard will never answer: count it as answered empty. */
            g->remaining--;
        }
    }
    scratch_reset(shard);
    if (!ops->collect(shard, kind, &shard->scratch_sink))
        scratch_reset(shard);
    gather_fold(shard, g, shard->id, shard->scratch, scratch_len(shard));
    return true;
}

static void handle_gather_req(struct shard *shard, unsigned from, const struct x_gather_req *x)
{
    scratch_reset(shard);
    if (!x->ops->collect(shard, x->kind, &shard->scratch_sink))
        scratch_reset(shard);
    struct x_gather_reply reply = {.gather = x->gather, .from = shard->id};
    if (!route_send(shard, from, X_GATHER_REPLY, &reply, sizeof(reply), shard->scratch,
                    scratch_len(shard), NULL, 0))
        log_error(shard->srv, "shard %u: out of memory answering a stats request", shard->id);
}

/* --- inbound ----------------------------------------------------------- */

static void route_handle(struct shard *shard, unsigned from, const struct xrec *rec)
{
    const void *p = xrec_payload(rec);
    switch (rec->type) {
    case X_REQ:
        handle_req(shard, from, p, rec->len);
        break;
    case X_REPLY:
        if (shard->peek_pending != NULL) /* issue 17 */
            shard->peek_pending[((const struct x_reply *)p)->peek_slot]--;
        handle_reply(shard, p, rec->len);
        break;
    case X_BUMP: { /* issue 17 */
        const struct x_bump *x = p;
        /* nothing written since the read: the item is still where it was */
        if (shard->exec.peek_self != NULL &&
            x->wseq == atomic_load_explicit(&shard->exec.peek_self->wseq, memory_order_relaxed))
            store_remote_hit_at(shard->store, x->loc);
        else
            store_remote_hit(shard->store, (const char *)(x + 1), x->nkey, x->hash);
        break;
    }
    case X_FLUSH:
        flush_local(shard, ((const struct x_flush *)p)->delay);
        break;
    case X_RESET:
        reset_local(shard);
        break;
    case X_MEMLIMIT: /* issue 12 */
        memlimit_apply(shard);
        break;
    case X_GATHER_REQ:
        handle_gather_req(shard, from, p);
        break;
    case X_GATHER_REPLY: {
        const struct x_gather_reply *x = p;
        gather_fold(shard, x->gather, x->from, x + 1, rec->len - sizeof(*x));
        break;
    }
    default:
        log_error(shard->srv, "shard %u: unknown record type %u from shard %u", shard->id,
                  rec->type, from);
        break;
    }
}

bool route_sleep(struct shard *shard)
{
    struct server *srv = shard->srv;
    bool empty = true;
    for (unsigned from = 0; from < srv->nshards; from++) {
        if (from != shard->id && !xchan_sleep(server_chan(srv, from, shard->id)))
            empty = false;
    }
    if (empty && shard->exec.peek_self != NULL) { /* issue 17: blocked: quiescent */
        qsbr_offline(shard->srv->qsbr, shard->id);
        shard->qsbr_offline = true;
    }
    return empty;
}

void route_awake(struct shard *shard)
{
    struct server *srv = shard->srv;
    if (shard->qsbr_offline) {
        qsbr_online(srv->qsbr, shard->id);
        shard->qsbr_offline = false;
    }
    for (unsigned from = 0; from < srv->nshards; from++) {
        if (from != shard->id)
            xchan_awake(server_chan(srv, from, shard->id));
    }
}

unsigned route_poll(struct shard *shard)
{
    struct server *srv = shard->srv;
    unsigned handled = 0;
    for (unsigned from = 0; from < srv->nshards; from++) {
        if (from == shard->id)
            continue;
        struct xchan *chan = server_chan(srv, from, shard->id);
        do {
            const struct xrec *rec;
            while ((rec = xchan_peek(chan)) != NULL) {
                route_handle(shard, from, rec);
                handled++;
            }
        } while (xchan_release(chan));
    }
    return handled;
}
