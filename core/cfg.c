/*
 * cfg.c: the command line, generated from the one CFG_OPTIONS table.
 *
 * Everything about an option is derived from its row in cfg.h: its field in
 * struct cfg and its default (cfg_defaults), how it is spelled and parsed
 * (cfg_parse), its -h line (cfg_usage) and its `stats settings` value
 * (cfg_render_settings). Three small tables in this file add what the row
 * cannot say: the accepted range of each numeric option (CFG_LIMITS,
 * CFG_DOUBLE_LIMITS) and memcached's stat name for the options memcached
 * reports (CFG_SETTINGS), and the memcached options corecache accepts
 * without their mechanism, each with the reason (CFG_INERT). Adding an
 * option means adding one row to cfg.h and, if it is numeric, one limit
 * row here.
 *
 * The parser is our own, not getopt(3): getopt keeps its position in
 * globals (optind, optarg), which core/ may not have, and it permutes argv.
 * It accepts what memcached users type:
 *
 *   -v -v, -vv, -vA          short flags, bundled
 *   -p 11211, -p11211        short option, argument separate or attached
 *   -Mp11211                 flags bundled before an option taking the rest
 *   --port 11211, --port=11211
 *   --                       ends options (nothing may follow: corecache
 *                            takes no operands)
 *   -o a,b=1                 memcached's extended options: each name is
 *                            another option's long name with '_' for '-'
 *                            (EXT type; values copied into cfg->ext_buf)
 *
 * Long names must be spelled out in full (getopt_long's unique-prefix
 * matching is not supported: a prefix that is unique today becomes
 * ambiguous when an option is added, and scripts break).
 *
 * Numbers are parsed strictly: decimal digits only (no sign, no spaces, no
 * trailing junk), overflow detected; SIZE takes one k/m/g suffix (either
 * case, powers of 1024). A value outside its range is refused with a
 * message that names the flag as the user spelled it and the value as the
 * user wrote it, and says what would be accepted.
 *
 * Invariants: cfg_parse() either fills the whole struct cfg and returns
 * true, or leaves it untouched and writes exactly one error line. STR
 * fields point into argv (which the caller keeps alive); nothing is
 * allocated. When an option is repeated the last value wins (COUNT options
 * count instead), so -l takes one address per run; a list is one argument.
 */
#include "cfg.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

enum cfg_type {
    CFG_TYPE_UINT,
    CFG_TYPE_SIZE,
    CFG_TYPE_MEGS,
    CFG_TYPE_DOUBLE,
    CFG_TYPE_STR,
    CFG_TYPE_FLAG,
    CFG_TYPE_COUNT,
    CFG_TYPE_EXT,
};

/* One id per table row, in table order: CFG_OPT_port, CFG_OPT_udp_port, ... */
#define CFG_OPTION_ID(field, short_flag, long_name, type, def, metavar, help) CFG_OPT_##field,
enum cfg_option_id { CFG_OPTIONS(CFG_OPTION_ID) CFG_NOPTIONS };
#undef CFG_OPTION_ID

struct cfg_option {
    char short_flag;       /* 0: long name only */
    const char *long_name; /* without the leading "--" */
    enum cfg_type type;
    size_t offset;         /* of the field in struct cfg */
    const char *metavar;   /* "num" for "<num>"; NULL for FLAG and COUNT */
    const char *help;
};

#define CFG_OPTION_DESC(field, short_flag, long_name, type, def, metavar, help)                  \
    [CFG_OPT_##field] = {short_flag, long_name, CFG_TYPE_##type, offsetof(struct cfg, field),    \
                         metavar, help},
static const struct cfg_option cfg_option_table[CFG_NOPTIONS] = {CFG_OPTIONS(CFG_OPTION_DESC)};
#undef CFG_OPTION_DESC

/*
 * CFG_LIMITS: the accepted range of each integer option, in the unit the
 * user writes (megabytes for MEGS, bytes after the suffix for SIZE), and
 * what to say about a value below or above it. Bounds follow memcached's
 * checks; where memcached has none (it takes atoi() of anything), the bound
 * is what the value is used for: listen(2)'s int backlog, the ring's 1024
 * shards, a memory limit that cannot overflow a byte count.
 *
 * ACTION(field, min, max, below, above)
 */
