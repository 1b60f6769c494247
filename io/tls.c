/*
 * tls.c: TLS for cache connections with OpenSSL 3, driven through a BIO
 * of our own over memory so that the io_uring runtime keeps doing all the
 * socket I/O. It is a connection transport (conn.h): conn.c calls it on
 * recv, before a send and after one.
 *
 *   recv CQE (provided buffer) --in place--> BIO read --SSL_read-->
 *        plaintext --> conn_input (parse, execute, replies into the output)
 *   output chain --gathered into 16 KiB--> SSL_write --> BIO write (appends
 *        to wbuf) --swap--> cbuf --> one send SQE
 *
 * Why a memory BIO and not SSL_set_fd: the socket belongs to the ring (a
 * multishot recv is armed on it at all times), and SSL_read/SSL_write on
 * the fd would each be a syscall of their own. Replies are many small
 * iov entries (a header, an item's value sent in place, "END"), so they are
 * gathered into full records before SSL_write: one record per send rather
 * than one per entry, each record costing a header, a tag and a cipher
 * call. This file is in io/, not
 * core/, because it owns per-connection buffers tied to the ring's
 * lifetime rules and reads the clock and files; the OpenSSL calls
 * themselves make no syscalls here (the BIO is memory).
 *
 * Where the per-request cost goes (bench/profile.sh with TLS=1, p16): the
 * cipher itself and OpenSSL's per-record work (one record each way per
 * pipelined batch); what is ours is kept to the copies OpenSSL's API needs.
 * The BIO reads the receive buffer in place (OpenSSL copies it once into its
 * record buffer; a memory BIO would copy it before that and zero what it
 * grows), SSL_read is not called again once nothing is left (no "want read"
 * call per receive), and replies are gathered once, into whole records.
 *
 * Ciphertext buffers. The BIO's write side (out_bio_write) appends
 * OpenSSL's records straight to the connection's wbuf, with none of a
 * memory BIO's zeroing and second copy. A send in flight reads from the
 * other buffer, cbuf, which therefore must not move; tls_seal swaps the two
 * only when cbuf is all sent and no send is in flight (it runs from
 * conn_flush). Records written by the handshake or SSL_read meanwhile
 * (alerts, session tickets) wait in wbuf until then.
 * Sealing stops at TLS_SEAL_MAX plaintext bytes per send, so a client
 * that does not read makes the plaintext, not the ciphertext, accumulate,
 * and the connection's output cap (conn.c) pauses it as a plain one.
 *
 * Contexts. The server holds one SSL_CTX, shared by the shards (SSL_new
 * on a shared SSL_CTX is thread-safe). A reload builds a new context and
 * swaps it in under a mutex taken only at accept and reload, never per
 * request; each SSL holds a reference to the context it was made from, so
 * the old one is freed when its last connection ends.
 *
 * Kernel TLS. With TCP_ULP "tls" the kernel could take over the record
 * layer after the handshake. The server probes for it at start (a loopback
 * socket pair and setsockopt(TCP_ULP)) and reports the outcome in `stats`
 * (ssl_kernel_tls_available); the record layer used is always this
 * user-space one (ssl_record_layer user): handing keys to the kernel
 * under memory BIOs is not implemented, and the kernels of this project's
 * machines have no kTLS to test it on.
 */
#include "tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../core/metrics.h"
#include "conn.h"
#include "log.h"
#include "shard.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/* Seal more plaintext only while less ciphertext than this waits. */
#define TLS_SEAL_LOW (64 * 1024) /* of wbuf */
/* Most plaintext sealed for one send. */
#define TLS_SEAL_MAX (256 * 1024)
/* The most plaintext one TLS record carries. */
#define TLS_RECORD_MAX 16384
/* A cbuf larger than this is freed once empty. */
#define TLS_CBUF_KEEP (64 * 1024)
/* memcached's session id context. */
#define TLS_SESSION_ID_CONTEXT "memcached"

struct tls_server {
    const struct cfg *cfg;
    BIO_METHOD *bio_method; /* the ciphertext BIO of every connection */
    pthread_mutex_t lock; /* guards ctx (accept and reload only) */
    SSL_CTX *ctx;
    atomic_int_fast64_t refreshed_unix; /* last successful (re)load */
    int verify_mode;                    /* SSL_VERIFY_* from ssl_verify_mode */
    int min_version;                    /* TLS1_x_VERSION from ssl_min_version */
    bool ktls_available;
};

