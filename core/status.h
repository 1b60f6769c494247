/*
 * status.h: the one status enum of the project.
 *
 * Engine and protocol functions return these; code that talks to the kernel
 * (io/) passes -errno through unchanged instead. The storage outcomes map
 * one-to-one onto memcached's reply words (STORED, EXISTS, NOT_FOUND,
 * NOT_STORED) so that protocol front ends (text, meta, binary) translate
 * them without a second table.
 */
#ifndef CORECACHE_CORE_STATUS_H
#define CORECACHE_CORE_STATUS_H

#define MC_MUST_CHECK __attribute__((warn_unused_result))

#define MC_STATUS(ACTION)                                                      \
    ACTION(MC_OK, "ok")                                                        \
    ACTION(MC_AGAIN, "more input needed")                                      \
    ACTION(MC_ENOMEM, "out of memory")                                         \
    ACTION(MC_E2BIG, "object too large")                                       \
    ACTION(MC_EINVAL, "invalid argument")                                      \
    ACTION(MC_NOT_FOUND, "not found")                                          \
    ACTION(MC_EXISTS, "exists (cas mismatch)")                                 \
    ACTION(MC_NOT_STORED, "not stored")                                        \
    ACTION(MC_NON_NUMERIC, "value is not a number")

#define MC_STATUS_ENUM(name, text) name,
enum mc_status { MC_STATUS(MC_STATUS_ENUM) };
#undef MC_STATUS_ENUM

/* A short lower-case description, for logs and tests. Never NULL. */
const char *mc_status_str(enum mc_status status);

#endif
