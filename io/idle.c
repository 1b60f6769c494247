/*
 * idle.c: memcached 1.6's -o idle_timeout: a client connection that sends
 * no command for longer than the timeout is closed, and idle_kicks counts
 * it.
 *
 * memcached runs a thread that wakes once a second, walks every connection
 * and asks its worker to close the ones idle too long (conn_timeout_thread,
 * conn_close_idle). Here each shard sweeps its own connections from its
 * tick, once per second of its clock, so no other thread touches them.
 *
 * "Idle" is memcached's: waiting for a command (its conn_new_cmd and
 * conn_read states), with last_cmd_time, set at accept and at every
 * request (serve.c), older than the timeout; one reading a value (rneed,
 * memcached's conn_nread) is not idle either. A connection with replies
 * still to send or to receive from other shards is busy, not idle, as
 * memcached's writing states are. Metrics-endpoint connections have their
 * own timeout (--metrics-idle-timeout, loop.c).
 */
#include "idle.h"

#include "conn.h"
#include "shard.h"

static bool idle_waiting(const struct conn *conn)
{
    return conn->fd >= 0 && !conn->closing && !conn->ops->metrics_endpoint && conn->rneed == 0 &&
           conn->out.npending == 0 &&
           conn->out.bytes == 0 && !conn->send_inflight;
}

void idle_sweep(struct shard *shard)
{
    uint32_t timeout = shard->srv->cfg.idle_timeout;
    mc_time_t now = shard->now;
    if (timeout == 0 || now == shard->idle_swept_at)
        return;
    shard->idle_swept_at = now;
    for (uint32_t i = 0; i < shard->nconns; i++) {
        struct conn *conn = shard->conns[i];
        if (conn == NULL || !idle_waiting(conn))
            continue;
        /* memcached: current_time - last_cmd_time > idle_timeout */
        if (now - conn->last_cmd_time > timeout) {
            shard->m.idle_kicks++;
            conn_close(conn, "idle timeout");
        }
    }
}
