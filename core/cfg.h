/*
 * cfg.h: the server's options, declared once (the contract; see cfg.c).
 *
 * CFG_OPTIONS is the single table of every option: its struct field, its
 * memcached short flag (0 for long-only options), its long name, its type,
 * its default, a metavariable and its help text. From it come struct cfg,
 * the parser, `-h`, and `stats settings` values. Short flags and long names
 * are memcached 1.6's, with memcached's meanings and defaults, except that
 * the default listen address is 127.0.0.1.
 *
 * Parsing is pure: argv in, struct cfg or an error message out. Nothing
 * here prints or exits; main.c decides.
 */
#ifndef CORECACHE_CORE_CFG_H
#define CORECACHE_CORE_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sink.h"

/*
 * Types:
 *   UINT   unsigned decimal (range-checked per option in cfg.c)
 *   SIZE   bytes with an optional k/m/g suffix (-I 1m)
 *   MEGS   megabytes (-m 64)
 *   DOUBLE decimal fraction
 *   STR    string
 *   FLAG   no argument; sets true
 *   COUNT  no argument; counts repeats (-vv)
 *   EXT    memcached's -o: a comma-separated list of name[=value], each name
 *          another option's long name with '_' for '-' (ssl_key=k.pem,
 *          slab_automove=1)
 *
 * ACTION(field, short, long, TYPE, default, metavar, help)
 */
#define CFG_OPTIONS(ACTION) \
    ACTION(port, 'p', "port", UINT, 11211, "num", "TCP port to listen on")                   \
    ACTION(udp_port, 'U', "udp-port", UINT, 0, "num",                                        \
           "UDP port (accepted; no UDP port is opened: corecache serves TCP only)")          \
    ACTION(listen, 'l', "listen", STR, "127.0.0.1", "addr", "interface to listen on")       \
    ACTION(enable_shutdown, 'A', "enable-shutdown", FLAG, false, NULL,                       \
           "enable the ascii \"shutdown\" command") \
    ACTION(user, 'u', "user", STR, NULL, "user",                                             \
           "assume the identity of <user> after binding (only when run as root)")            \
    ACTION(memory_limit, 'm', "memory-limit", MEGS, 64, "num", "item memory in megabytes")   \
    ACTION(disable_evictions, 'M', "disable-evictions", FLAG, false, NULL,                   \
           "return an error when memory is exhausted instead of evicting")                   \
    ACTION(conn_limit, 'c', "conn-limit", UINT, 1024, "num", "max simultaneous connections") \
    ACTION(verbose, 'v', "verbose", COUNT, 0, NULL,                                          \
           "verbose (print errors/warnings; -vv also prints commands)")                     \
    ACTION(help, 'h', "help", FLAG, false, NULL, "print this help and exit")                 \
    ACTION(version, 'V', "version", FLAG, false, NULL, "print version and exit")             \
    ACTION(describe_metrics, 0, "describe-metrics", FLAG, false, NULL,                       \
           "print every metric (STAT and Prometheus names, type, help) and exit")            \
    ACTION(metrics_port, 0, "metrics-port", UINT, 0, "port",                                 \
           "serve Prometheus metrics (GET /metrics) on this port of the -l addresses; 0: off") \
    ACTION(growth_factor, 'f', "slab-growth-factor", DOUBLE, 1.25, "num",                    \
           "chunk size growth factor") \
    ACTION(slab_min_size, 'n', "slab-min-size", UINT, 48, "bytes",                           \
           "min space used for key+value+flags") \
    ACTION(threads, 't', "threads", UINT, 0, "num",                                          \
           "number of shard threads (default: one per CPU in the affinity mask)")            \
    ACTION(disable_cas, 'C', "disable-cas", FLAG, false, NULL, "disable use of CAS")         \
    ACTION(accept_by_cpu, 0, "accept-by-cpu", FLAG, false, NULL,                            \
           "give each new connection to the shard on the CPU that received it (pair with "  \
           "NIC queue IRQs on the shard CPUs); default: the kernel's hash")                  \
    ACTION(listen_backlog, 'b', "listen-backlog", UINT, 1024, "num",                         \
           "set the backlog queue limit") \
    ACTION(item_size_max, 'I', "max-item-size", SIZE, 1024 * 1024, "num",                    \
           "max item size (default: 1m, min: 1k, max: 1024m)")                              \
    ACTION(protocol, 'B', "protocol", STR, "auto", "name",                                   \
           "protocol: auto (each connection's first byte decides), ascii or binary")        \
    ACTION(default_ttl, 0, "default-ttl", UINT, 0, "seconds",                                \
           "TTL of items stored with exptime 0 (never expire); 0 keeps them forever")        \
    ACTION(max_ttl, 0, "max-ttl", UINT, 0, "seconds",                                        \
           "longest TTL any item gets, \"never\" included; 0 for no limit")                   \
    ACTION(strict_keys, 0, "strict-keys", FLAG, false, NULL,                                 \
           "refuse text-protocol keys holding control bytes (memcached accepts them)")       \
    ACTION(conn_memory, 0, "conn-memory", MEGS, 512, "num",                                   \
           "megabytes for requests being received, all connections together; past it a "      \
           "request gets SERVER_ERROR out of memory reading request; 0: no limit")            \
    ACTION(metrics_idle_timeout, 0, "metrics-idle-timeout", UINT, 30, "seconds",             \
           "close a metrics-endpoint connection idle this long")                              \
    ACTION(recv_buffers, 0, "recv-buffers", UINT, 32, "num",                                 \
           "16 KiB receive buffers per shard, shared by its connections (a power of two)")    \
    ACTION(uring_cq_entries, 0, "uring-cq-entries", UINT, 4096, "num",                       \
           "io_uring completion queue entries per shard (a power of two)") \
    ACTION(io_backend, 0, "io-backend", STR, "auto", "name",                                 \
           "I/O backend: auto (io_uring, else epoll where io_uring is refused), io_uring, epoll") \
    CFG_SECURITY_OPTIONS(ACTION)                                                             \
    CFG_MEMCACHED_OPTIONS(ACTION)

