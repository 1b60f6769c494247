/*
 * opts.c: parsing corecache-bench's command line (opts.h).
 *
 * OPTS_TABLE expands into an array of descriptors (name, type, offset of the
 * field in struct opts, default text, range). One function per type
 * turns text into a field, and it is used for the defaults too, so a
 * default can never be a value the parser would refuse (a unit test checks
 * that opts_defaults() leaves no option unset).
 *
 * Errors name the option as the user spelled it and the value, say what is
 * wrong, and what is allowed.
 */
#include "opts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRAM "corecache-bench"

enum opt_type {
    TYPE_UINT,
    TYPE_U64,
    TYPE_DOUBLE,
    TYPE_STR,
    TYPE_FLAG,
    TYPE_RATIO,
    TYPE_RANGE,
    TYPE_CPUS,
    TYPE_PROTO,
    TYPE_DIST,
    TYPE_ARRIVAL,
};

struct opt_desc {
    const char *long_name;
    char short_flag;
    enum opt_type type;
    size_t offset;
    const char *def;
    double min;
    double max;
    const char *metavar;
    const char *help;
};

#define OPT_DESC(field, short_flag, long_name, type, def, min, max, metavar, help)                 \
    {long_name, short_flag, TYPE_##type, offsetof(struct opts, field), def, (double)(min),   \
     (double)(max), metavar, help},
static const struct opt_desc descs[] = {OPTS_TABLE(OPT_DESC)};
#undef OPT_DESC
#define NDESCS (sizeof(descs) / sizeof(descs[0]))

static const char *const proto_names[] = {[REQ_TEXT] = "text", [REQ_META] = "meta",
                                          [REQ_BINARY] = "binary"};
static const char *const dist_names[] = {[KEYGEN_UNIFORM] = "uniform", [KEYGEN_ZIPF] = "zipf"};
static const char *const arrival_names[] = {[OPTS_ARRIVAL_FIXED] = "fixed",
                                            [OPTS_ARRIVAL_POISSON] = "poisson"};

const char *opts_proto_str(enum req_proto proto)
{
    return (size_t)proto < 3 ? proto_names[proto] : "unknown";
}

const char *opts_dist_str(enum keygen_dist dist)
{
    return (size_t)dist < 2 ? dist_names[dist] : "unknown";
}

size_t opts_count(void)
{
    return NDESCS;
}

const char *opts_name(size_t i)
{
    return i < NDESCS ? descs[i].long_name : NULL;
}

/* Strict unsigned decimal: digits only, no sign, no blanks, no overflow. */
static bool text_to_u64(const char *s, size_t n, uint64_t *value)
{
    uint64_t v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned digit = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    *value = v;
    return true;
}

static bool in_range(const struct opt_desc *d, double v)
{
    return v >= d->min && v <= d->max;
}

static bool name_to_enum(const char *s, const char *const *names, size_t n, int *value)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *value = (int)i;
            return true;
        }
    }
    return false;
}

static bool parse_cpus(const char *s, struct opts_cpus *cpus)
{
    cpus->count = 0;
    while (*s != '\0') {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        const char *dash = memchr(s, '-', n);
        uint64_t first, last;
        if (dash == NULL) {
            if (!text_to_u64(s, n, &first))
                return false;
            last = first;
        } else if (!text_to_u64(s, (size_t)(dash - s), &first) ||
                   !text_to_u64(dash + 1, n - (size_t)(dash - s) - 1, &last) || first > last) {
            return false;
        }
        if (last >= OPTS_CPUS_MAX || cpus->count + (last - first + 1) > OPTS_CPUS_MAX)
            return false;
        for (uint64_t cpu = first; cpu <= last; cpu++)
            cpus->cpu[cpus->count++] = (uint16_t)cpu;
        if (comma == NULL)
            break;
        s = comma + 1;
        if (*s == '\0')
            return false; /* trailing comma */
    }
    return true;
}

