/*
 * log.h: messages to stderr, filtered by the -v level (which the
 * `verbosity` command changes at run time).
 *
 *   log_error  always      (a failure the operator must see)
 *   log_info   -v          (errors and warnings while serving)
 *   log_debug  -vv         (connections and commands, as memcached's -vv)
 *
 * Lines are written with one write(2) each, so lines of different shards
 * never interleave mid-line.
 */
#ifndef CORECACHE_IO_LOG_H
#define CORECACHE_IO_LOG_H

#include <stdatomic.h>

#include "server.h"

#define LOG_LEVEL_MAX 2

void log_write(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_error(srv, ...) log_write(__VA_ARGS__)
#define log_info(srv, ...)                                                                   \
    do {                                                                                     \
        if (atomic_load_explicit(&(srv)->verbosity, memory_order_relaxed) >= 1)              \
            log_write(__VA_ARGS__);                                                          \
    } while (0)
#define log_debug(srv, ...)                                                                  \
    do {                                                                                     \
        if (atomic_load_explicit(&(srv)->verbosity, memory_order_relaxed) >= 2)              \
            log_write(__VA_ARGS__);                                                          \
    } while (0)

#endif
