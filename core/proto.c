/*
 * proto.c: memcached's text protocol, parsed from a const byte buffer.
 *
 * What it does
 * ------------
 * proto_parse() takes the bytes a connection has buffered and returns one
 * request (or "need more", or "close"). The decisions are memcached
 * 1.6.18's (proto_text.c: try_read_command_ascii, tokenize_command,
 * process_command_ascii and the process_*_command functions; util.c:
 * safe_strto*): which token counts give "ERROR", which give CLIENT_ERROR
 * and with which text, and how many bytes each outcome consumes. The code
 * is our own: memcached writes NULs into its read buffer and leans on
 * strtoul(); we may not touch the caller's buffer, so every scan is bounded
 * by a token's length instead of a terminator.
 *
 * Buffer layout of one storage request
 * ------------------------------------
 *
 *   buf                                                           buf + len
 *   |"set k 0 0 5 noreply"|\r\n|"hello"|\r\n|"get k"|\n| ...
 *   |<------- line ------>|    |<----->|
 *   |<------ header (consumed on error) ->|nbytes
 *   |<-------------- consumed when complete ----->|
 *
 * A line ends at the first '\n'; a '\r' right before it is dropped when the
 * line has more than one byte (so "\r\n" alone is the one-byte command
 * "\r", an ERROR, as in memcached). memcached then tokenizes with
 * strlen(), so a NUL byte ends its command text early: "get a\0b" reads
 * key "a". So do we, by default; a storage command's data block still
 * starts after the newline.
 *
 * Tokens
 * ------
 * Tokens are split on ' ' only (a tab is part of a token). memcached's
 * tokenizer fills at most 24 slots, the last being a "terminal" that
 * points at the unparsed rest; so commands see at most 23 real tokens, and
 * its token count `ntokens` is ours plus one. The WANT_TOKENS checks below
 * are written in real tokens. Only a multi-get looks past the 23rd token
 * (memcached re-tokenizes the rest for it); we simply walk all its keys.
 *
 * Keys are memcached's: any bytes but ' ' (control bytes, DEL and UTF-8
 * included), at most 250 of them. With --strict-keys (limits.strict_keys)
 * a key holding a control byte (< 0x20, NUL included, or 0x7f) is refused
 * with "CLIENT_ERROR bad command line format", as keys that break
 * "VALUE <key> ..." framing for most clients; a NUL is then a byte like
 * any other rather than the end of the line. A storage command (classic
 * or ms) refused for such a key still reads its length and swallows its
 * data block, so the connection stays in step where memcached would have
 * stored the item.
 *
 * Numbers are memcached's too, with its meaning: flags (and meta F) are
 * safe_strtoul into 32 bits, so 4294967296 is 0; exptimes (storage,
 * touch, gat/gats, flush_all delay, meta T/N/R) and value lengths are
 * safe_strtol: strtol() over 64 bits, then the low 32 bits as a signed
 * value, so an exptime of 4294967295 is -1 (already expired) and a length
 * of 4294967297 is 1; a length outside [0, INT32_MAX - 2] after that is
 * refused. A multi-get with a bad key anywhere is answered with only the
 * error; memcached 1.6.18 does the same in practice: it drops the replies
 * it had stacked for the earlier keys.
 *
 * Number syntax is exactly safe_strtoul/safe_strtol/safe_strtoull: leading
 * white space (isspace: " \t\n\v\f\r"), an optional sign, decimal digits,
 * then the end of the token or a white space byte (after which memcached
 * ignores the rest of the token, and so do we). The unsigned forms accept
 * "-N" as strtoul does (2^64 - N) unless the result is negative as a signed
 * number and the token holds a '-'.
 *
 * Invariants: the parser never writes to buf, never reads outside
 * buf[0..len), never allocates, and keeps no state except `swallow` (the
 * rest of a too-large value still to discard) and `meta_key` (scratch for
 * the request being returned: a base64-decoded key). A call that returns 0
 * changes no parser state that a later call reads, so the caller may retry
 * with more bytes.
 *
 * Meta commands (mg ms md ma mn me) are parsed in their own section below,
 * which explains their rules.
 */
#include "proto.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

#define FORMAT_ERROR "CLIENT_ERROR bad command line format"
#define EXPTIME_ERROR "CLIENT_ERROR invalid exptime argument"
#define DELTA_ERROR "CLIENT_ERROR invalid numeric delta argument"
#define DELETE_ERROR "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
#define CHUNK_ERROR "CLIENT_ERROR bad data chunk"
#define TOO_LARGE_ERROR "SERVER_ERROR object too large for cache"
#define SHUTDOWN_ERROR "CLIENT_ERROR invalid shutdown mode"

/* memcached's tokens before its terminal slot. */
#define TOKENS_MAX (PROTO_MAX_TOKENS - 1)

/* A line this long without a newline may still be a get whose leading
 * spaces are skipped; more spaces than this close the connection. */
#define LEADING_SPACES_MAX 100

struct token {
    const char *p;
    uint32_t len;
    bool ctrl; /* holds a control byte, noted only with --strict-keys: refused in a key */
};

/* The unparsed rest of a command line. */
struct cursor {
    const char *p;
    const char *end;
    bool strict_keys; /* a control byte makes a token's `ctrl` true */
};

/* A literal for token comparisons: pointer and length without strlen. */
#define LIT(s) (s), (sizeof(s) - 1)

static inline bool token_is(const struct token *tok, const char *lit, size_t n)
{
    return tok->len == n && memcmp(tok->p, lit, n) == 0;
}

/*
 * Reads the next space-separated token, noting control bytes on the way so
 * that a key is checked in the same pass. Returns false at the end of the
 * line.
 */
/*
 * The first byte of an 8-byte little-endian word that is a space, a control
 * byte (< 0x20) or DEL, as a bit mask with the high bit of each such byte
 * set, or 0. (x - 0x21..) & ~x & 0x80.. flags bytes below 0x21 exactly at
 * the lowest one (a borrow only propagates upward, past a flagged byte);
 * bytes >= 0x80 (UTF-8) are never flagged. DEL is found the same way as a
 * zero byte of x ^ 0x7f.. .
 */
static inline uint64_t special_bytes(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t low = (x - 0x21 * ones) & ~x & highs;
    uint64_t del = x ^ (0x7f * ones);
    del = (del - ones) & ~del & highs;
    return low | del;
}