/*
 * TLS and authentication (io/tls.c, io/login.c; README "Security"). The
 * ssl-* options are memcached's -o suboptions: `-o ssl_chain_cert=F,ssl_key=K`
 * sets them (an -o name maps onto the long name with '_' read as '-'), and
 * so does `--ssl-chain-cert=F`.
 */
#define CFG_SECURITY_OPTIONS(ACTION) \
    ACTION(extended, 'o', "extended", EXT, NULL, "list",                                     \
           "comma separated list of extended options: the ssl_* and -o names below") \
    ACTION(enable_ssl, 'Z', "enable-ssl", FLAG, false, NULL,                                 \
           "enable TLS on every -l listener (a 'notls:' prefix exempts one: -l notls:127.0.0.1:11212)") \
    ACTION(ssl_chain_cert, 0, "ssl-chain-cert", STR, NULL, "file",                           \
           "-o ssl_chain_cert: certificate chain file in PEM format")                        \
    ACTION(ssl_key, 0, "ssl-key", STR, NULL, "file",                                         \
           "-o ssl_key: private key in PEM format, if not part of the chain file")           \
    ACTION(ssl_keyformat, 0, "ssl-keyformat", UINT, 1, "num",                                \
           "-o ssl_keyformat: private key format: 1 PEM, 2 DER (OpenSSL's SSL_FILETYPE_*)")  \
    ACTION(ssl_verify_mode, 0, "ssl-verify-mode", UINT, 0, "num",                            \
           "-o ssl_verify_mode: client certificates: 0 none, 1 request, 2 require, 3 once")  \
    ACTION(ssl_ca_cert, 0, "ssl-ca-cert", STR, NULL, "file",                                 \
           "-o ssl_ca_cert: PEM file of the CAs client certificates must chain to")          \
    ACTION(ssl_ciphers, 0, "ssl-ciphers", STR, NULL, "list",                                 \
           "-o ssl_ciphers: OpenSSL cipher list for TLS 1.2 and below")                      \
    ACTION(ssl_min_version, 0, "ssl-min-version", UINT, 2, "num",                            \
           "-o ssl_min_version: 0 tlsv1.0, 1 tlsv1.1, 2 tlsv1.2, 3 tlsv1.3")                 \
    ACTION(ssl_wbuf_size, 0, "ssl-wbuf-size", UINT, 16, "kbytes",                            \
           "-o ssl_wbuf_size: accepted for memcached's sake; records are always up to 16 KiB") \
    ACTION(ssl_session_cache, 0, "ssl-session-cache", FLAG, false, NULL,                     \
           "-o ssl_session_cache: server-side session cache, for session resumption")        \
    ACTION(ssl_kernel_tls, 0, "ssl-kernel-tls", FLAG, false, NULL,                           \
           "-o ssl_kernel_tls: ask for kernel TLS (reported in stats; see README)")          \
    ACTION(auth_file, 'Y', "auth-file", STR, NULL, "file",                                   \
           "enable ASCII protocol authentication; the file holds user:password lines")      \
    ACTION(enable_sasl, 'S', "enable-sasl", FLAG, false, NULL,                               \
           "turn on SASL PLAIN authentication (binary protocol; users from --sasl-pwdb)")    \
    ACTION(sasl_pwdb, 0, "sasl-pwdb", STR, NULL, "file",                                     \
           "user:password file for -S (default: $MEMCACHED_SASL_PWDB)")                      \
    ACTION(metrics_listen, 0, "metrics-listen", STR, NULL, "addr",                           \
           "addresses of the metrics endpoint, instead of the -l ones (e.g. 127.0.0.1)")     \
    ACTION(metrics_auth_file, 0, "metrics-auth-file", STR, NULL, "file",                     \
           "require HTTP basic auth on the metrics endpoint; user:password lines")

