/*
 * test_cfg.c: options from the CFG_OPTIONS table: defaults, every accepted
 * spelling of every option, every error message, bundling, -h and
 * `stats settings`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"
#include "test_sink.h"

#define MB (UINT64_C(1) << 20)

struct fixture {
    struct cfg cfg;
    struct test_sink err;
    char *text; /* last test_sink_text(), freed by teardown */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    cfg_defaults(&f->cfg);
    test_sink_init(&f->err, 16);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    test_sink_fini(&f->err);
    free(f->text);
    free(f);
    return 0;
}

/* Parses the NULL-terminated words after "corecache" into f->cfg. */
static bool parse(struct fixture *f, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"corecache";
    va_list ap;
    va_start(ap, f);
    for (char *word; (word = va_arg(ap, char *)) != NULL;)
        argv[argc++] = word;
    va_end(ap);
    test_sink_clear(&f->err);
    return cfg_parse(&f->cfg, argc, argv, &f->err.sink);
}

static const char *err_text(struct fixture *f)
{
    free(f->text);
    f->text = test_sink_text(&f->err);
    return f->text;
}

/* Field-by-field equality over the whole table, so a new option is
 * compared without touching this file. */
#define EXPECT_EQ_UINT(a, b) assert_int_equal((a), (b))
#define EXPECT_EQ_SIZE(a, b) assert_int_equal((a), (b))
#define EXPECT_EQ_MEGS(a, b) assert_int_equal((a), (b))
#define EXPECT_EQ_COUNT(a, b) assert_int_equal((a), (b))
#define EXPECT_EQ_FLAG(a, b) assert_int_equal((a), (b))
#define EXPECT_EQ_DOUBLE(a, b) assert_true((a) == (b))
#define EXPECT_EQ_EXT(a, b) EXPECT_EQ_STR(a, b)
#define EXPECT_EQ_STR(a, b)                                                                      \
    do {                                                                                         \
        if ((a) == NULL || (b) == NULL)                                                          \
            assert_ptr_equal((a), (b));                                                          \
        else                                                                                     \
            assert_string_equal((a), (b));                                                       \
    } while (0)
#define EXPECT_EQ_EXT(a, b) EXPECT_EQ_STR(a, b)
#define EXPECT_EQ_FIELD(field, s, l, type, def, mv, help) EXPECT_EQ_##type(got->field, want->field);

static void assert_cfg_equal(const struct cfg *got, const struct cfg *want)
{
    CFG_OPTIONS(EXPECT_EQ_FIELD)
}

static void expect_error(struct fixture *f, const char *message)
{
    const char *text = err_text(f);
    assert_string_equal(text, message);
}

/* ---- defaults ---------------------------------------------------------- */

static void test_cfg_defaults_are_memcacheds(void **state)
{
    struct fixture *f = *state;
    const struct cfg *c = &f->cfg;
    assert_int_equal(c->port, 11211);
    assert_int_equal(c->udp_port, 0);
    assert_string_equal(c->listen, "127.0.0.1");
    assert_false(c->enable_shutdown);
    assert_null(c->user);
    assert_int_equal(c->memory_limit, 64 * MB);
    assert_false(c->disable_evictions);
    assert_int_equal(c->conn_limit, 1024);
    assert_int_equal(c->verbose, 0);
    assert_false(c->help);
    assert_false(c->version);
    assert_true(c->growth_factor == 1.25);
    assert_int_equal(c->slab_min_size, 48);
    assert_int_equal(c->threads, 0);
    assert_false(c->disable_cas);
    assert_int_equal(c->listen_backlog, 1024);
    assert_int_equal(c->item_size_max, 1 * MB);
    assert_string_equal(c->protocol, "auto");
}

static void test_cfg_parse_nothing_keeps_defaults(void **state)
{
    struct fixture *f = *state;
    struct cfg want;
    cfg_defaults(&want);
    assert_true(parse(f, NULL));
    assert_cfg_equal(&f->cfg, &want);
    assert_int_equal(test_sink_len(&f->err), 0);
}

/* ---- every option in every form ---------------------------------------- */

struct option_case {
    char short_flag;
    const char *long_name;
    const char *value;          /* NULL: a flag */
    void (*expect)(struct cfg *);
};

static void want_port(struct cfg *c) { c->port = 12345; }
static void want_udp(struct cfg *c) { c->udp_port = 0; }
static void want_listen(struct cfg *c) { c->listen = "10.1.2.3"; }
static void want_shutdown(struct cfg *c) { c->enable_shutdown = true; }
static void want_user(struct cfg *c) { c->user = "nobody"; }
static void want_megs(struct cfg *c) { c->memory_limit = 128 * MB; }
static void want_no_evict(struct cfg *c) { c->disable_evictions = true; }
static void want_conns(struct cfg *c) { c->conn_limit = 10; }
static void want_verbose(struct cfg *c) { c->verbose = 1; }
static void want_help(struct cfg *c) { c->help = true; }
static void want_version(struct cfg *c) { c->version = true; }
static void want_factor(struct cfg *c) { c->growth_factor = 1.5; }
static void want_min_size(struct cfg *c) { c->slab_min_size = 96; }
static void want_threads(struct cfg *c) { c->threads = 4; }
static void want_no_cas(struct cfg *c) { c->disable_cas = true; }
static void want_backlog(struct cfg *c) { c->listen_backlog = 64; }
static void want_accept_by_cpu(struct cfg *c) { c->accept_by_cpu = true; }
static void want_item_max(struct cfg *c) { c->item_size_max = 512 * 1024; }
static void want_describe(struct cfg *c) { c->describe_metrics = true; }
static void want_metrics_port(struct cfg *c) { c->metrics_port = 9150; }
static void want_protocol(struct cfg *c) { c->protocol = "binary"; }
static void want_default_ttl(struct cfg *c) { c->default_ttl = 3600; }
static void want_max_ttl(struct cfg *c) { c->max_ttl = 86400; }
static void want_strict_keys(struct cfg *c) { c->strict_keys = true; }
static void want_extended(struct cfg *c) { c->extended = "ssl_key=k.pem"; c->ssl_key = "k.pem"; }
static void want_ssl(struct cfg *c) { c->enable_ssl = true; }
static void want_chain(struct cfg *c) { c->ssl_chain_cert = "c.pem"; }
static void want_key(struct cfg *c) { c->ssl_key = "k.pem"; }
static void want_verify(struct cfg *c) { c->ssl_verify_mode = 2; }
static void want_keyformat(struct cfg *c) { c->ssl_keyformat = 2; }
static void want_wbuf(struct cfg *c) { c->ssl_wbuf_size = 32; }
static void want_ca(struct cfg *c) { c->ssl_ca_cert = "ca.pem"; }
static void want_ciphers(struct cfg *c) { c->ssl_ciphers = "HIGH"; }
static void want_min_version(struct cfg *c) { c->ssl_min_version = 3; }
static void want_sess(struct cfg *c) { c->ssl_session_cache = true; }
static void want_ktls(struct cfg *c) { c->ssl_kernel_tls = true; }
static void want_auth_file(struct cfg *c) { c->auth_file = "users"; }
static void want_sasl(struct cfg *c) { c->enable_sasl = true; }
static void want_pwdb(struct cfg *c) { c->sasl_pwdb = "pw"; }
static void want_metrics_listen(struct cfg *c) { c->metrics_listen = "127.0.0.2"; }
static void want_metrics_auth(struct cfg *c) { c->metrics_auth_file = "http-users"; }
static void want_conn_memory(struct cfg *c) { c->conn_memory = 100 * MB; }
static void want_metrics_idle(struct cfg *c) { c->metrics_idle_timeout = 5; }
static void want_recv_buffers(struct cfg *c) { c->recv_buffers = 64; }
static void want_cq_entries(struct cfg *c) { c->uring_cq_entries = 1024; }
static void want_io_backend(struct cfg *c) { c->io_backend = "epoll"; }

