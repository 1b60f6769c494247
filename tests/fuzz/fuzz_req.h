/*
 * fuzz_req.h: a parsed request as canonical text, for the parser targets'
 * traces (fuzz_split.h): every field a caller reads, the bytes it points
 * to copied out (the split run's buffer moves), nothing else.
 */
#ifndef CORECACHE_TESTS_FUZZ_REQ_H
#define CORECACHE_TESTS_FUZZ_REQ_H

#include "../../core/proto.h"
#include "../../core/store.h"
#include "fuzz_split.h"

static inline void fz_req(struct fz_buf *t, const struct proto_req *r, size_t used)
{
    fz_printf(t, "used=%zu cmd=%d fam=%d nr=%d close=%d", used, (int)r->cmd, (int)r->family, r->noreply,
              r->close);
    if (r->key != NULL)
        fz_bytes(t, "key", r->key, r->nkey);
    if (r->keys != NULL)
        fz_bytes(t, "keys", r->keys, r->keys_len);
    fz_printf(t, " nkeys=%u flags=%u exp=%lld nbytes=%u cas=%llu delta=%llu level=%u big=%d grace=%d", r->nkeys,
              r->flags, (long long)r->exptime, r->nbytes, (unsigned long long)r->cas,
              (unsigned long long)r->delta, r->level, r->too_large, r->graceful);
    if (r->value != NULL)
        fz_bytes(t, "value", r->value, r->nbytes);
    if (r->args != NULL)
        fz_bytes(t, "args", r->args, r->nargs);
    if (r->opaque != NULL)
        fz_bytes(t, "opaque", r->opaque, r->nopaque);
    if (r->error != NULL)
        fz_printf(t, " error=%s", r->error);
    if (r->family == PROTO_FAMILY_BINARY)
        fz_printf(t, " bin=%u/%d/%d/%d/%u/%u/%llu", r->bin.opcode, r->bin.quiet, r->bin.return_key,
                  r->bin.no_create, r->bin.status, r->bin.opaque, (unsigned long long)r->bin.initial);
    const struct proto_meta *m = &r->meta;
    if (m->nflags > 0 || m->has != 0) {
        fz_printf(t, " meta=%llx/%llu/%llu/%llu/%llu/%d/%d/%d/%u/%d/%u:", (unsigned long long)m->has,
                  (unsigned long long)m->cas, (unsigned long long)m->new_cas, (unsigned long long)m->delta,
                  (unsigned long long)m->initial, m->ttl, m->vivify_ttl, m->recache_ttl, m->client_flags,
                  m->mode, m->nflags);
        fz_put(t, m->order, m->nflags < PROTO_META_FLAGS_MAX ? m->nflags : PROTO_META_FLAGS_MAX);
    }
    fz_put(t, "\n", 1);
}

/* The limits the server runs with by default (-I 1m). */
static inline void fz_parser_init(struct proto_parser *parser)
{
    struct proto_limits limits = {.item_size_max = 1024 * 1024, .item_total = store_item_total};
    proto_parser_init(parser, &limits);
}

/* A parser on the heap: the state of the two parser targets. */
static inline void *fz_parser_create(void)
{
    struct proto_parser *parser = malloc(sizeof(*parser));
    if (parser == NULL)
        abort();
    fz_parser_init(parser);
    return parser;
}

static inline void fz_parser_destroy(void *state)
{
    free(state);
}

typedef size_t (*fz_parse_fn)(struct proto_parser *parser, const char *buf, size_t len, struct proto_req *req,
                              size_t *need);

/*
 * One step of a parser target: parse one request with `parse` and trace it.
 * Swallowed bytes (a value too large, an unknown command's data) go as they
 * arrive, so their pieces differ split; what follows shows the swallow
 * ended in the same place. A closing request may take whatever was
 * buffered: its length is not compared either. With `early_close` (the
 * text protocol), a close without a reply (a line too long) may come
 * earlier split than whole, as in memcached.
 */
static inline size_t fz_parse_step(fz_parse_fn parse, bool early_close, void *state, const char *buf, size_t len,
                                   size_t *need, struct fz_buf *trace, enum fz_verdict *verdict)
{
    struct proto_req req;
    size_t used = parse(state, buf, len, &req, need);
    if (used == 0)
        return 0;
    if (req.cmd != PROTO_NONE || req.close)
        fz_req(trace, &req, req.close && req.cmd == PROTO_NONE ? 0 : used);
    if (req.close)
        *verdict = early_close && req.cmd == PROTO_NONE && req.error == NULL ? FZ_CLOSED_EARLY : FZ_CLOSED;
    return used;
}

#endif
