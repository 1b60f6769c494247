/*
 * sink.h: an append-only byte sink, the one way core/ writes output.
 *
 * core/ composes replies without knowing where the bytes go: into a
 * connection's output chain (io/conn.c), into a cross-shard reply record
 * (io/xshard.c), or into a plain growable buffer (tests). The owner provides
 * the memory; core asks for room, writes, and commits:
 *
 *     char *p = sink_reserve(out, 5);
 *     if (p == NULL) return MC_ENOMEM;
 *     memcpy(p, "END\r\n", 5);
 *     sink_commit(out, 5);
 *
 * The fast path is inline: a pointer compare. `grow` runs only when the
 * current region is too small; it may start a new block, so two separate
 * reservations need not be contiguous in memory, but one reservation always
 * is. Every sink function may be called from the thread that owns the sink
 * only.
 */
#ifndef CORECACHE_CORE_SINK_H
#define CORECACHE_CORE_SINK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct sink {
    char *pos; /* next byte to write */
    char *end; /* end of the writable region starting at pos */
    /* Make [pos, pos + need) writable, moving pos/end to a new region if
     * needed. Returns false when no memory can be had. */
    bool (*grow)(struct sink *sink, size_t need);
    /* Optional (NULL: the sink can only copy): appends `len` bytes at
     * `data` without copying them, calling release(owner, data, len) once
     * they are no longer needed; false (release not called) when no memory
     * can be had. io/outq.c sets it; a sink not zero-initialized must set
     * it to NULL if it may receive item values. */
    bool (*ref)(struct sink *sink, const void *data, size_t len,
                void (*release)(void *owner, const void *data, size_t len), void *owner);
};

/* Returns a pointer to `need` contiguous writable bytes, or NULL. */
static inline char *sink_reserve(struct sink *sink, size_t need)
{
    if ((size_t)(sink->end - sink->pos) < need && !sink->grow(sink, need))
        return NULL;
    return sink->pos;
}

/* Marks `used` bytes of the last reservation as written (used <= need). */
static inline void sink_commit(struct sink *sink, size_t used)
{
    sink->pos += used;
}

/* Appends bytes; false when no memory can be had. */
static inline bool sink_put(struct sink *sink, const void *data, size_t len)
{
    char *p = sink_reserve(sink, len);
    if (p == NULL)
        return false;
    memcpy(p, data, len);
    sink_commit(sink, len);
    return true;
}

/* Appends a string literal (its length is taken at compile time). */
#define sink_puts(sink, literal) sink_put((sink), (literal), sizeof(literal) - 1)

/* Appends printf-formatted text; false when no memory can be had or the
 * format fails. Not for the request path: text longer than the first
 * reservation is formatted twice. */
__attribute__((format(printf, 2, 3))) static inline bool sink_printf(struct sink *sink, const char *fmt, ...)
{
    size_t room = 256;
    for (int pass = 0; pass < 2; pass++) {
        char *p = sink_reserve(sink, room);
        if (p == NULL)
            return false;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(p, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return false;
        if ((size_t)n < room) {
            sink_commit(sink, (size_t)n);
            return true;
        }
        room = (size_t)n + 1;
    }
    return false;
}

#endif
