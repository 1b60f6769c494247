/*
 * prefix.h: memcached's per-prefix statistics (`stats detail`, -D), the
 * contract; see prefix.c.
 *
 * A key's prefix is what comes before the first delimiter character (':'
 * unless -D says otherwise); a key without one has no prefix and is not
 * counted. For each prefix: gets, hits among them, sets and deletes, dumped
 * as memcached dumps them:
 *   "PREFIX <prefix> get <n> hit <n> set <n> del <n>\r\n" ... "END\r\n"
 * Single-threaded: the owner serializes calls (io/detail.c holds a lock).
 */
#ifndef CORECACHE_CORE_PREFIX_H
#define CORECACHE_CORE_PREFIX_H

#include <stdbool.h>
#include <stddef.h>

#include "sink.h"

enum prefix_op { PREFIX_GET, PREFIX_SET, PREFIX_DELETE };

struct prefix_table; /* opaque */

/* An empty table splitting keys at `delimiter`; NULL when out of memory. */
struct prefix_table *prefix_create(char delimiter);
void prefix_destroy(struct prefix_table **table);

/* Counts one operation on `key`; `hit` matters for PREFIX_GET only.
 * Returns false if the key has no prefix or a new prefix found no memory
 * (the operation is then not counted, as in memcached). */
bool prefix_record(struct prefix_table *table, const char *key, size_t nkey, enum prefix_op op, bool hit);

/* Writes every prefix's line, then "END\r\n". False if the sink is full. */
bool prefix_render(const struct prefix_table *table, struct sink *out);

/* Forgets every prefix (`stats reset`). */
void prefix_clear(struct prefix_table *table);

#endif