#define CFG_LIMITS(ACTION) \
    ACTION(port, 1, 65535, "port must be between 1 and 65535",                                    \
           "port must be between 1 and 65535")                                                   \
    ACTION(udp_port, 0, 65535, "", "port must be between 0 and 65535")                          \
    ACTION(metrics_port, 0, 65535, "port must be between 1 and 65535, or 0 (off)",                \
           "port must be between 1 and 65535, or 0 (off)")                                       \
    ACTION(memory_limit, 1, UINT64_C(1) << 30, "memory limit must be at least 1 (megabytes)",    \
           "memory limit must be at most 1073741824 (megabytes)")                                \
    ACTION(conn_limit, 1, INT32_MAX, "connection limit must be at least 1",                      \
           "connection limit must be at most 2147483647")                                        \
    ACTION(slab_min_size, 1, UINT32_MAX, "slab minimum size must be at least 1 (bytes)",         \
           "slab minimum size must be at most 4294967295 (bytes)")                               \
    ACTION(threads, 0, 1024, "threads must be between 0 (one per CPU) and 1024",                 \
           "threads must be between 0 (one per CPU) and 1024")                                   \
    ACTION(listen_backlog, 1, INT32_MAX, "listen backlog must be at least 1",                    \
           "listen backlog must be at most 2147483647") \
    ACTION(item_size_max, 1024, UINT64_C(1) << 30, "max item size must be between 1k and 1024m", \
           "max item size must be between 1k and 1024m") \
    ACTION(default_ttl, 0, INT32_MAX, "", "default TTL must be at most 2147483647 (seconds)")   \
    ACTION(max_ttl, 0, INT32_MAX, "", "max TTL must be at most 2147483647 (seconds)")             \
    ACTION(ssl_keyformat, 1, 2, "key format must be 1 (PEM) or 2 (DER)",                          \
           "key format must be 1 (PEM) or 2 (DER)") \
    ACTION(ssl_wbuf_size, 1, 1024 * 1024, "write buffer size must be at least 1 (kilobytes)",     \
           "write buffer size must be at most 1048576 (kilobytes)")                              \
    ACTION(ssl_verify_mode, 0, 3, "", "verify mode must be 0 (none), 1 (request), 2 (require) or 3 (once)") \
    ACTION(ssl_min_version, 0, 3, "",                                                             \
           "minimum version must be 0 (tlsv1.0), 1 (tlsv1.1), 2 (tlsv1.2) or 3 (tlsv1.3)")             \
    ACTION(conn_memory, 0, UINT64_C(1) << 30, "", "connection memory must be at most 1073741824 (megabytes)") \
    ACTION(metrics_idle_timeout, 1, 86400, "the idle timeout must be at least 1 (seconds)",      \
           "the idle timeout must be at most 86400 (seconds)")                                   \
    ACTION(recv_buffers, 1, 32768, "receive buffers must be between 1 and 32768",               \
           "receive buffers must be between 1 and 32768")                                        \
    ACTION(uring_cq_entries, 16, 65536, "completion queue entries must be between 16 and 65536", \
           "completion queue entries must be between 16 and 65536")                                   \
    CFG_MEMCACHED_LIMITS(ACTION)

/* memcached's own checks of its -o suboptions and -R, in its words. */
#define CFG_MEMCACHED_LIMITS(ACTION)                                                             \
    ACTION(reqs_per_event, 1, INT32_MAX, "Number of requests per event must be greater than 0", \
           "Number of requests per event must be at most 2147483647")                          \
    ACTION(hashpower, 12, 32, "Initial hashtable multiplier is too low (12 to 32)",              \
           "Initial hashtable multiplier is too high (12 to 32); choose a value based on "      \
           "\"STAT hash_power_level\" from a running instance")                                  \
    ACTION(slab_automove, 0, 2, "", "slab_automove must be between 0 and 2")                     \
    ACTION(slab_automove_window, 3, INT32_MAX, "slab_automove_window must be > 2",               \
           "slab_automove_window must be at most 2147483647")                                    \
    ACTION(tail_repair_time, 10, INT32_MAX, "Cannot set tail_repair_time to less than 10 seconds", \
           "tail_repair_time must be at most 2147483647")                                        \
    ACTION(lru_crawler_sleep, 0, 1000000, "", "LRU crawler sleep must be between 0 and 1 second") \
    ACTION(hot_lru_pct, 2, 79, "hot_lru_pct must be > 1 and < 80", "hot_lru_pct must be > 1 and < 80") \
    ACTION(warm_lru_pct, 2, 79, "warm_lru_pct must be > 1 and < 80",                              \
           "warm_lru_pct must be > 1 and < 80")                                                  \
    ACTION(temporary_ttl, 0, INT32_MAX, "", "temporary_ttl must be at most 2147483647")

struct cfg_limit {
    bool set;
    uint64_t min, max;
    const char *below, *above;
};

#define CFG_LIMIT_ROW(field, min, max, below, above) [CFG_OPT_##field] = {true, min, max, below, above},
static const struct cfg_limit cfg_limit_table[CFG_NOPTIONS] = {CFG_LIMITS(CFG_LIMIT_ROW)};
#undef CFG_LIMIT_ROW

/*
 * CFG_DOUBLE_LIMITS: DOUBLE options must be finite and strictly greater
 * than a bound (memcached: "Factor must be greater than 1").
 *
 * ACTION(field, exclusive minimum, message)
 */
#define CFG_DOUBLE_LIMITS(ACTION)                                                                \
    ACTION(growth_factor, 1.0, "growth factor must be greater than 1")                           \
    ACTION(slab_automove_ratio, 0.0, "slab_automove_ratio must be > 0 and < 1")                  \
    ACTION(hot_max_factor, 0.0, "hot_max_factor must be > 0")                                    \
    ACTION(warm_max_factor, 0.0, "warm_max_factor must be > 0")

struct cfg_double_limit {
    bool set;
    double above;
    const char *message;
};

#define CFG_DOUBLE_LIMIT_ROW(field, above, message) [CFG_OPT_##field] = {true, above, message},
static const struct cfg_double_limit cfg_double_limit_table[CFG_NOPTIONS] = {
    CFG_DOUBLE_LIMITS(CFG_DOUBLE_LIMIT_ROW)};
#undef CFG_DOUBLE_LIMIT_ROW

/*
 * CFG_SETTINGS: the options memcached reports in `stats settings`, under
 * memcached's names and in memcached's order. For FLAG options the two
 * words say how true and false read (memcached reports -M as
 * "evictions off", not "disable_evictions yes").
 *
 * ACTION(field, stat name, word when true, word when false)
 * (for a STR option, "word when false" is what an unset one reads as;
 * NULL: "NULL")
 */
