/*
 * proto_bin.h: memcached's binary protocol, parsed from and composed into
 * plain bytes (the contract; see proto_bin.c).
 *
 * A binary request is a 24-byte header, then `bodylen` bytes of body:
 * extras (extlen bytes), the key (keylen bytes), the value (the rest).
 * Every number is big-endian; the opaque is echoed back byte for byte:
 *
 *    0      1       2..3     4       5         6..7      8..11    12..15  16..23
 *   | 0x80 |opcode| keylen |extlen|datatype| vbucket  | bodylen | opaque | cas |
 *
 * A response has the same layout with magic 0x81 and `status` in place of
 * the vbucket.
 *
 * The parser fills the same struct proto_req as the text parser, with
 * family PROTO_FAMILY_BINARY, mapping opcodes onto memcached's commands
 * (GET/GETQ/GETK/GETKQ -> PROTO_GET, GAT* -> PROTO_GAT, SET -> PROTO_SET,
 * ...) so that the store and the router are shared, and putting what only
 * the binary protocol has into req->bin (proto.h). The decisions are
 * memcached 1.6.18's (proto_bin.c: try_read_command_binary and
 * dispatch_bin_command), except where proto_bin.c says otherwise.
 *
 * Outcomes of one call, for core/exec.c (io/serve.c parses, exec executes):
 *   - a request to execute (cmd is a command);
 *   - cmd PROTO_ERROR: answer an error packet with req->bin.status and the
 *     message req->error; if req->close, close once it is sent (memcached's
 *     protocol errors: "Invalid arguments", then close);
 *   - cmd PROTO_NONE: swallowed bytes (nothing to do), or, with req->close,
 *     a bad magic byte: no reply, and close once earlier replies are sent.
 *
 * Like the text parser it never writes to the buffer, never reads past
 * buf[0..len), never allocates, and keeps no state but the parser's
 * `swallow` (a too-large value or an unknown command's body being
 * discarded). Only the connection's thread calls it.
 */
#ifndef CORECACHE_CORE_PROTO_BIN_H
#define CORECACHE_CORE_PROTO_BIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "sink.h"
#include "status.h"

#define PROTO_BIN_HEADER_LEN 24
#define PROTO_BIN_REQ_MAGIC 0x80
#define PROTO_BIN_RES_MAGIC 0x81

/* Opcodes (memcached's protocol_binary.h values). */
enum proto_bin_opcode {
    PROTO_BIN_GET = 0x00,
    PROTO_BIN_SET = 0x01,
    PROTO_BIN_ADD = 0x02,
    PROTO_BIN_REPLACE = 0x03,
    PROTO_BIN_DELETE = 0x04,
    PROTO_BIN_INCREMENT = 0x05,
    PROTO_BIN_DECREMENT = 0x06,
    PROTO_BIN_QUIT = 0x07,
    PROTO_BIN_FLUSH = 0x08,
    PROTO_BIN_GETQ = 0x09,
    PROTO_BIN_NOOP = 0x0a,
    PROTO_BIN_VERSION = 0x0b,
    PROTO_BIN_GETK = 0x0c,
    PROTO_BIN_GETKQ = 0x0d,
    PROTO_BIN_APPEND = 0x0e,
    PROTO_BIN_PREPEND = 0x0f,
    PROTO_BIN_STAT = 0x10,
    PROTO_BIN_SETQ = 0x11,
    PROTO_BIN_ADDQ = 0x12,
    PROTO_BIN_REPLACEQ = 0x13,
    PROTO_BIN_DELETEQ = 0x14,
    PROTO_BIN_INCREMENTQ = 0x15,
    PROTO_BIN_DECREMENTQ = 0x16,
    PROTO_BIN_QUITQ = 0x17,
    PROTO_BIN_FLUSHQ = 0x18,
    PROTO_BIN_APPENDQ = 0x19,
    PROTO_BIN_PREPENDQ = 0x1a,
    PROTO_BIN_VERBOSITY = 0x1b, /* not implemented by memcached 1.6: unknown */
    PROTO_BIN_TOUCH = 0x1c,
    PROTO_BIN_GAT = 0x1d,
    PROTO_BIN_GATQ = 0x1e,
    PROTO_BIN_SASL_LIST_MECHS = 0x20,
    PROTO_BIN_SASL_AUTH = 0x21,
    PROTO_BIN_SASL_STEP = 0x22,
    PROTO_BIN_GATK = 0x23,
    PROTO_BIN_GATKQ = 0x24,
};

/* Response statuses. */
enum proto_bin_status {
    PROTO_BIN_SUCCESS = 0x00,
    PROTO_BIN_KEY_ENOENT = 0x01,
    PROTO_BIN_KEY_EEXISTS = 0x02,
    PROTO_BIN_E2BIG = 0x03,
    PROTO_BIN_EINVAL = 0x04,
    PROTO_BIN_NOT_STORED = 0x05,
    PROTO_BIN_DELTA_BADVAL = 0x06,
    PROTO_BIN_AUTH_ERROR = 0x20,
    PROTO_BIN_UNKNOWN_COMMAND = 0x81,
    PROTO_BIN_ENOMEM = 0x82,
};

/*
 * Parses the next binary request from buf[0..len), with proto_parse()'s
 * contract: returns the bytes consumed (> 0) and fills *req, or 0 when buf
 * holds no complete request yet, with *need (if not NULL) the total bytes
 * from buf needed before the next call can make progress. A storage
 * request's value is complete in buf when the request is returned, unless
 * it is too large (req->too_large: value NULL, the parser swallows it).
 * Only the connection's thread calls it.
 */
size_t proto_bin_parse(struct proto_parser *parser, const char *buf, size_t len, struct proto_req *req,
                       size_t *need);

/* memcached's text for a status ("Not found", "Too large.", ...); "" for
 * success and for statuses memcached never sends with a text. Any thread. */
const char *proto_bin_status_text(uint16_t status);

/*
 * Writes a response header for `req` (its opcode and opaque) into p, which
 * must have PROTO_BIN_HEADER_LEN bytes. bodylen counts extras, key and
 * value. Any thread; pure.
 */
void proto_bin_header(char *p, const struct proto_req *req, uint16_t status, uint8_t extlen,
                      uint16_t keylen, uint32_t bodylen, uint64_t cas);

/* Appends a response without extras: header, key, value, in one
 * reservation. False when the sink has no memory. The sink's thread. */
bool proto_bin_reply(const struct proto_req *req, uint16_t status, const void *key, uint16_t keylen,
                     const void *value, uint32_t nvalue, uint64_t cas, struct sink *out) MC_MUST_CHECK;

/* Appends an error response: status and its text (`text`, or
 * proto_bin_status_text(status) when NULL). Errors are never quiet. The
 * sink's thread. */
bool proto_bin_error(const struct proto_req *req, uint16_t status, const char *text,
                     struct sink *out) MC_MUST_CHECK;

/*
 * Transcodes a text stats reply ("STAT <name> <value>\r\n" lines, then
 * "END\r\n") into the binary one: one STAT packet per line, key = name and
 * value = the rest of the line, then the empty packet that ends it (for
 * "END"). Lines that are neither are skipped. False when the sink has no
 * memory.
 */
bool proto_bin_stats_from_text(const struct proto_req *req, const char *text, size_t len,
                               struct sink *out) MC_MUST_CHECK;

#endif
