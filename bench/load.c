/*
 * load.c: worker threads, connections, and closed/open-loop scheduling
 * (load.h).
 *
 * Threads. The calling thread resolves the address, opens every connection
 * (so a refused connection is reported before anything runs), and gives
 * each worker its connections and an epoll instance. It then starts the
 * workers once for the prefill and once for the measured run, joining them
 * in between, and prints progress while they run. Workers share nothing
 * but the read-only run description (struct load) and a done counter;
 * each owns its connections, random generator, histogram and counters, and
 * publishes a few counters for the progress line with relaxed atomic
 * stores (one writer each).
 *
 * A worker is one event loop over non-blocking sockets:
 *
 *     +--> wait (epoll_pwait2, ns timeout: the next due request or the deadline)
 *     |      readable: recv -> resp_parse -> match reply to the oldest request
 *     |                -> record latency -> fill the connection again -> send
 *     |      writable: send what is buffered -> fill -> send
 *     |    timer due (open loop): fill every connection whose request is due
 *     +--- until nothing is left to send or to wait for, or the deadline
 *
 * Connection state:
 *
 *     out:  [ sent | buffered, not yet sent ............ | free ]
 *           0      out_head                              out_tail  out_cap
 *     fifo: ring of struct pending, oldest first: one per request written
 *           and not yet answered (replies come back in request order).
 *
 * "Fill" writes requests into `out` while the connection has fewer than
 * `depth` in flight, room for the largest request, and a request may go:
 * prefill keys remain; closed loop: the run has not ended; open loop: the
 * connection's next intended send time has come. Latency is reply time
 * minus `intended`, which is the write time in a closed loop and the
 * scheduled time in an open loop.
 *
 * Matching replies to requests: resp_parse() yields elements; the oldest
 * request decides what it accepts (a text get: VALUEs then END; a meta or
 * binary multi-get: values then the no-op; a set: STORED/HD). Anything else
 * means the stream can no longer be matched: counted as a protocol error
 * and the connection is closed.
 *
 * Invariants: fifo_count <= fifo_cap; out_head <= out_tail <= out_cap;
 * worker->outstanding == sum of fifo_count over its open connections.
 */
#include "load.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "keygen.h"
#include "req.h"
#include "resp.h"
#include "rng.h"

#define NS_PER_S 1000000000ull
#define RECV_BUF (256 * 1024)
#define MAX_EVENTS 256
#define CONNECT_TIMEOUT_MS 5000
#define OUT_CAP_MAX (4u << 20) /* per connection, unless one request is larger */
#define VALUE_SLACK 64         /* values start at a random offset below this */

static const struct metric_desc metric_desc[] = {LOAD_METRIC(METRIC_DESC)};

const struct metric_desc *load_metric_desc(size_t *count)
{
    *count = METRIC_COUNT(LOAD_METRIC);
    return metric_desc;
}

uint64_t load_errors(const struct load_metrics *m)
{
    return m->errors_reply + m->errors_unexpected + m->errors_protocol + m->errors_conn +
           m->errors_timeout;
}

enum phase {
    PHASE_PREFILL,
    PHASE_WARMUP,
    PHASE_MEASURE,
};

struct pending {
    uint64_t intended; /* ns: scheduled (open loop) or written (closed loop) */
    uint32_t width;    /* keys asked for; 0 for a set */
    uint32_t hits;     /* values received so far */
    uint8_t phase;     /* enum phase */
    bool failed;       /* an error reply arrived for it */
};

struct worker;

struct conn {
    struct worker *worker;
    int fd;
    SSL *ssl; /* --tls: the session over fd; NULL for plain TCP */
    bool open;
    bool want_out; /* EPOLLOUT is armed */
    struct resp_parser *parser;
    char *out;
    size_t out_head, out_tail, out_cap;
    struct pending *fifo;
    uint32_t fifo_head, fifo_count, fifo_cap;
    /* open loop */
    uint64_t first_due; /* intended time of this connection's first request */
    uint64_t next_due;  /* intended time of its next request */
    uint64_t scheduled; /* requests scheduled so far (fixed arrival) */
};

struct load;

struct worker {
    struct load *load;
    unsigned index;
    pthread_t thread;
    int epfd;
    struct conn *conns;
    unsigned nconns;
    struct rng rng;
    struct keygen *keygen;
    char *values; /* random letters to cut values from */
    uint64_t *ids;
    char *rbuf;
    struct hist *latency;
    struct hist *send_lag;
    struct load_metrics m;
    enum phase phase;   /* PHASE_PREFILL or PHASE_MEASURE (warmup is per request) */
    unsigned depth;     /* requests in flight per connection in this phase */
    uint64_t outstanding;
    uint64_t quota;     /* measured requests this worker may still issue */
    uint64_t prefill_next, prefill_end;
    uint64_t wake;      /* open loop: no connection is due before this */
    uint64_t last_reply;
    uint64_t last_measured_reply;
    bool fallback_wait; /* epoll_pwait2 is missing: millisecond waits */
    char first_error[192];
    /* published for the progress line (relaxed atomics, this worker writes) */
    uint64_t pub_done, pub_hits, pub_get_keys, pub_errors;
};

