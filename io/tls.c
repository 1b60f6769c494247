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
 * Kernel TLS. With TCP_ULP "tls" the kernel can seal what a socket sends
 * and open what it receives. The server probes for it at start (a loopback
 * socket pair and setsockopt(TCP_ULP)) and reports the outcome in `stats`
 * (ssl_kernel_tls_available). With -o ssl_kernel_tls and a kernel that has
 * it, a connection on the own record layer (below) hands both directions
 * to the kernel, one after the other:
 *   - transmit (TLS_TX), once the session tickets are sent: replies then
 *     go out as plaintext copies and the kernel makes the records;
 *   - receive (TLS_RX): the ring's multishot receive is cancelled, and
 *     just before it is armed again (none outstanding, everything it took
 *     opened here) the kernel takes over at the next record boundary. The
 *     ring's receive then returns plaintext of application-data records;
 *     any other record fails it with EIO (a plain receive has no room for
 *     the record-type control message) and is read with one recvmsg that
 *     has it (tls_recv_failed): close_notify, a KeyUpdate (the kernel's
 *     receive side is rekeyed; kernels before 6.14 refuse that and the
 *     connection closes), anything else closes. Choosing that over a
 *     multishot recvmsg for every receive keeps the common path the same
 *     ring operation as a plain connection's, and the rare records a
 *     syscall of their own.
 * The epoll backend (evring.c) keeps kTLS off. That path is untested: this
 * project's machines have no kTLS, so the tests see the fallback, and
 * io/tlsrec.c (record types, control message, crypto_info) is unit-
 * tested. `stats` counts the open connections of each record layer
 * (ssl_record_layer_openssl, _corecache, _kernel: transmit in the kernel,
 * _kernel_rx: receive too).
 */
#include "tls.h"

#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
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
#include "tlsrec.h"
#include "conn.h"
#include "log.h"
#include "shard.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

/* Seal more plaintext only while less ciphertext than this waits. */
#define TLS_SEAL_LOW (64 * 1024) /* of wbuf */
/* Most plaintext sealed for one send. */
#define TLS_SEAL_MAX (256 * 1024)
/* The most plaintext one TLS record carries. */
#define TLS_RECORD_MAX 16384
/* The largest TLS 1.3 record body (TLSCiphertext.length, RFC 8446 5.2). */
#define TLS_CIPHERTEXT_MAX (TLS_RECORD_MAX + 256)
/* An AEAD tag, and the nonce of the three TLS 1.3 AEADs taken over. */
#define TLS_TAG_LEN 16
#define TLS_IV_LEN 12
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
    /* the record layer corecache runs itself after a TLS 1.3 handshake */
    EVP_KDF *hkdf;
    EVP_CIPHER *aes128gcm, *aes256gcm, *chacha20poly1305;
};

/* Which record layer a connection's records go through. */
enum tls_layer {
    TLS_LAYER_OPENSSL, /* SSL_read/SSL_write: the handshake, TLS 1.2, other ciphers */
    TLS_LAYER_OWN,     /* TLS 1.3 records sealed and opened here with OpenSSL's AEAD */
    TLS_LAYER_KERNEL,  /* as OWN, but the kernel seals what is sent (kTLS TLS_TX) */
};

/* One direction of the own record layer: the traffic secret (for a
 * KeyUpdate), the AEAD context keyed from it, its static IV, the sequence. */
struct tls_dir {
    EVP_CIPHER_CTX *ctx;
    unsigned char secret[EVP_MAX_MD_SIZE];
    unsigned char iv[TLS_IV_LEN];
    uint64_t seq;
};

