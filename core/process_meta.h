/*
 * process_meta.h: executing meta commands on a store (the contract; see
 * process_meta.c).
 *
 * The meta half of process.h: process_key() hands mg, ms, md, ma and me
 * here, on the shard that owns the key (locally or after forwarding: the
 * request is self-contained, flags and opaque included). Replies follow
 * memcached 1.6.18 byte for byte: HD/VA/EN/NF/NS/EX/ME with return flags
 * in request order, the q flag suppressing only the nominal reply (EN for
 * mg, HD for ms md ma), errors always sent. mn is not keyed: the
 * connection answers it (io/conn.c).
 */
#ifndef CORECACHE_CORE_PROCESS_META_H
#define CORECACHE_CORE_PROCESS_META_H

#include <stdbool.h>
#include <stdint.h>

#include "process.h"

/*
 * Executes the meta command `req` (PROTO_MG, PROTO_MS, PROTO_MD, PROTO_MA or
 * PROTO_ME) for `key` (already base64-decoded with b) on env->store and
 * appends its reply to `out` (nothing when q suppresses it). Returns false
 * only when the sink could not provide memory. Thread of the store's shard.
 */
bool process_meta_key(const struct process_env *env, const struct proto_req *req, const char *key,
                      uint32_t nkey, uint64_t hash, struct sink *out) MC_MUST_CHECK;

#endif