struct load {
    const struct opts *opts;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char addr_text[128];
    struct worker *workers;
    unsigned nworkers;
    size_t prefix_len;
    size_t max_request;
    bool open_loop;
    double interval; /* open loop: mean ns between one connection's requests */
    uint64_t start;   /* ns: the run's schedule begins (warmup included) */
    uint64_t measure; /* start + warmup: requests intended from here on are measured */
    uint64_t end;     /* measure + duration: nothing is intended from here on */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned done; /* workers finished with the current phase (under lock) */
    SSL_CTX *tls;  /* --tls */
};

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* Keeps the first error a worker saw, "<prefix><detail>", for the report. */
static void note_error(struct worker *w, const char *prefix, const char *detail, size_t detail_len)
{
    if (w->first_error[0] != '\0')
        return;
    snprintf(w->first_error, sizeof(w->first_error), "%s%.*s", prefix, (int)detail_len, detail);
}

/* The length snprintf() produced into a buffer of `size`, truncation included. */
static size_t written(int n, size_t size)
{
    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}

static void publish(struct worker *w)
{
    uint64_t done = w->phase == PHASE_PREFILL ? w->m.prefill_sets
                                              : w->m.requests + w->m.warmup_requests;
    __atomic_store_n(&w->pub_done, done, __ATOMIC_RELAXED);
    __atomic_store_n(&w->pub_hits, w->m.hits, __ATOMIC_RELAXED);
    __atomic_store_n(&w->pub_get_keys, w->m.get_keys, __ATOMIC_RELAXED);
    __atomic_store_n(&w->pub_errors, load_errors(&w->m), __ATOMIC_RELAXED);
}

/* Closes a connection after an error; its requests in flight are lost
 * (the error counted here is what makes the run fail). */
static void conn_fail(struct conn *c, uint64_t *counter, const char *what, size_t what_len)
{
    struct worker *w = c->worker;
    if (!c->open)
        return;
    (*counter)++;
    note_error(w, "", what, what_len);
    w->outstanding -= c->fifo_count;
    c->fifo_count = 0;
    c->open = false;
    SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    publish(w);
}

static void conn_fail_errno(struct conn *c, const char *call, int err)
{
    char what[128];
    int n = snprintf(what, sizeof(what), "%s: %s", call, strerror(err));
    conn_fail(c, &c->worker->m.errors_conn, what, written(n, sizeof(what)));
}

static void conn_arm_out(struct conn *c, bool on)
{
    if (c->want_out == on || !c->open)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(c->worker->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = on;
}

/* Sends what is buffered; arms EPOLLOUT if the socket is full. */
static void conn_flush(struct conn *c)
{
    while (c->open && c->out_head < c->out_tail) {
        ssize_t n;
        if (c->ssl != NULL) {
            int r = SSL_write(c->ssl, c->out + c->out_head, (int)(c->out_tail - c->out_head));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE)
                    conn_arm_out(c, true);
                else if (e != SSL_ERROR_WANT_READ)
                    conn_fail_errno(c, "SSL_write", EPROTO);
                ERR_clear_error();
                return;
            }
            n = r;
        } else {
            n = send(c->fd, c->out + c->out_head, c->out_tail - c->out_head, MSG_NOSIGNAL);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                conn_arm_out(c, true);
                return;
            }
            conn_fail_errno(c, "send", errno);
            return;
        }
        c->worker->m.bytes_out += (uint64_t)n;
        c->out_head += (size_t)n;
    }
    c->out_head = c->out_tail = 0;
    conn_arm_out(c, false);
}

/* True when the largest request fits in `out` (compacting it if need be). */
static bool conn_room(struct conn *c)
{
    size_t need = c->worker->load->max_request;
    if (c->out_cap - c->out_tail >= need)
        return true;
    if (c->out_head > 0) {
        memmove(c->out, c->out + c->out_head, c->out_tail - c->out_head);
        c->out_tail -= c->out_head;
        c->out_head = 0;
    }
    return c->out_cap - c->out_tail >= need;
}

static void conn_push(struct conn *c, uint64_t intended, uint32_t width, enum phase phase)
{
    uint32_t slot = (c->fifo_head + c->fifo_count) % c->fifo_cap;
    c->fifo[slot] = (struct pending){.intended = intended, .width = width, .phase = (uint8_t)phase};
    c->fifo_count++;
    c->worker->outstanding++;
}

static size_t value_len(struct worker *w)
{
    const struct opts_range *r = &w->load->opts->value_size;
    return (size_t)(r->min + (r->max > r->min ? rng_below(&w->rng, r->max - r->min + 1) : 0));
}

