/*
 * topo.h: CPU and NUMA node discovery (the contract; see topo.c).
 *
 * Reads Linux's sysfs tree (devices/system/node/nodeN/cpulist and
 * devices/system/cpu/online) from a root that is
 * handed in, "/sys" in production and a fake tree in tests, and answers which
 * node each CPU belongs to. A machine without NUMA (no node directories)
 * reads as one node 0 holding every online CPU.
 */
#ifndef CORECACHE_NUMA_TOPO_H
#define CORECACHE_NUMA_TOPO_H

#include <stdbool.h>

#include "../core/status.h"

#define TOPO_CPUS_MAX 1024

struct topo {
    unsigned ncpus_online;               /* CPUs listed in cpu/online */
    int node_of_cpu[TOPO_CPUS_MAX];      /* -1: CPU not online */
    unsigned nnodes;                     /* nodes with at least one CPU */
};

/* Reads the tree under sysfs_root (e.g. "/sys"). MC_EINVAL if it cannot be
 * read or parsed. */
enum mc_status topo_read(struct topo *topo, const char *sysfs_root) MC_MUST_CHECK;

/* Parses a Linux cpulist ("0-3,8,10-11") into a membership array of TOPO_CPUS_MAX
 * entries. Returns false on malformed text or a CPU id out of range. */
bool topo_parse_cpulist(const char *text, bool cpus[TOPO_CPUS_MAX]);

/* The node of a CPU, or 0 when unknown. */
int topo_node_of(const struct topo *topo, unsigned cpu);

#endif
