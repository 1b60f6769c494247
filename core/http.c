/*
 * http.c: parsing an HTTP/1.1 request head and composing responses, for
 * the metrics endpoint (the contract is http.h).
 *
 * Design. The endpoint serves one resource to GET and HEAD, so the parser
 * is small and strict rather than general: it recognizes RFC 9112's
 * request line and field syntax, reads the four fields that change what
 * it answers (Host, Connection, Content-Length, Transfer-Encoding), and
 * refuses the rest of HTTP's surface with a status instead of guessing:
 *
 *   431  the head does not end within HTTP_HEAD_MAX bytes
 *   400  a malformed request line or field, a field folded onto the next
 *        line (obs-fold), a control byte, HTTP/1.1 without exactly one
 *        Host, or a request body (Content-Length other than 0, or any
 *        Transfer-Encoding: a scrape has none, and a body we do not read
 *        would be parsed as the next request)
 *   505  an HTTP major version other than 1
 *   405  a method other than GET and HEAD
 *   404  a path other than the one served
 *
 * It is stateless: each call parses from the start of the buffer, so the
 * caller keeps the bytes of an unfinished head (at most HTTP_HEAD_MAX) and
 * calls again when more arrive. Lines end in CRLF; a bare LF is accepted
 * too (RFC 9112 section 2.2 allows it), a bare CR is not.
 *
 * Invariant: http_parse never reads buf beyond len and never returns more
 * than len.
 */
#include "http.h"

#include "base64.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "metrics.h"

/* RFC 9110 tchar: the characters of a token (method, field name). */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field value bytes: visible ASCII, obs-text, space and tab. */
static bool is_field_byte(unsigned char c)
{
    return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool name_is(const char *name, size_t len, const char *want)
{
    if (strlen(want) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (lower(name[i]) != want[i])
            return false;
    }
    return true;
}

/* Does the comma-separated token list contain `want` (case-insensitive)? */
static bool list_has(const char *v, size_t len, const char *want)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i > start && name_is(v + start, i - start, want))
            return true;
        while (i < len && v[i] != ',')
            i++;
    }
    return false;
}

/* One line of the head: [start, end) without its CRLF or LF. */
struct line {
    const char *start;
    size_t len;
};

/* Finds the line at off; returns the offset after its LF, or 0 if no LF
 * within len. A CR anywhere but before the LF makes *bad true. */
static size_t next_line(const char *buf, size_t len, size_t off, struct line *line, bool *bad)
{
    const char *nl = memchr(buf + off, '\n', len - off);
    if (nl == NULL)
        return 0;
    size_t end = (size_t)(nl - buf);
    size_t stop = end > off && buf[end - 1] == '\r' ? end - 1 : end;
    line->start = buf + off;
    line->len = stop - off;
    if (memchr(line->start, '\r', line->len) != NULL)
        *bad = true;
    return end + 1;
}

