/*
 * base64.c: RFC 4648 base64 with memcached 1.6's lenient decoder (see
 * base64.h).
 *
 * Encoding is the standard one. Decoding mirrors what memcached accepts,
 * because a client that works against memcached must reach the same key
 * here: characters outside the alphabet (spaces, '-', '_', bytes >= 0x80)
 * are skipped rather than refused; '=' counts as an alphabet character
 * worth 0 and marks padding; the count of alphabet characters must be a
 * non-zero multiple of four; the first group of four that holds a '='
 * ends the decode, giving up one output byte per '=' in it (three or four
 * fail), and anything after that group is ignored. So "Zm9v-YmFy" decodes
 * to "foobar" and "Zm9vYg==junk" to "foob".
 *
 * Invariants: never reads outside src[0..len), never writes more than
 * BASE64_DECODED_MAX(len) (decode) or BASE64_ENCODED_LEN(len) (encode)
 * bytes.
 */
#include "base64.h"

#include <stdint.h>

static const char base64_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encode(const void *src, size_t len, char *out)
{
    const unsigned char *in = src;
    char *p = out;
    size_t i = 0;
    for (; len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = base64_alphabet[v >> 18];
        *p++ = base64_alphabet[(v >> 12) & 63];
        *p++ = base64_alphabet[(v >> 6) & 63];
        *p++ = base64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (len - i == 2)
            v |= (uint32_t)in[i + 1] << 8;
        *p++ = base64_alphabet[v >> 18];
        *p++ = base64_alphabet[(v >> 12) & 63];
        *p++ = len - i == 2 ? base64_alphabet[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    return (size_t)(p - out);
}

/* The 6-bit value of an alphabet character ('=' is 0), or -1 for a byte
 * the decoder skips. */
static int base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    if (c == '=')
        return 0;
    return -1;
}

size_t base64_decode(const char *src, size_t len, unsigned char *out)
{
    size_t count = 0;
    for (size_t i = 0; i < len; i++) {
        if (base64_value((unsigned char)src[i]) >= 0)
            count++;
    }
    if (count == 0 || count % 4 != 0)
        return 0;

    unsigned char *p = out;
    uint32_t group = 0;
    unsigned have = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        int v = base64_value((unsigned char)src[i]);
        if (v < 0)
            continue;
        if (src[i] == '=')
            pad++;
        group = group << 6 | (uint32_t)v;
        if (++have < 4)
            continue;
        *p++ = (unsigned char)(group >> 16);
        *p++ = (unsigned char)(group >> 8);
        *p++ = (unsigned char)group;
        have = 0;
        group = 0;
        if (pad > 0) {
            if (pad > 2)
                return 0;
            p -= pad;
            break;
        }
    }
    return (size_t)(p - out);
}