static void want12_unix_socket(struct cfg *c) { c->unix_socket = "/tmp/mc.sock"; }
static void want12_unix_mask(struct cfg *c) { c->unix_mask = "755"; }
static void want12_daemon(struct cfg *c) { c->daemon = true; }
static void want12_enable_coredumps(struct cfg *c) { c->enable_coredumps = true; }
static void want12_lock_memory(struct cfg *c) { c->lock_memory = true; }
static void want12_license(struct cfg *c) { c->license = true; }
static void want12_pidfile(struct cfg *c) { c->pidfile = "/run/mc.pid"; }
static void want12_enable_largepages(struct cfg *c) { c->enable_largepages = true; }
static void want12_prefix_delimiter(struct cfg *c) { c->prefix_delimiter = ":"; }
static void want12_reqs_per_event(struct cfg *c) { c->reqs_per_event = 40; }
static void want12_disable_flush_all(struct cfg *c) { c->disable_flush_all = true; }
static void want12_disable_dumping(struct cfg *c) { c->disable_dumping = true; }
static void want12_disable_watch(struct cfg *c) { c->disable_watch = true; }
static void want12_memory_file(struct cfg *c) { c->memory_file = "/dev/shm/mc"; }
static void want12_napi_ids(struct cfg *c) { c->napi_ids = 4; }
static void want12_maxconns_fast(struct cfg *c) { c->maxconns_fast = true; }
static void want12_no_maxconns_fast(struct cfg *c) { c->no_maxconns_fast = true; }
static void want12_hashpower(struct cfg *c) { c->hashpower = 20; }
static void want12_no_hashexpand(struct cfg *c) { c->no_hashexpand = true; }
static void want12_slab_reassign(struct cfg *c) { c->slab_reassign = true; }
static void want12_no_slab_reassign(struct cfg *c) { c->no_slab_reassign = true; }
static void want12_slab_automove(struct cfg *c) { c->slab_automove = 2; }
static void want12_no_slab_automove(struct cfg *c) { c->no_slab_automove = true; }
static void want12_slab_automove_ratio(struct cfg *c) { c->slab_automove_ratio = 0.5; }
static void want12_slab_automove_window(struct cfg *c) { c->slab_automove_window = 3; }
static void want12_tail_repair_time(struct cfg *c) { c->tail_repair_time = 60; }
static void want12_hash_algorithm(struct cfg *c) { c->hash_algorithm = "jenkins"; }
static void want12_lru_crawler(struct cfg *c) { c->lru_crawler = true; }
static void want12_no_lru_crawler(struct cfg *c) { c->no_lru_crawler = true; }
static void want12_lru_crawler_sleep(struct cfg *c) { c->lru_crawler_sleep = 50; }
static void want12_lru_crawler_tocrawl(struct cfg *c) { c->lru_crawler_tocrawl = 10; }
static void want12_lru_maintainer(struct cfg *c) { c->lru_maintainer = true; }
static void want12_no_lru_maintainer(struct cfg *c) { c->no_lru_maintainer = true; }
static void want12_hot_lru_pct(struct cfg *c) { c->hot_lru_pct = 30; }
static void want12_warm_lru_pct(struct cfg *c) { c->warm_lru_pct = 30; }
static void want12_hot_max_factor(struct cfg *c) { c->hot_max_factor = 0.5; }
static void want12_warm_max_factor(struct cfg *c) { c->warm_max_factor = 1.5; }
static void want12_temporary_ttl(struct cfg *c) { c->temporary_ttl = 30; }
static void want12_idle_timeout(struct cfg *c) { c->idle_timeout = 3; }
static void want12_watcher_logbuf_size(struct cfg *c) { c->watcher_logbuf_size = 8; }
static void want12_worker_logbuf_size(struct cfg *c) { c->worker_logbuf_size = 8; }
static void want12_slab_sizes(struct cfg *c) { c->slab_sizes = "96-128"; }
static void want12_slab_chunk_max(struct cfg *c) { c->slab_chunk_max = 16384; }
static void want12_track_sizes(struct cfg *c) { c->track_sizes = true; }
static void want12_no_inline_ascii_resp(struct cfg *c) { c->no_inline_ascii_resp = true; }
static void want12_inline_ascii_resp(struct cfg *c) { c->inline_ascii_resp = true; }
static void want12_modern(struct cfg *c) { c->modern = true; }
static void want12_no_modern(struct cfg *c) { c->no_modern = true; }
static void want12_no_chunked_items(struct cfg *c) { c->no_chunked_items = true; }
static void want12_drop_privileges(struct cfg *c) { c->drop_privileges = true; }
static void want12_no_drop_privileges(struct cfg *c) { c->no_drop_privileges = true; }
static void want12_relaxed_privileges(struct cfg *c) { c->relaxed_privileges = true; }
static void want12_resp_obj_mem_limit(struct cfg *c) { c->resp_obj_mem_limit = 10; }
static void want12_read_buf_mem_limit(struct cfg *c) { c->read_buf_mem_limit = 1; }

