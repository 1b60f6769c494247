/*
 * process_meta.c: meta commands meet the store (see process_meta.h).
 *
 * The parser (proto.c) has already answered every error memcached answers
 * before touching the cache. What is left follows memcached 1.6.18's
 * process_mget_command, _finalize_mset, process_mdelete_command,
 * process_marithmetic_command and process_meta_command:
 *
 *   - Return flags are written in the order the request gave them, by one
 *     walk over meta.order, and the walk also applies what memcached
 *     applies in it: for mg, T sets the TTL and N (on a created item) sets
 *     the vivify TTL and wins, so a later t shows the new TTL and a later R
 *     compares with it; for ma, T and N likewise. The walk keeps the TTL in
 *     a local and the engine is told the result once (store_meta_*).
 *   - Stampede protection (mg): W (won) goes to the creator of an N item,
 *     to an R request whose item expires before R's time and to the first
 *     reader of a stale item; the item then carries ITEM_TOKEN_SENT and
 *     every later reader sees Z, until md I or a new store resets it. A
 *     stale item (md I, ms C<older> I) shows X and is served as it is.
 *   - q suppresses EN (mg) and HD (ms, md, ma; for ma only after an
 *     increment, not after an N creation, as memcached); EX, NF, NS and
 *     errors are always sent.
 *   - mg and ma check the opaque's length (at most 31 bytes after the 'O')
 *     where memcached does, in the walk, after acting on the item: T, N and
 *     the increment stay done, the reply is the error alone.
 *   - Every TTL a meta command sets goes through process_exptime(), so the
 *     --default-ttl/--max-ttl policy holds for meta as for the classic
 *     commands. R is a threshold, not a TTL, and is converted plainly.
 *
 * Deliberate differences from 1.6.18, each where it loses what the client
 * asked for: ma's T applies to the stored item even when the new value is
 * longer than the old one (1.6.18 sets it on the replaced copy and the TTL
 * is lost); an item that mg or ma creates from a base64 key (b N) keeps its
 * key binary, so replies keep encoding it (1.6.18 echoes it raw, which can
 * break the reply line). E and md's x are 1.6.27's (1.6.18 refuses them).
 *
 * A reply line is built in a bounded local buffer (each flag appears once,
 * so its size is known) and copied out with the value in one reservation.
 */
#include "process_meta.h"

#include <stdio.h>
#include <string.h>

#include "base64.h"
#include "item.h"
#include "metrics.h"
#include "reply.h"

#define META_OPAQUE_LONG "CLIENT_ERROR opaque token too long"
/* memcached's limit on the O token, 'O' included. */
#define META_OPAQUE_MAX 32

/*
 * Longest reply line: "VA " + 10 digits, then each flag at most once
 * (s, t, c, f, l, h: at most 22 bytes each; O: 33; k: " k" + a 250-byte
 * key, or base64 of one + " b") and " Z X W", and "\r\n".
 */
#define META_LINE_MAX 1024
_Static_assert(3 + 10 + 6 * 22 + 33 + 4 + BASE64_ENCODED_LEN(PROTO_KEY_MAX) + 6 + 2 <= META_LINE_MAX,
               "a meta reply line fits its buffer");

struct meta_line {
    size_t len;
    char buf[META_LINE_MAX];
};

static void line_put(struct meta_line *line, const char *data, size_t n)
{
    if (n == 0)
        return; /* data may be NULL: an empty opaque ("O") after forwarding */
    memcpy(line->buf + line->len, data, n);
    line->len += n;
}

#define LINE_PUTS(line, literal) line_put((line), (literal), sizeof(literal) - 1)

static void line_u64(struct meta_line *line, uint64_t v)
{
    line->len += metrics_u64toa(v, line->buf + line->len);
}

/* " <flag><number>" */
static void line_flag_u64(struct meta_line *line, char flag, uint64_t v)
{
    line->buf[line->len++] = ' ';
    line->buf[line->len++] = flag;
    line_u64(line, v);
}

