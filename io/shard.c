/*
 * shard.c: the event loop of one shard (see shard.h).
 *
 * One pinned thread runs this loop for the life of the server:
 *
 *   for (;;) {
 *       handle every completion in the CQ      (accept, recv, send, tick, wake)
 *       handle every record from other shards  (route_poll)
 *       resume connections that may parse again, re-arm ended recvs
 *       queue one send per connection with new output
 *       publish records to other shards, wake the sleeping ones
 *       submit everything and wait for at least one completion
 *   }
 *
 * So a loop iteration is one io_uring_enter: every send, every recv re-arm
 * and every cross-shard wakeup of the iteration travel together. The ring
 * is created with SINGLE_ISSUER and DEFER_TASKRUN where the kernel has them
 * (completions are then processed only when this thread asks, in batches).
 *
 * Receive buffers: a ring of `nbufs` provided buffers of `buf_size` bytes,
 * shared by all connections of the shard; a buffer goes back to the ring as
 * soon as its completion is handled (conn.c copies what it must keep).
 *
 * A periodic tick (100 ms) refreshes the clock the store sees, runs a slice
 * of the store's background reclaim of expired items, and notices a
 * requested shutdown. Shutdown drains: the listener closes, connections stop
 * reading, replies already owed are sent, then connections close; the loop
 * ends when every shard has drained (a shard keeps serving requests
 * forwarded by others until then), or after a deadline.
 */
#include "shard.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../core/store.h"
#include "../numa/place.h"
#include "conn.h"
#include "guard.h"
#include "log.h"
#include "route.h"
#include "uring.h"
#include "xchan.h"

const struct metric_desc shard_metric_desc[] = {SHARD_METRIC(METRIC_DESC)};

/* Ring sizes. Without CAP_IPC_LOCK the kernel charges ring memory to the
 * user's locked-memory limit (often 8 MiB for all of a user's processes),
 * so the rings are no bigger than a loop iteration needs: shard_sqe()
 * submits early when the SQ fills, and the CQ is larger because completions
 * (one recv per busy connection) can outnumber what one iteration queued. */
#define SHARD_RING_ENTRIES 512 /* the CQ: --uring-cq-entries (4096) */
/* Receive buffers: a buffer goes back to the ring as soon as its completion
 * is handled, so a few hundred cover any one loop iteration; when a burst
 * empties the ring, the recv ends with ENOBUFS and is re-armed. The ring
 * cycles through every buffer (FIFO), so all of them become resident: more
 * would be memory no item can use (--recv-buffers, 256: 4 MiB per shard). */
#define SHARD_BUF_SIZE (16 * 1024)
#define SHARD_TICK_NS (100 * 1000 * 1000)
#define SHARD_CRAWL_BUDGET 2000
#define SHARD_DRAIN_TIMEOUT_NS (5ull * 1000 * 1000 * 1000)
#define SHARD_SCRATCH_SIZE (64 * 1024)

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void shard_clock(struct shard *shard)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    shard->now = mc_clock_now(&shard->srv->clock, ts.tv_sec);
    shard->env.now = shard->now;
    store_set_clock(shard->store, shard->now);
}

struct io_uring_sqe *shard_sqe(struct shard *shard)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&shard->ring);
    while (sqe == NULL) {
        io_uring_submit(&shard->ring);
        shard->m.uring_submits++;
        sqe = io_uring_get_sqe(&shard->ring);
    }
    return sqe;
}

void shard_resume_later(struct shard *shard, struct conn *conn)
{
    if (conn->on_resume_list)
        return;
    conn->on_resume_list = true;
    conn->resume_next = shard->resume_list;
    shard->resume_list = conn;
}

static bool scratch_grow(struct sink *sink, size_t need)
{
    struct shard *shard = (struct shard *)((char *)sink - offsetof(struct shard, scratch_sink));
    size_t used = (size_t)(sink->pos - shard->scratch);
    size_t cap = shard->scratch_cap * 2;
    if (cap < used + need)
        cap = used + need;
    char *p = realloc(shard->scratch, cap);
    if (p == NULL)
        return false;
    shard->scratch = p;
    shard->scratch_cap = cap;
    sink->pos = p + used;
    sink->end = p + cap;
    return true;
}