/* What a valid value of each type looks like, for error messages. */
static void describe_allowed(const struct opt_desc *d, char *buf, size_t n)
{
    switch (d->type) {
    case TYPE_UINT:
    case TYPE_U64:
        snprintf(buf, n, "an integer from %.0f to %.0f", d->min, d->max);
        break;
    case TYPE_DOUBLE:
        snprintf(buf, n, "a number from %g to %g", d->min, d->max);
        break;
    case TYPE_RANGE:
        snprintf(buf, n, "N or MIN-MAX, from %.0f to %.0f", d->min, d->max);
        break;
    case TYPE_RATIO:
        snprintf(buf, n, "GET:SET, two integers, not both 0 (e.g. 9:1)");
        break;
    case TYPE_CPUS:
        snprintf(buf, n, "a CPU list such as 1 or 0-3 or 1,3,5-7 (CPUs below %d)", OPTS_CPUS_MAX);
        break;
    case TYPE_PROTO:
        snprintf(buf, n, "text, meta or binary");
        break;
    case TYPE_DIST:
        snprintf(buf, n, "uniform or zipf");
        break;
    case TYPE_ARRIVAL:
        snprintf(buf, n, "fixed or poisson");
        break;
    case TYPE_STR:
    case TYPE_FLAG:
        snprintf(buf, n, "a value");
        break;
    }
}

/* Stores text into option d's field; false if the text is not valid. */
static bool set_value(struct opts *opts, const struct opt_desc *d, const char *text)
{
    void *field = (char *)opts + d->offset;
    uint64_t u;
    int e;
    switch (d->type) {
    case TYPE_UINT:
        if (!text_to_u64(text, strlen(text), &u) || !in_range(d, (double)u))
            return false;
        *(uint32_t *)field = (uint32_t)u;
        return true;
    case TYPE_U64:
        if (!text_to_u64(text, strlen(text), &u) || !in_range(d, (double)u))
            return false;
        *(uint64_t *)field = u;
        return true;
    case TYPE_DOUBLE: {
        char *end;
        double v = strtod(text, &end);
        if (*text == '\0' || *end != '\0' || !isfinite(v) || !in_range(d, v))
            return false;
        *(double *)field = v;
        return true;
    }
    case TYPE_STR:
        *(const char **)field = text;
        return true;
    case TYPE_FLAG:
        *(bool *)field = strcmp(text, "1") == 0;
        return true;
    case TYPE_RATIO: {
        const char *colon = strchr(text, ':');
        uint64_t get, set;
        if (colon == NULL || !text_to_u64(text, (size_t)(colon - text), &get) ||
            !text_to_u64(colon + 1, strlen(colon + 1), &set) || get > UINT32_MAX ||
            set > UINT32_MAX || get + set == 0)
            return false;
        *(struct opts_ratio *)field = (struct opts_ratio){(uint32_t)get, (uint32_t)set};
        return true;
    }
    case TYPE_RANGE: {
        const char *dash = strchr(text, '-');
        uint64_t min, max;
        if (dash == NULL) {
            if (!text_to_u64(text, strlen(text), &min))
                return false;
            max = min;
        } else if (!text_to_u64(text, (size_t)(dash - text), &min) ||
                   !text_to_u64(dash + 1, strlen(dash + 1), &max)) {
            return false;
        }
        if (min > max || !in_range(d, (double)min) || !in_range(d, (double)max))
            return false;
        *(struct opts_range *)field = (struct opts_range){min, max};
        return true;
    }
    case TYPE_CPUS:
        return parse_cpus(text, (struct opts_cpus *)field);
    case TYPE_PROTO:
        if (!name_to_enum(text, proto_names, 3, &e))
            return false;
        *(enum req_proto *)field = (enum req_proto)e;
        return true;
    case TYPE_DIST:
        if (!name_to_enum(text, dist_names, 2, &e))
            return false;
        *(enum keygen_dist *)field = (enum keygen_dist)e;
        return true;
    case TYPE_ARRIVAL:
        if (!name_to_enum(text, arrival_names, 2, &e))
            return false;
        *(enum opts_arrival *)field = (enum opts_arrival)e;
        return true;
    }
    return false;
}

