/*
 * app.c: a server process: options, checks, placement, shards, signals.
 * Every decision about printing and exiting is made here; the libraries
 * only return errors. corecache (io/main.c) and the benchmark's ceiling
 * server (bench/ceiling.c) are this same program with a different request
 * handler, so the ceiling measures exactly this runtime minus the cache.
 *
 * Exit codes: 0 after a clean shutdown (SIGTERM, SIGINT, or the `shutdown`
 * command under -A), 2 for a usage error (unknown or invalid option), 1 for
 * anything the environment refused (no io_uring, port in use, no memory).
 */
#include <errno.h>
#include <grp.h>
#include <liburing.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../core/cfg.h"
#include "../core/store.h"
#include "../numa/place.h"
#include "../numa/topo.h"
#include "app.h"
#include "guard.h"
#include "log.h"
#include "login.h"
#include "memfile.h"
#include "scrape.h"
#include "boot.h"
#include "proc.h"
#include "detail.h"
#include "watch.h"
#include "server.h"
#include "shard.h"
#include "tls.h"

#define EXIT_USAGE 2

/* A sink over a fixed buffer, for messages from cfg.c. */
struct text {
    struct sink sink;
    char buf[16384];
};

static bool text_full(struct sink *sink, size_t need)
{
    (void)sink;
    (void)need;
    return false;
}

static void text_init(struct text *t)
{
    t->sink.pos = t->buf;
    t->sink.end = t->buf + sizeof(t->buf) - 1;
    t->sink.grow = text_full;
}

/* A grow that writes what the buffer holds to stdout and starts over, for
 * listings of any length (--describe-metrics). */
static bool text_spill(struct sink *sink, size_t need)
{
    struct text *t = (struct text *)sink;
    size_t len = (size_t)(sink->pos - t->buf);
    if (fwrite(t->buf, 1, len, stdout) != len)
        return false;
    sink->pos = t->buf;
    return need <= sizeof(t->buf) - 1;
}

static const char *text_str(struct text *t)
{
    *t->sink.pos = '\0';
    return t->buf;
}

/* What check_uring found. */
enum uring_check {
    URING_OK,
    URING_REFUSED, /* refused (seccomp, io_uring_disabled, no CONFIG_IO_URING) or
                    * lacking an operation: the epoll backend serves instead */
    URING_FAILED,  /* available but failing (the locked-memory limit): fix that */
};

/*
 * Checks that io_uring and the operations the runtime needs are available,
 * and says precisely what is missing and how to get it otherwise.
 */
