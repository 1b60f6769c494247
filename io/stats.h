/*
 * stats.h: the `stats` family of commands (the contract; see stats.c).
 *
 * Every shard is the only writer of its counters. A `stats` request asks
 * each shard for a copy through the router (route_gather), sums the copies
 * on the asking shard and renders memcached 1.6's exact format: every line
 * "STAT <name> <value>", then "END".
 */
#ifndef CORECACHE_IO_STATS_H
#define CORECACHE_IO_STATS_H

#include <stdbool.h>

#include "../core/proto.h"

struct conn;

/* Answers `stats [args]` on the connection; false when memory ran out. */
bool stats_command(struct conn *conn, const struct proto_req *req);

/* Answers a binary STAT request (the group in req->args): memcached's stat
 * packets, one per line, then the empty one; false when memory ran out.
 * The connection's shard thread. */
bool stats_binary(struct conn *conn, const struct proto_req *req);

#endif
