/*
 * process.c: a parsed request meets the store (see process.h).
 *
 * This is the one place that turns engine outcomes into memcached's reply
 * words, for requests executed here or on behalf of another shard: the
 * caller's sink decides where the bytes go. The rules are memcached 1.6's:
 *   - noreply suppresses every reply of the command, errors included
 *     (memcached's out_string skips the response under noreply);
 *   - a retrieval writes "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n"
 *     per hit and nothing per miss; the caller appends "END\r\n";
 *   - client exptimes are converted here (process_exptime: memcached's
 *     conversion plus the --default-ttl/--max-ttl policy), with this
 *     shard's clock, so the store only sees engine time.
 * Meta commands are composed in process_meta.c.
 * A value is written with one reservation: the header line and the data
 * are contiguous, and the item is read exactly once.
 */
#include "process.h"

#include <string.h>

#include "item.h"
#include "metrics.h"
#include "process_bin.h"
#include "process_meta.h"

mc_time_t process_exptime(const struct process_env *env, int64_t exptime)
{
    mc_time_t t;
    if (exptime == 0 && env->default_ttl != 0) {
        uint64_t rel = (uint64_t)env->now + env->default_ttl;
        t = rel > UINT32_MAX ? UINT32_MAX : (mc_time_t)rel;
    } else {
        t = mc_clock_exptime(env->clock, env->now, exptime);
    }
    if (env->max_ttl != 0) {
        uint64_t cap = (uint64_t)env->now + env->max_ttl;
        if (cap > UINT32_MAX)
            cap = UINT32_MAX;
        if (t == 0 || t > cap)
            t = (mc_time_t)cap;
    }
    return t;
}

/* Appends "<line>\r\n" unless the request is noreply. */
static bool reply(const struct proto_req *req, struct sink *out, const char *line, size_t len)
{
    if (req->noreply)
        return true;
    char *p = sink_reserve(out, len + 2);
    if (p == NULL)
        return false;
    memcpy(p, line, len);
    p[len] = '\r';
    p[len + 1] = '\n';
    sink_commit(out, len + 2);
    return true;
}

#define REPLY(req, out, literal) reply((req), (out), (literal), sizeof(literal) - 1)

bool process_reply_line(const struct proto_req *req, const char *line, struct sink *out)
{
    return reply(req, out, line, strlen(line));
}

static bool write_value(const struct item *it, const char *key, uint32_t nkey, bool with_cas,
                        struct sink *out)
{
    size_t nbytes = item_nbytes(it);
    /* "VALUE " key " " flags(10) " " bytes(10) " " cas(20) "\r\n" data "\r\n" */
    size_t max = 6 + nkey + 1 + 10 + 1 + 10 + 1 + 20 + 2 + nbytes + 2;
    char *start = sink_reserve(out, max);
    if (start == NULL)
        return false;
    char *p = start;
    memcpy(p, "VALUE ", 6);
    p += 6;
    memcpy(p, key, nkey);
    p += nkey;
    *p++ = ' ';
    p += metrics_u64toa(item_flags(it), p);
    *p++ = ' ';
    p += metrics_u64toa(nbytes, p);
    if (with_cas) {
        *p++ = ' ';
        p += metrics_u64toa(item_cas(it), p);
    }
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, item_value(it), nbytes);
    p += nbytes;
    *p++ = '\r';
    *p++ = '\n';
    sink_commit(out, (size_t)(p - start));
    return true;
}

static enum store_op store_op_of(enum proto_cmd cmd)
{
    switch (cmd) {
    case PROTO_ADD:
        return STORE_ADD;
    case PROTO_REPLACE:
        return STORE_REPLACE;
    case PROTO_APPEND:
        return STORE_APPEND;
    case PROTO_PREPEND:
        return STORE_PREPEND;
    case PROTO_CAS:
        return STORE_CAS;
    default:
        return STORE_SET;
    }
}

