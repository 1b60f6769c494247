/*
 * memlimit.h: the item memory limit at runtime (see memlimit.c): memcached's
 * `cache_memlimit` and its T_MEMD_INITIAL_MALLOC test hook. Issue 12.
 */
#ifndef CORECACHE_IO_MEMLIMIT_H
#define CORECACHE_IO_MEMLIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct server;
struct shard;
struct sink;

/* Sets the limit to -m and reads T_MEMD_INITIAL_MALLOC. Before the shards
 * start. */
void memlimit_init(struct server *srv);

/* Brings this shard's store to the server's current limit if it changed
 * since the last call. Shard thread only: at store set-up and each tick. */
void memlimit_apply(struct shard *shard);

/* cache_memlimit's io/ half: `mb` megabytes (already within memcached's 8m
 * .. 1000000000 bounds) becomes the limit when the arenas reserved at
 * start-up hold it; writes OK or memcached's MEMLIMIT_ADJUST_FAILED to
 * `out` unless `noreply`. The calling shard applies it at once, the others
 * at their next tick. False when `out` ran out of memory. */
bool memlimit_command(struct shard *shard, uint32_t mb, bool noreply, struct sink *out);

#endif
