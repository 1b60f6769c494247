/*
 * test_tlsrec.c: the pure parts of the TLS 1.3 record handling (issue 13):
 * what a received record that is not application data asks for, the
 * record type kTLS reports in a control message, and the crypto_info a
 * kTLS direction is installed with. These are the parts of the kTLS
 * receive path that can run on a machine without kTLS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlsrec.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

static void test_tlsrec_classify_data_and_alerts(void **state)
{
    (void)state;
    struct tlsrec_key_updates ku;
    assert_int_equal(tlsrec_classify(TLSREC_APPLICATION_DATA, (const unsigned char *)"get a\r\n", 7, &ku),
                     TLSREC_DATA);
    static const unsigned char close_notify[2] = {1, 0}, fatal_close[2] = {2, 0};
    static const unsigned char bad_mac[2] = {2, 20}, short_alert[1] = {1};
    assert_int_equal(tlsrec_classify(TLSREC_ALERT, close_notify, 2, &ku), TLSREC_END);
    assert_int_equal(tlsrec_classify(TLSREC_ALERT, fatal_close, 2, &ku), TLSREC_END);
    assert_int_equal(tlsrec_classify(TLSREC_ALERT, bad_mac, 2, &ku), TLSREC_FAIL);
    assert_int_equal(tlsrec_classify(TLSREC_ALERT, short_alert, 1, &ku), TLSREC_FAIL);
    assert_int_equal(tlsrec_classify(20, close_notify, 2, &ku), TLSREC_FAIL); /* change_cipher_spec */
    assert_int_equal(tlsrec_classify(99, close_notify, 2, &ku), TLSREC_FAIL);
}

static void test_tlsrec_classify_key_updates(void **state)
{
    (void)state;
    struct tlsrec_key_updates ku;
    static const unsigned char one[5] = {24, 0, 0, 1, 0};
    assert_int_equal(tlsrec_classify(TLSREC_HANDSHAKE, one, 5, &ku), TLSREC_KEY_UPDATE);
    assert_int_equal(ku.count, 1);
    assert_false(ku.update_requested);
    static const unsigned char two[10] = {24, 0, 0, 1, 0, 24, 0, 0, 1, 1};
    assert_int_equal(tlsrec_classify(TLSREC_HANDSHAKE, two, 10, &ku), TLSREC_KEY_UPDATE);
    assert_int_equal(ku.count, 2);
    assert_true(ku.update_requested);
    /* split over records, a bad request value, a longer body, NewSessionTicket */
    static const unsigned char split[7] = {24, 0, 0, 1, 0, 24, 0};
    static const unsigned char bad_value[5] = {24, 0, 0, 1, 2};
    static const unsigned char long_body[6] = {24, 0, 0, 2, 0, 0};
    static const unsigned char ticket[8] = {4, 0, 0, 4, 0, 0, 0, 0};
    assert_int_equal(tlsrec_classify(TLSREC_HANDSHAKE, split, 7, &ku), TLSREC_FAIL);
    assert_int_equal(tlsrec_classify(TLSREC_HANDSHAKE, bad_value, 5, &ku), TLSREC_FAIL);
    assert_int_equal(tlsrec_classify(TLSREC_HANDSHAKE, long_body, 6, &ku), TLSREC_FAIL);
    assert_int_equal(tlsrec_classify(TLSREC_HANDSHAKE, ticket, 8, &ku), TLSREC_FAIL);
    assert_int_equal(tlsrec_classify(TLSREC_HANDSHAKE, one, 0, &ku), TLSREC_FAIL);
}

/* A msghdr as recvmsg fills it on a kTLS socket. */
static void put_type(struct msghdr *msg, unsigned char *cbuf, size_t cbuf_len, int level, int type,
                     unsigned char value)
{
    memset(msg, 0, sizeof(*msg));
    memset(cbuf, 0, cbuf_len);
    msg->msg_control = cbuf;
    msg->msg_controllen = CMSG_SPACE(1);
    struct cmsghdr *c = CMSG_FIRSTHDR(msg);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(1);
    *CMSG_DATA(c) = value;
}

