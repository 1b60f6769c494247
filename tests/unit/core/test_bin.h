/*
 * test_bin.h: binary-protocol packets for unit tests, built and decoded by
 * hand (never by the code under test): requests appended to a struct pkt
 * with any header (lengths need not match the body), responses decoded one
 * at a time from a buffer. Every packet carries TEST_BIN_OPAQUE, and every
 * decoded response must echo it.
 *
 * Header-only; include <cmocka.h> first.
 */
#ifndef CORECACHE_TESTS_TEST_BIN_H
#define CORECACHE_TESTS_TEST_BIN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto_bin.h"

#define TEST_BIN_OPAQUE "\xde\xad\xbe\xef"

/* --- building requests ---------------------------------------------------- */

struct pkt {
    char data[2048];
    size_t len;
};

static inline void put16(char *p, uint16_t v)
{
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
}

static inline void put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static inline void put64(char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* A header with the lengths given (they need not match the body). */
static inline void header(struct pkt *pk, uint8_t magic, uint8_t opcode, uint16_t keylen, uint8_t extlen,
                          uint32_t bodylen, uint64_t cas)
{
    assert_true(pk->len + PROTO_BIN_HEADER_LEN <= sizeof(pk->data));
    char *p = pk->data + pk->len;
    p[0] = (char)magic;
    p[1] = (char)opcode;
    put16(p + 2, keylen);
    p[4] = (char)extlen;
    p[5] = 0;
    put16(p + 6, 0);
    put32(p + 8, bodylen);
    memcpy(p + 12, TEST_BIN_OPAQUE, 4);
    put64(p + 16, cas);
    pk->len += PROTO_BIN_HEADER_LEN;
}

static inline void append(struct pkt *pk, const void *bytes, size_t n)
{
    assert_true(pk->len + n <= sizeof(pk->data));
    if (n > 0)
        memcpy(pk->data + pk->len, bytes, n);
    pk->len += n;
}

/* A well-formed request appended to pk. */
static inline void request(struct pkt *pk, uint8_t opcode, const void *extras, uint8_t extlen, const char *key,
                           const void *value, size_t nvalue, uint64_t cas)
{
    size_t nkey = key != NULL ? strlen(key) : 0;
    header(pk, PROTO_BIN_REQ_MAGIC, opcode, (uint16_t)nkey, extlen, (uint32_t)(extlen + nkey + nvalue), cas);
    append(pk, extras, extlen);
    append(pk, key, nkey);
    append(pk, value, nvalue);
}

/* A request of only a key (or nothing). */
static inline void simple(struct pkt *pk, uint8_t opcode, const char *key)
{
    request(pk, opcode, NULL, 0, key, NULL, 0, 0);
}

/* --- decoding responses ----------------------------------------------------- */

/* One response, decoded. */
struct resp {
    uint8_t opcode;
    uint16_t status;
    uint8_t extlen;
    uint16_t keylen;
    uint32_t bodylen;
    uint64_t cas;
    char body[256];
};

static inline uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Decodes the response that starts buf[0..len) into *r (magic, datatype
 * and opaque checked); returns its length. */
static inline size_t resp_decode(const char *buf, size_t len, struct resp *r)
{
    const unsigned char *p = (const unsigned char *)buf;
    assert_true(len >= PROTO_BIN_HEADER_LEN);
    assert_int_equal(p[0], PROTO_BIN_RES_MAGIC);
    assert_int_equal(p[5], 0);
    assert_memory_equal(p + 12, TEST_BIN_OPAQUE, 4);
    memset(r, 0, sizeof(*r));
    r->opcode = p[1];
    r->keylen = (uint16_t)be(p + 2, 2);
    r->extlen = p[4];
    r->status = (uint16_t)be(p + 6, 2);
    r->bodylen = (uint32_t)be(p + 8, 4);
    r->cas = be(p + 16, 8);
    assert_true(len >= PROTO_BIN_HEADER_LEN + r->bodylen);
    assert_true(r->bodylen < sizeof(r->body));
    memcpy(r->body, p + PROTO_BIN_HEADER_LEN, r->bodylen);
    return PROTO_BIN_HEADER_LEN + r->bodylen;
}

#endif
