/*
 * boot.c: building, starting and joining the shards (see boot.h).
 *
 * Order of startup, chosen so that a failure leaves nothing behind and so
 * that privileges can be dropped after binding:
 *   1. boot_setup (main thread, still root if started as root): the ring
 *      of shards, the channels between every pair of shards, and every
 *      listening socket (bound now, so a port below 1024 works with -u);
 *   2. main.c drops privileges;
 *   3. boot_start: one thread per shard, pinned to its CPU; each creates
 *      its own io_uring (a single-issuer ring must be created by the thread
 *      that submits to it), its buffers and its store on its NUMA node,
 *      then waits at a gate that the main thread opens once every shard
 *      has reported; the main thread learns there whether all came up.
 */
#include "boot.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "login.h"
#include "loop.h"
#include "scrape.h"
#include "serve.h"
#include "shard.h"
#include "tls.h"
#include "xchan.h"

int boot_setup(struct server *srv, char *err, size_t errlen)
{
    unsigned n = srv->plan.nshards;
    int fds[LISTEN_ADDRS_MAX * TOPO_CPUS_MAX];
    srv->nshards = n;
    srv->pid = getpid();

    if (ring_create(n, RING_VNODES_DEFAULT, &srv->ring) != MC_OK) {
        snprintf(err, errlen, "corecache: cannot build the hash ring for %u shards", n);
        return -ENOMEM;
    }
    srv->shards = calloc(n, sizeof(*srv->shards));
    srv->chans = calloc((size_t)n * n, sizeof(*srv->chans));
    if (srv->shards == NULL || srv->chans == NULL)
        goto nomem;
    /* issue 17: shards read each other's stores (core/peek.h, qsbr.h) */
    srv->peek = aligned_alloc(64, sizeof(*srv->peek) * n);
    srv->qsbr = qsbr_create(n);
    if (srv->peek == NULL || srv->qsbr == NULL)
        goto nomem;
    memset(srv->peek, 0, sizeof(*srv->peek) * n);

    /* 512 KiB keeps small-request batches flowing; records over 64 KiB
     * (a large set, a large reply) travel by pointer (xchan.c), so the
     * size does not follow -I. A ring cycles through all of its pages, so
     * all of it is resident: it stays small (issue 15; it was 8 MiB per
     * direction at -I 1m). */
    size_t chan_size = 512u * 1024;
    for (unsigned from = 0; from < n; from++) {
        for (unsigned to = 0; to < n; to++) {
            if (from == to)
                continue;
            srv->chans[from * n + to] = xchan_create(chan_size);
            if (srv->chans[from * n + to] == NULL)
                goto nomem;
        }
    }

    /* TLS and logins (tls.c, login.c) before any socket is open */
    int ret;
    if (srv->cfg.enable_ssl) {
        ret = tls_server_create(&srv->tls, &srv->cfg, err, errlen);
        if (ret < 0)
            return ret;
    } else if (strstr(srv->cfg.listen, LISTEN_NOTLS) != NULL) {
        snprintf(err, errlen, "corecache: -l %s: 'notls' option is valid only when SSL is enabled (-Z)",
                 srv->cfg.listen);
        return -EINVAL;
    }
    ret = login_create(&srv->login, &srv->cfg, err, errlen);
    if (ret < 0)
        return ret;

    if (srv->cfg.unix_socket != NULL) { /* -s: instead of TCP, as in memcached */
        ret = listen_open_unix(srv->cfg.unix_socket, srv->cfg.unix_mask, srv->cfg.listen_backlog, n,
                               fds, err, errlen);
        srv->nlisten = 1;
    } else {
        ret = listen_open(srv->cfg.listen, srv->cfg.port, srv->cfg.listen_backlog, n, fds,
                          &srv->nlisten, err, errlen);
    }
    if (ret < 0)
        return ret;
    for (unsigned a = 0; srv->cfg.accept_by_cpu && srv->cfg.unix_socket == NULL && a < srv->nlisten; a++) {
        ret = listen_steer_by_cpu(fds[a * n], srv->plan.cpu, n);
        if (ret < 0) {
            snprintf(err, errlen, "corecache: --accept-by-cpu: cannot attach the steering program: %s",
                     strerror(-ret));
            for (unsigned i = 0; i < srv->nlisten * n; i++)
                close(fds[i]);
            return ret;
        }
    }
    /* The metrics endpoint: its own sockets on the same addresses, or on
     * its own (--metrics-listen). */
    int metrics_fds[LISTEN_ADDRS_MAX * TOPO_CPUS_MAX];
    unsigned nmetrics = 0;
    const char *metrics_spec = srv->cfg.metrics_listen != NULL ? srv->cfg.metrics_listen : srv->cfg.listen;
    if (srv->cfg.metrics_port != 0) {
        ret = listen_open_on_port(metrics_spec, srv->cfg.metrics_port, srv->cfg.listen_backlog, n,
                                  metrics_fds, &nmetrics, err, errlen);
        if (ret < 0)
            return ret;
    }

    for (unsigned i = 0; i < n; i++) {
        struct shard *shard = calloc(1, sizeof(*shard));
        if (shard == NULL)
            goto nomem;
        shard->srv = srv;
        shard->id = i;
        shard->cpu = srv->plan.cpu[i];
        shard->node = srv->plan.node[i];
        shard->nlisten = srv->nlisten + nmetrics;
        for (unsigned a = 0; a < srv->nlisten; a++) {
            shard->listen_fds[a] = fds[a * n + i];
            /* -B, behind -Y's or -S's login */
            shard->listen_ops[a] = login_ops(srv->login, serve_ops_for_protocol(srv->cfg.protocol));
            shard->listen_tls[a] = srv->tls != NULL && !listen_notls(srv->cfg.listen, a);
        }
        for (unsigned a = 0; a < nmetrics; a++) {
            shard->listen_fds[srv->nlisten + a] = metrics_fds[a * n + i];
            shard->listen_ops[srv->nlisten + a] = &scrape_conn_ops;
            shard->listen_tls[srv->nlisten + a] = srv->tls != NULL && !listen_notls(metrics_spec, a);
        }
        srv->shards[i] = shard;
    }
    return 0;

nomem:
    snprintf(err, errlen, "corecache: out of memory setting up %u shards", n);
    return -ENOMEM;
}