struct tls_conn {
    SSL *ssl;
    BIO *bio; /* ciphertext in and out (ours, owned by ssl) */
    /* What OpenSSL has yet to read of the receive buffer being handled:
     * set by tls_on_recv, empty again before it returns (the provided
     * buffer goes back to the kernel then). */
    const char *in;
    size_t inlen;
    bool handshaken;
    char *cbuf; /* ciphertext being sent */
    size_t coff, clen, ccap;
    char *wbuf; /* ciphertext written by OpenSSL, not yet handed to a send */
    size_t wlen, wcap;
    bool wfail; /* wbuf could not grow */
};

/* The BIO's read side: hands OpenSSL the ciphertext of the receive
 * buffer in place (a memory BIO would copy it first and zero what it
 * grows), and "retry" once it is all taken. */
static int in_bio_read(BIO *bio, char *out, int outl)
{
    struct tls_conn *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (t->inlen == 0) {
        BIO_set_retry_read(bio);
        return -1;
    }
    if (outl <= 0)
        return 0;
    size_t n = (size_t)outl < t->inlen ? (size_t)outl : t->inlen;
    memcpy(out, t->in, n);
    t->in += n;
    t->inlen -= n;
    return (int)n;
}

/* The BIO's write side: appends to the connection's wbuf. */
static int out_bio_write(BIO *bio, const char *data, int len)
{
    struct tls_conn *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (len <= 0)
        return 0;
    if (t->wlen + (size_t)len > t->wcap) {
        size_t cap = t->wcap ? t->wcap : 16384 + 1024;
        while (cap < t->wlen + (size_t)len)
            cap *= 2;
        char *wbuf = realloc(t->wbuf, cap);
        if (wbuf == NULL) {
            t->wfail = true;
            return -1;
        }
        t->wbuf = wbuf;
        t->wcap = cap;
    }
    memcpy(t->wbuf + t->wlen, data, (size_t)len);
    t->wlen += (size_t)len;
    return len;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING: {
        const struct tls_conn *t = BIO_get_data(bio);
        return t != NULL ? (long)t->inlen : 0;
    }
    default:
        return 0;
    }
}

static int bio_create(BIO *bio)
{
    BIO_set_init(bio, 1);
    return 1;
}

static const int verify_modes[4] = {
    SSL_VERIFY_NONE,
    SSL_VERIFY_PEER,
    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE,
};

static const int min_versions[4] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION};

static const char *version_text(int version)
{
    switch (version) {
    case TLS1_VERSION: return "tlsv1.0";
    case TLS1_1_VERSION: return "tlsv1.1";
    case TLS1_2_VERSION: return "tlsv1.2";
    case TLS1_3_VERSION: return "tlsv1.3";
    default: return "unknown";
    }
}

static int64_t now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

/* The first queued OpenSSL error as text; clears the queue. */
static void ssl_error_text(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (e != 0)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "unknown error");
    ERR_clear_error();
}

/* Counts sessions the server created (memcached's ssl_new_sessions); the
 * callback runs inside SSL_read/SSL_do_handshake on the connection's shard. */
static int on_new_session(SSL *ssl, SSL_SESSION *session)
{
    (void)session;
    struct conn *conn = SSL_get_app_data(ssl);
    if (conn != NULL)
        conn->shard->m.ssl_new_sessions++;
    return 0; /* we keep no reference to the session */
}

