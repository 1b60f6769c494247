/*
 * test_topo.c: topology discovery over fake sysfs trees written under a
 * mkdtemp() directory, cpulist parsing, and one read of the real /sys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <numa.h>

#include "topo.h"

struct fixture {
    char root[64];
    struct topo topo;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->root, sizeof(f->root), "/tmp/corecache-topo-XXXXXX");
    if (mkdtemp(f->root) == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc = nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

/* Writes <root>/<relpath>, creating directories on the way. */
static void put(struct fixture *f, const char *relpath, const char *content)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", f->root, relpath);
    for (char *slash = strchr(path + strlen(f->root) + 1, '/'); slash != NULL;
         slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
        *slash = '/';
    }
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    assert_int_equal(fputs(content, file) >= 0, 1);
    assert_int_equal(fclose(file), 0);
}

/* Creates <root>/<relpath>/ (holding only an empty ".keep"). */
static void mkdirs(struct fixture *f, const char *relpath)
{
    char keep[512];
    snprintf(keep, sizeof(keep), "%s/.keep", relpath);
    put(f, keep, "");
}

#define ONLINE "devices/system/cpu/online"
#define NODE(n) "devices/system/node/node" #n "/cpulist"

static enum mc_status read_fake(struct fixture *f)
{
    return topo_read(&f->topo, f->root);
}

/* ---- topo_parse_cpulist ------------------------------------------------ */

static void test_topo_parse_cpulist_accepts_kernel_format(void **state)
{
    bool cpus[TOPO_CPUS_MAX];
    assert_true(topo_parse_cpulist("0-3,8,10-11\n", cpus));
    for (unsigned c = 0; c < 16; c++) {
        bool want = c <= 3 || c == 8 || c == 10 || c == 11;
        assert_int_equal(cpus[c], want);
    }
    assert_true(topo_parse_cpulist("5", cpus));
    assert_true(cpus[5]);
    assert_false(cpus[0]);
    assert_true(topo_parse_cpulist("1023", cpus));
    assert_true(cpus[1023]);
    assert_true(topo_parse_cpulist("0-1023\n", cpus));
    assert_true(cpus[0] && cpus[512] && cpus[1023]);
    /* an empty set: a cpu-less node's cpulist is a bare newline */
    assert_true(topo_parse_cpulist("\n", cpus));
    for (unsigned c = 0; c < TOPO_CPUS_MAX; c++)
        assert_false(cpus[c]);
    assert_true(topo_parse_cpulist("", cpus));
}

static void test_topo_parse_cpulist_rejects_garbage(void **state)
{
    static const char *const bad[] = {
        "3-1", "1,", ",1", "1-", "-1", "a", "1 2", " 1", "1024", "0-1024", "1\n\n",
        "1\nx", "0-3:2/4", "1,,2", "99999999999999999999",
    };
    bool cpus[TOPO_CPUS_MAX];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (topo_parse_cpulist(bad[i], cpus))
            print_error("accepted \"%s\"\n", bad[i]);
        assert_false(topo_parse_cpulist(bad[i], cpus));
    }
}

/* ---- fake trees -------------------------------------------------------- */

static void test_topo_read_single_node(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "0-3\n");
    put(f, NODE(0), "0-3\n");
    put(f, "devices/system/node/online", "0\n");
    put(f, "devices/system/node/possible", "0\n");
    assert_int_equal(read_fake(f), MC_OK);
    assert_int_equal(f->topo.ncpus_online, 4);
    assert_int_equal(f->topo.nnodes, 1);
    for (unsigned c = 0; c < 4; c++)
        assert_int_equal(f->topo.node_of_cpu[c], 0);
    assert_int_equal(f->topo.node_of_cpu[4], -1);
}

