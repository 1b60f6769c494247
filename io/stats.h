/*
 * stats.h: the stats replies (the contract; see stats.c).
 *
 * core/exec.c parses a stats request into a group (EXEC_STATS); this
 * module answers it on the connection, in the request's protocol: the
 * general, items, slabs and shards groups from a snapshot gather of every
 * shard (snapshot.h), conns from a text gather, settings locally.
 */
#ifndef CORECACHE_IO_STATS_H
#define CORECACHE_IO_STATS_H

#include <stdbool.h>

#include "../core/exec.h"
#include "../core/proto.h"
#include "../core/sink.h"

struct conn;

/* Answers `group` for `req` on the connection (a placeholder now, the
 * reply once every shard has answered). False when memory ran out. The
 * connection's shard thread. */
bool stats_answer(struct conn *conn, const struct proto_req *req, enum exec_stats group);

/* The --describe-metrics line of the per-shard hit ratio (`stats shards`). */
bool stats_describe_shards(struct sink *out);

#endif