#define CFG_SETTINGS(ACTION) \
    ACTION(memory_limit, "maxbytes", NULL, NULL) \
    ACTION(conn_limit, "maxconns", NULL, NULL) \
    ACTION(port, "tcpport", NULL, NULL) \
    ACTION(udp_port, "udpport", NULL, NULL) \
    ACTION(listen, "inter", NULL, NULL) \
    ACTION(verbose, "verbosity", NULL, NULL) \
    ACTION(disable_evictions, "evictions", "off", "on") \
    ACTION(enable_shutdown, "shutdown_command", "yes", "no")                                     \
    ACTION(growth_factor, "growth_factor", NULL, NULL) \
    ACTION(slab_min_size, "chunk_size", NULL, NULL) \
    ACTION(threads, "num_threads", NULL, NULL) \
    ACTION(disable_cas, "cas_enabled", "no", "yes") \
    ACTION(listen_backlog, "tcp_backlog", NULL, NULL) \
    ACTION(item_size_max, "item_size_max", NULL, NULL) \
    ACTION(default_ttl, "default_ttl", NULL, NULL) \
    ACTION(max_ttl, "max_ttl", NULL, NULL) \
    ACTION(enable_sasl, "auth_enabled_sasl", "yes", "no")                                        \
    ACTION(auth_file, "auth_enabled_ascii", NULL, "no") \
    ACTION(io_backend, "io_backend", NULL, NULL) /* corecache's: the backend that runs */ \
    ACTION(memory_file, "memory_file", NULL, "(null)") /* issue 14: as memcached prints -e */

struct cfg_setting {
    enum cfg_option_id id;
    const char *stat_name;
    const char *when_true, *when_false;
};

#define CFG_SETTING_ROW(field, stat_name, when_true, when_false)                                 \
    {CFG_OPT_##field, stat_name, when_true, when_false},
static const struct cfg_setting cfg_setting_table[] = {CFG_SETTINGS(CFG_SETTING_ROW)};
#undef CFG_SETTING_ROW

/*
 * CFG_INERT: memcached options whose mechanism corecache does not have
 * (an option of memcached's engine, or a command corecache lacks). They are
 * accepted, their values checked, and cfg_render_inert names each one given
 * once at start-up with this reason. An option leaves this table when
 * corecache gains what it controls.
 *
 * ACTION(field, reason)
 */
#define NO_SLAB_MOVES "corecache's arena has no slab page reassignment between size classes"
#define NO_CRAWLER "corecache has no LRU crawler thread; an expired item is reclaimed when it is met"
#define NO_SEGMENTED_LRU "corecache's eviction has no hot/warm/cold segmented LRU to tune"
#define NO_SANDBOX "corecache has no privilege sandbox; -u alone sets its identity"
#define CFG_INERT(ACTION)                                                                        \
    ACTION(napi_ids, "corecache does not group connections by NAPI id (see --accept-by-cpu)")   \
    ACTION(enable_largepages, "corecache's arenas are not placed on huge pages by this flag")   \
    ACTION(maxconns_fast, "corecache's behaviour at the -c limit is fixed")                     \
    ACTION(no_maxconns_fast, "corecache's behaviour at the -c limit is fixed")                  \
    ACTION(no_hashexpand, "corecache's hash tables are sized per shard and grow by themselves") \
    ACTION(slab_reassign, NO_SLAB_MOVES)                                                         \
    ACTION(no_slab_reassign, NO_SLAB_MOVES)                                                      \
    ACTION(no_slab_automove, NO_SLAB_MOVES)                                                      \
    ACTION(slab_automove_ratio, NO_SLAB_MOVES)                                                   \
    ACTION(slab_automove_window, NO_SLAB_MOVES)                                                  \
    ACTION(tail_repair_time, "corecache's items hold no reference counts that could leak")      \
    ACTION(hash_algorithm, "corecache hashes keys with xxhash (XXH3) for routing and lookup")   \
    ACTION(lru_crawler, NO_CRAWLER)                                                              \
    ACTION(no_lru_crawler, NO_CRAWLER)                                                           \
    ACTION(lru_crawler_sleep, NO_CRAWLER)                                                        \
    ACTION(lru_crawler_tocrawl, NO_CRAWLER)                                                      \
    ACTION(lru_maintainer, NO_SEGMENTED_LRU)                                                     \
    ACTION(no_lru_maintainer, NO_SEGMENTED_LRU)                                                  \
    ACTION(hot_lru_pct, NO_SEGMENTED_LRU)                                                        \
    ACTION(warm_lru_pct, NO_SEGMENTED_LRU)                                                       \
    ACTION(hot_max_factor, NO_SEGMENTED_LRU)                                                     \
    ACTION(warm_max_factor, NO_SEGMENTED_LRU)                                                    \
    ACTION(temporary_ttl, NO_SEGMENTED_LRU)                                                      \
    ACTION(worker_logbuf_size, "corecache's shards write log lines straight into each watcher's buffer") \
    ACTION(slab_sizes, "corecache's size classes come from -n and -f")                          \
    ACTION(slab_chunk_max, "corecache stores an item in one chunk up to -I; there are no chunked items") \
    ACTION(no_chunked_items, "corecache stores an item in one chunk up to -I; there are no chunked items") \
    ACTION(track_sizes, "corecache has no stats sizes histogram")                                \
    ACTION(no_inline_ascii_resp, "memcached 1.6 ignores it too")                                 \
    ACTION(inline_ascii_resp, "memcached 1.6 ignores it too")                                    \
    ACTION(modern, "memcached 1.6.18's modern enables nothing either")                           \
    ACTION(no_modern, "corecache has no 1.4-era defaults to return to")                          \
    ACTION(drop_privileges, NO_SANDBOX)                                                          \
    ACTION(no_drop_privileges, NO_SANDBOX)                                                       \
    ACTION(relaxed_privileges, NO_SANDBOX)                                                       \
    ACTION(resp_obj_mem_limit, "corecache's connection buffers come from each shard's fixed receive ring") \
    ACTION(read_buf_mem_limit, "corecache's connection buffers come from each shard's fixed receive ring")

struct cfg_inert {
    enum cfg_option_id id;
    const char *reason;
};

#define CFG_INERT_ROW(field, reason) {CFG_OPT_##field, reason},
static const struct cfg_inert cfg_inert_table[] = {CFG_INERT(CFG_INERT_ROW)};
#undef CFG_INERT_ROW

/* Defaults by type: MEGS defaults are written in megabytes, held in bytes. */
#define CFG_DEFAULT_UINT(def) (def)
#define CFG_DEFAULT_SIZE(def) ((uint64_t)(def))
#define CFG_DEFAULT_MEGS(def) ((uint64_t)(def) << 20)
#define CFG_DEFAULT_DOUBLE(def) (def)
#define CFG_DEFAULT_STR(def) (def)
#define CFG_DEFAULT_FLAG(def) (def)
#define CFG_DEFAULT_COUNT(def) (def)
#define CFG_DEFAULT_EXT(def) (def)

void cfg_defaults(struct cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
#define CFG_SET_DEFAULT(field, short_flag, long_name, type, def, metavar, help)                  \
    cfg->field = CFG_DEFAULT_##type(def);
    CFG_OPTIONS(CFG_SET_DEFAULT)
#undef CFG_SET_DEFAULT
}

/* Typed access to a field through the option table. */
#define CFG_FIELD_PTR(cfg, opt, ctype) ((ctype *)(void *)((char *)(cfg) + (opt)->offset))
#define CFG_FIELD_VAL(cfg, opt, ctype) (*(const ctype *)(const void *)((const char *)(cfg) + (opt)->offset))

static bool takes_argument(enum cfg_type type)
{
    /* EXT takes one too (the list) */
    return type != CFG_TYPE_FLAG && type != CFG_TYPE_COUNT;
}

/* ---- error lines ------------------------------------------------------ */

/* Error lines are assembled piecewise because the pieces are user input of
 * any length; a full sink only loses the message, never the verdict. */
static void err_mem(struct sink *err, const char *text, size_t len)
{
    (void)sink_put(err, text, len);
}

static void err_str(struct sink *err, const char *text)
{
    err_mem(err, text, strlen(text));
}

/* A value as the user wrote it; an empty one shows as ''. */
static void err_value(struct sink *err, const char *value)
{
    err_str(err, value[0] == '\0' ? "''" : value);
}

/* "corecache: <flag> <value>: <message>\n" */
static void err_flag_value(struct sink *err, const char *flag, const char *value,
                           const char *message)
{
    err_str(err, "corecache: ");
    err_str(err, flag);
    err_str(err, " ");
    err_value(err, value);
    err_str(err, ": ");
    err_str(err, message);
    err_str(err, "\n");
}

/* ---- numbers ---------------------------------------------------------- */

enum cfg_num { CFG_NUM_OK, CFG_NUM_BAD, CFG_NUM_BIG };

/* Decimal digits only, at least one. Keeps scanning past an overflow so
 * that "99999999999999999999x" is reported as junk, not as too large. */
static enum cfg_num parse_digits(const char *text, size_t len, uint64_t *out)
{
    uint64_t value = 0;
    bool big = false;
    if (len == 0)
        return CFG_NUM_BAD;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return CFG_NUM_BAD;
        unsigned digit = (unsigned)(text[i] - '0');
        if (value > (UINT64_MAX - digit) / 10)
            big = true;
        else
            value = value * 10 + digit;
    }
    if (big)
        return CFG_NUM_BIG;
    *out = value;
    return CFG_NUM_OK;
}

