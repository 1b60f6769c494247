/*
 * test_load.c: the load loop against a scripted fake server on loopback.
 *
 * The fake speaks just enough of the text protocol (get -> END, set ->
 * STORED or a scripted reply) and can stall once, stop answering, answer
 * garbage or hang up, so each test pins one promise of load.h: every
 * request is answered and counted once; --prefill sets every key; error
 * replies, protocol errors, lost connections and unanswered requests are
 * counted as errors; and an open-loop run charges a server stall to every
 * request scheduled during it (no coordinated omission). Every run is
 * bounded by its --duration and --drain-timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "load.h"
#include "opts.h"

#define MAX_CLIENTS 16
#define SEEN_KEYS 4096

enum fake_mode {
    FAKE_OK,           /* END to gets, STORED to sets */
    FAKE_SERVER_ERROR, /* SERVER_ERROR to sets */
    FAKE_GARBAGE,      /* an unparseable line to everything */
    FAKE_SILENT,       /* reads, never answers */
    FAKE_HANG_UP,      /* closes the connection after close_after requests */
};

struct fake {
    int listen_fd;
    uint16_t port;
    enum fake_mode mode;
    uint64_t stall_after; /* stall once when this many requests were seen (0: never) */
    unsigned stall_ms;
    uint64_t close_after;
    pthread_t acceptor;
    pthread_t clients[MAX_CLIENTS];
    int client_fds[MAX_CLIENTS];
    unsigned nclients;
    bool stop;         /* atomic */
    uint64_t requests; /* atomic */
    bool stalled;      /* atomic */
    unsigned char seen[SEEN_KEYS]; /* set keys "key:<n>", n < SEEN_KEYS (atomic bytes) */
};

struct client_arg {
    struct fake *fake;
    int fd;
};

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Handles the complete requests in buf; returns the bytes consumed. */
static size_t serve(struct fake *f, int fd, char *buf, size_t len, bool *hang_up)
{
    size_t off = 0;
    char out[65536];
    size_t out_len = 0;
    for (;;) {
        char *nl = memchr(buf + off, '\n', len - off);
        if (nl == NULL)
            break;
        size_t line_end = (size_t)(nl - buf) + 1;
        size_t consumed = line_end;
        bool is_set = strncmp(buf + off, "set ", 4) == 0;
        if (is_set) {
            char key[64];
            unsigned flags, exptime;
            size_t bytes;
            if (sscanf(buf + off, "set %63s %u %u %zu", key, &flags, &exptime, &bytes) != 4)
                fail_msg("fake: bad set line");
            if (len < line_end + bytes + 2)
                break; /* data block not all here yet */
            consumed = line_end + bytes + 2;
            unsigned long id;
            if (sscanf(key, "key:%lu", &id) == 1 && id < SEEN_KEYS)
                __atomic_store_n(&f->seen[id], 1, __ATOMIC_RELAXED);
        }
        off = consumed;
        uint64_t n = __atomic_add_fetch(&f->requests, 1, __ATOMIC_RELAXED);
        if (f->stall_after != 0 && n >= f->stall_after &&
            !__atomic_exchange_n(&f->stalled, true, __ATOMIC_RELAXED)) {
            write_all(fd, out, out_len);
            out_len = 0;
            usleep(f->stall_ms * 1000);
        }
        if (f->mode == FAKE_HANG_UP && n >= f->close_after) {
            *hang_up = true;
            break;
        }
        const char *reply;
        switch (f->mode) {
        case FAKE_SERVER_ERROR:
            reply = is_set ? "SERVER_ERROR out of memory storing object\r\n" : "END\r\n";
            break;
        case FAKE_GARBAGE:
            reply = "BOGUS\r\n";
            break;
        case FAKE_SILENT:
            reply = "";
            break;
        default:
            reply = is_set ? "STORED\r\n" : "END\r\n";
            break;
        }
        size_t rlen = strlen(reply);
        if (out_len + rlen > sizeof(out)) {
            write_all(fd, out, out_len);
            out_len = 0;
        }
        memcpy(out + out_len, reply, rlen);
        out_len += rlen;
    }
    write_all(fd, out, out_len);
    return off;
}

static void *client_main(void *arg)
{
    struct client_arg *ca = arg;
    struct fake *f = ca->fake;
    int fd = ca->fd;
    free(ca);
    char *buf = malloc(1 << 20);
    size_t len = 0;
    while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED)) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        ssize_t n = read(fd, buf + len, (1 << 20) - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        bool hang_up = false;
        size_t used = serve(f, fd, buf, len, &hang_up);
        if (hang_up)
            break;
        memmove(buf, buf + used, len - used);
        len -= used;
    }
    shutdown(fd, SHUT_RDWR);
    free(buf);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    struct fake *f = arg;
    while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED)) {
        struct pollfd pfd = {.fd = f->listen_fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        int fd = accept(f->listen_fd, NULL, NULL);
        if (fd < 0 || f->nclients == MAX_CLIENTS) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        struct client_arg *ca = malloc(sizeof(*ca));
        ca->fake = f;
        ca->fd = fd;
        f->client_fds[f->nclients] = fd;
        pthread_create(&f->clients[f->nclients++], NULL, client_main, ca);
    }
    return NULL;
}

