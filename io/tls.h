/*
 * tls.h: TLS on cache connections, OpenSSL through memory BIOs (the
 * contract; see tls.c).
 *
 * The io_uring byte path stays as it is: TLS is a connection transport
 * (conn.h): a recv completion hands its ciphertext to the transport, which
 * decrypts it and passes the plaintext to conn_input; before a send,
 * conn_flush hands its plaintext iov to the transport and sends the
 * ciphertext it returns instead. So TLS connections keep multishot receive
 * and one batched send per loop iteration, and a plain connection pays one
 * `conn->transport == NULL` branch per completion.
 */
#ifndef CORECACHE_IO_TLS_H
#define CORECACHE_IO_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../core/cfg.h"
#include "../core/sink.h"

struct conn;
struct tls_server; /* the server's context: certificates, settings */

/*
 * Builds the server's TLS context from cfg (-Z and the ssl_* options):
 * loads the certificate chain, key and CA file, sets the verification mode,
 * the minimum version, the ciphers and the session cache, and probes
 * whether the kernel offers kTLS. Returns 0 and *out, or -EINVAL with
 * memcached's message in err. Main thread, before the shards start.
 */
int tls_server_create(struct tls_server **out, const struct cfg *cfg, char *err, size_t errlen);
void tls_server_destroy(struct tls_server **tls);

/*
 * Reloads the certificate chain, key and CA file from the same paths into
 * a new context: new connections use it, open connections keep theirs.
 * On failure the running context stays and err holds memcached's message
 * ("Error loading the certificate chain: <file> : <reason>"). Any thread
 * (the `refresh_certs` command on a shard, SIGHUP on the main thread).
 */
bool tls_server_reload(struct tls_server *tls, char *err, size_t errlen);

/* `refresh_certs [noreply]`: OK, or the reload's error. tls may be NULL
 * (no -Z: memcached's "Error TLS not enabled"). Shard thread. */
bool tls_refresh_command(struct tls_server *tls, bool noreply, struct sink *out);

/* `stats` lines (time_since_server_cert_refresh, ssl_record_layer: "kernel"
 * when kTLS is asked for and available, else "user"; ssl_kernel_tls_available)
 * and `stats settings` lines (memcached's ssl_*). The per-layer connection
 * counts are shard metrics (shard.h).
 * tls NULL: nothing, and "ssl_enabled no" for settings. Any shard thread. */
bool tls_render_stats(const struct tls_server *tls, int64_t now_unix, struct sink *out);
bool tls_render_settings(const struct tls_server *tls, const struct cfg *cfg, struct sink *out);

/* Starts TLS on a new connection (server side of the handshake): the
 * connection's transport (conn.h) becomes TLS. The transport seals
 * plaintext iovs only while less than 64 KiB of ciphertext waits, at most
 * 256 KiB per send, so a client that does not read makes plaintext, not
 * ciphertext, accumulate and the output cap pauses it as a plain one.
 * False on allocation failure: the caller closes the connection. Shard
 * thread. */
bool tls_conn_attach(struct tls_server *tls, struct conn *conn);

#endif