void opts_defaults(struct opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    for (size_t i = 0; i < NDESCS; i++) {
        bool ok = set_value(opts, &descs[i], descs[i].def);
        (void)ok; /* every default is valid: test_opts_defaults_are_valid */
    }
}

/* The cross-option checks, after every option was read. */
static bool check(struct opts *opts, struct sink *err)
{
    if (opts->threads > opts->connections)
        return sink_printf(err, PROGRAM ": --threads %u: more threads than --connections (%u); "
                        "give at least one connection per thread\n",
                   opts->threads, opts->connections),
               false;
    size_t prefix_len = strlen(opts->key_prefix);
    char digits[24];
    size_t ndigits = (size_t)snprintf(digits, sizeof(digits), "%llu",
                                      (unsigned long long)(opts->keys - 1));
    if (prefix_len + ndigits > REQ_KEY_MAX)
        return sink_printf(err, PROGRAM ": --key-prefix: keys would be %zu bytes, longer than memcached's "
                        "%d; use a shorter prefix\n",
                   prefix_len + ndigits, REQ_KEY_MAX),
               false;
    for (const char *p = opts->key_prefix; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return sink_printf(err, PROGRAM ": --key-prefix '%s': keys may not hold spaces or control "
                            "characters\n",
                       opts->key_prefix),
                   false;
    }
    if (opts->prefill_only)
        opts->prefill = true;
    if (opts->duration == 0 && !opts->prefill_only)
        return sink_printf(err, PROGRAM ": --duration 0: nothing would be measured; give a duration in "
                        "seconds (with --requests, the most the run may take)\n"),
               false;
    if (opts->server[0] == '\0')
        return sink_printf(err, PROGRAM ": --server '': give a host name or address\n"), false;
    return true;
}

static bool bad_value(struct sink *err, const struct opt_desc *d, const char *spelled,
                      const char *value)
{
    char allowed[160];
    describe_allowed(d, allowed, sizeof(allowed));
    return sink_printf(err, PROGRAM ": %s %s: invalid value; expected %s\n", spelled, value, allowed);
}

bool opts_parse(struct opts *opts, int argc, char *const argv[], struct sink *err)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] == '\0' || strcmp(arg, "--") == 0) {
            sink_printf(err, PROGRAM ": %s: unexpected argument; every setting is an option (see --help)\n",
                arg);
            return false;
        }
        if (arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
            const struct opt_desc *d = NULL;
            for (size_t k = 0; k < NDESCS; k++) {
                if (strlen(descs[k].long_name) == name_len &&
                    memcmp(descs[k].long_name, name, name_len) == 0)
                    d = &descs[k];
            }
            char spelled[80];
            snprintf(spelled, sizeof(spelled), "--%.*s", (int)name_len, name);
            if (d == NULL) {
                sink_printf(err, PROGRAM ": %s: unknown option (see --help)\n", spelled);
                return false;
            }
            const char *value;
            if (d->type == TYPE_FLAG) {
                if (eq != NULL) {
                    sink_printf(err, PROGRAM ": %s: takes no value\n", spelled);
                    return false;
                }
                value = "1";
            } else if (eq != NULL) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                sink_printf(err, PROGRAM ": %s: missing value; expected %s\n", spelled,
                    d->metavar ? d->metavar : "a value");
                return false;
            }
            if (!set_value(opts, d, value))
                return bad_value(err, d, spelled, value), false;
            continue;
        }
        /* One or more short flags: -q, -qh, -c50, -c 50. */
        for (const char *p = arg + 1; *p != '\0'; p++) {
            const struct opt_desc *d = NULL;
            for (size_t k = 0; k < NDESCS; k++) {
                if (descs[k].short_flag != 0 && descs[k].short_flag == *p)
                    d = &descs[k];
            }
            char spelled[4] = {'-', *p, '\0', '\0'};
            if (d == NULL) {
                sink_printf(err, PROGRAM ": %s: unknown option (see --help)\n", spelled);
                return false;
            }
            if (d->type == TYPE_FLAG) {
                set_value(opts, d, "1");
                continue;
            }
            const char *value;
            if (p[1] != '\0') {
                value = p + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                sink_printf(err, PROGRAM ": %s: missing value; expected %s\n", spelled,
                    d->metavar ? d->metavar : "a value");
                return false;
            }
            if (!set_value(opts, d, value))
                return bad_value(err, d, spelled, value), false;
            break;
        }
    }
    return check(opts, err);
}