/* Digits with an optional k/m/g (any case) suffix, in powers of 1024. */
static enum cfg_num parse_size(const char *text, uint64_t *out)
{
    size_t len = strlen(text);
    unsigned shift = 0;
    if (len > 0) {
        switch (text[len - 1]) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: break;
        }
    }
    if (shift != 0)
        len--;
    uint64_t value;
    enum cfg_num result = parse_digits(text, len, &value);
    if (result != CFG_NUM_OK)
        return result;
    if (value > (UINT64_MAX >> shift))
        return CFG_NUM_BIG;
    *out = value << shift;
    return CFG_NUM_OK;
}

/* A plain decimal fraction ("1.25", "2", "1e1", "-1"): strtod() alone would
 * also take " 1", "inf", "nan" and hex floats, so the characters are
 * checked first and the whole text must be consumed. */
static enum cfg_num parse_double(const char *text, double *out)
{
    size_t len = strlen(text);
    if (len == 0 || strspn(text, "0123456789.eE+-") != len)
        return CFG_NUM_BAD;
    char *end;
    double value = strtod(text, &end);
    if (end != text + len || !isfinite(value))
        return CFG_NUM_BAD;
    *out = value;
    return CFG_NUM_OK;
}

/* Writes bytes the way -I takes them: "1m", "512k", "1536k", "1000". */
static void format_size(uint64_t bytes, char buf[32])
{
    static const struct {
        unsigned shift;
        char suffix;
    } units[] = {{30, 'g'}, {20, 'm'}, {10, 'k'}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        uint64_t unit = UINT64_C(1) << units[i].shift;
        if (bytes != 0 && bytes % unit == 0) {
            snprintf(buf, 32, "%" PRIu64 "%c", bytes / unit, units[i].suffix);
            return;
        }
    }
    snprintf(buf, 32, "%" PRIu64, bytes);
}

/* ---- parsing ---------------------------------------------------------- */

/* How an option was given on this command line, for messages that blame
 * one of two options (the cross-option checks). */
struct cfg_given {
    bool set;
    char flag[40];     /* "-m" or "--memory-limit", as spelled */
    const char *value; /* as written */
};