static void conn_write_set(struct conn *c, uint64_t id)
{
    struct worker *w = c->worker;
    const struct opts *opts = w->load->opts;
    const char *value = w->values + rng_below(&w->rng, VALUE_SLACK);
    c->out_tail += req_set(opts->protocol, c->out + c->out_tail, opts->key_prefix,
                           w->load->prefix_len, id, value, value_len(w));
}

/* Writes one request of the workload mix; returns its width (0: a set). */
static uint32_t conn_write_random(struct conn *c)
{
    struct worker *w = c->worker;
    const struct opts *opts = w->load->opts;
    uint32_t total = opts->ratio.get + opts->ratio.set;
    if (rng_below(&w->rng, total) >= opts->ratio.get) {
        conn_write_set(c, keygen_next(w->keygen, &w->rng));
        return 0;
    }
    for (uint32_t i = 0; i < opts->multiget; i++)
        w->ids[i] = keygen_next(w->keygen, &w->rng);
    c->out_tail += req_get(opts->protocol, c->out + c->out_tail, opts->key_prefix,
                           w->load->prefix_len, w->ids, opts->multiget);
    return opts->multiget;
}

/* The intended time of the request after the one just scheduled. */
static void conn_advance_schedule(struct conn *c)
{
    struct worker *w = c->worker;
    struct load *load = w->load;
    c->scheduled++;
    if (load->opts->arrival == OPTS_ARRIVAL_POISSON) {
        /* exponential gap: -ln(1 - U) * mean, U in [0, 1) */
        c->next_due += (uint64_t)(-log1p(-rng_double(&w->rng)) * load->interval);
    } else {
        /* from the first due time, so rounding never accumulates */
        c->next_due = c->first_due + (uint64_t)((double)c->scheduled * load->interval);
    }
}

/* Writes every request the connection may send now (see the file comment). */
static void conn_fill(struct conn *c, uint64_t now)
{
    struct worker *w = c->worker;
    struct load *load = w->load;
    while (c->open && c->fifo_count < w->depth) {
        if (w->phase == PHASE_PREFILL) {
            if (w->prefill_next == w->prefill_end || !conn_room(c))
                return;
            conn_write_set(c, w->prefill_next++);
            conn_push(c, now, 0, PHASE_PREFILL);
            continue;
        }
        if (w->quota == 0)
            return;
        uint64_t intended;
        if (load->open_loop) {
            if (c->next_due > now || c->next_due >= load->end)
                return;
            intended = c->next_due;
        } else {
            if (now >= load->end)
                return;
            intended = now;
        }
        if (!conn_room(c))
            return;
        uint32_t width = conn_write_random(c);
        enum phase phase = intended >= load->measure ? PHASE_MEASURE : PHASE_WARMUP;
        conn_push(c, intended, width, phase);
        if (phase == PHASE_MEASURE) {
            w->quota--;
            if (load->open_loop)
                hist_record(w->send_lag, now - intended);
        }
        if (load->open_loop)
            conn_advance_schedule(c);
    }
}

/* Retires the oldest request. ok: it got the reply it should have. */
static void conn_complete(struct conn *c, uint64_t now, bool ok)
{
    struct worker *w = c->worker;
    struct pending *p = &c->fifo[c->fifo_head];
    c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
    c->fifo_count--;
    w->outstanding--;
    w->last_reply = now;
    if (!ok)
        return;
    switch ((enum phase)p->phase) {
    case PHASE_PREFILL:
        w->m.prefill_sets++;
        break;
    case PHASE_WARMUP:
        w->m.warmup_requests++;
        break;
    case PHASE_MEASURE:
        w->m.requests++;
        if (p->width == 0) {
            w->m.sets++;
        } else {
            w->m.gets++;
            w->m.get_keys += p->width;
            w->m.hits += p->hits;
        }
        hist_record(w->latency, now > p->intended ? now - p->intended : 0);
        w->last_measured_reply = now;
        break;
    }
}

static bool is_error_reply(enum resp_kind kind)
{
    return kind == RESP_ERROR || kind == RESP_CLIENT_ERROR || kind == RESP_SERVER_ERROR;
}

static void note_reply(struct worker *w, const struct resp *r)
{
    const char *text = r->line != NULL ? r->line : resp_kind_str(r->kind);
    note_error(w, "server replied: ", text, r->line != NULL ? r->line_len : strlen(text));
}

/*
 * Feeds one reply element to the oldest request. Returns false when the
 * element cannot belong to it (the connection has then been closed).
 */
