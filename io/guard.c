/*
 * guard.c: running out of descriptors, completion-queue room and metrics
 * slots, handled the same way each time: notice, count, back off or shed
 * the cheapest thing, recover by itself (see guard.h).
 *
 * Descriptors. memcached sets RLIMIT_NOFILE to -c at start; we raise the
 * soft limit to what -c plus the process's own descriptors need, and where
 * the hard limit forbids it main.c says so in one line at start. When the
 * process still runs out (a lower hard limit, other descriptors, ENFILE for
 * the whole system), the multishot accept ends with EMFILE/ENFILE. Re-arming
 * it at once is what made both cores spin: the connection waiting in the
 * listen queue fails again immediately, forever. Instead accepting pauses
 * for a backoff (10 ms, doubling up to 1 s while it keeps failing) on an
 * io_uring timeout, and the pause is counted as memcached's
 * listen_disabled_num (memcached disables its listener and re-checks every
 * 10 ms). Clients queue in the kernel's listen backlog meanwhile and are
 * answered once a descriptor frees up.
 *
 *   EMFILE ──> listen_disabled_num++ ──> timeout(backoff) ──> arm accept
 *                                             ^                   │
 *                                             └──── EMFILE again ─┘ (backoff x2)
 *
 * Metrics slots. A shard keeps at most GUARD_HTTP_SLOTS scrapers. A new one
 * when all are taken closes the scraper that has been idle longest (no
 * request being read, gathered or sent), so idle connections can never lock
 * out a scraper; only when every slot is mid-request does the newcomer get
 * 503, and each of those ends within GUARD_HTTP_DEADLINE_S. The tick closes
 * idle connections after --metrics-idle-timeout.
 */
#include "guard.h"

#include <errno.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "server.h"
#include "shard.h"
#include "uring.h"

/* Descriptors beyond the connections and listeners: stdio, the log, the
 * io_uring probe at start, getaddrinfo's sockets. */
#define GUARD_NOFILE_SLACK 32

uint64_t guard_nofile_need(const struct server *srv)
{
    /* per shard: its listeners (cache and metrics, each address), its ring
     * and the metrics slots */
    uint64_t per_shard = SHARD_LISTENERS_MAX + 1 + (srv->cfg.metrics_port != 0 ? GUARD_HTTP_SLOTS : 0);
    return (uint64_t)srv->cfg.conn_limit + per_shard * srv->nshards + GUARD_NOFILE_SLACK;
}

int guard_raise_nofile(uint64_t need, uint64_t *have)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return -errno;
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < need) {
        rlim_t want = need;
        if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < want)
            want = lim.rlim_max;
        lim.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0 || getrlimit(RLIMIT_NOFILE, &lim) != 0)
            return -errno;
    }
    *have = lim.rlim_cur;
    return lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= need ? 0 : -EPERM;
}

/* --- accept backoff ------------------------------------------------------ */

bool guard_accept_failed(struct shard *shard, unsigned listener, int res)
{
    if (res != -EMFILE && res != -ENFILE && res != -ENOMEM && res != -ENOBUFS)
        return false;
    if (listener >= SHARD_LISTENERS_MAX)
        return false;
    /* the server-wide fact (io/facts.h); rare: an atomic is fine */
    uint64_t paused = atomic_fetch_add(&shard->srv->listen_disabled_num, 1) + 1;
    if (atomic_fetch_add(&shard->srv->accept_paused, 1) == 0) /* until guard_accept_resumed */
        atomic_store(&shard->srv->paused_since_ns, shard_clock_ns()); /* time_in_listen_disabled_us */
    unsigned ms = shard->accept_backoff_ms;
    ms = ms == 0 ? GUARD_ACCEPT_BACKOFF_MIN_MS : ms * 2;
    if (ms > GUARD_ACCEPT_BACKOFF_MAX_MS)
        ms = GUARD_ACCEPT_BACKOFF_MAX_MS;
    shard->accept_backoff_ms = ms;
    if (paused == 1 || ms == GUARD_ACCEPT_BACKOFF_MAX_MS)
        log_info(shard->srv, "shard %u: accept: %s: not accepting for %u ms (raise `ulimit -n`)", shard->id,
                 res == -EMFILE ? "too many open files" : res == -ENFILE ? "system file table full"
                                                                          : "out of memory",
                 ms);
    /* The timespec is read when the SQE is submitted, later in this loop
     * iteration: it lives in the shard, one per listener. */
    struct __kernel_timespec *ts = &shard->accept_retry_ts[listener];
    ts->tv_sec = ms / 1000;
    ts->tv_nsec = (long long)(ms % 1000) * 1000 * 1000;
    struct io_uring_sqe *sqe = shard_sqe(shard);
    io_uring_prep_timeout(sqe, ts, 0, 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_ACCEPT_RETRY, listener, 0));
    return true;
}

void guard_accept_ok(struct shard *shard)
{
    shard->accept_backoff_ms = 0;
}

void guard_accept_resumed(struct shard *shard)
{
    struct server *srv = shard->srv;
    if (atomic_fetch_sub(&srv->accept_paused, 1) == 1) /* the last paused listener resumes */
        atomic_fetch_add(&srv->paused_total_ns, shard_clock_ns() - atomic_load(&srv->paused_since_ns));
}

uint64_t guard_listen_disabled_us(const struct server *srv)
{
    uint64_t ns = atomic_load(&srv->paused_total_ns);
    if (atomic_load(&srv->accept_paused) > 0) /* disabled now: the time so far counts */
        ns += shard_clock_ns() - atomic_load(&srv->paused_since_ns);
    return ns / 1000;
}

/* --- connection memory ---------------------------------------------------- */

struct conn_send *guard_send_get(struct shard *shard)
{
    struct conn_send *sb = shard->send_pool;
    if (sb != NULL) {
        shard->send_pool = sb->next;
        shard->send_pool_len--;
        return sb;
    }
    sb = malloc(sizeof(*sb));
    if (sb == NULL)
        shard->m.malloc_fails++;
    return sb;
}

void guard_send_put(struct shard *shard, struct conn_send *sb)
{
    if (sb == NULL)
        return;
    if (shard->send_pool_len >= GUARD_SEND_POOL_MAX) {
        free(sb);
        return;
    }
    sb->next = shard->send_pool;
    shard->send_pool = sb;
    shard->send_pool_len++;
}

void guard_send_pool_fini(struct shard *shard)
{
    while (shard->send_pool != NULL) {
        struct conn_send *sb = shard->send_pool;
        shard->send_pool = sb->next;
        free(sb);
    }
    shard->send_pool_len = 0;
}

void guard_input_release(struct shard *shard, uint64_t bytes)
{
    shard->m.conn_input_bytes -= bytes;
}

/* --- the metrics endpoint ------------------------------------------------ */

void guard_check_ring(struct shard *shard)
{
    if (shard->evring == NULL && IO_URING_READ_ONCE(*shard->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW)
        shard->m.uring_cq_overflows++;
}