static struct fake *fake_start(enum fake_mode mode)
{
    struct fake *f = calloc(1, sizeof(*f));
    f->mode = mode;
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(addr);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(f->listen_fd, 64), 0);
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&addr, &alen), 0);
    f->port = ntohs(addr.sin_port);
    return f;
}

static void fake_run(struct fake *f)
{
    pthread_create(&f->acceptor, NULL, acceptor_main, f);
}

static void fake_stop(struct fake *f)
{
    __atomic_store_n(&f->stop, true, __ATOMIC_RELAXED);
    pthread_join(f->acceptor, NULL);
    for (unsigned i = 0; i < f->nclients; i++) {
        pthread_join(f->clients[i], NULL);
        close(f->client_fds[i]);
    }
    close(f->listen_fd);
    free(f);
}

struct fixture {
    struct opts opts;
    struct load_result result;
    char msg[256];
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    opts_defaults(&fx->opts);
    fx->opts.quiet = true;
    fx->opts.connections = 2;
    fx->opts.duration = 1;
    fx->opts.drain_timeout = 0.5;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    load_result_fini(&fx->result);
    free(fx);
    return 0;
}

static int run(struct fixture *fx, struct fake *f)
{
    fx->opts.port = f->port;
    return load_run(&fx->opts, NULL, NULL, &fx->result, fx->msg, sizeof(fx->msg));
}

static void test_load_closed_loop_answers_every_request(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fake_start(FAKE_OK);
    fake_run(f);
    fx->opts.requests = 3000;
    fx->opts.pipeline = 4;
    fx->opts.threads = 2;
    fx->opts.ratio = (struct opts_ratio){1, 1};
    fx->opts.multiget = 3;
    assert_int_equal(run(fx, f), 0);
    const struct load_metrics *m = &fx->result.metrics;
    assert_int_equal(m->requests, 3000);
    assert_int_equal(m->gets + m->sets, 3000);
    assert_true(m->gets > 1200 && m->sets > 1200);
    assert_int_equal(m->get_keys, 3 * m->gets);
    assert_int_equal(m->hits, 0);
    assert_int_equal(load_errors(m), 0);
    assert_int_equal(hist_count(fx->result.latency), 3000);
    assert_int_equal(hist_count(fx->result.send_lag), 0); /* closed loop: no schedule */
    assert_true(fx->result.seconds > 0);
    assert_int_equal(__atomic_load_n(&f->requests, __ATOMIC_RELAXED), 3000);
    assert_string_equal(fx->result.first_error, "");
    fake_stop(f);
}

static void test_load_prefill_sets_every_key_once(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fake_start(FAKE_OK);
    fake_run(f);
    fx->opts.prefill = fx->opts.prefill_only = true;
    fx->opts.keys = 3000;
    fx->opts.threads = 2;
    assert_int_equal(run(fx, f), 0);
    assert_int_equal(fx->result.metrics.prefill_sets, 3000);
    assert_int_equal(fx->result.metrics.requests, 0);
    assert_int_equal(load_errors(&fx->result.metrics), 0);
    assert_int_equal(__atomic_load_n(&f->requests, __ATOMIC_RELAXED), 3000);
    for (unsigned i = 0; i < 3000; i++)
        if (!f->seen[i])
            fail_msg("key:%u was never set", i);
    assert_false(f->seen[3000]);
    fake_stop(f);
}

static void test_load_open_loop_charges_a_stall(void **state)
{
    /* 2000 requests/s for 1 s on one connection; the server stops for
     * 300 ms after 400 requests. Requests scheduled during the stall wait
     * up to 300 ms, and the report must say so even though the connection
     * could not even send most of them (at most 64 in flight). */
    struct fixture *fx = *state;
    struct fake *f = fake_start(FAKE_OK);
    f->stall_after = 400;
    f->stall_ms = 300;
    fake_run(f);
    fx->opts.connections = 1;
    fx->opts.rate = 2000;
    fx->opts.pipeline = 64;
    fx->opts.drain_timeout = 2;
    assert_int_equal(run(fx, f), 0);
    const struct load_metrics *m = &fx->result.metrics;
    assert_int_equal(load_errors(m), 0);
    assert_true(m->requests >= 1990 && m->requests <= 2010);
    const struct hist *h = fx->result.latency;
    /* ~30% of requests were scheduled inside the stall: p80 waits >= 100 ms */
    if (hist_max(h) < 280 * 1000000ull || hist_percentile(h, 80) < 100 * 1000000ull)
        fail_msg("stall not charged: p80 %.1f ms, max %.1f ms", hist_percentile(h, 80) / 1e6,
                 hist_max(h) / 1e6);
    /* and the rest were quick */
    assert_true(hist_percentile(h, 50) < 50 * 1000000ull);
    /* The generator could not even write most stalled requests on time
     * (64 in flight at most): the send lag says so. */
    assert_int_equal(hist_count(fx->result.send_lag), m->requests);
    assert_true(hist_max(fx->result.send_lag) > 200 * 1000000ull);
    fake_stop(f);
}

