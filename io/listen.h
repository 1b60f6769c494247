/*
 * listen.h: the server's listening sockets (the contract; see listen.c).
 *
 * memcached's -l takes a comma-separated list of addresses, each a host
 * name, an IPv4 or IPv6 literal ("[::1]" allowed), optionally with ":port"
 * (else -p). Every shard gets its own socket for every address, bound with
 * SO_REUSEPORT, so the kernel spreads incoming connections over the shards
 * and no shard accepts for another.
 */
#ifndef CORECACHE_IO_LISTEN_H
#define CORECACHE_IO_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LISTEN_ADDRS_MAX 8

/* An address may start with memcached's "notls:": that listener stays
 * plain under -Z (listen_notls). */
#define LISTEN_NOTLS "notls:"
#define LISTEN_NOTLS_LEN 6

/* Whether the index-th address of spec has the notls: prefix. */
bool listen_notls(const char *spec, unsigned index);

/*
 * Opens `count` sockets for each address of `spec`, listening with
 * `backlog`. On success fills fds[addr * count + i] (addr < *naddrs) and
 * returns 0; on failure closes what it opened, writes a one-line reason
 * into err and returns -errno.
 */
int listen_open(const char *spec, uint32_t port, uint32_t backlog, unsigned count, int *fds,
                unsigned *naddrs, char *err, size_t errlen);

/* Like listen_open, with every address of spec on `port`, whatever port
 * an address names (the metrics endpoint listens on -l's hosts). */
int listen_open_on_port(const char *spec, uint32_t port, uint32_t backlog, unsigned count, int *fds,
                        unsigned *naddrs, char *err, size_t errlen);

/*
 * Steers the connections of fd's SO_REUSEPORT group by the CPU that received
 * them (--accept-by-cpu): a connection whose SYN the kernel processed on
 * cpus[i] goes to the group's i-th socket, i.e. to shard i when the shards
 * opened their sockets in order (listen_open does). On a CPU no shard runs
 * on, the kernel's hash decides as without it. The kernel runs a classic BPF
 * program (SO_ATTACH_REUSEPORT_CBPF) for each SYN. Returns 0 or -errno.
 */
int listen_steer_by_cpu(int fd, const unsigned *cpus, unsigned count);

/* The port a listening socket is bound to (for `stats settings`). */
int listen_port(int fd);

#endif