/* --- setup ------------------------------------------------------------- */

static void arm_accept(struct shard *shard, unsigned listener)
{
    struct io_uring_sqe *sqe = shard_sqe(shard);
    io_uring_prep_multishot_accept(sqe, shard->listen_fds[listener], NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud_make(UD_ACCEPT, listener, 0));
    shard->accept_armed[listener] = true;
}

static const struct __kernel_timespec tick_ts = {.tv_sec = 0, .tv_nsec = SHARD_TICK_NS};

static void arm_tick(struct shard *shard)
{
    struct io_uring_sqe *sqe = shard_sqe(shard);
    io_uring_prep_timeout(sqe, (struct __kernel_timespec *)&tick_ts, 0, 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_TIMER, 0, 0));
    shard->timer_armed = true;
}

static int setup_ring(struct shard *shard)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
              IORING_SETUP_CQSIZE;
    unsigned cq = shard->srv->cfg.uring_cq_entries;
    unsigned sq = cq < SHARD_RING_ENTRIES ? cq : SHARD_RING_ENTRIES;
    p.cq_entries = cq;
    int ret = io_uring_queue_init_params(sq, &shard->ring, &p);
    if (ret == -EINVAL) {
        /* An older kernel without these flags: run without them. */
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = cq;
        ret = io_uring_queue_init_params(sq, &shard->ring, &p);
    }
    if (ret < 0)
        return ret;
    shard->ring_ready = true;
    shard->ring_fd = shard->ring.ring_fd;
    return 0;
}

static int setup_buffers(struct shard *shard)
{
    shard->nbufs = shard->srv->cfg.recv_buffers;
    shard->buf_size = SHARD_BUF_SIZE;
    shard->bgid = 0;
    shard->br_size = shard->nbufs * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, shard->br_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED)
        return -errno;
    shard->br = mem;
    io_uring_buf_ring_init(shard->br);
    struct io_uring_buf_reg reg = {
        .ring_addr = (unsigned long)shard->br,
        .ring_entries = shard->nbufs,
        .bgid = shard->bgid,
    };
    int ret = io_uring_register_buf_ring(&shard->ring, &reg, 0);
    if (ret < 0)
        return ret;
    shard->bufs = place_alloc_on_node((size_t)shard->nbufs * shard->buf_size, shard->node);
    if (shard->bufs == NULL)
        return -ENOMEM;
    for (unsigned i = 0; i < shard->nbufs; i++)
        io_uring_buf_ring_add(shard->br, shard->bufs + (size_t)i * shard->buf_size, shard->buf_size,
                              (unsigned short)i, io_uring_buf_ring_mask(shard->nbufs), (int)i);
    io_uring_buf_ring_advance(shard->br, (int)shard->nbufs);
    return 0;
}

static int setup_store(struct shard *shard)
{
    struct server *srv = shard->srv;
    const struct cfg *cfg = &srv->cfg;
    size_t page = cfg->item_size_max > 1024 * 1024 ? cfg->item_size_max : 1024 * 1024;
    size_t share = cfg->memory_limit / srv->nshards;
    share -= share % page;
    if (share < page)
        share = page; /* one page per shard at least: -m is tiny */
    shard->arena_size = share;
    shard->arena = place_alloc_on_node(share, shard->node);
    if (shard->arena == NULL)
        return -ENOMEM;
    struct store_cfg scfg = {
        .arena = shard->arena,
        .arena_size = share,
        .item_size_max = cfg->item_size_max,
        .slab_page_size = page,
        .growth_factor = cfg->growth_factor,
        .chunk_min = cfg->slab_min_size,
        .evictions = !cfg->disable_evictions,
        .cas_enabled = !cfg->disable_cas,
        .cas_offset = shard->id,
        .cas_stride = srv->nshards,
    };
    if (store_create(&scfg, &shard->store) != MC_OK)
        return -EINVAL;
    shard->sample_countdown = 1;
    shard->sample_rng = 0x9e3779b9u ^ (shard->id + 1);
    shard->env.store = shard->store;
    shard->env.clock = &srv->clock;
    shard->env.default_ttl = srv->cfg.default_ttl;
    shard->env.max_ttl = srv->cfg.max_ttl;
    shard_clock(shard);

    shard->scratch_cap = SHARD_SCRATCH_SIZE;
    shard->scratch = malloc(shard->scratch_cap);
    shard->backlog = calloc(srv->nshards, sizeof(*shard->backlog));
    shard->wake = calloc(srv->nshards, sizeof(*shard->wake));
    if (shard->scratch == NULL || shard->backlog == NULL || shard->wake == NULL)
        return -ENOMEM;
    if (srv->handler->shard_state_size > 0) {
        shard->handler_state = calloc(1, srv->handler->shard_state_size);
        if (shard->handler_state == NULL)
            return -ENOMEM;
    }
    shard->scratch_sink.grow = scratch_grow;
    shard->scratch_sink.pos = shard->scratch;
    shard->scratch_sink.end = shard->scratch + shard->scratch_cap;
    return 0;
}

