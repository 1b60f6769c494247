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
 * Engine outcomes become reply words through reply.h's one table; meta
 * commands are composed in process_meta.c, binary ones in process_bin.c.
 * A value is written with one reservation: the header line and the data
 * are contiguous, and the item is read exactly once. A value of at least
 * PROCESS_REF_MIN bytes, into a sink that can reference bytes (a
 * connection's output queue), is not copied: the sink sends it from the
 * store in place, the item's segment pinned (store_ref_get) until the
 * send completed (store_ref_release).
 */
#include "process.h"

#include <string.h>

#include "item.h"
#include "metrics.h"
#include "reply.h"

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

/* Values this large are sent in place rather than copied (an iovec and a
 * pin cost more than copying a small value). */
#define PROCESS_REF_MIN 1024

bool process_write_value(struct store *store, const struct item *it, const char *key, uint32_t nkey,
                         bool with_cas, struct sink *out)
{
    size_t nbytes = item_nbytes(it);
    bool by_ref = store != NULL && out->ref != NULL && nbytes >= PROCESS_REF_MIN;
    size_t copied = by_ref ? 0 : nbytes; /* by reference: the header only */
    /* "VALUE " key " " flags(10) " " bytes(10) " " cas(20) "\r\n" data "\r\n" */
    size_t max = 6 + nkey + 1 + 10 + 1 + 10 + 1 + 20 + 2 + copied + 2;
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
    if (by_ref) {
        sink_commit(out, (size_t)(p - start));
        struct store_ref ref = store_ref_get(store, it);
        if (!out->ref(out, item_value(it), item_nbytes(it), store_ref_release, store)) {
            store_ref_put(store, ref);
            return false;
        }
        return sink_puts(out, "\r\n");
    }
    memcpy(p, item_value(it), nbytes);
    p += nbytes;
    *p++ = '\r';
    *p++ = '\n';
    sink_commit(out, (size_t)(p - start));
    return true;
}

enum store_op process_store_op(enum proto_cmd cmd)
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
        st = store_set(env->store, process_store_op(req->cmd), key, nkey, hash, req->flags, exptime,
                       req->too_large ? NULL : req->value, req->nbytes, req->cas, NULL);
    }
    return reply_line(req, reply_of_store(st), out);
}

static bool process_arith(const struct process_env *env, const struct proto_req *req,
                          const char *key, uint32_t nkey, uint64_t hash, struct sink *out)
{
    uint64_t value = 0;
    enum mc_status st = store_arith(env->store, key, nkey, hash, req->cmd == PROTO_INCR, req->delta, &value);
    if (st != MC_OK)
        return reply_line(req, reply_of_arith(st), out);
    char num[20];
    return req->noreply || reply_put_line(out, num, metrics_u64toa(value, num));
}

bool process_key(const struct process_env *env, const struct proto_req *req, const char *key,
                 uint32_t nkey, uint64_t hash, struct sink *out)
{
    const struct item *it;
    switch (req->cmd) {
    case PROTO_GET:
    case PROTO_GETS:
        it = store_get(env->store, key, nkey, hash);
        return it == NULL || process_write_value(env->store, it, key, nkey, req->cmd == PROTO_GETS, out);
    case PROTO_GAT:
    case PROTO_GATS:
        it = store_gat(env->store, key, nkey, hash, process_exptime(env, req->exptime));
        return it == NULL || process_write_value(env->store, it, key, nkey, req->cmd == PROTO_GATS, out);
    case PROTO_SET:
    case PROTO_ADD:
    case PROTO_REPLACE:
    case PROTO_APPEND:
    case PROTO_PREPEND:
    case PROTO_CAS:
        return process_store(env, req, key, nkey, hash, out);
    case PROTO_DELETE:
        return reply_line(req, reply_of_delete(store_delete(env->store, key, nkey, hash)), out);
    case PROTO_INCR:
    case PROTO_DECR:
        return process_arith(env, req, key, nkey, hash, out);
    case PROTO_TOUCH:
        return reply_line(req,
                          store_touch(env->store, key, nkey, hash, process_exptime(env, req->exptime)) == MC_OK
                              ? REPLY_TOUCHED
                              : REPLY_NOT_FOUND,
                          out);
    default:
        /* Not a keyed command: nothing to do here. */
        return true;
    }
}