static const struct option_case option_cases[] = {
    {'p', "port", "12345", want_port},
    {'U', "udp-port", "0", want_udp},
    {'l', "listen", "10.1.2.3", want_listen},
    {'A', "enable-shutdown", NULL, want_shutdown},
    {'u', "user", "nobody", want_user},
    {'m', "memory-limit", "128", want_megs},
    {'M', "disable-evictions", NULL, want_no_evict},
    {'c', "conn-limit", "10", want_conns},
    {'v', "verbose", NULL, want_verbose},
    {'h', "help", NULL, want_help},
    {'V', "version", NULL, want_version},
    {0, "describe-metrics", NULL, want_describe},
    {0, "metrics-port", "9150", want_metrics_port},
    {'f', "slab-growth-factor", "1.5", want_factor},
    {'n', "slab-min-size", "96", want_min_size},
    {'t', "threads", "4", want_threads},
    {'C', "disable-cas", NULL, want_no_cas},
    {0, "accept-by-cpu", NULL, want_accept_by_cpu},
    {'b', "listen-backlog", "64", want_backlog},
    {'I', "max-item-size", "512k", want_item_max},
    {'B', "protocol", "binary", want_protocol},
    {0, "default-ttl", "3600", want_default_ttl}, /* long only */
    {0, "max-ttl", "86400", want_max_ttl},
    {0, "strict-keys", NULL, want_strict_keys},
    {'o', "extended", "ssl_key=k.pem", want_extended},
    {'Z', "enable-ssl", NULL, want_ssl},
    {0, "ssl-chain-cert", "c.pem", want_chain},
    {0, "ssl-key", "k.pem", want_key},
    {0, "ssl-keyformat", "2", want_keyformat},
    {0, "ssl-verify-mode", "2", want_verify},
    {0, "ssl-wbuf-size", "32", want_wbuf},
    {0, "ssl-ca-cert", "ca.pem", want_ca},
    {0, "ssl-ciphers", "HIGH", want_ciphers},
    {0, "ssl-min-version", "3", want_min_version},
    {0, "ssl-session-cache", NULL, want_sess},
    {0, "ssl-kernel-tls", NULL, want_ktls},
    {'Y', "auth-file", "users", want_auth_file},
    {'S', "enable-sasl", NULL, want_sasl},
    {0, "sasl-pwdb", "pw", want_pwdb},
    {0, "metrics-listen", "127.0.0.2", want_metrics_listen},
    {0, "metrics-auth-file", "http-users", want_metrics_auth},
    {0, "conn-memory", "100", want_conn_memory},
    {0, "metrics-idle-timeout", "5", want_metrics_idle},
    {0, "recv-buffers", "64", want_recv_buffers},
    {0, "uring-cq-entries", "1024", want_cq_entries},
    {0, "io-backend", "epoll", want_io_backend},
    /* the rest of memcached's command line (issue 12) */
    {'s', "unix-socket", "/tmp/mc.sock", want12_unix_socket},
    {'a', "unix-mask", "755", want12_unix_mask},
    {'d', "daemon", NULL, want12_daemon},
    {'r', "enable-coredumps", NULL, want12_enable_coredumps},
    {'k', "lock-memory", NULL, want12_lock_memory},
    {'i', "license", NULL, want12_license},
    {'P', "pidfile", "/run/mc.pid", want12_pidfile},
    {'L', "enable-largepages", NULL, want12_enable_largepages},
    {'D', "prefix-delimiter", ":", want12_prefix_delimiter},
    {'R', "max-reqs-per-event", "40", want12_reqs_per_event},
    {'F', "disable-flush-all", NULL, want12_disable_flush_all},
    {'X', "disable-dumping", NULL, want12_disable_dumping},
    {'W', "disable-watch", NULL, want12_disable_watch},
    {'e', "memory-file", "/dev/shm/mc", want12_memory_file},
    {'N', "napi-ids", "4", want12_napi_ids},
    {0, "maxconns-fast", NULL, want12_maxconns_fast},
    {0, "no-maxconns-fast", NULL, want12_no_maxconns_fast},
    {0, "hashpower", "20", want12_hashpower},
    {0, "no-hashexpand", NULL, want12_no_hashexpand},
    {0, "slab-reassign", NULL, want12_slab_reassign},
    {0, "no-slab-reassign", NULL, want12_no_slab_reassign},
    {0, "slab-automove", "2", want12_slab_automove},
    {0, "no-slab-automove", NULL, want12_no_slab_automove},
    {0, "slab-automove-ratio", "0.5", want12_slab_automove_ratio},
    {0, "slab-automove-window", "3", want12_slab_automove_window},
    {0, "tail-repair-time", "60", want12_tail_repair_time},
    {0, "hash-algorithm", "jenkins", want12_hash_algorithm},
    {0, "lru-crawler", NULL, want12_lru_crawler},
    {0, "no-lru-crawler", NULL, want12_no_lru_crawler},
    {0, "lru-crawler-sleep", "50", want12_lru_crawler_sleep},
    {0, "lru-crawler-tocrawl", "10", want12_lru_crawler_tocrawl},
    {0, "lru-maintainer", NULL, want12_lru_maintainer},
    {0, "no-lru-maintainer", NULL, want12_no_lru_maintainer},
    {0, "hot-lru-pct", "30", want12_hot_lru_pct},
    {0, "warm-lru-pct", "30", want12_warm_lru_pct},
    {0, "hot-max-factor", "0.5", want12_hot_max_factor},
    {0, "warm-max-factor", "1.5", want12_warm_max_factor},
    {0, "temporary-ttl", "30", want12_temporary_ttl},
    {0, "idle-timeout", "3", want12_idle_timeout},
    {0, "watcher-logbuf-size", "8", want12_watcher_logbuf_size},
    {0, "worker-logbuf-size", "8", want12_worker_logbuf_size},
    {0, "slab-sizes", "96-128", want12_slab_sizes},
    {0, "slab-chunk-max", "16384", want12_slab_chunk_max},
    {0, "track-sizes", NULL, want12_track_sizes},
    {0, "no-inline-ascii-resp", NULL, want12_no_inline_ascii_resp},
    {0, "inline-ascii-resp", NULL, want12_inline_ascii_resp},
    {0, "modern", NULL, want12_modern},
    {0, "no-modern", NULL, want12_no_modern},
    {0, "no-chunked-items", NULL, want12_no_chunked_items},
    {0, "drop-privileges", NULL, want12_drop_privileges},
    {0, "no-drop-privileges", NULL, want12_no_drop_privileges},
    {0, "relaxed-privileges", NULL, want12_relaxed_privileges},
    {0, "resp-obj-mem-limit", "10", want12_resp_obj_mem_limit},
    {0, "read-buf-mem-limit", "1", want12_read_buf_mem_limit},
};

/* memcached's -o list: every ssl_* suboption in one argument, values
 * copied out of argv and still valid after parsing returns. */
static void test_cfg_extended_ssl_suboptions(void **state)
{
    struct fixture *f = *state;
    char list[] = "ssl_chain_cert=/etc/c.pem,ssl_key=/etc/k.pem,ssl_ca_cert=ca.pem,"
                  "ssl_verify_mode=3,ssl_min_version=3,ssl_session_cache,ssl_ciphers=HIGH";
    assert_true(parse(f, "-Z", "-o", list, NULL));
    assert_true(f->cfg.enable_ssl);
    assert_string_equal(f->cfg.ssl_chain_cert, "/etc/c.pem");
    assert_string_equal(f->cfg.ssl_key, "/etc/k.pem");
    assert_string_equal(f->cfg.ssl_ca_cert, "ca.pem");
    assert_string_equal(f->cfg.ssl_ciphers, "HIGH");
    assert_int_equal(f->cfg.ssl_verify_mode, 3);
    assert_int_equal(f->cfg.ssl_min_version, 3);
    assert_true(f->cfg.ssl_session_cache);
    /* the values live in the cfg, not in the argument */
    memset(list, 'x', sizeof(list) - 1);
    assert_string_equal(f->cfg.ssl_key, "/etc/k.pem");
    /* inside this cfg's own buffer (cfg_parse moved them out of its copy) */
    assert_true((uintptr_t)f->cfg.ssl_key >= (uintptr_t)f->cfg.ext_buf &&
                (uintptr_t)f->cfg.ssl_key < (uintptr_t)(f->cfg.ext_buf + sizeof(f->cfg.ext_buf)));
}