/*
 * Reads the next space-separated token, noting control bytes on the way so
 * that a key is checked in the same pass. Returns false at the end of the
 * line. Eight bytes per step while sixteen remain before the end of the
 * line (never reading past it): long keys are scanned a word at a time,
 * short tokens byte by byte, where a word's setup would cost more.
 */
static bool next_token(struct cursor *cur, struct token *tok)
{
    const char *p = cur->p;
    const char *end = cur->end;
    while (p < end && *p == ' ')
        p++;
    const char *start = p;
    bool ctrl = false;
    while (p < end) {
        if (end - p >= 16) { /* words pay off on long tokens (keys), not "get" */
            uint64_t word;
            memcpy(&word, p, 8);
            uint64_t hit = special_bytes(word);
            if (hit == 0) {
                p += 8;
                continue;
            }
            p += (unsigned)__builtin_ctzll(hit) / 8;
        }
        unsigned char c = (unsigned char)*p;
        if (c > ' ' && c != 0x7f) {
            p++;
            continue;
        }
        if (c == ' ')
            break;
        ctrl = true;
        p++;
    }
    cur->p = p;
    if (p == start)
        return false;
    tok->p = start;
    tok->len = (uint32_t)(p - start);
    tok->ctrl = ctrl && cur->strict_keys;
    return true;
}

/* Fills toks[from..max) from the cursor; returns the total token count. */
static size_t collect_tokens(struct cursor *cur, struct token *toks, size_t from, size_t max)
{
    size_t n = from;
    while (n < max && next_token(cur, &toks[n]))
        n++;
    return n;
}

static inline bool is_c_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r'); /* \t \n \v \f \r */
}

/*
 * strtoull() on a bounded token, with safe_strto*'s end check. Returns
 * false where memcached's strto* would set ERANGE or stop at a byte that
 * is neither the end nor white space. *neg and *mag are the sign and the
 * magnitude as written.
 */
static bool scan_number(const struct token *tok, bool *neg, uint64_t *mag)
{
    const char *p = tok->p;
    const char *end = p + tok->len;
    while (p < end && is_c_space((unsigned char)*p))
        p++;
    *neg = false;
    if (p < end && (*p == '+' || *p == '-')) {
        *neg = *p == '-';
        p++;
    }
    const char *digits = p;
    uint64_t v = 0;
    bool overflow = false;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = true;
        v = v * 10 + d;
    }
    if (p == digits || overflow)
        return false;
    if (p < end && !is_c_space((unsigned char)*p))
        return false;
    *mag = v;
    return true;
}

/* safe_strtoul / safe_strtoull (unsigned long is 64 bits on our targets). */
static bool parse_unsigned(const struct token *tok, uint64_t *out)
{
    bool neg;
    uint64_t mag;
    if (!scan_number(tok, &neg, &mag))
        return false;
    uint64_t v = neg ? (uint64_t)0 - mag : mag;
    /* memcached's check: a "negative" result is refused only if a '-' is
     * anywhere in the token, which also catches "-1" == 2^64 - 1 */
    if ((int64_t)v < 0 && memchr(tok->p, '-', tok->len) != NULL)
        return false;
    *out = v;
    return true;
}

/* strtol() on 64-bit long, without the truncation to int32 that
 * safe_strtol applies: callers decide what range they accept. */
static bool parse_signed(const struct token *tok, int64_t *out)
{
    bool neg;
    uint64_t mag;
    if (!scan_number(tok, &neg, &mag))
        return false;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1)
            return false;
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)mag;
    }
    return true;
}

/* safe_strtol: strtol() over 64 bits, then its low 32 bits as a signed
 * value (memcached stores the long into an int32_t): exptimes, lengths. */
static bool parse_int32(const struct token *tok, int32_t *out)
{
    int64_t v;
    if (!parse_signed(tok, &v))
        return false;
    *out = (int32_t)(uint32_t)(uint64_t)v;
    return true;
}

/* An exptime: safe_strtol, so 4294967295 is -1 (already expired). */
static bool parse_exptime(const struct token *tok, int64_t *out)
{
    int32_t v;
    if (!parse_int32(tok, &v))
        return false;
    *out = v;
    return true;
}

