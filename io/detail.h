/*
 * detail.h: the server's one `stats detail` table (the contract; see
 * detail.c), handed to every shard's exec_ctx.
 */
#ifndef CORECACHE_IO_DETAIL_H
#define CORECACHE_IO_DETAIL_H

#include <pthread.h>
#include <stdatomic.h>

#include "../core/exec.h"
#include "../core/prefix.h"

struct detail {
    struct exec_detail hooks; /* what exec calls; hooks.state is this */
    atomic_bool enabled;
    pthread_mutex_t lock; /* serializes the table: shards note, any shard dumps */
    struct prefix_table *table;
};

/* Sets up the table splitting keys at `delimiter` (-D, else ':'), counting
 * from the start when `on` (memcached: -D turns detail on). 0 or -ENOMEM. */
int detail_init(struct detail *detail, char delimiter, bool on);
void detail_deinit(struct detail *detail);

#endif
