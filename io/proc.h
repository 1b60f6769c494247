/*
 * proc.h: the process-level options memcached operators use (the contract;
 * see proc.c): -d (daemon), -P (pid file), -r (core dumps), -k (lock memory).
 */
#ifndef CORECACHE_IO_PROC_H
#define CORECACHE_IO_PROC_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Detaches from the terminal as memcached's -d does: fork (the parent
 * exits 0), setsid, chdir("/"), stdin/stdout/stderr onto /dev/null. Must run
 * before any thread is started: only the calling thread survives a fork.
 * Returns 0 in the child, -errno (err filled) if it could not detach.
 */
int proc_daemonize(char *err, size_t errlen);

/* Writes the PID and a newline to path (memcached's -P). 0 or -errno. */
int proc_write_pidfile(const char *path, char *err, size_t errlen);

/* Removes the pid file at exit, if it still holds this process's PID. */
void proc_remove_pidfile(const char *path);

/* -r: raises the core file size limit to its hard maximum. 0 or -errno. */
int proc_enable_coredumps(char *err, size_t errlen);

/* -k: locks all current and future pages in memory (mlockall). 0 or -errno. */
int proc_lock_memory(char *err, size_t errlen);

#endif
