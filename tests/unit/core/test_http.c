/*
 * test_http.c: the metrics endpoint's HTTP request parser and response
 * framing: every status it answers, every request split at every byte
 * boundary, pipelining, keep-alive rules, and the exact bytes of responses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"
#include "test_sink.h"

#define PATH "/metrics"

/* Parses a whole request out of a copy of exactly len bytes (so a read past
 * the end is caught by the sanitizers). */
static size_t parse_n(const char *text, size_t len, struct http_req *req)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    size_t used = http_parse(copy, len, PATH, req);
    if (req->path != NULL) /* point back into text: copy is freed */
        req->path = text + (req->path - copy);
    free(copy);
    return used;
}

static size_t parse(const char *text, struct http_req *req)
{
    return parse_n(text, strlen(text), req);
}

/* Every proper prefix is incomplete; the whole request parses to `status`
 * and takes all of it. */
static void check_split(const char *text, unsigned status)
{
    size_t len = strlen(text);
    struct http_req req;
    for (size_t cut = 0; cut < len; cut++) {
        size_t used = parse_n(text, cut, &req);
        if (used != 0)
            fail_msg("prefix of %zu bytes of %s parsed as %zu bytes", cut, text, used);
    }
    assert_int_equal(parse_n(text, len, &req), len);
    assert_int_equal(req.status, status);
}

static void test_http_get_metrics_ok(void **state)
{
    (void)state;
    struct http_req req;
    const char *text = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9150\r\nUser-Agent: Prometheus/2.42.0\r\n"
                       "Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\nAccept-Encoding: gzip\r\n"
                       "X-Prometheus-Scrape-Timeout-Seconds: 1\r\n\r\n";
    assert_int_equal(parse(text, &req), strlen(text));
    assert_int_equal(req.status, 200);
    assert_int_equal(req.method, HTTP_GET);
    assert_int_equal(req.npath, 8);
    assert_memory_equal(req.path, "/metrics", 8);
    assert_true(req.keep_alive);
}

