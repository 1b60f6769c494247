/*
 * tlsrec.h: the pure parts of corecache's TLS 1.3 record handling (the
 * contract; see tlsrec.c): what a decrypted record that is not application
 * data asks of the connection, the record type kTLS reports in a control
 * message, and the crypto_info a kTLS direction is installed with.
 */
#ifndef CORECACHE_IO_TLSREC_H
#define CORECACHE_IO_TLSREC_H

#include <linux/tls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* TLS record content types (RFC 8446 5.1). */
#define TLSREC_ALERT 21
#define TLSREC_HANDSHAKE 22
#define TLSREC_APPLICATION_DATA 23

/* What a received record's content asks for. */
enum tlsrec_action {
    TLSREC_DATA,       /* application data: to the protocol */
    TLSREC_END,        /* close_notify: the peer's end of stream */
    TLSREC_KEY_UPDATE, /* KeyUpdate(s): rekey the receive side (count and request in the result) */
    TLSREC_FAIL,       /* anything else (another alert, another handshake message, a
                        * message split over records): close the connection */
};

struct tlsrec_key_updates {
    unsigned count;      /* KeyUpdate messages in the record (each one rekeys) */
    bool update_requested; /* one of them asks for our own KeyUpdate */
};

/*
 * Classifies a decrypted record's content of type `type` (data, len: the
 * content without its type byte and padding). For KeyUpdate records *ku
 * says how many and whether one requested ours. A client is expected to
 * send only application data, close_notify and KeyUpdate after the
 * handshake (no post-handshake authentication is offered). Any thread.
 */
enum tlsrec_action tlsrec_classify(unsigned type, const unsigned char *data, size_t len,
                                   struct tlsrec_key_updates *ku);

/*
 * The record type kTLS reported for what recvmsg returned (RFC 8446 5.1
 * values): the SOL_TLS/TLS_GET_RECORD_TYPE control message, or application
 * data when there is none; -1 when the control data was truncated
 * (MSG_CTRUNC: the type is unknown, the caller must close).
 */
int tlsrec_cmsg_type(const struct msghdr *msg);

/* The AEADs of TLS 1.3 that the own layer and kTLS both take. */
enum tlsrec_cipher {
    TLSREC_AES_128_GCM,
    TLSREC_AES_256_GCM,
    TLSREC_CHACHA20_POLY1305,
};

union tlsrec_crypto_info {
    struct tls_crypto_info info;
    struct tls12_crypto_info_aes_gcm_128 aes128;
    struct tls12_crypto_info_aes_gcm_256 aes256;
    struct tls12_crypto_info_chacha20_poly1305 chacha;
};

/*
 * Fills the crypto_info of setsockopt(SOL_TLS, TLS_TX or TLS_RX) for one
 * TLS 1.3 direction: key (16 or 32 bytes as the cipher wants), the 12-byte
 * static IV (split into the kernel's 4-byte salt and 8-byte iv for AES-GCM)
 * and the next record's sequence number. Returns the size to pass. Any
 * thread.
 */
size_t tlsrec_crypto_info(union tlsrec_crypto_info *out, enum tlsrec_cipher cipher, const unsigned char *key,
                          const unsigned char iv[12], uint64_t seq);

#endif
