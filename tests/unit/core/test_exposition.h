/*
 * test_exposition.h: a checker for Prometheus' text exposition format, for
 * unit tests that render metrics (include after cmocka.h).
 *
 * It applies the format's structure and promtool's naming rules, so that a
 * unit test fails where `promtool check metrics` would.
 */
#ifndef CORECACHE_TESTS_TEST_EXPOSITION_H
#define CORECACHE_TESTS_TEST_EXPOSITION_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct exposition_family {
    char name[128];
    char type[32];
};

/* Fails the test unless text is well-formed exposition text: HELP then
 * TYPE before a family's samples, each family declared once and its
 * samples contiguous, sample names of the family (histograms: _bucket,
 * _sum, _count), well-formed labels, numeric values, and promtool's
 * counter naming. Returns the number of samples. */
static inline size_t check_exposition(const char *text)
{
    struct exposition_family fams[512];
    size_t nfams = 0, nsamples = 0;
    const char *cur = NULL; /* family whose samples may follow */
    const char *type = NULL;
    char *copy = strdup(text);
    char *save = NULL;
    assert_true(text[0] == '\0' || text[strlen(text) - 1] == '\n');
    for (char *line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char name[160];
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%159s", name), 1);
            for (size_t i = 0; i < nfams; i++) {
                if (strcmp(fams[i].name, name) == 0)
                    fail_msg("family %s declared twice", name);
            }
            assert_true(nfams < 512);
            snprintf(fams[nfams].name, sizeof(fams[nfams].name), "%s", name);
            fams[nfams].type[0] = '\0';
            nfams++;
            cur = NULL;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char t[16];
            assert_int_equal(sscanf(line + 7, "%159s %15s", name, t), 2);
            assert_true(nfams > 0);
            assert_string_equal(fams[nfams - 1].name, name); /* HELP, then TYPE */
            assert_true(strcmp(t, "counter") == 0 || strcmp(t, "gauge") == 0 || strcmp(t, "histogram") == 0);
            snprintf(fams[nfams - 1].type, sizeof(fams[nfams - 1].type), "%s", t);
            size_t n = strlen(name);
            bool total = n > 6 && strcmp(name + n - 6, "_total") == 0;
            if ((strcmp(t, "counter") == 0) != total)
                fail_msg("%s %s: only counters may (and must) end in _total", t, name);
            cur = fams[nfams - 1].name;
            type = fams[nfams - 1].type;
            continue;
        }
        assert_true(line[0] != '#');
        if (cur == NULL)
            fail_msg("sample before its family's # TYPE: %s", line);
        /* name{labels} value */
        size_t n = strcspn(line, "{ ");
        assert_true(n < sizeof(name));
        memcpy(name, line, n);
        name[n] = '\0';
        size_t fl = strlen(cur);
        bool ok = strcmp(name, cur) == 0;
        if (!ok && strcmp(type, "histogram") == 0 && strncmp(name, cur, fl) == 0)
            ok = strcmp(name + fl, "_bucket") == 0 || strcmp(name + fl, "_sum") == 0 ||
                 strcmp(name + fl, "_count") == 0;
        if (!ok)
            fail_msg("sample %s is not of family %s", name, cur);
        const char *p = line + n;
        if (*p == '{') {
            p++;
            while (*p != '}') {
                size_t k = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
                assert_true(k > 0);
                p += k;
                assert_true(p[0] == '=' && p[1] == '"');
                p += 2;
                while (*p != '"') {
                    assert_true(*p != '\0');
                    p += *p == '\\' ? 2 : 1;
                }
                p++;
                if (*p == ',')
                    p++;
                else
                    assert_true(*p == '}');
            }
            p++;
        }
        assert_true(*p == ' ');
        char *end;
        if (strcmp(p + 1, "+Inf") != 0) {
            strtod(p + 1, &end);
            if (*end != '\0' || end == p + 1)
                fail_msg("value of %s is not a number: %s", name, p + 1);
        }
        nsamples++;
    }
    free(copy);
    return nsamples;
}

#endif