static void test_http_split_at_every_byte(void **state)
{
    (void)state;
    check_split("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 200);
    check_split("HEAD /metrics?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 200);
    check_split("GET /metrics HTTP/1.0\n\n", 200);
    check_split("\r\nGET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 200);
    check_split("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 404);
    check_split("POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", 400);
    check_split("DELETE /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 405);
    check_split("GET /metrics HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    check_split("GET /metrics HTTP/1.1\r\nHost: a\r\n Folded: x\r\n\r\n", 400);
}

static void test_http_pipelined_requests_parse_one_by_one(void **state)
{
    (void)state;
    const char *one = "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
    const char *two = "HEAD /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    char both[256];
    snprintf(both, sizeof(both), "%s%s", one, two);
    struct http_req req;
    size_t used = parse(both, &req);
    assert_int_equal(used, strlen(one));
    assert_int_equal(req.method, HTTP_GET);
    assert_true(req.keep_alive);
    assert_int_equal(parse(both + used, &req), strlen(two));
    assert_int_equal(req.method, HTTP_HEAD);
    assert_false(req.keep_alive);
}

static void test_http_keep_alive_rules(void **state)
{
    (void)state;
    struct http_req req;
    parse("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", &req);
    assert_true(req.keep_alive);
    parse("GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", &req);
    assert_false(req.keep_alive);
    parse("GET /metrics HTTP/1.0\r\n\r\n", &req);
    assert_int_equal(req.status, 200); /* 1.0 needs no Host */
    assert_false(req.keep_alive);
    parse("GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &req);
    assert_true(req.keep_alive);
    parse("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n", &req);
    assert_false(req.keep_alive); /* errors close */
}

static void test_http_targets(void **state)
{
    (void)state;
    struct http_req req;
    static const struct {
        const char *target;
        unsigned status;
    } cases[] = {
        {"/metrics", 200},
        {"/metrics?name[]=up", 200},
        {"http://127.0.0.1:9150/metrics", 200},
        {"HTTPS://host/metrics?x", 200},
        {"/", 404},
        {"/metrics/", 404},
        {"/metricsx", 404},
        {"/METRICS", 404},
        {"http://host", 404},
        {"metrics", 400},
        {"*", 400},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", cases[i].target);
        assert_int_equal(parse(text, &req), strlen(text));
        if (req.status != cases[i].status)
            fail_msg("GET %s: status %u, want %u", cases[i].target, req.status, cases[i].status);
    }
}

static void test_http_every_error_status(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        unsigned status;
    } cases[] = {
        /* 400: the request line */
        {"GET /metrics\r\nHost: a\r\n\r\n", 400},
        {"GET  /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET /metrics HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
        {"GET /metrics HTTP/11\r\nHost: a\r\n\r\n", 400},
        {"GET /metrics http/1.1\r\nHost: a\r\n\r\n", 400},
        {"G@T /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET /met\x01rics HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET /metrics HTTP/1.1\rHost: a\r\n\r\n", 400},
        {"\x80\x01\x02\x03\r\n\r\n", 400},
        /* 400: fields */
        {"GET /metrics HTTP/1.1\r\n\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost : a\r\n\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        /* 404, 405, 505 */
        {"GET /favicon.ico HTTP/1.1\r\nHost: a\r\n\r\n", 404},
        {"POST /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 405},
        {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 405},
        {"get /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 405},
        {"GET /metrics HTTP/2.0\r\nHost: a\r\n\r\n", 505},
        {"GET /metrics HTTP/0.9\r\n\r\n", 505},
        /* accepted */
        {"GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 000\r\n\r\n", 200},
        {"GET /metrics HTTP/1.1\r\nhOsT:a\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n", 200},
        {"GET /metrics HTTP/1.1\r\nHost: a\r\nX-Utf8: caf\xc3\xa9\r\n\r\n", 200},
        {"GET /metrics HTTP/1.9\r\nHost: a\r\n\r\n", 200},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_req req;
        size_t used = parse(cases[i].text, &req);
        if (used != strlen(cases[i].text) || req.status != cases[i].status)
            fail_msg("case %zu: used %zu of %zu, status %u, want %u", i, used, strlen(cases[i].text),
                     req.status, cases[i].status);
    }
}

static void test_http_head_over_limit_is_431(void **state)
{
    (void)state;
    size_t len = HTTP_HEAD_MAX + 100;
    char *text = malloc(len + 1);
    static const char start[] = "GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: ";
    memcpy(text, start, sizeof(start) - 1);
    memset(text + sizeof(start) - 1, 'x', len - (sizeof(start) - 1));
    text[len] = '\0';
    struct http_req req;
    /* below the limit and unfinished: wait for more */
    assert_int_equal(parse_n(text, HTTP_HEAD_MAX - 1, &req), 0);
    /* at the limit without an end: refuse */
    assert_int_equal(parse_n(text, HTTP_HEAD_MAX, &req), HTTP_HEAD_MAX);
    assert_int_equal(req.status, 431);
    assert_int_equal(parse_n(text, len, &req), len);
    assert_int_equal(req.status, 431);
    /* a head ending past the limit is refused even when it is complete */
    memcpy(text + len - 4, "\r\n\r\n", 4);
    assert_int_equal(parse_n(text, len, &req), len);
    assert_int_equal(req.status, 431);
    /* and one just inside it is served */
    size_t fit = HTTP_HEAD_MAX;
    memcpy(text + fit - 4, "\r\n\r\n", 4);
    assert_int_equal(parse_n(text, fit, &req), fit);
    assert_int_equal(req.status, 200);
    free(text);
}

static void test_http_response_head_exact(void **state)
{
    (void)state;
    struct test_sink ts;
    test_sink_init(&ts, 5);
    assert_true(http_head(&ts.sink, 200, "text/plain; version=0.0.4; charset=utf-8", 1234, true));
    char *text = test_sink_text(&ts);
    assert_string_equal(text, "HTTP/1.1 200 OK\r\n"
                              "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                              "Content-Length: 1234\r\n"
                              "Connection: keep-alive\r\n"
                              "\r\n");
    free(text);
    test_sink_fini(&ts);
}

/* The Authorization field is kept, and basic credentials decode. */
static void test_http_basic_auth(void **state)
{
    (void)state;
    static const char head[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization:  Basic "
                               "cHJvbTpzM2NyZXQ= \r\n\r\n";
    struct http_req req;
    assert_int_equal(http_parse(head, strlen(head), "/metrics", &req), strlen(head));
    assert_int_equal(req.status, 200);
    assert_int_equal(req.nauthorization, strlen("Basic cHJvbTpzM2NyZXQ="));
    char out[64];
    size_t n = http_basic_credentials(req.authorization, req.nauthorization, out);
    assert_int_equal(n, 11);
    assert_memory_equal(out, "prom:s3cret", 11);
    assert_int_equal(http_basic_credentials("basic cHJvbTpzM2NyZXQ=", 22, out), 11);
    assert_int_equal(http_basic_credentials("Bearer abc", 10, out), 0);
    assert_int_equal(http_basic_credentials("Basic ", 6, out), 0);
    static const char none[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(http_parse(none, strlen(none), "/metrics", &req), strlen(none));
    assert_null(req.authorization);
}

static void test_http_error_responses(void **state)
{
    (void)state;
    static const unsigned statuses[] = {400, 401, 404, 405, 431, 500, 505};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        struct test_sink ts;
        test_sink_init(&ts, 16);
        assert_true(http_error(&ts.sink, statuses[i], false));
        char *text = test_sink_text(&ts);
        char want_line[96], want_body[96];
        snprintf(want_line, sizeof(want_line), "HTTP/1.1 %u %s\r\n", statuses[i], http_reason(statuses[i]));
        snprintf(want_body, sizeof(want_body), "%u %s\n", statuses[i], http_reason(statuses[i]));
        assert_true(strncmp(text, want_line, strlen(want_line)) == 0);
        assert_non_null(strstr(text, "\r\nConnection: close\r\n"));
        assert_true(strcmp(http_reason(statuses[i]), "Error") != 0);
        /* Content-Length is the body's length, and the body follows the head */
        const char *body = strstr(text, "\r\n\r\n") + 4;
        assert_string_equal(body, want_body);
        char cl[64];
        snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n", strlen(want_body));
        assert_non_null(strstr(text, cl));
        assert_true((strstr(text, "\r\nAllow: GET, HEAD\r\n") != NULL) == (statuses[i] == 405));
        assert_true((strstr(text, "\r\nWWW-Authenticate: Basic realm=\"corecache\"\r\n") != NULL) ==
                    (statuses[i] == 401));
        free(text);
        /* HEAD: the same head, no body */
        test_sink_clear(&ts);
        assert_true(http_error(&ts.sink, statuses[i], true));
        text = test_sink_text(&ts);
        assert_string_equal(strstr(text, "\r\n\r\n"), "\r\n\r\n");
        free(text);
        test_sink_fini(&ts);
    }
}

static void test_http_response_fails_when_sink_full(void **state)
{
    (void)state;
    struct test_sink ts;
    test_sink_init(&ts, 8);
    ts.limit = 40;
    assert_false(http_error(&ts.sink, 404, false));
    test_sink_fini(&ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_get_metrics_ok),
        cmocka_unit_test(test_http_split_at_every_byte),
        cmocka_unit_test(test_http_pipelined_requests_parse_one_by_one),
        cmocka_unit_test(test_http_keep_alive_rules),
        cmocka_unit_test(test_http_targets),
        cmocka_unit_test(test_http_every_error_status),
        cmocka_unit_test(test_http_head_over_limit_is_431),
        cmocka_unit_test(test_http_response_head_exact),
        cmocka_unit_test(test_http_error_responses),
        cmocka_unit_test(test_http_basic_auth),
        cmocka_unit_test(test_http_response_fails_when_sink_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