struct tls_conn {
    struct tls_server *server;
    SSL *ssl;
    BIO *bio; /* ciphertext in and out (ours, owned by ssl) */
    /* What OpenSSL has yet to read of the receive buffer being handled:
     * set by tls_on_recv, empty again before it returns (the provided
     * buffer goes back to the kernel then). */
    const char *in;
    size_t inlen;
    bool handshaken;
    enum tls_layer layer;
    /* The TLS 1.3 application traffic secrets, from the keylog callback
     * during the handshake; wiped once the own layer has its keys. */
    unsigned char client_secret[EVP_MAX_MD_SIZE], server_secret[EVP_MAX_MD_SIZE];
    size_t client_secret_len, server_secret_len;
    /* the own record layer (TLS_LAYER_OWN) */
    const EVP_CIPHER *cipher;
    const char *digest; /* the suite's hash, by name */
    size_t hash_len, key_len;
    struct tls_dir rx, tx;
    unsigned char *rec; /* a record received in part, TLS_CIPHERTEXT_MAX + 5 */
    size_t rec_len;
    bool ktls_due; /* hand sealing to the kernel once no ciphertext waits */
    bool ktls_rx_due; /* hand receiving to the kernel before the receive is armed again */
    bool rx_kernel;   /* the kernel opens received records (kTLS TLS_RX) */
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

/* Room for `len` more bytes at the end of wbuf; false (and wfail) when
 * memory ran out. */
static bool wbuf_reserve(struct tls_conn *t, size_t len)
{
    if (t->wlen + len > t->wcap) {
        size_t cap = t->wcap ? t->wcap : 16384 + 1024;
        while (cap < t->wlen + len)
            cap *= 2;
        char *wbuf = realloc(t->wbuf, cap);
        if (wbuf == NULL) {
            t->wfail = true;
            return false;
        }
        t->wbuf = wbuf;
        t->wcap = cap;
    }
    return true;
}

/* The BIO's write side: appends to the connection's wbuf. */
static int out_bio_write(BIO *bio, const char *data, int len)
{
    struct tls_conn *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (len <= 0)
        return 0;
    if (!wbuf_reserve(t, (size_t)len))
        return -1;
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

/* Keeps the TLS 1.3 application traffic secrets of a connection's
 * handshake (OpenSSL hands them out as NSS key log lines: LABEL
 * CLIENT_RANDOM SECRET, in hex), for the own record layer; the other
 * lines are ignored. Inside SSL_do_handshake, on the connection's shard. */
static void on_keylog(const SSL *ssl, const char *line)
{
    const struct conn *conn = SSL_get_app_data(ssl);
    if (conn == NULL || conn->transport_state == NULL)
        return;
    struct tls_conn *t = conn->transport_state;
    unsigned char *secret;
    size_t *secret_len;
    if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) {
        secret = t->client_secret;
        secret_len = &t->client_secret_len;
    } else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0) {
        secret = t->server_secret;
        secret_len = &t->server_secret_len;
    } else {
        return;
    }
    *secret_len = 0;
    const char *hex = strrchr(line, ' ') + 1;
    size_t n = strlen(hex);
    if (n == 0 || n % 2 != 0 || n / 2 > EVP_MAX_MD_SIZE)
        return;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = OPENSSL_hexchar2int((unsigned char)hex[2 * i]);
        int lo = OPENSSL_hexchar2int((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            OPENSSL_cleanse(secret, EVP_MAX_MD_SIZE);
            return;
        }
        secret[i] = (unsigned char)(hi << 4 | lo);
    }
    *secret_len = n / 2;
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
    /* No read-ahead: OpenSSL takes from the BIO exactly the records of
     * the handshake, so what follows the client's Finished is still in
     * the receive buffer for the own record layer (its first record has
     * sequence number 0). Reading in place costs no syscall either way. */
    SSL_CTX_set_read_ahead(ctx, 0);
    /* the TLS 1.3 traffic secrets, for the own record layer */
    SSL_CTX_set_keylog_callback(ctx, on_keylog);
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

static void free_algorithms(struct tls_server *tls)
{
    EVP_KDF_free(tls->hkdf);
    EVP_CIPHER_free(tls->aes128gcm);
    EVP_CIPHER_free(tls->aes256gcm);
    EVP_CIPHER_free(tls->chacha20poly1305);
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
    /* the own record layer's algorithms, fetched once (not per record);
     * any one missing only means its suite stays with OpenSSL's layer */
    tls->hkdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    tls->aes128gcm = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    tls->aes256gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    tls->chacha20poly1305 = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
    ERR_clear_error();
    tls->verify_mode = verify_modes[cfg->ssl_verify_mode & 3];
    tls->min_version = min_versions[cfg->ssl_min_version & 3];
    pthread_mutex_init(&tls->lock, NULL);
    char msg[512];
    tls->ctx = build_ctx(tls, msg, sizeof(msg));
    if (tls->ctx == NULL) {
        snprintf(err, errlen, "corecache: %s", msg);
        pthread_mutex_destroy(&tls->lock);
        BIO_meth_free(tls->bio_method);
        free_algorithms(tls);
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
    free_algorithms(*tls);
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
           metrics_stat_str(out, "ssl_record_layer",
                            tls->ktls_available && tls->cfg->ssl_kernel_tls ? "kernel" : "user") &&
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
    t->server = tls;
    t->layer = TLS_LAYER_OPENSSL;
    conn->shard->m.ssl_record_layer_openssl++;
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
    if (t->rx_kernel)
        conn->shard->m.ssl_record_layer_kernel_rx--;
    if (t->layer == TLS_LAYER_KERNEL)
        conn->shard->m.ssl_record_layer_kernel--;
    else if (t->layer == TLS_LAYER_OWN)
        conn->shard->m.ssl_record_layer_corecache--;
    else
        conn->shard->m.ssl_record_layer_openssl--;
    SSL_free(t->ssl); /* frees the BIO */
    EVP_CIPHER_CTX_free(t->rx.ctx);
    EVP_CIPHER_CTX_free(t->tx.ctx);
    free(t->rec);
    free(t->cbuf);
    free(t->wbuf);
    OPENSSL_cleanse(t, sizeof(*t)); /* traffic secrets */
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

/* --- the own record layer (TLS 1.3) --------------------------------------
 *
 * OpenSSL's record layer costs about as much per record as the cipher
 * itself (its state machine, buffers and BIO calls around each
 * EVP call), and a pipelined batch is one record each way. So once a
 * TLS 1.3 handshake with one of the three AEADs of RFC 8446 is done, the
 * records are sealed and opened here with the same EVP AEAD, keyed from
 * the traffic secrets the handshake produced (RFC 8446 7.1-7.3), the way
 * kTLS takes them over in the kernel: a received record is decrypted
 * straight out of the receive buffer into the parser's input, and replies
 * are encrypted from the gathered plaintext straight into the send buffer.
 * Any other handshake (TLS 1.2, another suite, secrets not seen) keeps
 * OpenSSL's layer. What the layer does with records that are not
 * application data: close_notify ends input as a plain EOF; a KeyUpdate
 * rekeys that direction (and answers update_requested with one of ours);
 * anything else (another alert, another handshake message, a message
 * split over records, a bad tag, an oversized record) closes the
 * connection, as a peer that sends it is broken or hostile.
 */

/* HKDF-Expand-Label(secret, label, "", out_len) of RFC 8446 7.1. */
static bool expand_label(const struct tls_conn *t, const unsigned char *secret, const char *label,
                         unsigned char *out, size_t out_len)
{
    unsigned char info[2 + 1 + 6 + 16 + 1];
    size_t label_len = strlen(label);
    if (label_len > 16 || t->server->hkdf == NULL)
        return false;
    info[0] = (unsigned char)(out_len >> 8);
    info[1] = (unsigned char)out_len;
    info[2] = (unsigned char)(6 + label_len);
    memcpy(info + 3, "tls13 ", 6);
    memcpy(info + 9, label, label_len);
    info[9 + label_len] = 0; /* empty context */
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)t->digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, t->hash_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, 10 + label_len),
        OSSL_PARAM_construct_end(),
    };
    EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(t->server->hkdf);
    bool ok = kctx != NULL && EVP_KDF_derive(kctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(kctx);
    return ok;
}

/* Keys one direction from its secret (dir->secret): AEAD key and IV;
 * the sequence restarts at `seq`. */
static bool dir_key(const struct tls_conn *t, struct tls_dir *dir, bool encrypt, uint64_t seq)
{
    unsigned char key[32];
    bool ok = t->key_len <= sizeof(key) && expand_label(t, dir->secret, "key", key, t->key_len) &&
              expand_label(t, dir->secret, "iv", dir->iv, TLS_IV_LEN);
    if (ok && dir->ctx == NULL)
        ok = (dir->ctx = EVP_CIPHER_CTX_new()) != NULL;
    ok = ok && EVP_CipherInit_ex(dir->ctx, t->cipher, NULL, key, NULL, encrypt ? 1 : 0) == 1;
    OPENSSL_cleanse(key, sizeof(key));
    dir->seq = seq;
    return ok;
}

/* A KeyUpdate: the next traffic secret ("traffic upd") and its keys. */
static bool dir_update(const struct tls_conn *t, struct tls_dir *dir, bool encrypt)
{
    unsigned char next[EVP_MAX_MD_SIZE];
    bool ok = expand_label(t, dir->secret, "traffic upd", next, t->hash_len);
    if (ok)
        memcpy(dir->secret, next, t->hash_len);
    OPENSSL_cleanse(next, sizeof(next));
    return ok && dir_key(t, dir, encrypt, 0);
}

/* The per-record nonce: the static IV XOR the sequence number (5.3). */
static void dir_nonce(const struct tls_dir *dir, unsigned char nonce[TLS_IV_LEN])
{
    memcpy(nonce, dir->iv, TLS_IV_LEN);
    for (int i = 0; i < 8; i++)
        nonce[TLS_IV_LEN - 1 - i] ^= (unsigned char)(dir->seq >> (8 * i));
}

/* Seals `len` (at most TLS_RECORD_MAX) bytes of content `type` into one
 * record at the end of wbuf. `typed`: data[len] already holds the type
 * byte (the caller's buffer had room), so the plaintext is one cipher call,
 * not two. The tag is read with EVP_CIPHER_CTX_get_params, not
 * EVP_CIPHER_CTX_ctrl, which builds the same parameter array and then
 * looks every name up again (callgrind: about 150 instructions a record). */
static bool own_seal(struct tls_conn *t, unsigned char type, const void *data, size_t len, bool typed)
{
    size_t body = len + 1 + TLS_TAG_LEN;
    if (!wbuf_reserve(t, 5 + body))
        return false;
    unsigned char *rec = (unsigned char *)t->wbuf + t->wlen;
    rec[0] = 23; /* opaque_type application_data, legacy_record_version 3,3 */
    rec[1] = 3;
    rec[2] = 3;
    rec[3] = (unsigned char)(body >> 8);
    rec[4] = (unsigned char)body;
    unsigned char nonce[TLS_IV_LEN];
    dir_nonce(&t->tx, nonce);
    EVP_CIPHER_CTX *ctx = t->tx.ctx;
    unsigned char *out = rec + 5;
    int n = 0, tail = 0;
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 || EVP_EncryptUpdate(ctx, NULL, &n, rec, 5) != 1)
        return false;
    if (typed) {
        if (EVP_EncryptUpdate(ctx, out, &n, data, (int)len + 1) != 1)
            return false;
    } else if ((len > 0 && EVP_EncryptUpdate(ctx, out, &n, data, (int)len) != 1) ||
               EVP_EncryptUpdate(ctx, out + (len > 0 ? n : 0), &tail, &type, 1) != 1) {
        return false;
    }
    size_t done = (typed || len > 0 ? (size_t)n : 0) + (size_t)tail;
    int fin = 0;
    OSSL_PARAM tag[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, out + len + 1, TLS_TAG_LEN),
                         OSSL_PARAM_construct_end()};
    if (EVP_EncryptFinal_ex(ctx, out + done, &fin) != 1 || done + (size_t)fin != len + 1 ||
        EVP_CIPHER_CTX_get_params(ctx, tag) != 1)
        return false;
    t->tx.seq++;
    t->wlen += 5 + body;
    return true;
}

