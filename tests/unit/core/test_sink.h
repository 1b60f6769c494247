/*
 * test_sink.h: a sink for unit tests that collects output in a list of
 * small blocks, so tests exercise the sink's grow path on every reply, and
 * can refuse memory past a limit to test out-of-memory handling.
 */
#ifndef CORECACHE_TESTS_TEST_SINK_H
#define CORECACHE_TESTS_TEST_SINK_H

#include <stdlib.h>
#include <string.h>

#include "sink.h"

struct test_sink {
    struct sink sink;    /* first member: grow() casts back */
    char *data;          /* everything committed so far, contiguous */
    size_t len;          /* bytes committed before the current block */
    char *block;         /* current block */
    size_t block_size;   /* default block size */
    size_t limit;        /* total bytes allowed; 0 = unlimited */
};

/* Moves the committed part of the current block into data. */
static inline void test_sink_flush(struct test_sink *ts)
{
    if (ts->block == NULL)
        return;
    size_t used = (size_t)(ts->sink.pos - ts->block);
    ts->data = realloc(ts->data, ts->len + used + 1);
    memcpy(ts->data + ts->len, ts->block, used);
    ts->len += used;
    ts->data[ts->len] = '\0';
    free(ts->block);
    ts->block = NULL;
    ts->sink.pos = ts->sink.end = NULL;
}

static inline bool test_sink_grow(struct sink *sink, size_t need)
{
    struct test_sink *ts = (struct test_sink *)sink;
    test_sink_flush(ts);
    if (ts->limit != 0 && ts->len + need > ts->limit)
        return false;
    size_t size = need > ts->block_size ? need : ts->block_size;
    if (ts->limit != 0 && ts->len + size > ts->limit)
        size = ts->limit - ts->len; /* >= need, checked above */
    ts->block = malloc(size);
    ts->sink.pos = ts->block;
    ts->sink.end = ts->block + size;
    return true;
}

static inline void test_sink_init(struct test_sink *ts, size_t block_size)
{
    memset(ts, 0, sizeof(*ts));
    ts->sink.grow = test_sink_grow;
    ts->block_size = block_size;
    ts->data = calloc(1, 1);
}

/* Everything written so far, NUL-terminated; the caller frees it. */
static inline char *test_sink_text(struct test_sink *ts)
{
    test_sink_flush(ts);
    char *copy = malloc(ts->len + 1);
    memcpy(copy, ts->data, ts->len + 1);
    return copy;
}

/* Bytes written so far. */
static inline size_t test_sink_len(struct test_sink *ts)
{
    test_sink_flush(ts);
    return ts->len;
}

/* Forgets everything written so far. */
static inline void test_sink_clear(struct test_sink *ts)
{
    test_sink_flush(ts);
    ts->len = 0;
    ts->data[0] = '\0';
}

static inline void test_sink_fini(struct test_sink *ts)
{
    free(ts->block);
    free(ts->data);
    memset(ts, 0, sizeof(*ts));
}

#endif