/*
 * The rest of memcached 1.6.18's command line (issue 12), so that a unit
 * file written for memcached starts corecache unchanged. Long-only rows are
 * memcached's -o suboptions: `-o slab_reassign,hashpower=20` sets them (an
 * -o name is the long name with '_' for '-'), and so does --hashpower=20.
 * Options whose mechanism corecache lacks are accepted and named once at
 * start-up with the reason (CFG_INERT in cfg.c); their values are still
 * checked as memcached checks them.
 */
#define CFG_MEMCACHED_OPTIONS(ACTION)                                                          \
    ACTION(unix_socket, 's', "unix-socket", STR, NULL, "file",                               \
           "UNIX socket to listen on (replaces the TCP listeners)")                         \
    ACTION(unix_mask, 'a', "unix-mask", STR, "700", "mask",                                  \
           "access mask for the UNIX socket, in octal")                                      \
    ACTION(daemon, 'd', "daemon", FLAG, false, NULL, "run as a daemon")                      \
    ACTION(enable_coredumps, 'r', "enable-coredumps", FLAG, false, NULL,                     \
           "maximize core file limit")                                                       \
    ACTION(lock_memory, 'k', "lock-memory", FLAG, false, NULL, "lock down all paged memory") \
    ACTION(license, 'i', "license", FLAG, false, NULL, "print the license and exit")         \
    ACTION(pidfile, 'P', "pidfile", STR, NULL, "file",                                       \
           "save PID in <file>, only used with -d option")                                   \
    ACTION(enable_largepages, 'L', "enable-largepages", FLAG, false, NULL,                   \
           "try to use large memory pages (if available)")                                   \
    ACTION(prefix_delimiter, 'D', "prefix-delimiter", STR, NULL, "char",                     \
           "delimiter between key prefixes and IDs, for per-prefix stats")                   \
    ACTION(reqs_per_event, 'R', "max-reqs-per-event", UINT, 0, "num",                        \
           "maximum number of requests per event (default: no cap; memcached's is 20)")      \
    ACTION(disable_flush_all, 'F', "disable-flush-all", FLAG, false, NULL,                   \
           "disable flush_all command")                                                      \
    ACTION(disable_dumping, 'X', "disable-dumping", FLAG, false, NULL,                       \
           "disable stats cachedump and lru_crawler metadump")                               \
    ACTION(disable_watch, 'W', "disable-watch", FLAG, false, NULL,                           \
           "disable watch commands (live logging)")                                          \
    ACTION(memory_file, 'e', "memory-file", STR, NULL, "file",                               \
           "mmap a file for item memory (restartable cache)")                                \
    ACTION(napi_ids, 'N', "napi-ids", UINT, 0, "num", "number of napi ids")                  \
    ACTION(maxconns_fast, 0, "maxconns-fast", FLAG, false, NULL,                            \
           "-o maxconns_fast: immediately close new connections after limit")                \
    ACTION(no_maxconns_fast, 0, "no-maxconns-fast", FLAG, false, NULL,                      \
           "-o no_maxconns_fast")                                                            \
    ACTION(hashpower, 0, "hashpower", UINT, 0, "num",                                        \
           "-o hashpower: initial hash table size, as a power of two (12..32)")              \
    ACTION(no_hashexpand, 0, "no-hashexpand", FLAG, false, NULL,                            \
           "-o no_hashexpand: disables hash table expansion")                                \
    ACTION(slab_reassign, 0, "slab-reassign", FLAG, false, NULL,                            \
           "-o slab_reassign: allow slab pages to move between classes")                    \
    ACTION(no_slab_reassign, 0, "no-slab-reassign", FLAG, false, NULL, "-o no_slab_reassign") \
    ACTION(slab_automove, 0, "slab-automove", UINT, 1, "num",                                \
           "-o slab_automove[=0|1|2]: automatic slab page moves")                           \
    ACTION(no_slab_automove, 0, "no-slab-automove", FLAG, false, NULL, "-o no_slab_automove") \
    ACTION(slab_automove_ratio, 0, "slab-automove-ratio", DOUBLE, 0.8, "num",                \
           "-o slab_automove_ratio")                                                         \
    ACTION(slab_automove_window, 0, "slab-automove-window", UINT, 30, "num",                 \
           "-o slab_automove_window")                                                        \
    ACTION(tail_repair_time, 0, "tail-repair-time", UINT, 0, "seconds",                      \
           "-o tail_repair_time: seconds before forcefully killing the LRU tail item")       \
    ACTION(hash_algorithm, 0, "hash-algorithm", STR, "murmur3", "name",                      \
           "-o hash_algorithm: jenkins, murmur3 or xxh3")                                    \
    ACTION(lru_crawler, 0, "lru-crawler", FLAG, false, NULL,                                \
           "-o lru_crawler: LRU crawler background thread")                                  \
    ACTION(no_lru_crawler, 0, "no-lru-crawler", FLAG, false, NULL, "-o no_lru_crawler")     \
    ACTION(lru_crawler_sleep, 0, "lru-crawler-sleep", UINT, 100, "usec",                     \
           "-o lru_crawler_sleep: microseconds to sleep between items")                      \
    ACTION(lru_crawler_tocrawl, 0, "lru-crawler-tocrawl", UINT, 0, "num",                    \
           "-o lru_crawler_tocrawl: max items to crawl per slab per run")                    \
    ACTION(lru_maintainer, 0, "lru-maintainer", FLAG, false, NULL,                          \
           "-o lru_maintainer: segmented LRU and its background thread")                     \
    ACTION(no_lru_maintainer, 0, "no-lru-maintainer", FLAG, false, NULL,                    \
           "-o no_lru_maintainer")                                                           \
    ACTION(hot_lru_pct, 0, "hot-lru-pct", UINT, 20, "pct", "-o hot_lru_pct")                 \
    ACTION(warm_lru_pct, 0, "warm-lru-pct", UINT, 40, "pct", "-o warm_lru_pct")              \
    ACTION(hot_max_factor, 0, "hot-max-factor", DOUBLE, 0.2, "num", "-o hot_max_factor")     \
    ACTION(warm_max_factor, 0, "warm-max-factor", DOUBLE, 2.0, "num", "-o warm_max_factor")  \
    ACTION(temporary_ttl, 0, "temporary-ttl", UINT, 61, "seconds", "-o temporary_ttl")       \
    ACTION(idle_timeout, 0, "idle-timeout", UINT, 0, "seconds",                              \
           "-o idle_timeout: timeout for idle connections (0: none)")                        \
    ACTION(watcher_logbuf_size, 0, "watcher-logbuf-size", UINT, 256, "kbytes",               \
           "-o watcher_logbuf_size: per-watcher write buffer")                              \
    ACTION(worker_logbuf_size, 0, "worker-logbuf-size", UINT, 64, "kbytes",                  \
           "-o worker_logbuf_size: per-worker-thread log buffer")                           \
    ACTION(slab_sizes, 0, "slab-sizes", STR, NULL, "list", "-o slab_sizes: chunk sizes")     \
    ACTION(slab_chunk_max, 0, "slab-chunk-max", UINT, 524288, "bytes",                       \
           "-o slab_chunk_max: maximum slab chunk size")                                     \
    ACTION(track_sizes, 0, "track-sizes", FLAG, false, NULL,                                \
           "-o track_sizes: enable dynamic reports for 'stats sizes'")                       \
    ACTION(no_inline_ascii_resp, 0, "no-inline-ascii-resp", FLAG, false, NULL,              \
           "-o no_inline_ascii_resp")                                                        \
    ACTION(inline_ascii_resp, 0, "inline-ascii-resp", FLAG, false, NULL,                    \
           "-o inline_ascii_resp")                                                           \
    ACTION(modern, 0, "modern", FLAG, false, NULL,                                           \
           "-o modern: options which will be default in future")                             \
    ACTION(no_modern, 0, "no-modern", FLAG, false, NULL,                                    \
           "-o no_modern: defaults of the previous major version (1.4.x)")                   \
    ACTION(no_chunked_items, 0, "no-chunked-items", FLAG, false, NULL,                      \
           "-o no_chunked_items")                                                            \
    ACTION(drop_privileges, 0, "drop-privileges", FLAG, false, NULL, "-o drop_privileges")  \
    ACTION(no_drop_privileges, 0, "no-drop-privileges", FLAG, false, NULL,                  \
           "-o no_drop_privileges")                                                          \
    ACTION(relaxed_privileges, 0, "relaxed-privileges", FLAG, false, NULL,                  \
           "-o relaxed_privileges (memcached's test suite passes it)")                      \
    ACTION(resp_obj_mem_limit, 0, "resp-obj-mem-limit", UINT, 0, "megabytes",                \
           "-o resp_obj_mem_limit")                                                          \
    ACTION(read_buf_mem_limit, 0, "read-buf-mem-limit", UINT, 0, "megabytes",                \
           "-o read_buf_mem_limit: limit for connection read/response buffers (0: none)")

