/*
 * boot.h: building, starting and joining the shards of one server (the
 * contract; see boot.c). Main thread only.
 */
#ifndef CORECACHE_IO_BOOT_H
#define CORECACHE_IO_BOOT_H

#include <stddef.h>

#include "server.h"

/*
 * Builds the shards, channels and listeners for srv->cfg (already parsed)
 * and srv->plan. Writes a one-line reason to `err` (of `errlen` bytes) on
 * failure and returns -errno or -EINVAL.
 */
int boot_setup(struct server *srv, char *err, size_t errlen);

/* Starts one pinned thread per shard. Returns 0 or -errno. */
int boot_start(struct server *srv, char *err, size_t errlen);

/* Waits for every shard thread to finish; returns the number that failed. */
unsigned boot_join(struct server *srv);

/* Frees the shards, channels and ring. */
void boot_teardown(struct server *srv);

#endif
