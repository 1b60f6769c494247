/*
 * metrics.c: generic operations over X-macro metric tables (metrics.h).
 *
 * Tables are plain arrays of uint64_t described by a metric_desc array, so
 * summing shard snapshots, resetting counters and rendering memcached's
 * "STAT <name> <value>" lines is written once here for every module. The
 * Prometheus side of the same tables is prom.c.
 */
#include "metrics.h"

#include <string.h>

void metrics_sum(uint64_t *acc, const uint64_t *add, const struct metric_desc *desc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (desc[i].type == METRIC_LEVEL)
            acc[i] = add[i] > acc[i] ? add[i] : acc[i];
        else
            acc[i] += add[i];
    }
}

void metrics_reset(uint64_t *values, const struct metric_desc *desc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (desc[i].type == METRIC_COUNTER)
            values[i] = 0;
    }
}

/* Decimal digits of v (1 for 0). */
static size_t u64_digits(uint64_t v)
{
    size_t n = 1;
    for (;;) {
        if (v < 10)
            return n;
        if (v < 100)
            return n + 1;
        if (v < 1000)
            return n + 2;
        if (v < 10000)
            return n + 3;
        v /= 10000;
        n += 4;
    }
}

/*
 * Writes two digits per step from the end, from a 200-byte table: every
 * VALUE line has two or three numbers, so this is on the hot path, and one
 * division per two digits is about half the work of one per digit.
 */
size_t metrics_u64toa(uint64_t v, char *p)
{
    static const char pairs[201] = "00010203040506070809"
                                   "10111213141516171819"
                                   "20212223242526272829"
                                   "30313233343536373839"
                                   "40414243444546474849"
                                   "50515253545556575859"
                                   "60616263646566676869"
                                   "70717273747576777879"
                                   "80818283848586878889"
                                   "90919293949596979899";
    size_t n = u64_digits(v);
    char *q = p + n;
    while (v >= 100) {
        unsigned i = (unsigned)(v % 100) * 2;
        v /= 100;
        *--q = pairs[i + 1];
        *--q = pairs[i];
    }
    if (v >= 10) {
        *--q = pairs[v * 2 + 1];
        *--q = pairs[v * 2];
    } else {
        *--q = (char)('0' + v);
    }
    return n;
}

static bool stat_line(struct sink *out, const char *prefix, const char *name, const char *value,
                      size_t nvalue)
{
    size_t nprefix = strlen(prefix), nname = strlen(name);
    size_t need = 5 + nprefix + nname + 1 + nvalue + 2;
    char *p = sink_reserve(out, need);
    if (p == NULL)
        return false;
    char *start = p;
    memcpy(p, "STAT ", 5);
    p += 5;
    memcpy(p, prefix, nprefix);
    p += nprefix;
    memcpy(p, name, nname);
    p += nname;
    *p++ = ' ';
    memcpy(p, value, nvalue);
    p += nvalue;
    *p++ = '\r';
    *p++ = '\n';
    sink_commit(out, (size_t)(p - start));
    return true;
}

size_t metrics_usec_format(uint64_t usec, char *p)
{
    size_t n = metrics_u64toa(usec / 1000000, p);
    uint64_t frac = usec % 1000000;
    p[n++] = '.';
    for (uint64_t div = 100000; div > 0; div /= 10)
        p[n++] = (char)('0' + frac / div % 10);
    return n;
}

size_t metrics_find(const struct metric_desc *desc, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(desc[i].name, name) == 0)
            return i;
    }
    return n;
}

const char *metrics_type_name(enum metric_type type)
{
    switch (type) {
    case METRIC_COUNTER:
        return "counter";
    case METRIC_GAUGE:
        return "gauge";
    case METRIC_LEVEL:
        return "level";
    case METRIC_USEC:
        return "usec";
    }
    return "unknown";
}

bool metrics_render_stats(struct sink *out, const char *prefix, const struct metric_desc *desc,
                          const uint64_t *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char num[32];
        size_t len = desc[i].type == METRIC_USEC ? metrics_usec_format(values[i], num)
                                                 : metrics_u64toa(values[i], num);
        if (!stat_line(out, prefix, desc[i].name, num, len))
            return false;
    }
    return true;
}

bool metrics_stat_u64(struct sink *out, const char *name, uint64_t value)
{
    char num[20];
    size_t len = metrics_u64toa(value, num);
    return stat_line(out, "", name, num, len);
}

bool metrics_stat_str(struct sink *out, const char *name, const char *value)
{
    return stat_line(out, "", name, value, strlen(value));
}