bool opts_usage(struct sink *out)
{
    if (!sink_printf(out, "usage: " PROGRAM " [options]\n"
                  "A load generator for memcached-compatible servers: closed loop (keep\n"
                  "--pipeline requests in flight on each connection) or open loop (--rate).\n\n"))
        return false;
    for (size_t i = 0; i < NDESCS; i++) {
        const struct opt_desc *d = &descs[i];
        char left[64];
        int n;
        if (d->short_flag != 0)
            n = snprintf(left, sizeof(left), "  -%c, --%s", d->short_flag, d->long_name);
        else
            n = snprintf(left, sizeof(left), "      --%s", d->long_name);
        if (d->type != TYPE_FLAG && n > 0 && (size_t)n < sizeof(left))
            snprintf(left + n, sizeof(left) - (size_t)n, "=%s", d->metavar);
        bool has_default = d->type != TYPE_FLAG && d->def[0] != '\0';
        if (!sink_printf(out, "%-34s %s%s%s%s\n", left, d->help, has_default ? " (default: " : "",
                 has_default ? d->def : "", has_default ? ")" : ""))
            return false;
    }
    return true;
}

static bool json_string(struct sink *out, const char *s)
{
    if (!sink_puts(out, "\""))
        return false;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        bool ok;
        if (c == '"' || c == '\\')
            ok = sink_printf(out, "\\%c", c);
        else if (c < 0x20)
            ok = sink_printf(out, "\\u%04x", c);
        else
            ok = sink_put(out, s, 1);
        if (!ok)
            return false;
    }
    return sink_puts(out, "\"");
}

bool opts_value_json(const struct opts *opts, size_t i, struct sink *out)
{
    if (i >= NDESCS)
        return false;
    const struct opt_desc *d = &descs[i];
    const void *field = (const char *)opts + d->offset;
    switch (d->type) {
    case TYPE_UINT:
        return sink_printf(out, "%u", *(const uint32_t *)field);
    case TYPE_U64:
        return sink_printf(out, "%llu", (unsigned long long)*(const uint64_t *)field);
    case TYPE_DOUBLE:
        return sink_printf(out, "%.17g", *(const double *)field);
    case TYPE_STR:
        return json_string(out, *(const char *const *)field);
    case TYPE_FLAG:
        return sink_printf(out, "%s", *(const bool *)field ? "true" : "false");
    case TYPE_RATIO: {
        const struct opts_ratio *r = field;
        return sink_printf(out, "\"%u:%u\"", r->get, r->set);
    }
    case TYPE_RANGE: {
        const struct opts_range *r = field;
        return sink_printf(out, "[%llu, %llu]", (unsigned long long)r->min, (unsigned long long)r->max);
    }
    case TYPE_CPUS: {
        const struct opts_cpus *c = field;
        if (!sink_puts(out, "["))
            return false;
        for (uint32_t k = 0; k < c->count; k++) {
            if (!sink_printf(out, "%s%u", k ? ", " : "", c->cpu[k]))
                return false;
        }
        return sink_puts(out, "]");
    }
    case TYPE_PROTO:
        return json_string(out, opts_proto_str(*(const enum req_proto *)field));
    case TYPE_DIST:
        return json_string(out, opts_dist_str(*(const enum keygen_dist *)field));
    case TYPE_ARRIVAL: {
        enum opts_arrival a = *(const enum opts_arrival *)field;
        return json_string(out, (size_t)a < 2 ? arrival_names[a] : "unknown");
    }
    }
    return false;
}