static void test_topo_read_two_nodes_interleaved(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "0-3\n");
    put(f, NODE(0), "0,2\n");
    put(f, NODE(1), "1,3\n");
    put(f, "devices/system/node/has_cpu", "0-1\n");
    assert_int_equal(read_fake(f), MC_OK);
    assert_int_equal(f->topo.ncpus_online, 4);
    assert_int_equal(f->topo.nnodes, 2);
    assert_int_equal(topo_node_of(&f->topo, 0), 0);
    assert_int_equal(topo_node_of(&f->topo, 1), 1);
    assert_int_equal(topo_node_of(&f->topo, 2), 0);
    assert_int_equal(topo_node_of(&f->topo, 3), 1);
}

static void test_topo_read_ranges_with_gaps(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "0-3,8-9\n");
    put(f, NODE(0), "0-3\n");
    put(f, NODE(1), "8-9\n");
    assert_int_equal(read_fake(f), MC_OK);
    assert_int_equal(f->topo.ncpus_online, 6);
    assert_int_equal(f->topo.nnodes, 2);
    assert_int_equal(f->topo.node_of_cpu[3], 0);
    for (unsigned c = 4; c < 8; c++)
        assert_int_equal(f->topo.node_of_cpu[c], -1);
    assert_int_equal(f->topo.node_of_cpu[8], 1);
    assert_int_equal(f->topo.node_of_cpu[9], 1);
    assert_int_equal(f->topo.node_of_cpu[10], -1);
}

static void test_topo_read_without_node_dir_is_one_node(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "0-5\n");
    assert_int_equal(read_fake(f), MC_OK);
    assert_int_equal(f->topo.ncpus_online, 6);
    assert_int_equal(f->topo.nnodes, 1);
    for (unsigned c = 0; c < 6; c++)
        assert_int_equal(f->topo.node_of_cpu[c], 0);
    assert_int_equal(f->topo.node_of_cpu[6], -1);
}

static void test_topo_read_empty_node_dir_is_one_node(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "0-1\n");
    mkdirs(f, "devices/system/node");
    put(f, "devices/system/node/possible", "0\n");
    assert_int_equal(read_fake(f), MC_OK);
    assert_int_equal(f->topo.ncpus_online, 2);
    assert_int_equal(f->topo.nnodes, 1);
    assert_int_equal(f->topo.node_of_cpu[1], 0);
}

static void test_topo_read_ignores_offline_cpus_of_nodes(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "0-1,3\n");
    put(f, NODE(0), "0-1\n");
    put(f, NODE(1), "2-3\n"); /* CPU 2 is offline */
    assert_int_equal(read_fake(f), MC_OK);
    assert_int_equal(f->topo.ncpus_online, 3);
    assert_int_equal(f->topo.node_of_cpu[2], -1);
    assert_int_equal(f->topo.node_of_cpu[3], 1);
    assert_int_equal(f->topo.nnodes, 2);
}

static void test_topo_read_sparse_and_cpuless_nodes(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "0-3\n");
    put(f, NODE(0), "0-1\n");
    put(f, NODE(2), "\n"); /* memory only (e.g. CXL): no CPUs */
    put(f, NODE(3), "2-3\n");
    assert_int_equal(read_fake(f), MC_OK);
    assert_int_equal(f->topo.nnodes, 2); /* nodes with at least one CPU */
    assert_int_equal(topo_node_of(&f->topo, 2), 3);
}

static void test_topo_read_unclaimed_online_cpu_goes_to_node_0(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "0-3\n");
    put(f, NODE(1), "0-2\n");
    assert_int_equal(read_fake(f), MC_OK);
    assert_int_equal(f->topo.node_of_cpu[1], 1);
    assert_int_equal(f->topo.node_of_cpu[3], 0);
    assert_int_equal(f->topo.nnodes, 2);
}

static void expect_einval(struct fixture *f)
{
    assert_int_equal(read_fake(f), MC_EINVAL);
    /* a failed read leaves nothing half-filled */
    assert_int_equal(f->topo.ncpus_online, 0);
    assert_int_equal(f->topo.nnodes, 0);
    assert_int_equal(f->topo.node_of_cpu[0], -1);
}

static void test_topo_read_missing_online_is_einval(void **state)
{
    struct fixture *f = *state;
    put(f, NODE(0), "0-3\n");
    expect_einval(f);
}

static void test_topo_read_garbage_online_is_einval(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "banana\n");
    expect_einval(f);
}

