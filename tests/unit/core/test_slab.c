/*
 * test_slab.c: slab classes (memcached 1.6's sizes under -n/-f), class
 * choice at every boundary, lazy page carving that leaves untouched arena
 * memory alone, free lists, and page moves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "slab.h"

#define PAGE (64 * 1024)
#define NPAGES 8
#define CANARY 0xA5

struct fixture {
    void *arena;
    struct slab *slab;
};

static struct slab *make_slab(struct fixture *f, size_t page, size_t npages, double factor,
                              uint32_t chunk_min)
{
    slab_destroy(&f->slab);
    free(f->arena);
    f->arena = NULL;
    assert_int_equal(posix_memalign(&f->arena, 4096, page * npages), 0);
    memset(f->arena, CANARY, page * npages);
    struct slab_cfg cfg = {
        .arena = f->arena,
        .arena_size = page * npages,
        .page_size = page,
        .factor = factor,
        .chunk_min = chunk_min,
    };
    assert_int_equal(slab_create(&cfg, &f->slab), MC_OK);
    return f->slab;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    make_slab(f, PAGE, NPAGES, 1.25, 48);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    slab_destroy(&f->slab);
    free(f->arena);
    free(f);
    return 0;
}

/* memcached's slabs_init() sizes, computed independently (header 40). */
static const uint32_t default_1m[] = {88,   112,  144,  184,  232,  296,  376,
                                      472,  592,  744,  936,  1176, 1472, 1840};

static void test_slab_classes_match_memcached_defaults(void **state)
{
    struct fixture *f = *state;
    struct slab *slab = make_slab(f, 1024 * 1024, 1, 1.25, 48);
    assert_int_equal(slab_class_count(slab), 42);
    for (unsigned i = 0; i < sizeof(default_1m) / sizeof(default_1m[0]); i++)
        assert_int_equal(slab_class_size(slab, i + 1), default_1m[i]);
    assert_int_equal(slab_class_size(slab, 40), 611296);
    assert_int_equal(slab_class_size(slab, 41), 764120);
    assert_int_equal(slab_class_size(slab, 42), 1024 * 1024); /* last = one page */
    assert_int_equal(slab_class_size(slab, 43), 0);
    assert_int_equal(slab_class_size(slab, 0), 0);
}

static void test_slab_classes_follow_chunk_min_and_factor(void **state)
{
    struct fixture *f = *state;
    static const uint32_t want[] = {144,   288,    576,    1152,   2304,   4608,   9216,
                                    18432, 36864, 73728, 147456, 294912, 1048576};
    struct slab *slab = make_slab(f, 1024 * 1024, 1, 2.0, 100);
    assert_int_equal(slab_class_count(slab), 13);
    for (unsigned i = 0; i < 13; i++)
        assert_int_equal(slab_class_size(slab, i + 1), want[i]);

    /* A tiny factor repeats the 8-aligned size and stops at 63 classes. */
    slab = make_slab(f, 1024 * 1024, 1, 1.01, 48);
    assert_int_equal(slab_class_count(slab), 63);
    assert_int_equal(slab_class_size(slab, 1), 88);
    assert_int_equal(slab_class_size(slab, 62), 88);
    assert_int_equal(slab_class_size(slab, 63), 1024 * 1024);

    /* A small page: 88 < 128 / 1.25, but 110 is not: one class plus the page. */
    slab = make_slab(f, 128, 4, 1.25, 48);
    assert_int_equal(slab_class_count(slab), 2);
    assert_int_equal(slab_class_size(slab, 1), 88);
    assert_int_equal(slab_class_size(slab, 2), 128);
}

static void test_slab_clsid_at_every_boundary(void **state)
{
    struct fixture *f = *state;
    struct slab *slab = f->slab;
    unsigned n = slab_class_count(slab);
    assert_true(n > 2);
    assert_int_equal(slab_clsid(slab, 0), 0);
    assert_int_equal(slab_clsid(slab, 1), 1);
    for (unsigned id = 1; id <= n; id++) {
        size_t size = slab_class_size(slab, id);
        assert_int_equal(slab_clsid(slab, size), id);
        assert_int_equal(slab_clsid(slab, size - 1), size - 1 > slab_class_size(slab, id - 1) ? id : id - 1);
        if (id < n)
            assert_int_equal(slab_clsid(slab, size + 1), id + 1);
    }
    assert_int_equal(slab_clsid(slab, PAGE), n);
    assert_int_equal(slab_clsid(slab, PAGE + 1), 0);
}