/* A context with the certificates of cfg, or NULL and memcached's message. */
static SSL_CTX *build_ctx(const struct tls_server *tls, char *err, size_t errlen)
{
    const struct cfg *cfg = tls->cfg;
    char reason[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_error_text(reason, sizeof(reason));
        snprintf(err, errlen, "Error creating the TLS context: %s", reason);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, tls->min_version);
    const char *key = cfg->ssl_key != NULL ? cfg->ssl_key : cfg->ssl_chain_cert;
    if (!SSL_CTX_use_certificate_chain_file(ctx, cfg->ssl_chain_cert)) {
        ssl_error_text(reason, sizeof(reason));
        snprintf(err, errlen, "Error loading the certificate chain: %s : %s", cfg->ssl_chain_cert, reason);
        goto fail;
    }
    if (!SSL_CTX_use_PrivateKey_file(ctx, key, cfg->ssl_keyformat == 2 ? SSL_FILETYPE_ASN1 : SSL_FILETYPE_PEM)) {
        ssl_error_text(reason, sizeof(reason));
        snprintf(err, errlen, "Error loading the key: %s : %s", key, reason);
        goto fail;
    }
    if (!SSL_CTX_check_private_key(ctx)) {
        ssl_error_text(reason, sizeof(reason));
        snprintf(err, errlen, "Error validating the certificate: %s", reason);
        goto fail;
    }
    if (cfg->ssl_ca_cert != NULL) {
        if (!SSL_CTX_load_verify_locations(ctx, cfg->ssl_ca_cert, NULL)) {
            ssl_error_text(reason, sizeof(reason));
            snprintf(err, errlen, "Error loading the CA certificate: %s : %s", cfg->ssl_ca_cert, reason);
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ssl_ca_cert);
        if (names != NULL)
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    SSL_CTX_set_verify(ctx, tls->verify_mode, NULL);
    if (cfg->ssl_ciphers != NULL && !SSL_CTX_set_cipher_list(ctx, cfg->ssl_ciphers)) {
        snprintf(err, errlen, "Error setting the provided cipher(s): %s", cfg->ssl_ciphers);
        goto fail;
    }
    if (cfg->ssl_session_cache) {
        SSL_CTX_sess_set_new_cb(ctx, on_new_session);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
                                       strlen(TLS_SESSION_ID_CONTEXT));
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    /* take whole records (and more) from the read BIO in one call */
    SSL_CTX_set_read_ahead(ctx, 1);
    ERR_clear_error();
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

/* Does setsockopt(TCP_ULP, "tls") work on an established TCP socket?
 * A loopback pair on an ephemeral port, closed at once. */
static bool probe_ktls(void)
{
    bool ok = false;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int afd = -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sa);
    if (lfd < 0 || cfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &slen) != 0 ||
        connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto done;
    afd = accept(lfd, NULL, NULL);
    if (afd >= 0)
        ok = setsockopt(afd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) == 0;
done:
    if (afd >= 0)
        close(afd);
    if (cfd >= 0)
        close(cfd);
    if (lfd >= 0)
        close(lfd);
    return ok;
}

int tls_server_create(struct tls_server **out, const struct cfg *cfg, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->ssl_chain_cert == NULL) {
        snprintf(err, errlen,
                 "corecache: -Z needs a certificate: -o ssl_chain_cert=<chain.pem>,ssl_key=<key.pem>");
        return -EINVAL;
    }
    struct tls_server *tls = calloc(1, sizeof(*tls));
    if (tls == NULL) {
        snprintf(err, errlen, "corecache: out of memory setting up TLS");
        return -ENOMEM;
    }
    tls->cfg = cfg;
    tls->bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "corecache ciphertext");
    if (tls->bio_method == NULL || !BIO_meth_set_write(tls->bio_method, out_bio_write) ||
        !BIO_meth_set_read(tls->bio_method, in_bio_read) || !BIO_meth_set_ctrl(tls->bio_method, bio_ctrl) ||
        !BIO_meth_set_create(tls->bio_method, bio_create)) {
        BIO_meth_free(tls->bio_method);
        free(tls);
        snprintf(err, errlen, "corecache: out of memory setting up TLS");
        return -ENOMEM;
    }
    tls->verify_mode = verify_modes[cfg->ssl_verify_mode & 3];
    tls->min_version = min_versions[cfg->ssl_min_version & 3];
    pthread_mutex_init(&tls->lock, NULL);
    char msg[512];
    tls->ctx = build_ctx(tls, msg, sizeof(msg));
    if (tls->ctx == NULL) {
        snprintf(err, errlen, "corecache: %s", msg);
        pthread_mutex_destroy(&tls->lock);
        BIO_meth_free(tls->bio_method);
        free(tls);
        return -EINVAL;
    }
    atomic_store(&tls->refreshed_unix, now_unix());
    tls->ktls_available = probe_ktls();
    *out = tls;
    return 0;
}

void tls_server_destroy(struct tls_server **tls)
{
    if (*tls == NULL)
        return;
    SSL_CTX_free((*tls)->ctx);
    BIO_meth_free((*tls)->bio_method);
    pthread_mutex_destroy(&(*tls)->lock);
    free(*tls);
    *tls = NULL;
}

