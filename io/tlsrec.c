/*
 * tlsrec.c: the pure parts of corecache's TLS 1.3 record handling, shared
 * by the two record layers io/tls.c runs after a handshake: its own (it
 * opens records with OpenSSL's AEAD) and the kernel's (kTLS opens them and
 * reports the type of a record that is not application data in a control
 * message). Both then ask the same question of a record's content, and
 * kTLS is installed from the same key material. None of it makes a
 * syscall (it is in io/ only for the kernel's headers), so that
 * tests/unit/io/test_tlsrec.c drives it on plain buffers: the machines
 * this project runs on have no kTLS.
 *
 * What a client may send after the handshake: application data, the
 * close_notify alert (end of stream), and KeyUpdate handshake messages
 * (RFC 8446 4.6.3: type 24, length 1, update_not_requested 0 or
 * update_requested 1), several in one record. Everything else (any other
 * alert, a NewSessionTicket, which only a server sends, post-handshake
 * authentication, which the server never asks for, a message split over
 * two records) is a broken or hostile peer: the connection closes.
 */
#include "tlsrec.h"

#include <string.h>

enum tlsrec_action tlsrec_classify(unsigned type, const unsigned char *data, size_t len,
                                   struct tlsrec_key_updates *ku)
{
    ku->count = 0;
    ku->update_requested = false;
    switch (type) {
    case TLSREC_APPLICATION_DATA:
        return TLSREC_DATA;
    case TLSREC_ALERT: /* warning(1) or fatal(2), then the description; close_notify is 0 */
        return len == 2 && data[1] == 0 ? TLSREC_END : TLSREC_FAIL;
    case TLSREC_HANDSHAKE:
        if (len == 0)
            return TLSREC_FAIL;
        for (size_t off = 0; off < len; off += 5) {
            if (len - off < 5 || data[off] != 24 || data[off + 1] != 0 || data[off + 2] != 0 ||
                data[off + 3] != 1 || data[off + 4] > 1)
                return TLSREC_FAIL;
            ku->count++;
            ku->update_requested |= data[off + 4] == 1;
        }
        return TLSREC_KEY_UPDATE;
    default:
        return TLSREC_FAIL;
    }
}

int tlsrec_cmsg_type(const struct msghdr *msg)
{
    if (msg->msg_flags & MSG_CTRUNC)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c != NULL;
         c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE &&
            c->cmsg_len >= CMSG_LEN(1))
            return *(const unsigned char *)CMSG_DATA(c);
    }
    return TLSREC_APPLICATION_DATA;
}

size_t tlsrec_crypto_info(union tlsrec_crypto_info *out, enum tlsrec_cipher cipher, const unsigned char *key,
                          const unsigned char iv[12], uint64_t seq)
{
    unsigned char be[8]; /* the kernel takes the sequence number big-endian */
    for (int i = 0; i < 8; i++)
        be[i] = (unsigned char)(seq >> (56 - 8 * i));
    memset(out, 0, sizeof(*out));
    out->info.version = TLS_1_3_VERSION;
    switch (cipher) {
    case TLSREC_AES_128_GCM:
        out->info.cipher_type = TLS_CIPHER_AES_GCM_128;
        memcpy(out->aes128.salt, iv, TLS_CIPHER_AES_GCM_128_SALT_SIZE);
        memcpy(out->aes128.iv, iv + 4, TLS_CIPHER_AES_GCM_128_IV_SIZE);
        memcpy(out->aes128.key, key, TLS_CIPHER_AES_GCM_128_KEY_SIZE);
        memcpy(out->aes128.rec_seq, be, 8);
        return sizeof(out->aes128);
    case TLSREC_AES_256_GCM:
        out->info.cipher_type = TLS_CIPHER_AES_GCM_256;
        memcpy(out->aes256.salt, iv, TLS_CIPHER_AES_GCM_256_SALT_SIZE);
        memcpy(out->aes256.iv, iv + 4, TLS_CIPHER_AES_GCM_256_IV_SIZE);
        memcpy(out->aes256.key, key, TLS_CIPHER_AES_GCM_256_KEY_SIZE);
        memcpy(out->aes256.rec_seq, be, 8);
        return sizeof(out->aes256);
    case TLSREC_CHACHA20_POLY1305:
    default:
        out->info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
        memcpy(out->chacha.iv, iv, TLS_CIPHER_CHACHA20_POLY1305_IV_SIZE);
        memcpy(out->chacha.key, key, TLS_CIPHER_CHACHA20_POLY1305_KEY_SIZE);
        memcpy(out->chacha.rec_seq, be, 8);
        return sizeof(out->chacha);
    }
}
