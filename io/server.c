/*
 * server.c: what the shards share at run time (see server.h): the start
 * gate every shard waits at, and the stop every shard watches for.
 */
#include "server.h"

#include <signal.h>

void server_shard_ready(struct server *srv)
{
    pthread_mutex_lock(&srv->start_lock);
    srv->ready++;
    pthread_cond_broadcast(&srv->start_cond);
    while (!srv->go)
        pthread_cond_wait(&srv->start_cond, &srv->start_lock);
    pthread_mutex_unlock(&srv->start_lock);
}

void server_stop(struct server *srv)
{
    bool was = atomic_exchange(&srv->stopping, true);
    /* The main thread sleeps in sigwait(): wake it if a client asked. */
    if (!was && !pthread_equal(pthread_self(), srv->main_thread))
        kill(srv->pid, SIGTERM);
}