/* safe_strtoul into a uint32_t: the low 32 bits of strtoul(). */
static bool parse_uint32(const struct token *tok, uint32_t *out)
{
    uint64_t v;
    if (!parse_unsigned(tok, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

/* A value length (storage commands, ms): safe_strtol, then memcached's
 * range check. */
static bool parse_vlen(const struct token *tok, int32_t *out)
{
    return parse_int32(tok, out) && *out >= 0 && *out <= INT32_MAX - 2;
}

static inline bool key_ok(const struct token *tok)
{
    return tok->len <= PROTO_KEY_MAX && !tok->ctrl;
}

/* memcached's set_noreply_maybe: the last token is "noreply". */
static inline bool last_is_noreply(const struct token *toks, size_t n)
{
    return token_is(&toks[n - 1], LIT("noreply"));
}

/* An error request carries only the reply and whether noreply silences
 * it; fields parsed before the error are cleared so that no caller can act
 * on half a request. */
static size_t fail(struct proto_req *req, const char *error, size_t consumed)
{
    *req = (struct proto_req){.cmd = PROTO_ERROR, .noreply = req->noreply, .error = error};
    return consumed;
}

/*
 * A line with no newline yet. memcached waits while it has at most 2048
 * bytes; past that only a get/gets (after at most 100 spaces) may grow,
 * every other line closes the connection without a reply.
 */
static size_t parse_no_newline(const char *buf, size_t len, struct proto_req *req)
{
    if (len <= PROTO_LINE_MAX)
        return 0;
    size_t spaces = 0;
    while (spaces < len && buf[spaces] == ' ')
        spaces++;
    const char *p = buf + spaces;
    size_t rest = len - spaces;
    bool get = (rest >= 4 && memcmp(p, "get ", 4) == 0) || (rest >= 5 && memcmp(p, "gets ", 5) == 0);
    if (spaces <= LEADING_SPACES_MAX && get && len <= PROTO_GET_LINE_MAX)
        return 0;
    req->cmd = PROTO_NONE;
    req->close = true;
    return len;
}

/*
 * get/gets/gat/gats/bget. memcached wants one token after the command
 * (for gat/gats the exptime; then no keys at all is fine and answers
 * "END"). Every key is checked here, so the executor sees a valid list.
 */
static size_t parse_retrieval(struct cursor *cur, enum proto_cmd cmd, bool touch,
                              struct proto_req *req, size_t consumed)
{
    struct token tok;
    if (!next_token(cur, &tok))
        return fail(req, "ERROR", consumed);
    if (touch) {
        if (!parse_exptime(&tok, &req->exptime))
            return fail(req, EXPTIME_ERROR, consumed);
        if (!next_token(cur, &tok)) {
            req->cmd = cmd; /* no keys: a bare "END" */
            return consumed;
        }
    }
    struct token first = tok;
    const char *last_end;
    uint32_t nkeys = 0;
    do {
        if (!key_ok(&tok))
            return fail(req, FORMAT_ERROR, consumed);
        nkeys++;
        last_end = tok.p + tok.len;
    } while (next_token(cur, &tok));
    req->cmd = cmd;
    req->key = first.p;
    req->nkey = first.len;
    req->keys = first.p;
    req->keys_len = (uint32_t)(last_end - first.p);
    req->nkeys = nkeys;
    return consumed;
}

/*
 * set/add/replace/append/prepend (5 or 6 tokens) and cas (6 or 7): the
 * header, then the data block, which must be buffered in full before the
 * request is returned.
 */
/*
 * The data block of a storage command (classic or ms) whose line took
 * `consumed` bytes, req->nbytes long. Too large for the cache: the command
 * is reported at once with TOO_LARGE_ERROR and the block swallowed (as
 * memcached's conn_swallow), returning `consumed`. Not all here: 0, with
 * *need the bytes needed. Complete: req->value is set and the line plus
 * block are consumed; a block not ending in "\r\n" is consumed whole with
 * req->value left NULL, for the caller's own CLIENT_ERROR bad data chunk.
 */
static inline __attribute__((always_inline)) size_t data_block(struct proto_parser *parser, const char *buf, size_t len, size_t consumed,
                         struct proto_req *req, size_t *need)
{
    if (parser->limits.item_total(req->nkey, req->nbytes) > parser->limits.item_size_max) {
        req->too_large = true;
        req->error = TOO_LARGE_ERROR;
        parser->swallow = (uint64_t)req->nbytes + 2;
        return consumed;
    }
    size_t total = consumed + req->nbytes + 2;
    if (len < total) {
        if (need != NULL)
            *need = total;
        return 0;
    }
    const char *end = buf + consumed + req->nbytes;
    if (end[0] == '\r' && end[1] == '\n')
        req->value = buf + consumed;
    return total;
}

static size_t parse_storage(struct proto_parser *parser, struct cursor *cur, struct token *toks,
                            enum proto_cmd cmd, const char *buf, size_t len, size_t consumed,
                            struct proto_req *req, size_t *need)
{
    bool cas = cmd == PROTO_CAS;
    size_t n = collect_tokens(cur, toks, 1, TOKENS_MAX);
    if (n != (cas ? 6u : 5u) && n != (cas ? 7u : 6u))
        return fail(req, "ERROR", consumed);
    req->noreply = last_is_noreply(toks, n);
    if (toks[1].len > PROTO_KEY_MAX)
        return fail(req, FORMAT_ERROR, consumed);

    uint32_t flags;
    int32_t vlen;
    if (!parse_uint32(&toks[2], &flags) || !parse_exptime(&toks[3], &req->exptime) ||
        !parse_int32(&toks[4], &vlen))
        return fail(req, FORMAT_ERROR, consumed);
    if (cas && !parse_unsigned(&toks[5], &req->cas))
        return fail(req, FORMAT_ERROR, consumed);
    if (vlen < 0 || vlen > INT32_MAX - 2)
        return fail(req, FORMAT_ERROR, consumed);
    if (toks[1].ctrl) {
        /* --strict-keys refuses what memcached stores: its block goes too */
        parser->swallow = (uint64_t)vlen + 2;
        return fail(req, FORMAT_ERROR, consumed);
    }

    req->cmd = cmd;
    req->key = toks[1].p;
    req->nkey = toks[1].len;
    req->flags = flags;
    req->nbytes = (uint32_t)vlen;

    size_t total = data_block(parser, buf, len, consumed, req, need);
    if (total == consumed + req->nbytes + 2 && req->value == NULL)
        return fail(req, CHUNK_ERROR, total); /* noreply still silences it */
    return total;
}

/* "<cmd> <key> <number> [noreply]": incr/decr (an unsigned delta) and touch
 * (an exptime), with their own error for a bad number. */
static size_t parse_key_number(struct cursor *cur, struct token *toks, enum proto_cmd cmd,
                               struct proto_req *req, size_t consumed)
{
    size_t n = collect_tokens(cur, toks, 1, TOKENS_MAX);
    if (n != 3 && n != 4)
        return fail(req, "ERROR", consumed);
    req->noreply = last_is_noreply(toks, n);
    if (!key_ok(&toks[1]))
        return fail(req, FORMAT_ERROR, consumed);
    if (cmd == PROTO_TOUCH ? !parse_exptime(&toks[2], &req->exptime) : !parse_unsigned(&toks[2], &req->delta))
        return fail(req, cmd == PROTO_TOUCH ? EXPTIME_ERROR : DELTA_ERROR, consumed);
    req->cmd = cmd;
    req->key = toks[1].p;
    req->nkey = toks[1].len;
    return consumed;
}

/*
 * delete: 2 to 4 tokens. A third token must be the legacy hold time "0"
 * or "noreply"; with four, "0 noreply". memcached checks this form before
 * the key.
 */
static size_t parse_delete(struct cursor *cur, struct token *toks, struct proto_req *req,
                           size_t consumed)
{
    size_t n = collect_tokens(cur, toks, 1, TOKENS_MAX);
    if (n < 2 || n > 4)
        return fail(req, "ERROR", consumed);
    if (n > 2) {
        bool hold_is_zero = token_is(&toks[2], LIT("0"));
        req->noreply = last_is_noreply(toks, n);
        bool valid = (n == 3 && (hold_is_zero || req->noreply)) ||
                     (n == 4 && hold_is_zero && req->noreply);
        if (!valid)
            return fail(req, DELETE_ERROR, consumed);
    }
    if (!key_ok(&toks[1]))
        return fail(req, FORMAT_ERROR, consumed);
    req->cmd = PROTO_DELETE;
    req->key = toks[1].p;
    req->nkey = toks[1].len;
    return consumed;
}

/*
 * flush_all [delay] [noreply]: 1 to 3 tokens. memcached parses the second
 * token as the delay whenever the count is not exactly "flush_all" or
 * "flush_all noreply", so "flush_all 10 20" is a delay of 10. A delay of 0
 * or less means now; we report it as 0.
 */
const char proto_flush_all_bad_delay[] = EXPTIME_ERROR;

static size_t parse_flush_all(struct cursor *cur, struct token *toks, struct proto_req *req,
                              size_t consumed)
{
    size_t n = collect_tokens(cur, toks, 1, TOKENS_MAX);
    if (n > 3)
        return fail(req, "ERROR", consumed);
    req->noreply = last_is_noreply(toks, n);
    if (n != (req->noreply ? 2u : 1u)) {
        int64_t delay;
        if (!parse_exptime(&toks[1], &delay))
            return fail(req, proto_flush_all_bad_delay, consumed);
        req->exptime = delay > 0 ? delay : 0;
    }
    req->cmd = PROTO_FLUSH_ALL;
    return consumed;
}

/*
 * slabs reassign <src> <dst> | slabs automove <0|1|2> | slabs automove
 * ratio <r> (issue 12). corecache's engine has no slab page mover:
 *   reassign: PROTO_SLABS_REASSIGN with both classes read (exec.c answers
 *             as memcached 1.6.18, which checks slab_reassign before the
 *             arguments);
 *   automove: "OK" for 0, 1, 2 or "ratio <number>" (it only stores the
 *             setting), "CLIENT_ERROR bad command line format" for a
 *             non-number, "ERROR" for any other number or a bare ratio;
 *   anything else: "ERROR".
 */
/* memcached's safe_strtol: a whole token, base 10, in int32 range. */
static bool slab_class_arg(const struct token *t, int32_t *out)
{
    char text[32];
    char *end = NULL;
    if (t->len == 0 || t->len >= sizeof(text))
        return false;
    memcpy(text, t->p, t->len);
    text[t->len] = '\0';
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end != text + t->len || v < INT32_MIN || v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

static size_t parse_slabs(struct cursor *cur, struct token *toks, struct proto_req *req, size_t consumed)
{
    size_t n = collect_tokens(cur, toks, 1, TOKENS_MAX);
    if (n == 4 && token_is(&toks[1], LIT("reassign"))) {
        req->cmd = PROTO_SLABS_REASSIGN;
        req->slab_args_ok = slab_class_arg(&toks[2], &req->slab_src) &&
                            slab_class_arg(&toks[3], &req->slab_dst);
        return consumed;
    }
    if (n < 3 || !token_is(&toks[1], LIT("automove")))
        return fail(req, "ERROR", consumed);
    req->noreply = last_is_noreply(toks, n);
    if (token_is(&toks[2], LIT("ratio"))) {
        char text[32];
        char *end = NULL;
        if (n < 4 || toks[3].len == 0 || toks[3].len >= sizeof(text))
            return fail(req, "ERROR", consumed);
        memcpy(text, toks[3].p, toks[3].len);
        text[toks[3].len] = '\0';
        (void)strtod(text, &end);
        return fail(req, end == text + toks[3].len ? "OK" : "ERROR", consumed);
    }
    uint64_t level;
    if (!parse_unsigned(&toks[2], &level))
        return fail(req, FORMAT_ERROR, consumed);
    return fail(req, (uint32_t)level <= 2 ? "OK" : "ERROR", consumed);
}

/* verbosity <level> [noreply]: 2 or 3 tokens; the level is truncated to
 * 32 bits as memcached's safe_strtoul into an unsigned int does. */
static size_t parse_verbosity(struct cursor *cur, struct token *toks, struct proto_req *req,
                              size_t consumed)
{
    size_t n = collect_tokens(cur, toks, 1, TOKENS_MAX);
    if (n != 2 && n != 3)
        return fail(req, "ERROR", consumed);
    req->noreply = last_is_noreply(toks, n);
    uint64_t level;
    if (!parse_unsigned(&toks[1], &level))
        return fail(req, FORMAT_ERROR, consumed);
    req->cmd = PROTO_VERBOSITY;
    req->level = (uint32_t)level;
    return consumed;
}

static const struct {
    const char *word;
    uint32_t kind;
} watch_words[] = {
    {"rawcmds", PROTO_WATCH_RAWCMDS},         {"evictions", PROTO_WATCH_EVICTIONS},
    {"fetchers", PROTO_WATCH_FETCHERS},       {"mutations", PROTO_WATCH_MUTATIONS},
    {"sysevents", PROTO_WATCH_SYSEVENTS},     {"connevents", PROTO_WATCH_CONNEVENTS},
    {"proxyreqs", PROTO_WATCH_PROXYREQS},     {"proxyevents", PROTO_WATCH_PROXYEVENTS},
    {"proxyuser", PROTO_WATCH_PROXYUSER},
};

static uint32_t watch_kind_of(const struct token *tok)
{
    for (size_t i = 0; i < sizeof(watch_words) / sizeof(watch_words[0]); i++) {
        if (strlen(watch_words[i].word) == tok->len && memcmp(watch_words[i].word, tok->p, tok->len) == 0)
            return watch_words[i].kind;
    }
    return 0;
}

/* watch [kind ...]: memcached's process_watch_command; no kind means
 * fetchers; an unknown word leaves no kinds, which exec answers "ERROR"
 * unless -W refuses watch first, as memcached checks -W first (issue 12). */
static size_t parse_watch(struct cursor *cur, struct token *toks, struct proto_req *req, size_t consumed)
{
    size_t n = collect_tokens(cur, toks, 1, TOKENS_MAX);
    uint32_t kinds = 0;
    for (size_t i = 1; i < n; i++) {
        uint32_t kind = watch_kind_of(&toks[i]);
        if (kind == 0) {
            kinds = 0;
            break;
        }
        kinds |= kind;
    }
    req->cmd = PROTO_WATCH;
    req->watch_kinds = n > 1 ? kinds : PROTO_WATCH_FETCHERS;
    return consumed;
}

/* stats [args]: the rest of the line, trimmed, for the executor. */
static size_t parse_stats(struct cursor *cur, struct proto_req *req, size_t consumed)
{
    const char *p = cur->p;
    const char *end = cur->end;
    while (p < end && *p == ' ')
        p++;
    while (end > p && end[-1] == ' ')
        end--;
    req->cmd = PROTO_STATS;
    req->args = p;
    req->nargs = (uint32_t)(end - p);
    return consumed;
}

/* shutdown [graceful]: whether it is enabled (-A) is the executor's call. */
static size_t parse_shutdown(struct cursor *cur, struct token *toks, struct proto_req *req,
                             size_t consumed)
{
    size_t n = collect_tokens(cur, toks, 1, TOKENS_MAX);
    if (n == 2 && token_is(&toks[1], LIT("graceful")))
        req->graceful = true;
    else if (n != 1)
        return fail(req, SHUTDOWN_ERROR, consumed);
    req->cmd = PROTO_SHUTDOWN;
    return consumed;
}

/*
 * --- Meta commands (mg ms md ma mn me) ------------------------------------
 *
 * memcached 1.6.18's process_mget_command, process_mset_command,
 * process_mdelete_command, process_marithmetic_command and
 * process_meta_command, with _meta_flag_preparse() for the flags. What is
 * decided here is everything memcached decides before it touches the
 * cache: the error replies and their precedence, and for ms how many data
 * bytes an error swallows. What depends on the item (and the checks
 * memcached makes only while composing a reply, such as mg's and ma's
 * opaque length, which it checks after acting on the item) is left to the
 * executor (process_meta.c), which walks meta.order as memcached walks its
 * tokens.
 *
 * Error precedence, as memcached's:
 *   - too few tokens: "ERROR" (me: CLIENT_ERROR bad command line format);
 *   - a key token over 250 bytes: CLIENT_ERROR bad command line format;
 *     (with --strict-keys, a key token with a control byte too; ms
 *     then reads its length and swallows its block, see below);
 *   - ms without a length: CLIENT_ERROR bad command line format;
 *   - more than 19 tokens: "CLIENT_ERROR options flags are too long" (mg),
 *     "... options flags too long" (ms md ma);
 *   - ms: a bad length: CLIENT_ERROR bad command line format;
 *   - the flags, in order: a repeated flag (or one starting with a byte >=
 *     127) "CLIENT_ERROR duplicate flag" and an unknown one "CLIENT_ERROR
 *     invalid flag" stop at once; the others (bad numbers, bad M, a key
 *     that does not decode) are noted and the scan goes on, the last
 *     message winning, and F's silent failure leaving the message as it
 *     was; md and ma answer every flag error with "CLIENT_ERROR invalid or
 *     duplicate flag";
 *   - ms: then the opaque's length, overridden by a bad M mode; md: the
 *     opaque's length; ma: a bad M mode.
 * An ms error after its length was read swallows the data block, as
 * memcached does; earlier ones do not, so its data line is then read as a
 * command, as memcached reads it.
 *
 * Numbers are memcached's (T, N, R and ms's length truncated to int32, F
 * to uint32). With --strict-keys a NUL byte in a flag token is an invalid
 * flag (without it the line ends there, as memcached's does). Deliberate
 * difference: E and x, which memcached added after 1.6.18, are
 * implemented as memcached 1.6.27 defines them (1.6.18 calls them invalid).
 */

#define META_TOKENS_MAX 19 /* memcached's MFLAG_MAX_OPT_LENGTH, less its terminal token */
#define META_OPAQUE_MAX 32 /* memcached's MFLAG_MAX_OPAQUE_LENGTH: the O token, 'O' included */
#define META_BAD_TOKEN "CLIENT_ERROR bad token in command line format"
#define META_BAD_FLAG "CLIENT_ERROR invalid or duplicate flag"
#define META_OPAQUE_LONG "CLIENT_ERROR opaque token too long"

/* A flag's token after its first byte, for the number parsers. */
static inline struct token flag_arg(const struct token *tok)
{
    return (struct token){tok->p + 1, tok->len - 1, false};
}

/* A TTL token (T, N, R): safe_strtol, the low 32 bits as memcached keeps. */
static bool parse_meta_ttl(const struct token *tok, int32_t *out)
{
    struct token arg = flag_arg(tok);
    int64_t v;
    if (!parse_exptime(&arg, &v))
        return false;
    *out = (int32_t)v;
    return true;
}

static bool parse_meta_u64(const struct token *tok, uint64_t *out)
{
    struct token arg = flag_arg(tok);
    return parse_unsigned(&arg, out);
}

/*
 * memcached's _meta_flag_preparse() over toks[first..n): fills req->meta
 * and req->opaque, and with b decodes the key token into parser->meta_key
 * (req->key, req->nkey). Returns NULL, or the error reply.
 */
static const char *parse_meta_flags(struct proto_parser *parser, const struct token *toks,
                                    size_t first, size_t n, struct proto_req *req)
{
    struct proto_meta *m = &req->meta;
    const char *error = NULL;
    bool failed = false;
    m->delta = 1;
    /* (a NUL left in a flag token can only be seen with --strict-keys) */
    for (size_t i = first; i < n; i++) {
        const struct token *tok = &toks[i];
        unsigned char c = (unsigned char)tok->p[0];
        if (c >= 127 || (c >= 'A' && c <= 'z' && proto_meta_has(m, (char)c)))
            return "CLIENT_ERROR duplicate flag";
        if (memchr(tok->p, '\0', tok->len) != NULL)
            return "CLIENT_ERROR invalid flag";
        const char *bad = NULL; /* this flag's error: noted, and the scan goes on */
        switch (c) {
        case 'b': {
            size_t nkey = base64_decode(req->key, req->nkey, (unsigned char *)parser->meta_key);
            if (nkey == 0)
                bad = "CLIENT_ERROR error decoding key";
            req->key = parser->meta_key;
            req->nkey = (uint32_t)nkey;
            break;
        }
        case 'N':
            bad = parse_meta_ttl(tok, &m->vivify_ttl) ? NULL : META_BAD_TOKEN;
            break;
        case 'T':
            bad = parse_meta_ttl(tok, &m->ttl) ? NULL : META_BAD_TOKEN;
            break;
        case 'R':
            bad = parse_meta_ttl(tok, &m->recache_ttl) ? NULL : META_BAD_TOKEN;
            break;
        case 'F': {
            /* memcached fails F without saying why: the message stays */
            struct token arg = flag_arg(tok);
            uint32_t flags;
            if (!parse_uint32(&arg, &flags))
                failed = true;
            else
                m->client_flags = flags;
            break;
        }
        case 'C':
            bad = parse_meta_u64(tok, &m->cas) ? NULL : META_BAD_TOKEN;
            break;
        case 'E':
            bad = parse_meta_u64(tok, &m->new_cas) ? NULL : META_BAD_TOKEN;
            break;
        case 'J':
            bad = parse_meta_u64(tok, &m->initial) ? NULL : "CLIENT_ERROR invalid numeric initial value";
            break;
        case 'D':
            bad = parse_meta_u64(tok, &m->delta) ? NULL : "CLIENT_ERROR invalid numeric delta value";
            break;
        case 'M':
            if (tok->len != 2)
                bad = "CLIENT_ERROR incorrect length for M token";
            else
                m->mode = tok->p[1];
            break;
        case 'O':
            req->opaque = tok->p + 1;
            req->nopaque = tok->len - 1;
            break;
        case 'P': /* proxy hints, ignored */
        case 'L':
        case 'k': /* return flags and switches: acted on when executed */
        case 's':
        case 't':
        case 'c':
        case 'f':
        case 'v':
        case 'h':
        case 'l':
        case 'u':
        case 'q':
        case 'I':
        case 'x':
            break;
        default:
            return "CLIENT_ERROR invalid flag";
        }
        if (bad != NULL) {
            error = bad;
            failed = true;
        }
        m->has |= PROTO_META_BIT(c);
        m->order[m->nflags++] = (char)c;
    }
    if (failed)
        return error != NULL ? error : FORMAT_ERROR;
    return NULL;
}

/* The key token of a meta command: its length is checked first, then
 * (--strict-keys only) its bytes. Returns NULL or the error. */
static const char *meta_key_check(const struct token *key, struct proto_req *req)
{
    if (!key_ok(key))
        return FORMAT_ERROR;
    req->key = key->p;
    req->nkey = key->len;
    return NULL;
}

static bool meta_opaque_too_long(const struct proto_req *req)
{
    return req->opaque != NULL && (size_t)req->nopaque + 1 > META_OPAQUE_MAX;
}

/* A meta error: the request is cleared as fail() does (meta errors are
 * never silenced by q). */
static size_t meta_fail(struct proto_req *req, const char *error, size_t consumed)
{
    req->noreply = false;
    return fail(req, error, consumed);
}

/* An ms error after its length is known: the data block is swallowed. */
static size_t meta_fail_swallow(struct proto_parser *parser, struct proto_req *req,
                                const char *error, size_t consumed, uint64_t vlen)
{
    parser->swallow = vlen + 2;
    return meta_fail(req, error, consumed);
}

/* mg, md, ma: <cmd> <key> <flags>* */
static size_t parse_meta_keyed(struct proto_parser *parser, struct cursor *cur, struct token *toks,
                               enum proto_cmd cmd, struct proto_req *req, size_t consumed)
{
    size_t n = collect_tokens(cur, toks, 1, TOKENS_MAX);
    if (n < 2)
        return meta_fail(req, "ERROR", consumed);
    const char *error = meta_key_check(&toks[1], req);
    if (error != NULL)
        return meta_fail(req, error, consumed);
    if (n > META_TOKENS_MAX)
        return meta_fail(req, cmd == PROTO_MG ? "CLIENT_ERROR options flags are too long"
                                              : "CLIENT_ERROR options flags too long",
                         consumed);
    error = parse_meta_flags(parser, toks, 2, n, req);
    if (error != NULL)
        return meta_fail(req, cmd == PROTO_MG ? error : META_BAD_FLAG, consumed);
    if (cmd == PROTO_MD && meta_opaque_too_long(req))
        return meta_fail(req, META_OPAQUE_LONG, consumed);
    if (cmd == PROTO_MA) {
        switch (req->meta.mode) {
        case 0:
        case 'I':
        case '+':
        case 'D':
        case '-':
            break;
        default:
            return meta_fail(req, "CLIENT_ERROR invalid mode for ma M token", consumed);
        }
    }
    req->cmd = cmd;
    return consumed;
}

/* ms <key> <datalen> <flags>*, then the data block. */
static size_t parse_meta_set(struct proto_parser *parser, struct cursor *cur, struct token *toks,
                             const char *buf, size_t len, size_t consumed, struct proto_req *req,
                             size_t *need)
{
    size_t n = collect_tokens(cur, toks, 1, TOKENS_MAX);
    if (n < 2)
        return meta_fail(req, "ERROR", consumed);
    if (toks[1].len > PROTO_KEY_MAX || n == 2)
        return meta_fail(req, FORMAT_ERROR, consumed);
    req->key = toks[1].p;
    req->nkey = toks[1].len;
    if (n > META_TOKENS_MAX)
        return meta_fail(req, "CLIENT_ERROR options flags too long", consumed);
    int32_t vlen;
    if (!parse_vlen(&toks[2], &vlen))
        return meta_fail(req, FORMAT_ERROR, consumed);
    if (toks[1].ctrl) /* --strict-keys: refused, the block swallowed */
        return meta_fail_swallow(parser, req, FORMAT_ERROR, consumed, (uint64_t)vlen);

    const char *error = parse_meta_flags(parser, toks, 3, n, req);
    if (error != NULL)
        return meta_fail_swallow(parser, req, error, consumed, (uint64_t)vlen);
    switch (req->meta.mode) {
    case 0:
    case 'E':
    case 'A':
    case 'P':
    case 'R':
    case 'S':
        break;
    default:
        return meta_fail_swallow(parser, req, "CLIENT_ERROR invalid mode for ms M token", consumed,
                                 (uint64_t)vlen);
    }
    if (meta_opaque_too_long(req))
        return meta_fail_swallow(parser, req, META_OPAQUE_LONG, consumed, (uint64_t)vlen);

    req->cmd = PROTO_MS;
    req->nbytes = (uint32_t)vlen;
    req->flags = req->meta.client_flags;
    size_t total = data_block(parser, buf, len, consumed, req, need);
    if (total == consumed + req->nbytes + 2 && req->value == NULL)
        return meta_fail(req, CHUNK_ERROR, total);
    return total;
}

/* me <key> [b]: only a first flag of exactly "b" means anything. */
static size_t parse_meta_debug(struct proto_parser *parser, struct cursor *cur, struct token *toks,
                               struct proto_req *req, size_t consumed)
{
    size_t n = collect_tokens(cur, toks, 1, TOKENS_MAX);
    if (n < 2 || meta_key_check(&toks[1], req) != NULL)
        return meta_fail(req, FORMAT_ERROR, consumed);
    if (n >= 3 && token_is(&toks[2], LIT("b"))) {
        size_t nkey = base64_decode(req->key, req->nkey, (unsigned char *)parser->meta_key);
        if (nkey == 0)
            return meta_fail(req, FORMAT_ERROR, consumed);
        req->key = parser->meta_key;
        req->nkey = (uint32_t)nkey;
        req->meta.has = PROTO_META_BIT('b');
        req->meta.order[req->meta.nflags++] = 'b';
    }
    req->cmd = PROTO_ME;
    return consumed;
}

/*
 * Every two-byte command starting with 'm' comes here, as in memcached,
 * before anything else is looked at; an unknown one ("mx") is "ERROR".
 */
static size_t parse_meta(struct proto_parser *parser, struct cursor *cur, struct token *toks,
                         const char *buf, size_t len, size_t consumed, struct proto_req *req,
                         size_t *need)
{
    switch (toks[0].p[1]) {
    case 'g':
        return parse_meta_keyed(parser, cur, toks, PROTO_MG, req, consumed);
    case 's':
        return parse_meta_set(parser, cur, toks, buf, len, consumed, req, need);
    case 'd':
        return parse_meta_keyed(parser, cur, toks, PROTO_MD, req, consumed);
    case 'a':
        return parse_meta_keyed(parser, cur, toks, PROTO_MA, req, consumed);
    case 'e':
        return parse_meta_debug(parser, cur, toks, req, consumed);
    case 'n':
        req->cmd = PROTO_MN;
        return consumed;
    default:
        return fail(req, "ERROR", consumed);
    }
}

/*
 * A command we do not implement and that memcached does not know either
 * (memcached's last branch). There memcached closes the connection when
 * the last of the first 23 tokens starts with "HTTP/", to get rid of web
 * clients quickly. Commands memcached does know (lru, watch, ...) answer
 * "ERROR" here without that check.
 */
static size_t parse_unknown(struct cursor *cur, struct token *toks, struct proto_req *req,
                            size_t consumed)
{
    static const struct {
        const char *name;
        size_t len;
    } known[] = {
        {LIT("lru_crawler")}, {LIT("watch")}, {LIT("lru")}, {LIT("extstore")}, {LIT("refresh_certs")},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (token_is(&toks[0], known[i].name, known[i].len))
            return fail(req, "ERROR", consumed);
    }
    size_t n = collect_tokens(cur, toks, 1, TOKENS_MAX);
    const struct token *last = &toks[n - 1];
    if (last->len >= 5 && memcmp(last->p, "HTTP/", 5) == 0) {
        req->cmd = PROTO_NONE;
        req->close = true;
        return consumed;
    }
    return fail(req, "ERROR", consumed);
}

/*
 * One complete command line, line[0..n), followed in buf by its newline;
 * `consumed` covers the line and its newline. The switch mirrors
 * memcached's: commands whose first byte is g, s, a, c, i, d or t answer
 * "ERROR" when unknown, the others go to parse_unknown() and its HTTP
 * check.
 */
static size_t parse_line(struct proto_parser *parser, const char *buf, size_t n, size_t len,
                         size_t consumed, struct proto_req *req, size_t *need)
{
    if (!parser->limits.strict_keys) {
        /* memcached tokenizes with strlen(): a NUL ends the command text */
        const char *nul = memchr(buf, '\0', n);
        if (nul != NULL)
            n = (size_t)(nul - buf);
    }
    struct cursor cur = {buf, buf + n, parser->limits.strict_keys};
    struct token toks[TOKENS_MAX];
    struct token *cmd = &toks[0];
    if (!next_token(&cur, cmd) || cmd->len < 2)
        return fail(req, "ERROR", consumed);

    switch (cmd->p[0]) {
    case 'g':
        if (token_is(cmd, LIT("get")))
            return parse_retrieval(&cur, PROTO_GET, false, req, consumed);
        if (token_is(cmd, LIT("gets")))
            return parse_retrieval(&cur, PROTO_GETS, false, req, consumed);
        if (token_is(cmd, LIT("gat")))
            return parse_retrieval(&cur, PROTO_GAT, true, req, consumed);
        if (token_is(cmd, LIT("gats")))
            return parse_retrieval(&cur, PROTO_GATS, true, req, consumed);
        return fail(req, "ERROR", consumed);
    case 's':
        if (token_is(cmd, LIT("set")))
            return parse_storage(parser, &cur, toks, PROTO_SET, buf, len, consumed, req, need);
        if (token_is(cmd, LIT("slabs")))
            return parse_slabs(&cur, toks, req, consumed);
        if (token_is(cmd, LIT("stats")))
            return parse_stats(&cur, req, consumed);
        if (token_is(cmd, LIT("shutdown")))
            return parse_shutdown(&cur, toks, req, consumed);
        return fail(req, "ERROR", consumed);
    case 'a':
        if (token_is(cmd, LIT("add")))
            return parse_storage(parser, &cur, toks, PROTO_ADD, buf, len, consumed, req, need);
        if (token_is(cmd, LIT("append")))
            return parse_storage(parser, &cur, toks, PROTO_APPEND, buf, len, consumed, req, need);
        return fail(req, "ERROR", consumed);
    case 'c':
        if (token_is(cmd, LIT("cas")))
            return parse_storage(parser, &cur, toks, PROTO_CAS, buf, len, consumed, req, need);
        return fail(req, "ERROR", consumed);
    case 'i':
        if (token_is(cmd, LIT("incr")))
            return parse_key_number(&cur, toks, PROTO_INCR, req, consumed);
        return fail(req, "ERROR", consumed);
    case 'd':
        if (token_is(cmd, LIT("delete")))
            return parse_delete(&cur, toks, req, consumed);
        if (token_is(cmd, LIT("decr")))
            return parse_key_number(&cur, toks, PROTO_DECR, req, consumed);
        return fail(req, "ERROR", consumed);
    case 't':
        if (token_is(cmd, LIT("touch")))
            return parse_key_number(&cur, toks, PROTO_TOUCH, req, consumed);
        return fail(req, "ERROR", consumed);
    case 'm':
        if (cmd->len == 2)
            return parse_meta(parser, &cur, toks, buf, len, consumed, req, need);
        break;
    case 'r':
        if (token_is(cmd, LIT("replace")))
            return parse_storage(parser, &cur, toks, PROTO_REPLACE, buf, len, consumed, req, need);
        if (token_is(cmd, LIT("refresh_certs"))) {
            size_t ntok = collect_tokens(&cur, toks, 1, TOKENS_MAX);
            req->noreply = ntok > 1 && token_is(&toks[ntok - 1], LIT("noreply"));
            req->cmd = PROTO_REFRESH_CERTS;
            return consumed;
        }
        break;
    case 'p':
        if (token_is(cmd, LIT("prepend")))
            return parse_storage(parser, &cur, toks, PROTO_PREPEND, buf, len, consumed, req, need);
        break;
    case 'b':
        if (token_is(cmd, LIT("bget"))) /* memcached's undocumented alias */
            return parse_retrieval(&cur, PROTO_GET, false, req, consumed);
        break;
    case 'f':
        if (token_is(cmd, LIT("flush_all")))
            return parse_flush_all(&cur, toks, req, consumed);
        break;
    case 'v':
        if (token_is(cmd, LIT("version"))) {
            req->cmd = PROTO_VERSION;
            return consumed;
        }
        if (token_is(cmd, LIT("verbosity")))
            return parse_verbosity(&cur, toks, req, consumed);
        break;
    case 'w':
        if (token_is(cmd, LIT("watch")))
            return parse_watch(&cur, toks, req, consumed);
        break;
    case 'q':
        if (token_is(cmd, LIT("quit"))) {
            req->cmd = PROTO_QUIT;
            req->close = true;
            return consumed;
        }
        break;
    default:
        break;
    }
    return parse_unknown(&cur, toks, req, consumed);
}

void proto_parser_init(struct proto_parser *parser, const struct proto_limits *limits)
{
    parser->limits = *limits;
    parser->swallow = 0;
}

/*
 * See proto.h. Limits: at most one request per call; a swallow in progress
 * is reported alone (PROTO_NONE) before anything else is parsed. A line
 * longer than UINT32_MAX bytes closes the connection (lengths in the
 * request are 32-bit). The parser must have an item_total function.
 */
/*
 * The most common request by far, "get <key>" with one valid key, without
 * the tokenizer: the key is the rest of the line, accepted if it holds no
 * space, control byte or DEL and is not too long. Anything else (more keys,
 * extra spaces, a bad key) returns false and takes the general path, which
 * gives the same answer for this line in every case.
 */
static bool parse_get_fast(const char *line, size_t n, struct proto_req *req)
{
    if (n < 5 || n - 4 > PROTO_KEY_MAX || memcmp(line, "get ", 4) != 0)
        return false;
    const char *key = line + 4;
    size_t nkey = n - 4;
    size_t i = 0;
    for (; i + 8 <= nkey; i += 8) {
        uint64_t word;
        memcpy(&word, key + i, 8);
        if (special_bytes(word) != 0)
            return false;
    }
    for (; i < nkey; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c <= ' ' || c == 0x7f)
            return false;
    }
    req->cmd = PROTO_GET;
    req->key = key;
    req->nkey = (uint32_t)nkey;
    req->keys = key;
    req->keys_len = (uint32_t)nkey;
    req->nkeys = 1;
    return true;
}

size_t proto_parse_begin(struct proto_parser *parser, enum proto_family family, size_t len,
                         struct proto_req *req, size_t *need)
{
    *req = (struct proto_req){.cmd = PROTO_NONE, .family = family};
    if (need != NULL)
        *need = 0;
    if (parser->swallow == 0)
        return 0;
    size_t n = parser->swallow < len ? (size_t)parser->swallow : len;
    parser->swallow -= n;
    return n;
}

size_t proto_parse(struct proto_parser *parser, const char *buf, size_t len, struct proto_req *req,
                   size_t *need)
{
    size_t swallowed = proto_parse_begin(parser, PROTO_FAMILY_TEXT, len, req, need);
    if (len == 0 || swallowed > 0)
        return swallowed;

    const char *nl = memchr(buf, '\n', len);
    if (nl == NULL)
        return parse_no_newline(buf, len, req);
    size_t n = (size_t)(nl - buf);
    size_t consumed = n + 1;
    if (n > UINT32_MAX) {
        req->close = true;
        return consumed;
    }
    if (n > 1 && buf[n - 1] == '\r')
        n--;
    if (parse_get_fast(buf, n, req))
        return consumed;
    return parse_line(parser, buf, n, len, consumed, req, need);
}

bool proto_next_key(const struct proto_req *req, uint32_t *pos, const char **key, uint32_t *nkey)
{
    if (req->nkeys == 1) { /* most gets: the parser found the key already */
        if (*pos != 0)
            return false;
        *key = req->key;
        *nkey = req->nkey;
        *pos = req->keys_len;
        return true;
    }
    uint32_t i = *pos;
    uint32_t end = req->keys_len;
    while (i < end && req->keys[i] == ' ')
        i++;
    if (i >= end)
        return false;
    uint32_t start = i;
    const char *sp = memchr(req->keys + i, ' ', end - i);
    i = sp != NULL ? (uint32_t)(sp - req->keys) : end;
    *key = req->keys + start;
    *nkey = i - start;
    *pos = i;
    return true;
}

bool proto_is_keyed(enum proto_cmd cmd)
{
    return cmd >= PROTO_SET && cmd <= PROTO_ME;
}

bool proto_is_storage(enum proto_cmd cmd)
{
    return (cmd >= PROTO_SET && cmd <= PROTO_CAS) || cmd == PROTO_MS;
}

bool proto_is_retrieval(enum proto_cmd cmd)
{
    return cmd >= PROTO_GET && cmd <= PROTO_GATS;
}

const char *proto_cmd_name(enum proto_cmd cmd)
{
    static const char *const names[PROTO_CMD_COUNT] = {
        [PROTO_NONE] = "none",          [PROTO_ERROR] = "error",
        [PROTO_GET] = "get",            [PROTO_GETS] = "gets",
        [PROTO_GAT] = "gat",            [PROTO_GATS] = "gats",
        [PROTO_SET] = "set",            [PROTO_ADD] = "add",
        [PROTO_REPLACE] = "replace",    [PROTO_APPEND] = "append",
        [PROTO_PREPEND] = "prepend",    [PROTO_CAS] = "cas",
        [PROTO_DELETE] = "delete",      [PROTO_INCR] = "incr",
        [PROTO_DECR] = "decr",          [PROTO_TOUCH] = "touch",
        [PROTO_MG] = "mg",              [PROTO_MS] = "ms",
        [PROTO_MD] = "md",              [PROTO_MA] = "ma",
        [PROTO_ME] = "me",              [PROTO_MN] = "mn",
        [PROTO_STATS] = "stats",        [PROTO_FLUSH_ALL] = "flush_all",
        [PROTO_VERSION] = "version",    [PROTO_VERBOSITY] = "verbosity",
        [PROTO_QUIT] = "quit",          [PROTO_SHUTDOWN] = "shutdown",
        [PROTO_REFRESH_CERTS] = "refresh_certs",
        [PROTO_NOOP] = "noop",          [PROTO_WATCH] = "watch", [PROTO_SLABS_REASSIGN] = "slabs",
    };
    if ((unsigned)cmd >= PROTO_CMD_COUNT)
        return "unknown";
    return names[cmd];
}
