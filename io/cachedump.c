/*
 * cachedump.c: `stats cachedump <class> <limit>`, memcached 1.6.18's key
 * listing (proto_text.c process_stat, items.c item_cachedump), which
 * memcdump and php-memcached's getAllKeys() walk for classes 0..63.
 *
 * memcached answers, in order:
 *   - fewer than two words after "cachedump": "CLIENT_ERROR bad command line";
 *   - a class or limit that safe_strtoul refuses: "CLIENT_ERROR bad command
 *     line format" (both are kept to 32 bits as memcached's unsigned ints);
 *   - a class >= 64: "CLIENT_ERROR Illegal slab id";
 *   - else "ITEM <key> [<value bytes> b; <exptime> s]" for the class's
 *     items, newest first, at most <limit> of them (0: all), the exptime
 *     as a unix time (0: never), the whole reply at most 2 MB, then "END".
 *     Items are not checked for expiry, and keys given base64-encoded to
 *     the meta commands (b) are skipped, as memcached skips them.
 *
 * Every shard holds its own part of each class, so this is a gather
 * (route.h): each shard walks its class's LRU (store_each_in_class) and
 * writes its lines, within the limit and the 2 MB budget; the asking shard
 * concatenates the parts in shard order, stopping at the limit and the
 * budget again. So the listing is each shard's newest-first run in turn,
 * not one global recency order (which no shard knows). memcached with its
 * segmented LRU (the 1.6 default) dumps only the COLD segment of a class,
 * so it lists items only once they have aged out of HOT; corecache's
 * segment engine has one pseudo-class and lists every item in it.
 *
 * The gather's `kind` carries the class (6 bits) and the limit (24 bits):
 * a limit above 2^24 - 1 is capped, which changes nothing, because the
 * 2 MB budget holds fewer lines than that.
 */
#include "cachedump.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/item.h"
#include "../core/store.h"
#include "conn.h"
#include "route.h"
#include "server.h"
#include "shard.h"

#define CACHEDUMP_BYTES_MAX (2u * 1024 * 1024) /* memcached's memlimit */
#define CACHEDUMP_END_RESERVE 6                 /* "END\r\n\0", as memcached counts it */
#define CACHEDUMP_LIMIT_MAX ((1u << 24) - 1)
#define CACHEDUMP_CLASSES 64                    /* memcached's MAX_NUMBER_OF_SLAB_CLASSES */

/* --- on every shard: this shard's lines --------------------------------- */

struct dump_walk {
    struct sink *out;
    const struct mc_clock *clock;
    uint32_t limit; /* 0: none */
    uint32_t shown;
    size_t bytes;
    bool ok;
};

static bool dump_item(void *arg, const struct item *it)
{
    struct dump_walk *w = arg;
    if (w->limit != 0 && w->shown >= w->limit)
        return false;
    if (it->iflags & ITEM_KEY_BINARY)
        return true;
    /* memcached copies the key with strncpy and prints it with %s */
    size_t nkey = item_nkey(it);
    const char *nul = memchr(item_key(it), '\0', nkey);
    if (nul != NULL)
        nkey = (size_t)(nul - item_key(it));
    mc_time_t exp = item_exptime(it);
    unsigned long long unix_exp = exp == 0 ? 0 : (unsigned long long)mc_clock_unix(w->clock, exp);
    char tail[64];
    int ntail = snprintf(tail, sizeof(tail), " [%zu b; %llu s]\r\n", item_nbytes(it), unix_exp);
    size_t len = 5 + nkey + (size_t)ntail;
    if (w->bytes + len + CACHEDUMP_END_RESERVE > CACHEDUMP_BYTES_MAX)
        return false;
    if (!(sink_puts(w->out, "ITEM ") && sink_put(w->out, item_key(it), nkey) &&
          sink_put(w->out, tail, (size_t)ntail))) {
        w->ok = false;
        return false;
    }
    w->bytes += len;
    w->shown++;
    return true;
}

static bool dump_collect(struct shard *shard, int kind, struct sink *out)
{
    struct dump_walk w = {.out = out, .clock = &shard->srv->clock,
                          .limit = (uint32_t)kind >> 6, .ok = true};
    store_each_in_class(shard->store, (unsigned)kind & 63, dump_item, &w);
    return w.ok;
}

/* --- on the asking shard: the parts, then the reply --------------------- */

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
    (void)shard;
    struct dump_parts *p = state;
    uint32_t limit = (uint32_t)kind >> 6, shown = 0;
    size_t bytes = 0;
    for (unsigned s = 0; s < p->nshards; s++) {
        const char *line = p->text[s], *end = line + p->len[s];
        while (line != NULL && line < end && (limit == 0 || shown < limit)) {
            const char *nl = memchr(line, '\n', (size_t)(end - line));
            size_t len = nl != NULL ? (size_t)(nl - line) + 1 : (size_t)(end - line);
            if (bytes + len + CACHEDUMP_END_RESERVE > CACHEDUMP_BYTES_MAX)
                return sink_puts(out, "END\r\n");
            if (!sink_put(out, line, len))
                return false;
            bytes += len;
            shown++;
            line += len;
        }
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
    .collect = dump_collect,
    .fold = dump_fold,
    .render = dump_render,
    .free_state = dump_free,
};

/* --- the command -------------------------------------------------------- */

/* memcached's safe_strtoul into an unsigned int, on one word. */
static bool word_u32(const char *p, size_t n, uint32_t *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    errno = 0;
    char *end;
    unsigned long v = strtoul(buf, &end, 10);
    if (errno == ERANGE || end == buf)
        return false;
    if (!(isspace((unsigned char)*end) || *end == '\0'))
        return false;
    if ((long)v < 0 && strchr(buf, '-') != NULL)
        return false;
    *out = (uint32_t)v;
    return true;
}

bool cachedump_command(struct conn *conn, const char *args, size_t nargs)
{
    const char *word[3];
    size_t wlen[3];
    unsigned nwords = 0;
    for (size_t i = 0; i < nargs && nwords < 3;) {
        while (i < nargs && args[i] == ' ')
            i++;
        size_t start = i;
        while (i < nargs && args[i] != ' ')
            i++;
        if (i > start) {
            word[nwords] = args + start;
            wlen[nwords++] = i - start;
        }
    }
    if (nwords < 3)
        return sink_puts(&conn->out.sink, "CLIENT_ERROR bad command line\r\n");
    uint32_t id, limit;
    if (!word_u32(word[1], wlen[1], &id) || !word_u32(word[2], wlen[2], &limit))
        return sink_puts(&conn->out.sink, "CLIENT_ERROR bad command line format\r\n");
    if (id >= CACHEDUMP_CLASSES)
        return sink_puts(&conn->out.sink, "CLIENT_ERROR Illegal slab id\r\n");
    if (limit > CACHEDUMP_LIMIT_MAX)
        limit = CACHEDUMP_LIMIT_MAX;

    unsigned nshards = conn->shard->srv->nshards;
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
    return route_gather(conn, &dump_ops, (int)(id | (limit << 6)), p);
}
