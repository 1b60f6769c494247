/*
 * resp.c: the incremental reply parser (resp.h).
 *
 * State machine, one state per thing the next byte can belong to:
 *
 *             line without data                 "VALUE"/"VA" line
 *   +------+ ----------------> element  +------+ --------------> +------+
 *   | LINE |                            | LINE |                 | DATA | -- <bytes> + "\r\n"
 *   +------+ <------------------------------------------------- +------+    -> RESP_VALUE
 *
 *   +------------+ 24 bytes  +----------+ body length bytes
 *   | BIN_HEADER | --------> | BIN_BODY | ------------------> element
 *   +------------+           +----------+   (body 0: element at once)
 *
 * Lines are parsed in place when the whole line is in the caller's buffer,
 * which is the common case: the fast path is one memchr and one compare.
 * Only a line cut by a recv() boundary is copied into `line`, and only its
 * bytes. Data blocks and binary bodies are counted down, never copied.
 *
 * Invariants: line_len < RESP_LINE_MAX; in DATA, 1 <= remaining and the
 * last two of the remaining bytes must be "\r\n"; once broken, always
 * broken.
 */
#include "resp.h"

#include <stdlib.h>
#include <string.h>

enum resp_state {
    STATE_LINE,
    STATE_DATA,
    STATE_BIN_HEADER,
    STATE_BIN_BODY,
};

#define BIN_HEADER_LEN 24
#define BIN_MAGIC_RESPONSE 0x81

/* Binary opcodes and statuses (memcached's protocol_binary.h values). */
enum {
    BIN_GET = 0x00,
    BIN_SET = 0x01,
    BIN_ADD = 0x02,
    BIN_REPLACE = 0x03,
    BIN_DELETE = 0x04,
    BIN_INCREMENT = 0x05,
    BIN_DECREMENT = 0x06,
    BIN_GETQ = 0x09,
    BIN_NOOP = 0x0a,
    BIN_GETK = 0x0c,
    BIN_GETKQ = 0x0d,
    BIN_APPEND = 0x0e,
    BIN_PREPEND = 0x0f,
    BIN_SETQ = 0x11,
    BIN_ADDQ = 0x12,
    BIN_REPLACEQ = 0x13,
    BIN_DELETEQ = 0x14,
    BIN_APPENDQ = 0x19,
    BIN_PREPENDQ = 0x1a,
    BIN_TOUCH = 0x1c,
    BIN_GAT = 0x1d,
    BIN_GATQ = 0x1e,
    BIN_GATK = 0x23,
    BIN_GATKQ = 0x24,
};
enum {
    BIN_STATUS_OK = 0x00,
    BIN_STATUS_KEY_ENOENT = 0x01,
    BIN_STATUS_KEY_EEXISTS = 0x02,
    BIN_STATUS_EINVAL = 0x04,
    BIN_STATUS_NOT_STORED = 0x05,
    BIN_STATUS_UNKNOWN_COMMAND = 0x81,
};

struct resp_parser {
    enum resp_mode mode;
    enum resp_state state;
    bool broken;
    uint64_t remaining;  /* DATA: data bytes + 2 left; BIN_BODY: body bytes left */
    struct resp pending; /* the element a data block or body completes */
    size_t line_len;     /* bytes of a cut line kept in `line` */
    size_t header_len;   /* bytes of a binary header kept in `header` */
    unsigned char header[BIN_HEADER_LEN];
    char line[RESP_LINE_MAX];
};

static const char *const kind_names[] = {
#define RESP_KIND_NAME(name, text) text,
    RESP_KINDS(RESP_KIND_NAME)
#undef RESP_KIND_NAME
};

const char *resp_kind_str(enum resp_kind kind)
{
    if ((size_t)kind >= sizeof(kind_names) / sizeof(kind_names[0]))
        return "unknown";
    return kind_names[kind];
}

struct resp_parser *resp_parser_create(enum resp_mode mode)
{
    struct resp_parser *parser = calloc(1, sizeof(*parser));
    if (parser == NULL)
        return NULL;
    parser->mode = mode;
    parser->state = mode == RESP_MODE_BINARY ? STATE_BIN_HEADER : STATE_LINE;
    return parser;
}

void resp_parser_destroy(struct resp_parser **parser)
{
    free(*parser);
    *parser = NULL;
}

/* True when [s, s+n) starts with the word w followed by the end or a space. */
static bool word_is(const char *s, size_t n, const char *w, size_t wn)
{
    return n >= wn && memcmp(s, w, wn) == 0 && (n == wn || s[wn] == ' ');
}
#define WORD_IS(s, n, literal) word_is((s), (n), (literal), sizeof(literal) - 1)

/* Parses a decimal at *p (no sign, at least one digit) up to a space or end,
 * into *value <= max. Advances *p past it. */
