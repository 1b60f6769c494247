/*
 * fuzz_exec.c: libFuzzer target for the whole request path: parse (text
 * and meta, or binary, chosen by the first byte as a connection does), then
 * core/exec runs the request on shard 0 of two, the consistent-hash ring
 * naming each key's owner; a key of shard 1 is forwarded and executed on
 * shard 1's store, its reply placed in order (as io/route.c's placeholder
 * does: the router here answers at once, a valid order since each key has
 * one owner). Then the reply's framing is checked (every line ends in
 * \r\n, every VALUE/VA block has the length it announces, every binary
 * reply a whole header and body). Fed whole and split (fuzz_split.h): the
 * two runs, each on fresh stores, must answer byte for byte the same.
 *
 * Actions exec leaves to io/ are applied the way io/ does where they touch
 * the stores (flush_all on both shards); stats and verbosity touch the
 * process and write nothing here.
 */
#include <stddef.h>
#include <stdint.h>

#include "../../core/clock.h"
#include "../../core/exec.h"
#include "../../core/hash.h"
#include "../../core/process.h"
#include "../../core/proto.h"
#include "../../core/proto_bin.h"
#include "../../core/ring.h"
#include "../../core/store.h"
#include "fuzz_req.h"

#define FZ_SHARDS 2
#define FZ_ARENA (4u << 20)
#define FZ_ITEM_MAX (1u << 20)
#define FZ_UNIX_NOW 1700000000

struct exec_state {
    struct proto_parser parser;
    int family; /* -1 until the first byte decides */
    struct ring *ring;
    struct mc_clock clock;
    struct process_env env[FZ_SHARDS];
    void *arena[FZ_SHARDS];
    /* the reply stream of this run, as a sink */
    struct sink sink;
    struct fz_buf *out;
};

/* A sink that writes straight into the trace buffer. */
static bool trace_grow(struct sink *sink, size_t need)
{
    struct exec_state *s = (struct exec_state *)((char *)sink - offsetof(struct exec_state, sink));
    size_t used = (size_t)(sink->pos - s->out->p);
    s->out->len = used;
    if (used + need > s->out->cap) {
        size_t cap = s->out->cap ? s->out->cap * 2 : 4096;
        while (cap < used + need)
            cap *= 2;
        s->out->p = realloc(s->out->p, cap);
        if (s->out->p == NULL)
            abort();
        s->out->cap = cap;
    }
    sink->pos = s->out->p + used;
    sink->end = s->out->p + s->out->cap;
    return true;
}

static void *create(void)
{
    struct exec_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        abort();
    struct proto_limits limits = {.item_size_max = FZ_ITEM_MAX, .item_total = store_item_total};
    proto_parser_init(&s->parser, &limits);
    s->family = -1;
    /* The ring and the arenas are made once per process: a ring is
     * immutable, an arena is only memory the store formats on create. */
    static struct ring *ring;
    static void *arenas[FZ_SHARDS];
    if (ring == NULL && ring_create(FZ_SHARDS, RING_VNODES_DEFAULT, &ring) != MC_OK)
        abort();
    s->ring = ring;
    mc_clock_init(&s->clock, FZ_UNIX_NOW);
    mc_time_t now = mc_clock_now(&s->clock, FZ_UNIX_NOW + 5);
    for (unsigned i = 0; i < FZ_SHARDS; i++) {
        if (arenas[i] == NULL && (arenas[i] = aligned_alloc(4096, FZ_ARENA)) == NULL)
            abort();
        s->arena[i] = arenas[i];
        struct store_cfg cfg = {
            .arena = s->arena[i],
            .arena_size = FZ_ARENA,
            .item_size_max = FZ_ITEM_MAX,
            .slab_page_size = FZ_ITEM_MAX,
            .growth_factor = 1.25,
            .chunk_min = 48,
            .evictions = true,
            .cas_enabled = true,
            .cas_offset = i,
            .cas_stride = FZ_SHARDS,
        };
        struct store *store;
        if (store_create(&cfg, &store) != MC_OK)
            abort();
        store_set_clock(store, now);
        s->env[i] = (struct process_env){.store = store, .clock = &s->clock, .now = now};
    }
    s->sink.grow = trace_grow;
    return s;
}

static void destroy(void *state)
{
    struct exec_state *s = state;
    for (unsigned i = 0; i < FZ_SHARDS; i++) {
        store_destroy(&s->env[i].store);
    }
    free(s);
}

/* The router: shard 1's keys executed on shard 1's store, reply in place. */
static bool forward(void *router, unsigned owner, const struct proto_req *req, const char *key, uint32_t nkey,
                    uint64_t hash)
{
    struct exec_state *s = router;
    if (owner >= FZ_SHARDS)
        abort();
    /* what io/route.c's route_poll does on the owner */
    struct exec_ctx owner_ctx = {.env = &s->env[owner], .ring = s->ring, .self = owner, .version = "1.6.18-fuzz"};
    return exec_forwarded(&owner_ctx, req, key, nkey, hash, &s->sink);
}

static void flush_all(struct exec_state *s, int64_t delay)
{
    for (unsigned i = 0; i < FZ_SHARDS; i++) {
        mc_time_t when = delay > 0 ? mc_clock_exptime(&s->clock, s->env[i].now, delay) : s->env[i].now;
        store_flush(s->env[i].store, when);
    }
}

