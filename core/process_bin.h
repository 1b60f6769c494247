/*
 * process_bin.h: executing binary-protocol requests on a store (the
 * contract; see process_bin.c).
 *
 * process_key() (process.h) hands every request of family
 * PROTO_FAMILY_BINARY here, on the shard that owns the key, so local and
 * forwarded requests are answered by the same code. Pure: no syscalls, no
 * clock reads, no allocation beyond what the sink provides.
 */
#ifndef CORECACHE_CORE_PROCESS_BIN_H
#define CORECACHE_CORE_PROCESS_BIN_H

#include <stdbool.h>
#include <stdint.h>

#include "process.h"

/*
 * Executes the keyed binary request `req` for its key on env->store and
 * appends memcached's binary response to `out`: nothing for a quiet
 * command that succeeded (getq/gatq/getkq/gatkq: nothing for a miss
 * either, the value for a hit), always the error packet on failure.
 * Returns false only when the sink could not provide memory. Runs on the
 * shard that owns the store.
 */
/* issue 17: the reply of a binary get (GET, GETQ, GETK, GETKQ) for `it`, or
 * for a miss when NULL, written by copy; for a get served from another
 * shard's memory (core/peek.c), whose item is a validated copy. */
bool process_bin_get_reply(const struct proto_req *req, const struct item *it, const char *key,
                           uint32_t nkey, struct sink *out) MC_MUST_CHECK;

bool process_bin_key(const struct process_env *env, const struct proto_req *req, const char *key,
                     uint32_t nkey, uint64_t hash, struct sink *out) MC_MUST_CHECK;


#endif