static bool ktls_install(struct conn *conn, struct tls_conn *t, const struct tls_dir *dir, int optname);

/* A received record that is not application data (type, its content),
 * whichever layer opened it (the own one, or the kernel under kTLS RX):
 * close_notify ends input as a plain EOF, a KeyUpdate rekeys the receive
 * side (and update_requested is answered with a KeyUpdate of ours),
 * anything else closes the connection (io/tlsrec.c says which is which).
 * False when the connection ends because of it. */
static bool own_control(struct conn *conn, struct tls_conn *t, unsigned type, const unsigned char *data,
                        size_t len)
{
    struct tlsrec_key_updates ku;
    switch (tlsrec_classify(type, data, len, &ku)) {
    case TLSREC_DATA:
        if (len > 0)
            conn_input(conn, (const char *)data, len);
        return true;
    case TLSREC_END:
        conn_input_end(conn);
        return false;
    case TLSREC_KEY_UPDATE:
        for (unsigned i = 0; i < ku.count; i++)
            if (!dir_update(t, &t->rx, false))
                goto unexpected;
        if (t->rx_kernel && !ktls_install(conn, t, &t->rx, TLS_RX))
            goto unexpected; /* a kernel without kTLS rekey (before 6.14): its key is stale */
        /* Our own KeyUpdate, when asked for. Under kTLS TX it would need a
         * handshake record through the kernel and a rekey of its side: not
         * done, the connection closes (the client asked for a new key and
         * would not get it). */
        static const unsigned char key_update[5] = {24, 0, 0, 1, 0}; /* update_not_requested */
        if (ku.update_requested &&
            (t->layer == TLS_LAYER_KERNEL || t->ktls_due || !own_seal(t, 22, key_update, sizeof(key_update), false) ||
             !dir_update(t, &t->tx, true)))
            goto unexpected;
        conn_want_flush(conn);
        return true;
    case TLSREC_FAIL:
        break;
    }
unexpected:
    ERR_clear_error();
    log_debug(conn->shard->srv, "<%d TLS record of type %u not handled: closing", conn->fd, type);
    conn_close_after_write(conn);
    return false;
}

