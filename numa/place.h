/*
 * place.h: putting threads and memory where they belong (the contract; see
 * place.c).
 *
 * The shard plan maps shard i to the i-th CPU of the process's affinity
 * mask (so `taskset -c 2,3 corecache` runs two shards on CPUs 2 and 3), and
 * to that CPU's NUMA node. Arenas are mapped on the node with libnuma where
 * the machine has NUMA, with transparent huge pages requested, and are
 * touched lazily: a page becomes resident when the slab allocator first
 * writes to it, so an idle cache does not hold -m of RSS.
 */
#ifndef CORECACHE_NUMA_PLACE_H
#define CORECACHE_NUMA_PLACE_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/status.h"
#include "topo.h"

struct place_plan {
    unsigned nshards;
    unsigned cpu[TOPO_CPUS_MAX];  /* CPU of shard i */
    int node[TOPO_CPUS_MAX];      /* NUMA node of shard i */
};

/* Reads the calling thread's affinity mask. Returns 0 or -errno. */
int place_affinity(bool mask[TOPO_CPUS_MAX]);

/*
 * Plans `want` shards (0: one per CPU of the mask) over the CPUs in `mask`,
 * in ascending CPU order. With more shards than CPUs, CPUs are reused round
 * robin. MC_EINVAL if the mask is empty or want > TOPO_CPUS_MAX. Pure.
 */
enum mc_status place_plan(struct place_plan *plan, const struct topo *topo,
                          const bool mask[TOPO_CPUS_MAX], unsigned want) MC_MUST_CHECK;

/* Pins the calling thread to `cpu`. Returns 0 or -errno. */
int place_pin_self(unsigned cpu);

/* Maps `size` bytes (rounded up to pages) on `node`, lazily, THP advised.
 * Returns NULL on failure. */
void *place_alloc_on_node(size_t size, int node);
void place_free(void *mem, size_t size);

/* Binds an existing mapping (a -e memory file's, io/memfile.c) to `node`
 * with mbind(2) MPOL_BIND, as place_alloc_on_node binds an arena: pages
 * faulted from now on come from that node. Returns 0 or -errno: -ENOSYS
 * where libnuma reports no NUMA, -EINVAL for a node the process may not
 * allocate on (callers say so and keep the mapping, placed by first touch). */
int place_bind_on_node(void *mem, size_t size, int node);

#endif
