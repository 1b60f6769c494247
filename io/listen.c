/*
 * listen.c: listening sockets, one per shard per address (see listen.h).
 *
 * Each socket has SO_REUSEADDR (restarts do not wait for TIME_WAIT),
 * SO_REUSEPORT (several shards on one address) and TCP_NODELAY, which
 * accepted sockets inherit: replies are written whole, once per loop
 * iteration, so Nagle's algorithm could only delay them.
 *
 * SO_REUSEPORT would also let a second server join the group of one already
 * running on the port and silently take half of its new connections (a key
 * set through one then misses through the other). So before opening an
 * address's group, a probe socket without SO_REUSEPORT binds it: if
 * anything listens there, the bind fails with EADDRINUSE and we refuse to
 * start, as memcached does ("failed to listen on TCP port N: Address
 * already in use", exit 71). The probe has SO_REUSEADDR, so connections in
 * TIME_WAIT from a previous run do not stop a restart. Two servers started
 * in the same instant may both pass their probes; that window is the time
 * between a probe and its group's first bind.
 *
 * The kernel picks a group member for each new connection by a hash of its
 * addresses, which spreads them evenly but ignores where the packets arrive.
 * On a host whose NIC queues each interrupt one shard's CPU (see
 * deploy/corecache-tune.sh), listen_steer_by_cpu makes the pick the CPU
 * that took the SYN instead, so a flow's interrupts, its protocol
 * processing and the shard that serves it share one core and its cache.
 * The program is the one of the kernel's own selftest
 * (tools/testing/selftests/net/reuseport_bpf_cpu.c), with a table for
 * shards that are not on CPUs 0..n-1.
 */
#include "listen.h"

#include <errno.h>
#include <linux/filter.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Splits "host", "host:port", "[v6]:port" or "v6" into host and port. */
static bool split_addr(const char *item, size_t len, uint32_t default_port, char *host,
                       size_t hostlen, char *port, size_t portlen)
{
    const char *colon = NULL;
    if (len > 0 && item[0] == '[') {
        const char *close = memchr(item, ']', len);
        if (close == NULL)
            return false;
        size_t hlen = (size_t)(close - item - 1);
        if (hlen + 1 > hostlen)
            return false;
        memcpy(host, item + 1, hlen);
        host[hlen] = '\0';
        if ((size_t)(close - item) + 1 < len) {
            if (close[1] != ':')
                return false;
            colon = close + 1;
        }
    } else {
        const char *first = memchr(item, ':', len);
        /* Exactly one colon: host:port. More: a bare IPv6 literal. */
        if (first != NULL && memchr(first + 1, ':', len - (size_t)(first - item) - 1) == NULL)
            colon = first;
        size_t hlen = colon != NULL ? (size_t)(colon - item) : len;
        if (hlen + 1 > hostlen)
            return false;
        memcpy(host, item, hlen);
        host[hlen] = '\0';
    }
    if (colon != NULL) {
        size_t plen = len - (size_t)(colon + 1 - item);
        if (plen == 0 || plen + 1 > portlen)
            return false;
        memcpy(port, colon + 1, plen);
        port[plen] = '\0';
    } else {
        snprintf(port, portlen, "%u", default_port);
    }
    return true;
}