/* Stores one option's value into cfg after checking it. */
static bool set_option(struct cfg *cfg, enum cfg_option_id id, const char *flag,
                       const char *value, struct sink *err)
{
    const struct cfg_option *opt = &cfg_option_table[id];
    const struct cfg_limit *limit = &cfg_limit_table[id];
    uint64_t number = 0;
    enum cfg_num result;

    switch (opt->type) {
    case CFG_TYPE_FLAG:
        *CFG_FIELD_PTR(cfg, opt, bool) = true;
        return true;
    case CFG_TYPE_COUNT: {
        uint32_t *count = CFG_FIELD_PTR(cfg, opt, uint32_t);
        if (*count < UINT32_MAX)
            (*count)++;
        return true;
    }
    case CFG_TYPE_STR:
        if (value[0] == '\0') {
            err_flag_value(err, flag, value, "the value must not be empty");
            return false;
        }
        if (id == CFG_OPT_protocol && strcmp(value, "auto") != 0 && strcmp(value, "ascii") != 0 &&
            strcmp(value, "binary") != 0) {
            err_flag_value(err, flag, value, "protocol must be auto, ascii or binary");
            return false;
        }
        if (id == CFG_OPT_io_backend && strcmp(value, "auto") != 0 && strcmp(value, "io_uring") != 0 &&
            strcmp(value, "epoll") != 0) {
            err_flag_value(err, flag, value, "the I/O backend must be auto, io_uring or epoll");
            return false;
        }
        if (id == CFG_OPT_hash_algorithm && strcmp(value, "jenkins") != 0 &&
            strcmp(value, "murmur3") != 0 && strcmp(value, "xxh3") != 0) {
            err_flag_value(err, flag, value, "Unknown hash_algorithm option (jenkins, murmur3, xxh3)");
            return false;
        }
        if (id == CFG_OPT_unix_mask && (strspn(value, "01234567") != strlen(value) || strlen(value) > 4)) {
            err_flag_value(err, flag, value, "Invalid unix_mask, must be an octal number (e.g. 700)");
            return false;
        }
        *CFG_FIELD_PTR(cfg, opt, const char *) = value;
        return true;
    case CFG_TYPE_DOUBLE: {
        const struct cfg_double_limit *dlimit = &cfg_double_limit_table[id];
        double real;
        if (parse_double(value, &real) != CFG_NUM_OK) {
            err_flag_value(err, flag, value, "not a decimal number (e.g. 1.25)");
            return false;
        }
        if (dlimit->set && !(real > dlimit->above)) {
            err_flag_value(err, flag, value, dlimit->message);
            return false;
        }
        *CFG_FIELD_PTR(cfg, opt, double) = real;
        return true;
    }
    case CFG_TYPE_SIZE:
        result = parse_size(value, &number);
        if (result == CFG_NUM_BAD) {
            err_flag_value(err, flag, value,
                           "not a size; write bytes with an optional k, m or g suffix (e.g. 512k)");
            return false;
        }
        break;
    case CFG_TYPE_UINT:
    case CFG_TYPE_MEGS:
        result = parse_digits(value, strlen(value), &number);
        if (result == CFG_NUM_BAD) {
            err_flag_value(err, flag, value, "not an unsigned decimal number");
            return false;
        }
        break;
    default:
        return false;
    }

    /* Integer types: range, then store. Unlimited UINTs still must fit. */
    uint64_t min = limit->set ? limit->min : 0;
    uint64_t max = limit->set ? limit->max : (opt->type == CFG_TYPE_UINT ? UINT32_MAX : UINT64_MAX);
    if (opt->type == CFG_TYPE_MEGS && max > UINT64_MAX >> 20)
        max = UINT64_MAX >> 20;
    if (result == CFG_NUM_BIG || number > max) {
        err_flag_value(err, flag, value, limit->set ? limit->above : "the number is too large");
        return false;
    }
    if (number < min) {
        err_flag_value(err, flag, value, limit->below);
        return false;
    }
    /* ring sizes the kernel takes only as powers of two */
    if ((id == CFG_OPT_recv_buffers || id == CFG_OPT_uring_cq_entries) && (number & (number - 1)) != 0) {
        err_flag_value(err, flag, value, "must be a power of two (e.g. 256)");
        return false;
    }
    switch (opt->type) {
    case CFG_TYPE_UINT:
        *CFG_FIELD_PTR(cfg, opt, uint32_t) = (uint32_t)number;
        break;
    case CFG_TYPE_MEGS:
        *CFG_FIELD_PTR(cfg, opt, uint64_t) = number << 20;
        break;
    default:
        *CFG_FIELD_PTR(cfg, opt, uint64_t) = number;
        break;
    }
    return true;
}

/*
 * memcached's -o list: "ssl_chain_cert=c.pem,ssl_key=k.pem,slab_automove=1".
 * Each name is an option's long name with '_' for '-'; a FLAG takes no
 * value, anything else needs one, except slab_automove, which memcached
 * reads as slab_automove=1 when bare. A value is copied into cfg->ext_buf
 * to get its own NUL (cfg_parse moves the pointers along with the struct).
 */
static bool apply(struct cfg *cfg, struct cfg_given *given, enum cfg_option_id id, bool by_long,
                  const char *value, struct sink *err);

