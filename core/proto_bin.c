/*
 * proto_bin.c: memcached's binary protocol: requests parsed from a const
 * byte buffer, responses composed into a sink (see proto_bin.h).
 *
 * Parsing, in memcached 1.6.18's order (try_read_command_binary, then
 * dispatch_bin_command):
 *
 *   1. the magic byte must be 0x80, else the connection closes, silently;
 *   2. nothing is decided before the header, the extras and the key are
 *      all in (24 + extlen + keylen bytes: at most 65814);
 *   3. keylen + extlen > bodylen: "Unknown command", then close;
 *   4. keylen > 250: "Invalid arguments", then close;
 *   5. each opcode's layout (extras length, key present, body length) is
 *      checked; a wrong one is "Invalid arguments", then close;
 *   6. an opcode memcached does not implement (verbosity, the range
 *      commands, SASL without SASL configured, anything else) is "Unknown
 *      command" and its body is swallowed; the connection stays usable;
 *   7. a storage command whose value would make an item over the size
 *      limit is returned at once (too_large, no value) and its value is
 *      swallowed: memcached's E2BIG, as in the text protocol. Otherwise
 *      the request is returned once the whole body is in the buffer.
 *
 * Buffer layout of one request:
 *
 *   buf                                                      buf + len
 *   |<- header 24 ->|<- extras ->|<- key ->|<- value ->|<- next request
 *   |<----------- head --------------------->|
 *   |<-------------- 24 + bodylen ---------------------->|
 *
 * Deliberate differences from memcached 1.6.18, each where memcached
 * desynchronises the stream or waits for nothing:
 *   - a bad magic byte closes as soon as it arrives (memcached waits for
 *     24 bytes first, so a text client talking to -B binary hangs);
 *   - an unknown command swallows exactly the rest of its packet; memcached
 *     swallows bodylen bytes after it already consumed the extras and the
 *     key, eating that many bytes of the next request;
 *   - stat, touch and gat/gatq/gatk/gatkq whose body is longer than their
 *     extras and key are invalid (memcached leaves the extra bytes in the
 *     stream, to be parsed as the next request's header).
 *
 * Composing: every response is written with one sink reservation, header
 * first; the opaque is copied back as the client's four bytes.
 */
#include "proto_bin.h"

#include <string.h>

#define BIN_KEY_MAX 250 /* memcached's KEY_MAX_LENGTH: keylen is 16-bit, items are not */

#define EINVAL_TEXT "Invalid arguments"
#define UNKNOWN_TEXT "Unknown command"

static inline uint16_t get16(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint16_t)((unsigned)u[0] << 8 | u[1]);
}