/* " <flag>" */
static void line_flag(struct meta_line *line, char flag)
{
    line->buf[line->len++] = ' ';
    line->buf[line->len++] = flag;
}

/* memcached's META_KEY: " k<key>", or " k<base64> b" for a binary key. */
static void line_key(struct meta_line *line, const char *key, size_t nkey, bool binary)
{
    line_flag(line, 'k');
    if (!binary) {
        line_put(line, key, nkey);
        return;
    }
    line->len += base64_encode(key, nkey, line->buf + line->len);
    LINE_PUTS(line, " b");
}

static bool opaque_too_long(const struct proto_req *req)
{
    return (size_t)req->nopaque + 1 > META_OPAQUE_MAX;
}

/* " O<opaque>" */
static void line_opaque(struct meta_line *line, const struct proto_req *req)
{
    line_flag(line, 'O');
    line_put(line, req->opaque, req->nopaque);
}

/* A TTL as t shows it: -1 for none, else the seconds left, as memcached's
 * unsigned subtraction (an item touched into the past shows a huge
 * number, as memcached's does). */
static void line_ttl(struct meta_line *line, mc_time_t exptime, mc_time_t now)
{
    if (exptime == 0) {
        LINE_PUTS(line, " t-1");
        return;
    }
    line_flag_u64(line, 't', (uint32_t)(exptime - now));
}

/* Writes the line, "\r\n", and (if value) the value and "\r\n". */
static bool emit(struct meta_line *line, const char *value, size_t nvalue, bool with_value,
                 struct sink *out)
{
    size_t total = line->len + 2 + (with_value ? nvalue + 2 : 0);
    char *p = sink_reserve(out, total);
    if (p == NULL)
        return false;
    memcpy(p, line->buf, line->len);
    p += line->len;
    *p++ = '\r';
    *p++ = '\n';
    if (with_value) {
        memcpy(p, value, nvalue);
        p += nvalue;
        *p++ = '\r';
        *p++ = '\n';
    }
    sink_commit(out, total);
    return true;
}

static bool emit_error(const char *error, struct sink *out)
{
    return reply_put_line(out, error, strlen(error));
}

/*
 * The O flag in mg's and ma's walk: " O<opaque>", or false when it is too
 * long; then, as memcached, what the walk did so far stays done (the TTL
 * it set is applied), with no bump and nothing counted.
 */
static bool walk_opaque(const struct process_env *env, const struct proto_req *req, const struct item *it,
                        bool exptime_set, mc_time_t exptime, struct meta_line *line)
{
    if (opaque_too_long(req)) {
        if (exptime_set)
            store_meta_set_exptime(env->store, it, exptime);
        return false;
    }
    line_opaque(line, req);
    return true;
}

/* The trailing O and k flags of a reply without an item (EN, NF, EX, NS),
 * in request order. False when the opaque is too long (mg, ma check it
 * here; ms and md were refused by the parser). */
static bool line_tail_flags(struct meta_line *line, const struct proto_req *req, const char *key,
                            uint32_t nkey)
{
    const struct proto_meta *m = &req->meta;
    bool binary = proto_meta_has(m, 'b');
    for (unsigned i = 0; i < m->nflags; i++) {
        switch (m->order[i]) {
        case 'O':
            if (opaque_too_long(req))
                return false;
            line_opaque(line, req);
            break;
        case 'k':
            line_key(line, key, nkey, binary);
            break;
        default:
            break;
        }
    }
    return true;
}

/* --- mg ------------------------------------------------------------------- */