static bool conn_element(struct conn *c, const struct resp *r, uint64_t now)
{
    struct worker *w = c->worker;
    enum req_proto proto = w->load->opts->protocol;
    if (c->fifo_count == 0)
        goto unmatched;
    struct pending *p = &c->fifo[c->fifo_head];
    if (is_error_reply(r->kind)) {
        w->m.errors_reply++;
        note_reply(w, r);
        /* A text reply ends at the error line; a meta or binary multi-get
         * still ends at its no-op. */
        if (proto == REQ_TEXT || p->width <= 1)
            conn_complete(c, now, false);
        else
            p->failed = true;
        return true;
    }
    if (p->width == 0) {
        enum resp_kind stored = proto == REQ_META ? RESP_HD : RESP_STORED;
        if (r->kind == stored) {
            conn_complete(c, now, true);
            return true;
        }
        if (r->kind == RESP_NOT_STORED || r->kind == RESP_EXISTS || r->kind == RESP_NOT_FOUND) {
            w->m.errors_unexpected++;
            note_reply(w, r);
            conn_complete(c, now, false);
            return true;
        }
        goto unmatched;
    }
    if (proto == REQ_TEXT) {
        if (r->kind == RESP_VALUE && p->hits < p->width) {
            p->hits++;
            return true;
        }
        if (r->kind == RESP_END) {
            conn_complete(c, now, true);
            return true;
        }
        goto unmatched;
    }
    if (p->width == 1) { /* mg k v / binary GET: a value or a miss */
        if (r->kind == RESP_VALUE || r->kind == RESP_MISS) {
            p->hits = r->kind == RESP_VALUE;
            conn_complete(c, now, true);
            return true;
        }
        goto unmatched;
    }
    /* quiet multi-get: hits, then the no-op */
    if (r->kind == RESP_VALUE && p->hits < p->width) {
        p->hits++;
        return true;
    }
    if (r->kind == RESP_MISS)
        return true; /* quiet mode should suppress it; harmless */
    if (r->kind == RESP_NOOP) {
        conn_complete(c, now, !p->failed);
        return true;
    }
unmatched: {
    char what[192];
    int n;
    if (r->line != NULL)
        n = snprintf(what, sizeof(what), "protocol error: unexpected reply '%.*s' to a %s",
                     (int)(r->line_len > 100 ? 100 : r->line_len), r->line,
                     c->fifo_count == 0 ? "connection with no request in flight"
                     : c->fifo[c->fifo_head].width ? "get" : "set");
    else
        n = snprintf(what, sizeof(what), "protocol error: unexpected %s reply to a %s",
                     resp_kind_str(r->kind),
                     c->fifo_count == 0 ? "connection with no request in flight"
                     : c->fifo[c->fifo_head].width ? "get" : "set");
    conn_fail(c, &w->m.errors_protocol, what, written(n, sizeof(what)));
    return false;
}
}

static void conn_consume(struct conn *c, ssize_t n);

/* --tls: every record OpenSSL can decrypt now, not only one read's worth
 * (decrypted bytes it holds would not wake epoll again). Once OpenSSL
 * holds nothing more, the loop stops without the read(2) that would say
 * EAGAIN: epoll is level-triggered and wakes again for what is left in
 * the socket. */
static void conn_on_readable_tls(struct conn *c)
{
    struct worker *w = c->worker;
    while (c->open) {
        int r = SSL_read(c->ssl, w->rbuf, RECV_BUF);
        if (r <= 0) {
            int e = SSL_get_error(c->ssl, r);
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            conn_consume(c, e == SSL_ERROR_ZERO_RETURN ? 0 : -1);
            return;
        }
        conn_consume(c, r);
        if (c->open && !SSL_has_pending(c->ssl))
            return;
    }
}

static void conn_on_readable(struct conn *c)
{
    if (c->ssl != NULL) {
        conn_on_readable_tls(c);
        return;
    }
    conn_consume(c, recv(c->fd, c->worker->rbuf, RECV_BUF, 0));
}

/* n bytes arrived in the worker's rbuf (0: closed, < 0: errno). */
static void conn_consume(struct conn *c, ssize_t n)
{
    struct worker *w = c->worker;
    if (n == 0) {
        static const char closed[] = "the server closed a connection";
        conn_fail(c, &w->m.errors_conn, closed, sizeof(closed) - 1);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_fail_errno(c, "recv", errno);
        return;
    }
    uint64_t now = clock_ns();
    w->m.bytes_in += (uint64_t)n;
    size_t off = 0;
    while (off < (size_t)n) {
        size_t used;
        struct resp r;
        enum mc_status status = resp_parse(c->parser, w->rbuf + off, (size_t)n - off, &used, &r);
        off += used;
        if (status == MC_AGAIN)
            break;
        if (status != MC_OK) {
            char what[192];
            int len = snprintf(what, sizeof(what), "protocol error: malformed reply '%.*s'",
                               (int)(r.line != NULL ? (r.line_len > 100 ? 100 : r.line_len) : 0),
                               r.line != NULL ? r.line : "");
            conn_fail(c, &w->m.errors_protocol, what, written(len, sizeof(what)));
            return;
        }
        if (!conn_element(c, &r, now))
            return;
    }
    conn_fill(c, now);
    conn_flush(c);
    if (c->open && w->load->open_loop && w->phase != PHASE_PREFILL && c->fifo_count < w->depth &&
        c->next_due < w->wake)
        w->wake = c->next_due;
    publish(w);
}