static int open_one(const struct addrinfo *ai, uint32_t backlog)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        goto fail;
    if (ai->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
        goto fail;
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        goto fail;
    if (listen(fd, (int)backlog) != 0)
        goto fail;
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

/* 0 if nothing listens on ai's address, else -errno of a plain bind. */
static int probe_free(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int one = 1;
    int ret = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (ai->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        ret = -errno;
    close(fd);
    return ret;
}

static int open_spec(const char *spec, uint32_t port, bool force_port, uint32_t backlog,
                     unsigned count, int *fds, unsigned *naddrs, char *err, size_t errlen)
{
    unsigned n = 0;
    int ret = 0;
    const char *item = spec;
    for (;;) {
        const char *comma = strchr(item, ',');
        size_t len = comma != NULL ? (size_t)(comma - item) : strlen(item);
        char host[256], portstr[16];
        if (n == LISTEN_ADDRS_MAX) {
            snprintf(err, errlen, "corecache: -l %s: at most %d addresses", spec, LISTEN_ADDRS_MAX);
            ret = -EINVAL;
            goto fail;
        }
        if (len >= LISTEN_NOTLS_LEN && memcmp(item, LISTEN_NOTLS, LISTEN_NOTLS_LEN) == 0) {
            item += LISTEN_NOTLS_LEN; /* memcached's per-listener TLS opt-out (listen_notls) */
            len -= LISTEN_NOTLS_LEN;
        }
        if (!split_addr(item, len, port, host, sizeof(host), portstr, sizeof(portstr))) {
            snprintf(err, errlen, "corecache: -l %.*s: not an address (use host, host:port or [ipv6]:port)",
                     (int)len, item);
            ret = -EINVAL;
            goto fail;
        }
        if (force_port)
            snprintf(portstr, sizeof(portstr), "%u", port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
        if (gai != 0) {
            snprintf(err, errlen, "corecache: -l %s: cannot resolve: %s", host, gai_strerror(gai));
            ret = -EINVAL;
            goto fail;
        }
        int busy = probe_free(res);
        if (busy == -EADDRINUSE) {
            snprintf(err, errlen, "corecache: failed to listen on TCP port %s: %s (is another server "
                     "running there?)", portstr, strerror(EADDRINUSE));
            freeaddrinfo(res);
            ret = busy;
            goto fail;
        }
        for (unsigned i = 0; i < count; i++) {
            int fd = open_one(res, backlog);
            if (fd < 0) {
                snprintf(err, errlen, "corecache: cannot listen on %s port %s: %s%s", host, portstr,
                         strerror(-fd), fd == -EADDRINUSE ? " (is another server running there?)" : "");
                freeaddrinfo(res);
                ret = fd;
                for (unsigned j = 0; j < i; j++)
                    close(fds[n * count + j]);
                goto fail;
            }
            fds[n * count + i] = fd;
        }
        freeaddrinfo(res);
        n++;
        if (comma == NULL)
            break;
        item = comma + 1;
    }
    *naddrs = n;
    return 0;
fail:
    for (unsigned a = 0; a < n; a++) {
        for (unsigned i = 0; i < count; i++)
            close(fds[a * count + i]);
    }
    return ret;
}

bool listen_notls(const char *spec, unsigned index)
{
    const char *item = spec;
    for (unsigned i = 0; i < index && item != NULL; i++) {
        item = strchr(item, ',');
        if (item != NULL)
            item++;
    }
    return item != NULL && strncmp(item, LISTEN_NOTLS, LISTEN_NOTLS_LEN) == 0;
}

int listen_open(const char *spec, uint32_t port, uint32_t backlog, unsigned count, int *fds,
                unsigned *naddrs, char *err, size_t errlen)
{
    return open_spec(spec, port, false, backlog, count, fds, naddrs, err, errlen);
}

int listen_open_on_port(const char *spec, uint32_t port, uint32_t backlog, unsigned count, int *fds,
                        unsigned *naddrs, char *err, size_t errlen)
{
    return open_spec(spec, port, true, backlog, count, fds, naddrs, err, errlen);
}

int listen_steer_by_cpu(int fd, const unsigned *cpus, unsigned count)
{
    if (count == 0 || count > (BPF_MAXINSNS - 2) / 2)
        return -EINVAL;
    struct sock_filter *code = calloc(2 * (size_t)count + 2, sizeof(*code));
    if (code == NULL)
        return -ENOMEM;
    unsigned n = 0;
    /* A = the CPU running the program: the one processing the SYN */
    code[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_CPU));
    for (unsigned i = 0; i < count; i++) {
        code[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, cpus[i], 0, 1);
        code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, i);
    }
    /* no shard there: an index past the group, and the kernel hashes */
    code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, count);
    struct sock_fprog prog = {.len = (unsigned short)n, .filter = code};
    int ret = setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) == 0 ? 0 : -errno;
    free(code);
    return ret;
}

int listen_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}