static bool meta_get(const struct process_env *env, const struct proto_req *req, const char *key,
                     uint32_t nkey, uint64_t hash, struct sink *out)
{
    const struct proto_meta *m = &req->meta;
    struct store_vivify viv = {
        .exptime = process_exptime(env, 0),
        .cas = m->new_cas,
        .key_binary = proto_meta_has(m, 'b'),
    };
    bool created;
    const struct item *it = store_meta_get(env->store, key, nkey, hash,
                                           proto_meta_has(m, 'N') ? &viv : NULL, &created);
    struct meta_line line = {.len = 0};

    if (it == NULL) {
        store_meta_get_done(env->store, NULL, false, false, false);
        LINE_PUTS(&line, "EN");
        if (!line_tail_flags(&line, req, key, nkey))
            return emit_error(META_OPAQUE_LONG, out);
        if (proto_meta_has(m, 'q'))
            return true;
        return emit(&line, NULL, 0, false, out);
    }

    bool with_value = proto_meta_has(m, 'v');
    if (with_value) {
        LINE_PUTS(&line, "VA ");
        line_u64(&line, item_nbytes(it));
    } else {
        LINE_PUTS(&line, "HD");
    }
    mc_time_t now = env->now;
    mc_time_t exptime = item_exptime(it);
    bool exptime_set = false, touched = false, won = false;
    for (unsigned i = 0; i < m->nflags; i++) {
        switch (m->order[i]) {
        case 'T':
            touched = true;
            exptime = process_exptime(env, m->ttl);
            exptime_set = true;
            break;
        case 'N':
            if (created) {
                exptime = process_exptime(env, m->vivify_ttl);
                exptime_set = true;
                won = true;
            }
            break;
        case 'R':
            /* recache: the TTL left is below R's, and nobody won yet */
            if (!item_token_sent(it) && !created && exptime != 0 &&
                exptime < mc_clock_exptime(env->clock, now, m->recache_ttl))
                won = true;
            break;
        case 's':
            line_flag_u64(&line, 's', item_nbytes(it));
            break;
        case 't':
            line_ttl(&line, exptime, now);
            break;
        case 'c':
            line_flag_u64(&line, 'c', item_cas(it));
            break;
        case 'f':
            line_flag_u64(&line, 'f', item_flags(it));
            break;
        case 'l':
            line_flag_u64(&line, 'l', (uint32_t)(now - item_atime(it)));
            break;
        case 'h':
            line_flag_u64(&line, 'h', item_fetched(it) ? 1 : 0);
            break;
        case 'O':
            if (!walk_opaque(env, req, it, exptime_set, exptime, &line))
                return emit_error(META_OPAQUE_LONG, out);
            break;
        case 'k':
            line_key(&line, item_key(it), item_nkey(it), item_key_binary(it));
            break;
        default:
            break;
        }
    }
    /* Z before X, and W last, so W never shows with Z (memcached's order) */
    if (item_token_sent(it))
        line_flag(&line, 'Z');
    if (item_stale(it)) {
        line_flag(&line, 'X');
        if (!item_token_sent(it))
            won = true; /* the first reader of a stale item recomputes it */
    }
    if (won)
        line_flag(&line, 'W');
    if (exptime_set)
        store_meta_set_exptime(env->store, it, exptime);
    bool ok = emit(&line, item_value(it), item_nbytes(it), with_value, out);
    store_meta_get_done(env->store, it, touched, won, !proto_meta_has(m, 'u'));
    return ok;
}

/* --- ms ------------------------------------------------------------------- */

static enum store_op meta_set_op(const struct proto_meta *m)
{
    enum store_op op;
    switch (m->mode) {
    case 'E':
        op = STORE_ADD;
        break;
    case 'A':
        op = STORE_APPEND;
        break;
    case 'P':
        op = STORE_PREPEND;
        break;
    case 'R':
        op = STORE_REPLACE;
        break;
    default: /* 'S' or none (the parser refused the rest) */
        op = STORE_SET;
        break;
    }
    /* memcached: a C upgrades set and replace to cas */
    if (proto_meta_has(m, 'C') && (op == STORE_SET || op == STORE_REPLACE))
        op = STORE_CAS;
    return op;
}