static void shard_teardown(struct shard *shard)
{
    for (uint32_t i = 0; i < shard->nconns; i++) {
        if (shard->conns[i] != NULL)
            conn_destroy(shard->conns[i]);
    }
    free(shard->conns);
    free(shard->free_idx);
    while (shard->seg_cache != NULL) {
        struct oseg *seg = shard->seg_cache;
        shard->seg_cache = seg->next;
        free(seg);
    }
    while (shard->small_cache != NULL) {
        struct oseg *seg = shard->small_cache;
        shard->small_cache = seg->next;
        free(seg);
    }
    if (shard->ring_ready)
        io_uring_queue_exit(&shard->ring);
    if (shard->br != NULL)
        munmap(shard->br, shard->br_size);
    if (shard->bufs != NULL)
        place_free(shard->bufs, (size_t)shard->nbufs * shard->buf_size);
    store_destroy(&shard->store);
    if (shard->arena != NULL)
        place_free(shard->arena, shard->arena_size);
    if (shard->handler_state != NULL && shard->srv->handler->shard_fini != NULL)
        shard->srv->handler->shard_fini(shard->handler_state);
    free(shard->handler_state);
    free(shard->scratch);
    route_drop_backlogs(shard);
    free(shard->backlog);
    free(shard->wake);
    for (unsigned i = 0; i < shard->nlisten; i++) {
        if (shard->listen_fds[i] >= 0)
            close(shard->listen_fds[i]);
    }
}

/* --- completions ------------------------------------------------------- */

static void on_accept(struct shard *shard, unsigned listener, int res, uint32_t flags)
{
    struct server *srv = shard->srv;
    if (listener >= shard->nlisten)
        return;
    if (!(flags & IORING_CQE_F_MORE))
        shard->accept_armed[listener] = false;
    if (res < 0) {
        if (!shard->stopping && guard_accept_failed(shard, listener, res))
            return; /* out of descriptors: a backoff timer re-arms it */
        if (res != -ECANCELED && res != -EBADF && res != -EINVAL)
            log_info(srv, "shard %u: accept failed: %s", shard->id, strerror(-res));
        if (!shard->accept_armed[listener] && !shard->stopping)
            arm_accept(shard, listener);
        return;
    }
    int fd = res;
    guard_accept_ok(shard);
    if (shard->stopping) {
        close(fd);
        return;
    }
    if (shard->listen_ops[listener]->metrics_endpoint) {
        /* Scrapers are not counted against -c (the endpoint must answer
         * when the cache is full of clients), but their number is bounded. */
        guard_accept_http(shard, fd, shard->listen_ops[listener]);
        if (!shard->accept_armed[listener] && !shard->stopping)
            arm_accept(shard, listener);
        return;
    }
    unsigned open = atomic_fetch_add_explicit(&srv->curr_conns, 1, memory_order_relaxed);
    if (open >= srv->cfg.conn_limit) {
        /* memcached's answer under maxconns_fast, then close. */
        static const char msg[] = "ERROR Too many open connections\r\n";
        ssize_t ignored = send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)ignored;
        close(fd);
        atomic_fetch_sub_explicit(&srv->curr_conns, 1, memory_order_relaxed);
        shard->m.rejected_connections++;
        log_info(srv, "shard %u: too many open connections (-c %u)", shard->id, srv->cfg.conn_limit);
    } else if (conn_create(shard, fd, shard->listen_ops[listener]) == NULL) {
        close(fd);
        atomic_fetch_sub_explicit(&srv->curr_conns, 1, memory_order_relaxed);
        shard->m.malloc_fails++;
        log_error(srv, "shard %u: out of memory accepting a connection", shard->id);
    }
    if (!shard->accept_armed[listener] && !shard->stopping)
        arm_accept(shard, listener);
}