static void test_cfg_extended_errors(void **state)
{
    struct fixture *f = *state;
    assert_false(parse(f, "-o", "ssl_bogus=1", NULL));
    expect_error(f, "corecache: -o ssl_bogus: unknown extended option; see corecache -h\n");
    assert_false(parse(f, "-o", "ssl_key", NULL));
    expect_error(f, "corecache: -o ssl_key: missing value (name=value)\n");
    assert_false(parse(f, "-o", "ssl_session_cache=1", NULL));
    expect_error(f, "corecache: -o ssl_session_cache=1: this option takes no value\n");
    assert_false(parse(f, "-o", "ssl_verify_mode=4", NULL));
    expect_error(f, "corecache: --ssl-verify-mode 4: verify mode must be 0 (none), 1 (request), 2 (require) or 3 (once)\n");
    assert_false(parse(f, "-o", "ssl_min_version=9", NULL));
    assert_false(parse(f, "-o", "extended=x", NULL));
}

static void test_cfg_parse_every_option_every_form(void **state)
{
    struct fixture *f = *state;
    size_t ncases = sizeof(option_cases) / sizeof(option_cases[0]);
    size_t rows = 0;
#define COUNT_ROW(...) rows++;
    CFG_OPTIONS(COUNT_ROW)
#undef COUNT_ROW
    assert_int_equal(ncases, rows); /* a new option needs a case here */

    for (size_t i = 0; i < ncases; i++) {
        const struct option_case *oc = &option_cases[i];
        struct cfg want;
        cfg_defaults(&want);
        oc->expect(&want);
        char short_word[8], attached[64], long_word[64], long_eq[64];
        snprintf(short_word, sizeof(short_word), "-%c", oc->short_flag);
        snprintf(long_word, sizeof(long_word), "--%s", oc->long_name);

        if (oc->short_flag == 0 && oc->value != NULL) { /* long-only with a value */
            cfg_defaults(&f->cfg);
            assert_true(parse(f, long_word, oc->value, NULL));
            assert_cfg_equal(&f->cfg, &want);
            snprintf(long_eq, sizeof(long_eq), "--%s=%s", oc->long_name, oc->value);
            cfg_defaults(&f->cfg);
            assert_true(parse(f, long_eq, NULL));
            assert_cfg_equal(&f->cfg, &want);
            continue;
        }
        if (oc->value == NULL) {
            if (oc->short_flag != 0) { /* long-only options have no short forms */
                cfg_defaults(&f->cfg);
                assert_true(parse(f, short_word, NULL));
                assert_cfg_equal(&f->cfg, &want);
            }
            cfg_defaults(&f->cfg);
            assert_true(parse(f, long_word, NULL));
            assert_cfg_equal(&f->cfg, &want);
            continue;
        }
        snprintf(attached, sizeof(attached), "-%c%s", oc->short_flag, oc->value);
        snprintf(long_eq, sizeof(long_eq), "--%s=%s", oc->long_name, oc->value);

        if (oc->short_flag != 0) {
            cfg_defaults(&f->cfg);
            assert_true(parse(f, short_word, oc->value, NULL));
            assert_cfg_equal(&f->cfg, &want);
            cfg_defaults(&f->cfg);
            assert_true(parse(f, attached, NULL));
            assert_cfg_equal(&f->cfg, &want);
        }
        cfg_defaults(&f->cfg);
        assert_true(parse(f, long_eq, NULL));
        assert_cfg_equal(&f->cfg, &want);
        cfg_defaults(&f->cfg);
        assert_true(parse(f, long_word, oc->value, NULL));
        assert_cfg_equal(&f->cfg, &want);
        assert_int_equal(test_sink_len(&f->err), 0);
    }
}

static void test_cfg_parse_size_suffixes(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *text;
        uint64_t bytes;
    } cases[] = {
        {"1024", 1024},   {"1k", 1024},       {"4K", 4096},          {"1m", MB},
        {"2M", 2 * MB},   {"1g", 1024 * MB},  {"1G", 1024 * MB},     {"1024m", 1024 * MB},
        {"0001k", 1024},  {"1536k", 1536 * 1024},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cfg_defaults(&f->cfg);
        assert_true(parse(f, "-m", "4096", "-I", cases[i].text, NULL));
        assert_int_equal(f->cfg.item_size_max, cases[i].bytes);
    }
}

static void test_cfg_parse_megs_converts_to_bytes(void **state)
{
    struct fixture *f = *state;
    assert_true(parse(f, "-m", "1073741824", NULL));
    assert_int_equal(f->cfg.memory_limit, UINT64_C(1) << 50);
    assert_true(parse(f, "-m", "2", NULL));
    assert_int_equal(f->cfg.memory_limit, 2 * MB);
}

static void test_cfg_parse_range_edges_accepted(void **state)
{
    struct fixture *f = *state;
    assert_true(parse(f, "-p", "1", "-t", "0", "-c", "1", "-b", "1", "-n", "1", NULL));
    assert_int_equal(f->cfg.port, 1);
    assert_int_equal(f->cfg.threads, 0);
    assert_true(parse(f, "-p", "65535", "-t", "1024", "-c", "2147483647", "-b", "2147483647",
                      "-n", "4294967295", NULL));
    assert_int_equal(f->cfg.port, 65535);
    assert_int_equal(f->cfg.threads, 1024);
    assert_int_equal(f->cfg.conn_limit, 2147483647u);
    assert_int_equal(f->cfg.listen_backlog, 2147483647u);
    assert_int_equal(f->cfg.slab_min_size, 4294967295u);
    assert_true(parse(f, "-f", "1.0001", NULL));
    assert_true(f->cfg.growth_factor > 1.0);
    assert_true(parse(f, "-f", "2", NULL));
    assert_true(f->cfg.growth_factor == 2.0);
    assert_true(parse(f, "-f", "1e1", NULL));
    assert_true(f->cfg.growth_factor == 10.0);
    assert_true(parse(f, "-p", "00080", NULL)); /* leading zeros are still decimal */
    assert_int_equal(f->cfg.port, 80);
}

/* ---- bundling and structure -------------------------------------------- */

static void test_cfg_parse_bundled_flags(void **state)
{
    struct fixture *f = *state;
    assert_true(parse(f, "-vv", NULL));
    assert_int_equal(f->cfg.verbose, 2);

    cfg_defaults(&f->cfg);
    assert_true(parse(f, "-Mv", NULL));
    assert_true(f->cfg.disable_evictions);
    assert_int_equal(f->cfg.verbose, 1);

    cfg_defaults(&f->cfg);
    assert_true(parse(f, "-vvv", "-v", "--verbose", NULL));
    assert_int_equal(f->cfg.verbose, 5);

    cfg_defaults(&f->cfg);
    assert_true(parse(f, "-vAp11300", NULL));
    assert_int_equal(f->cfg.verbose, 1);
    assert_true(f->cfg.enable_shutdown);
    assert_int_equal(f->cfg.port, 11300);

    cfg_defaults(&f->cfg);
    assert_true(parse(f, "-CMp", "11400", "-vt2", NULL));
    assert_true(f->cfg.disable_cas);
    assert_true(f->cfg.disable_evictions);
    assert_int_equal(f->cfg.port, 11400);
    assert_int_equal(f->cfg.verbose, 1);
    assert_int_equal(f->cfg.threads, 2);
}

static void test_cfg_parse_option_argument_takes_rest_of_bundle(void **state)
{
    struct fixture *f = *state;
    /* after -p, "v" is the argument, not another flag */
    assert_false(parse(f, "-pv", NULL));
    expect_error(f, "corecache: -p v: not an unsigned decimal number\n");
    assert_int_equal(f->cfg.verbose, 0);
}