static void test_load_error_replies_are_counted(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fake_start(FAKE_SERVER_ERROR);
    fake_run(f);
    fx->opts.requests = 500;
    fx->opts.ratio = (struct opts_ratio){1, 1};
    assert_int_equal(run(fx, f), 0);
    const struct load_metrics *m = &fx->result.metrics;
    assert_true(m->errors_reply > 150);
    assert_int_equal(m->sets, 0);
    assert_int_equal(m->gets + m->errors_reply, 500);
    assert_int_equal(load_errors(m), m->errors_reply);
    assert_non_null(strstr(fx->result.first_error, "SERVER_ERROR out of memory"));
    fake_stop(f);
}

static void test_load_garbage_closes_the_connection(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fake_start(FAKE_GARBAGE);
    fake_run(f);
    fx->opts.duration = 0.3;
    assert_int_equal(run(fx, f), 0);
    const struct load_metrics *m = &fx->result.metrics;
    assert_int_equal(m->errors_protocol, 2); /* one per connection, then closed */
    assert_int_equal(m->requests, 0);
    assert_non_null(strstr(fx->result.first_error, "BOGUS"));
    fake_stop(f);
}

static void test_load_unanswered_requests_time_out(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fake_start(FAKE_SILENT);
    fake_run(f);
    fx->opts.duration = 0.2;
    fx->opts.drain_timeout = 0.2;
    fx->opts.pipeline = 8;
    assert_int_equal(run(fx, f), 0);
    const struct load_metrics *m = &fx->result.metrics;
    assert_int_equal(m->errors_timeout, 2 * 8);
    assert_int_equal(m->requests, 0);
    assert_non_null(strstr(fx->result.first_error, "unanswered"));
    fake_stop(f);
}

static void test_load_open_loop_unsent_requests_time_out(void **state)
{
    /* A silent server under an open loop: the schedule keeps coming due
     * although nothing can be sent (1 in flight). Those requests are owed
     * too: ~rate * duration of them, not just the one in flight. */
    struct fixture *fx = *state;
    struct fake *f = fake_start(FAKE_SILENT);
    fake_run(f);
    fx->opts.connections = 1;
    fx->opts.rate = 1000;
    fx->opts.duration = 0.3;
    fx->opts.drain_timeout = 0.1;
    assert_int_equal(run(fx, f), 0);
    uint64_t owed = fx->result.metrics.errors_timeout;
    if (owed < 290 || owed > 310)
        fail_msg("%llu requests owed, want ~300", (unsigned long long)owed);
    fake_stop(f);
}

static void test_load_server_hanging_up_is_an_error(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fake_start(FAKE_HANG_UP);
    f->close_after = 100;
    fake_run(f);
    fx->opts.connections = 1;
    fx->opts.duration = 0.5;
    assert_int_equal(run(fx, f), 0);
    assert_int_equal(fx->result.metrics.errors_conn, 1);
    assert_true(fx->result.metrics.requests >= 90 && fx->result.metrics.requests < 100);
    assert_non_null(strstr(fx->result.first_error, "closed"));
    fake_stop(f);
}

static double thread_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_load_monitor_thread_sleeps_without_progress(void **state)
{
    /* Regression: with no progress callback, the calling thread once spun
     * on an expired one-second deadline for the rest of the run, stealing
     * a CPU (maybe the server's) from the measurement. */
    struct fixture *fx = *state;
    struct fake *f = fake_start(FAKE_OK);
    fake_run(f);
    fx->opts.duration = 2.5;
    fx->opts.rate = 200;
    double before = thread_cpu_seconds();
    assert_int_equal(run(fx, f), 0);
    double used = thread_cpu_seconds() - before;
    if (used > 0.1)
        fail_msg("the calling thread used %.2f s of CPU in a 2.5 s run", used);
    assert_int_equal(load_errors(&fx->result.metrics), 0);
    fake_stop(f);
}

static void test_load_refused_connection_fails_to_start(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fake_start(FAKE_OK);
    uint16_t port = f->port;
    fake_stop(f); /* nothing listens there now */
    fx->opts.port = port;
    int rc = load_run(&fx->opts, NULL, NULL, &fx->result, fx->msg, sizeof(fx->msg));
    assert_int_equal(rc, -ECONNREFUSED);
    assert_non_null(strstr(fx->msg, "connect 127.0.0.1:"));
    assert_non_null(strstr(fx->msg, "refused"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_closed_loop_answers_every_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_prefill_sets_every_key_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_open_loop_charges_a_stall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_error_replies_are_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_garbage_closes_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_unanswered_requests_time_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_open_loop_unsent_requests_time_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_server_hanging_up_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_monitor_thread_sleeps_without_progress, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_refused_connection_fails_to_start, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
