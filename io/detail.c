/*
 * detail.c: memcached's per-prefix stats (`stats detail`, -D) for the whole
 * server (issue 12).
 *
 * memcached keeps one table under one lock (stats_prefix.c); so does this.
 * The lock is taken only while detail is on, which is off unless an
 * operator turns it on (`stats detail on`, -D): the default request path
 * pays one relaxed atomic load per key (in core/exec.c). Per-shard tables
 * merged on dump would avoid the lock, at the cost of a gather across
 * shards for a debugging command; memcached's own choice was kept.
 */
#include "detail.h"

#include <errno.h>

static void detail_note(void *state, const char *key, uint32_t nkey, enum prefix_op op, bool hit)
{
    struct detail *d = state;
    pthread_mutex_lock(&d->lock);
    (void)prefix_record(d->table, key, nkey, op, hit);
    pthread_mutex_unlock(&d->lock);
}

static bool detail_dump(void *state, struct sink *out)
{
    struct detail *d = state;
    pthread_mutex_lock(&d->lock);
    bool ok = prefix_render(d->table, out);
    pthread_mutex_unlock(&d->lock);
    return ok;
}

static void detail_clear(void *state)
{
    struct detail *d = state;
    pthread_mutex_lock(&d->lock);
    prefix_clear(d->table);
    pthread_mutex_unlock(&d->lock);
}

int detail_init(struct detail *detail, char delimiter, bool on)
{
    detail->table = prefix_create(delimiter);
    if (detail->table == NULL)
        return -ENOMEM;
    pthread_mutex_init(&detail->lock, NULL);
    atomic_init(&detail->enabled, on);
    detail->hooks = (struct exec_detail){
        .enabled = &detail->enabled,
        .note = detail_note,
        .dump = detail_dump,
        .clear = detail_clear,
        .state = detail,
    };
    return 0;
}

void detail_deinit(struct detail *detail)
{
    if (detail->table == NULL)
        return;
    prefix_destroy(&detail->table);
    pthread_mutex_destroy(&detail->lock);
}