static void test_cfg_parse_separate_argument_may_start_with_dash(void **state)
{
    struct fixture *f = *state;
    /* like getopt, a required argument is the next word whatever it is */
    assert_true(parse(f, "-l", "-weird-but-allowed", NULL));
    assert_string_equal(f->cfg.listen, "-weird-but-allowed");
    assert_false(parse(f, "-p", "-1", NULL));
    expect_error(f, "corecache: -p -1: not an unsigned decimal number\n");
}

static void test_cfg_parse_last_value_wins(void **state)
{
    struct fixture *f = *state;
    assert_true(parse(f, "-p", "1000", "--port=2000", "-p3000", NULL));
    assert_int_equal(f->cfg.port, 3000);
    assert_true(parse(f, "-l", "10.0.0.1", "-l", "10.0.0.2", NULL));
    assert_string_equal(f->cfg.listen, "10.0.0.2");
}

static void test_cfg_parse_double_dash_ends_options(void **state)
{
    struct fixture *f = *state;
    assert_true(parse(f, "-v", "--", NULL));
    assert_int_equal(f->cfg.verbose, 1);

    cfg_defaults(&f->cfg);
    assert_false(parse(f, "--", "-v", NULL));
    expect_error(f, "corecache: unexpected argument '-v'; corecache takes only options (see corecache -h)\n");
    assert_int_equal(f->cfg.verbose, 0);
}

static void test_cfg_parse_non_option_is_error(void **state)
{
    struct fixture *f = *state;
    assert_false(parse(f, "-v", "foo", NULL));
    expect_error(f, "corecache: unexpected argument 'foo'; corecache takes only options (see corecache -h)\n");
    assert_false(parse(f, "-", NULL));
    expect_error(f, "corecache: unexpected argument '-'; corecache takes only options (see corecache -h)\n");
}

static void test_cfg_parse_failure_leaves_cfg_untouched(void **state)
{
    struct fixture *f = *state;
    struct cfg want;
    cfg_defaults(&want);
    assert_false(parse(f, "-p", "2000", "-v", "-m", "0", NULL));
    assert_cfg_equal(&f->cfg, &want);
}

static void test_cfg_parse_does_not_modify_argv(void **state)
{
    struct fixture *f = *state;
    char w0[] = "corecache", w1[] = "--port=4000", w2[] = "-vp", w3[] = "5000";
    char *argv[] = {w0, w1, w2, w3, NULL};
    assert_true(cfg_parse(&f->cfg, 4, argv, &f->err.sink));
    assert_string_equal(w1, "--port=4000");
    assert_string_equal(w2, "-vp");
    assert_string_equal(w3, "5000");
    assert_ptr_equal(argv[1], w1);
    assert_ptr_equal(argv[3], w3);
    assert_null(argv[4]);
    assert_int_equal(f->cfg.port, 5000);
}

/* ---- error messages ---------------------------------------------------- */

struct error_case {
    const char *words[4];
    const char *message;
};