static void test_slab_rejects_bad_config(void **state)
{
    struct fixture *f = *state;
    struct slab *slab = (struct slab *)1;
    struct slab_cfg cfg = {.arena = f->arena, .arena_size = PAGE * NPAGES, .page_size = PAGE,
                           .factor = 1.25, .chunk_min = 48};
    struct slab_cfg bad = cfg;
    bad.factor = 1.0;
    assert_int_equal(slab_create(&bad, &slab), MC_EINVAL);
    assert_null(slab);
    bad = cfg;
    bad.arena_size = PAGE - 8;
    assert_int_equal(slab_create(&bad, &slab), MC_EINVAL);
    bad = cfg;
    bad.page_size = PAGE + 4;
    assert_int_equal(slab_create(&bad, &slab), MC_EINVAL);
    bad = cfg;
    bad.arena = (char *)f->arena + 4;
    assert_int_equal(slab_create(&bad, &slab), MC_EINVAL);
    bad = cfg;
    bad.chunk_min = 0;
    assert_int_equal(slab_create(&bad, &slab), MC_EINVAL);
    bad = cfg;
    bad.arena_size = SLAB_ARENA_MAX + PAGE;
    assert_int_equal(slab_create(&bad, &slab), MC_EINVAL);
}

/* Pages are taken one at a time and carved one chunk at a time: memory the
 * allocator has not handed out is never written. */
static void test_slab_carves_lazily(void **state)
{
    struct fixture *f = *state;
    struct slab *slab = f->slab;
    const unsigned char *arena = f->arena;
    assert_int_equal(slab_pages_taken(slab), 0);
    assert_int_equal(slab_total_malloced(slab), 0);

    struct item *a = slab_alloc(slab, 1);
    assert_non_null(a);
    assert_ptr_equal(a, f->arena);
    assert_int_equal(a->clsid, 1);
    assert_int_equal(slab_pages_taken(slab), 1);
    assert_int_equal(slab_total_malloced(slab), PAGE);
    for (size_t i = slab_class_size(slab, 1); i < PAGE * NPAGES; i++)
        assert_int_equal(arena[i], CANARY);

    struct item *b = slab_alloc(slab, 3);
    assert_ptr_equal(b, arena + PAGE); /* a class gets its own page */
    assert_int_equal(slab_pages_taken(slab), 2);
    for (size_t i = PAGE + slab_class_size(slab, 3); i < PAGE * NPAGES; i++)
        assert_int_equal(arena[i], CANARY);

    struct slab_class_stats s;
    slab_class_stats(slab, 1, &s);
    assert_int_equal(s.chunk_size, 88);
    assert_int_equal(s.chunks_per_page, PAGE / 88);
    assert_int_equal(s.total_pages, 1);
    assert_int_equal(s.total_chunks, PAGE / 88);
    assert_int_equal(s.used_chunks, 1);
    assert_int_equal(s.free_chunks, 0);
    assert_int_equal(s.free_chunks_end, PAGE / 88 - 1);
}

static void test_slab_free_list_reuses_last_freed(void **state)
{
    struct fixture *f = *state;
    struct slab *slab = f->slab;
    struct item *a = slab_alloc(slab, 2);
    struct item *b = slab_alloc(slab, 2);
    struct item *c = slab_alloc(slab, 2);
    assert_ptr_equal((char *)b - (char *)a, 112);
    slab_free(slab, a);
    slab_free(slab, c);
    assert_true(c->iflags & ITEM_FREE);
    struct slab_class_stats s;
    slab_class_stats(slab, 2, &s);
    assert_int_equal(s.used_chunks, 1);
    assert_int_equal(s.free_chunks, 2);
    assert_int_equal(s.total_chunks, s.used_chunks + s.free_chunks + s.free_chunks_end);
    assert_ptr_equal(slab_alloc(slab, 2), c);
    assert_ptr_equal(slab_alloc(slab, 2), a);
    assert_false(a->iflags & ITEM_FREE);
    struct item *d = slab_alloc(slab, 2); /* free list empty: carve again */
    assert_ptr_equal((char *)d - (char *)c, 112);
}