static bool parse_u64(const char **p, const char *end, uint64_t max, uint64_t *value)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s == end || *s < '0' || *s > '9')
        return false;
    for (; s < end && *s != ' '; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned digit = (unsigned)(*s - '0');
        if (v > (max - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    *value = v;
    *p = s;
    return true;
}

/* Skips one space and then one word (a key), leaving *p at the next space. */
static bool skip_word(const char **p, const char *end)
{
    const char *s = *p;
    if (s == end || *s != ' ')
        return false;
    s++;
    const char *word = s;
    while (s < end && *s != ' ')
        s++;
    *p = s;
    return s > word;
}

static bool skip_space(const char **p, const char *end)
{
    if (*p == end || **p != ' ')
        return false;
    (*p)++;
    return true;
}

/* "VALUE <key> <flags> <bytes> [<cas>]": s points past "VALUE". */
static bool parse_value_line(struct resp_parser *parser, const char *s, const char *end)
{
    uint64_t flags, bytes, cas;
    if (!skip_word(&s, end) || !skip_space(&s, end) || !parse_u64(&s, end, UINT32_MAX, &flags) ||
        !skip_space(&s, end) || !parse_u64(&s, end, RESP_VALUE_MAX, &bytes))
        return false;
    if (s < end && (!skip_space(&s, end) || !parse_u64(&s, end, UINT64_MAX, &cas) || s != end))
        return false;
    parser->pending = (struct resp){.kind = RESP_VALUE, .value_len = (uint32_t)bytes,
                                    .flags = (uint32_t)flags};
    parser->remaining = bytes + 2;
    parser->state = STATE_DATA;
    return true;
}

/* "VA <bytes> <flags>*": s points past "VA". Flags are not interpreted. */
static bool parse_va_line(struct resp_parser *parser, const char *s, const char *end)
{
    uint64_t bytes;
    if (!skip_space(&s, end) || !parse_u64(&s, end, RESP_VALUE_MAX, &bytes))
        return false;
    parser->pending = (struct resp){.kind = RESP_VALUE, .value_len = (uint32_t)bytes};
    parser->remaining = bytes + 2;
    parser->state = STATE_DATA;
    return true;
}

/* Reply words that stand alone (optionally followed by flags or a message).
 * The order puts the frequent replies first. */
struct word {
    const char *text;
    size_t len;
    enum resp_kind kind;
    bool exact; /* nothing may follow */
};
#define WORD(literal, kind, exact) {literal, sizeof(literal) - 1, kind, exact}
static const struct word words[] = {
    WORD("END", RESP_END, true),
    WORD("STORED", RESP_STORED, true),
    WORD("HD", RESP_HD, false),
    WORD("EN", RESP_MISS, true),
    WORD("MN", RESP_NOOP, true),
    WORD("NOT_STORED", RESP_NOT_STORED, true),
    WORD("NS", RESP_NOT_STORED, false),
    WORD("EXISTS", RESP_EXISTS, true),
    WORD("EX", RESP_EXISTS, false),
    WORD("NOT_FOUND", RESP_NOT_FOUND, true),
    WORD("NF", RESP_NOT_FOUND, false),
    WORD("DELETED", RESP_DELETED, true),
    WORD("TOUCHED", RESP_TOUCHED, true),
    WORD("OK", RESP_OK, true),
    WORD("ERROR", RESP_ERROR, false),
    WORD("CLIENT_ERROR", RESP_CLIENT_ERROR, false),
    WORD("SERVER_ERROR", RESP_SERVER_ERROR, false),
};

/*
 * Parses one complete line (with its "\n"). Returns MC_OK with *out set,
 * MC_AGAIN when a data block follows (state is now DATA), MC_EINVAL.
 */
static enum mc_status parse_line(struct resp_parser *parser, const char *line, size_t n,
                                 struct resp *out)
{
    *out = (struct resp){.line = line, .line_len = n >= 1 ? n - 1 : 0};
    if (n < 2 || line[n - 2] != '\r')
        return MC_EINVAL;
    n -= 2;
    out->line_len = n;
    const char *end = line + n;
    if (WORD_IS(line, n, "VALUE"))
        return parse_value_line(parser, line + 5, end) ? MC_AGAIN : MC_EINVAL;
    if (WORD_IS(line, n, "VA"))
        return parse_va_line(parser, line + 2, end) ? MC_AGAIN : MC_EINVAL;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        const struct word *w = &words[i];
        if (word_is(line, n, w->text, w->len)) {
            if (w->exact && n != w->len)
                return MC_EINVAL;
            out->kind = w->kind;
            return MC_OK;
        }
    }
    const char *s = line;
    if (parse_u64(&s, end, UINT64_MAX, &out->number) && s == end) {
        out->kind = RESP_NUMBER;
        return MC_OK;
    }
    return MC_EINVAL;
}

static bool bin_is_get(uint8_t opcode)
{
    switch (opcode) {
    case BIN_GET: case BIN_GETQ: case BIN_GETK: case BIN_GETKQ:
    case BIN_GAT: case BIN_GATQ: case BIN_GATK: case BIN_GATKQ:
        return true;
    default:
        return false;
    }
}

static bool bin_is_store(uint8_t opcode)
{
    switch (opcode) {
    case BIN_SET: case BIN_ADD: case BIN_REPLACE: case BIN_APPEND: case BIN_PREPEND:
    case BIN_SETQ: case BIN_ADDQ: case BIN_REPLACEQ: case BIN_APPENDQ: case BIN_PREPENDQ:
        return true;
    default:
        return false;
    }
}

static enum resp_kind bin_kind(uint8_t opcode, uint16_t status)
{
    switch (status) {
    case BIN_STATUS_OK:
        if (bin_is_get(opcode))
            return RESP_VALUE;
        if (bin_is_store(opcode))
            return RESP_STORED;
        if (opcode == BIN_NOOP)
            return RESP_NOOP;
        if (opcode == BIN_DELETE || opcode == BIN_DELETEQ)
            return RESP_DELETED;
        if (opcode == BIN_TOUCH)
            return RESP_TOUCHED;
        return RESP_OK;
    case BIN_STATUS_KEY_ENOENT:
        return bin_is_get(opcode) ? RESP_MISS : RESP_NOT_FOUND;
    case BIN_STATUS_KEY_EEXISTS:
        return RESP_EXISTS;
    case BIN_STATUS_NOT_STORED:
        return RESP_NOT_STORED;
    case BIN_STATUS_EINVAL:
        return RESP_CLIENT_ERROR;
    case BIN_STATUS_UNKNOWN_COMMAND:
        return RESP_ERROR;
    default: /* E2BIG, DELTA_BADVAL, ENOMEM, auth, ... */
        return RESP_SERVER_ERROR;
    }
}

/* Decodes a complete binary header into `pending`; false if malformed. */
static bool parse_bin_header(struct resp_parser *parser)
{
    const unsigned char *h = parser->header;
    if (h[0] != BIN_MAGIC_RESPONSE)
        return false;
    uint8_t opcode = h[1];
    uint32_t key_len = (uint32_t)h[2] << 8 | h[3];
    uint32_t extras_len = h[4];
    uint16_t status = (uint16_t)(h[6] << 8 | h[7]);
    uint32_t body_len = (uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11];
    if (key_len + extras_len > body_len || body_len > RESP_VALUE_MAX + 512u)
        return false;
    parser->pending = (struct resp){.kind = bin_kind(opcode, status), .opcode = opcode,
                                    .status = status};
    if (parser->pending.kind == RESP_VALUE)
        parser->pending.value_len = body_len - key_len - extras_len;
    parser->remaining = body_len;
    return true;
}

enum mc_status resp_parse(struct resp_parser *parser, const char *buf, size_t len, size_t *used,
                          struct resp *out)
{
    size_t pos = 0;
    *out = (struct resp){0};
    if (parser->broken)
        goto fail;
    for (;;) {
        size_t avail = len - pos;
        switch (parser->state) {
        case STATE_LINE: {
            if (avail == 0)
                goto again;
            const char *start = buf + pos;
            const char *nl = memchr(start, '\n', avail);
            size_t take = nl == NULL ? avail : (size_t)(nl - start) + 1;
            const char *line = start;
            size_t line_len = take;
            if (parser->line_len + take > RESP_LINE_MAX) {
                out->line = parser->line;
                out->line_len = parser->line_len;
                goto fail;
            }
            if (nl == NULL || parser->line_len > 0) {
                memcpy(parser->line + parser->line_len, start, take);
                parser->line_len += take;
                line = parser->line;
                line_len = parser->line_len;
            }
            pos += take;
            if (nl == NULL)
                goto again;
            parser->line_len = 0;
            enum mc_status status = parse_line(parser, line, line_len, out);
            if (status == MC_EINVAL)
                goto fail;
            if (status == MC_OK) {
                *used = pos;
                return MC_OK;
            }
            break; /* a data block follows */
        }
        case STATE_DATA:
            if (avail == 0)
                goto again;
            if (parser->remaining > 2) {
                uint64_t skip = parser->remaining - 2;
                if (skip > avail)
                    skip = avail;
                pos += skip;
                parser->remaining -= skip;
                break;
            }
            if (buf[pos] != (parser->remaining == 2 ? '\r' : '\n'))
                goto fail;
            pos++;
            if (--parser->remaining == 0) {
                parser->state = STATE_LINE;
                *out = parser->pending;
                *used = pos;
                return MC_OK;
            }
            break;
        case STATE_BIN_HEADER: {
            if (avail == 0)
                goto again;
            size_t take = BIN_HEADER_LEN - parser->header_len;
            if (take > avail)
                take = avail;
            memcpy(parser->header + parser->header_len, buf + pos, take);
            parser->header_len += take;
            pos += take;
            if (parser->header_len < BIN_HEADER_LEN)
                goto again;
            parser->header_len = 0;
            if (!parse_bin_header(parser))
                goto fail;
            parser->state = STATE_BIN_BODY;
            break;
        }
        case STATE_BIN_BODY: {
            uint64_t skip = parser->remaining < avail ? parser->remaining : avail;
            pos += skip;
            parser->remaining -= skip;
            if (parser->remaining > 0)
                goto again;
            parser->state = STATE_BIN_HEADER;
            *out = parser->pending;
            *used = pos;
            return MC_OK;
        }
        }
    }
again:
    *out = (struct resp){0};
    *used = len;
    return MC_AGAIN;
fail:
    parser->broken = true;
    *used = pos;
    return MC_EINVAL;
}
