/*
 * watchconn.h: the connection side of `watch` (see watchconn.c): a
 * connection becomes a watcher, and its shard hands it its lines.
 */
#ifndef CORECACHE_IO_WATCHCONN_H
#define CORECACHE_IO_WATCHCONN_H

#include <stdint.h>

struct conn;
struct shard;

/* `watch`: makes `conn` a watcher of `kinds` (PROTO_WATCH_*), answering
 * "OK", or memcached's WATCHER_TOO_MANY / WATCHER_FAILED. From then on its
 * input is ignored and its output is the log. Its shard's thread only. */
void watchconn_attach(struct conn *conn, uint32_t kinds);

/* Moves each of this shard's watchers' buffered lines into its output
 * queue, and forgets the watchers whose connection closed. Its tick. */
void watchconn_pump(struct shard *shard);

#endif