bool tls_server_reload(struct tls_server *tls, char *err, size_t errlen)
{
    SSL_CTX *ctx = build_ctx(tls, err, errlen);
    if (ctx == NULL)
        return false;
    pthread_mutex_lock(&tls->lock);
    SSL_CTX *old = tls->ctx;
    tls->ctx = ctx;
    pthread_mutex_unlock(&tls->lock);
    SSL_CTX_free(old); /* connections made from it keep their reference */
    atomic_store(&tls->refreshed_unix, now_unix());
    return true;
}

bool tls_refresh_command(struct tls_server *tls, bool noreply, struct sink *out)
{
    char err[512];
    if (tls == NULL)
        snprintf(err, sizeof(err), "Error TLS not enabled");
    else if (tls_server_reload(tls, err, sizeof(err)))
        return noreply || sink_puts(out, "OK\r\n");
    return sink_put(out, err, strlen(err)) && sink_puts(out, "\r\n");
}

bool tls_render_stats(const struct tls_server *tls, int64_t now, struct sink *out)
{
    if (tls == NULL)
        return true;
    int64_t since = now - atomic_load(&tls->refreshed_unix);
    return metrics_stat_u64(out, "time_since_server_cert_refresh", since > 0 ? (uint64_t)since : 0) &&
           metrics_stat_str(out, "ssl_record_layer", "user") &&
           metrics_stat_str(out, "ssl_kernel_tls_available", tls->ktls_available ? "yes" : "no");
}

bool tls_render_settings(const struct tls_server *tls, const struct cfg *cfg, struct sink *out)
{
    if (!metrics_stat_str(out, "ssl_enabled", tls != NULL ? "yes" : "no"))
        return false;
    if (tls == NULL)
        return true;
    return metrics_stat_str(out, "ssl_chain_cert", cfg->ssl_chain_cert) &&
           metrics_stat_str(out, "ssl_key", cfg->ssl_key != NULL ? cfg->ssl_key : "NULL") &&
           metrics_stat_u64(out, "ssl_verify_mode", (uint64_t)tls->verify_mode) &&
           metrics_stat_u64(out, "ssl_keyformat", cfg->ssl_keyformat) &&
           metrics_stat_str(out, "ssl_ciphers", cfg->ssl_ciphers != NULL ? cfg->ssl_ciphers : "NULL") &&
           metrics_stat_str(out, "ssl_ca_cert", cfg->ssl_ca_cert != NULL ? cfg->ssl_ca_cert : "NULL") &&
           metrics_stat_u64(out, "ssl_wbuf_size", (uint64_t)cfg->ssl_wbuf_size * 1024) &&
           metrics_stat_str(out, "ssl_session_cache", cfg->ssl_session_cache ? "yes" : "no") &&
           metrics_stat_str(out, "ssl_kernel_tls", cfg->ssl_kernel_tls ? "yes" : "no") &&
           metrics_stat_str(out, "ssl_min_version", version_text(tls->min_version));
}

/* --- connections ----------------------------------------------------- */

static const struct conn_transport tls_transport;

bool tls_conn_attach(struct tls_server *tls, struct conn *conn)
{
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return false;
    pthread_mutex_lock(&tls->lock);
    t->ssl = SSL_new(tls->ctx);
    pthread_mutex_unlock(&tls->lock);
    t->bio = BIO_new(tls->bio_method);
    if (t->ssl == NULL || t->bio == NULL) {
        BIO_free(t->bio);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return false;
    }
    BIO_set_data(t->bio, t);
    SSL_set_bio(t->ssl, t->bio, t->bio); /* one BIO both ways: one reference, the SSL's */
    SSL_set_accept_state(t->ssl);
    SSL_set_app_data(t->ssl, conn);
    conn->transport = &tls_transport;
    conn->transport_state = t;
    return true;
}

static void tls_destroy(struct conn *conn)
{
    struct tls_conn *t = conn->transport_state;
    conn->transport_state = NULL;
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    free(t->cbuf);
    free(t->wbuf);
    free(t);
}

/* Ends a connection whose TLS failed: the alert OpenSSL queued is sent,
 * then the connection closes. */
static void tls_fail(struct conn *conn, const char *what)
{
    char reason[256];
    ssl_error_text(reason, sizeof(reason));
    log_debug(conn->shard->srv, "<%d TLS %s: %s", conn->fd, what, reason);
    conn_close_after_write(conn);
}

