/*
 * conn_bin.c: a connection speaking memcached's binary protocol
 * (conn_binary_ops), and the choice of protocol for new connections (-B).
 *
 * The step parses one request (core/proto_bin.c) and executes it. Keyed
 * requests go through the server's handler exactly like text ones
 * (route_key: run here or forwarded whole to the owning shard, whose reply,
 * composed by core/process_bin.c, fills a placeholder), so replies keep
 * request order across shards. A binary request never has `noreply`: a
 * quiet command still answers its errors, so every forwarded binary request
 * reserves a placeholder, which a quiet success fills with nothing.
 *
 * Non-keyed opcodes run on the connection's shard: noop (an empty success;
 * being in order behind every earlier reply, it is the client's pipeline
 * fence), version, quit/quitq, flush/flushq (route_flush_all), stat
 * (stats.c). Protocol errors answer their error packet; the ones memcached
 * closes on close once it is sent, and a bad magic byte closes without a
 * reply of its own once the replies before it are sent.
 */
#include <string.h>

#include "../core/proto_bin.h"
#include "conn.h"
#include "route.h"
#include "shard.h"
#include "stats.h"

/* Stops input; the connection closes once what it has to say is sent. */
static void close_after_reply(struct conn *conn)
{
    conn->close_after_write = true;
    conn->closing = true;
}

static bool reply_empty(struct conn *conn, const struct proto_req *req)
{
    return proto_bin_reply(req, PROTO_BIN_SUCCESS, NULL, 0, NULL, 0, 0, &conn->sink);
}

/* Executes one parsed request. Returns false if the connection must stop
 * parsing (closing, or out of memory). */
static bool bin_execute(struct conn *conn, const struct proto_req *req)
{
    struct shard *shard = conn->shard;
    struct server *srv = shard->srv;
    bool ok = true;

    conn->last_cmd_time = shard->now;
    switch (req->cmd) {
    case PROTO_NONE: /* swallowed bytes, or a bad magic byte */
        if (req->close) {
            /* memcached flushes the replies it has before it closes */
            close_after_reply(conn);
            return false;
        }
        return true;
    case PROTO_ERROR:
        ok = proto_bin_error(req, req->bin.status, req->error, &conn->sink);
        if (ok && req->close) {
            close_after_reply(conn);
            return false;
        }
        break;
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
        ok = srv->handler->keyed(conn, req, req->key, req->nkey);
        break;
    case PROTO_NOOP:
        ok = reply_empty(conn, req);
        break;
    case PROTO_VERSION:
        ok = proto_bin_reply(req, PROTO_BIN_SUCCESS, NULL, 0, SERVER_VERSION_STRING,
                             (uint32_t)strlen(SERVER_VERSION_STRING), 0, &conn->sink);
        break;
    case PROTO_QUIT:
        ok = req->bin.quiet || reply_empty(conn, req);
        if (ok) {
            close_after_reply(conn);
            return false;
        }
        break;
    case PROTO_FLUSH_ALL:
        shard->m.cmd_flush++;
        route_flush_all(shard, req->exptime);
        if (!req->bin.quiet)
            ok = reply_empty(conn, req);
        break;
    case PROTO_STATS:
        ok = stats_binary(conn, req);
        break;
    default: /* text-only commands: the binary parser never returns them */
        break;
    }
    if (!ok) {
        conn_close(conn, "out of memory composing a reply");
        return false;
    }
    return true;
}

static size_t bin_step(struct conn *conn, const char *buf, size_t len, size_t *need)
{
    struct proto_req req;
    size_t used = proto_bin_parse(&conn->parser, buf, len, &req, need);
    if (used > 0)
        bin_execute(conn, &req);
    return used;
}

const struct conn_ops conn_binary_ops = {
    .name = "binary",
    .step = bin_step,
};

const struct conn_ops *conn_ops_for_protocol(const char *protocol)
{
    if (protocol != NULL && strcmp(protocol, "ascii") == 0)
        return &conn_text_ops;
    if (protocol != NULL && strcmp(protocol, "binary") == 0)
        return &conn_binary_ops;
    return &conn_auto_ops;
}
