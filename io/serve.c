/*
 * serve.c: a cache connection's protocol step (see serve.h).
 *
 * One step: parse a request out of the bytes received (the parser keeps
 * nothing but a swallow count), execute it (core/exec.c: every key, local
 * or forwarded, and every reply that can be written at once), then carry
 * out the action exec returned. The actions are where a request reaches
 * beyond its shard's store: the connection (quit, close), the other shards
 * (flush_all, stats reset, a stats gather) or the process (verbosity,
 * shutdown). Nothing here knows a command by name.
 *
 * memcached negotiates a connection's protocol from its first byte: 0x80
 * (the binary request magic) means binary, anything else text; -B ascii or
 * -B binary fixes it instead.
 */
#include "serve.h"

#include <stdatomic.h>
#include <string.h>

#include "../core/exec.h"
#include "../core/proto_bin.h"
#include "log.h"
#include "route.h"
#include "shard.h"
#include "stats.h"
#include "tls.h"
#include "watchconn.h"

/* Carries out what exec asked of io/. */
static void serve_act(struct conn *conn, const struct proto_req *req, const struct exec_result *r)
{
    struct shard *shard = conn->shard;
    struct server *srv = shard->srv;
    switch (r->action) {
    case EXEC_NEXT: /* serve_request does not call for it */
        return;
    case EXEC_QUIT:
        conn_close_after_write(conn);
        return;
    case EXEC_CLOSE:
    case EXEC_NOMEM:
        conn_close(conn, r->reason);
        return;
    case EXEC_FLUSH_ALL:
        shard->m.cmd_flush++;
        route_flush_all(shard, r->delay);
        return;
    case EXEC_STATS:
        if (!stats_answer(conn, req, r->group))
            conn_close(conn, "out of memory composing stats");
        return;
    case EXEC_STATS_RESET:
        route_stats_reset(shard);
        return;
    case EXEC_VERBOSITY:
        atomic_store_explicit(&srv->verbosity, r->level, memory_order_relaxed);
        return;
    case EXEC_SHUTDOWN:
        log_info(srv, "shutdown requested by a client");
        server_stop(srv);
        conn_close(conn, r->reason);
        return;
    case EXEC_WATCH: /* issue 12 */
        watchconn_attach(conn, r->watch_kinds);
        return;
    case EXEC_REFRESH_CERTS:
        if (!tls_refresh_command(srv->tls, r->noreply, &conn->out.sink))
            conn_close(conn, "out of memory composing a reply");
        return;
    }
}

static void serve_request(struct conn *conn, const struct proto_req *req)
{
    struct shard *shard = conn->shard;
    conn->last_cmd_time = shard->now;
    shard->serving = conn;
    struct exec_result r;
    if (exec_request(&shard->exec, req, &conn->out.sink, &r) != EXEC_NEXT)
        serve_act(conn, req, &r);
}

typedef size_t (*serve_parse_fn)(struct proto_parser *parser, const char *buf, size_t len,
                                struct proto_req *req, size_t *need);

/* One request: parsed by the protocol's parser, then executed. */
static size_t serve_step(struct conn *conn, serve_parse_fn parse, const char *buf, size_t len, size_t *need)
{
    struct proto_req req;
    /* One parser per shard: a request is executed, or copied to its owner,
     * before the next is parsed, so its meta-key scratch is free again; the
     * connection keeps only what must outlive the request (swallow). */
    struct proto_parser *parser = &conn->shard->parser;
    parser->swallow = conn->swallow;
    size_t used = parse(parser, buf, len, &req, need);
    conn->swallow = parser->swallow;
    req.cfd = conn->fd; /* what `watch` lines name (issue 12) */
    if (used > 0)
        serve_request(conn, &req);
    return used;
}

static size_t text_step(struct conn *conn, const char *buf, size_t len, size_t *need)
{
    return serve_step(conn, proto_parse, buf, len, need);
}

static size_t binary_step(struct conn *conn, const char *buf, size_t len, size_t *need)
{
    return serve_step(conn, proto_bin_parse, buf, len, need);
}

static size_t auto_step(struct conn *conn, const char *buf, size_t len, size_t *need)
{
    conn->ops = (unsigned char)buf[0] == PROTO_BIN_REQ_MAGIC ? &serve_binary_ops : &serve_text_ops;
    return conn->ops->step(conn, buf, len, need);
}

const struct conn_ops serve_text_ops = {.name = "ascii", .step = text_step};
const struct conn_ops serve_binary_ops = {.name = "binary", .step = binary_step};
const struct conn_ops serve_auto_ops = {.name = "auto-negotiate", .step = auto_step};

const struct conn_ops *serve_ops_for_protocol(const char *protocol)
{
    if (protocol != NULL && strcmp(protocol, "ascii") == 0)
        return &serve_text_ops;
    if (protocol != NULL && strcmp(protocol, "binary") == 0)
        return &serve_binary_ops;
    return &serve_auto_ops;
}
