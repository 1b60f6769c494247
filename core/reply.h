/*
 * reply.h: what a command came to, whatever the protocol (the contract; see
 * reply.c).
 *
 * The engine answers with an mc_status; a client hears "STORED", "HD" or a
 * binary status 0x0000, depending on how it asked. The mapping from engine
 * outcome to reply is written once, here, as a protocol-neutral reply code,
 * and each protocol composes a code its own way from one table:
 *
 *   store_set() -> MC_EXISTS -> reply_of_store() -> REPLY_EXISTS
 *                                         text: "EXISTS"   meta: "EX"
 *                                         binary: KEY_EEXISTS
 *
 * Error codes (REPLY_TOO_LARGE, ...) are the same line in text and meta;
 * the binary protocol answers its status and memcached's text for it.
 * Pure; any thread.
 */
#ifndef CORECACHE_CORE_REPLY_H
#define CORECACHE_CORE_REPLY_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"
#include "proto_bin.h"
#include "sink.h"
#include "status.h"

/*
 * ACTION(code, text line, meta word (NULL: an error, the text line is
 * sent), binary status, binary text (NULL: the status's own)).
 */
#define REPLY_CODES(ACTION)                                                                        \
    ACTION(STORED, "STORED", "HD", PROTO_BIN_SUCCESS, NULL)                                                     \
    ACTION(DELETED, "DELETED", "HD", PROTO_BIN_SUCCESS, NULL)                                                   \
    ACTION(TOUCHED, "TOUCHED", "HD", PROTO_BIN_SUCCESS, NULL)                                                   \
    ACTION(EXISTS, "EXISTS", "EX", PROTO_BIN_KEY_EEXISTS, NULL)                                                     \
    ACTION(NOT_FOUND, "NOT_FOUND", "NF", PROTO_BIN_KEY_ENOENT, NULL)                                               \
    ACTION(NOT_STORED, "NOT_STORED", "NS", PROTO_BIN_NOT_STORED, NULL)                                             \
    ACTION(TOO_LARGE, "SERVER_ERROR object too large for cache", NULL, PROTO_BIN_E2BIG, NULL)                 \
    ACTION(NOMEM_STORE, "SERVER_ERROR out of memory storing object", NULL, PROTO_BIN_ENOMEM,                   \
           "Out of memory allocating item")                                                        \
    ACTION(NON_NUMERIC, "CLIENT_ERROR cannot increment or decrement non-numeric value", NULL, PROTO_BIN_DELTA_BADVAL, \
           NULL)                                                                                   \
    ACTION(NOMEM, "SERVER_ERROR out of memory", NULL, PROTO_BIN_ENOMEM, "Out of memory incrementing value")    \
    ACTION(UNHANDLED, "SERVER_ERROR Unhandled storage type.", NULL, PROTO_BIN_NOT_STORED, NULL)

#define REPLY_ENUM(code, text, meta, bin, bin_text) REPLY_##code,
enum reply_code { REPLY_CODES(REPLY_ENUM) REPLY_CODE_COUNT };
#undef REPLY_ENUM

/* A storage command's outcome (set add replace append prepend cas, ms). */
enum reply_code reply_of_store(enum mc_status st);
/* delete, md: MC_OK is DELETED; a failure other than NOT_FOUND/EXISTS is NOMEM. */
enum reply_code reply_of_delete(enum mc_status st);
/* incr/decr, ma, when not MC_OK: NOT_FOUND, EXISTS, NON_NUMERIC or NOMEM. */
enum reply_code reply_of_arith(enum mc_status st);

/* True for codes that are errors (sent as the text line by text and meta). */
bool reply_is_error(enum reply_code code);
/* The text protocol's line, without "\r\n". */
const char *reply_text(enum reply_code code);
/* The meta protocol's word ("HD", "EX", ...); the text line for errors. */
const char *reply_meta(enum reply_code code);
/* The binary protocol's status. */
uint16_t reply_bin_status(enum reply_code code);

/* Text: appends "<line>\r\n" unless req->noreply (memcached's out_string
 * suppresses every reply under noreply, errors too). False: no memory. */
bool reply_line(const struct proto_req *req, enum reply_code code, struct sink *out) MC_MUST_CHECK;
/* Binary: a success answers an empty packet carrying `cas` (nothing when
 * the request is quiet); an error answers its status and text. */
bool reply_bin(const struct proto_req *req, enum reply_code code, uint64_t cas, struct sink *out) MC_MUST_CHECK;
/* Appends "<text>\r\n" (whatever noreply says). */
bool reply_put_line(struct sink *out, const char *text, size_t len) MC_MUST_CHECK;

#endif
