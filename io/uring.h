/*
 * uring.h: the encoding of io_uring user_data, in one place.
 *
 * Every SQE a shard submits carries a 64-bit tag that says what completed:
 *
 *   63      56 55            32 31                  0
 *   +--------+----------------+---------------------+
 *   |  type  |  generation    |  connection index   |
 *   +--------+----------------+---------------------+
 *
 * The index names a slot in the shard's connection table; the generation
 * (24 bits) changes each time the slot is reused, so a completion that
 * arrives for a connection that has since been closed is recognized and
 * ignored instead of being applied to its successor.
 */
#ifndef CORECACHE_IO_URING_H
#define CORECACHE_IO_URING_H

#include <stdint.h>

enum ud_type {
    UD_NONE = 0,
    UD_ACCEPT,  /* multishot accept on the shard's listener */
    UD_RECV,    /* multishot recv of a connection */
    UD_SEND,    /* send/sendmsg of a connection's output */
    UD_CANCEL,  /* cancellation of a connection's recv */
    UD_TIMER,   /* the shard's periodic tick */
    UD_WAKE,    /* MSG_RING from another shard: records are waiting */
    UD_IGNORE,  /* completions nobody waits for */
    UD_ACCEPT_RETRY, /* the backoff after EMFILE/ENFILE on a listener (index) */
};

#define UD_GEN_MASK 0xffffffu

static inline uint64_t ud_make(enum ud_type type, uint32_t index, uint32_t gen)
{
    return ((uint64_t)type << 56) | ((uint64_t)(gen & UD_GEN_MASK) << 32) | index;
}

static inline enum ud_type ud_type(uint64_t ud)
{
    return (enum ud_type)(ud >> 56);
}

static inline uint32_t ud_index(uint64_t ud)
{
    return (uint32_t)ud;
}

static inline uint32_t ud_gen(uint64_t ud)
{
    return (uint32_t)(ud >> 32) & UD_GEN_MASK;
}

#endif
