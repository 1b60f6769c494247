/*
 * process_bin.c: a binary request meets the store (see process_bin.h).
 *
 * The engine calls are the text protocol's (store_get, store_set, ...);
 * what differs is how outcomes are answered, memcached 1.6.18's
 * proto_bin.c rules:
 *   - a hit of get/getk/gat/gatk answers flags as extras, the key for the
 *     k variants, the value, and the item's CAS in the header; touch
 *     answers the flags and CAS only;
 *   - a miss answers KEY_ENOENT "Not found", except getk/gatk, whose miss
 *     carries the key as its body and no text; quiet variants answer
 *     nothing on a miss and the value on a hit;
 *   - every store carries the client's CAS: set/add/replace with a CAS are
 *     a cas command (memcached turns them into NREAD_CAS), append/prepend
 *     and delete with a CAS must match the item's; a success answers the
 *     new CAS;
 *   - add that finds the key answers KEY_EEXISTS, replace that misses
 *     KEY_ENOENT, other refusals NOT_STORED;
 *   - incr/decr answer the new value as 8 big-endian bytes; a miss creates
 *     the item with `initial` (flags 0, the request's expiration) unless
 *     the expiration is 0xffffffff;
 *   - quiet commands answer nothing on success, errors always.
 *
 * A CAS compare that the store does not do itself (append, delete,
 * incr/decr) is a store_peek() just before the write: the store is the
 * shard's alone, so nothing can run in between.
 */
#include "process_bin.h"

#include <string.h>

#include "item.h"
#include "metrics.h"
#include "process.h"
#include "proto_bin.h"
#include "reply.h"

static inline void put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

/* A hit: header (flags as extras), the key if asked for, the value unless
 * this is a touch; one reservation. */
static bool write_hit(const struct proto_req *req, const struct item *it, const char *key, uint32_t nkey,
                      bool with_value, struct sink *out)
{
    uint32_t keylen = req->bin.return_key ? nkey : 0;
    size_t nbytes = with_value ? item_nbytes(it) : 0;
    size_t body = 4 + (size_t)keylen + nbytes;
    char *p = sink_reserve(out, PROTO_BIN_HEADER_LEN + body);
    if (p == NULL)
        return false;
    proto_bin_header(p, req, PROTO_BIN_SUCCESS, 4, (uint16_t)keylen, (uint32_t)body, item_cas(it));
    char *q = p + PROTO_BIN_HEADER_LEN;
    put32(q, item_flags(it));
    q += 4;
    memcpy(q, key, keylen);
    q += keylen;
    if (nbytes > 0)
        memcpy(q, item_value(it), nbytes);
    sink_commit(out, PROTO_BIN_HEADER_LEN + body);
    return true;
}

/* A miss of get/gat: the key alone for the k variants, else "Not found";
 * nothing when quiet. */
static bool write_miss(const struct proto_req *req, const char *key, uint32_t nkey, struct sink *out)
{
    if (req->bin.quiet)
        return true;
    if (req->bin.return_key)
        return proto_bin_reply(req, PROTO_BIN_KEY_ENOENT, key, (uint16_t)nkey, NULL, 0, 0, out);
    return proto_bin_error(req, PROTO_BIN_KEY_ENOENT, NULL, out);
}

/* An incr/decr result: the value as 8 big-endian bytes. */
static bool write_number(const struct proto_req *req, uint64_t value, uint64_t cas, struct sink *out)
{
    if (req->bin.quiet)
        return true;
    char be[8];
    put32(be, (uint32_t)(value >> 32));
    put32(be + 4, (uint32_t)value);
    return proto_bin_reply(req, PROTO_BIN_SUCCESS, NULL, 0, be, 8, cas, out);
}

/* A client CAS that is given and differs from the live item's. */
static bool cas_mismatch(const struct process_env *env, const struct proto_req *req, const char *key,
                         uint32_t nkey, uint64_t hash)
{
    if (req->cas == 0)
        return false;
    const struct item *it = store_peek(env->store, key, nkey, hash);
    return it != NULL && item_cas(it) != req->cas;
}

