/*
 * route.h: where a request goes (the contract; see route.c).
 *
 * The one routing API of the server. core/exec.c hashes a key once and asks
 * the consistent-hash ring for its owner; if that is this shard the key
 * runs here and now (the fast path: no lock, no allocation, no message),
 * otherwise exec calls the router this module installs (route_setup), and
 * the request is copied into the channel to its owner, whose reply comes
 * back on the channel the other way and fills the placeholder the
 * connection reserved. Broadcasts (flush_all, stats reset) and gathers
 * (stats, metrics) use the same channels.
 *
 * All functions run on the calling shard's thread.
 */
#ifndef CORECACHE_IO_ROUTE_H
#define CORECACHE_IO_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/proto.h"
#include "../core/sink.h"

struct shard;
struct conn;
struct oseg;

/* Fills shard->exec: this shard's store, the ring, the forwarding router,
 * the server's settings. Once, on the shard's thread, after shard_setup. */
void route_setup(struct shard *shard);

/* issue 17: reads served where they arrive (core/peek.h). Around anything
 * that changes the store outside exec (the crawler, flush_all); at the top
 * of each loop iteration (a quiescent point: reclaims what peers no longer
 * read); and at the end, before the store goes (peers stop reading it). */
void route_write_begin(struct shard *shard);
void route_write_end(struct shard *shard);
void route_quiescent(struct shard *shard);
void route_teardown(struct shard *shard);

/* flush_all: applies `delay` (the client's argument) on every shard. */
void route_flush_all(struct shard *shard, int64_t delay);

/* stats reset on every shard. */
void route_stats_reset(struct shard *shard);

/* cache_memlimit (issue 12): the other shards apply the server's new limit
 * (io/memlimit.c) now rather than at their next tick. */
void route_memlimit(struct shard *shard);

/*
 * Gathers: asks every shard (this one included) for a snapshot of kind
 * `kind` and calls `done` on this shard once all have answered, with the
 * placeholder `seg` of `conn` to fill. The snapshot kinds and the reducer
 * live in stats.c.
 */
struct gather_ops {
    /* Writes this shard's part into out (runs on each shard). */
    bool (*collect)(struct shard *shard, int kind, struct sink *out);
    /* Folds one shard's part (bytes) into the gather's state. */
    void (*fold)(void *state, unsigned from, const void *part, size_t len);
    /* Renders the reply once every part is in (runs on the asking shard). */
    bool (*render)(struct shard *shard, void *state, int kind, struct sink *out);
    void (*free_state)(void *state);
};
bool route_gather(struct conn *conn, const struct gather_ops *ops, int kind, void *state);

/* Handles every record waiting in this shard's inbound channels. Returns
 * the number handled. */
unsigned route_poll(struct shard *shard);

/* Moves backlogged records into channels, publishes, and queues MSG_RING
 * wakeups for shards that may be asleep. Once per loop iteration. */
void route_publish(struct shard *shard);

/* Around the loop's blocking wait (issue 17): route_sleep tells the other
 * shards that this one may block, so that they wake it when they publish,
 * and returns false if records already wait (do not block then);
 * route_awake, once the wait returned (or was skipped), stops their
 * wakeups: a shard that runs reads its channels every iteration anyway. */
bool route_sleep(struct shard *shard);
void route_awake(struct shard *shard);

/* True if records are waiting in a backlog (the loop must not sleep long). */
bool route_backlogged(const struct shard *shard);

/* Frees records still in the backlogs (shard teardown). */
void route_drop_backlogs(struct shard *shard);

#endif
