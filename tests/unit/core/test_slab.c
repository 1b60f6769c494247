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

/* The default layout, computed independently (header 40, -n 48, -f 1.25):
 * 8-byte steps from 88 to 256, then memcached's slabs_init() series (each
 * size times the factor, truncated, rounded up to 8). */
static const uint32_t default_1m[] = {88,  96,  104, 112, 120, 128, 136, 144, 152, 160,
                                      168, 176, 184, 192, 200, 208, 216, 224, 232, 240,
                                      248, 256, 320, 400, 504};

static void test_slab_classes_default_layout(void **state)
{
    struct fixture *f = *state;
    struct slab *slab = make_slab(f, 1024 * 1024, 1, 1.25, 48);
    assert_int_equal(slab_class_count(slab), 59);
    for (unsigned i = 0; i < sizeof(default_1m) / sizeof(default_1m[0]); i++)
        assert_int_equal(slab_class_size(slab, i + 1), default_1m[i]);
    assert_int_equal(slab_class_size(slab, 56), 516800);
    assert_int_equal(slab_class_size(slab, 57), 646000);
    assert_int_equal(slab_class_size(slab, 58), 807504);
    assert_int_equal(slab_class_size(slab, 59), 1024 * 1024); /* last = one page */
    assert_int_equal(slab_class_size(slab, 60), 0);
    assert_int_equal(slab_class_size(slab, 0), 0);
}

/* Regression: a 150-byte item (a 10-byte key and a 100-byte value) takes a
 * 152-byte chunk, not memcached's 184 at -f 1.25. */
static void test_slab_small_items_waste_under_8_bytes(void **state)
{
    struct fixture *f = *state;
    struct slab *slab = make_slab(f, 1024 * 1024, 1, 1.25, 48);
    assert_int_equal(slab_class_size(slab, slab_clsid(slab, 150)), 152);
    for (size_t total = 88; total <= 256; total++) {
        uint32_t chunk = slab_class_size(slab, slab_clsid(slab, total));
        assert_true(chunk >= total && chunk - total < 8);
    }
}

static void test_slab_classes_follow_chunk_min_and_factor(void **state)
{
    struct fixture *f = *state;
    /* -n 100: 8-byte steps from 144 to 256, then -f 2 doubles. */
    static const uint32_t want[] = {144,  152,  160,  168,   176,   184,   192,   200,    208,
                                    216,  224,  232,  240,   248,   256,   512,   1024,   2048,
                                    4096, 8192, 16384, 32768, 65536, 131072, 262144, 1048576};
    struct slab *slab = make_slab(f, 1024 * 1024, 1, 2.0, 100);
    assert_int_equal(slab_class_count(slab), 26);
    for (unsigned i = 0; i < 26; i++)
        assert_int_equal(slab_class_size(slab, i + 1), want[i]);

    /* A tiny factor keeps 8-byte steps past 256 and stops at 63 classes. */
    slab = make_slab(f, 1024 * 1024, 1, 1.01, 48);
    assert_int_equal(slab_class_count(slab), 63);
    assert_int_equal(slab_class_size(slab, 1), 88);
    assert_int_equal(slab_class_size(slab, 23), 264);
    assert_int_equal(slab_class_size(slab, 62), 576);
    assert_int_equal(slab_class_size(slab, 63), 1024 * 1024);

    /* A small page: 88 and 96 are below 128 / 1.25, 104 is not. */
    slab = make_slab(f, 128, 4, 1.25, 48);
    assert_int_equal(slab_class_count(slab), 3);
    assert_int_equal(slab_class_size(slab, 1), 88);
    assert_int_equal(slab_class_size(slab, 2), 96);
    assert_int_equal(slab_class_size(slab, 3), 128);
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
    assert_ptr_equal((char *)b - (char *)a, slab_class_size(slab, 2));
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
    assert_ptr_equal((char *)d - (char *)c, slab_class_size(slab, 2));
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
    uint32_t per = PAGE / slab_class_size(slab, 3);
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
        cmocka_unit_test_setup_teardown(test_slab_classes_default_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slab_small_items_waste_under_8_bytes, setup, teardown),
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