/* Could any connection of the worker still issue a request? */
static bool worker_has_work(struct worker *w, uint64_t now)
{
    struct load *load = w->load;
    bool any_open = false;
    for (unsigned i = 0; i < w->nconns; i++)
        any_open |= w->conns[i].open;
    if (!any_open)
        return false;
    if (w->phase == PHASE_PREFILL)
        return w->prefill_next < w->prefill_end;
    if (w->quota == 0)
        return false;
    if (!load->open_loop)
        return now < load->end;
    for (unsigned i = 0; i < w->nconns; i++) {
        if (w->conns[i].open && w->conns[i].next_due < load->end)
            return true;
    }
    return false;
}

/* Open loop: fills every connection that is due and finds the next wake-up. */
static void worker_timers(struct worker *w, uint64_t now)
{
    struct load *load = w->load;
    w->wake = UINT64_MAX;
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (!c->open)
            continue;
        if (c->next_due <= now) {
            conn_fill(c, now);
            conn_flush(c);
        }
        /* A full connection is filled again when a reply frees a slot. */
        if (c->open && c->fifo_count < w->depth && c->next_due < load->end && w->quota > 0 &&
            c->next_due < w->wake)
            w->wake = c->next_due;
    }
}

/* The deadline is past: whatever is still owed counts as timed out. */
static void worker_give_up(struct worker *w)
{
    struct load *load = w->load;
    uint64_t owed = w->outstanding;
    if (w->phase == PHASE_PREFILL) {
        owed += w->prefill_end - w->prefill_next;
    } else if (load->open_loop) {
        /* scheduled before the end but never sent: charged, not forgotten */
        uint64_t unsent = 0;
        for (unsigned i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            if (c->open && c->next_due < load->end)
                unsent += 1 + (uint64_t)((double)(load->end - c->next_due) / load->interval);
        }
        owed += unsent < w->quota ? unsent : w->quota;
    }
    if (owed == 0)
        return;
    w->m.errors_timeout += owed;
    char what[96];
    int n = snprintf(what, sizeof(what), "%llu requests unanswered or unsent at the deadline",
                     (unsigned long long)owed);
    note_error(w, "", what, written(n, sizeof(what)));
}

/*
 * Waits for events until `until` at the latest. A timer wake-up is late by
 * tens of microseconds (about 50 us at the median in a paravirtualized VM),
 * and in an open loop that lateness is charged to the server; the report's
 * send lag shows it. --spin busy-polls (timeout 0) the last microseconds
 * before a due request instead. It is off by default: measured on such a VM,
 * a spinning generator vCPU slowed the server's vCPU more (p50 ~200 -> ~400
 * us at 10k requests/s against memcached) than it saved.
 */