static enum uring_check check_uring(char *err, size_t errlen)
{
    struct io_uring ring;
    int ret = io_uring_queue_init(8, &ring, 0);
    if (ret < 0) {
        if (ret == -ENOMEM)
            snprintf(err, errlen,
                     "corecache: io_uring_setup: %s: the locked-memory limit is used up (io_uring rings "
                     "count against it without CAP_IPC_LOCK): raise `ulimit -l` (LimitMEMLOCK= in a "
                     "systemd unit), or run fewer io_uring processes as this user",
                     strerror(-ret));
        else if (ret == -EPERM || ret == -EACCES)
            snprintf(err, errlen,
                     "corecache: io_uring is unavailable (io_uring_setup: %s): enable it with "
                     "`sysctl kernel.io_uring_disabled=0`, or allow io_uring_setup, io_uring_enter and "
                     "io_uring_register in the container's seccomp profile",
                     strerror(-ret));
        else if (ret == -ENOSYS)
            snprintf(err, errlen,
                     "corecache: io_uring is unavailable (io_uring_setup: %s): a seccomp profile hides it "
                     "(a container runtime's default: allow io_uring_setup, io_uring_enter and "
                     "io_uring_register), or the kernel was built without CONFIG_IO_URING",
                     strerror(-ret));
        else
            snprintf(err, errlen, "corecache: io_uring is unavailable (io_uring_setup: %s)",
                     strerror(-ret));
        return ret == -EPERM || ret == -EACCES || ret == -ENOSYS ? URING_REFUSED : URING_FAILED;
    }
    struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
    static const struct {
        int op;
        const char *name;
    } need[] = {
        {IORING_OP_ACCEPT, "ACCEPT"},   {IORING_OP_RECV, "RECV"},
        {IORING_OP_SEND, "SEND"},       {IORING_OP_SENDMSG, "SENDMSG"},
        {IORING_OP_MSG_RING, "MSG_RING"}, {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
        {IORING_OP_TIMEOUT, "TIMEOUT"},
    };
    bool ok = probe != NULL;
    if (!ok)
        snprintf(err, errlen, "corecache: io_uring cannot be probed (Linux 6.0 or later can)");
    for (size_t i = 0; ok && i < sizeof(need) / sizeof(need[0]); i++) {
        if (!io_uring_opcode_supported(probe, need[i].op)) {
            snprintf(err, errlen,
                     "corecache: this kernel's io_uring lacks IORING_OP_%s (Linux 6.0 or later has it)",
                     need[i].name);
            ok = false;
        }
    }
    if (probe != NULL)
        io_uring_free_probe(probe);
    /* Multishot recv with provided buffer rings arrived in Linux 6.0; no
     * opcode shows it, so check the version. */
    struct utsname u;
    unsigned major = 0, minor = 0;
    if (ok && uname(&u) == 0 && sscanf(u.release, "%u.%u", &major, &minor) == 2 && major < 6) {
        snprintf(err, errlen,
                 "corecache: kernel %s lacks io_uring multishot recv with provided buffers (Linux 6.0 or later has it)",
                 u.release);
        ok = false;
    }
    io_uring_queue_exit(&ring);
    return ok ? URING_OK : URING_REFUSED;
}

/*
 * Chooses the shards' I/O backend (-o io_backend): io_uring where the
 * kernel gives it, else the epoll backend (io/evring.h), which serves the
 * same protocol with more system calls per request. One line on stderr says
 * when epoll runs, and why; -v says so for io_uring too. False (with the
 * reason in err) when the server cannot start.
 */
static bool choose_backend(struct server *srv, char *err, size_t errlen)
{
    const char *want = srv->cfg.io_backend;
    if (strcmp(want, "epoll") == 0) {
        srv->io_epoll = true;
        fprintf(stderr, "corecache: I/O backend: epoll (-o io_backend=epoll)\n");
        return true;
    }
    enum uring_check found = check_uring(err, errlen);
    if (found == URING_OK) {
        if (srv->cfg.verbose > 0)
            fprintf(stderr, "corecache: I/O backend: io_uring\n");
        return true;
    }
    if (found == URING_FAILED || strcmp(want, "io_uring") == 0)
        return false;
    srv->io_epoll = true;
    fprintf(stderr, "%s; I/O backend: epoll instead (-o io_backend=io_uring refuses to start without io_uring)\n",
            err);
    return true;
}

static bool drop_privileges(const char *user, char *err, size_t errlen)
{
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        snprintf(err, errlen, "corecache: -u %s: no such user", user);
        return false;
    }
    if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        snprintf(err, errlen, "corecache: -u %s: cannot assume that identity: %s", user, strerror(errno));
        return false;
    }
    return true;
}

/* SIGHUP: password files and the TLS certificate are read again; a file
 * that fails keeps what was loaded, and says why at -v. */
static void reload_secrets(struct server *srv)
{
    char err[512];
    login_reload(srv->login, err, sizeof(err));
    if (err[0] != '\0')
        log_info(srv, "SIGHUP: %s", err);
    if (srv->tls != NULL && !tls_server_reload(srv->tls, err, sizeof(err)))
        log_info(srv, "SIGHUP: %s", err);
    else if (srv->tls != NULL)
        log_info(srv, "SIGHUP: certificates reloaded");
}