static bool parse_extended(struct cfg *cfg, struct cfg_given *given, const char *flag,
                           const char *list, struct sink *err)
{
    const char *item = list;
    for (;;) {
        const char *comma = strchr(item, ',');
        size_t len = comma != NULL ? (size_t)(comma - item) : strlen(item);
        const char *eq = memchr(item, '=', len);
        size_t nlen = eq != NULL ? (size_t)(eq - item) : len;
        int id = 0;
        for (; id < CFG_NOPTIONS; id++) {
            const char *name = cfg_option_table[id].long_name;
            if (strlen(name) != nlen || cfg_option_table[id].type == CFG_TYPE_EXT)
                continue;
            size_t k = 0;
            while (k < nlen && (name[k] == item[k] || (name[k] == '-' && item[k] == '_')))
                k++;
            if (k == nlen)
                break;
        }
        if (nlen == 0 || id == CFG_NOPTIONS) {
            err_str(err, "corecache: ");
            err_str(err, flag);
            err_str(err, " ");
            err_mem(err, item, nlen);
            err_str(err, ": unknown extended option; see corecache -h\n");
            return false;
        }
        const struct cfg_option *opt = &cfg_option_table[id];
        const char *value = NULL;
        if (!takes_argument(opt->type)) {
            if (eq != NULL) {
                err_str(err, "corecache: ");
                err_str(err, flag);
                err_str(err, " ");
                err_mem(err, item, len);
                err_str(err, ": this option takes no value\n");
                return false;
            }
        } else if (eq == NULL && id == CFG_OPT_slab_automove) {
            value = "1";
        } else {
            if (eq == NULL) {
                err_str(err, "corecache: ");
                err_str(err, flag);
                err_str(err, " ");
                err_mem(err, item, len);
                err_str(err, ": missing value (name=value)\n");
                return false;
            }
            size_t vlen = len - nlen - 1;
            if (cfg->ext_used + vlen + 1 > sizeof(cfg->ext_buf)) {
                err_str(err, "corecache: ");
                err_str(err, flag);
                err_str(err, ": the extended options are too long\n");
                return false;
            }
            char *copy = cfg->ext_buf + cfg->ext_used;
            memcpy(copy, eq + 1, vlen);
            copy[vlen] = '\0';
            cfg->ext_used += vlen + 1;
            value = copy;
        }
        if (!apply(cfg, given, (enum cfg_option_id)id, true, value, err))
            return false;
        if (comma == NULL)
            return true;
        item = comma + 1;
    }
}

/* Records how an option was given, then sets it. */
static bool apply(struct cfg *cfg, struct cfg_given *given, enum cfg_option_id id, bool by_long,
                  const char *value, struct sink *err)
{
    const struct cfg_option *opt = &cfg_option_table[id];
    struct cfg_given *g = &given[id];
    if (by_long)
        snprintf(g->flag, sizeof(g->flag), "--%s", opt->long_name);
    else
        snprintf(g->flag, sizeof(g->flag), "-%c", opt->short_flag);
    g->set = true;
    g->value = value;
    if (opt->type == CFG_TYPE_EXT) {
        *CFG_FIELD_PTR(cfg, opt, const char *) = value;
        return parse_extended(cfg, given, g->flag, value, err);
    }
    return set_option(cfg, id, g->flag, value, err);
}

static void err_missing(struct sink *err, const char *flag, const struct cfg_option *opt)
{
    err_str(err, "corecache: ");
    err_str(err, flag);
    err_str(err, ": missing argument (<");
    err_str(err, opt->metavar != NULL ? opt->metavar : "value");
    err_str(err, ">)\n");
}

static void err_unknown(struct sink *err, const char *dashes, const char *name, size_t len)
{
    err_str(err, "corecache: unknown option '");
    err_str(err, dashes);
    err_mem(err, name, len);
    err_str(err, "'; see corecache -h\n");
}

/* argv[*i] is "--name" or "--name=value"; may consume argv[*i + 1]. */
static bool parse_long(struct cfg *cfg, struct cfg_given *given, int argc, char *const argv[],
                       int *i, struct sink *err)
{
    const char *name = argv[*i] + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);

    for (int id = 0; id < CFG_NOPTIONS; id++) {
        const struct cfg_option *opt = &cfg_option_table[id];
        if (strlen(opt->long_name) != len || memcmp(opt->long_name, name, len) != 0)
            continue;
        if (!takes_argument(opt->type)) {
            if (eq != NULL) {
                err_str(err, "corecache: ");
                err_str(err, argv[*i]);
                err_str(err, ": --");
                err_str(err, opt->long_name);
                err_str(err, " takes no argument\n");
                return false;
            }
            return apply(cfg, given, (enum cfg_option_id)id, true, NULL, err);
        }
        const char *value;
        if (eq != NULL) {
            value = eq + 1;
        } else if (*i + 1 < argc) {
            value = argv[++*i];
        } else {
            char flag[40];
            snprintf(flag, sizeof(flag), "--%s", opt->long_name);
            err_missing(err, flag, opt);
            return false;
        }
        return apply(cfg, given, (enum cfg_option_id)id, true, value, err);
    }
    err_unknown(err, "--", name, len);
    return false;
}

/* argv[*i] is "-abc": flags, the last of which may take the rest of the
 * word or the next argument. */
static bool parse_short(struct cfg *cfg, struct cfg_given *given, int argc, char *const argv[],
                        int *i, struct sink *err)
{
    const char *word = argv[*i];
    for (size_t j = 1; word[j] != '\0'; j++) {
        int id = 0;
        while (id < CFG_NOPTIONS && cfg_option_table[id].short_flag != word[j])
            id++;
        if (id == CFG_NOPTIONS) {
            err_unknown(err, "-", &word[j], 1);
            return false;
        }
        const struct cfg_option *opt = &cfg_option_table[id];
        if (!takes_argument(opt->type)) {
            if (!apply(cfg, given, (enum cfg_option_id)id, false, NULL, err))
                return false;
            continue;
        }
        const char *value;
        if (word[j + 1] != '\0') {
            value = &word[j + 1];
        } else if (*i + 1 < argc) {
            value = argv[++*i];
        } else {
            char flag[3] = {'-', opt->short_flag, '\0'};
            err_missing(err, flag, opt);
            return false;
        }
        return apply(cfg, given, (enum cfg_option_id)id, false, value, err);
    }
    return true;
}

/*
 * memcached refuses an item size limit above half the memory limit ("Cannot
 * set item size limit higher than 1/2 of memory max"): the slab allocator
 * needs room for at least two of the largest items. The message blames -I
 * if the user gave it, else -m (so `corecache -m 1` explains that the
 * default -I 1m needs -m 2).
 */
