/*
 * topo.c: CPU and NUMA node discovery from sysfs (topo.h).
 *
 * Two kinds of file are read, both in the kernel's cpulist format
 * ("0-3,8-9\n"; an empty line for an empty set):
 *
 *   <root>/devices/system/cpu/online              the online CPUs
 *   <root>/devices/system/node/node<N>/cpulist    the CPUs of node N
 *
 * The root is handed in ("/sys", or a fake tree in tests), so the whole of
 * this file is testable without a NUMA machine.
 *
 * Rules, and why:
 * - No node directory at all (a kernel without CONFIG_NUMA) reads as one
 *   node 0 holding every online CPU: callers never special-case non-NUMA.
 * - A node directory without a readable, well-formed cpulist, a CPU claimed
 *   by two nodes, or an unreadable cpu/online is MC_EINVAL: the tree is not
 *   what we understand, and guessing would misplace memory silently.
 * - CPUs a node lists but that are offline are ignored (x86 keeps offline
 *   CPUs in the node masks). An online CPU no node claims (seen only in
 *   broken trees) is put on node 0, which is also topo_node_of()'s answer
 *   for anything unknown, so every online CPU has a node >= 0.
 * - Entries of the node directory that are not "node<digits>" (online,
 *   possible, has_cpu, power, uevent, ...) are skipped.
 *
 * Invariant after MC_OK: node_of_cpu[c] >= 0 exactly for the online CPUs,
 * ncpus_online >= 1 counts them, nnodes >= 1 counts distinct nodes among
 * them. Only the thread that owns `topo` may call topo_read() on it.
 */
#include "topo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A cpulist of TOPO_CPUS_MAX CPUs, worst case "0,2,4,...", fits easily. */
#define TOPO_FILE_MAX 16384
/* Node ids above this are not a kernel's (MAX_NUMNODES is at most 1024). */
#define TOPO_NODE_ID_MAX 65535

/* Parses one decimal CPU id at *p, advancing *p. */
static bool parse_cpu_id(const char **p, unsigned *out)
{
    const char *s = *p;
    unsigned value = 0;
    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9') {
        value = value * 10 + (unsigned)(*s - '0');
        if (value >= TOPO_CPUS_MAX)
            return false;
        s++;
    }
    *p = s;
    *out = value;
    return true;
}

bool topo_parse_cpulist(const char *text, bool cpus[TOPO_CPUS_MAX])
{
    memset(cpus, 0, TOPO_CPUS_MAX * sizeof(cpus[0]));
    const char *p = text;
    /* the kernel writes an empty set as a bare newline */
    if (*p == '\n' && p[1] == '\0')
        return true;
    if (*p == '\0')
        return true;
    for (;;) {
        unsigned first, last;
        if (!parse_cpu_id(&p, &first))
            return false;
        last = first;
        if (*p == '-') {
            p++;
            if (!parse_cpu_id(&p, &last) || last < first)
                return false;
        }
        for (unsigned cpu = first; cpu <= last; cpu++)
            cpus[cpu] = true;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\n')
            p++;
        return *p == '\0';
    }
}

/* Reads a small text file into buf (NUL-terminated). False if it cannot be
 * read or does not fit. */
static bool read_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t len = 0;
    bool ok = true;
    for (;;) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ok = false;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == size - 1) { /* full: only fine if the file ends here */
            char extra;
            ssize_t more = read(fd, &extra, 1);
            ok = more == 0;
            break;
        }
    }
    close(fd);
    buf[len] = '\0';
    return ok;
}

static bool read_cpulist(const char *path, bool cpus[TOPO_CPUS_MAX])
{
    char text[TOPO_FILE_MAX];
    return read_file(path, text, sizeof(text)) && topo_parse_cpulist(text, cpus);
}

/* "node<digits>" -> the id; false for any other name. */
static bool parse_node_name(const char *name, int *node)
{
    if (strncmp(name, "node", 4) != 0 || name[4] == '\0')
        return false;
    long value = 0;
    for (const char *p = name + 4; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return false;
        value = value * 10 + (*p - '0');
        if (value > TOPO_NODE_ID_MAX)
            return false;
    }
    *node = (int)value;
    return true;
}

enum mc_status topo_read(struct topo *topo, const char *sysfs_root)
{
    char path[PATH_MAX];
    bool online[TOPO_CPUS_MAX];
    bool in_node[TOPO_CPUS_MAX];
    DIR *dir = NULL;

    for (unsigned c = 0; c < TOPO_CPUS_MAX; c++)
        topo->node_of_cpu[c] = -1;
    topo->ncpus_online = 0;
    topo->nnodes = 0;

    int n = snprintf(path, sizeof(path), "%s/devices/system/cpu/online", sysfs_root);
    if (n < 0 || (size_t)n >= sizeof(path) || !read_cpulist(path, online))
        goto fail;

    n = snprintf(path, sizeof(path), "%s/devices/system/node", sysfs_root);
    if (n < 0 || (size_t)n >= sizeof(path))
        goto fail;
    dir = opendir(path);
    if (dir != NULL) {
        for (struct dirent *entry; (entry = readdir(dir)) != NULL;) {
            int node;
            if (!parse_node_name(entry->d_name, &node))
                continue;
            n = snprintf(path, sizeof(path), "%s/devices/system/node/%s/cpulist", sysfs_root,
                         entry->d_name);
            if (n < 0 || (size_t)n >= sizeof(path) || !read_cpulist(path, in_node))
                goto fail;
            for (unsigned c = 0; c < TOPO_CPUS_MAX; c++) {
                if (!in_node[c] || !online[c])
                    continue;
                if (topo->node_of_cpu[c] >= 0)
                    goto fail; /* claimed by two nodes */
                topo->node_of_cpu[c] = node;
            }
        }
        closedir(dir);
        dir = NULL;
    }

    /* Online CPUs no node claimed (no node directories at all, or a broken
     * tree) go to node 0; then count CPUs and distinct nodes. */
    for (unsigned c = 0; c < TOPO_CPUS_MAX; c++) {
        if (!online[c])
            continue;
        if (topo->node_of_cpu[c] < 0)
            topo->node_of_cpu[c] = 0;
        topo->ncpus_online++;
        bool seen = false;
        for (unsigned d = 0; d < c && !seen; d++)
            seen = topo->node_of_cpu[d] == topo->node_of_cpu[c];
        if (!seen)
            topo->nnodes++;
    }
    if (topo->ncpus_online == 0)
        goto fail;
    return MC_OK;

fail:
    if (dir != NULL)
        closedir(dir);
    for (unsigned c = 0; c < TOPO_CPUS_MAX; c++)
        topo->node_of_cpu[c] = -1;
    topo->ncpus_online = 0;
    topo->nnodes = 0;
    return MC_EINVAL;
}

int topo_node_of(const struct topo *topo, unsigned cpu)
{
    if (cpu >= TOPO_CPUS_MAX || topo->node_of_cpu[cpu] < 0)
        return 0;
    return topo->node_of_cpu[cpu];
}