static int wait_events(struct worker *w, struct epoll_event *events, uint64_t now, uint64_t until)
{
    uint64_t left = until > now ? until - now : 0;
    uint64_t spin = (uint64_t)w->load->opts->spin * 1000;
    if (until == w->wake)
        left = left > spin ? left - spin : 0;
    if (!w->fallback_wait) {
        struct timespec ts = {.tv_sec = (time_t)(left / NS_PER_S), .tv_nsec = (long)(left % NS_PER_S)};
        int n = epoll_pwait2(w->epfd, events, MAX_EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        w->fallback_wait = true;
    }
    /* Millisecond waits round down; the loop spins the last millisecond. */
    uint64_t ms = left / 1000000;
    return epoll_wait(w->epfd, events, MAX_EVENTS, ms > 1000 ? 1000 : (int)ms);
}

/* One phase (prefill or run) of one worker; returns when it is over. */
static void worker_loop(struct worker *w)
{
    struct load *load = w->load;
    struct epoll_event events[MAX_EVENTS];
    uint64_t now = clock_ns();
    w->last_reply = now;
    w->wake = load->open_loop && w->phase != PHASE_PREFILL ? 0 : UINT64_MAX;
    if (w->wake == UINT64_MAX) {
        for (unsigned i = 0; i < w->nconns; i++) {
            conn_fill(&w->conns[i], now);
            conn_flush(&w->conns[i]);
        }
    }
    for (;;) {
        now = clock_ns();
        if (w->wake <= now)
            worker_timers(w, now);
        if (w->outstanding == 0 && !worker_has_work(w, now))
            break;
        uint64_t deadline;
        if (w->phase == PHASE_PREFILL)
            deadline = w->last_reply + LOAD_PREFILL_STALL_S * NS_PER_S;
        else
            deadline = load->end + (uint64_t)(load->opts->drain_timeout * (double)NS_PER_S);
        if (now >= deadline) {
            worker_give_up(w);
            break;
        }
        int n = wait_events(w, events, now, w->wake < deadline ? w->wake : deadline);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (!c->open)
                continue;
            if (events[i].events & EPOLLOUT) {
                conn_flush(c);
                conn_fill(c, clock_ns());
                conn_flush(c);
            }
            if (c->open && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                conn_on_readable(c);
        }
    }
    publish(w);
}

static void worker_signal_done(struct worker *w)
{
    struct load *load = w->load;
    pthread_mutex_lock(&load->lock);
    load->done++;
    pthread_cond_signal(&load->cond);
    pthread_mutex_unlock(&load->lock);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct load *load = w->load;
    /* Open-loop sends are timed in microseconds: ask for precise wake-ups. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    if (w->phase != PHASE_PREFILL) {
        struct timespec ts = {.tv_sec = (time_t)(load->start / NS_PER_S),
                              .tv_nsec = (long)(load->start % NS_PER_S)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
    }
    worker_loop(w);
    worker_signal_done(w);
    return NULL;
}

/* The client side of a TLS handshake on a connected non-blocking socket,
 * waiting with poll(); 0 or an errno. */
static int tls_handshake(struct load *load, struct conn *c, int fd)
{
    SSL *ssl = SSL_new(load->tls);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return ENOMEM;
    }
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    for (;;) {
        int r = SSL_connect(ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(ssl, r);
        ERR_clear_error();
        struct pollfd pfd = {.fd = fd, .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
        if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
            poll(&pfd, 1, CONNECT_TIMEOUT_MS) <= 0) {
            SSL_free(ssl);
            return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? ETIMEDOUT : EPROTO;
        }
    }
    c->ssl = ssl;
    return 0;
}

static int connect_one(struct load *load, struct conn *c, char *msg, size_t msg_len)
{
    int fd = socket(load->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err;
    if (fd < 0) {
        err = errno;
        snprintf(msg, msg_len, "socket: %s", strerror(err));
        return -err;
    }
    if (connect(fd, (struct sockaddr *)&load->addr, load->addr_len) != 0) {
        if (errno != EINPROGRESS) {
            err = errno;
            goto fail;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int n = poll(&pfd, 1, CONNECT_TIMEOUT_MS);
        if (n == 0) {
            err = ETIMEDOUT;
            goto fail;
        }
        socklen_t len = sizeof(err);
        if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0)
            goto fail;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (load->tls != NULL && (err = tls_handshake(load, c, fd)) != 0) {
        close(fd);
        snprintf(msg, msg_len, "TLS handshake with %s failed%s%s", load->addr_text, err == ETIMEDOUT ? ": " : "",
                 err == ETIMEDOUT ? strerror(err) : "");
        return -err;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(c->worker->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        err = errno;
        goto fail;
    }
    c->fd = fd;
    c->open = true;
    return 0;
fail:
    close(fd);
    snprintf(msg, msg_len, "connect %s: %s", load->addr_text, strerror(err));
    return -err;
}

static int resolve(struct load *load, char *msg, size_t msg_len)
{
    const struct opts *opts = load->opts;
    char port[8];
    snprintf(port, sizeof(port), "%u", opts->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(opts->server, port, &hints, &res);
    if (rc != 0) {
        snprintf(msg, msg_len, "--server %s: %s", opts->server, gai_strerror(rc));
        return -EHOSTUNREACH;
    }
    memcpy(&load->addr, res->ai_addr, res->ai_addrlen);
    load->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    snprintf(load->addr_text, sizeof(load->addr_text), "%s:%u", opts->server, opts->port);
    return 0;
}

static void load_destroy(struct load *load)
{
    if (load == NULL)
        return;
    for (unsigned t = 0; load->workers != NULL && t < load->nworkers; t++) {
        struct worker *w = &load->workers[t];
        for (unsigned i = 0; w->conns != NULL && i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            SSL_free(c->ssl);
            if (c->open)
                close(c->fd);
            resp_parser_destroy(&c->parser);
            free(c->out);
            free(c->fifo);
        }
        free(w->conns);
        if (w->epfd >= 0)
            close(w->epfd);
        keygen_destroy(&w->keygen);
        hist_destroy(&w->latency);
        hist_destroy(&w->send_lag);
        free(w->values);
        free(w->ids);
        free(w->rbuf);
    }
    free(load->workers);
    SSL_CTX_free(load->tls);
    pthread_mutex_destroy(&load->lock);
    pthread_cond_destroy(&load->cond);
    free(load);
}

/* Allocates the workers and their connections and connects them all. */
static int load_setup(struct load *load, char *msg, size_t msg_len)
{
    const struct opts *opts = load->opts;
    enum resp_mode mode = opts->protocol == REQ_BINARY ? RESP_MODE_BINARY : RESP_MODE_TEXT;
    load->prefix_len = strlen(opts->key_prefix);
    size_t get_max = req_get_max(opts->protocol, load->prefix_len, opts->multiget);
    size_t set_max = req_set_max(opts->protocol, load->prefix_len, opts->value_size.max);
    load->max_request = get_max > set_max ? get_max : set_max;
    load->open_loop = opts->rate > 0;
    load->interval = load->open_loop ? (double)NS_PER_S * opts->connections / opts->rate : 0;
    load->nworkers = opts->threads;
    load->workers = calloc(load->nworkers, sizeof(struct worker));
    if (load->workers == NULL)
        goto nomem;
    for (unsigned t = 0; t < load->nworkers; t++)
        load->workers[t].epfd = -1;
    uint32_t fifo_cap = opts->pipeline > LOAD_PREFILL_DEPTH ? opts->pipeline : LOAD_PREFILL_DEPTH;
    size_t out_cap = (size_t)fifo_cap * load->max_request;
    if (out_cap > OUT_CAP_MAX)
        out_cap = OUT_CAP_MAX > load->max_request ? OUT_CAP_MAX : load->max_request;
    for (unsigned t = 0; t < load->nworkers; t++) {
        struct worker *w = &load->workers[t];
        w->load = load;
        w->index = t;
        w->nconns = opts->connections / load->nworkers + (t < opts->connections % load->nworkers);
        rng_init(&w->rng, opts->seed * 0x9e3779b97f4a7c15ull + t);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (w->epfd < 0) {
            int err = errno;
            snprintf(msg, msg_len, "epoll_create1: %s", strerror(err));
            return -err;
        }
        if (keygen_create(&w->keygen, opts->key_dist, opts->keys, opts->zipf_skew) != MC_OK) {
            snprintf(msg, msg_len, "--keys %llu / --zipf-skew %g: cannot draw keys",
                     (unsigned long long)opts->keys, opts->zipf_skew);
            return -EINVAL;
        }
        w->latency = hist_create();
        w->send_lag = hist_create();
        w->values = malloc(opts->value_size.max + VALUE_SLACK);
        w->ids = calloc(opts->multiget, sizeof(uint64_t));
        w->rbuf = malloc(RECV_BUF);
        w->conns = calloc(w->nconns, sizeof(struct conn));
        if (w->latency == NULL || w->send_lag == NULL || w->values == NULL || w->ids == NULL || w->rbuf == NULL ||
            w->conns == NULL)
            goto nomem;
        for (size_t i = 0; i < opts->value_size.max + VALUE_SLACK; i++)
            w->values[i] = (char)('a' + rng_below(&w->rng, 26));
        for (unsigned i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            c->worker = w;
            c->fd = -1;
            c->fifo_cap = fifo_cap;
            c->out_cap = out_cap;
            c->parser = resp_parser_create(mode);
            c->out = malloc(out_cap);
            c->fifo = calloc(fifo_cap, sizeof(struct pending));
            if (c->parser == NULL || c->out == NULL || c->fifo == NULL)
                goto nomem;
            int rc = connect_one(load, c, msg, msg_len);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
nomem:
    snprintf(msg, msg_len, "out of memory setting up %u connections", opts->connections);
    return -ENOMEM;
}

/* Starts every worker in `phase`, reports progress, joins them. */
static int run_phase(struct load *load, enum phase phase, uint64_t phase_start,
                     load_progress_fn *progress, void *ctx, char *msg, size_t msg_len)
{
    const struct opts *opts = load->opts;
    load->done = 0;
    unsigned started = 0;
    int rc = 0;
    for (unsigned t = 0; t < load->nworkers; t++) {
        struct worker *w = &load->workers[t];
        w->phase = phase;
        w->depth = phase == PHASE_PREFILL ? LOAD_PREFILL_DEPTH : opts->pipeline;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (opts->cpus.count > 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(opts->cpus.cpu[t % opts->cpus.count], &set);
            pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
        }
        int err = pthread_create(&w->thread, &attr, worker_main, w);
        pthread_attr_destroy(&attr);
        if (err != 0) {
            snprintf(msg, msg_len, "pthread_create (--cpus %u?): %s",
                     opts->cpus.count ? opts->cpus.cpu[t % opts->cpus.count] : 0, strerror(err));
            rc = -err;
            /* Workers already started finish their phase normally. */
            pthread_mutex_lock(&load->lock);
            load->done += load->nworkers - t;
            pthread_mutex_unlock(&load->lock);
            break;
        }
        started++;
    }
    uint64_t tick = phase_start + NS_PER_S;
    pthread_mutex_lock(&load->lock);
    while (load->done < load->nworkers) {
        struct timespec ts = {.tv_sec = (time_t)(tick / NS_PER_S), .tv_nsec = (long)(tick % NS_PER_S)};
        int err = pthread_cond_timedwait(&load->cond, &load->lock, &ts);
        if (err != ETIMEDOUT)
            continue;
        tick += NS_PER_S; /* always: an expired deadline would spin */
        if (progress == NULL)
            continue;
        pthread_mutex_unlock(&load->lock);
        struct load_progress p = {0};
        uint64_t now = clock_ns();
        p.phase = phase == PHASE_PREFILL ? "prefill" : now < load->measure ? "warmup" : "run";
        p.seconds = (double)(now - phase_start) / NS_PER_S;
        for (unsigned t = 0; t < started; t++) {
            struct worker *w = &load->workers[t];
            p.done += __atomic_load_n(&w->pub_done, __ATOMIC_RELAXED);
            p.hits += __atomic_load_n(&w->pub_hits, __ATOMIC_RELAXED);
            p.get_keys += __atomic_load_n(&w->pub_get_keys, __ATOMIC_RELAXED);
            p.errors += __atomic_load_n(&w->pub_errors, __ATOMIC_RELAXED);
        }
        progress(ctx, &p);
        pthread_mutex_lock(&load->lock);
    }
    pthread_mutex_unlock(&load->lock);
    for (unsigned t = 0; t < started; t++)
        pthread_join(load->workers[t].thread, NULL);
    return rc;
}

int load_run(const struct opts *opts, load_progress_fn *progress, void *ctx,
             struct load_result *result, char *msg, size_t msg_len)
{
    memset(result, 0, sizeof(*result));
    msg[0] = '\0';
    int rc = -ENOMEM;
    struct load *load = calloc(1, sizeof(*load));
    result->latency = hist_create();
    result->send_lag = hist_create();
    if (load == NULL || result->latency == NULL || result->send_lag == NULL) {
        snprintf(msg, msg_len, "out of memory");
        free(load);
        return -ENOMEM;
    }
    load->opts = opts;
    pthread_mutex_init(&load->lock, NULL);
    pthread_condattr_t cattr;
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&load->cond, &cattr);
    pthread_condattr_destroy(&cattr);

    rc = resolve(load, msg, msg_len);
    if (rc != 0)
        goto fail;
    if (opts->tls) {
        /* A load generator measures the server; it does not check who the
         * server is (SSL_VERIFY_NONE), so any test certificate will do. */
        load->tls = SSL_CTX_new(TLS_client_method());
        if (load->tls == NULL) {
            snprintf(msg, msg_len, "cannot create a TLS context");
            rc = -ENOMEM;
            goto fail;
        }
        SSL_CTX_set_verify(load->tls, SSL_VERIFY_NONE, NULL);
        /* Read whatever the socket holds in one read(2) (64 KiB at a time),
         * not a record header and then its body: the generator's own TLS
         * cost, not the server, must not set the pace (bench/tls.py). */
        SSL_CTX_set_read_ahead(load->tls, 1);
        SSL_CTX_set_default_read_buffer_len(load->tls, 64 * 1024);
    }
    rc = load_setup(load, msg, msg_len);
    if (rc != 0)
        goto fail;

    if (opts->prefill) {
        uint64_t prefill_start = clock_ns();
        for (unsigned t = 0; t < load->nworkers; t++) {
            struct worker *w = &load->workers[t];
            w->prefill_next = opts->keys * t / load->nworkers;
            w->prefill_end = opts->keys * (t + 1) / load->nworkers;
        }
        rc = run_phase(load, PHASE_PREFILL, prefill_start, progress, ctx, msg, msg_len);
        result->prefill_seconds = (double)(clock_ns() - prefill_start) / NS_PER_S;
        if (rc != 0)
            goto fail;
    }
    if (!opts->prefill_only) {
        /* A millisecond for the workers to start, so none begins late. */
        load->start = clock_ns() + NS_PER_S / 1000;
        load->measure = load->start + (uint64_t)(opts->warmup * (double)NS_PER_S);
        load->end = load->measure + (uint64_t)(opts->duration * (double)NS_PER_S);
        for (unsigned t = 0; t < load->nworkers; t++) {
            struct worker *w = &load->workers[t];
            w->quota = opts->requests == 0 ? UINT64_MAX
                                           : opts->requests / load->nworkers +
                                                 (t < opts->requests % load->nworkers);
            for (unsigned i = 0; i < w->nconns; i++) {
                /* Stagger the connections evenly over one interval. */
                struct conn *c = &w->conns[i];
                unsigned global = t + i * load->nworkers;
                c->first_due = load->start +
                               (uint64_t)(load->interval * global / (double)opts->connections);
                c->next_due = c->first_due;
                c->scheduled = 0;
            }
        }
        rc = run_phase(load, PHASE_MEASURE, load->start, progress, ctx, msg, msg_len);
        if (rc != 0)
            goto fail;
    }
    uint64_t last = 0;
    for (unsigned t = 0; t < load->nworkers; t++) {
        struct worker *w = &load->workers[t];
        metrics_sum(result->metrics.v, w->m.v, metric_desc, METRIC_COUNT(LOAD_METRIC));
        hist_merge(result->latency, w->latency);
        hist_merge(result->send_lag, w->send_lag);
        if (w->last_measured_reply > last)
            last = w->last_measured_reply;
        if (result->first_error[0] == '\0' && w->first_error[0] != '\0')
            snprintf(result->first_error, sizeof(result->first_error), "%s", w->first_error);
    }
    if (last > load->measure)
        result->seconds = (double)(last - load->measure) / NS_PER_S;
    load_destroy(load);
    return 0;
fail:
    load_destroy(load);
    return rc;
}

void load_result_fini(struct load_result *result)
{
    hist_destroy(&result->latency);
    hist_destroy(&result->send_lag);
}