static bool meta_set(const struct process_env *env, const struct proto_req *req, const char *key,
                     uint32_t nkey, uint64_t hash, struct sink *out)
{
    const struct proto_meta *m = &req->meta;
    struct store_mset ms = {
        .op = meta_set_op(m),
        .flags = m->client_flags,
        .exptime = process_exptime(env, proto_meta_has(m, 'T') ? m->ttl : 0),
        .value = req->too_large ? NULL : req->value,
        .nbytes = req->nbytes,
        .cas = m->cas,
        .invalidate = proto_meta_has(m, 'I'),
        .new_cas = m->new_cas,
        .key_binary = proto_meta_has(m, 'b'),
    };
    uint64_t cas = 0;
    enum mc_status st;
    if (req->too_large && store_item_fits(env->store, nkey, req->nbytes)) {
        /* The parser and the store disagree on the limit: never read the
         * swallowed value. Cannot happen while both use store_item_total. */
        st = MC_E2BIG;
    } else {
        st = store_mset(env->store, key, nkey, hash, &ms, &cas);
    }

    enum reply_code code = reply_of_store(st);
    if (reply_is_error(code))
        return emit_error(reply_meta(code), out);
    if (code == REPLY_STORED && proto_meta_has(m, 'q'))
        return true;
    struct meta_line line = {.len = 0};
    line_put(&line, reply_meta(code), 2);
    bool binary = proto_meta_has(m, 'b');
    for (unsigned i = 0; i < m->nflags; i++) {
        switch (m->order[i]) {
        case 'O':
            line_opaque(&line, req);
            break;
        case 'k':
            line_key(&line, key, nkey, binary);
            break;
        case 'c':
            line_flag_u64(&line, 'c', cas);
            break;
        default:
            break;
        }
    }
    return emit(&line, NULL, 0, false, out);
}

/* --- md ------------------------------------------------------------------- */

static bool meta_delete(const struct process_env *env, const struct proto_req *req,
                        const char *key, uint32_t nkey, uint64_t hash, struct sink *out)
{
    const struct proto_meta *m = &req->meta;
    struct store_mdelete d = {
        .has_cas = proto_meta_has(m, 'C'),
        .cas = m->cas,
        .invalidate = proto_meta_has(m, 'I'),
        .has_ttl = proto_meta_has(m, 'T'),
        .exptime = process_exptime(env, proto_meta_has(m, 'T') ? m->ttl : 0),
        .remove_value = proto_meta_has(m, 'x'),
        .flags = m->client_flags,
        .new_cas = m->new_cas,
    };
    enum reply_code code = reply_of_delete(store_mdelete(env->store, key, nkey, hash, &d));
    if (reply_is_error(code))
        return emit_error(reply_meta(code), out);
    if (code == REPLY_DELETED && proto_meta_has(m, 'q'))
        return true;
    struct meta_line line = {.len = 0};
    line_put(&line, reply_meta(code), 2);
    (void)line_tail_flags(&line, req, key, nkey); /* the parser checked the opaque */
    return emit(&line, NULL, 0, false, out);
}

/* --- ma ------------------------------------------------------------------- */

