/*
 * prefix.c: per-prefix counters, memcached's stats_prefix.c (see prefix.h).
 *
 * A chained hash table of 256 buckets (memcached's PREFIX_HASH_SIZE), one
 * malloc'd node per prefix, new prefixes at the head of their bucket.
 * Nothing is allocated for keys of a prefix already seen, and nothing at
 * all unless `stats detail on` or -D turned counting on, which is why this
 * is allowed to malloc: it is off the default request path. The number of
 * prefixes is capped (PREFIX_MAX): past it, new prefixes are not counted,
 * so that a client writing random prefixes cannot grow it without bound.
 *
 * Output order is bucket order, newest first within a bucket, as memcached.
 */
#include "prefix.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX_BUCKETS 256
#define PREFIX_MAX 65536

struct prefix_node {
    struct prefix_node *next;
    uint64_t gets, hits, sets, deletes;
    size_t len;
    char name[]; /* len bytes, no NUL */
};

struct prefix_table {
    char delimiter;
    size_t count;
    struct prefix_node *buckets[PREFIX_BUCKETS];
};

struct prefix_table *prefix_create(char delimiter)
{
    struct prefix_table *table = calloc(1, sizeof(*table));
    if (table != NULL)
        table->delimiter = delimiter;
    return table;
}

void prefix_clear(struct prefix_table *table)
{
    for (size_t i = 0; i < PREFIX_BUCKETS; i++) {
        struct prefix_node *node = table->buckets[i];
        while (node != NULL) {
            struct prefix_node *next = node->next;
            free(node);
            node = next;
        }
        table->buckets[i] = NULL;
    }
    table->count = 0;
}

void prefix_destroy(struct prefix_table **table)
{
    if (*table == NULL)
        return;
    prefix_clear(*table);
    free(*table);
    *table = NULL;
}

/* FNV-1a: prefixes are short and this table is off the hot path. */
static size_t bucket_of(const char *name, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    return h % PREFIX_BUCKETS;
}

bool prefix_record(struct prefix_table *table, const char *key, size_t nkey, enum prefix_op op, bool hit)
{
    const char *end = memchr(key, table->delimiter, nkey);
    if (end == NULL)
        return false;
    size_t len = (size_t)(end - key);
    size_t b = bucket_of(key, len);
    struct prefix_node *node = table->buckets[b];
    while (node != NULL && (node->len != len || memcmp(node->name, key, len) != 0))
        node = node->next;
    if (node == NULL) {
        if (table->count >= PREFIX_MAX || (node = calloc(1, sizeof(*node) + len)) == NULL)
            return false;
        node->len = len;
        memcpy(node->name, key, len);
        node->next = table->buckets[b];
        table->buckets[b] = node;
        table->count++;
    }
    switch (op) {
    case PREFIX_GET:
        node->gets++;
        node->hits += hit;
        break;
    case PREFIX_SET:
        node->sets++;
        break;
    case PREFIX_DELETE:
        node->deletes++;
        break;
    }
    return true;
}

bool prefix_render(const struct prefix_table *table, struct sink *out)
{
    for (size_t i = 0; i < PREFIX_BUCKETS; i++) {
        for (const struct prefix_node *node = table->buckets[i]; node != NULL; node = node->next) {
            char counts[128];
            int n = snprintf(counts, sizeof(counts),
                             " get %" PRIu64 " hit %" PRIu64 " set %" PRIu64 " del %" PRIu64 "\r\n",
                             node->gets, node->hits, node->sets, node->deletes);
            if (!sink_puts(out, "PREFIX ") || !sink_put(out, node->name, node->len) ||
                !sink_put(out, counts, (size_t)n))
                return false;
        }
    }
    return sink_puts(out, "END\r\n");
}