static void tls_on_recv(struct conn *conn, const char *data, size_t len)
{
    struct tls_conn *t = conn->transport_state;
    t->in = data;
    t->inlen = len;
    if (!t->handshaken) {
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                conn->shard->m.ssl_handshake_errors++;
                tls_fail(conn, "handshake failed");
            } /* else its records go out with the next flush */
            goto done;
        }
        t->handshaken = true;
    }
    char plain[16384];
    while (conn->fd >= 0 && !conn->closing) {
        int r = SSL_read(t->ssl, plain, (int)sizeof(plain));
        if (r > 0) {
            conn_input(conn, plain, (size_t)r);
            /* Nothing left, in the buffer or held by OpenSSL (a record
             * decrypted in part, bytes read ahead): the SSL_read that
             * would say "want read" is skipped, one per receive. */
            if (t->inlen == 0 && !SSL_has_pending(t->ssl))
                break;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify: as a plain EOF */
            conn->eof = true;
            conn_close_after_write(conn);
            break;
        }
        tls_fail(conn, "read failed");
        break;
    }
done:
    /* the receive buffer goes back to the kernel: nothing may point into it */
    t->in = NULL;
    t->inlen = 0;
}

/* One TLS record (or more, for more than TLS_RECORD_MAX) into wbio. */
static bool seal_write(struct conn *conn, const char *data, size_t len)
{
    int r = SSL_write(((struct tls_conn *)conn->transport_state)->ssl, data, (int)len);
    if (r == (int)len)
        return true;
    char reason[256];
    ssl_error_text(reason, sizeof(reason));
    log_debug(conn->shard->srv, "<%d TLS write failed: %s", conn->fd, reason);
    return false;
}

static bool tls_seal(struct conn *conn, unsigned n, size_t *sealed)
{
    struct tls_conn *t = conn->transport_state;
    *sealed = 0;
    if (t->handshaken && !conn->close_inflight && t->wlen < TLS_SEAL_LOW) {
        /* Replies are many small iov entries (a header, an item's value in
         * place, "END"): gathered into full records, not one record each,
         * since every record costs a header, a tag and a cipher call. */
        char record[TLS_RECORD_MAX];
        size_t fill = 0, budget = TLS_SEAL_MAX;
        for (unsigned i = 0; i < n && budget > 0; i++) {
            const char *p = conn->iov[i].iov_base;
            size_t left = conn->iov[i].iov_len < budget ? conn->iov[i].iov_len : budget;
            budget -= left;
            while (left > 0) {
                size_t take = left < sizeof(record) - fill ? left : sizeof(record) - fill;
                if (take == sizeof(record) && fill == 0) { /* a full record in place */
                    if (!seal_write(conn, p, take))
                        return false;
                } else {
                    memcpy(record + fill, p, take);
                    fill += take;
                    if (fill == sizeof(record)) {
                        if (!seal_write(conn, record, fill))
                            return false;
                        fill = 0;
                    }
                }
                p += take;
                left -= take;
                *sealed += take;
            }
        }
        if (fill > 0 && !seal_write(conn, record, fill))
            return false;
    }
    if (t->wfail)
        return false;
    if (t->coff == t->clen && t->wlen > 0) { /* cbuf all sent: swap */
        char *buf = t->cbuf;
        size_t cap = t->ccap;
        t->cbuf = t->wbuf;
        t->ccap = t->wcap;
        t->coff = 0;
        t->clen = t->wlen;
        t->wbuf = buf;
        t->wcap = cap;
        t->wlen = 0;
    }
    return true;
}

static unsigned tls_out_iov(struct conn *conn, struct iovec *iov)
{
    struct tls_conn *t = conn->transport_state;
    if (t->clen == t->coff)
        return 0;
    iov[0].iov_base = t->cbuf + t->coff;
    iov[0].iov_len = t->clen - t->coff;
    return 1;
}

static void tls_on_sent(struct conn *conn, size_t bytes)
{
    struct tls_conn *t = conn->transport_state;
    t->coff += bytes;
    if (t->coff >= t->clen) {
        t->coff = t->clen = 0;
        if (t->ccap > TLS_CBUF_KEEP) { /* after a burst of large replies */
            free(t->cbuf);
            t->cbuf = NULL;
            t->ccap = 0;
        }
    }
}

static const struct conn_transport tls_transport = {
    .on_recv = tls_on_recv,
    .seal = tls_seal,
    .out_iov = tls_out_iov,
    .on_sent = tls_on_sent,
    .destroy = tls_destroy,
};
