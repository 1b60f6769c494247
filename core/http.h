/*
 * http.h: the little HTTP/1.1 a metrics endpoint needs (the contract; see
 * http.c): parsing a request head, and composing responses.
 *
 * The parser is a pure function of the bytes received so far: it finds a
 * complete head (request line, header fields, empty line) at the start of
 * buf and says what it asks for, or that more bytes are needed. It never
 * reads past the head, so pipelined requests are parsed one after another.
 * A request that is malformed, too large, or asks for what the endpoint
 * does not serve gets an error status, to be answered and followed by
 * closing the connection.
 */
#ifndef CORECACHE_CORE_HTTP_H
#define CORECACHE_CORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sink.h"

/* Largest request head accepted (request line and header fields); beyond
 * it, 431 Request Header Fields Too Large. */
#define HTTP_HEAD_MAX (8 * 1024)

enum http_method { HTTP_GET, HTTP_HEAD, HTTP_OTHER };

struct http_req {
    /* 200 when the request is one to serve; else the status to answer:
     * 400 malformed, 404 unknown path, 405 method other than GET/HEAD,
     * 431 head over HTTP_HEAD_MAX, 505 HTTP major version other than 1. */
    unsigned status;
    enum http_method method;
    const char *path; /* in buf, without the query; valid while buf is */
    size_t npath;
    bool keep_alive;  /* HTTP/1.1 unless "Connection: close"; 1.0 only with keep-alive */
    const char *authorization; /* the Authorization field's value, in buf; NULL without */
    size_t nauthorization;
};

/*
 * The "user:password" of an Authorization field `Basic <base64>`, decoded
 * into out (at least BASE64_DECODED_MAX(n) bytes); its length, or 0 when
 * the field is not basic credentials.
 */
size_t http_basic_credentials(const char *value, size_t n, char *out);

/*
 * Parses the request head at the start of buf. Returns 0 when buf holds no
 * complete head yet (and fewer than HTTP_HEAD_MAX bytes), else the bytes
 * the request took (its head; requests with a body are refused, so there
 * is none to skip) with *req filled. `path` is the only resource served:
 * other paths get 404 (a query string is ignored). Any thread, no state.
 */
size_t http_parse(const char *buf, size_t len, const char *path, struct http_req *req);

/* The reason phrase of a status this module produces ("Not Found"). */
const char *http_reason(unsigned status);

/*
 * Appends a response head: status line (always HTTP/1.1), Content-Type,
 * Content-Length, "Connection: keep-alive" or "Connection: close", Allow
 * on 405, and the empty line. Returns false if the sink is full.
 */
bool http_head(struct sink *out, unsigned status, const char *content_type, size_t content_length,
               bool keep_alive);

/* Appends a complete error response for `status` (a short text body,
 * Connection: close); with `head_only`, without the body. A 401 carries
 * `WWW-Authenticate: Basic realm="corecache"`. */
bool http_error(struct sink *out, unsigned status, bool head_only);

#endif