static const struct error_case error_cases[] = {
    /* -B takes memcached's three protocol names */
    {{"-B", "soap"}, "corecache: -B soap: protocol must be auto, ascii or binary\n"},
    {{"--protocol=Binary"}, "corecache: --protocol Binary: protocol must be auto, ascii or binary\n"},
    /* unknown options and structure */
    {{"--frob"}, "corecache: unknown option '--frob'; see corecache -h\n"},
    {{"--frob=3"}, "corecache: unknown option '--frob'; see corecache -h\n"},
    {{"--por", "1"}, "corecache: unknown option '--por'; see corecache -h\n"},
    {{"-x"}, "corecache: unknown option '-x'; see corecache -h\n"},
    {{"-vx"}, "corecache: unknown option '-x'; see corecache -h\n"},
    {{"-p"}, "corecache: -p: missing argument (<num>)\n"},
    {{"--port"}, "corecache: --port: missing argument (<num>)\n"},
    {{"-v", "-l"}, "corecache: -l: missing argument (<addr>)\n"},
    {{"-vI"}, "corecache: -I: missing argument (<num>)\n"},
    {{"--help=1"}, "corecache: --help=1: --help takes no argument\n"},
    {{"--verbose="}, "corecache: --verbose=: --verbose takes no argument\n"},
    /* port */
    {{"-p", "0"}, "corecache: -p 0: port must be between 1 and 65535\n"},
    {{"-p", "65536"}, "corecache: -p 65536: port must be between 1 and 65535\n"},
    {{"-p", "99999999999999999999999"},
     "corecache: -p 99999999999999999999999: port must be between 1 and 65535\n"},
    {{"-p", "12x"}, "corecache: -p 12x: not an unsigned decimal number\n"},
    /* metrics port */
    {{"--metrics-port", "65536"},
     "corecache: --metrics-port 65536: port must be between 1 and 65535, or 0 (off)\n"},
    {{"--metrics-port=x"}, "corecache: --metrics-port x: not an unsigned decimal number\n"},
    {{"-p", "+1"}, "corecache: -p +1: not an unsigned decimal number\n"},
    {{"-p", " 1"}, "corecache: -p  1: not an unsigned decimal number\n"},
    {{"-p", "1 "}, "corecache: -p 1 : not an unsigned decimal number\n"},
    {{"-p", "0x10"}, "corecache: -p 0x10: not an unsigned decimal number\n"},
    {{"--port="}, "corecache: --port '': not an unsigned decimal number\n"},
    {{"-p", "99999999999999999999x"},
     "corecache: -p 99999999999999999999x: not an unsigned decimal number\n"},
    /* udp */
    {{"-U", "65536"}, "corecache: -U 65536: port must be between 0 and 65535\n"},
    /* memcached's -o suboptions and flags, in memcached's words (issue 12) */
    {{"-o", "hashpower=5"}, "corecache: --hashpower 5: Initial hashtable multiplier is too low (12 to 32)\n"},
    {{"-o", "slab_automove=3"}, "corecache: --slab-automove 3: slab_automove must be between 0 and 2\n"},
    {{"-o", "tail_repair_time=5"},
     "corecache: --tail-repair-time 5: Cannot set tail_repair_time to less than 10 seconds\n"},
    {{"-o", "hash_algorithm=md5"},
     "corecache: --hash-algorithm md5: Unknown hash_algorithm option (jenkins, murmur3, xxh3)\n"},
    {{"-o", "lru_crawler_sleep=1000001"},
     "corecache: --lru-crawler-sleep 1000001: LRU crawler sleep must be between 0 and 1 second\n"},
    {{"-o", "hot_lru_pct=80"}, "corecache: --hot-lru-pct 80: hot_lru_pct must be > 1 and < 80\n"},
    {{"-o", "modern,bogus"}, "corecache: -o bogus: unknown extended option; see corecache -h\n"},
    {{"-o", "modern=1"}, "corecache: -o modern=1: this option takes no value\n"},
    {{"-o", "idle_timeout"}, "corecache: -o idle_timeout: missing value (name=value)\n"},
    {{"-R", "0"}, "corecache: -R 0: Number of requests per event must be greater than 0\n"},
    {{"-a", "800"}, "corecache: -a 800: Invalid unix_mask, must be an octal number (e.g. 700)\n"},
    /* memory */
    {{"-m", "0"}, "corecache: -m 0: memory limit must be at least 1 (megabytes)\n"},
    {{"--memory-limit", "0"}, "corecache: --memory-limit 0: memory limit must be at least 1 (megabytes)\n"},
    {{"-m", "1073741825"}, "corecache: -m 1073741825: memory limit must be at most 1073741824 (megabytes)\n"},
    {{"-m", "18446744073709551615"},
     "corecache: -m 18446744073709551615: memory limit must be at most 1073741824 (megabytes)\n"},
    {{"-m", "-1"}, "corecache: -m -1: not an unsigned decimal number\n"},
    {{"-m", "64m"}, "corecache: -m 64m: not an unsigned decimal number\n"},
    /* connections, threads, backlog, slab min size */
    {{"-c", "0"}, "corecache: -c 0: connection limit must be at least 1\n"},
    {{"-c", "2147483648"}, "corecache: -c 2147483648: connection limit must be at most 2147483647\n"},
    {{"-t", "1025"}, "corecache: -t 1025: threads must be between 0 (one per CPU) and 1024\n"},
    {{"-t", "-1"}, "corecache: -t -1: not an unsigned decimal number\n"},
    {{"-b", "0"}, "corecache: -b 0: listen backlog must be at least 1\n"},
    {{"-b", "2147483648"}, "corecache: -b 2147483648: listen backlog must be at most 2147483647\n"},
    {{"-n", "0"}, "corecache: -n 0: slab minimum size must be at least 1 (bytes)\n"},
    {{"-n", "4294967296"}, "corecache: -n 4294967296: slab minimum size must be at most 4294967295 (bytes)\n"},
    /* resource knobs (issue 15) */
    {{"--recv-buffers", "100"}, "corecache: --recv-buffers 100: must be a power of two (e.g. 256)\n"},
    {{"--recv-buffers", "0"}, "corecache: --recv-buffers 0: receive buffers must be between 1 and 32768\n"},
    {{"--uring-cq-entries", "8"},
     "corecache: --uring-cq-entries 8: completion queue entries must be between 16 and 65536\n"},
    {{"--uring-cq-entries", "3000"}, "corecache: --uring-cq-entries 3000: must be a power of two (e.g. 256)\n"},
    {{"--io-backend", "kqueue"}, "corecache: --io-backend kqueue: the I/O backend must be auto, io_uring or epoll\n"},
    {{"--metrics-idle-timeout", "0"},
     "corecache: --metrics-idle-timeout 0: the idle timeout must be at least 1 (seconds)\n"},
    /* growth factor */
    {{"-f", "1.0"}, "corecache: -f 1.0: growth factor must be greater than 1\n"},
    {{"-f", "1"}, "corecache: -f 1: growth factor must be greater than 1\n"},
    {{"-f", "0.5"}, "corecache: -f 0.5: growth factor must be greater than 1\n"},
    {{"-f", "-2"}, "corecache: -f -2: growth factor must be greater than 1\n"},
    {{"-f", "abc"}, "corecache: -f abc: not a decimal number (e.g. 1.25)\n"},
    {{"-f", "1.5x"}, "corecache: -f 1.5x: not a decimal number (e.g. 1.25)\n"},
    {{"-f", "inf"}, "corecache: -f inf: not a decimal number (e.g. 1.25)\n"},
    {{"-f", "nan"}, "corecache: -f nan: not a decimal number (e.g. 1.25)\n"},
    {{"-f", "1e999"}, "corecache: -f 1e999: not a decimal number (e.g. 1.25)\n"},
    {{"-f", " 1.5"}, "corecache: -f  1.5: not a decimal number (e.g. 1.25)\n"},
    {{"-f", ""}, "corecache: -f '': not a decimal number (e.g. 1.25)\n"},
    /* item size */
    {{"-I", "100"}, "corecache: -I 100: max item size must be between 1k and 1024m\n"},
    {{"-I", "1023"}, "corecache: -I 1023: max item size must be between 1k and 1024m\n"},
    {{"-I", "0k"}, "corecache: -I 0k: max item size must be between 1k and 1024m\n"},
    {{"-I", "1025m"}, "corecache: -I 1025m: max item size must be between 1k and 1024m\n"},
    {{"-I", "2g"}, "corecache: -I 2g: max item size must be between 1k and 1024m\n"},
    {{"-I", "99999999999999g"}, "corecache: -I 99999999999999g: max item size must be between 1k and 1024m\n"},
    {{"-I", "1q"},
     "corecache: -I 1q: not a size; write bytes with an optional k, m or g suffix (e.g. 512k)\n"},
    {{"-I", "k"},
     "corecache: -I k: not a size; write bytes with an optional k, m or g suffix (e.g. 512k)\n"},
    {{"-I", "1.5m"},
     "corecache: -I 1.5m: not a size; write bytes with an optional k, m or g suffix (e.g. 512k)\n"},
    {{"-I", "1mb"},
     "corecache: -I 1mb: not a size; write bytes with an optional k, m or g suffix (e.g. 512k)\n"},
    {{"-I", "-1k"},
     "corecache: -I -1k: not a size; write bytes with an optional k, m or g suffix (e.g. 512k)\n"},
    /* strings */
    {{"-l", ""}, "corecache: -l '': the value must not be empty\n"},
    {{"--user="}, "corecache: --user '': the value must not be empty\n"},
    /* cross-option: -I at most half of -m */
    {{"-m", "1"},
     "corecache: -m 1: memory limit must be at least twice the max item size (-I 1m, the default); "
     "raise it to at least 2 or lower -I\n"},
    {{"-I", "64m"},
     "corecache: -I 64m: max item size must be at most half the memory limit (-m 64, the default); "
     "lower it to at most 32m or raise the memory limit to at least 128\n"},
    {{"--max-item-size=33m", "--memory-limit=64"},
     "corecache: --max-item-size 33m: max item size must be at most half the memory limit "
     "(--memory-limit 64); lower it to at most 32m or raise the memory limit to at least 66\n"},
    {{"-m", "3", "-I", "1537k"},
     "corecache: -I 1537k: max item size must be at most half the memory limit (-m 3); "
     "lower it to at most 1536k or raise the memory limit to at least 4\n"},
};

static void test_cfg_parse_error_messages(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
        const struct error_case *ec = &error_cases[i];
        cfg_defaults(&f->cfg);
        bool ok = parse(f, ec->words[0], ec->words[1], ec->words[2], ec->words[3], NULL);
        if (ok || strcmp(err_text(f), ec->message) != 0)
            print_error("case %zu (%s %s ...): got ok=%d \"%s\"\n", i, ec->words[0],
                        ec->words[1] ? ec->words[1] : "", ok, err_text(f));
        assert_false(ok);
        expect_error(f, ec->message);
    }
}

static void test_cfg_parse_cross_check_edges(void **state)
{
    struct fixture *f = *state;
    assert_true(parse(f, "-m", "2", NULL)); /* 1m item, 2m memory: exactly half */
    cfg_defaults(&f->cfg);
    assert_true(parse(f, "-m", "1", "-I", "512k", NULL));
    assert_int_equal(f->cfg.item_size_max, 512 * 1024);
    cfg_defaults(&f->cfg);
    assert_true(parse(f, "-m", "2048", "-I", "1g", NULL));
    cfg_defaults(&f->cfg);
    /* order does not matter: the check runs after every option is read */
    assert_true(parse(f, "-I", "8m", "-m", "16", NULL));
    assert_int_equal(f->cfg.item_size_max, 8 * MB);
}

