/*
 * reply.c: engine outcomes become protocol replies, from one table (see
 * reply.h).
 *
 * The table's strings are memcached 1.6.18's: proto_text.c's out_string
 * lines, proto_text.c's meta words and proto_bin.c's statuses. Where one
 * protocol names an outcome differently for a particular command (binary
 * add answers KEY_EEXISTS for NOT_STORED), the command's composer picks
 * another code; it never writes the word itself.
 */
#include "reply.h"

#include <string.h>

#include "proto_bin.h"

struct reply_row {
    const char *text;
    size_t text_len;
    const char *meta;
    uint16_t bin;
    const char *bin_text;
};

#define REPLY_ROW(code, text, meta, bin, bin_text) [REPLY_##code] = {text, sizeof(text) - 1, meta, bin, bin_text},
static const struct reply_row rows[REPLY_CODE_COUNT] = {REPLY_CODES(REPLY_ROW)};
#undef REPLY_ROW

enum reply_code reply_of_store(enum mc_status st)
{
    switch (st) {
    case MC_OK:
        return REPLY_STORED;
    case MC_EXISTS:
        return REPLY_EXISTS;
    case MC_NOT_FOUND:
        return REPLY_NOT_FOUND;
    case MC_NOT_STORED:
        return REPLY_NOT_STORED;
    case MC_E2BIG:
        return REPLY_TOO_LARGE;
    case MC_ENOMEM:
        return REPLY_NOMEM_STORE;
    default:
        return REPLY_UNHANDLED;
    }
}

enum reply_code reply_of_delete(enum mc_status st)
{
    switch (st) {
    case MC_OK:
        return REPLY_DELETED;
    case MC_NOT_FOUND:
        return REPLY_NOT_FOUND;
    case MC_EXISTS:
        return REPLY_EXISTS;
    default:
        return REPLY_NOMEM;
    }
}

enum reply_code reply_of_arith(enum mc_status st)
{
    switch (st) {
    case MC_NOT_FOUND:
        return REPLY_NOT_FOUND;
    case MC_EXISTS:
        return REPLY_EXISTS;
    case MC_NON_NUMERIC:
        return REPLY_NON_NUMERIC;
    default:
        return REPLY_NOMEM;
    }
}

bool reply_is_error(enum reply_code code)
{
    return rows[code].meta == NULL;
}

const char *reply_text(enum reply_code code)
{
    return rows[code].text;
}

const char *reply_meta(enum reply_code code)
{
    return rows[code].meta != NULL ? rows[code].meta : rows[code].text;
}

uint16_t reply_bin_status(enum reply_code code)
{
    return rows[code].bin;
}

bool reply_put_line(struct sink *out, const char *text, size_t len)
{
    char *p = sink_reserve(out, len + 2);
    if (p == NULL)
        return false;
    memcpy(p, text, len);
    p[len] = '\r';
    p[len + 1] = '\n';
    sink_commit(out, len + 2);
    return true;
}

bool reply_line(const struct proto_req *req, enum reply_code code, struct sink *out)
{
    if (req->noreply)
        return true;
    return reply_put_line(out, rows[code].text, rows[code].text_len);
}

bool reply_bin(const struct proto_req *req, enum reply_code code, uint64_t cas, struct sink *out)
{
    if (rows[code].bin == PROTO_BIN_SUCCESS)
        return req->bin.quiet || proto_bin_reply(req, PROTO_BIN_SUCCESS, NULL, 0, NULL, 0, cas, out);
    return proto_bin_error(req, rows[code].bin, rows[code].bin_text, out);
}
