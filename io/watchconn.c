/*
 * watchconn.c: the connection side of memcached's `watch` (the table and
 * its lines are watch.c's).
 *
 * A watching connection stays an ordinary connection of its shard: its
 * protocol step becomes one that ignores input (memcached ignores what a
 * watcher sends), and each tick of its shard moves the lines buffered for
 * it into its output queue, sent like any reply. So no other thread ever
 * touches it, it closes like any connection, and the next pump forgets it.
 *
 * Backpressure: lines move only while the connection's unsent output is
 * below one watcher buffer. A watcher that does not read thus holds about
 * one buffer in its queue and one in the table; past that its lines are
 * skipped and counted (memcached's "skipped=N").
 */
#include "watchconn.h"

#include <errno.h>
#include <string.h>

#include "conn.h"
#include "shard.h"
#include "watch.h"

static size_t watchconn_step(struct conn *conn, const char *buf, size_t len, size_t *need)
{
    (void)conn;
    (void)buf;
    (void)need;
    return len;
}

static const struct conn_ops watchconn_ops = {.name = "watch", .step = watchconn_step, .log_stream = true};

void watchconn_attach(struct conn *conn, uint32_t kinds)
{
    struct shard *shard = conn->shard;
    int ret = watch_add(&shard->srv->watch, shard->id, conn->index, conn->gen, kinds);
    const char *reply = ret == 0          ? "OK\r\n"
                        : ret == -EMFILE ? "WATCHER_TOO_MANY log watcher limit reached\r\n"
                                         : "WATCHER_FAILED failed to add log watcher\r\n";
    if (ret == 0)
        conn->ops = &watchconn_ops;
    if (!sink_put(&conn->out.sink, reply, strlen(reply)))
        conn_close(conn, "out of memory composing a reply");
}

static enum watch_delivery watchconn_deliver(void *arg, uint32_t index, uint32_t gen, const char *buf, size_t len)
{
    struct shard *shard = arg;
    struct conn *conn = index < shard->nconns ? shard->conns[index] : NULL;
    if (conn == NULL || conn->gen != gen || conn->fd < 0 || conn->closing)
        return WATCH_GONE;
    outq_sync(&conn->out);
    if (len == 0 || conn->out.bytes >= shard->srv->watch.bufsize)
        return WATCH_WAIT;
    if (!sink_put(&conn->out.sink, buf, len))
        return WATCH_WAIT; /* no memory now: the lines wait, and may be skipped */
    conn_want_flush(conn);
    return WATCH_TAKEN;
}

void watchconn_pump(struct shard *shard)
{
    watch_pump(&shard->srv->watch, shard->id, watchconn_deliver, shard);
}
