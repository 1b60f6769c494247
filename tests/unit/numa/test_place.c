/*
 * test_place.c: shard plans over affinity masks, pinning the test thread,
 * and lazily-mapped node-local arenas.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <numa.h>

#include "place.h"

struct fixture {
    struct topo topo;           /* fake: CPUs 0..15, even on node 0, odd on node 1 */
    bool mask[TOPO_CPUS_MAX];
    struct place_plan plan;
    cpu_set_t saved_affinity;   /* restored by teardown after pinning tests */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    for (unsigned c = 0; c < TOPO_CPUS_MAX; c++)
        f->topo.node_of_cpu[c] = c < 16 ? (int)(c % 2) : -1;
    f->topo.ncpus_online = 16;
    f->topo.nnodes = 2;
    if (pthread_getaffinity_np(pthread_self(), sizeof(f->saved_affinity), &f->saved_affinity) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc = pthread_setaffinity_np(pthread_self(), sizeof(f->saved_affinity), &f->saved_affinity);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void set_mask(struct fixture *f, const unsigned *cpus, size_t n)
{
    memset(f->mask, 0, sizeof(f->mask));
    for (size_t i = 0; i < n; i++)
        f->mask[cpus[i]] = true;
}

/* ---- place_plan -------------------------------------------------------- */

static void test_place_plan_one_shard_per_cpu(void **state)
{
    struct fixture *f = *state;
    unsigned cpus[] = {0, 1, 2, 3};
    set_mask(f, cpus, 4);
    assert_int_equal(place_plan(&f->plan, &f->topo, f->mask, 0), MC_OK);
    assert_int_equal(f->plan.nshards, 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(f->plan.cpu[i], i);
        assert_int_equal(f->plan.node[i], (int)(i % 2));
    }
}

static void test_place_plan_sparse_mask_ascending(void **state)
{
    struct fixture *f = *state;
    unsigned cpus[] = {9, 2, 5}; /* order given does not matter */
    set_mask(f, cpus, 3);
    assert_int_equal(place_plan(&f->plan, &f->topo, f->mask, 0), MC_OK);
    assert_int_equal(f->plan.nshards, 3);
    assert_int_equal(f->plan.cpu[0], 2);
    assert_int_equal(f->plan.cpu[1], 5);
    assert_int_equal(f->plan.cpu[2], 9);
    assert_int_equal(f->plan.node[0], 0);
    assert_int_equal(f->plan.node[1], 1);
    assert_int_equal(f->plan.node[2], 1);
}

static void test_place_plan_more_shards_than_cpus_round_robin(void **state)
{
    struct fixture *f = *state;
    unsigned cpus[] = {1, 4};
    set_mask(f, cpus, 2);
    assert_int_equal(place_plan(&f->plan, &f->topo, f->mask, 5), MC_OK);
    assert_int_equal(f->plan.nshards, 5);
    static const unsigned want_cpu[] = {1, 4, 1, 4, 1};
    static const int want_node[] = {1, 0, 1, 0, 1};
    for (unsigned i = 0; i < 5; i++) {
        assert_int_equal(f->plan.cpu[i], want_cpu[i]);
        assert_int_equal(f->plan.node[i], want_node[i]);
    }
}

static void test_place_plan_fewer_shards_than_cpus(void **state)
{
    struct fixture *f = *state;
    unsigned cpus[] = {3, 6, 7};
    set_mask(f, cpus, 3);
    assert_int_equal(place_plan(&f->plan, &f->topo, f->mask, 2), MC_OK);
    assert_int_equal(f->plan.nshards, 2);
    assert_int_equal(f->plan.cpu[0], 3);
    assert_int_equal(f->plan.cpu[1], 6);
}

static void test_place_plan_cpu_unknown_to_topo_is_node_0(void **state)
{
    struct fixture *f = *state;
    unsigned cpus[] = {17, 1023};
    set_mask(f, cpus, 2);
    assert_int_equal(place_plan(&f->plan, &f->topo, f->mask, 0), MC_OK);
    assert_int_equal(f->plan.cpu[1], 1023);
    assert_int_equal(f->plan.node[0], 0);
    assert_int_equal(f->plan.node[1], 0);
}

static void test_place_plan_limits(void **state)
{
    struct fixture *f = *state;
    memset(f->mask, 0, sizeof(f->mask));
    assert_int_equal(place_plan(&f->plan, &f->topo, f->mask, 0), MC_EINVAL);
    assert_int_equal(place_plan(&f->plan, &f->topo, f->mask, 4), MC_EINVAL);
    unsigned cpus[] = {0};
    set_mask(f, cpus, 1);
    assert_int_equal(place_plan(&f->plan, &f->topo, f->mask, TOPO_CPUS_MAX + 1), MC_EINVAL);
    assert_int_equal(place_plan(&f->plan, &f->topo, f->mask, TOPO_CPUS_MAX), MC_OK);
    assert_int_equal(f->plan.nshards, TOPO_CPUS_MAX);
    assert_int_equal(f->plan.cpu[TOPO_CPUS_MAX - 1], 0);
}

/* ---- affinity and pinning ---------------------------------------------- */

static void test_place_affinity_matches_kernel(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(place_affinity(f->mask), 0);
    unsigned n = 0;
    for (unsigned c = 0; c < TOPO_CPUS_MAX; c++) {
        assert_int_equal(f->mask[c], CPU_ISSET(c, &f->saved_affinity) != 0);
        n += f->mask[c];
    }
    assert_true(n >= 1);
    assert_int_equal(n, (unsigned)CPU_COUNT(&f->saved_affinity));
}

static void test_place_pin_self_runs_on_that_cpu(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(place_affinity(f->mask), 0);
    unsigned last = TOPO_CPUS_MAX;
    for (unsigned c = 0; c < TOPO_CPUS_MAX; c++) {
        if (f->mask[c])
            last = c;
    }
    assert_true(last < TOPO_CPUS_MAX);
    assert_int_equal(place_pin_self(last), 0);
    assert_int_equal(sched_getcpu(), (int)last);

    /* the affinity mask is now that CPU alone */
    assert_int_equal(place_affinity(f->mask), 0);
    for (unsigned c = 0; c < TOPO_CPUS_MAX; c++)
        assert_int_equal(f->mask[c], c == last);
}

static void test_place_pin_self_errors_are_negative_errno(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(place_pin_self(CPU_SETSIZE), -EINVAL);
    assert_int_equal(place_affinity(f->mask), 0);
    if (!f->mask[TOPO_CPUS_MAX - 1]) /* a CPU we may not run on */
        assert_int_equal(place_pin_self(TOPO_CPUS_MAX - 1), -EINVAL);
}

/* ---- arenas ------------------------------------------------------------ */

static long resident_pages(void)
{
    long size = 0, resident = -1;
    FILE *statm = fopen("/proc/self/statm", "r");
    assert_non_null(statm);
    assert_int_equal(fscanf(statm, "%ld %ld", &size, &resident), 2);
    fclose(statm);
    return resident;
}

static void test_place_alloc_is_lazy_page_aligned_and_on_node(void **state)
{
    const size_t size = 8u << 20;
    const long page = sysconf(_SC_PAGESIZE);
    const long pages = (long)size / page;

    long before = resident_pages();
    unsigned char *mem = place_alloc_on_node(size, 0);
    assert_non_null(mem);
    long allocated = resident_pages();
    assert_int_equal((uintptr_t)mem % (uintptr_t)page, 0);
    /* mapping alone must not make the arena resident */
    assert_true(allocated - before < pages / 4);

    for (size_t off = 0; off < size; off += (size_t)page)
        mem[off] = (unsigned char)(off / (size_t)page);
    long touched = resident_pages();
    /* ...but writing every page does (so the measurement above means something) */
    assert_true(touched - before >= pages * 9 / 10);
    for (size_t off = 0; off < size; off += (size_t)page) {
        assert_int_equal(mem[off], (unsigned char)(off / (size_t)page));
        assert_int_equal(mem[off + 1], 0); /* zero-filled */
    }

    if (numa_available() >= 0) {
        void *pages_to_ask[2] = {mem, mem + size - (size_t)page};
        int status[2] = {-1, -1};
        assert_int_equal(numa_move_pages(0, 2, pages_to_ask, NULL, status, 0), 0);
        assert_int_equal(status[0], 0);
        assert_int_equal(status[1], 0);
    }
    print_message("arena 8 MiB: +%ld pages mapped, +%ld after touching (of %ld)\n",
                  allocated - before, touched - before, pages);
    place_free(mem, size);
}

static void test_place_alloc_rounds_up_to_pages(void **state)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *mem = place_alloc_on_node(page + 1, 0);
    assert_non_null(mem);
    assert_int_equal((uintptr_t)mem % page, 0);
    mem[2 * page - 1] = 0xAB; /* the rounded-up tail is ours */
    assert_int_equal(mem[2 * page - 1], 0xAB);
    place_free(mem, page + 1);
}

