/*
 * tls.h: TLS on cache connections, OpenSSL through memory BIOs (the
 * contract; see tls.c).
 *
 * The io_uring byte path stays as it is: a recv completion hands its
 * ciphertext to tls_on_recv, which decrypts it and passes the plaintext to
 * conn_input; before a send, conn_flush hands its plaintext iov to tls_seal
 * and sends the ciphertext iov from tls_out_iov instead. So TLS connections
 * keep multishot receive and one batched send per loop iteration, and a
 * plain connection pays one `conn->tls == NULL` branch per completion.
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
struct tls_conn;   /* one connection's TLS state */

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

/* `stats` lines (time_since_server_cert_refresh, ssl_record_layer,
 * ssl_kernel_tls_available) and `stats settings` lines (memcached's ssl_*).
 * tls NULL: nothing, and "ssl_enabled no" for settings. Any shard thread. */
bool tls_render_stats(const struct tls_server *tls, int64_t now_unix, struct sink *out);
bool tls_render_settings(const struct tls_server *tls, const struct cfg *cfg, struct sink *out);

/* Starts TLS on a new connection (server side of the handshake). False on
 * allocation failure: the caller closes the connection. Shard thread. */
bool tls_conn_attach(struct tls_server *tls, struct conn *conn);
void tls_conn_destroy(struct tls_conn **t);

/* Ciphertext received: runs the handshake, decrypts, calls conn_input with
 * the plaintext. May close the connection. Shard thread. */
void tls_on_recv(struct conn *conn, const char *data, size_t len);

/*
 * Seals plaintext conn->iov[0..n) into TLS records (when little ciphertext
 * is waiting) and collects every record the engine has to send (handshake
 * included). *sealed: the plaintext bytes taken (a prefix of the iov).
 * False on a TLS error. Only while no send of this connection is in flight.
 */
bool tls_seal(struct conn *conn, unsigned n, size_t *sealed);
/* The ciphertext to send: 0 or 1 iov. It stays valid until tls_on_sent. */
unsigned tls_out_iov(struct tls_conn *t, struct iovec *iov);
/* `bytes` of ciphertext went out. */
void tls_on_sent(struct tls_conn *t, size_t bytes);

#endif
