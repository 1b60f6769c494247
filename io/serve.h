/*
 * serve.h: the cache's protocols on a connection (the contract; see
 * serve.c).
 *
 * A connection's step for memcached's text (and meta) protocol, for its
 * binary protocol, and for -B auto, which picks one of the two from a
 * connection's first byte. Each step parses one request (core/proto.c,
 * core/proto_bin.c), has core/exec.c execute it, and carries out the action
 * exec returns on the connection or the server.
 */
#ifndef CORECACHE_IO_SERVE_H
#define CORECACHE_IO_SERVE_H

#include "conn.h"

/* memcached's text protocol (classic and meta commands). */
extern const struct conn_ops serve_text_ops;
/* memcached's binary protocol. */
extern const struct conn_ops serve_binary_ops;
/* memcached's default (-B auto): decided by a connection's first byte. */
extern const struct conn_ops serve_auto_ops;

/* The protocol new connections start with, for -B "ascii", "binary" or
 * "auto" (anything else: auto). Any thread. */
const struct conn_ops *serve_ops_for_protocol(const char *protocol);

#endif