static void test_cfg_parse_help_and_version_skip_cross_check(void **state)
{
    struct fixture *f = *state;
    assert_true(parse(f, "-m", "1", "-h", NULL));
    assert_true(f->cfg.help);
    cfg_defaults(&f->cfg);
    assert_true(parse(f, "-V", "-I", "64m", NULL));
    assert_true(f->cfg.version);
    /* but a bad value is still refused */
    cfg_defaults(&f->cfg);
    assert_false(parse(f, "-h", "-m", "0", NULL));
    expect_error(f, "corecache: -m 0: memory limit must be at least 1 (megabytes)\n");
}

static void test_cfg_parse_error_with_full_sink_still_fails(void **state)
{
    struct fixture *f = *state;
    f->err.limit = 8; /* room for part of the line only */
    assert_false(parse(f, "--frob", NULL));
    assert_true(test_sink_len(&f->err) <= 8);
}

/* ---- -h ---------------------------------------------------------------- */

static char *usage_text(void)
{
    struct test_sink out;
    test_sink_init(&out, 64);
    assert_true(cfg_usage(&out.sink));
    char *text = test_sink_text(&out);
    test_sink_fini(&out);
    return text;
}

static void test_cfg_usage_lists_every_option(void **state)
{
    char *text = usage_text();
    assert_non_null(strstr(text, "Usage: corecache"));
#define EXPECT_IN_USAGE(field, short_flag, long_name, type, def, metavar, help)                  \
    do {                                                                                         \
        char flags[64];                                                                          \
        snprintf(flags, sizeof(flags), "\n-%c, --%s", short_flag, long_name);                   \
        assert_non_null(strstr(text, flags));                                                    \
        assert_non_null(strstr(text, help));                                                     \
    } while (0);
    CFG_OPTIONS(EXPECT_IN_USAGE)
#undef EXPECT_IN_USAGE
    free(text);
}

static void test_cfg_usage_lines_are_memcached_like(void **state)
{
    char *text = usage_text();
    static const char *const lines[] = {
        "\n-p, --port=<num>          TCP port to listen on (default: 11211)\n",
        "\n-U, --udp-port=<num>      UDP port (accepted; no UDP port is opened: corecache serves "
        "TCP only) (default: 0)\n",
        "\n-l, --listen=<addr>       interface to listen on (default: 127.0.0.1)\n",
        "\n-A, --enable-shutdown     enable the ascii \"shutdown\" command\n",
        "\n-u, --user=<user>         assume the identity of <user> after binding (only when run "
        "as root)\n",
        "\n-m, --memory-limit=<num>  item memory in megabytes (default: 64)\n",
        "\n-c, --conn-limit=<num>    max simultaneous connections (default: 1024)\n",
        "\n-v, --verbose             verbose (print errors/warnings; -vv also prints commands)\n",
        "\n-f, --slab-growth-factor=<num> chunk size growth factor (default: 1.25)\n",
        "\n-n, --slab-min-size=<bytes> min space used for key+value+flags (default: 48)\n",
        "\n-t, --threads=<num>       number of shard threads (default: one per CPU in the "
        "affinity mask)\n",
        "\n-b, --listen-backlog=<num> set the backlog queue limit (default: 1024)\n",
        "\n-I, --max-item-size=<num> max item size (default: 1m, min: 1k, max: 1024m)\n",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        if (strstr(text, lines[i]) == NULL)
            print_error("missing line: %s\nin:\n%s", lines[i], text);
        assert_non_null(strstr(text, lines[i]));
    }
    free(text);
}

static void test_cfg_usage_full_sink_fails(void **state)
{
    struct test_sink out;
    test_sink_init(&out, 16);
    out.limit = 100;
    assert_false(cfg_usage(&out.sink));
    test_sink_fini(&out);
}

/* ---- stats settings ---------------------------------------------------- */

static void test_cfg_settings_render_memcached_names(void **state)
{
    struct fixture *f = *state;
    assert_true(parse(f, "-M", "-C", "-A", "-t", "2", "-vv", NULL));
    struct test_sink out;
    test_sink_init(&out, 32);
    assert_true(cfg_render_settings(&f->cfg, &out.sink));
    char *text = test_sink_text(&out);
    static const char *const lines[] = {
        "STAT maxbytes 67108864\r\n",  "STAT maxconns 1024\r\n",
        "STAT tcpport 11211\r\n",      "STAT udpport 0\r\n",
        "STAT inter 127.0.0.1\r\n",    "STAT verbosity 2\r\n",
        "STAT evictions off\r\n",      "STAT shutdown_command yes\r\n",
        "STAT growth_factor 1.25\r\n", "STAT chunk_size 48\r\n",
        "STAT num_threads 2\r\n",      "STAT cas_enabled no\r\n",
        "STAT tcp_backlog 1024\r\n",   "STAT item_size_max 1048576\r\n",
        "STAT default_ttl 0\r\n",       "STAT max_ttl 0\r\n",
        "STAT auth_enabled_sasl no\r\n", "STAT auth_enabled_ascii no\r\n",
        "STAT io_backend auto\r\n", /* corecache's; io/stats.c puts the one that runs */
        "STAT memory_file (null)\r\n", /* issue 14: memcached 1.6.18 prints -e's NULL so */
    };
    /* in memcached's order, then corecache's, and nothing else */
    const char *p = text;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        assert_memory_equal(p, lines[i], strlen(lines[i]));
        p += strlen(lines[i]);
    }
    assert_string_equal(p, "");
    free(text);

    cfg_defaults(&f->cfg);
    test_sink_clear(&out);
    assert_true(cfg_render_settings(&f->cfg, &out.sink));
    text = test_sink_text(&out);
    assert_non_null(strstr(text, "STAT evictions on\r\n"));
    assert_non_null(strstr(text, "STAT cas_enabled yes\r\n"));
    assert_non_null(strstr(text, "STAT shutdown_command no\r\n"));
    free(text);
    /* memcached shows -Y's file, -S as yes */
    assert_true(parse(f, "-Y", "/etc/users", "-S", NULL));
    test_sink_clear(&out);
    assert_true(cfg_render_settings(&f->cfg, &out.sink));
    text = test_sink_text(&out);
    assert_non_null(strstr(text, "STAT auth_enabled_sasl yes\r\nSTAT auth_enabled_ascii /etc/users\r\n"));
    free(text);
    /* issue 14: -e's file as given, like memcached's t/restart.t reads it */
    assert_true(parse(f, "-e", "/dev/shm/cache", NULL));
    test_sink_clear(&out);
    assert_true(cfg_render_settings(&f->cfg, &out.sink));
    text = test_sink_text(&out);
    assert_non_null(strstr(text, "STAT memory_file /dev/shm/cache\r\n"));
    free(text);
    test_sink_fini(&out);
}

/* --default-ttl and --max-ttl: seconds, 0 (off) to int32, shown in
 * `stats settings`. */
