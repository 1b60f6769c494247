/*
 * lrucrawl.c: memcached 1.6.18's `lru_crawler` command (proto_text.c
 * process_lru_crawler_command, crawler.c) over the segment engine. Issue 12.
 *
 * memcached's crawler is a thread that walks each slab class's LRUs,
 * freeing expired items (`crawl`) or writing a line per live item to a
 * client (`metadump`). corecache's crawler is each shard's own: a slice of
 * its segments every tick (core/store.c store_crawl), so:
 *
 *   enable | disable     turn the per-tick crawl on or off (the settings'
 *                        lru_crawler yes|no); OK
 *   crawl <ids|all>      every shard crawls its whole arena now, freeing the
 *                        expired and flushed items, before OK is sent: a
 *                        gather (route.h), so lru_crawler_running is 0 once
 *                        the OK is read. The engine has one pseudo-class and
 *                        crawls segments, not classes: any valid list
 *                        (memcached's: 1..63, comma separated) crawls all.
 *   metadump <ids|all|hash>
 *                        a gather: each shard lists its live items, memcached's
 *                        "key=<uri-encoded> exp=<unix|-1> la=<unix> cas=<n>
 *                        fetch=<yes|no> cls=<id> size=<bytes>" lines, shard by
 *                        shard, then END. Refused as memcached refuses it
 *                        (crawler disabled, -X, replies pipelined before it).
 *   sleep <us> | tocrawl <n>
 *                        memcached's checks and OK, and no effect (as -o
 *                        lru_crawler_sleep/tocrawl, cfg.c CFG_INERT): the
 *                        crawl's pace is SHARD_CRAWL_BUDGET items per tick,
 *                        which `stats settings` reports (facts.h).
 *
 * memcached hands a metadump connection to its crawler thread and streams;
 * here each shard writes its part into its scratch buffer, so a dump of a
 * very large cache is held in memory once per shard while it is sent.
 */
#include "lrucrawl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/item.h"
#include "../core/logline.h"
#include "../core/metrics.h"
#include "../core/reply.h"
#include "../core/store.h"
#include "conn.h"
#include "route.h"
#include "server.h"
#include "shard.h"

#define LRUCRAWL_CLASSES 64 /* memcached's MAX_NUMBER_OF_SLAB_CLASSES */

void lrucrawl_init(struct server *srv)
{
    const struct cfg *cfg = &srv->cfg;
    /* memcached starts it unless no_lru_crawler, or no_modern without a
     * later lru_crawler */
    bool on = !cfg->no_lru_crawler && (!cfg->no_modern || cfg->lru_crawler);
    atomic_store(&srv->crawler_on, on);
}

void lrucrawl_tick(struct shard *shard)
{
    if (atomic_load_explicit(&shard->srv->crawler_on, memory_order_relaxed))
        store_crawl(shard->store, SHARD_CRAWL_BUDGET);
}

bool lrucrawl_render_settings(const struct server *srv, struct sink *out)
{
    return metrics_stat_str(out, "lru_crawler", atomic_load(&srv->crawler_on) ? "yes" : "no");
}

/* --- crawl: every shard's lap, then OK ---------------------------------- */

static bool crawl_collect(struct shard *shard, int kind, struct sink *out)
{
    (void)kind;
    (void)out;
    route_write_begin(shard); /* issue 17: the lap frees memory peers may be reading */
    (void)store_crawl_lap(shard->store);
    route_write_end(shard);
    return true;
}

static void crawl_fold(void *state, unsigned from, const void *part, size_t len)
{
    (void)state, (void)from, (void)part, (void)len;
}

static bool crawl_render(struct shard *shard, void *state, int kind, struct sink *out)
{
    (void)shard, (void)state, (void)kind;
    return sink_puts(out, "OK\r\n");
}

static void crawl_free(void *state)
{
    (void)state;
}

static const struct gather_ops crawl_ops = {
    .collect = crawl_collect, .fold = crawl_fold, .render = crawl_render, .free_state = crawl_free,
};

/* --- metadump: every shard's live items, then END ----------------------- */

struct dump_walk {
    struct sink *out;
    const struct store *store;
    const struct mc_clock *clock;
    bool ok;
};

static bool dump_item(void *arg, const struct item *it)
{
    struct dump_walk *w = arg;
    if (!store_item_alive(w->store, it))
        return true; /* memcached skips expired and flushed items */
    char key[STORE_KEY_MAX * 3 + 1], line[STORE_KEY_MAX * 3 + 200];
    logline_uriencode(item_key(it), item_nkey(it), key, sizeof(key));
    mc_time_t exp = item_exptime(it);
    long long unix_exp = exp == 0 ? -1 : (long long)mc_clock_unix(w->clock, exp);
    int n = snprintf(line, sizeof(line), "key=%s exp=%lld la=%llu cas=%" PRIu64 " fetch=%s cls=%u size=%zu\n", key,
                     unix_exp, (unsigned long long)mc_clock_unix(w->clock, item_atime(it)), item_cas(it),
                     item_fetched(it) ? "yes" : "no", item_clsid(it), item_total(it));
    if (n <= 0 || (size_t)n >= sizeof(line))
        return true;
    if (!sink_put(w->out, line, (size_t)n)) {
        w->ok = false;
        return false;
    }
    return true;
}