int app_main(int argc, char **argv, const struct server_handler *handler)
{
    static struct server srv; /* large; lives for the whole process */
    struct text msg;
    char err[512] = "";
    text_init(&msg);

    cfg_defaults(&srv.cfg);
    if (!cfg_parse(&srv.cfg, argc, argv, &msg.sink)) {
        fputs(text_str(&msg), stderr);
        return EXIT_USAGE;
    }
    if (srv.cfg.help) {
        text_init(&msg);
        if (cfg_usage(&msg.sink))
            fputs(text_str(&msg), stdout);
        return 0;
    }
    if (srv.cfg.describe_metrics) {
        text_init(&msg);
        msg.sink.grow = text_spill;
        bool ok = scrape_describe(&msg.sink) && text_spill(&msg.sink, 0);
        return ok && fflush(stdout) == 0 ? 0 : 1;
    }
    if (srv.cfg.license) {
        printf("%s %s: BSD-style licence; see the LICENSE file of its source\n", handler->name,
               CORECACHE_VERSION);
        return 0;
    }
    if (srv.cfg.version) {
        printf("%s %s (memcached protocol %s)\n", handler->name, CORECACHE_VERSION, "1.6.18");
        return 0;
    }
    srv.handler = handler;
    if ((getuid() == 0 || geteuid() == 0) && srv.cfg.user == NULL) {
        fprintf(stderr, "corecache: can't run as root without the -u switch (e.g. -u nobody)\n");
        return EXIT_USAGE;
    }
    atomic_store(&srv.verbosity, srv.cfg.verbose > LOG_LEVEL_MAX ? LOG_LEVEL_MAX : srv.cfg.verbose);
    /* memcached options corecache accepts without their mechanism: said
     * once, with the reason, before anything else happens (issue 12) */
    text_init(&msg);
    if (cfg_render_inert(&srv.cfg, &msg.sink))
        fputs(text_str(&msg), stderr);
    if (srv.cfg.enable_coredumps && proc_enable_coredumps(err, sizeof(err)) < 0)
        fprintf(stderr, "%s\n", err);

    /* io_uring rings count against the locked-memory limit for users
     * without CAP_IPC_LOCK: take all of it that we are allowed. */
    struct rlimit lim;
    if (getrlimit(RLIMIT_MEMLOCK, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_MEMLOCK, &lim);
    }

    if (!choose_backend(&srv, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    struct topo topo;
    bool mask[TOPO_CPUS_MAX];
    if (topo_read(&topo, "/sys") != MC_OK) {
        /* No sysfs (a minimal container): one node, CPUs from the mask. */
        memset(&topo, 0, sizeof(topo));
        topo.nnodes = 1;
    }
    int ret = place_affinity(mask);
    if (ret < 0) {
        fprintf(stderr, "corecache: cannot read the CPU affinity mask: %s\n", strerror(-ret));
        return 1;
    }
    if (place_plan(&srv.plan, &topo, mask, srv.cfg.threads) != MC_OK) {
        fprintf(stderr, "corecache: -t %u: cannot place that many shards on the CPUs of the affinity mask\n",
                srv.cfg.threads);
        return EXIT_USAGE;
    }

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    srv.started_unix = now.tv_sec;
    mc_clock_init(&srv.clock, now.tv_sec);
    srv.limits.item_size_max = srv.cfg.item_size_max;
    srv.limits.item_total = store_item_total;
    srv.limits.strict_keys = srv.cfg.strict_keys;
    /* Unsent replies a connection may hold before its reading pauses (issue
     * 15, io/guard.h); one reply may pass it, so a value of any size still
     * goes through. */
    srv.out_cap = GUARD_CONN_OUT_CAP;

    /* Signals are taken synchronously by this thread; shards never see
     * them (the mask is inherited by the threads created below). */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1); /* memcached's graceful stop (issue 14: saves -e's items) */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* -D names the prefix delimiter and turns `stats detail` on */
    if (detail_init(&srv.detail, srv.cfg.prefix_delimiter != NULL ? srv.cfg.prefix_delimiter[0] : ':',
                    srv.cfg.prefix_delimiter != NULL) < 0) {
        fprintf(stderr, "corecache: out of memory\n");
        return 1;
    }
    /* issue 12: `watch`, each watcher buffering -o watcher_logbuf_size KiB */
    if (watch_init(&srv.watch, (size_t)srv.cfg.watcher_logbuf_size * 1024) < 0) {
        fprintf(stderr, "corecache: out of memory\n");
        return 1;
    }
    ret = boot_setup(&srv, err, sizeof(err));
    if (ret < 0) {
        fprintf(stderr, "%s\n", err);
        return ret == -EADDRINUSE ? EX_OSERR : 1; /* memcached's exit for a port in use */
    }
    /* Descriptors for -c connections and our own: like memcached, take
     * them at start; unlike it, run on with fewer (accepting then pauses
     * when they run out, see io/guard.c) after saying so once. */
    uint64_t nofile_need = guard_nofile_need(&srv), nofile_have = 0;
    if (guard_raise_nofile(nofile_need, &nofile_have) < 0)
        fprintf(stderr,
                "corecache: -c %u needs %llu open files but the limit is %llu: past it, accepting pauses "
                "until connections close (raise `ulimit -n`, LimitNOFILE= in a systemd unit, or lower -c)\n",
                srv.cfg.conn_limit, (unsigned long long)nofile_need, (unsigned long long)nofile_have);
    if (srv.cfg.user != NULL && (getuid() == 0 || geteuid() == 0) &&
        !drop_privileges(srv.cfg.user, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* -d after the listeners are bound (a port in use is still reported
     * here) and before any thread exists (only the forking thread would
     * survive); -P names the process that stays. */
    if (srv.cfg.daemon && proc_daemonize(err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    srv.pid = getpid(); /* `stats` pid: the daemon's, not its parent's */
    if (srv.cfg.pidfile != NULL && srv.cfg.daemon && proc_write_pidfile(srv.cfg.pidfile, err, sizeof(err)) < 0)
        fprintf(stderr, "%s\n", err);
    if (srv.cfg.lock_memory && proc_lock_memory(err, sizeof(err)) < 0)
        fprintf(stderr, "%s\n", err);
    if (srv.cfg.memory_file != NULL && memfile_begin(&srv, err, sizeof(err)) < 0) { /* issue 14 */
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    ret = boot_start(&srv, err, sizeof(err));
    if (ret < 0) {
        fprintf(stderr, "%s\n", err);
        server_stop(&srv);
        boot_join(&srv);
        return 1;
    }
    log_info(&srv, "%s %s: %u shards on %s port %u, %llu MB", handler->name, CORECACHE_VERSION, srv.nshards,
             srv.cfg.listen, srv.cfg.port, (unsigned long long)(srv.cfg.memory_limit >> 20));

    int sig = 0;
    if (srv.cfg.memory_file != NULL) { /* issue 14: what -e reattached, or why not */
        struct memfile *mfs[TOPO_CPUS_MAX];
        for (unsigned i = 0; i < srv.nshards && i < TOPO_CPUS_MAX; i++)
            mfs[i] = srv.shards[i]->memfile;
        memfile_report(&srv, mfs, srv.nshards < TOPO_CPUS_MAX ? srv.nshards : TOPO_CPUS_MAX);
    }
    while (sigwait(&sigs, &sig) != 0 || (sig != SIGTERM && sig != SIGINT && sig != SIGUSR1)) {
        if (sig == SIGHUP) /* memcached rereads -Y's file; we also reload certificates */
            reload_secrets(&srv);
        sig = 0;
    }
    log_info(&srv, "corecache: signal %d: finishing requests in flight and exiting", sig);
    server_stop(&srv);
    unsigned failed = boot_join(&srv);
    memfile_commit(&srv); /* issue 14: -e, once every shard saved */
    boot_teardown(&srv);
    detail_deinit(&srv.detail);
    watch_deinit(&srv.watch);
    if (srv.cfg.pidfile != NULL && srv.cfg.daemon)
        proc_remove_pidfile(srv.cfg.pidfile);
    if (srv.cfg.unix_socket != NULL)
        unlink(srv.cfg.unix_socket);
    return failed == 0 ? 0 : 1;
}