/* Runs one request through exec; false: the connection closes. */
static bool execute(struct exec_state *s, const struct proto_req *req)
{
    struct exec_ctx ctx = {
        .env = &s->env[0],
        .ring = s->ring,
        .self = 0,
        .forward = forward,
        .router = s,
        .version = "1.6.18-fuzz",
        .enable_shutdown = false,
        .verbosity_max = 2,
    };
    struct exec_result r = {0};
    switch (exec_request(&ctx, req, &s->sink, &r)) {
    case EXEC_NEXT:
    case EXEC_STATS:
    case EXEC_STATS_RESET:
    case EXEC_VERBOSITY:
    case EXEC_REFRESH_CERTS: /* io/ reloads certificates; nothing in core to check */
    case EXEC_MEMLIMIT:      /* io/ sets the stores' limit (io/memlimit.c) */
    case EXEC_LRU_CRAWLER:   /* io/ crawls and dumps (io/lrucrawl.c) */
        return true;
    case EXEC_FLUSH_ALL:
        flush_all(s, r.delay);
        return true;
    case EXEC_QUIT:
    case EXEC_CLOSE:
    case EXEC_SHUTDOWN:
    case EXEC_WATCH: /* io/ answers; the connection then ignores its input */
        return false;
    case EXEC_NOMEM:
        abort(); /* the trace sink never runs out */
    }
    return true;
}

/* --- reply framing ------------------------------------------------------ */

static uint64_t number(const char *p, const char *end)
{
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    return v;
}

/* The nth space-separated token of line [p, eol). */
static const char *token(const char *p, const char *eol, unsigned n)
{
    for (unsigned i = 0; i < n && p != NULL; i++) {
        p = memchr(p, ' ', (size_t)(eol - p));
        if (p != NULL)
            p++;
    }
    return p;
}

static void check_text_framing(const char *p, size_t len)
{
    const char *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL || nl == p || nl[-1] != '\r') {
            fprintf(stderr, "fuzz: reply line without \\r\\n: %.*s\n", (int)(end - p > 80 ? 80 : end - p), p);
            abort();
        }
        const char *eol = nl - 1;
        uint64_t data = UINT64_MAX;
        if (eol - p > 6 && memcmp(p, "VALUE ", 6) == 0) {
            const char *t = token(p, eol, 3);
            if (t == NULL)
                abort();
            data = number(t, eol);
        } else if (eol - p > 3 && memcmp(p, "VA ", 3) == 0) {
            data = number(p + 3, eol);
        }
        p = nl + 1;
        if (data != UINT64_MAX) {
            if ((uint64_t)(end - p) < data + 2 || p[data] != '\r' || p[data + 1] != '\n') {
                fprintf(stderr, "fuzz: a value block does not have the length its line announced\n");
                abort();
            }
            p += data + 2;
        }
    }
}

static void check_binary_framing(const unsigned char *p, size_t len)
{
    while (len > 0) {
        if (len < 24 || p[0] != 0x81) {
            fprintf(stderr, "fuzz: binary reply without a whole header (%zu bytes, magic %02x): %.*s\n", len, p[0],
                    (int)(len < 80 ? len : 80), (const char *)p);
            abort();
        }
        uint32_t body = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
        uint16_t keylen = (uint16_t)(p[2] << 8 | p[3]);
        if (body > len - 24 || (size_t)p[4] + keylen > body) {
            fprintf(stderr, "fuzz: binary reply body %u beyond its %zu bytes or shorter than extras+key\n",
                    body, len - 24);
            abort();
        }
        p += 24 + body;
        len -= 24 + body;
    }
}

static size_t step(void *state, const char *buf, size_t len, size_t *need, struct fz_buf *trace,
                   enum fz_verdict *verdict)
{
    struct exec_state *s = state;
    int family = s->family >= 0 ? s->family
                                : ((unsigned char)buf[0] == PROTO_BIN_REQ_MAGIC ? PROTO_FAMILY_BINARY
                                                                               : PROTO_FAMILY_TEXT);
    struct proto_req req;
    size_t used = family == PROTO_FAMILY_BINARY ? proto_bin_parse(&s->parser, buf, len, &req, need)
                                                : proto_parse(&s->parser, buf, len, &req, need);
    if (used == 0)
        return 0;
    s->family = family;
    /* the reply of this one request goes to the end of the trace */
    s->out = trace;
    size_t start = trace->len;
    if (trace->p == NULL)
        trace_grow(&s->sink, 4096);
    s->sink.pos = trace->p + trace->len;
    s->sink.end = trace->p + trace->cap;
    bool go_on = execute(s, &req);
    trace->len = (size_t)(s->sink.pos - trace->p);
    if (family == PROTO_FAMILY_BINARY)
        check_binary_framing((const unsigned char *)trace->p + start, trace->len - start);
    else
        check_text_framing(trace->p + start, trace->len - start);
    if (!go_on)
        *verdict = family == PROTO_FAMILY_TEXT && req.cmd == PROTO_NONE && req.error == NULL ? FZ_CLOSED_EARLY
                                                                                            : FZ_CLOSED;
    return used;
}

static const struct fz_target target = {create, destroy, step};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_check(&target, data, size);
    return 0;
}
