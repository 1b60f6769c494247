/*
 * proto.h: memcached's text protocol, parsed from plain bytes (the contract;
 * see proto.c).
 *
 * The parser turns the bytes a connection has received into one request at
 * a time. It never touches a socket, allocates, or copies: the request it
 * fills points into the caller's buffer and stays valid until the caller
 * drops those bytes (one exception: a meta command's base64 key, b, is
 * decoded into the parser and valid until the next call). Framing follows memcached 1.6's doc/protocol.txt and
 * proto_text.c byte for byte:
 *
 *   - a command line ends in "\r\n" or a bare "\n"; tokens are separated by
 *     spaces; at most 24 tokens are examined, as memcached does;
 *   - a storage command is followed by a data block of exactly <bytes>
 *     bytes and "\r\n"; a block whose last two bytes are not "\r\n" gets
 *     "CLIENT_ERROR bad data chunk" after the whole block was consumed;
 *   - a value too large for the cache gets "SERVER_ERROR object too large
 *     for cache" and its data block is swallowed (the parser remembers how
 *     many bytes are left to skip, across calls);
 *   - a line of more than 2048 bytes without a newline closes the
 *     connection unless it starts a get/gets (multi-gets may be long).
 *
 * Errors are reported as a request whose `error` is the reply line; the
 * caller sends it unless `noreply` is set, exactly as memcached's out_string
 * suppresses replies (error replies included) under noreply.
 *
 * A parser is per connection state (the swallow count); it is tiny and is
 * called only by the connection's thread.
 */
#ifndef CORECACHE_CORE_PROTO_H
#define CORECACHE_CORE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_KEY_MAX 250
#define PROTO_LINE_MAX 2048 /* longest line accepted without a newline */
/* A get/gets line (a multi-get) may grow this long before its newline. */
#define PROTO_GET_LINE_MAX (1024 * 1024)
#define PROTO_MAX_TOKENS 24

enum proto_cmd {
    PROTO_NONE = 0, /* nothing to execute (bytes swallowed) */
    PROTO_ERROR,    /* reply `error`; execute nothing */
    /* retrieval: one or more keys */
    PROTO_GET,
    PROTO_GETS,
    PROTO_GAT,
    PROTO_GATS,
    /* storage: one key and a data block */
    PROTO_SET,
    PROTO_ADD,
    PROTO_REPLACE,
    PROTO_APPEND,
    PROTO_PREPEND,
    PROTO_CAS,
    /* other keyed commands */
    PROTO_DELETE,
    PROTO_INCR,
    PROTO_DECR,
    PROTO_TOUCH,
    /* meta commands, keyed (their flags are in struct proto_meta) */
    PROTO_MG, /* meta get */
    PROTO_MS, /* meta set: one key and a data block */
    PROTO_MD, /* meta delete */
    PROTO_MA, /* meta arithmetic */
    PROTO_ME, /* meta debug */
    /* whole-server commands */
    PROTO_MN, /* meta no-op: "MN", in order after everything before it */
    PROTO_STATS,
    PROTO_FLUSH_ALL,
    PROTO_VERSION,
    PROTO_VERBOSITY,
    PROTO_QUIT,
    PROTO_SHUTDOWN,
    PROTO_REFRESH_CERTS, /* reload the TLS certificate and key (io/tls.c) */
    PROTO_NOOP, /* binary NOOP: an empty success, the pipeline's fence */
    PROTO_WATCH, /* watch [kinds...]: this connection becomes a log stream */
    PROTO_SLABS_REASSIGN, /* slabs reassign <src> <dst> (issue 12; exec.c answers) */
    PROTO_CMD_COUNT
};

/* What `watch` may ask for: memcached's LOG_* kinds (issue 12; the lines
 * themselves are core/logline.h's). */
enum proto_watch_kind {
    PROTO_WATCH_RAWCMDS = 1u << 0,
    PROTO_WATCH_EVICTIONS = 1u << 1,
    PROTO_WATCH_FETCHERS = 1u << 2,
    PROTO_WATCH_MUTATIONS = 1u << 3,
    PROTO_WATCH_SYSEVENTS = 1u << 4,
    PROTO_WATCH_CONNEVENTS = 1u << 5,
    PROTO_WATCH_PROXYREQS = 1u << 6,
    PROTO_WATCH_PROXYEVENTS = 1u << 7,
    PROTO_WATCH_PROXYUSER = 1u << 8,
};

enum proto_family {
    PROTO_FAMILY_TEXT = 0, /* memcached's text protocol (proto.c) */
    PROTO_FAMILY_BINARY,   /* memcached's binary protocol (proto_bin.c) */
};

