/*
 * process.h: executing parsed requests on a store (the contract; see
 * process.c).
 *
 * This is where a request meets the engine: the connection (io/conn.c) has
 * parsed it (proto.h), hashed its key (hash.h) and found the owning shard
 * (ring.h); the owning shard calls process_key() with its own store, here
 * or after the request crossed shards. The reply bytes go to a sink, so the
 * same code serves local and forwarded requests. Pure: no syscalls, no
 * clock reads, no allocation beyond what the sink provides.
 */
#ifndef CORECACHE_CORE_PROCESS_H
#define CORECACHE_CORE_PROCESS_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "proto.h"
#include "sink.h"
#include "store.h"

struct process_env {
    struct store *store;
    const struct mc_clock *clock;
    mc_time_t now;
    /* The TTL policy (--default-ttl, --max-ttl; 0 = off): see
     * process_exptime(). */
    uint32_t default_ttl;
    uint32_t max_ttl;
};

/*
 * The one place where a client's exptime becomes engine time, for every
 * command of every protocol (classic, meta, binary): memcached's conversion
 * (mc_clock_exptime: 0 never, negative already expired, up to 30 days
 * relative, beyond that a unix time), then the server's TTL policy:
 *   - default_ttl D > 0: an exptime of 0 ("never expires") means D seconds
 *     from now, for every command that sets a TTL (storage, touch, gat,
 *     meta T and N, md x);
 *   - max_ttl M > 0: no TTL reaches past now + M: a later exptime, or
 *     "never", becomes now + M. An exptime already in the past (negative,
 *     or a unix time gone by) stays expired.
 * D and M are plain seconds (no 30-day rule). Pure; any thread.
 */
mc_time_t process_exptime(const struct process_env *env, int64_t exptime);

/*
 * Executes the keyed part of `req` for one key on env->store and appends
 * the reply to `out`:
 *   - retrievals (get/gets/gat/gats): "VALUE <key> <flags> <bytes>[ <cas>]\r\n
 *     <data>\r\n" on a hit, nothing on a miss (the caller ends with "END");
 *   - storage, delete, incr/decr, touch: the reply line, or nothing under
 *     noreply (errors too, as memcached's out_string);
 *   - meta commands (mg ms md ma me): see process_meta.h.
 * For a too-large storage request it unlinks the old item (set) and writes
 * req->error. A request of family PROTO_FAMILY_BINARY is answered in the
 * binary protocol instead (process_bin.h). Returns false only when the
 * sink could not provide memory. Runs on the shard that owns the store.
 */
bool process_key(const struct process_env *env, const struct proto_req *req, const char *key,
                 uint32_t nkey, uint64_t hash, struct sink *out) MC_MUST_CHECK;

/* The engine operation of a classic storage command (set add replace
 * append prepend cas); binary requests map their opcodes onto the same
 * commands. Any thread. */
enum store_op process_store_op(enum proto_cmd cmd);

/* Writes a get's `VALUE key flags bytes [cas]` line and the value. With a
 * store, values of 1 KiB or more go by reference (the sink's ref hook, the
 * item's segment pinned until the send); without one (NULL), the value is
 * copied, as for an item that is not the store's (core/peek.c's copy). */
bool process_write_value(struct store *store, const struct item *it, const char *key, uint32_t nkey,
                         bool with_cas, struct sink *out);

#endif