/* Is this record header one the own layer may open? */
static bool record_header_ok(const unsigned char *h)
{
    size_t body = (size_t)h[3] << 8 | h[4];
    return h[0] == 23 && h[1] == 3 && h[2] == 3 && body > TLS_TAG_LEN && body <= TLS_CIPHERTEXT_MAX;
}

/* Opens one whole record (header and body) and acts on what it holds.
 * False when the connection is closing because of it. */
static bool own_open(struct conn *conn, struct tls_conn *t, const unsigned char *rec)
{
    size_t body = (size_t)rec[3] << 8 | rec[4];
    size_t clen = body - TLS_TAG_LEN;
    unsigned char plain[TLS_CIPHERTEXT_MAX];
    unsigned char nonce[TLS_IV_LEN];
    dir_nonce(&t->rx, nonce);
    EVP_CIPHER_CTX *ctx = t->rx.ctx;
    int n = 0, fin = 0;
    OSSL_PARAM tag[2] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, (void *)(rec + 5 + clen), TLS_TAG_LEN),
        OSSL_PARAM_construct_end()};
    if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 || EVP_DecryptUpdate(ctx, NULL, &n, rec, 5) != 1 ||
        EVP_DecryptUpdate(ctx, plain, &n, rec + 5, (int)clen) != 1 ||
        EVP_CIPHER_CTX_set_params(ctx, tag) != 1 ||
        EVP_DecryptFinal_ex(ctx, plain + n, &fin) != 1 || (size_t)n + (size_t)fin != clen) {
        ERR_clear_error();
        log_debug(conn->shard->srv, "<%d TLS record failed authentication", conn->fd);
        conn_close(conn, "TLS bad record");
        return false;
    }
    t->rx.seq++;
    /* TLSInnerPlaintext: content, the type, zero padding */
    size_t len = clen;
    while (len > 0 && plain[len - 1] == 0)
        len--;
    if (len == 0 || len - 1 > TLS_RECORD_MAX) {
        conn_close(conn, "TLS record without a content type, or too long");
        return false;
    }
    unsigned char type = plain[--len];
    if (type == TLSREC_APPLICATION_DATA) { /* the common case, before anything else */
        if (len > 0)
            conn_input(conn, (const char *)plain, len);
        return true;
    }
    return own_control(conn, t, type, plain, len);
}