/*
 * What a binary request carries besides the fields it shares with the text
 * protocol (cmd, key, value, flags, exptime, cas, delta). All plain data,
 * so the forwarding contract below holds. A binary request's `noreply` is
 * always false: a quiet binary command still answers its errors (and getq
 * its hits), so a reply must always be able to come back.
 */
struct proto_bin_fields {
    uint8_t opcode;   /* as sent: a reply echoes it (quiet variants too) */
    bool quiet;       /* success is silent (get: a miss is silent) */
    bool return_key;  /* getk/getkq/gatk/gatkq: the reply carries the key */
    bool no_create;   /* incr/decr: expiration 0xffffffff, a miss stays one */
    uint16_t status;  /* PROTO_ERROR: the binary status to answer with */
    uint32_t opaque;  /* echoed byte for byte in every reply */
    uint64_t initial; /* incr/decr: the value a miss creates */
};

/*
 * The flags of one meta command (mg ms md ma me). memcached answers return
 * flags in the order the request gave them and applies T, N and R in that
 * order too (with "mg k T30 R40" R sees the new TTL), so every flag's first
 * byte is kept in `order`; `has` says which flags are present; the tokens
 * are parsed into the fields below (numbers as the client wrote them:
 * TTLs become engine time only when executed). The opaque token (O) is
 * req->opaque, without its 'O'. Plain data only (forwarding contract).
 */
#define PROTO_META_FLAGS_MAX 20 /* memcached refuses more than 17 */
#define PROTO_META_BIT(c) (UINT64_C(1) << ((unsigned char)(c) - 'A'))

struct proto_meta {
    uint64_t has;          /* PROTO_META_BIT(flag) for each flag present */
    uint64_t cas;          /* C: compare with the item's CAS */
    uint64_t new_cas;      /* E: the CAS the item gets (0: a fresh one) */
    uint64_t delta;        /* D (ma): 1 unless given */
    uint64_t initial;      /* J (ma): the value an N-created item starts at */
    int32_t ttl;           /* T */
    int32_t vivify_ttl;    /* N */
    int32_t recache_ttl;   /* R */
    uint32_t client_flags; /* F (ms, md x) */
    char mode;             /* M's character; 0 without M */
    uint8_t nflags;
    char order[PROTO_META_FLAGS_MAX]; /* each flag's first byte, in request order */
};

static inline bool proto_meta_has(const struct proto_meta *meta, char flag)
{
    return (meta->has & PROTO_META_BIT(flag)) != 0;
}

struct proto_req {
    enum proto_cmd cmd;
    bool noreply;
    bool close; /* close the connection after replying `error` (if any);
                 * set with quit, and with cmd PROTO_NONE for a line too
                 * long or an HTTP request (memcached closes silently) */

    /* Keyed commands: the key. Retrievals: the first key; the rest follow
     * in keys[0..keys_len) and are walked with proto_next_key(). A gat/gats
     * without keys ("gat 10") is valid with nkeys 0 and key NULL: memcached
     * answers it with a bare "END". */
    const char *key;
    uint32_t nkey;
    const char *keys; /* retrieval: all keys, space separated */
    uint32_t keys_len;
    uint32_t nkeys; /* retrieval: number of keys */

    uint32_t flags;  /* storage: client flags */
    int64_t exptime; /* storage, touch, gat/gats: as the client sent it;
                      * flush_all: the delay (0 = now) */
    uint32_t nbytes; /* storage: value length, without "\r\n" */
    const char *value; /* storage: the value (nbytes bytes) */
    uint64_t cas;      /* cas: the client's unique */
    uint64_t delta;    /* incr/decr */
    uint32_t level;    /* verbosity */
    bool too_large;    /* storage: value exceeds the item size limit; the
                        * command is still reported (a set must unlink the
                        * old item) with `error` set; the block is swallowed */

    /* stats: the argument text after "stats " (may be empty), trimmed */
    const char *args;
    uint32_t nargs; /* length of args in bytes */
    /* shutdown: "graceful" given */
    bool graceful;

    /* slabs reassign: the classes, read as memcached's safe_strtol; false
     * when either is not a number (issue 12) */
    int32_t slab_src, slab_dst;
    bool slab_args_ok;

    /* watch: the PROTO_WATCH_* kinds asked for; issue 12 */
    uint32_t watch_kinds;
    /* The requesting connection's socket, set by io/ after parsing: what
     * `watch` lines name as cfd, also for a key run on another shard. */
    int32_t cfd;

