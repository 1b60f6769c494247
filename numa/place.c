/*
 * place.c: putting shard threads and their memory where they belong
 * (place.h).
 *
 * The plan is pure arithmetic over the affinity mask and the topology:
 * shard i runs on the i-th allowed CPU in ascending order (round robin when
 * there are more shards than CPUs) and takes its memory from that CPU's
 * node. The rest are thin wrappers over the kernel and libnuma that return
 * -errno or NULL instead of printing.
 *
 * Arenas. Where libnuma works (numa_available() >= 0) an arena comes from
 * numa_alloc_onnode(): an anonymous mapping bound to the node with mbind(2),
 * faulted in lazily, so the slab allocator's first write to a page is what
 * makes it resident, on the right node. Elsewhere it is a plain anonymous
 * mmap(2). Either way it is page-aligned and zero-filled, and
 * MADV_HUGEPAGE is asked for (best effort: THP may be off, and then the
 * arena is simply made of small pages).
 *
 * libnuma prints to stderr when an mbind() it makes fails (numa_error()).
 * We never ask it for a node we may not allocate on: a node outside
 * numa_all_nodes_ptr (no memory, or not in our cpuset) is served by
 * numa_alloc(), which maps with the default policy (the kernel then takes
 * pages from the nearest node that has them) and makes no mbind() at all.
 * So both NUMA paths are libnuma allocations and are freed with
 * numa_free(); without NUMA, both sides use mmap/munmap. The choice depends
 * only on numa_available(), which does not change during a run.
 */
#include "place.h"

#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

_Static_assert(CPU_SETSIZE >= TOPO_CPUS_MAX, "cpu_set_t must hold every CPU topo knows");

int place_affinity(bool mask[TOPO_CPUS_MAX])
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return -errno;
    for (unsigned c = 0; c < TOPO_CPUS_MAX; c++)
        mask[c] = CPU_ISSET(c, &set);
    return 0;
}

enum mc_status place_plan(struct place_plan *plan, const struct topo *topo,
                          const bool mask[TOPO_CPUS_MAX], unsigned want)
{
    unsigned cpus[TOPO_CPUS_MAX];
    unsigned ncpus = 0;
    for (unsigned c = 0; c < TOPO_CPUS_MAX; c++) {
        if (mask[c])
            cpus[ncpus++] = c;
    }
    if (ncpus == 0 || want > TOPO_CPUS_MAX)
        return MC_EINVAL;

    plan->nshards = want != 0 ? want : ncpus;
    for (unsigned i = 0; i < plan->nshards; i++) {
        plan->cpu[i] = cpus[i % ncpus];
        plan->node[i] = topo_node_of(topo, plan->cpu[i]);
    }
    return MC_OK;
}

int place_pin_self(unsigned cpu)
{
    if (cpu >= CPU_SETSIZE)
        return -EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    return -rc; /* pthread functions return the error number itself */
}

static size_t page_round(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size > SIZE_MAX - (page - 1))
        return 0;
    return (size + page - 1) / page * page;
}

void *place_alloc_on_node(size_t size, int node)
{
    size_t rounded = page_round(size);
    if (rounded == 0 || node < 0)
        return NULL;

    void *mem;
    if (numa_available() >= 0) {
        if (node <= numa_max_node() && numa_bitmask_isbitset(numa_all_nodes_ptr, (unsigned)node))
            mem = numa_alloc_onnode(rounded, node);
        else
            mem = numa_alloc(rounded);
        if (mem == NULL)
            return NULL;
    } else {
        mem = mmap(NULL, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
            return NULL;
    }
    (void)madvise(mem, rounded, MADV_HUGEPAGE); /* best effort */
    return mem;
}

void place_free(void *mem, size_t size)
{
    if (mem == NULL)
        return;
    size_t rounded = page_round(size);
    if (numa_available() >= 0)
        numa_free(mem, rounded);
    else
        (void)munmap(mem, rounded);
}

/* A mapping made elsewhere (a file's) gets the arena's policy: MPOL_BIND
 * to the shard's node, for the pages faulted after the call (no
 * MPOL_MF_MOVE: pages a warm restart finds resident were placed by the
 * same binding in the run that wrote them). On shmem and hugetlbfs the
 * policy is the file's shared policy, so it holds for every page of the
 * range whoever faults it. */
int place_bind_on_node(void *mem, size_t size, int node)
{
    if (numa_available() < 0)
        return -ENOSYS;
    if (node < 0 || node > numa_max_node() || !numa_bitmask_isbitset(numa_all_nodes_ptr, (unsigned)node))
        return -EINVAL;
    unsigned long mask[TOPO_CPUS_MAX / (8 * sizeof(unsigned long)) + 1] = {0};
    if ((size_t)node >= 8 * sizeof(mask))
        return -EINVAL;
    mask[(unsigned)node / (8 * sizeof(unsigned long))] |= 1ul << ((unsigned)node % (8 * sizeof(unsigned long)));
    if (mbind(mem, page_round(size), MPOL_BIND, mask, 8 * sizeof(mask), 0) != 0)
        return -errno;
    return 0;
}