static bool meta_arith(const struct process_env *env, const struct proto_req *req,
                       const char *key, uint32_t nkey, uint64_t hash, struct sink *out)
{
    const struct proto_meta *m = &req->meta;
    struct store_vivify viv = {
        .exptime = process_exptime(env, 0),
        .cas = m->new_cas,
        .key_binary = proto_meta_has(m, 'b'),
    };
    struct store_marith a = {
        .incr = m->mode != 'D' && m->mode != '-',
        .delta = m->delta,
        .cas = m->cas,
        .new_cas = m->new_cas,
        .viv = proto_meta_has(m, 'N') ? &viv : NULL,
        .initial = m->initial,
    };
    struct store_marith_result r;
    enum mc_status st = store_marith(env->store, key, nkey, hash, &a, &r);
    struct meta_line line = {.len = 0};
    if (st != MC_OK) {
        enum reply_code code = reply_of_arith(st);
        if (code == REPLY_NOMEM && r.missed)
            return emit_error("SERVER_ERROR Out of memory allocating new item", out);
        if (reply_is_error(code))
            return emit_error(reply_meta(code), out);
        line_put(&line, reply_meta(code), 2); /* NF, EX */
        if (!line_tail_flags(&line, req, key, nkey))
            return emit_error(META_OPAQUE_LONG, out);
        return emit(&line, NULL, 0, false, out);
    }

    const struct item *it = r.it;
    char digits[20];
    size_t ndigits = metrics_u64toa(r.value, digits);
    bool with_value = proto_meta_has(m, 'v');
    if (with_value) {
        LINE_PUTS(&line, "VA ");
        line_u64(&line, ndigits);
    } else {
        LINE_PUTS(&line, "HD");
    }
    mc_time_t exptime = item_exptime(it);
    bool exptime_set = false;
    bool binary = proto_meta_has(m, 'b');
    for (unsigned i = 0; i < m->nflags; i++) {
        switch (m->order[i]) {
        case 'c':
            line_flag_u64(&line, 'c', item_cas(it));
            break;
        case 't':
            line_ttl(&line, exptime, env->now);
            break;
        case 'T':
            exptime = process_exptime(env, m->ttl);
            exptime_set = true;
            break;
        case 'N':
            if (r.created) {
                exptime = process_exptime(env, m->vivify_ttl);
                exptime_set = true;
            }
            break;
        case 'O':
            if (!walk_opaque(env, req, it, exptime_set, exptime, &line))
                return emit_error(META_OPAQUE_LONG, out);
            break;
        case 'k':
            line_key(&line, key, nkey, binary);
            break;
        default:
            break;
        }
    }
    if (exptime_set)
        store_meta_set_exptime(env->store, it, exptime);
    /* q hides the HD of an increment, not of an N creation (memcached) */
    if (proto_meta_has(m, 'q') && !r.created)
        return true;
    return emit(&line, digits, ndigits, with_value, out);
}

/* --- me ------------------------------------------------------------------- */

static bool meta_debug(const struct process_env *env, const char *key, uint32_t nkey,
                       uint64_t hash, struct sink *out)
{
    const struct item *it = store_meta_debug(env->store, key, nkey, hash);
    if (it == NULL)
        return sink_puts(out, "EN\r\n");
    struct meta_line line = {.len = 0};
    LINE_PUTS(&line, "ME ");
    if (item_key_binary(it))
        line.len += base64_encode(item_key(it), item_nkey(it), line.buf + line.len);
    else
        line_put(&line, item_key(it), item_nkey(it));
    /* exp is 1.6.18's: now - exptime, so a live item shows minus its TTL
     * (memcached fixed the sign later; we follow the reference) */
    mc_time_t exptime = item_exptime(it);
    int32_t exp = exptime == 0 ? -1 : (int32_t)(env->now - exptime);
    int n = snprintf(line.buf + line.len, sizeof(line.buf) - line.len,
                     " exp=%d la=%u cas=%llu fetch=%s cls=%u size=%zu", exp,
                     (unsigned)(env->now - item_atime(it)), (unsigned long long)item_cas(it),
                     item_fetched(it) ? "yes" : "no", store_item_class(env->store, it), item_total(it));
    if (n < 0 || (size_t)n >= sizeof(line.buf) - line.len)
        return emit_error("SERVER_ERROR output line too long", out);
    line.len += (size_t)n;
    return emit(&line, NULL, 0, false, out);
}

bool process_meta_key(const struct process_env *env, const struct proto_req *req, const char *key,
                      uint32_t nkey, uint64_t hash, struct sink *out)
{
    switch (req->cmd) {
    case PROTO_MG:
        return meta_get(env, req, key, nkey, hash, out);
    case PROTO_MS:
        return meta_set(env, req, key, nkey, hash, out);
    case PROTO_MD:
        return meta_delete(env, req, key, nkey, hash, out);
    case PROTO_MA:
        return meta_arith(env, req, key, nkey, hash, out);
    case PROTO_ME:
        return meta_debug(env, key, nkey, hash, out);
    default:
        return true;
    }
}