static void test_cfg_ttl_options(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(f->cfg.default_ttl, 0);
    assert_int_equal(f->cfg.max_ttl, 0);
    assert_true(parse(f, "--default-ttl", "0", "--max-ttl=2147483647", NULL));
    assert_int_equal(f->cfg.max_ttl, 2147483647u);
    assert_false(parse(f, "--max-ttl", "2147483648", NULL));
    expect_error(f, "corecache: --max-ttl 2147483648: max TTL must be at most 2147483647 (seconds)\n");
    assert_false(parse(f, "--default-ttl=-5", NULL));
    expect_error(f, "corecache: --default-ttl -5: not an unsigned decimal number\n");
    assert_false(parse(f, "--default-ttl", "99999999999", NULL));
    expect_error(f, "corecache: --default-ttl 99999999999: default TTL must be at most 2147483647 (seconds)\n");

    assert_true(parse(f, "--default-ttl", "300", "--max-ttl", "3600", NULL));
    struct test_sink out;
    test_sink_init(&out, 32);
    assert_true(cfg_render_settings(&f->cfg, &out.sink));
    char *text = test_sink_text(&out);
    assert_non_null(strstr(text, "STAT default_ttl 300\r\nSTAT max_ttl 3600\r\n"));
    free(text);
    test_sink_fini(&out);
}

/* t/NAME.t of memcached 1.6.18 start the server with lines like these; each
 * must parse, with memcached's meanings where corecache has the mechanism
 * (issue 12). */
static void test_issue12_memcached_command_lines(void **state)
{
    struct fixture *f = *state;
    assert_true(parse(f, "-m", "60", "-o", "slab_reassign,slab_automove,lru_crawler,lru_maintainer,"
                      "slab_chunk_max=4096", "-u", "root", "-o", "relaxed_privileges", "-U", "30001",
                      NULL));
    assert_true(f->cfg.slab_reassign && f->cfg.lru_crawler && f->cfg.lru_maintainer);
    assert_int_equal(f->cfg.slab_automove, 1); /* bare slab_automove means 1, as in memcached */
    assert_int_equal(f->cfg.slab_chunk_max, 4096);
    assert_int_equal(f->cfg.udp_port, 30001);
    assert_true(f->cfg.relaxed_privileges);
    assert_int_equal(f->cfg.memory_limit, 60 * MB);

    cfg_defaults(&f->cfg);
    assert_true(parse(f, "-d", "-P", "/run/mc.pid", "-s", "/run/mc.sock", "-a", "770", "-r", "-k",
                      "-F", "-X", "-R", "40", "-D", ":", "-L", "-vvv", "-o", "idle_timeout=3", NULL));
    assert_true(f->cfg.daemon && f->cfg.enable_coredumps && f->cfg.lock_memory);
    assert_true(f->cfg.disable_flush_all && f->cfg.disable_dumping && f->cfg.enable_largepages);
    assert_string_equal(f->cfg.pidfile, "/run/mc.pid");
    assert_string_equal(f->cfg.unix_socket, "/run/mc.sock");
    assert_string_equal(f->cfg.unix_mask, "770");
    assert_string_equal(f->cfg.prefix_delimiter, ":");
    assert_int_equal(f->cfg.reqs_per_event, 40);
    assert_int_equal(f->cfg.verbose, 3);
    assert_int_equal(f->cfg.idle_timeout, 3);

    /* a value inside an -o list outlives argv's word boundaries */
    cfg_defaults(&f->cfg);
    assert_true(parse(f, "-o", "hash_algorithm=xxh3,hashpower=20", NULL));
    assert_string_equal(f->cfg.hash_algorithm, "xxh3");
    assert_int_equal(f->cfg.hashpower, 20);
}

/* Each option given without its mechanism is named once, with a reason;
 * a nonzero -U gets its one line; options with an effect are not named. */
static void test_issue12_inert_options_reported_once(void **state)
{
    struct fixture *f = *state;
    struct test_sink out;
    test_sink_init(&out, 16);
    assert_true(parse(f, "-o", "slab_reassign,relaxed_privileges", "-U", "1234", "-d", "-m", "8", NULL));
    assert_true(cfg_render_inert(&f->cfg, &out.sink));
    f->text = test_sink_text(&out);
    assert_non_null(strstr(f->text, "corecache: -o slab_reassign: accepted, no effect: "));
    assert_non_null(strstr(f->text, "corecache: -o relaxed_privileges: accepted, no effect: "));
    assert_non_null(strstr(f->text, "corecache: -U 1234: no UDP port is opened"));
    assert_null(strstr(f->text, "-d"));
    assert_null(strstr(f->text, "-m"));
    const char *first = strstr(f->text, "slab_reassign");
    assert_null(strstr(first + 1, "slab_reassign"));
    /* -h marks them too */
    char *usage = usage_text();
    assert_non_null(strstr(usage, "-o slab_reassign: allow slab pages to move between classes [no effect in corecache]\n"));
    const char *daemon = strstr(usage, "--daemon");
    assert_non_null(daemon);
    const char *marker = strstr(daemon, "[no effect");
    assert_true(marker == NULL || marker > strchr(daemon, '\n')); /* -d works: not marked */
    free(usage);
    test_sink_fini(&out);

    /* nothing given: nothing said */
    cfg_defaults(&f->cfg);
    test_sink_init(&out, 16);
    assert_true(cfg_render_inert(&f->cfg, &out.sink));
    char *none = test_sink_text(&out);
    assert_string_equal(none, "");
    free(none);
    test_sink_fini(&out);
}

static void test_cfg_settings_full_sink_fails(void **state)
{
    struct fixture *f = *state;
    struct test_sink out;
    test_sink_init(&out, 16);
    out.limit = 40;
    assert_false(cfg_render_settings(&f->cfg, &out.sink));
    test_sink_fini(&out);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cfg_defaults_are_memcacheds),
        T(test_cfg_parse_nothing_keeps_defaults),
        T(test_cfg_parse_every_option_every_form),
        T(test_cfg_parse_size_suffixes),
        T(test_cfg_parse_megs_converts_to_bytes),
        T(test_cfg_parse_range_edges_accepted),
        T(test_cfg_parse_bundled_flags),
        T(test_cfg_parse_option_argument_takes_rest_of_bundle),
        T(test_cfg_parse_separate_argument_may_start_with_dash),
        T(test_cfg_parse_last_value_wins),
        T(test_cfg_parse_double_dash_ends_options),
        T(test_cfg_parse_non_option_is_error),
        T(test_cfg_parse_failure_leaves_cfg_untouched),
        T(test_cfg_parse_does_not_modify_argv),
        T(test_cfg_parse_error_messages),
        T(test_cfg_parse_cross_check_edges),
        T(test_cfg_parse_help_and_version_skip_cross_check),
        T(test_cfg_parse_error_with_full_sink_still_fails),
        T(test_cfg_usage_lists_every_option),
        T(test_cfg_usage_lines_are_memcached_like),
        T(test_cfg_usage_full_sink_fails),
        T(test_cfg_settings_render_memcached_names),
        T(test_cfg_settings_full_sink_fails),
        T(test_cfg_ttl_options),
        T(test_cfg_extended_ssl_suboptions),
        T(test_cfg_extended_errors),
        T(test_issue12_memcached_command_lines),
        T(test_issue12_inert_options_reported_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