/* The parsed options: one field per table row, typed by its TYPE. MEGS and
 * SIZE fields hold bytes. */
#define CFG_CTYPE_UINT uint32_t
#define CFG_CTYPE_SIZE uint64_t
#define CFG_CTYPE_MEGS uint64_t
#define CFG_CTYPE_DOUBLE double
#define CFG_CTYPE_STR const char *
#define CFG_CTYPE_FLAG bool
#define CFG_CTYPE_COUNT uint32_t
#define CFG_CTYPE_EXT const char *
#define CFG_FIELD(field, short_flag, long_name, type, def, metavar, help) CFG_CTYPE_##type field;
/* Room for the values of -o suboptions: a value inside a list has no NUL
 * of its own in argv, so cfg_parse copies it here (argv stays untouched,
 * nothing is allocated). */
#define CFG_EXT_BUF_SIZE 4096
struct cfg {
    CFG_OPTIONS(CFG_FIELD)
    char ext_buf[CFG_EXT_BUF_SIZE];
    size_t ext_used;
};

/* Fills cfg with every option's default. */
void cfg_defaults(struct cfg *cfg);

/*
 * Parses argv[1..argc) into cfg (which cfg_defaults() set up). Returns true
 * on success. On an unknown option, a missing or invalid argument, or a value
 * out of range it returns false and writes one line to err saying what was
 * wrong with the value and what to do, e.g.
 *   "corecache: -m 0: memory limit must be at least 1 (megabytes)\n".
 * Short flags may be bundled (-vv, -vA) and take their argument attached or
 * separate (-p11211, -p 11211); long options take --name=value or
 * --name value. argv is not modified.
 */
bool cfg_parse(struct cfg *cfg, int argc, char *const argv[], struct sink *err);

/*
 * Writes one line per option given on this command line that has no effect
 * in corecache, with the reason ("corecache: -o slab_reassign: no effect:
 * ...\n"), and one for a nonzero -U. main prints them once at start-up.
 * Returns false if the sink is full.
 */
bool cfg_render_inert(const struct cfg *cfg, struct sink *out);

/* Writes the -h text: a usage line and one line per option from the table. */
bool cfg_usage(struct sink *out);

/*
 * Appends memcached's `stats settings` lines for the options memcached
 * reports, under memcached's names and in its order ("STAT maxbytes
 * 67108864\r\n", "STAT tcpport 11211\r\n", "STAT evictions on\r\n", ...).
 * Pass the cfg the server runs with, threads resolved to the shard count.
 * Returns false if the sink is full. Any thread; cfg is only read.
 */
bool cfg_render_settings(const struct cfg *cfg, struct sink *out);

#endif