static bool check_item_size(const struct cfg *cfg, const struct cfg_given *given, struct sink *err)
{
    if (cfg->item_size_max <= cfg->memory_limit / 2)
        return true;
    char item[32], half[32], megs[32], need[32];
    format_size(cfg->item_size_max, item);
    format_size(cfg->memory_limit / 2, half);
    snprintf(megs, sizeof(megs), "%" PRIu64, cfg->memory_limit >> 20);
    snprintf(need, sizeof(need), "%" PRIu64, (2 * cfg->item_size_max + (UINT64_C(1) << 20) - 1) >> 20);

    const struct cfg_given *gi = &given[CFG_OPT_item_size_max];
    const struct cfg_given *gm = &given[CFG_OPT_memory_limit];
    err_str(err, "corecache: ");
    if (gi->set) {
        err_str(err, gi->flag);
        err_str(err, " ");
        err_value(err, gi->value);
        err_str(err, ": max item size must be at most half the memory limit (");
        err_str(err, gm->set ? gm->flag : "-m");
        err_str(err, " ");
        err_str(err, megs);
        err_str(err, gm->set ? "" : ", the default");
        err_str(err, "); lower it to at most ");
        err_str(err, half);
        err_str(err, " or raise the memory limit to at least ");
        err_str(err, need);
        err_str(err, "\n");
    } else {
        err_str(err, gm->set ? gm->flag : "-m");
        err_str(err, " ");
        err_str(err, gm->set ? gm->value : megs);
        err_str(err, ": memory limit must be at least twice the max item size (-I ");
        err_str(err, item);
        err_str(err, ", the default); raise it to at least ");
        err_str(err, need);
        err_str(err, " or lower -I\n");
    }
    return false;
}

bool cfg_parse(struct cfg *cfg, int argc, char *const argv[], struct sink *err)
{
    struct cfg next = *cfg;
    struct cfg_given given[CFG_NOPTIONS];
    memset(given, 0, sizeof(given));
    bool options_ended = false;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!options_ended && strcmp(arg, "--") == 0) {
            options_ended = true;
            continue;
        }
        if (options_ended || arg[0] != '-' || arg[1] == '\0') {
            err_str(err, "corecache: unexpected argument '");
            err_str(err, arg);
            err_str(err, "'; corecache takes only options (see corecache -h)\n");
            return false;
        }
        bool ok = arg[1] == '-' ? parse_long(&next, given, argc, argv, &i, err)
                                : parse_short(&next, given, argc, argv, &i, err);
        if (!ok)
            return false;
    }
    /* -h, -V and --describe-metrics are answered whatever else is on the line,
     * as memcached answers -h and -V before looking at the rest. */
    if (!next.help && !next.version && !next.describe_metrics && !check_item_size(&next, given, err))
        return false;
    *cfg = next;
    /* -o values live in ext_buf: point them into cfg's copy of it */
    for (int id = 0; id < CFG_NOPTIONS; id++) {
        const struct cfg_option *opt = &cfg_option_table[id];
        if (opt->type != CFG_TYPE_STR)
            continue;
        const char **field = CFG_FIELD_PTR(cfg, opt, const char *);
        uintptr_t at = (uintptr_t)*field, from = (uintptr_t)next.ext_buf;
        if (at >= from && at < from + sizeof(next.ext_buf))
            *field = cfg->ext_buf + (at - from);
    }
    return true;
}

/* ---- rendering -------------------------------------------------------- */

/* An option's value as -h shows its default; false when there is nothing
 * worth showing (flags, counters, unset strings). */
static bool format_default(const struct cfg *cfg, const struct cfg_option *opt, char buf[32],
                           const char **text)
{
    *text = buf;
    switch (opt->type) {
    case CFG_TYPE_UINT:
        snprintf(buf, 32, "%" PRIu32, CFG_FIELD_VAL(cfg, opt, uint32_t));
        return true;
    case CFG_TYPE_MEGS:
        snprintf(buf, 32, "%" PRIu64, CFG_FIELD_VAL(cfg, opt, uint64_t) >> 20);
        return true;
    case CFG_TYPE_SIZE:
        format_size(CFG_FIELD_VAL(cfg, opt, uint64_t), buf);
        return true;
    case CFG_TYPE_DOUBLE:
        snprintf(buf, 32, "%.2f", CFG_FIELD_VAL(cfg, opt, double));
        return true;
    case CFG_TYPE_STR:
        *text = CFG_FIELD_VAL(cfg, opt, const char *);
        return *text != NULL;
    default:
        return false;
    }
}

/* Help text starts in this column, as memcached's does. */
#define CFG_USAGE_HELP_COLUMN 26

bool cfg_usage(struct sink *out)
{
    struct cfg defaults;
    cfg_defaults(&defaults);
    if (!sink_puts(out, "Usage: corecache [options]\n"))
        return false;

    for (int id = 0; id < CFG_NOPTIONS; id++) {
        const struct cfg_option *opt = &cfg_option_table[id];
        char line[256];
        int n;
        if (opt->short_flag != 0)
            n = snprintf(line, sizeof(line), "-%c, --%s", opt->short_flag, opt->long_name);
        else
            n = snprintf(line, sizeof(line), "    --%s", opt->long_name);
        if (n > 0 && (size_t)n < sizeof(line) && takes_argument(opt->type))
            n += snprintf(line + n, sizeof(line) - (size_t)n, "=<%s>",
                          opt->metavar != NULL ? opt->metavar : "value");
        if (n < 0 || (size_t)n >= sizeof(line))
            return false;
        if (!sink_put(out, line, (size_t)n))
            return false;
        /* pad to the help column, or one space when the flags run past it */
        static const char spaces[CFG_USAGE_HELP_COLUMN] = "                         ";
        size_t pad = n < CFG_USAGE_HELP_COLUMN - 1 ? (size_t)(CFG_USAGE_HELP_COLUMN - n) : 1;
        if (!sink_put(out, spaces, pad) || !sink_put(out, opt->help, strlen(opt->help)))
            return false;

        /* memcached's options without their mechanism say so here too */
        for (size_t i = 0; i < sizeof(cfg_inert_table) / sizeof(cfg_inert_table[0]); i++) {
            if (cfg_inert_table[i].id == (enum cfg_option_id)id && !sink_puts(out, " [no effect in corecache]"))
                return false;
        }
        char buf[32];
        const char *text;
        if (strstr(opt->help, "default") == NULL && format_default(&defaults, opt, buf, &text)) {
            if (!sink_puts(out, " (default: ") || !sink_put(out, text, strlen(text)) ||
                !sink_puts(out, ")"))
                return false;
        }
        if (!sink_puts(out, "\n"))
            return false;
    }
    return true;
}