/* Opens every whole record of what arrived, in place; a record that has
 * not all arrived waits in t->rec. */
static void own_recv(struct conn *conn, struct tls_conn *t, const unsigned char *data, size_t len)
{
    while (len > 0 && conn->fd >= 0 && !conn->closing) {
        const unsigned char *rec;
        if (t->rec_len == 0 && len >= 5 && len >= 5 + ((size_t)data[3] << 8 | data[4])) {
            rec = data; /* whole in the receive buffer */
            if (!record_header_ok(rec))
                goto bad;
            size_t whole = 5 + ((size_t)rec[3] << 8 | rec[4]);
            data += whole;
            len -= whole;
        } else {
            if (t->rec == NULL && (t->rec = malloc(5 + TLS_CIPHERTEXT_MAX)) == NULL) {
                conn->shard->m.malloc_fails++;
                conn_close(conn, "out of memory for a TLS record");
                return;
            }
            if (t->rec_len < 5) {
                size_t take = 5 - t->rec_len < len ? 5 - t->rec_len : len;
                memcpy(t->rec + t->rec_len, data, take);
                t->rec_len += take;
                data += take;
                len -= take;
                if (t->rec_len < 5)
                    continue;
                if (!record_header_ok(t->rec))
                    goto bad;
            }
            size_t whole = 5 + ((size_t)t->rec[3] << 8 | t->rec[4]);
            size_t take = whole - t->rec_len < len ? whole - t->rec_len : len;
            memcpy(t->rec + t->rec_len, data, take);
            t->rec_len += take;
            data += take;
            len -= take;
            if (t->rec_len < whole)
                continue;
            rec = t->rec;
            t->rec_len = 0;
        }
        if (!own_open(conn, t, rec))
            return;
    }
    if (t->rec_len == 0 && t->rec != NULL) { /* kept only while a record is in part */
        free(t->rec);
        t->rec = NULL;
    }
    return;
bad:
    log_debug(conn->shard->srv, "<%d TLS record header not valid here: closing", conn->fd);
    conn_close(conn, "TLS bad record header");
}