static bool dump_collect(struct shard *shard, int kind, struct sink *out)
{
    (void)kind;
    struct dump_walk w = {.out = out, .store = shard->store, .clock = &shard->srv->clock, .ok = true};
    for (unsigned id = 1; id < LRUCRAWL_CLASSES && w.ok; id++)
        store_each_in_class(shard->store, id, dump_item, &w);
    return w.ok;
}

struct dump_parts {
    unsigned nshards;
    char **text;
    size_t *len;
};

static void dump_fold(void *state, unsigned from, const void *part, size_t len)
{
    struct dump_parts *p = state;
    if (from >= p->nshards || len == 0)
        return;
    p->text[from] = malloc(len);
    if (p->text[from] != NULL) {
        memcpy(p->text[from], part, len);
        p->len[from] = len;
    }
}

static bool dump_render(struct shard *shard, void *state, int kind, struct sink *out)
{
    (void)shard, (void)kind;
    struct dump_parts *p = state;
    for (unsigned s = 0; s < p->nshards; s++) {
        if (p->text[s] != NULL && !sink_put(out, p->text[s], p->len[s]))
            return false;
    }
    return sink_puts(out, "END\r\n");
}

static void dump_free(void *state)
{
    struct dump_parts *p = state;
    for (unsigned s = 0; p->text != NULL && s < p->nshards; s++)
        free(p->text[s]);
    free(p->text);
    free(p->len);
    free(p);
}

static const struct gather_ops dump_ops = {
    .collect = dump_collect, .fold = dump_fold, .render = dump_render, .free_state = dump_free,
};

/* --- the command -------------------------------------------------------- */

/* memcached's safe_strtoul into an unsigned int, on one word. */
static bool word_u32(const char *p, size_t n, uint32_t *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof(buf) || p[0] == '-')
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    errno = 0;
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno == ERANGE || end == buf || *end != '\0' || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* memcached's class list: all, hash, or ids 1..63 separated by commas. */
static bool classes_ok(const char *p, size_t n, bool *hash)
{
    *hash = n == 4 && memcmp(p, "hash", 4) == 0;
    if (*hash || (n == 3 && memcmp(p, "all", 3) == 0))
        return true;
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        while (i < n && p[i] != ',')
            i++;
        uint32_t id;
        if (i > start && (!word_u32(p + start, i - start, &id) || id < 1 || id >= LRUCRAWL_CLASSES))
            return false;
        i++;
    }
    return true;
}

static bool reply(struct conn *conn, const char *line)
{
    return reply_put_line(&conn->out.sink, line, strlen(line));
}

static bool word_is(const char *p, size_t n, const char *word)
{
    return n == strlen(word) && memcmp(p, word, n) == 0;
}

bool lrucrawl_command(struct conn *conn, const char *args, size_t nargs)
{
    struct server *srv = conn->shard->srv;
    const char *word[3];
    size_t wlen[3];
    unsigned nwords = 0;
    for (size_t i = 0; i < nargs;) {
        while (i < nargs && args[i] == ' ')
            i++;
        size_t start = i;
        while (i < nargs && args[i] != ' ')
            i++;
        if (i > start) {
            if (nwords == 3)
                return reply(conn, "ERROR");
            word[nwords] = args + start;
            wlen[nwords++] = i - start;
        }
    }
    if (nwords == 1 && word_is(word[0], wlen[0], "enable")) {
        atomic_store(&srv->crawler_on, true);
        return reply(conn, "OK");
    }
    if (nwords == 1 && word_is(word[0], wlen[0], "disable")) {
        atomic_store(&srv->crawler_on, false);
        return reply(conn, "OK");
    }
    if (nwords != 2)
        return reply(conn, "ERROR");
    uint32_t v;
    if (word_is(word[0], wlen[0], "tocrawl")) {
        if (!word_u32(word[1], wlen[1], &v))
            return reply(conn, "CLIENT_ERROR bad command line format");
        return reply(conn, "OK");
    }
    if (word_is(word[0], wlen[0], "sleep")) {
        if (!word_u32(word[1], wlen[1], &v))
            return reply(conn, "CLIENT_ERROR bad command line format");
        if (v > 1000000)
            return reply(conn, "CLIENT_ERROR sleep must be one second or less");
        return reply(conn, "OK");
    }
    bool crawl = word_is(word[0], wlen[0], "crawl");
    if (!crawl && !word_is(word[0], wlen[0], "metadump"))
        return reply(conn, "ERROR");
    if (!atomic_load(&srv->crawler_on))
        return reply(conn, "CLIENT_ERROR lru crawler disabled");
    if (!crawl && srv->cfg.disable_dumping)
        return reply(conn, "ERROR metadump not allowed");
    outq_sync(&conn->out);
    if (!crawl && (conn->out.bytes > 0 || conn->out.npending > 0))
        return reply(conn, "ERROR cannot pipeline other commands before metadump");
    bool hash;
    if (!classes_ok(word[1], wlen[1], &hash))
        return reply(conn, "BADCLASS invalid class id");
    if (crawl)
        return route_gather(conn, &crawl_ops, 0, NULL);
    unsigned nshards = srv->nshards;
    struct dump_parts *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return false;
    p->nshards = nshards;
    p->text = calloc(nshards, sizeof(*p->text));
    p->len = calloc(nshards, sizeof(*p->len));
    if (p->text == NULL || p->len == NULL) {
        dump_free(p);
        return false;
    }
    return route_gather(conn, &dump_ops, 0, p);
}