static void test_topo_read_empty_online_is_einval(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "\n");
    expect_einval(f);
}

static void test_topo_read_cpu_beyond_max_is_einval(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "0-4095\n");
    expect_einval(f);
}

static void test_topo_read_garbage_node_cpulist_is_einval(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "0-3\n");
    put(f, NODE(0), "0-1\n");
    put(f, NODE(1), "two,three\n");
    expect_einval(f);
}

static void test_topo_read_node_without_cpulist_is_einval(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "0-3\n");
    put(f, NODE(0), "0-3\n");
    put(f, "devices/system/node/node1/meminfo", "nothing\n");
    expect_einval(f);
}

static void test_topo_read_cpu_in_two_nodes_is_einval(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "0-3\n");
    put(f, NODE(0), "0-2\n");
    put(f, NODE(1), "2-3\n");
    expect_einval(f);
}

static void test_topo_read_oversized_file_is_einval(void **state)
{
    struct fixture *f = *state;
    size_t len = 64 * 1024;
    char *big = malloc(len + 1);
    assert_non_null(big);
    memset(big, '0', len); /* "000...0" is a well-formed CPU 0, but too long to trust */
    big[len] = '\0';
    put(f, ONLINE, big);
    free(big);
    expect_einval(f);
}

static void test_topo_read_missing_root_is_einval(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(topo_read(&f->topo, "/nonexistent/corecache"), MC_EINVAL);
}

static void test_topo_node_of_unknown_cpu_is_0(void **state)
{
    struct fixture *f = *state;
    put(f, ONLINE, "0-1\n");
    put(f, NODE(4), "0-1\n");
    assert_int_equal(read_fake(f), MC_OK);
    assert_int_equal(topo_node_of(&f->topo, 0), 4);
    assert_int_equal(topo_node_of(&f->topo, 7), 0);     /* offline */
    assert_int_equal(topo_node_of(&f->topo, 100000), 0); /* out of range */
}

/* ---- the real machine -------------------------------------------------- */

static void test_topo_read_real_sys(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(topo_read(&f->topo, "/sys"), MC_OK);
    assert_true(f->topo.ncpus_online >= 1);
    assert_int_equal(f->topo.ncpus_online, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(f->topo.nnodes >= 1);
    bool node0 = false;
    for (unsigned c = 0; c < TOPO_CPUS_MAX; c++) {
        int node = f->topo.node_of_cpu[c];
        if (node < 0)
            continue;
        node0 = node0 || node == 0;
        /* and libnuma agrees where it works */
        if (numa_available() >= 0)
            assert_int_equal(node, numa_node_of_cpu((int)c));
    }
    assert_true(node0);
    print_message("real /sys: %u CPUs online on %u node(s)\n", f->topo.ncpus_online,
                  f->topo.nnodes);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_topo_parse_cpulist_accepts_kernel_format),
        T(test_topo_parse_cpulist_rejects_garbage),
        T(test_topo_read_single_node),
        T(test_topo_read_two_nodes_interleaved),
        T(test_topo_read_ranges_with_gaps),
        T(test_topo_read_without_node_dir_is_one_node),
        T(test_topo_read_empty_node_dir_is_one_node),
        T(test_topo_read_ignores_offline_cpus_of_nodes),
        T(test_topo_read_sparse_and_cpuless_nodes),
        T(test_topo_read_unclaimed_online_cpu_goes_to_node_0),
        T(test_topo_read_missing_online_is_einval),
        T(test_topo_read_garbage_online_is_einval),
        T(test_topo_read_empty_online_is_einval),
        T(test_topo_read_cpu_beyond_max_is_einval),
        T(test_topo_read_garbage_node_cpulist_is_einval),
        T(test_topo_read_node_without_cpulist_is_einval),
        T(test_topo_read_cpu_in_two_nodes_is_einval),
        T(test_topo_read_oversized_file_is_einval),
        T(test_topo_read_missing_root_is_einval),
        T(test_topo_node_of_unknown_cpu_is_0),
        T(test_topo_read_real_sys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