/* After the handshake: takes the records over from OpenSSL if the
 * connection qualifies (TLS 1.3, one of the three AEADs, both traffic
 * secrets seen, OpenSSL holding no received bytes). `written` is where
 * wbuf ended before the handshake's last step: the records OpenSSL wrote
 * since (the session tickets) are the first of the server's application
 * traffic key, so they set its sequence number. */
static void own_start(struct conn *conn, struct tls_conn *t, size_t written)
{
    const struct tls_server *tls = t->server;
    const SSL_CIPHER *suite = SSL_get_current_cipher(t->ssl);
    if (SSL_version(t->ssl) != TLS1_3_VERSION || suite == NULL || SSL_has_pending(t->ssl) ||
        t->client_secret_len == 0 || t->client_secret_len != t->server_secret_len)
        goto keep;
    switch (SSL_CIPHER_get_id(suite)) {
    case TLS1_3_CK_AES_128_GCM_SHA256:
        t->cipher = tls->aes128gcm, t->digest = "SHA256", t->key_len = 16;
        break;
    case TLS1_3_CK_AES_256_GCM_SHA384:
        t->cipher = tls->aes256gcm, t->digest = "SHA384", t->key_len = 32;
        break;
    case TLS1_3_CK_CHACHA20_POLY1305_SHA256:
        t->cipher = tls->chacha20poly1305, t->digest = "SHA256", t->key_len = 32;
        break;
    default:
        goto keep;
    }
    t->hash_len = t->client_secret_len;
    if (t->cipher == NULL || t->hash_len != (strcmp(t->digest, "SHA384") == 0 ? 48u : 32u))
        goto keep;
    uint64_t tx_seq = 0;
    for (size_t off = written; off < t->wlen; tx_seq++) {
        if (t->wlen - off < 5)
            goto keep;
        off += 5 + ((size_t)(unsigned char)t->wbuf[off + 3] << 8 | (unsigned char)t->wbuf[off + 4]);
        if (off > t->wlen)
            goto keep;
    }
    memcpy(t->rx.secret, t->client_secret, t->hash_len);
    memcpy(t->tx.secret, t->server_secret, t->hash_len);
    if (!dir_key(t, &t->rx, false, 0) || !dir_key(t, &t->tx, true, tx_seq)) {
        ERR_clear_error();
        goto keep;
    }
    OPENSSL_cleanse(t->client_secret, sizeof(t->client_secret));
    OPENSSL_cleanse(t->server_secret, sizeof(t->server_secret));
    t->layer = TLS_LAYER_OWN;
    conn->shard->m.ssl_record_layer_openssl--;
    conn->shard->m.ssl_record_layer_corecache++;
    SSL_free_buffers(t->ssl); /* its record buffers are not used again */
    /* not on the epoll backend (evring.c): its receive and cancel are not
     * the ring's, and kTLS there is left for later; the own layer runs */
    t->ktls_due = tls->ktls_available && tls->cfg->ssl_kernel_tls && conn->shard->evring == NULL;
    return;
keep:
    OPENSSL_cleanse(t->client_secret, sizeof(t->client_secret));
    OPENSSL_cleanse(t->server_secret, sizeof(t->server_secret));
    t->client_secret_len = t->server_secret_len = 0;
}

/* Installs one direction of the own layer in the kernel: TLS_TX or
 * TLS_RX with the direction's key, IV and next sequence number (also the
 * rekey after a KeyUpdate, on kernels that take a second TLS_RX). False
 * (errno set) when the kernel refuses it. */