static bool process_store(const struct process_env *env, const struct proto_req *req,
                          const char *key, uint32_t nkey, uint64_t hash, struct sink *out)
{
    mc_time_t exptime = process_exptime(env, req->exptime);
    enum mc_status st;
    if (req->too_large && store_item_fits(env->store, nkey, req->nbytes)) {
        /* The parser and the store disagree on the limit: never read the
         * swallowed value. Cannot happen while both use store_item_total. */
        st = MC_E2BIG;
    } else {
        /* Too large: the store refuses before reading the value, counts
         * store_too_large and, for set, unlinks the old item. */
        st = store_set(env->store, store_op_of(req->cmd), key, nkey, hash, req->flags, exptime,
                       req->too_large ? NULL : req->value, req->nbytes, req->cas, NULL);
    }
    switch (st) {
    case MC_OK:
        return REPLY(req, out, "STORED");
    case MC_EXISTS:
        return REPLY(req, out, "EXISTS");
    case MC_NOT_FOUND:
        return REPLY(req, out, "NOT_FOUND");
    case MC_NOT_STORED:
        return REPLY(req, out, "NOT_STORED");
    case MC_E2BIG:
        return REPLY(req, out, "SERVER_ERROR object too large for cache");
    case MC_ENOMEM:
        return REPLY(req, out, "SERVER_ERROR out of memory storing object");
    default:
        return REPLY(req, out, "SERVER_ERROR Unhandled storage type.");
    }
}

static bool process_arith(const struct process_env *env, const struct proto_req *req,
                          const char *key, uint32_t nkey, uint64_t hash, struct sink *out)
{
    uint64_t value = 0;
    enum mc_status st = store_arith(env->store, key, nkey, hash, req->cmd == PROTO_INCR, req->delta, &value);
    switch (st) {
    case MC_OK: {
        char num[20];
        return reply(req, out, num, metrics_u64toa(value, num));
    }
    case MC_NOT_FOUND:
        return REPLY(req, out, "NOT_FOUND");
    case MC_NON_NUMERIC:
        return REPLY(req, out, "CLIENT_ERROR cannot increment or decrement non-numeric value");
    default:
        return REPLY(req, out, "SERVER_ERROR out of memory");
    }
}

bool process_key(const struct process_env *env, const struct proto_req *req, const char *key,
                 uint32_t nkey, uint64_t hash, struct sink *out)
{
    if (req->family == PROTO_FAMILY_BINARY) /* binary replies: process_bin.c */
        return process_bin_key(env, req, key, nkey, hash, out);
    const struct item *it;
    switch (req->cmd) {
    case PROTO_GET:
    case PROTO_GETS:
        it = store_get(env->store, key, nkey, hash);
        return it == NULL || write_value(it, key, nkey, req->cmd == PROTO_GETS, out);
    case PROTO_GAT:
    case PROTO_GATS:
        it = store_gat(env->store, key, nkey, hash, process_exptime(env, req->exptime));
        return it == NULL || write_value(it, key, nkey, req->cmd == PROTO_GATS, out);
    case PROTO_SET:
    case PROTO_ADD:
    case PROTO_REPLACE:
    case PROTO_APPEND:
    case PROTO_PREPEND:
    case PROTO_CAS:
        return process_store(env, req, key, nkey, hash, out);
    case PROTO_DELETE:
        if (store_delete(env->store, key, nkey, hash) == MC_OK)
            return REPLY(req, out, "DELETED");
        return REPLY(req, out, "NOT_FOUND");
    case PROTO_INCR:
    case PROTO_DECR:
        return process_arith(env, req, key, nkey, hash, out);
    case PROTO_TOUCH:
        if (store_touch(env->store, key, nkey, hash, process_exptime(env, req->exptime)) == MC_OK)
            return REPLY(req, out, "TOUCHED");
        return REPLY(req, out, "NOT_FOUND");
    case PROTO_MG:
    case PROTO_MS:
    case PROTO_MD:
    case PROTO_MA:
    case PROTO_ME:
        return process_meta_key(env, req, key, nkey, hash, out);
    default:
        /* Not a keyed command: nothing to do here. */
        return true;
    }
}
