/*
 * base64.h: base64 for meta commands' binary keys (the contract; see
 * base64.c).
 *
 * A meta command with the `b` flag carries its key base64-encoded; the
 * server decodes it before hashing and looking it up, and encodes a binary
 * key again where a reply returns it (`k`, `me`). The decoder accepts
 * exactly what memcached 1.6's accepts, leniencies included, so that the
 * same request names the same key on both servers.
 *
 * Pure functions on caller buffers: any thread.
 */
#ifndef CORECACHE_CORE_BASE64_H
#define CORECACHE_CORE_BASE64_H

#include <stddef.h>

/* Bytes base64_encode() writes for n input bytes ('=' padded, no NUL). */
#define BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
/* Most bytes base64_decode() can write for n input bytes. */
#define BASE64_DECODED_MAX(n) ((n) / 4 * 3)

/* Encodes src[0..len) into out (BASE64_ENCODED_LEN(len) bytes, standard
 * alphabet, '=' padding). Returns the bytes written. */
size_t base64_encode(const void *src, size_t len, char *out);

/*
 * Decodes src[0..len) into out (at least BASE64_DECODED_MAX(len) bytes) with
 * memcached's rules: bytes outside the alphabet are skipped; the alphabet
 * bytes ('=' included) must number a non-zero multiple of 4; decoding stops
 * after the first 4-byte group holding '=', which drops one byte per '='
 * (more than two fail). Returns the decoded length, or 0 on failure (a
 * successful decode is never empty).
 */
size_t base64_decode(const char *src, size_t len, unsigned char *out);

#endif