static void begin_stop(struct shard *shard)
{
    shard->stopping = true;
    shard->stop_deadline_ns = mono_ns() + SHARD_DRAIN_TIMEOUT_NS;
    for (unsigned i = 0; i < shard->nlisten; i++) {
        if (shard->listen_fds[i] >= 0) {
            /* Ends the multishot accept: no new connections. */
            shutdown(shard->listen_fds[i], SHUT_RDWR);
            close(shard->listen_fds[i]);
            shard->listen_fds[i] = -1;
        }
    }
    for (uint32_t i = 0; i < shard->nconns; i++) {
        struct conn *conn = shard->conns[i];
        if (conn != NULL && conn->fd >= 0)
            conn_drain(conn);
    }
}

static void on_tick(struct shard *shard)
{
    shard->timer_armed = false;
    shard_clock(shard);
    store_crawl(shard->store, SHARD_CRAWL_BUDGET);
    guard_tick(shard);
    if (!shard->stopping && atomic_load_explicit(&shard->srv->stopping, memory_order_acquire))
        begin_stop(shard);
    if (shard->stopping && mono_ns() > shard->stop_deadline_ns) {
        for (uint32_t i = 0; i < shard->nconns; i++) {
            struct conn *conn = shard->conns[i];
            if (conn != NULL && conn->fd >= 0)
                conn_close(conn, "shutdown deadline");
        }
    }
    arm_tick(shard);
}

static struct conn *conn_of(struct shard *shard, uint64_t ud)
{
    uint32_t index = ud_index(ud);
    if (index >= shard->nconns)
        return NULL;
    struct conn *conn = shard->conns[index];
    if (conn == NULL || conn->gen != ud_gen(ud) || conn->fd < 0)
        return NULL;
    return conn;
}

static void handle_cqe(struct shard *shard, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    struct conn *conn;
    switch (ud_type(ud)) {
    case UD_ACCEPT:
        on_accept(shard, ud_index(ud), cqe->res, cqe->flags);
        break;
    case UD_RECV:
        conn = conn_of(shard, ud);
        if (conn != NULL) {
            conn_on_recv(conn, cqe->res, cqe->flags);
        } else if (cqe->flags & IORING_CQE_F_BUFFER) {
            /* Never expected (a connection is freed only after its recv
             * ended), but a buffer must never leak from the ring. */
            unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            io_uring_buf_ring_add(shard->br, shard->bufs + (size_t)bid * shard->buf_size,
                                  shard->buf_size, (unsigned short)bid,
                                  io_uring_buf_ring_mask(shard->nbufs), 0);
            io_uring_buf_ring_advance(shard->br, 1);
        }
        break;
    case UD_SEND:
        conn = conn_of(shard, ud);
        if (conn != NULL)
            conn_on_send(conn, cqe->res);
        break;
    case UD_CANCEL:
        conn = conn_of(shard, ud);
        if (conn != NULL)
            conn_on_cancel(conn, cqe->res);
        break;
    case UD_CLOSE:
        conn = conn_of(shard, ud);
        if (conn != NULL)
            conn_on_close(conn, cqe->res);
        break;
    case UD_TIMER:
        on_tick(shard);
        break;
    case UD_ACCEPT_RETRY: /* the pause after EMFILE is over (guard.c) */
        if (ud_index(ud) < shard->nlisten && !shard->stopping && !shard->accept_armed[ud_index(ud)] &&
            shard->listen_fds[ud_index(ud)] >= 0)
            arm_accept(shard, ud_index(ud));
        break;
    case UD_WAKE:
    case UD_IGNORE:
    case UD_NONE:
        break;
    }
}

