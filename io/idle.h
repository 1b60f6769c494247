/*
 * idle.h: memcached's -o idle_timeout for client connections (see idle.c).
 */
#ifndef CORECACHE_IO_IDLE_H
#define CORECACHE_IO_IDLE_H

struct shard;

/*
 * Closes this shard's client connections that have waited for a command
 * longer than -o idle_timeout seconds, counting each in idle_kicks. Does
 * nothing when the option is 0 (the default) or less than a second passed
 * since its last sweep. Shard thread only; called from its tick.
 */
void idle_sweep(struct shard *shard);

#endif