static bool process_store(const struct process_env *env, const struct proto_req *req, const char *key,
                          uint32_t nkey, uint64_t hash, struct sink *out)
{
    enum store_op op = process_store_op(req->cmd);
    bool concat = op == STORE_APPEND || op == STORE_PREPEND;
    enum mc_status st;
    uint64_t cas = 0;
    if (req->too_large && store_item_fits(env->store, nkey, req->nbytes)) {
        /* The parser and the store disagree on the limit: never read the
         * swallowed value. Cannot happen while both use store_item_total. */
        st = MC_E2BIG;
    } else if (!req->too_large && concat && cas_mismatch(env, req, key, nkey, hash)) {
        st = MC_EXISTS;
    } else {
        /* A set/add/replace with a CAS is a cas, unless too large: then a
         * set still unlinks the old item, as memcached's does. */
        if (req->cas != 0 && !concat && !req->too_large)
            op = STORE_CAS;
        st = store_set(env->store, op, key, nkey, hash, req->flags, process_exptime(env, req->exptime),
                       req->too_large ? NULL : req->value, req->nbytes, req->cas, &cas);
    }
    enum reply_code code = reply_of_store(st);
    /* memcached names the reason a binary add or replace was not stored */
    if (code == REPLY_NOT_STORED && op == STORE_ADD)
        code = REPLY_EXISTS;
    else if (code == REPLY_NOT_STORED && op == STORE_REPLACE)
        code = REPLY_NOT_FOUND;
    return reply_bin(req, code, cas, out);
}

/* A miss of incr/decr: create the item with `initial` (memcached's
 * complete_incr_bin), unless the expiration said not to. */
static bool process_arith_miss(const struct process_env *env, const struct proto_req *req, const char *key,
                               uint32_t nkey, uint64_t hash, struct sink *out)
{
    if (req->bin.no_create)
        return proto_bin_error(req, PROTO_BIN_KEY_ENOENT, NULL, out);
    char digits[20];
    size_t len = metrics_u64toa(req->bin.initial, digits);
    uint64_t cas = 0;
    enum mc_status st = store_set(env->store, STORE_ADD, key, nkey, hash, 0,
                                  process_exptime(env, req->exptime), digits, len, 0, &cas);
    switch (st) {
    case MC_OK:
        return write_number(req, req->bin.initial, cas, out);
    case MC_NOT_STORED:
        return proto_bin_error(req, PROTO_BIN_NOT_STORED, NULL, out);
    default:
        return proto_bin_error(req, PROTO_BIN_ENOMEM, "Out of memory allocating new item", out);
    }
}

static bool process_arith(const struct process_env *env, const struct proto_req *req, const char *key,
                          uint32_t nkey, uint64_t hash, struct sink *out)
{
    if (cas_mismatch(env, req, key, nkey, hash))
        return reply_bin(req, REPLY_EXISTS, 0, out);
    uint64_t value = 0;
    enum mc_status st = store_arith(env->store, key, nkey, hash, req->cmd == PROTO_INCR, req->delta, &value);
    if (st == MC_OK) {
        const struct item *it = store_peek(env->store, key, nkey, hash);
        return write_number(req, value, it != NULL ? item_cas(it) : 0, out);
    }
    if (st == MC_NOT_FOUND)
        return process_arith_miss(env, req, key, nkey, hash, out);
    return reply_bin(req, reply_of_arith(st), 0, out);
}

bool process_bin_get_reply(const struct proto_req *req, const struct item *it, const char *key,
                           uint32_t nkey, struct sink *out)
{
    return it != NULL ? write_hit(req, it, key, nkey, true, out) : write_miss(req, key, nkey, out);
}

bool process_bin_key(const struct process_env *env, const struct proto_req *req, const char *key,
                     uint32_t nkey, uint64_t hash, struct sink *out)
{
    const struct item *it;
    switch (req->cmd) {
    case PROTO_GET:
        it = store_get(env->store, key, nkey, hash);
        return it != NULL ? write_hit(req, it, key, nkey, true, out) : write_miss(req, key, nkey, out);
    case PROTO_GAT:
    case PROTO_TOUCH: {
        bool touch = req->cmd == PROTO_TOUCH;
        it = store_gat(env->store, key, nkey, hash, process_exptime(env, req->exptime));
        if (it != NULL)
            return write_hit(req, it, key, nkey, !touch, out);
        return touch ? proto_bin_error(req, PROTO_BIN_KEY_ENOENT, NULL, out) : write_miss(req, key, nkey, out);
    }
    case PROTO_SET:
    case PROTO_ADD:
    case PROTO_REPLACE:
    case PROTO_APPEND:
    case PROTO_PREPEND:
        return process_store(env, req, key, nkey, hash, out);
    case PROTO_DELETE:
        if (cas_mismatch(env, req, key, nkey, hash))
            return reply_bin(req, REPLY_EXISTS, 0, out);
        return reply_bin(req, reply_of_delete(store_delete(env->store, key, nkey, hash)), 0, out);
    case PROTO_INCR:
    case PROTO_DECR:
        return process_arith(env, req, key, nkey, hash, out);
    default:
        /* Not a keyed binary command: nothing to do here. */
        return true;
    }
}