int boot_start(struct server *srv, char *err, size_t errlen)
{
    pthread_mutex_init(&srv->start_lock, NULL);
    pthread_cond_init(&srv->start_cond, NULL);
    srv->main_thread = pthread_self();
    unsigned started = 0;
    for (unsigned i = 0; i < srv->nshards; i++) {
        int ret = pthread_create(&srv->shards[i]->thread, NULL, loop_main, srv->shards[i]);
        if (ret != 0) {
            snprintf(err, errlen, "corecache: cannot start shard %u: %s", i, strerror(ret));
            atomic_store(&srv->start_failed, true);
            srv->shards[i]->exit_code = 1;
            break;
        }
        started++;
    }
    pthread_mutex_lock(&srv->start_lock);
    while (srv->ready < started)
        pthread_cond_wait(&srv->start_cond, &srv->start_lock);
    srv->go = true;
    pthread_cond_broadcast(&srv->start_cond);
    pthread_mutex_unlock(&srv->start_lock);
    if (atomic_load(&srv->start_failed)) {
        if (err[0] == '\0')
            snprintf(err, errlen, "corecache: a shard failed to start (see above)");
        return -EIO;
    }
    return 0;
}

unsigned boot_join(struct server *srv)
{
    unsigned failed = 0;
    for (unsigned i = 0; i < srv->nshards; i++) {
        if (srv->shards[i]->thread != 0) {
            pthread_join(srv->shards[i]->thread, NULL);
            srv->shards[i]->thread = 0;
        }
        if (srv->shards[i]->exit_code != 0)
            failed++;
    }
    return failed;
}

void boot_teardown(struct server *srv)
{
    if (srv->shards != NULL) {
        for (unsigned i = 0; i < srv->nshards; i++)
            free(srv->shards[i]);
        free(srv->shards);
        srv->shards = NULL;
    }
    if (srv->chans != NULL) {
        for (unsigned i = 0; i < srv->nshards * srv->nshards; i++)
            xchan_destroy(&srv->chans[i]);
        free(srv->chans);
        srv->chans = NULL;
    }
    free(srv->peek); /* issue 17 */
    srv->peek = NULL;
    qsbr_destroy(&srv->qsbr);
    ring_destroy(&srv->ring);
    tls_server_destroy(&srv->tls);
    login_destroy(&srv->login);
}