static void test_place_alloc_refuses_bad_arguments(void **state)
{
    assert_null(place_alloc_on_node(0, 0));
    assert_null(place_alloc_on_node(4096, -1));
    assert_null(place_alloc_on_node(SIZE_MAX, 0));
    place_free(NULL, 4096); /* a no-op */
}

static void test_place_alloc_on_absent_node_still_maps(void **state)
{
    /* a node we cannot allocate on falls back to the default policy rather
     * than failing (or making libnuma print) */
    unsigned char *mem = place_alloc_on_node(1u << 20, 999);
    assert_non_null(mem);
    mem[0] = 1;
    mem[(1u << 20) - 1] = 2;
    assert_int_equal(mem[0] + mem[(1u << 20) - 1], 3);
    place_free(mem, 1u << 20);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_place_plan_one_shard_per_cpu),
        T(test_place_plan_sparse_mask_ascending),
        T(test_place_plan_more_shards_than_cpus_round_robin),
        T(test_place_plan_fewer_shards_than_cpus),
        T(test_place_plan_cpu_unknown_to_topo_is_node_0),
        T(test_place_plan_limits),
        T(test_place_affinity_matches_kernel),
        T(test_place_pin_self_runs_on_that_cpu),
        T(test_place_pin_self_errors_are_negative_errno),
        T(test_place_alloc_is_lazy_page_aligned_and_on_node),
        T(test_place_alloc_rounds_up_to_pages),
        T(test_place_alloc_refuses_bad_arguments),
        T(test_place_alloc_on_absent_node_still_maps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