static bool ktls_install(struct conn *conn, struct tls_conn *t, const struct tls_dir *dir, int optname)
{
    unsigned char key[32];
    if (!expand_label(t, dir->secret, "key", key, t->key_len)) {
        ERR_clear_error();
        errno = EINVAL;
        return false;
    }
    enum tlsrec_cipher cipher = t->cipher == t->server->aes128gcm   ? TLSREC_AES_128_GCM
                                : t->cipher == t->server->aes256gcm ? TLSREC_AES_256_GCM
                                                                    : TLSREC_CHACHA20_POLY1305;
    union tlsrec_crypto_info info;
    size_t size = tlsrec_crypto_info(&info, cipher, key, dir->iv, dir->seq);
    bool ok = setsockopt(conn->fd, SOL_TLS, optname, &info, (socklen_t)size) == 0;
    int saved = errno;
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(&info, sizeof(info));
    errno = saved;
    return ok;
}

/* kTLS, transmit side: hands the sealing of what is sent to the kernel
 * (TLS_TX). Only once nothing sealed here waits or is in flight (the
 * kernel would seal it again). Then asks for the receive side (below): the
 * connection's multishot receive is cancelled, and ktls_rx_start runs
 * before it is armed again. On any failure the connection goes on with
 * the own layer. UNTESTED on a kernel with kTLS: this project's machines
 * have none; there only the fallback runs. */
static void ktls_start(struct conn *conn, struct tls_conn *t)
{
    t->ktls_due = false;
    if (setsockopt(conn->fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) != 0 ||
        !ktls_install(conn, t, &t->tx, TLS_TX)) {
        /* the ULP alone leaves the socket a plain one: sealing stays here */
        log_debug(conn->shard->srv, "<%d kTLS not taken: %s", conn->fd, strerror(errno));
        return;
    }
    t->layer = TLS_LAYER_KERNEL;
    conn->shard->m.ssl_record_layer_corecache--;
    conn->shard->m.ssl_record_layer_kernel++;
    t->ktls_rx_due = true;
    conn_cycle_recv(conn);
}

/* kTLS, receive side (TLS_RX), from conn.c just before the receive is
 * armed again: no receive is outstanding then and every byte the old one
 * took has been handled, so the kernel starts at the next byte of the
 * stream. That must be a record boundary: if a record waits in part here,
 * receiving stays with the own layer for the connection's life. With
 * TLS_RX the ring's receive returns plaintext of application-data records;
 * a record of another type fails that receive with EIO (no room for its
 * control message) and tls_recv_failed reads it with recvmsg. UNTESTED on
 * a kernel with kTLS (see ktls_start). */
static void tls_rearm(struct conn *conn)
{
    struct tls_conn *t = conn->transport_state;
    if (!t->ktls_rx_due)
        return;
    t->ktls_rx_due = false;
    if (t->rec_len != 0) {
        log_debug(conn->shard->srv, "<%d kTLS receive not taken: a record is in part", conn->fd);
        return;
    }
    if (!ktls_install(conn, t, &t->rx, TLS_RX)) {
        log_debug(conn->shard->srv, "<%d kTLS receive not taken: %s", conn->fd, strerror(errno));
        return;
    }
    t->rx_kernel = true;
    conn->shard->m.ssl_record_layer_kernel_rx++;
    free(t->rec);
    t->rec = NULL;
}

/* A receive on a kTLS RX socket failed. EIO: the next record is not
 * application data and the ring's receive had no room for its type. It is
 * read here with a plain recvmsg (MSG_DONTWAIT; it is there, decrypted,
 * the kernel keeps it for this call) and handled like the own layer's
 * control records; the caller arms the receive again. A syscall outside
 * the ring, but only for an alert or a KeyUpdate, never per request. True
 * when the connection goes on (or ended by itself), false for conn.c to
 * close it as any receive error. */
static bool tls_recv_failed(struct conn *conn, int res)
{
    struct tls_conn *t = conn->transport_state;
    if (!t->rx_kernel || res != -EIO)
        return false;
    unsigned char plain[TLS_RECORD_MAX];
    union {
        struct cmsghdr align;
        unsigned char buf[CMSG_SPACE(sizeof(unsigned char))];
    } cbuf;
    struct iovec iov = {.iov_base = plain, .iov_len = sizeof(plain)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                         .msg_controllen = sizeof(cbuf.buf)};
    ssize_t n = recvmsg(conn->fd, &msg, MSG_DONTWAIT);
    if (n < 0) /* even EAGAIN: the record that failed the receive is not there, and
                * arming the receive again would only fail it again */
        return false;
    if (n == 0) {
        conn_input_end(conn);
        return true;
    }
    int type = tlsrec_cmsg_type(&msg);
    if (type < 0)
        return false;
    own_control(conn, t, (unsigned)type, plain, (size_t)n);
    return true;
}