bool cfg_render_settings(const struct cfg *cfg, struct sink *out)
{
    for (size_t i = 0; i < sizeof(cfg_setting_table) / sizeof(cfg_setting_table[0]); i++) {
        const struct cfg_setting *setting = &cfg_setting_table[i];
        const struct cfg_option *opt = &cfg_option_table[setting->id];
        char buf[32];
        bool ok;
        switch (opt->type) {
        case CFG_TYPE_UINT:
        case CFG_TYPE_COUNT:
            ok = metrics_stat_u64(out, setting->stat_name, CFG_FIELD_VAL(cfg, opt, uint32_t));
            break;
        case CFG_TYPE_SIZE:
        case CFG_TYPE_MEGS:
            ok = metrics_stat_u64(out, setting->stat_name, CFG_FIELD_VAL(cfg, opt, uint64_t));
            break;
        case CFG_TYPE_DOUBLE:
            snprintf(buf, sizeof(buf), "%.2f", CFG_FIELD_VAL(cfg, opt, double));
            ok = metrics_stat_str(out, setting->stat_name, buf);
            break;
        case CFG_TYPE_STR: {
            const char *text = CFG_FIELD_VAL(cfg, opt, const char *);
            ok = metrics_stat_str(out, setting->stat_name,
                                  text != NULL ? text : setting->when_false != NULL ? setting->when_false : "NULL");
            break;
        }
        case CFG_TYPE_FLAG:
            ok = metrics_stat_str(out, setting->stat_name,
                                  CFG_FIELD_VAL(cfg, opt, bool) ? setting->when_true
                                                                : setting->when_false);
            break;
        default:
            ok = false;
            break;
        }
        if (!ok)
            return false;
    }
    return true;
}

/* An option differs from its default: it was given (a FLAG given twice or
 * a value equal to the default reads as not given, which is harmless here:
 * the default of an inert option has no effect either). */
static bool differs(const struct cfg *cfg, const struct cfg *defaults, const struct cfg_option *opt)
{
    switch (opt->type) {
    case CFG_TYPE_UINT:
    case CFG_TYPE_COUNT:
        return CFG_FIELD_VAL(cfg, opt, uint32_t) != CFG_FIELD_VAL(defaults, opt, uint32_t);
    case CFG_TYPE_SIZE:
    case CFG_TYPE_MEGS:
        return CFG_FIELD_VAL(cfg, opt, uint64_t) != CFG_FIELD_VAL(defaults, opt, uint64_t);
    case CFG_TYPE_DOUBLE:
        return CFG_FIELD_VAL(cfg, opt, double) != CFG_FIELD_VAL(defaults, opt, double);
    case CFG_TYPE_FLAG:
        return CFG_FIELD_VAL(cfg, opt, bool);
    case CFG_TYPE_STR:
    case CFG_TYPE_EXT: {
        const char *a = CFG_FIELD_VAL(cfg, opt, const char *);
        const char *b = CFG_FIELD_VAL(defaults, opt, const char *);
        return a != b && (a == NULL || b == NULL || strcmp(a, b) != 0);
    }
    default:
        return false;
    }
}

/* How a user names an option: "-R", or "-o name" for memcached's suboptions. */
static void put_name(struct sink *out, const struct cfg_option *opt)
{
    char name[64];
    if (opt->short_flag != 0) {
        snprintf(name, sizeof(name), "-%c", opt->short_flag);
    } else {
        size_t n = strlen(opt->long_name);
        if (n > sizeof(name) - 4)
            n = sizeof(name) - 4;
        memcpy(name, "-o ", 3);
        for (size_t i = 0; i < n; i++)
            name[3 + i] = opt->long_name[i] == '-' ? '_' : opt->long_name[i];
        name[3 + n] = '\0';
    }
    (void)sink_put(out, name, strlen(name));
}

bool cfg_render_inert(const struct cfg *cfg, struct sink *out)
{
    struct cfg defaults;
    cfg_defaults(&defaults);
    for (size_t i = 0; i < sizeof(cfg_inert_table) / sizeof(cfg_inert_table[0]); i++) {
        const struct cfg_option *opt = &cfg_option_table[cfg_inert_table[i].id];
        if (!differs(cfg, &defaults, opt))
            continue;
        (void)sink_puts(out, "corecache: ");
        put_name(out, opt);
        (void)sink_puts(out, ": accepted, no effect: ");
        (void)sink_put(out, cfg_inert_table[i].reason, strlen(cfg_inert_table[i].reason));
        if (!sink_puts(out, "\n"))
            return false;
    }
    if (cfg->udp_port != 0) {
        char line[160];
        snprintf(line, sizeof(line),
                 "corecache: -U %" PRIu32 ": no UDP port is opened; corecache serves TCP only "
                 "(memcached too leaves UDP off by default since 1.5.6)\n",
                 cfg->udp_port);
        if (!sink_put(out, line, strlen(line)))
            return false;
    }
    return true;
}
