/*
 * resp.h: an incremental parser for memcached's replies (the contract; see
 * resp.c).
 *
 * The load generator feeds whatever recv() returned, cut at any byte, and
 * gets back one reply element at a time. An element is the smallest unit of
 * a reply: a value (text "VALUE ..." or meta "VA ..." line with its data
 * block, or a binary GET-family success), a status word, an error line. The
 * parser is lexical only: it does not know which request a reply answers.
 * Grouping elements into replies (a text get's VALUEs up to END, a meta or
 * binary multi-get's values up to the no-op) is the caller's job, because
 * only it knows what was sent.
 *
 * Text mode understands the classic replies and the meta ones, since both
 * arrive on the same text connection:
 *
 *   VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n   RESP_VALUE
 *   VA <bytes> <flags>*\r\n<data>\r\n                   RESP_VALUE
 *   END                                                 RESP_END
 *   EN                                                  RESP_MISS
 *   MN                                                  RESP_NOOP
 *   STORED | HD <flags>*                                RESP_STORED | RESP_HD
 *   NOT_STORED | NS, EXISTS | EX, NOT_FOUND | NF        RESP_NOT_STORED, ...
 *   DELETED, TOUCHED, OK, <digits>                      ...
 *   ERROR [msg], CLIENT_ERROR msg, SERVER_ERROR msg     RESP_*ERROR
 *
 * Every line must end in "\r\n" and every data block must be followed by
 * "\r\n"; anything else is a protocol violation, because a load generator
 * that tolerated a sloppy server would hide its bugs.
 *
 * Binary mode reads 24-byte response headers (magic 0x81) and maps opcode
 * and status onto the same kinds: a GET-family success is RESP_VALUE, a
 * GET-family "key not found" RESP_MISS, NOOP RESP_NOOP, a storage success
 * RESP_STORED, status 0x02 RESP_EXISTS and so on.
 *
 * Data blocks and bodies are skipped, never copied, so a value may be any
 * size up to RESP_VALUE_MAX. A parser is per connection and is used by the
 * connection's thread only.
 */
#ifndef CORECACHE_BENCH_RESP_H
#define CORECACHE_BENCH_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* The longest reply line accepted, "\r\n" included. memcached's longest
 * (a VALUE line with a 250-byte key and a cas) is about 300 bytes. */
#define RESP_LINE_MAX 2048
/* The largest data block accepted: memcached's -I limit, 1 GiB. */
#define RESP_VALUE_MAX (1u << 30)

enum resp_mode {
    RESP_MODE_TEXT,   /* classic text and meta replies */
    RESP_MODE_BINARY, /* binary protocol responses */
};

#define RESP_KINDS(ACTION)                                                     \
    ACTION(RESP_VALUE, "value")                                                \
    ACTION(RESP_END, "END")                                                    \
    ACTION(RESP_MISS, "miss")                                                  \
    ACTION(RESP_NOOP, "no-op")                                                 \
    ACTION(RESP_STORED, "STORED")                                              \
    ACTION(RESP_HD, "HD")                                                      \
    ACTION(RESP_NOT_STORED, "NOT_STORED")                                      \
    ACTION(RESP_EXISTS, "EXISTS")                                              \
    ACTION(RESP_NOT_FOUND, "NOT_FOUND")                                        \
    ACTION(RESP_DELETED, "DELETED")                                            \
    ACTION(RESP_TOUCHED, "TOUCHED")                                            \
    ACTION(RESP_OK, "OK")                                                      \
    ACTION(RESP_NUMBER, "number")                                              \
    ACTION(RESP_ERROR, "ERROR")                                                \
    ACTION(RESP_CLIENT_ERROR, "CLIENT_ERROR")                                  \
    ACTION(RESP_SERVER_ERROR, "SERVER_ERROR")

#define RESP_KIND_ENUM(name, text) name,
enum resp_kind { RESP_KINDS(RESP_KIND_ENUM) };
#undef RESP_KIND_ENUM

/* One reply element. */
struct resp {
    enum resp_kind kind;
    uint32_t value_len; /* RESP_VALUE: bytes in the data block / value */
    uint32_t flags;     /* RESP_VALUE from a text VALUE line: client flags */
    uint64_t number;    /* RESP_NUMBER (text only) */
    uint8_t opcode;     /* binary: the response's opcode */
    uint16_t status;    /* binary: the response's status */
    /* Text, every kind but RESP_VALUE: the reply line without "\r\n", for
     * error messages. It points into the caller's buffer or the parser and
     * is valid until the next resp_parse() call. NULL otherwise. */
    const char *line;
    size_t line_len;
};

struct resp_parser; /* opaque */

/* A parser for a new connection in the given mode, or NULL (no memory). */
struct resp_parser *resp_parser_create(enum resp_mode mode);

/* Frees *parser and sets it to NULL; a NULL *parser is ignored. */
void resp_parser_destroy(struct resp_parser **parser);

/*
 * Parses bytes [buf, buf + len) received on the connection, continuing where
 * the previous call stopped.
 *   MC_OK     one element is complete in *out; *used bytes were consumed.
 *             Call again with the rest.
 *   MC_AGAIN  every byte was consumed (*used == len) and no element is
 *             complete yet; partial lines are kept inside the parser, so
 *             the caller may reuse buf.
 *   MC_EINVAL the server broke the protocol: *out->line (when not NULL)
 *             shows the offending line. The parser stays broken and the
 *             connection must be closed, since replies can no longer be
 *             matched to requests.
 */
MC_MUST_CHECK enum mc_status resp_parse(struct resp_parser *parser, const char *buf, size_t len,
                                        size_t *used, struct resp *out);

/* The name of a kind ("STORED", "value", ...). Never NULL. */
const char *resp_kind_str(enum resp_kind kind);

#endif
