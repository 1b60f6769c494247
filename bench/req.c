/*
 * req.c: request composition (req.h).
 *
 * Writes go straight into the caller's output buffer, with no formatting
 * library on the way: the generator composes hundreds of thousands of
 * requests a second on one core and must stay cheaper than the server.
 *
 * Binary request header (memcached's protocol_binary.h), big-endian:
 *
 *   0      1       2       4       5        6        8          12       16      24
 *   +------+-------+-------+-------+--------+--------+----------+--------+-------+
 *   | 0x80 |opcode |key len|ext len|datatype|vbucket |body len  |opaque  |cas    |
 *   +------+-------+-------+-------+--------+--------+----------+--------+-------+
 *   body = extras, key, value; a SET's extras are flags(4) and exptime(4).
 */
#include "req.h"

#include <string.h>

#include "metrics.h"

#define BIN_HEADER_LEN 24
#define BIN_MAGIC_REQUEST 0x80
#define BIN_GET 0x00
#define BIN_SET 0x01
#define BIN_NOOP 0x0a
#define BIN_GETKQ 0x0d
#define BIN_SET_EXTRAS 8

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define PUTS(p, literal) put((p), (literal), sizeof(literal) - 1)

size_t req_key(char *out, const char *prefix, size_t prefix_len, uint64_t id)
{
    memcpy(out, prefix, prefix_len);
    return prefix_len + metrics_u64toa(id, out + prefix_len);
}

size_t req_get_max(enum req_proto proto, size_t prefix_len, unsigned width)
{
    size_t key = prefix_len + REQ_ID_DIGITS;
    switch (proto) {
    case REQ_TEXT:
        return sizeof("get") - 1 + width * (1 + key) + 2;
    case REQ_META:
        return width * (sizeof("mg  v q\r\n") - 1 + key) + sizeof("mn\r\n") - 1;
    case REQ_BINARY:
        return width * (BIN_HEADER_LEN + key) + BIN_HEADER_LEN;
    }
    return 0;
}

size_t req_set_max(enum req_proto proto, size_t prefix_len, size_t value_len)
{
    size_t key = prefix_len + REQ_ID_DIGITS;
    switch (proto) {
    case REQ_TEXT:
        return sizeof("set  0 0 \r\n\r\n") - 1 + key + REQ_ID_DIGITS + value_len;
    case REQ_META:
        return sizeof("ms  \r\n\r\n") - 1 + key + REQ_ID_DIGITS + value_len;
    case REQ_BINARY:
        return BIN_HEADER_LEN + BIN_SET_EXTRAS + key + value_len;
    }
    return 0;
}

static char *bin_header(char *p, uint8_t opcode, size_t key_len, size_t extras_len,
                        size_t body_len)
{
    unsigned char *h = (unsigned char *)p;
    memset(h, 0, BIN_HEADER_LEN);
    h[0] = BIN_MAGIC_REQUEST;
    h[1] = opcode;
    h[2] = (unsigned char)(key_len >> 8);
    h[3] = (unsigned char)key_len;
    h[4] = (unsigned char)extras_len;
    h[8] = (unsigned char)(body_len >> 24);
    h[9] = (unsigned char)(body_len >> 16);
    h[10] = (unsigned char)(body_len >> 8);
    h[11] = (unsigned char)body_len;
    return p + BIN_HEADER_LEN;
}

size_t req_get(enum req_proto proto, char *out, const char *prefix, size_t prefix_len,
               const uint64_t *ids, unsigned width)
{
    char *p = out;
    switch (proto) {
    case REQ_TEXT:
        p = PUTS(p, "get");
        for (unsigned i = 0; i < width; i++) {
            *p++ = ' ';
            p += req_key(p, prefix, prefix_len, ids[i]);
        }
        p = PUTS(p, "\r\n");
        break;
    case REQ_META:
        if (width == 1) {
            p = PUTS(p, "mg ");
            p += req_key(p, prefix, prefix_len, ids[0]);
            p = PUTS(p, " v\r\n");
            break;
        }
        /* q: no EN for misses, so the reply is the hits, then MN. */
        for (unsigned i = 0; i < width; i++) {
            p = PUTS(p, "mg ");
            p += req_key(p, prefix, prefix_len, ids[i]);
            p = PUTS(p, " v q\r\n");
        }
        p = PUTS(p, "mn\r\n");
        break;
    case REQ_BINARY:
        if (width == 1) {
            char *header = p;
            size_t key_len = req_key(p + BIN_HEADER_LEN, prefix, prefix_len, ids[0]);
            bin_header(header, BIN_GET, key_len, 0, key_len);
            p += BIN_HEADER_LEN + key_len;
            break;
        }
        for (unsigned i = 0; i < width; i++) {
            char *header = p;
            size_t key_len = req_key(p + BIN_HEADER_LEN, prefix, prefix_len, ids[i]);
            bin_header(header, BIN_GETKQ, key_len, 0, key_len);
            p += BIN_HEADER_LEN + key_len;
        }
        p = bin_header(p, BIN_NOOP, 0, 0, 0);
        break;
    }
    return (size_t)(p - out);
}

size_t req_set(enum req_proto proto, char *out, const char *prefix, size_t prefix_len, uint64_t id,
               const char *value, size_t value_len)
{
    char *p = out;
    switch (proto) {
    case REQ_TEXT:
        p = PUTS(p, "set ");
        p += req_key(p, prefix, prefix_len, id);
        p = PUTS(p, " 0 0 ");
        p += metrics_u64toa(value_len, p);
        p = PUTS(p, "\r\n");
        p = put(p, value, value_len);
        p = PUTS(p, "\r\n");
        break;
    case REQ_META:
        p = PUTS(p, "ms ");
        p += req_key(p, prefix, prefix_len, id);
        *p++ = ' ';
        p += metrics_u64toa(value_len, p);
        p = PUTS(p, "\r\n");
        p = put(p, value, value_len);
        p = PUTS(p, "\r\n");
        break;
    case REQ_BINARY: {
        char *header = p;
        p += BIN_HEADER_LEN;
        memset(p, 0, BIN_SET_EXTRAS); /* flags 0, exptime 0 */
        p += BIN_SET_EXTRAS;
        size_t key_len = req_key(p, prefix, prefix_len, id);
        p += key_len;
        p = put(p, value, value_len);
        bin_header(header, BIN_SET, key_len, BIN_SET_EXTRAS, BIN_SET_EXTRAS + key_len + value_len);
        break;
    }
    }
    return (size_t)(p - out);
}
