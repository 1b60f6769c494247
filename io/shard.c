/*
 * shard.c: what one shard owns, set up and torn down (see shard.h); its
 * event loop is loop.c.
 *
 * The ring is created with SINGLE_ISSUER and DEFER_TASKRUN where the kernel
 * has them (completions are then processed only when this thread asks, in
 * batches), so the thread that runs the loop calls shard_setup() itself.
 *
 * Receive buffers: a ring of `nbufs` provided buffers of `buf_size` bytes,
 * shared by all connections of the shard; a buffer goes back to the ring as
 * soon as its completion is handled (conn.c copies what it must keep).
 * They are consumed incrementally where the kernel can (IOU_PBUF_RING_INC,
 * 6.12): a 100-byte receive takes 100 bytes of the buffer at the ring's
 * head, not all 16 KiB, so a few buffers serve many connections. The ring
 * cycles through every buffer, so all of them become resident: they are
 * few (--recv-buffers) and made of small pages, never THP (issue 15).
 *
 */
#include "shard.h"

#include <errno.h>
#include <sched.h>
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
#include "evring.h"
#include "memfile.h"
#include "uring.h"
#include "watch.h"

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
/* IOU_PBUF_RING_INC (linux 6.12); Debian 12's liburing headers predate it */
#define SHARD_PBUF_RING_INC 2
#define SHARD_SCRATCH_SIZE (64 * 1024)

void shard_clock(struct shard *shard)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    shard->now = mc_clock_now(&shard->srv->clock, ts.tv_sec);
    shard->env.now = shard->now;
    store_set_clock(shard->store, shard->now);
}

struct io_uring_sqe *shard_sqe(struct shard *shard)
{
    if (shard->evring != NULL) {
        /* the epoll backend's queue grows; NULL only without memory */
        struct io_uring_sqe *sqe;
        while ((sqe = evring_sqe(shard->evring)) == NULL)
            sched_yield();
        return sqe;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&shard->ring);
    while (sqe == NULL) {
        /* the SQ is full: submit what it holds early (guard.h counts it) */
        io_uring_submit(&shard->ring);
        shard->m.uring_submits++;
        shard->m.uring_sq_full++;
        sqe = io_uring_get_sqe(&shard->ring);
    }
    return sqe;
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

static int setup_ring(struct shard *shard)
{
    if (shard->srv->io_epoll) {
        /* io_uring refused or unwanted (app.c): the epoll backend */
        int ret = evring_create(&shard->evring);
        if (ret == 0)
            shard->ring_fd = evring_wake_fd(shard->evring);
        return ret;
    }
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
    int ret = 0;
    if (shard->evring != NULL) {
        evring_provide_buffers(shard->evring, shard->br, shard->nbufs, shard->bgid);
    } else {
        reg.pad = SHARD_PBUF_RING_INC; /* the kernel's `flags` (liburing 2.3 calls it pad) */
        ret = io_uring_register_buf_ring(&shard->ring, &reg, 0);
        if (ret == -EINVAL) { /* a kernel before 6.12: whole buffers */
            reg.pad = 0;
            ret = io_uring_register_buf_ring(&shard->ring, &reg, 0);
        }
    }
    if (ret < 0)
        return ret;
    shard->buf_off = calloc(shard->nbufs, sizeof(*shard->buf_off));
    shard->bufs = place_alloc_on_node((size_t)shard->nbufs * shard->buf_size, shard->node);
    if (shard->bufs == NULL || shard->buf_off == NULL)
        return -ENOMEM;
    /* small pages: a 2 MiB huge page would make all of it resident at the
     * first receive (issue 15) */
    (void)madvise(shard->bufs, (size_t)shard->nbufs * shard->buf_size, MADV_NOHUGEPAGE);
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
    proto_parser_init(&shard->parser, &srv->limits);
    /* The store cuts its share into segments (store.c); a share must hold
     * the largest item, so a tiny -m with a large -I grows it to -I. */
    size_t grain = 64 * 1024;
    size_t share = cfg->memory_limit / srv->nshards;
    share -= share % grain;
    if (share < cfg->item_size_max)
        share = (cfg->item_size_max + grain - 1) / grain * grain;
    shard->arena_size = share;
    int err = -ENOMEM;
    if (cfg->memory_file != NULL) /* issue 14: -e, a file that outlives us */
        shard->arena = memfile_map(srv, shard->id, share, shard->node, &shard->memfile, &err);
    else
        shard->arena = place_alloc_on_node(share, shard->node);
    if (shard->arena == NULL)
        return err;
    struct store_cfg scfg = {
        .arena = shard->arena,
        .arena_size = share,
        .item_size_max = cfg->item_size_max,
        .slab_page_size = 0,
        .growth_factor = cfg->growth_factor,
        .chunk_min = cfg->slab_min_size,
        .slab_chunk_max = cfg->slab_chunk_max,
        .evictions = !cfg->disable_evictions,
        .cas_enabled = !cfg->disable_cas,
        .cas_offset = shard->id,
        .cas_stride = srv->nshards,
        /* issue 14: memcached's -o hashpower (default 16) over all shards */
        .index_power = store_index_power(cfg->hashpower, srv->nshards),
        .index_shards = srv->nshards,
    };
    if (store_create(&scfg, &shard->store) != MC_OK)
        return -EINVAL;
    if (shard->memfile != NULL && (err = memfile_attach(shard->memfile, srv, &scfg, &shard->store)) < 0)
        return err;
    /* issue 12: watch evictions (after a warm restart, on the restored store) */
    store_set_evict_hook(shard->store, watch_evicted, &srv->watch);
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
    if (shard->scratch == NULL || shard->backlog == NULL)
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

void shard_teardown(struct shard *shard)
{
    free(shard->conns);
    shard->conns = NULL;
    free(shard->free_idx);
    shard->free_idx = NULL;
    outq_cache_fini(&shard->outq_cache);
    if (shard->ring_ready)
        io_uring_queue_exit(&shard->ring);
    evring_destroy(&shard->evring);
    if (shard->br != NULL)
        munmap(shard->br, shard->br_size);
    if (shard->bufs != NULL)
        place_free(shard->bufs, (size_t)shard->nbufs * shard->buf_size);
    free(shard->buf_off);
    shard->buf_off = NULL;
    if (shard->memfile != NULL) { /* issue 14: saved only after a full drain */
        memfile_close(&shard->memfile, shard->srv, shard->drained ? shard->store : NULL);
        shard->arena = NULL; /* it was the file's mapping */
    }
    store_destroy(&shard->store);
    if (shard->arena != NULL)
        place_free(shard->arena, shard->arena_size);
    if (shard->handler_state != NULL && shard->srv->handler->shard_fini != NULL)
        shard->srv->handler->shard_fini(shard->handler_state);
    free(shard->handler_state);
    free(shard->scratch);
    free(shard->backlog);
    for (unsigned i = 0; i < shard->nlisten; i++) {
        if (shard->listen_fds[i] >= 0)
            close(shard->listen_fds[i]);
    }
}

int shard_setup(struct shard *shard, const char **step)
{
    *step = "io_uring setup";
    int ret = setup_ring(shard);
    if (ret == 0) {
        *step = "provided buffer ring";
        ret = setup_buffers(shard);
    }
    if (ret == 0) {
        *step = "slab arena";
        ret = setup_store(shard);
    }
    return ret;
}