/* method SP request-target SP HTTP-version; false if malformed. */
static bool parse_request_line(const struct line *l, struct http_req *req, const char **target,
                               size_t *ntarget, unsigned *major, unsigned *minor)
{
    const char *p = l->start, *end = l->start + l->len;
    const char *m = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    if (p == m || p == end || *p != ' ')
        return false;
    size_t nmethod = (size_t)(p - m);
    if (nmethod == 3 && memcmp(m, "GET", 3) == 0)
        req->method = HTTP_GET;
    else if (nmethod == 4 && memcmp(m, "HEAD", 4) == 0)
        req->method = HTTP_HEAD;
    else
        req->method = HTTP_OTHER;
    p++;
    const char *t = p;
    while (p < end && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
        p++;
    if (p == t || p == end || *p != ' ')
        return false;
    *target = t;
    *ntarget = (size_t)(p - t);
    p++;
    /* "HTTP/" DIGIT "." DIGIT, and nothing after */
    if (end - p != 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
        p[7] < '0' || p[7] > '9')
        return false;
    *major = (unsigned)(p[5] - '0');
    *minor = (unsigned)(p[7] - '0');
    return true;
}

/* The path of an origin-form ("/metrics?x") or absolute-form
 * ("http://host:9150/metrics") target, without its query; false if the
 * target is neither. */
static bool target_path(const char *t, size_t n, const char **path, size_t *npath)
{
    if (n >= 7 && (name_is(t, 7, "http://") || (n >= 8 && name_is(t, 8, "https://")))) {
        const char *after = (const char *)memchr(t, ':', n) + 3; /* past "://" */
        const char *slash = memchr(after, '/', n - (size_t)(after - t));
        if (slash == NULL) {
            *path = "/";
            *npath = 1;
            return true;
        }
        n -= (size_t)(slash - t);
        t = slash;
    }
    if (n == 0 || t[0] != '/')
        return false;
    const char *q = memchr(t, '?', n);
    *path = t;
    *npath = q != NULL ? (size_t)(q - t) : n;
    return true;
}

size_t http_parse(const char *buf, size_t len, const char *path, struct http_req *req)
{
    memset(req, 0, sizeof(*req));
    size_t scan = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
    size_t off = 0;
    bool bad = false;
    struct line l;

    /* Empty lines before the request line are ignored (RFC 9112 2.2). */
    size_t next;
    for (;;) {
        next = next_line(buf, scan, off, &l, &bad);
        if (next == 0)
            goto incomplete;
        if (l.len > 0 || bad)
            break;
        off = next;
    }
    const char *target = NULL;
    size_t ntarget = 0;
    unsigned major = 0, minor = 0;
    if (bad || !parse_request_line(&l, req, &target, &ntarget, &major, &minor))
        bad = true;
    off = next;

    unsigned hosts = 0;
    bool conn_close = false, conn_keep_alive = false, body = false;
    for (;;) {
        next = next_line(buf, scan, off, &l, &bad);
        if (next == 0)
            goto incomplete;
        off = next;
        if (l.len == 0)
            break;
        if (bad)
            continue; /* find the end of the head, then answer 400 */
        const char *p = l.start, *end = l.start + l.len;
        while (p < end && is_tchar((unsigned char)*p))
            p++;
        /* no name (this covers obs-fold: a line starting with SP or HTAB),
         * or space before the colon */
        if (p == l.start || p == end || *p != ':') {
            bad = true;
            continue;
        }
        const char *name = l.start;
        size_t nname = (size_t)(p - name);
        p++;
        for (const char *c = p; c < end; c++) {
            if (!is_field_byte((unsigned char)*c))
                bad = true;
        }
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        size_t nvalue = (size_t)(end - p);
        if (name_is(name, nname, "host")) {
            hosts++;
        } else if (name_is(name, nname, "connection")) {
            conn_close |= list_has(p, nvalue, "close");
            conn_keep_alive |= list_has(p, nvalue, "keep-alive");
        } else if (name_is(name, nname, "content-length")) {
            bool digits = nvalue > 0, zero = true;
            for (size_t i = 0; i < nvalue; i++) {
                digits &= p[i] >= '0' && p[i] <= '9';
                zero &= p[i] == '0';
            }
            if (!digits)
                bad = true;
            else if (!zero)
                body = true;
        } else if (name_is(name, nname, "transfer-encoding")) {
            body = true;
        } else if (name_is(name, nname, "authorization")) {
            req->authorization = p;
            req->nauthorization = nvalue;
        }
    }

    if (bad || body || (major == 1 && minor >= 1 && hosts != 1) || hosts > 1)
        req->status = 400;
    else if (major != 1)
        req->status = 505;
    else if (req->method == HTTP_OTHER)
        req->status = 405;
    else if (!target_path(target, ntarget, &req->path, &req->npath))
        req->status = 400;
    else if (req->npath != strlen(path) || memcmp(req->path, path, req->npath) != 0)
        req->status = 404;
    else
        req->status = 200;
    req->keep_alive = req->status == 200 && !conn_close && (minor >= 1 || conn_keep_alive);
    return off;

incomplete:
    if (len < HTTP_HEAD_MAX)
        return 0;
    memset(req, 0, sizeof(*req));
    req->status = 431;
    return len;
}

const char *http_reason(unsigned status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 401:
        return "Unauthorized";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

bool http_head(struct sink *out, unsigned status, const char *content_type, size_t content_length,
               bool keep_alive)
{
    char line[160];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %u %s\r\n", status, http_reason(status));
    if (n < 0 || (size_t)n >= sizeof(line) || !sink_put(out, line, (size_t)n))
        return false;
    char num[20];
    size_t nnum = metrics_u64toa(content_length, num);
    return sink_puts(out, "Content-Type: ") && sink_put(out, content_type, strlen(content_type)) &&
           sink_puts(out, "\r\nContent-Length: ") && sink_put(out, num, nnum) &&
           (keep_alive ? sink_puts(out, "\r\nConnection: keep-alive\r\n")
                       : sink_puts(out, "\r\nConnection: close\r\n")) &&
           (status != 405 || sink_puts(out, "Allow: GET, HEAD\r\n")) &&
           (status != 401 || sink_puts(out, "WWW-Authenticate: Basic realm=\"corecache\"\r\n")) &&
           sink_puts(out, "\r\n");
}

size_t http_basic_credentials(const char *value, size_t n, char *out)
{
    /* the scheme is case-insensitive (RFC 7617) */
    if (n < 6 || strncasecmp(value, "basic ", 6) != 0)
        return 0;
    value += 6;
    n -= 6;
    while (n > 0 && *value == ' ') {
        value++;
        n--;
    }
    return n == 0 ? 0 : base64_decode(value, n, (unsigned char *)out);
}

bool http_error(struct sink *out, unsigned status, bool head_only)
{
    char body[80];
    int n = snprintf(body, sizeof(body), "%u %s\n", status, http_reason(status));
    if (n < 0 || (size_t)n >= sizeof(body))
        return false;
    return http_head(out, status, "text/plain; charset=utf-8", (size_t)n, false) &&
           (head_only || sink_put(out, body, (size_t)n));
}
