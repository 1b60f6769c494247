/*
 * proc.c: process-level options with memcached's meanings (issue 12).
 *
 * memcached's -d forks once and calls setsid (its daemon.c); so does this.
 * The fork must come before any shard thread exists, so app.c calls
 * proc_daemonize right after the options are checked and before the
 * listeners open: an error binding the port is then only in the log, as
 * with memcached -d. The pid file is written by the process that stays, so
 * it names the PID `stats` reports.
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

int proc_daemonize(char *err, size_t errlen)
{
    pid_t pid = fork();
    if (pid < 0) {
        int ret = -errno;
        snprintf(err, errlen, "corecache: -d: cannot fork: %s", strerror(errno));
        return ret;
    }
    if (pid > 0)
        _exit(0);
    if (setsid() < 0) {
        int ret = -errno;
        snprintf(err, errlen, "corecache: -d: setsid: %s", strerror(errno));
        return ret;
    }
    if (chdir("/") != 0) {
        int ret = -errno;
        snprintf(err, errlen, "corecache: -d: chdir /: %s", strerror(errno));
        return ret;
    }
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0) {
        int ret = -errno;
        snprintf(err, errlen, "corecache: -d: /dev/null: %s", strerror(errno));
        return ret;
    }
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    if (fd > STDERR_FILENO)
        close(fd);
    return 0;
}

int proc_write_pidfile(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        int ret = -errno;
        snprintf(err, errlen, "corecache: -P %s: cannot write the pid file: %s", path, strerror(errno));
        return ret;
    }
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0) {
        int ret = -errno;
        snprintf(err, errlen, "corecache: -P %s: cannot write the pid file: %s", path, strerror(errno));
        return ret;
    }
    return 0;
}

void proc_remove_pidfile(const char *path)
{
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f == NULL)
        return;
    bool ours = fscanf(f, "%ld", &pid) == 1 && pid == (long)getpid();
    fclose(f);
    if (ours)
        unlink(path);
}

int proc_enable_coredumps(char *err, size_t errlen)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_CORE, &lim) != 0 || (lim.rlim_cur = lim.rlim_max, setrlimit(RLIMIT_CORE, &lim)) != 0) {
        int ret = -errno;
        snprintf(err, errlen, "corecache: -r: cannot raise the core file limit: %s", strerror(errno));
        return ret;
    }
    return 0;
}

int proc_lock_memory(char *err, size_t errlen)
{
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        int ret = -errno;
        snprintf(err, errlen,
                 "corecache: -k: mlockall: %s (raise `ulimit -l` or run with CAP_IPC_LOCK); "
                 "continuing without locked memory", strerror(errno));
        return ret;
    }
    return 0;
}
