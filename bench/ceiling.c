/*
 * ceiling.c: the io_uring ceiling server, corecache's runtime without the
 * cache.
 *
 * It is corecache's own process (io/app.c): the same shards, rings,
 * provided buffers, multishot accept and recv, parsing (core/proto.c) and
 * output chains, answering every request from a fixed reply instead of a
 * store: no hashing, no routing, no lookups. Its throughput is what this
 * machine's kernel, network stack and our runtime allow; corecache's
 * distance to it is the cost of the cache itself.
 *
 * Replies: a retrieval answers a hit for every key, with a value as long as
 * the last value this shard was asked to store (100 bytes until then), so a
 * workload's reply sizes match corecache's; storage commands answer STORED,
 * delete DELETED, touch TOUCHED, incr/decr 1, and noreply is honoured.
 * Binary requests get the same answers as binary packets.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "core/metrics.h"
#include "core/proto_bin.h"

#define CEILING_DEFAULT_VALUE 100

struct ceiling_state {
    char *value;     /* the fixed value bytes */
    size_t cap;
    size_t nbytes;   /* the reply's value length */
};

static bool reply(const struct proto_req *req, struct sink *out, const char *line, size_t len)
{
    return req->noreply || sink_put(out, line, len);
}

static bool ceiling_value(struct ceiling_state *st, size_t nbytes)
{
    if (nbytes > st->cap) {
        char *value = realloc(st->value, nbytes);
        if (value == NULL)
            return false;
        memset(value + st->cap, 'x', nbytes - st->cap);
        st->value = value;
        st->cap = nbytes;
    }
    st->nbytes = nbytes;
    return true;
}

/* The same fixed replies in the binary protocol (quiet commands answer
 * nothing on success). */
static bool ceiling_binary(struct sink *out, struct ceiling_state *st, const struct proto_req *req,
                           const char *key, uint32_t nkey)
{
    static const char one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    switch (req->cmd) {
    case PROTO_GET:
    case PROTO_GAT:
    case PROTO_TOUCH: {
        uint32_t keylen = req->bin.return_key ? nkey : 0;
        size_t nbytes = req->cmd == PROTO_TOUCH ? 0 : st->nbytes;
        size_t body = 4 + keylen + nbytes;
        char *p = sink_reserve(out, PROTO_BIN_HEADER_LEN + body);
        if (p == NULL)
            return false;
        proto_bin_header(p, req, PROTO_BIN_SUCCESS, 4, (uint16_t)keylen, (uint32_t)body, 1);
        memset(p + PROTO_BIN_HEADER_LEN, 0, 4); /* flags */
        memcpy(p + PROTO_BIN_HEADER_LEN + 4, key, keylen);
        memcpy(p + PROTO_BIN_HEADER_LEN + 4 + keylen, st->value, nbytes);
        sink_commit(out, PROTO_BIN_HEADER_LEN + body);
        return true;
    }
    case PROTO_SET:
    case PROTO_ADD:
    case PROTO_REPLACE:
    case PROTO_APPEND:
    case PROTO_PREPEND:
        if (req->too_large)
            return proto_bin_error(req, PROTO_BIN_E2BIG, NULL, out);
        if (!ceiling_value(st, req->nbytes))
            return false;
        return req->bin.quiet || proto_bin_reply(req, PROTO_BIN_SUCCESS, NULL, 0, NULL, 0, 1, out);
    case PROTO_DELETE:
        return req->bin.quiet || proto_bin_reply(req, PROTO_BIN_SUCCESS, NULL, 0, NULL, 0, 0, out);
    case PROTO_INCR:
    case PROTO_DECR:
        return req->bin.quiet || proto_bin_reply(req, PROTO_BIN_SUCCESS, NULL, 0, one, 8, 1, out);
    default:
        return true;
    }
}

static bool ceiling_keyed(void *state, const struct proto_req *req, const char *key, uint32_t nkey,
                          uint64_t hash, struct sink *out)
{
    struct ceiling_state *st = state;
    (void)hash;
    if (st->value == NULL && !ceiling_value(st, CEILING_DEFAULT_VALUE))
        return false;
    if (req->family == PROTO_FAMILY_BINARY)
        return ceiling_binary(out, st, req, key, nkey);
    switch (req->cmd) {
    case PROTO_GET:
    case PROTO_GETS:
    case PROTO_GAT:
    case PROTO_GATS: {
        size_t max = 6 + nkey + 3 + 10 + 2 + 2 + 2 + st->nbytes + 2;
        char *start = sink_reserve(out, max);
        if (start == NULL)
            return false;
        char *p = start;
        memcpy(p, "VALUE ", 6);
        p += 6;
        memcpy(p, key, nkey);
        p += nkey;
        memcpy(p, " 0 ", 3);
        p += 3;
        p += metrics_u64toa(st->nbytes, p);
        if (req->cmd == PROTO_GETS || req->cmd == PROTO_GATS) {
            memcpy(p, " 1", 2);
            p += 2;
        }
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, st->value, st->nbytes);
        p += st->nbytes;
        *p++ = '\r';
        *p++ = '\n';
        sink_commit(out, (size_t)(p - start));
        return true;
    }
    case PROTO_SET:
    case PROTO_ADD:
    case PROTO_REPLACE:
    case PROTO_APPEND:
    case PROTO_PREPEND:
    case PROTO_CAS:
        if (req->too_large)
            return reply(req, out, "SERVER_ERROR object too large for cache\r\n", 41);
        if (!ceiling_value(st, req->nbytes))
            return false;
        return reply(req, out, "STORED\r\n", 8);
    case PROTO_DELETE:
        return reply(req, out, "DELETED\r\n", 9);
    case PROTO_TOUCH:
        return reply(req, out, "TOUCHED\r\n", 9);
    case PROTO_INCR:
    case PROTO_DECR:
        return reply(req, out, "1\r\n", 3);
    /* meta: every mg hits (so q hides nothing); ms, md, ma succeed (q
     * hides their HD); flags are not echoed */
    case PROTO_MG: {
        if (!proto_meta_has(&req->meta, 'v'))
            return sink_puts(out, "HD\r\n");
        char *start = sink_reserve(out, 3 + 10 + 2 + st->nbytes + 2);
        if (start == NULL)
            return false;
        char *p = start;
        memcpy(p, "VA ", 3);
        p += 3;
        p += metrics_u64toa(st->nbytes, p);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, st->value, st->nbytes);
        p += st->nbytes;
        *p++ = '\r';
        *p++ = '\n';
        sink_commit(out, (size_t)(p - start));
        return true;
    }
    case PROTO_MS:
        if (req->too_large)
            return reply(req, out, "SERVER_ERROR object too large for cache\r\n", 41);
        if (!ceiling_value(st, req->nbytes))
            return false;
        /* fall through */
    case PROTO_MD:
    case PROTO_MA:
        return proto_meta_has(&req->meta, 'q') || sink_puts(out, "HD\r\n");
    case PROTO_ME:
        return sink_puts(out, "EN\r\n");
    default:
        return true;
    }
}

static void ceiling_fini(void *state)
{
    free(((struct ceiling_state *)state)->value);
}

static const struct server_handler ceiling_handler = {
    .name = "corecache-ceiling",
    .local = ceiling_keyed,
    .shard_state_size = sizeof(struct ceiling_state),
    .shard_fini = ceiling_fini,
};

int main(int argc, char **argv)
{
    return app_main(argc, argv, &ceiling_handler);
}