static void tls_on_recv(struct conn *conn, const char *data, size_t len)
{
    struct tls_conn *t = conn->transport_state;
    if (t->rx_kernel) { /* kTLS RX: the kernel opened the records */
        conn_input(conn, data, len);
        return;
    }
    if (t->layer != TLS_LAYER_OPENSSL) { /* opened here (with kTLS TX too, until TLS_RX is on) */
        own_recv(conn, t, (const unsigned char *)data, len);
        return;
    }
    t->in = data;
    t->inlen = len;
    if (!t->handshaken) {
        size_t written = t->wlen;
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
        own_start(conn, t, written);
        if (t->layer != TLS_LAYER_OPENSSL) {
            const char *rest = t->in;
            size_t rest_len = t->inlen;
            t->in = NULL;
            t->inlen = 0;
            own_recv(conn, t, (const unsigned char *)rest, rest_len);
            return;
        }
        if (t->inlen == 0 && !SSL_has_pending(t->ssl))
            goto done;
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
            conn_input_end(conn);
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

/* One TLS record of `len` (at most TLS_RECORD_MAX) bytes into wbuf;
 * `typed`: data[len] holds the type byte of application data (the own
 * layer seals it with the content; the others ignore it). */
static bool seal_write(struct conn *conn, const char *data, size_t len, bool typed)
{
    struct tls_conn *t = conn->transport_state;
    if (t->layer == TLS_LAYER_KERNEL) { /* the kernel seals what is sent */
        if (!wbuf_reserve(t, len))
            return false;
        memcpy(t->wbuf + t->wlen, data, len);
        t->wlen += len;
        return true;
    }
    if (t->layer == TLS_LAYER_OWN) {
        if (own_seal(t, 23, data, len, typed))
            return true;
        ERR_clear_error();
        log_debug(conn->shard->srv, "<%d TLS sealing failed", conn->fd);
        return false;
    }
    int r = SSL_write(t->ssl, data, (int)len);
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
    /* kTLS waits until the ciphertext sealed here (the session tickets)
     * is all sent; replies wait for it meanwhile, so that they are the
     * kernel's first records */
    bool hold = false;
    if (t->ktls_due && !conn->close_inflight) {
        if (t->coff == t->clen && t->wlen == 0)
            ktls_start(conn, t);
        else
            hold = true;
    }
    if (t->handshaken && !hold && !conn->close_inflight && t->wlen < TLS_SEAL_LOW) {
        /* Replies are many small iov entries (a header, an item's value in
         * place, "END"): gathered into full records, not one record each,
         * since every record costs a header, a tag and a cipher call. */
        char record[TLS_RECORD_MAX + 1]; /* and the own layer's type byte */
        size_t fill = 0, budget = TLS_SEAL_MAX;
        for (unsigned i = 0; i < n && budget > 0; i++) {
            const char *p = conn->iov[i].iov_base;
            size_t left = conn->iov[i].iov_len < budget ? conn->iov[i].iov_len : budget;
            budget -= left;
            while (left > 0) {
                size_t take = left < TLS_RECORD_MAX - fill ? left : TLS_RECORD_MAX - fill;
                if (take == TLS_RECORD_MAX && fill == 0) { /* a full record in place */
                    if (!seal_write(conn, p, take, false))
                        return false;
                } else {
                    memcpy(record + fill, p, take);
                    fill += take;
                    if (fill == TLS_RECORD_MAX) {
                        record[fill] = TLSREC_APPLICATION_DATA;
                        if (!seal_write(conn, record, fill, true))
                            return false;
                        fill = 0;
                    }
                }
                p += take;
                left -= take;
                *sealed += take;
            }
        }
        record[fill] = TLSREC_APPLICATION_DATA;
        if (fill > 0 && !seal_write(conn, record, fill, true))
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
    .rearm = tls_rearm,
    .recv_failed = tls_recv_failed,
};
