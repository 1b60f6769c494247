/*
 * fuzz_split.h: the driver every fuzz target shares: one input fed whole,
 * and the same input fed in pieces split at random points, as a connection
 * receives it; the two runs must tell the same story.
 *
 * A target supplies a `step`: parse (and, for the whole-path target,
 * execute) one request from the bytes at hand, append what it saw to a
 * trace (a canonical text of the request, or the reply bytes), and return
 * the bytes it consumed, or 0 with *need as the parsers report it. The
 * driver runs it like io/conn.c does:
 *
 *   whole:  step(data[off..size)) until it returns 0
 *   split:  append a piece (1..64 bytes, or a long run, at random from a
 *           seed taken from the input), then step while it makes progress,
 *           but never while fewer than *need bytes are at hand; check that
 *           a step called anyway with fewer makes no progress (conn.c
 *           relies on *need being honest)
 *
 * and the traces must be equal. One difference is legitimate: a text line
 * longer than PROTO_LINE_MAX without its newline yet closes a connection
 * (memcached does the same), so in pieces the input can close early where
 * whole it parses on. A step says so by returning FZ_CLOSED_EARLY in
 * *verdict; the split trace up to that record must then be a prefix of the
 * whole one.
 *
 * Everything is deterministic for an input (the seed is its hash), so
 * libFuzzer's crash files replay exactly.
 */
#ifndef CORECACHE_TESTS_FUZZ_SPLIT_H
#define CORECACHE_TESTS_FUZZ_SPLIT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable byte buffer for traces. */
struct fz_buf {
    char *p;
    size_t len, cap;
};

static inline void fz_put(struct fz_buf *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL)
            abort();
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static inline void fz_printf(struct fz_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static inline void fz_printf(struct fz_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        fz_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Bytes as "len:hex-of-first-64", so traces stay readable and bounded. */
static inline void fz_bytes(struct fz_buf *b, const char *tag, const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;
    fz_printf(b, " %s=%zu:", tag, len);
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the whole, for long ones */
    for (size_t i = 0; i < len; i++) {
        if (i < 64) {
            char c[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
            fz_put(b, c, 2);
        }
        h = (h ^ p[i]) * 1099511628211ull;
    }
    if (len > 64)
        fz_printf(b, "..%016llx", (unsigned long long)h);
}

enum fz_verdict { FZ_GO_ON, FZ_CLOSED, FZ_CLOSED_EARLY };

struct fz_target {
    void *(*create)(void);
    void (*destroy)(void *state);
    /* One request: returns bytes consumed (> 0) or 0 with *need. */
    size_t (*step)(void *state, const char *buf, size_t len, size_t *need, struct fz_buf *trace,
                   enum fz_verdict *verdict);
};

static inline uint64_t fz_seed(const uint8_t *data, size_t size)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ size;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 0x100000001b3ull;
    return h | 1;
}

static inline uint64_t fz_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static inline void fz_run_whole(const struct fz_target *t, const uint8_t *data, size_t size, struct fz_buf *trace)
{
    void *state = t->create();
    size_t off = 0;
    while (off < size) {
        size_t need = 0;
        enum fz_verdict verdict = FZ_GO_ON;
        size_t used = t->step(state, (const char *)data + off, size - off, &need, trace, &verdict);
        if (used == 0)
            break;
        if (used > size - off)
            abort(); /* consumed more than it was given */
        off += used;
        if (verdict != FZ_GO_ON)
            break;
    }
    t->destroy(state);
}

/* Returns true if the split run ended by closing early (a long line). */
static inline bool fz_run_split(const struct fz_target *t, const uint8_t *data, size_t size, struct fz_buf *trace,
                                size_t *early_mark)
{
    void *state = t->create();
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        abort();
    uint64_t rng = fz_seed(data, size);
    size_t have = 0, off = 0, need = 0;
    bool early = false, done = false;
    while (have < size && !done) {
        uint64_t r = fz_next(&rng);
        size_t piece = (r & 7) == 0 ? 1 + (size_t)(r >> 8) % 4096 : 1 + (size_t)(r >> 8) % 64;
        if (piece > size - have)
            piece = size - have;
        memcpy(buf + have, data + have, piece);
        have += piece;
        for (;;) {
            size_t avail = have - off;
            if (avail == 0)
                break;
            if (avail < need) {
                /* the parser said it needs more: asked anyway, it must not
                 * progress (a step appends to the trace only when it does) */
                size_t ignored = 0;
                enum fz_verdict verdict = FZ_GO_ON;
                if (t->step(state, buf + off, avail, &ignored, trace, &verdict) != 0) {
                    fprintf(stderr, "fuzz: *need was %zu, yet %zu bytes made progress\n", need, avail);
                    abort();
                }
                break;
            }
            size_t step_need = 0;
            enum fz_verdict verdict = FZ_GO_ON;
            size_t mark = trace->len;
            size_t used = t->step(state, buf + off, avail, &step_need, trace, &verdict);
            if (used == 0) {
                need = step_need;
                break;
            }
            if (used > avail)
                abort();
            need = 0;
            off += used;
            if (verdict == FZ_CLOSED_EARLY) {
                early = true;
                *early_mark = mark;
            }
            if (verdict != FZ_GO_ON) {
                done = true;
                break;
            }
        }
    }
    free(buf);
    t->destroy(state);
    return early;
}

/* The check each target's LLVMFuzzerTestOneInput makes. */
static inline void fz_check(const struct fz_target *t, const uint8_t *data, size_t size)
{
    struct fz_buf whole = {0}, split = {0};
    size_t early_mark = 0;
    fz_run_whole(t, data, size, &whole);
    bool early = fz_run_split(t, data, size, &split, &early_mark);
    bool same = whole.len == split.len && (whole.len == 0 || memcmp(whole.p, split.p, whole.len) == 0);
    if (!same && early)
        same = early_mark <= whole.len && (early_mark == 0 || memcmp(whole.p, split.p, early_mark) == 0);
    if (!same) {
        size_t i = 0;
        while (i < whole.len && i < split.len && whole.p[i] == split.p[i])
            i++;
        size_t from = i > 200 ? i - 200 : 0;
        fprintf(stderr, "fuzz: whole and split runs disagree at trace byte %zu\n--- whole:\n%.*s\n--- split:\n%.*s\n",
                i, (int)(whole.len - from > 600 ? 600 : whole.len - from), whole.p + from,
                (int)(split.len - from > 600 ? 600 : split.len - from), split.p + from);
        abort();
    }
    free(whole.p);
    free(split.p);
}

#endif