    /* Non-NULL: the reply line, without "\r\n" (e.g. "ERROR",
     * "CLIENT_ERROR bad command line format"). Always a string literal (it
     * is shared with other shards by pointer). */
    const char *error;

    /* Bytes the request carries besides its key and value that must survive
     * forwarding to another shard (e.g. a meta command's opaque token). */
    const char *opaque;
    uint32_t nopaque;

    /* --- binary protocol (proto_bin.h) ----------------------------------
     * Which protocol the request came in, so that its replies are composed
     * in the same one. proto_parse leaves PROTO_FAMILY_TEXT (0). */
    enum proto_family family;
    struct proto_bin_fields bin; /* family BINARY only; plain data */
    /* Meta commands: their flags. A meta request's `noreply` is always
     * false: its q flag (in meta.has) suppresses some replies, never all
     * (errors, EX, NF... still come back), so it is decided when executed.
     * With the b flag, `key` is the decoded key, in the parser's buffer. */
    struct proto_meta meta;

    /*
     * Forwarding contract (io/route.c): a keyed request crosses shards as a
     * byte copy of this struct followed by key, value and opaque; on the
     * owner `key`, `keys` (set to the one key), `value` and `opaque` are
     * re-pointed into the copy and `args` is cleared. Every other field must
     * therefore be plain data or point to a string literal. A field that
     * points into the receive buffer must be one of those four.
     */
};

struct proto_limits {
    size_t item_size_max; /* -I */
    /* Bytes an item of this key and value length needs (store_item_total),
     * to decide "object too large" before the value arrives. */
    size_t (*item_total)(size_t nkey, size_t nbytes);
    /* --strict-keys: refuse keys holding a control byte (< 0x20, DEL) and
     * treat a NUL as a byte of the line. Off (memcached's rules): a key is
     * any run of bytes but ' ', and a NUL ends the command line text. */
    bool strict_keys;
};

struct proto_parser {
    struct proto_limits limits;
    uint64_t swallow; /* data bytes still to discard */
    /* A meta command's base64-decoded key (b flag); valid until the next
     * call, which is long enough: the request is executed or copied into
     * a forwarded record before the next parse. */
    char meta_key[PROTO_KEY_MAX];
};

void proto_parser_init(struct proto_parser *parser, const struct proto_limits *limits);

/*
 * Parses the next request from buf[0..len).
 * Returns the number of bytes it consumed (> 0) and fills *req (cmd may be
 * PROTO_NONE when the bytes were only swallowed), or 0 when buf holds no
 * complete request yet. With 0, *need (if not NULL) is the total number of
 * bytes from buf needed before the next call can make progress, when
 * known (a storage command waiting for its data block), else 0.
 * With a line over PROTO_LINE_MAX and no newline (not a get/gets, or a
 * get/gets over PROTO_GET_LINE_MAX) it returns len with req->close set and
 * cmd PROTO_NONE; an HTTP request line is consumed the same way.
 * Only the connection's thread calls it.
 */
size_t proto_parse(struct proto_parser *parser, const char *buf, size_t len, struct proto_req *req,
                   size_t *need);

/*
 * The start both parsers share (proto_parse, proto_bin_parse): resets *req
 * to "nothing" of `family` and *need to 0, and discards what is left of a
 * swallow (a too-large value) from buf's `len` bytes. Returns the bytes
 * swallowed (0: no swallow in progress).
 */
size_t proto_parse_begin(struct proto_parser *parser, enum proto_family family, size_t len,
                         struct proto_req *req, size_t *need);

/* Walks the keys of a retrieval: start with *pos = 0; returns false after
 * the last key. */
bool proto_next_key(const struct proto_req *req, uint32_t *pos, const char **key, uint32_t *nkey);

/* True for commands that take one key (storage, delete, incr/decr, touch,
 * and the keyed meta commands mg ms md ma me). */
bool proto_is_keyed(enum proto_cmd cmd);
/* True for commands followed by a data block (set add replace append
 * prepend cas, ms): the request carries a value. */
bool proto_is_storage(enum proto_cmd cmd);
/* True for get/gets/gat/gats. */
bool proto_is_retrieval(enum proto_cmd cmd);
/* The command's name as sent ("get", "set", ...). */
const char *proto_cmd_name(enum proto_cmd cmd);
/* flush_all's bad-delay error (memcached's "invalid exptime argument"): its
 * own object, so that exec can answer -F's refusal first, as memcached
 * checks -F before the arguments (issue 15). */
extern const char proto_flush_all_bad_delay[];

#endif