static inline uint32_t get32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static inline uint64_t get64(const char *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static inline void put16(char *p, uint16_t v)
{
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
}

static inline void put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static inline void put64(char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* The fields of a header, host order (the opaque as its raw bytes). */
struct bin_header {
    uint8_t opcode;
    uint8_t extlen;
    uint16_t keylen;
    uint32_t bodylen;
    uint32_t opaque;
    uint64_t cas;
};

static void read_header(const char *buf, struct bin_header *h)
{
    h->opcode = (uint8_t)buf[1];
    h->keylen = get16(buf + 2);
    h->extlen = (uint8_t)buf[4];
    /* buf[5] datatype and buf[6..7] vbucket: ignored, as memcached does */
    h->bodylen = get32(buf + 8);
    memcpy(&h->opaque, buf + 12, 4);
    h->cas = get64(buf + 16);
}

/* An error to answer; `close` after it is sent. Fields parsed before the
 * error are cleared but the ones every reply echoes. */
static size_t fail(struct proto_req *req, uint16_t status, const char *text, bool close,
                   size_t consumed)
{
    struct proto_bin_fields bin = {.opcode = req->bin.opcode, .opaque = req->bin.opaque, .status = status};
    *req = (struct proto_req){
        .cmd = PROTO_ERROR,
        .close = close,
        .error = text,
        .family = PROTO_FAMILY_BINARY,
        .bin = bin,
    };
    return consumed;
}

/* A layout the opcode does not allow: memcached's
 * handle_binary_protocol_error. */
static size_t invalid(struct proto_req *req, size_t consumed)
{
    return fail(req, PROTO_BIN_EINVAL, EINVAL_TEXT, true, consumed);
}

/* An opcode memcached does not implement: the error, and the rest of the
 * packet (`rest` bytes after `consumed`) is swallowed. */
static size_t unknown(struct proto_parser *parser, struct proto_req *req, uint64_t rest,
                      size_t consumed)
{
    parser->swallow = rest;
    return fail(req, PROTO_BIN_UNKNOWN_COMMAND, UNKNOWN_TEXT, false, consumed);
}

static void set_key(struct proto_req *req, const char *key, uint16_t keylen)
{
    req->key = key;
    req->nkey = keylen;
    req->keys = key;
    req->keys_len = keylen;
    req->nkeys = 1;
}

/*
 * set/add/replace (extras: flags, expiration) and append/prepend (no
 * extras): the value is the rest of the body. Too large: returned at once,
 * the value swallowed.
 */
static size_t parse_storage(struct proto_parser *parser, const char *buf, size_t len,
                            const struct bin_header *h, size_t head, struct proto_req *req,
                            size_t *need)
{
    const char *ext = buf + PROTO_BIN_HEADER_LEN;
    uint32_t nbytes = h->bodylen - h->extlen - h->keylen;
    if (h->extlen == 8) {
        req->flags = get32(ext);
        req->exptime = get32(ext + 4);
    }
    set_key(req, ext + h->extlen, h->keylen);
    req->nbytes = nbytes;
    if (parser->limits.item_total(h->keylen, nbytes) > parser->limits.item_size_max) {
        req->too_large = true;
        parser->swallow = nbytes;
        return head;
    }
    size_t total = PROTO_BIN_HEADER_LEN + (size_t)h->bodylen;
    if (len < total) {
        if (need != NULL)
            *need = total;
        return 0;
    }
    req->value = buf + head;
    return total;
}

/* Quiet opcodes and the opcode they are the quiet form of. */
static uint8_t loud_opcode(uint8_t opcode, bool *quiet)
{
    *quiet = true;
    switch (opcode) {
    case PROTO_BIN_GETQ:
        return PROTO_BIN_GET;
    case PROTO_BIN_GETKQ:
        return PROTO_BIN_GETK;
    case PROTO_BIN_SETQ:
        return PROTO_BIN_SET;
    case PROTO_BIN_ADDQ:
        return PROTO_BIN_ADD;
    case PROTO_BIN_REPLACEQ:
        return PROTO_BIN_REPLACE;
    case PROTO_BIN_DELETEQ:
        return PROTO_BIN_DELETE;
    case PROTO_BIN_INCREMENTQ:
        return PROTO_BIN_INCREMENT;
    case PROTO_BIN_DECREMENTQ:
        return PROTO_BIN_DECREMENT;
    case PROTO_BIN_QUITQ:
        return PROTO_BIN_QUIT;
    case PROTO_BIN_FLUSHQ:
        return PROTO_BIN_FLUSH;
    case PROTO_BIN_APPENDQ:
        return PROTO_BIN_APPEND;
    case PROTO_BIN_PREPENDQ:
        return PROTO_BIN_PREPEND;
    case PROTO_BIN_GATQ:
        return PROTO_BIN_GAT;
    case PROTO_BIN_GATKQ:
        return PROTO_BIN_GATK;
    default:
        *quiet = false;
        return opcode;
    }
}

/*
 * See proto_bin.h. Limits: at most one request per call; a swallow in
 * progress is reported alone (PROTO_NONE) before anything else is parsed.
 * The parser must have an item_total function.
 */
size_t proto_bin_parse(struct proto_parser *parser, const char *buf, size_t len, struct proto_req *req,
                       size_t *need)
{
    size_t swallowed = proto_parse_begin(parser, PROTO_FAMILY_BINARY, len, req, need);
    if (len == 0 || swallowed > 0)
        return swallowed;
    if ((uint8_t)buf[0] != PROTO_BIN_REQ_MAGIC) {
        req->close = true;
        return len;
    }
    if (len < PROTO_BIN_HEADER_LEN) {
        if (need != NULL)
            *need = PROTO_BIN_HEADER_LEN;
        return 0;
    }
    struct bin_header h;
    read_header(buf, &h);
    req->bin.opcode = h.opcode;
    req->bin.opaque = h.opaque;
    size_t head = PROTO_BIN_HEADER_LEN + (size_t)h.extlen + h.keylen;
    if (len < head) {
        if (need != NULL)
            *need = head;
        return 0;
    }
    if ((uint64_t)h.keylen + h.extlen > h.bodylen)
        return fail(req, PROTO_BIN_UNKNOWN_COMMAND, UNKNOWN_TEXT, true, head);
    if (h.keylen > BIN_KEY_MAX)
        return invalid(req, head);

    const char *ext = buf + PROTO_BIN_HEADER_LEN;
    const char *key = ext + h.extlen;
    /* bodylen beyond extras and key: the value, or what must not be there */
    uint32_t rest = h.bodylen - h.extlen - h.keylen;
    bool quiet;
    uint8_t op = loud_opcode(h.opcode, &quiet);
    req->bin.quiet = quiet;
    req->cas = h.cas;

    switch (op) {
    case PROTO_BIN_VERSION:
    case PROTO_BIN_NOOP:
    case PROTO_BIN_QUIT:
        if (h.extlen != 0 || h.keylen != 0 || h.bodylen != 0)
            return invalid(req, head);
        req->cmd = op == PROTO_BIN_VERSION ? PROTO_VERSION : op == PROTO_BIN_NOOP ? PROTO_NOOP : PROTO_QUIT;
        return head;
    case PROTO_BIN_FLUSH:
        if (h.keylen != 0 || h.bodylen != h.extlen || (h.extlen != 0 && h.extlen != 4))
            return invalid(req, head);
        req->cmd = PROTO_FLUSH_ALL;
        req->exptime = h.extlen == 4 ? get32(ext) : 0;
        return head;
    case PROTO_BIN_GET:
    case PROTO_BIN_GETK:
        if (h.extlen != 0 || h.keylen == 0 || rest != 0)
            return invalid(req, head);
        req->cmd = PROTO_GET;
        req->bin.return_key = op == PROTO_BIN_GETK;
        set_key(req, key, h.keylen);
        return head;
    case PROTO_BIN_TOUCH:
    case PROTO_BIN_GAT:
    case PROTO_BIN_GATK:
        if (h.extlen != 4 || h.keylen == 0 || rest != 0)
            return invalid(req, head);
        req->cmd = op == PROTO_BIN_TOUCH ? PROTO_TOUCH : PROTO_GAT;
        req->bin.return_key = op == PROTO_BIN_GATK;
        req->exptime = get32(ext);
        set_key(req, key, h.keylen);
        return head;
    case PROTO_BIN_DELETE:
        if (h.extlen != 0 || h.keylen == 0 || rest != 0)
            return invalid(req, head);
        req->cmd = PROTO_DELETE;
        set_key(req, key, h.keylen);
        return head;
    case PROTO_BIN_INCREMENT:
    case PROTO_BIN_DECREMENT: {
        if (h.extlen != 20 || h.keylen == 0 || rest != 0)
            return invalid(req, head);
        req->cmd = op == PROTO_BIN_INCREMENT ? PROTO_INCR : PROTO_DECR;
        req->delta = get64(ext);
        req->bin.initial = get64(ext + 8);
        uint32_t expiration = get32(ext + 16);
        req->bin.no_create = expiration == UINT32_MAX;
        req->exptime = expiration;
        set_key(req, key, h.keylen);
        return head;
    }
    case PROTO_BIN_SET:
    case PROTO_BIN_ADD:
    case PROTO_BIN_REPLACE:
        if (h.extlen != 8 || h.keylen == 0)
            return invalid(req, head);
        req->cmd = op == PROTO_BIN_SET ? PROTO_SET : op == PROTO_BIN_ADD ? PROTO_ADD : PROTO_REPLACE;
        return parse_storage(parser, buf, len, &h, head, req, need);
    case PROTO_BIN_APPEND:
    case PROTO_BIN_PREPEND:
        if (h.extlen != 0 || h.keylen == 0)
            return invalid(req, head);
        req->cmd = op == PROTO_BIN_APPEND ? PROTO_APPEND : PROTO_PREPEND;
        return parse_storage(parser, buf, len, &h, head, req, need);
    case PROTO_BIN_STAT:
        if (h.extlen != 0 || rest != 0)
            return invalid(req, head);
        req->cmd = PROTO_STATS;
        req->args = key;
        req->nargs = h.keylen;
        return head;
    case PROTO_BIN_SASL_LIST_MECHS:
        /* memcached without SASL: unknown, once the layout is right */
        if (h.extlen != 0 || h.keylen != 0 || h.bodylen != 0)
            return invalid(req, head);
        return unknown(parser, req, 0, head);
    case PROTO_BIN_SASL_AUTH:
    case PROTO_BIN_SASL_STEP:
        if (h.extlen != 0 || h.keylen == 0)
            return invalid(req, head);
        return unknown(parser, req, rest, head);
    default:
        return unknown(parser, req, rest, head);
    }
}

/* --- composing -------------------------------------------------------- */

const char *proto_bin_status_text(uint16_t status)
{
    switch (status) {
    case PROTO_BIN_KEY_ENOENT:
        return "Not found";
    case PROTO_BIN_KEY_EEXISTS:
        return "Data exists for key.";
    case PROTO_BIN_E2BIG:
        return "Too large.";
    case PROTO_BIN_EINVAL:
        return EINVAL_TEXT;
    case PROTO_BIN_NOT_STORED:
        return "Not stored.";
    case PROTO_BIN_DELTA_BADVAL:
        return "Non-numeric server-side value for incr or decr";
    case PROTO_BIN_AUTH_ERROR:
        return "Auth failure.";
    case PROTO_BIN_UNKNOWN_COMMAND:
        return UNKNOWN_TEXT;
    case PROTO_BIN_ENOMEM:
        return "Out of memory";
    default:
        return "";
    }
}

void proto_bin_header(char *p, const struct proto_req *req, uint16_t status, uint8_t extlen,
                      uint16_t keylen, uint32_t bodylen, uint64_t cas)
{
    p[0] = (char)PROTO_BIN_RES_MAGIC;
    p[1] = (char)req->bin.opcode;
    put16(p + 2, keylen);
    p[4] = (char)extlen;
    p[5] = 0; /* datatype: raw bytes */
    put16(p + 6, status);
    put32(p + 8, bodylen);
    memcpy(p + 12, &req->bin.opaque, 4);
    put64(p + 16, cas);
}

bool proto_bin_reply(const struct proto_req *req, uint16_t status, const void *key, uint16_t keylen,
                     const void *value, uint32_t nvalue, uint64_t cas, struct sink *out)
{
    size_t total = PROTO_BIN_HEADER_LEN + (size_t)keylen + nvalue;
    char *p = sink_reserve(out, total);
    if (p == NULL)
        return false;
    proto_bin_header(p, req, status, 0, keylen, keylen + nvalue, cas);
    if (keylen > 0)
        memcpy(p + PROTO_BIN_HEADER_LEN, key, keylen);
    if (nvalue > 0)
        memcpy(p + PROTO_BIN_HEADER_LEN + keylen, value, nvalue);
    sink_commit(out, total);
    return true;
}

bool proto_bin_error(const struct proto_req *req, uint16_t status, const char *text, struct sink *out)
{
    if (text == NULL)
        text = proto_bin_status_text(status);
    return proto_bin_reply(req, status, NULL, 0, text, (uint32_t)strlen(text), 0, out);
}

/* One stat packet: memcached's append_bin_stats (opcode STAT whatever the
 * request's, CAS 0). */
static bool stat_packet(const struct proto_req *req, const char *name, size_t nname, const char *value,
                        size_t nvalue, struct sink *out)
{
    struct proto_req stat = {.bin = {.opcode = PROTO_BIN_STAT, .opaque = req->bin.opaque}};
    return proto_bin_reply(&stat, PROTO_BIN_SUCCESS, name, (uint16_t)nname, value, (uint32_t)nvalue, 0,
                           out);
}

bool proto_bin_stats_from_text(const struct proto_req *req, const char *text, size_t len,
                               struct sink *out)
{
    const char *p = text;
    const char *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl != NULL ? nl : end;
        const char *next = nl != NULL ? nl + 1 : end;
        if (line_end > p && line_end[-1] == '\r')
            line_end--;
        size_t n = (size_t)(line_end - p);
        if (n == 3 && memcmp(p, "END", 3) == 0) {
            if (!stat_packet(req, NULL, 0, NULL, 0, out))
                return false;
        } else if (n > 5 && memcmp(p, "STAT ", 5) == 0) {
            const char *name = p + 5;
            const char *sp = memchr(name, ' ', (size_t)(line_end - name));
            const char *name_end = sp != NULL ? sp : line_end;
            const char *value = sp != NULL ? sp + 1 : line_end;
            size_t nname = (size_t)(name_end - name);
            if (nname > UINT16_MAX)
                nname = UINT16_MAX;
            if (!stat_packet(req, name, nname, value, (size_t)(line_end - value), out))
                return false;
        }
        p = next;
    }
    return true;
}