static void test_slab_runs_out_then_moves_empty_page(void **state)
{
    struct fixture *f = *state;
    struct slab *slab = f->slab;
    unsigned big = slab_class_count(slab); /* one chunk per page */
    struct item *pages[NPAGES];
    for (int i = 0; i < NPAGES; i++) {
        pages[i] = slab_alloc(slab, big);
        assert_non_null(pages[i]);
    }
    assert_null(slab_alloc(slab, big));
    assert_null(slab_alloc(slab, 1));
    assert_false(slab_take_empty_page(slab, 1)); /* none empty yet */

    slab_free(slab, pages[5]);
    assert_int_equal(slab_page_used(slab, 5), 0);
    assert_true(slab_take_empty_page(slab, 1));
    assert_int_equal(slab_class_pages(slab, big), NPAGES - 1);
    assert_int_equal(slab_class_pages(slab, 1), 1);
    struct item *small = slab_alloc(slab, 1);
    assert_ptr_equal(small, pages[5]); /* re-carved from the page start */
    assert_int_equal(small->clsid, 1);
    assert_null(slab_alloc(slab, big)); /* the freed chunk left class big */

    struct slab_class_stats s;
    slab_class_stats(slab, big, &s);
    assert_int_equal(s.free_chunks, 0);
    assert_int_equal(s.used_chunks, NPAGES - 1);
}

static void test_slab_page_move_takes_chunks_off_free_list(void **state)
{
    struct fixture *f = *state;
    struct slab *slab = f->slab;
    uint32_t per = PAGE / 144;
    struct item **chunks = calloc(per + 10, sizeof(*chunks));
    for (uint32_t i = 0; i < per + 10; i++)
        chunks[i] = slab_alloc(slab, 3); /* page 0 full, 10 on page 1 */
    assert_int_equal(slab_class_pages(slab, 3), 2);
    for (uint32_t i = 0; i < per + 10; i += 2)
        slab_free(slab, chunks[i]);
    assert_false(slab_page_move(slab, 0, 5)); /* chunks still in use */
    for (uint32_t i = 1; i < per; i += 2)
        slab_free(slab, chunks[i]);
    assert_int_equal(slab_page_used(slab, 0), 0);
    assert_false(slab_page_move(slab, 0, 3)); /* same class */
    assert_true(slab_page_move(slab, 0, 5));

    struct slab_class_stats s;
    slab_class_stats(slab, 3, &s);
    assert_int_equal(s.total_pages, 1);
    assert_int_equal(s.free_chunks, 5); /* the even ones of page 1 */
    assert_int_equal(s.used_chunks, 5);
    assert_int_equal(s.total_chunks, s.used_chunks + s.free_chunks + s.free_chunks_end);
    for (int i = 0; i < 5; i++) {
        struct item *again = slab_alloc(slab, 3);
        assert_int_equal(slab_page_of(slab, again), 1);
    }
    char *first;
    uint32_t count;
    size_t stride;
    slab_page_chunks(slab, 0, &first, &count, &stride);
    assert_ptr_equal(first, f->arena);
    assert_int_equal(count, 0);
    assert_int_equal(stride, slab_class_size(slab, 5));
    assert_ptr_equal(slab_alloc(slab, 5), f->arena);
    free(chunks);
}

/* A page moved to a class that is still carving its last page goes onto
 * the class's free list whole, so the carving page is not abandoned. */
static void test_slab_page_move_to_class_still_carving(void **state)
{
    struct fixture *f = *state;
    struct slab *slab = f->slab;
    struct item *a = slab_alloc(slab, 3); /* page 0 */
    struct item *b = slab_alloc(slab, 5); /* page 1, class 5 carving */
    assert_non_null(b);
    slab_free(slab, a);
    assert_true(slab_page_move(slab, 0, 5));
    struct slab_class_stats s;
    slab_class_stats(slab, 5, &s);
    uint32_t per = PAGE / (uint32_t)slab_class_size(slab, 5);
    assert_int_equal(s.total_pages, 2);
    assert_int_equal(s.free_chunks, per);
    assert_int_equal(s.free_chunks_end, per - 1);
    assert_int_equal(s.used_chunks, 1);
    assert_int_equal(s.total_chunks, s.used_chunks + s.free_chunks + s.free_chunks_end);
    struct item *c = slab_alloc(slab, 5);
    assert_int_equal(slab_page_of(slab, c), 0);
    assert_int_equal(c->clsid, 5);
    slab_class_stats(slab, 3, &s);
    assert_int_equal(s.total_pages, 0);
    assert_int_equal(s.free_chunks, 0);
    assert_int_equal(s.free_chunks_end, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slab_classes_match_memcached_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slab_classes_follow_chunk_min_and_factor, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slab_clsid_at_every_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slab_rejects_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slab_carves_lazily, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slab_free_list_reuses_last_freed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slab_runs_out_then_moves_empty_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slab_page_move_takes_chunks_off_free_list, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slab_page_move_to_class_still_carving, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
