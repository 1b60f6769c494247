/*
 * lrucrawl.h: memcached's `lru_crawler` command over the segment engine
 * (see lrucrawl.c). Issue 12.
 */
#ifndef CORECACHE_IO_LRUCRAWL_H
#define CORECACHE_IO_LRUCRAWL_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct server;
struct shard;
struct sink;

/* The crawler's state from the command line (-o lru_crawler,
 * no_lru_crawler, no_modern). Before the shards start. */
void lrucrawl_init(struct server *srv);

/* One tick's slice of the background crawler, while it is enabled. */
void lrucrawl_tick(struct shard *shard);

/* lru_crawler <words> (the text after the command word), answered on
 * `conn`. False when no memory could be had for the reply. */
bool lrucrawl_command(struct conn *conn, const char *args, size_t nargs);

/* `stats settings`' lru_crawler yes|no, as memcached writes it. */
bool lrucrawl_render_settings(const struct server *srv, struct sink *out);

#endif
