/*
 * test_prefix.c: memcached's per-prefix stats (core/prefix.c), the counts
 * t/stats-detail.t reads (issue 12).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "prefix.h"
#include "test_sink.h"

static char *dump(struct prefix_table *t)
{
    struct test_sink out;
    test_sink_init(&out, 16);
    assert_true(prefix_render(t, &out.sink));
    char *text = test_sink_text(&out);
    test_sink_fini(&out);
    return text;
}

static void expect_dump(struct prefix_table *t, const char *want)
{
    char *text = dump(t);
    assert_string_equal(text, want);
    free(text);
}

/* The sequence of t/stats-detail.t, memcached 1.6.18's answers. */
static void test_issue12_stats_detail(void **state)
{
    (void)state;
    struct prefix_table *t = prefix_create(':');
    assert_non_null(t);
    expect_dump(t, "END\r\n");
    assert_true(prefix_record(t, "foo:123", 7, PREFIX_SET, false));
    expect_dump(t, "PREFIX foo get 0 hit 0 set 1 del 0\r\nEND\r\n");
    assert_true(prefix_record(t, "foo:123", 7, PREFIX_GET, true));
    expect_dump(t, "PREFIX foo get 1 hit 1 set 1 del 0\r\nEND\r\n");
    assert_true(prefix_record(t, "foo:124", 7, PREFIX_GET, false));
    expect_dump(t, "PREFIX foo get 2 hit 1 set 1 del 0\r\nEND\r\n");
    assert_true(prefix_record(t, "foo:125", 7, PREFIX_DELETE, false));
    expect_dump(t, "PREFIX foo get 2 hit 1 set 1 del 1\r\nEND\r\n");
    prefix_clear(t);
    expect_dump(t, "END\r\n");
    prefix_destroy(&t);
    assert_null(t);
}

/* No delimiter, no prefix: not counted. Distinct prefixes, distinct lines;
 * the prefix is only what precedes the first delimiter. */
static void test_prefix_keys_and_delimiters(void **state)
{
    (void)state;
    struct prefix_table *t = prefix_create('/');
    assert_false(prefix_record(t, "foo:1", 5, PREFIX_GET, true));
    expect_dump(t, "END\r\n");
    assert_true(prefix_record(t, "a/b/c", 5, PREFIX_SET, false));
    assert_true(prefix_record(t, "b/x", 3, PREFIX_SET, false));
    assert_true(prefix_record(t, "/x", 2, PREFIX_SET, false)); /* empty prefix, as memcached */
    char *text = dump(t);
    assert_non_null(strstr(text, "PREFIX a get 0 hit 0 set 1 del 0\r\n"));
    assert_non_null(strstr(text, "PREFIX b get 0 hit 0 set 1 del 0\r\n"));
    assert_non_null(strstr(text, "PREFIX  get 0 hit 0 set 1 del 0\r\n"));
    assert_int_equal(strlen(text) - 5, (size_t)(strstr(text, "END\r\n") - text));
    free(text);
    prefix_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue12_stats_detail),
        cmocka_unit_test(test_prefix_keys_and_delimiters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
