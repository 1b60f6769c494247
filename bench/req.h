/*
 * req.h: composing the requests the load generator sends (the contract;
 * see req.c).
 *
 * Three wire protocols, one shape of request each:
 *
 *              get, one key          get, w keys                 set
 *   text       get k\r\n             get k1 .. kw\r\n            set k 0 0 n\r\n<v>\r\n
 *   meta       mg k v\r\n            mg ki v q\r\n (x w) mn\r\n  ms k n\r\n<v>\r\n
 *   binary     GET k                 GETKQ ki (x w) NOOP         SET k (flags 0, exptime 0)
 *
 * so a multi-get is always answered by a reply that ends in a known marker
 * (END, MN, the NOOP response), misses included. Keys are "<prefix><id>"
 * with id in decimal. Functions write into memory the caller sized with
 * req_get_max()/req_set_max(); they are pure and thread-safe.
 */
#ifndef CORECACHE_BENCH_REQ_H
#define CORECACHE_BENCH_REQ_H

#include <stddef.h>
#include <stdint.h>

enum req_proto {
    REQ_TEXT,
    REQ_META,
    REQ_BINARY,
};

/* memcached's key length limit. */
#define REQ_KEY_MAX 250
/* Digits of the largest key id (UINT64_MAX). */
#define REQ_ID_DIGITS 20

/* Most bytes req_get() writes for `width` keys with this prefix length. */
size_t req_get_max(enum req_proto proto, size_t prefix_len, unsigned width);

/* Most bytes req_set() writes for a value of value_len bytes. */
size_t req_set_max(enum req_proto proto, size_t prefix_len, size_t value_len);

/* Writes "<prefix><id>" at out; returns its length. */
size_t req_key(char *out, const char *prefix, size_t prefix_len, uint64_t id);

/* Writes a get of keys ids[0 .. width) (width >= 1); returns bytes written. */
size_t req_get(enum req_proto proto, char *out, const char *prefix, size_t prefix_len,
               const uint64_t *ids, unsigned width);

/* Writes a set of key id to value[0 .. value_len), flags 0 and no expiry;
 * returns bytes written. */
size_t req_set(enum req_proto proto, char *out, const char *prefix, size_t prefix_len, uint64_t id,
               const char *value, size_t value_len);

#endif
