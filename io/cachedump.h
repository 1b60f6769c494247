/*
 * cachedump.h: `stats cachedump <class> <limit>` (the contract; see
 * cachedump.c).
 */
#ifndef CORECACHE_IO_CACHEDUMP_H
#define CORECACHE_IO_CACHEDUMP_H

#include <stdbool.h>
#include <stddef.h>

struct conn;

/*
 * Answers `stats cachedump ...`; args/nargs are the words after "stats"
 * (the parser's trimmed rest of the line, "cachedump" first). memcached
 * 1.6.18's replies: "ITEM <key> [<bytes> b; <exptime> s]" lines then
 * "END", gathered from every shard; false when memory ran out. The
 * connection's shard thread.
 */
bool cachedump_command(struct conn *conn, const char *args, size_t nargs);

#endif