static void test_tlsrec_cmsg_type(void **state)
{
    (void)state;
    union {
        struct cmsghdr align;
        unsigned char buf[CMSG_SPACE(1) + 64];
    } cbuf;
    struct msghdr msg;
    put_type(&msg, cbuf.buf, sizeof(cbuf.buf), SOL_TLS, TLS_GET_RECORD_TYPE, TLSREC_ALERT);
    assert_int_equal(tlsrec_cmsg_type(&msg), TLSREC_ALERT);
    put_type(&msg, cbuf.buf, sizeof(cbuf.buf), SOL_TLS, TLS_GET_RECORD_TYPE, TLSREC_HANDSHAKE);
    assert_int_equal(tlsrec_cmsg_type(&msg), TLSREC_HANDSHAKE);
    /* another level's control message is not a record type */
    put_type(&msg, cbuf.buf, sizeof(cbuf.buf), SOL_SOCKET, TLS_GET_RECORD_TYPE, TLSREC_ALERT);
    assert_int_equal(tlsrec_cmsg_type(&msg), TLSREC_APPLICATION_DATA);
    /* none at all: application data (the kernel adds none for it) */
    memset(&msg, 0, sizeof(msg));
    assert_int_equal(tlsrec_cmsg_type(&msg), TLSREC_APPLICATION_DATA);
    /* truncated: unknown */
    put_type(&msg, cbuf.buf, sizeof(cbuf.buf), SOL_TLS, TLS_GET_RECORD_TYPE, TLSREC_ALERT);
    msg.msg_flags = MSG_CTRUNC;
    assert_int_equal(tlsrec_cmsg_type(&msg), -1);
}

static void test_tlsrec_crypto_info_layouts(void **state)
{
    (void)state;
    unsigned char key[32], iv[12];
    for (int i = 0; i < 32; i++)
        key[i] = (unsigned char)(0xa0 + i);
    for (int i = 0; i < 12; i++)
        iv[i] = (unsigned char)(0x10 + i);
    static const unsigned char seq_be[8] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
    union tlsrec_crypto_info ci;

    assert_int_equal(tlsrec_crypto_info(&ci, TLSREC_AES_128_GCM, key, iv, 0x0102030405060708ULL),
                     sizeof(struct tls12_crypto_info_aes_gcm_128));
    assert_int_equal(ci.info.version, TLS_1_3_VERSION);
    assert_int_equal(ci.info.cipher_type, TLS_CIPHER_AES_GCM_128);
    assert_memory_equal(ci.aes128.salt, iv, 4);      /* the IV's first 4 bytes */
    assert_memory_equal(ci.aes128.iv, iv + 4, 8);    /* and its other 8 */
    assert_memory_equal(ci.aes128.key, key, 16);
    assert_memory_equal(ci.aes128.rec_seq, seq_be, 8);

    assert_int_equal(tlsrec_crypto_info(&ci, TLSREC_AES_256_GCM, key, iv, 0x0102030405060708ULL),
                     sizeof(struct tls12_crypto_info_aes_gcm_256));
    assert_int_equal(ci.info.cipher_type, TLS_CIPHER_AES_GCM_256);
    assert_memory_equal(ci.aes256.salt, iv, 4);
    assert_memory_equal(ci.aes256.iv, iv + 4, 8);
    assert_memory_equal(ci.aes256.key, key, 32);
    assert_memory_equal(ci.aes256.rec_seq, seq_be, 8);

    assert_int_equal(tlsrec_crypto_info(&ci, TLSREC_CHACHA20_POLY1305, key, iv, 0x0102030405060708ULL),
                     sizeof(struct tls12_crypto_info_chacha20_poly1305));
    assert_int_equal(ci.info.version, TLS_1_3_VERSION);
    assert_int_equal(ci.info.cipher_type, TLS_CIPHER_CHACHA20_POLY1305);
    assert_memory_equal(ci.chacha.iv, iv, 12); /* whole: ChaCha20 has no salt */
    assert_memory_equal(ci.chacha.key, key, 32);
    assert_memory_equal(ci.chacha.rec_seq, seq_be, 8);

    /* sequence 0 (a fresh key after a KeyUpdate) */
    tlsrec_crypto_info(&ci, TLSREC_AES_128_GCM, key, iv, 0);
    static const unsigned char zero[8] = {0};
    assert_memory_equal(ci.aes128.rec_seq, zero, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tlsrec_classify_data_and_alerts),
        cmocka_unit_test(test_tlsrec_classify_key_updates),
        cmocka_unit_test(test_tlsrec_cmsg_type),
        cmocka_unit_test(test_tlsrec_crypto_info_layouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