static unsigned drain_cq(struct shard *shard)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&shard->ring, head, cqe)
    {
        handle_cqe(shard, cqe);
        n++;
    }
    io_uring_cq_advance(&shard->ring, n);
    shard->m.uring_completions += n;
    return n;
}

static void run_lists(struct shard *shard)
{
    /* Handlers may push the same connection onto another list; each list
     * is taken whole before it is walked, so nothing is lost or looped. */
    while (shard->resume_list != NULL || shard->rearm_list != NULL || shard->flush_list != NULL) {
        struct conn *list = shard->resume_list;
        shard->resume_list = NULL;
        while (list != NULL) {
            struct conn *next = list->resume_next;
            conn_resume(list);
            list = next;
        }
        list = shard->rearm_list;
        shard->rearm_list = NULL;
        while (list != NULL) {
            struct conn *next = list->rearm_next;
            conn_rearm(list);
            list = next;
        }
        list = shard->flush_list;
        shard->flush_list = NULL;
        while (list != NULL) {
            struct conn *next = list->flush_next;
            conn_flush(list);
            list = next;
        }
    }
}

static bool shard_idle_after_stop(struct shard *shard)
{
    if (!shard->stopping)
        return false;
    if (!shard->drained && shard->m.curr_connections == 0 && shard->m.http_connections == 0) {
        shard->drained = true;
        atomic_fetch_add_explicit(&shard->srv->drained, 1, memory_order_acq_rel);
    }
    if (!shard->drained)
        return false;
    if (atomic_load_explicit(&shard->srv->drained, memory_order_acquire) != shard->srv->nshards)
        return false;
    /* Records still waiting for a peer that has left its loop (its channel
     * full) would wait forever: past the drain deadline they are dropped,
     * as every connection they could answer is closed. */
    return !route_backlogged(shard) || mono_ns() > shard->stop_deadline_ns;
}

static void shard_loop(struct shard *shard)
{
    for (;;) {
        guard_check_ring(shard);
        drain_cq(shard);
        route_poll(shard);
        run_lists(shard);
        route_publish(shard);
        if (shard_idle_after_stop(shard))
            break;
        int ret;
        if (shard->resume_list != NULL || route_backlogged(shard)) {
            /* Work is waiting on others: look again soon even if nothing
             * completes. */
            struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 1000 * 1000};
            struct io_uring_cqe *cqe;
            ret = io_uring_submit_and_wait_timeout(&shard->ring, &cqe, 1, &ts, NULL);
        } else {
            ret = io_uring_submit_and_wait(&shard->ring, 1);
        }
        shard->m.uring_submits++;
        if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EAGAIN && ret != -EBUSY)
            log_error(shard->srv, "shard %u: io_uring_enter failed: %s", shard->id, strerror(-ret));
    }
}

void *shard_main(void *arg)
{
    struct shard *shard = arg;
    struct server *srv = shard->srv;
    int ret = place_pin_self(shard->cpu);
    if (ret < 0)
        log_info(srv, "shard %u: cannot pin to CPU %u: %s", shard->id, shard->cpu, strerror(-ret));

    const char *step = "io_uring setup";
    ret = setup_ring(shard);
    if (ret == 0) {
        step = "provided buffer ring";
        ret = setup_buffers(shard);
    }
    if (ret == 0) {
        step = "slab arena";
        ret = setup_store(shard);
    }
    if (ret < 0) {
        log_error(srv, "corecache: shard %u: %s failed: %s%s", shard->id, step, strerror(-ret),
                  ret == -ENOMEM && shard->ring_fd == 0
                      ? " (io_uring rings count against the locked-memory limit: raise `ulimit -l`,"
                        " LimitMEMLOCK= in a systemd unit)"
                      : "");
        shard->exit_code = 1;
        atomic_store(&srv->start_failed, true);
    }
    /* Every ring exists (so every ring_fd is known) before anyone sends. */
    server_shard_ready(srv);
    if (!atomic_load(&srv->start_failed)) {
        for (unsigned i = 0; i < shard->nlisten; i++)
            arm_accept(shard, i);
        arm_tick(shard);
        shard_loop(shard);
    }
    shard_teardown(shard);
    return NULL;
}
