/*
 * concurrency.c: many pipelining clients, every reply checked against a model.
 *
 * What: N connections (default 50) load one server at once. Connection c
 * owns the keys "key:<i>" with i % N == c (200 of 10,000 by default), so no
 * two connections touch the same key and each can predict every reply from
 * its own model of what it last wrote. A connection runs bounded rounds;
 * each round sends a random pipelined batch of 1..16 commands (set, get,
 * delete, incr, decr, append) in one write, then reads the replies in order
 * and checks each against the model. At the end one connection multi-gets
 * all keys in a single request and compares every VALUE with the model.
 *
 * Semantics modelled (memcached 1.6's, which corecache follows):
 *   - set: STORED; append: STORED if the key exists (flags kept), else
 *     NOT_STORED; delete: DELETED or NOT_FOUND; get: VALUE/END or END.
 *   - incr/decr on a missing key: NOT_FOUND. On a value that is not a
 *     number: "CLIENT_ERROR cannot increment or decrement non-numeric value".
 *     A value is a number when it is non-empty and, read as an unsigned
 *     decimal, does not overflow and stops at whitespace or at its end
 *     ("9 ab" is 9: padding from an earlier decr, then an append).
 *   - incr wraps modulo 2^64; decr stops at 0.
 *   - the reply is the new number; the stored value is that number padded
 *     with spaces to the old length when it is not longer ("10" decr 1 ->
 *     "9 "), else the bare number.
 * Values are generated so that only these rules matter: non-numeric values
 * start with a letter, numeric ones are plain digits.
 *
 * The model of a key is a small set of candidate states. Against corecache
 * (the default, strict mode) every command has exactly one outcome, so the
 * set always holds one candidate. --memcached-quirks (set by the wrapper
 * when the server is memcached itself) admits two outcomes memcached 1.6.18
 * produces depending on timing, which corecache does not share:
 *   - incr/decr rewrites the item in place (padded) only when nothing else
 *     holds a reference to it; an asynchronous LRU bump after a get can, and
 *     then the result is stored as a new, unpadded item;
 *   - reading a stored number >= 2^63 it looks for a '-' with strchr() in
 *     item memory that is not NUL-terminated, so such a value may count as
 *     non-numeric depending on the bytes that follow it.
 * A reply must match an outcome of some candidate; the candidates whose
 * outcome matched survive. A get narrows the set back to one.
 *
 * Bounds: every connection stops after --rounds rounds or once --seconds
 * have passed, whichever is first; every read times out after 10 s.
 *
 * Threads: one per connection, blocking sockets. A thread touches only its
 * own struct conn_state and its own keys' models; main() reads them after
 * joining.
 *
 * Output: one summary line; the first mismatches in detail. Exit 0 when
 * every reply matched, 1 on any mismatch or protocol error, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define VALUE_MAX 512     /* longest value a model candidate holds */
#define APPEND_MAX 20     /* longest appended piece */
#define BATCH_MAX 16      /* commands per pipelined batch */
#define CAND_MAX 16       /* candidate states per key (quirks mode only) */
#define LINE_MAX_ 1024    /* longest reply line accepted */
#define REPLY_MAX (VALUE_MAX + 4 * LINE_MAX_)
#define RECV_TIMEOUT_S 10 /* a silent server is a protocol error */
#define REPORT_MAX 5      /* mismatches printed per connection */

static const char non_numeric[] = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";

struct options {
    const char *host;
    int port;
    int conns;
    int keys;
    int rounds;
    double seconds;
    uint64_t seed;
    bool memcached_quirks;
};

/* One possible state of a key on the server. */
struct cand {
    bool exists;
    uint32_t flags;
    size_t len;
    char value[VALUE_MAX];
};

/* What the server may hold for a key: one of n candidates. */
struct key_model {
    int n;
    struct cand *cands; /* CAND_MAX entries, allocated on first use */
};

enum op_kind { OP_SET, OP_GET, OP_DELETE, OP_INCR, OP_DECR, OP_APPEND, OP_COUNT };

static const char *const op_names[OP_COUNT] = {"set", "get", "delete", "incr", "decr", "append"};

/* One command of a batch, as sent. */
struct op {
    enum op_kind kind;
    int key;
    uint32_t flags;
    size_t vlen;
    char value[APPEND_MAX + 64];
    uint64_t delta;
};

/* Buffered reader over a blocking socket with a receive timeout. */
struct reader {
    int fd;
    char *buf;
    size_t cap, start, end;
};

struct conn_state {
    const struct options *opt;
    int id;
    int fd;
    uint64_t rng;
    struct timespec deadline;
    struct key_model *model; /* all keys; this thread touches only its own */
    struct reader rd;
    struct cand *scratch; /* CAND_MAX candidates: the next state being built */
    /* results */
    uint64_t ops;
    uint64_t rounds;
    uint64_t mismatches;
    uint64_t protocol_errors;
    uint64_t ambiguous; /* replies only a quirk outcome explains */
    int reported;
};

/* -- small helpers ------------------------------------------------------ */

static uint64_t rng_next(uint64_t *state)
{
    /* xorshift64*: reproducible from --seed, good enough to choose ops */
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t rng_below(uint64_t *state, uint64_t n)
{
    return rng_next(state) % n;
}

static bool past(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

static double elapsed_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void print_escaped(FILE *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n && i < 300; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\r')
            fputs("\\r", out);
        else if (ch == '\n')
            fputs("\\n", out);
        else if (ch < 32 || ch > 126)
            fprintf(out, "\\x%02x", ch);
        else
            fputc(ch, out);
    }
    if (n > 300)
        fputs("...", out);
}

static int connect_to(const struct options *opt)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt->port)};
    int fd = -1;
    if (inet_pton(AF_INET, opt->host, &addr.sin_addr) != 1) {
        errno = EINVAL;
        goto fail;
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        goto fail;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
        goto fail;
    struct timeval tv = {.tv_sec = RECV_TIMEOUT_S};
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        goto fail;
    return fd;
fail:
    fprintf(stderr, "concurrency: connect to %s:%d: %s\n", opt->host, opt->port, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static bool send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* -- reader ------------------------------------------------------------- */

/* Receives more bytes; false on EOF, timeout, error or out of memory. */
static bool reader_fill(struct reader *rd)
{
    if (rd->start > 0) {
        memmove(rd->buf, rd->buf + rd->start, rd->end - rd->start);
        rd->end -= rd->start;
        rd->start = 0;
    }
    if (rd->end == rd->cap) {
        size_t cap = rd->cap * 2;
        char *grown = realloc(rd->buf, cap);
        if (grown == NULL)
            return false;
        rd->buf = grown;
        rd->cap = cap;
    }
    for (;;) {
        ssize_t n = recv(rd->fd, rd->buf + rd->end, rd->cap - rd->end, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        rd->end += (size_t)n;
        return true;
    }
}

/* Consumes one line with its "\n"; *line points into the reader's buffer
 * until the next call. False on EOF/timeout or a line longer than limit. */
static bool reader_line(struct reader *rd, size_t limit, const char **line, size_t *len)
{
    size_t scanned = 0;
    for (;;) {
        char *nl = memchr(rd->buf + rd->start + scanned, '\n', rd->end - rd->start - scanned);
        if (nl != NULL) {
            *line = rd->buf + rd->start;
            *len = (size_t)(nl - *line) + 1;
            rd->start += *len;
            return *len <= limit;
        }
        scanned = rd->end - rd->start;
        if (scanned > limit || !reader_fill(rd))
            return false;
    }
}

/* Consumes n bytes; *bytes is valid until the next call. */
static bool reader_bytes(struct reader *rd, size_t n, const char **bytes)
{
    while (rd->end - rd->start < n)
        if (!reader_fill(rd))
            return false;
    *bytes = rd->buf + rd->start;
    rd->start += n;
    return true;
}

/* Reads the reply to one command: one line, or for a get a VALUE block and
 * END. False on EOF, timeout or a malformed VALUE line. */
static bool read_reply(struct reader *rd, enum op_kind kind, char *got, size_t *got_len)
{
    const char *line;
    size_t len;
    *got_len = 0;
    if (!reader_line(rd, LINE_MAX_, &line, &len))
        return false;
    memcpy(got, line, len);
    *got_len = len;
    if (kind != OP_GET || len < 6 || memcmp(line, "VALUE ", 6) != 0)
        return true;
    /* VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n */
    char hdr[LINE_MAX_ + 1];
    memcpy(hdr, line, len);
    hdr[len] = '\0';
    char *last = strrchr(hdr, ' ');
    char *end = NULL;
    unsigned long bytes = last != NULL ? strtoul(last + 1, &end, 10) : 0;
    if (last == NULL || end == last + 1 || bytes > VALUE_MAX * 2)
        return false;
    const char *data;
    if (!reader_bytes(rd, bytes + 2, &data))
        return false;
    memcpy(got + *got_len, data, bytes + 2);
    *got_len += bytes + 2;
    if (!reader_line(rd, LINE_MAX_, &line, &len))
        return false;
    memcpy(got + *got_len, line, len);
    *got_len += len;
    return true;
}

/* -- the model ---------------------------------------------------------- */

/* memcached's reading of a stored value as a number (see the file
 * comment). Values here never start with a sign or a space, so strtoull's
 * leniency about those does not matter. */
static bool cand_number(const struct cand *c, uint64_t *out)
{
    char tmp[VALUE_MAX + 1];
    if (c->len == 0 || c->value[0] < '0' || c->value[0] > '9')
        return false;
    memcpy(tmp, c->value, c->len);
    tmp[c->len] = '\0';
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(tmp, &end, 10);
    if (errno == ERANGE)
        return false;
    if (*end != '\0' && *end != ' ' && *end != '\t' && *end != '\r' && *end != '\n' &&
        *end != '\v' && *end != '\f')
        return false;
    /* safe_strtoull: a value that reads as negative when signed is refused
     * if the string has a '-' anywhere (an appended "x -" counts). Within
     * the value this is deterministic; only the bytes past it are a quirk. */
    if ((long long)v < 0 && memchr(c->value, '-', c->len) != NULL)
        return false;
    *out = v;
    return true;
}

static bool cand_equal(const struct cand *a, const struct cand *b)
{
    if (a->exists != b->exists)
        return false;
    if (!a->exists)
        return true;
    return a->flags == b->flags && a->len == b->len && memcmp(a->value, b->value, a->len) == 0;
}

/* Adds next to the scratch set unless already there or the set is full
 * (the first candidates are the strict ones, so dropping late ones only
 * drops quirk paths). */
static void scratch_add(struct conn_state *cs, int *n, const struct cand *next)
{
    for (int i = 0; i < *n; i++)
        if (cand_equal(&cs->scratch[i], next))
            return;
    if (*n < CAND_MAX)
        cs->scratch[(*n)++] = *next;
}

/* Expected reply of op against candidate c, and c's next state, for
 * outcome `which` (0 = the strict outcome, 1.. = quirk outcomes).
 * Returns false when there is no such outcome. */
static bool outcome(const struct conn_state *cs, const struct op *op, const struct cand *c,
                    int which, char *reply, size_t *reply_len, struct cand *next)
{
    char key[32];
    snprintf(key, sizeof(key), "key:%d", op->key);
    *next = *c;
    switch (op->kind) {
    case OP_SET:
        if (which > 0)
            return false;
        next->exists = true;
        next->flags = op->flags;
        next->len = op->vlen;
        memcpy(next->value, op->value, op->vlen);
        *reply_len = (size_t)sprintf(reply, "STORED\r\n");
        return true;
    case OP_APPEND:
        if (which > 0)
            return false;
        if (!c->exists) {
            *reply_len = (size_t)sprintf(reply, "NOT_STORED\r\n");
        } else if (c->len + op->vlen > VALUE_MAX) {
            return false; /* cannot happen: plan_command bounds the growth */
        } else {
            memcpy(next->value + c->len, op->value, op->vlen);
            next->len = c->len + op->vlen;
            *reply_len = (size_t)sprintf(reply, "STORED\r\n");
        }
        return true;
    case OP_GET:
        if (which > 0)
            return false;
        if (c->exists) {
            size_t h = (size_t)sprintf(reply, "VALUE %s %" PRIu32 " %zu\r\n", key, c->flags, c->len);
            memcpy(reply + h, c->value, c->len);
            h += c->len;
            h += (size_t)sprintf(reply + h, "\r\nEND\r\n");
            *reply_len = h;
        } else {
            *reply_len = (size_t)sprintf(reply, "END\r\n");
        }
        return true;
    case OP_DELETE:
        if (which > 0)
            return false;
        *reply_len = (size_t)sprintf(reply, c->exists ? "DELETED\r\n" : "NOT_FOUND\r\n");
        next->exists = false;
        return true;
    case OP_INCR:
    case OP_DECR: {
        uint64_t cur;
        if (!c->exists) {
            if (which > 0)
                return false;
            *reply_len = (size_t)sprintf(reply, "NOT_FOUND\r\n");
            return true;
        }
        if (!cand_number(c, &cur)) {
            if (which > 0)
                return false;
            *reply_len = (size_t)sprintf(reply, "%s", non_numeric);
            return true;
        }
        uint64_t res = op->kind == OP_INCR ? cur + op->delta : (op->delta > cur ? 0 : cur - op->delta);
        char digits[32];
        size_t dlen = (size_t)sprintf(digits, "%" PRIu64, res);
        if (which == 0) { /* strict: in place, padded, when it fits */
            memcpy(next->value, digits, dlen);
            if (dlen <= c->len)
                memset(next->value + dlen, ' ', c->len - dlen);
            else
                next->len = dlen;
            *reply_len = (size_t)sprintf(reply, "%s\r\n", digits);
            return true;
        }
        if (!cs->opt->memcached_quirks)
            return false;
        if (which == 1 && dlen < c->len) { /* quirk: replaced by a new, unpadded item */
            memcpy(next->value, digits, dlen);
            next->len = dlen;
            *reply_len = (size_t)sprintf(reply, "%s\r\n", digits);
            return true;
        }
        if (which == 2 && cur >= (UINT64_C(1) << 63)) { /* quirk: strchr past the value */
            *reply_len = (size_t)sprintf(reply, "%s", non_numeric);
            return true;
        }
        return false;
    }
    default:
        return false;
    }
}

/* Checks got against every outcome of every candidate of op's key and keeps
 * the candidates that match. False (model unchanged) on a mismatch; then
 * want/want_len hold the strict expectation of the first candidate. */
static bool model_apply(struct conn_state *cs, const struct op *op, const char *got,
                        size_t got_len, char *want, size_t *want_len)
{
    struct key_model *km = &cs->model[op->key];
    char reply[REPLY_MAX];
    size_t reply_len;
    struct cand next;
    int n = 0;
    bool strict = false;
    *want_len = 0;
    for (int i = 0; i < km->n; i++) {
        for (int which = 0; which < 3; which++) {
            if (!outcome(cs, op, &km->cands[i], which, reply, &reply_len, &next))
                continue;
            if (i == 0 && which == 0) {
                memcpy(want, reply, reply_len);
                *want_len = reply_len;
            }
            if (reply_len == got_len && memcmp(reply, got, got_len) == 0) {
                scratch_add(cs, &n, &next);
                strict |= which == 0;
            }
        }
    }
    if (n == 0)
        return false;
    memcpy(km->cands, cs->scratch, sizeof(struct cand) * (size_t)n);
    km->n = n;
    cs->ambiguous += !strict;
    return true;
}

/* -- planning ----------------------------------------------------------- */

/* A random value: plain digits of several magnitudes, or text that starts
 * with a letter (with spaces and "\r\n" inside: values are binary-safe).
 * Returns its length, at most room - 1. */
static size_t make_value(uint64_t *rng, char *out, size_t room, bool for_append)
{
    int len = 0;
    switch (rng_below(rng, for_append ? 3 : 6)) {
    case 0: /* small number */
        len = snprintf(out, room, "%" PRIu64, rng_below(rng, 1000));
        break;
    case 1: { /* text */
        static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzXYZ-_ .:\r\n";
        int n = 1 + (int)rng_below(rng, 20);
        out[len++] = (char)('a' + rng_below(rng, 26));
        while (len < n && (size_t)len + 1 < room)
            out[len++] = alphabet[rng_below(rng, sizeof(alphabet) - 1)];
        break;
    }
    case 2: /* near 2^64, so incr wraps */
        len = snprintf(out, room, "%" PRIu64, UINT64_MAX - rng_below(rng, 20));
        break;
    case 3: /* any 64-bit number */
        len = snprintf(out, room, "%" PRIu64, rng_next(rng) >> rng_below(rng, 64));
        break;
    case 4: /* a mid-size number whose decr shortens it */
        len = snprintf(out, room, "%" PRIu64, 1000 + rng_below(rng, 100000));
        break;
    default: /* empty: present, but not a number */
        len = 0;
        break;
    }
    if (len < 0)
        len = 0;
    if ((size_t)len >= room)
        len = (int)room - 1;
    return (size_t)len;
}

static uint64_t make_delta(uint64_t *rng)
{
    switch (rng_below(rng, 4)) {
    case 0:
        return rng_below(rng, 10);
    case 1:
        return rng_below(rng, 100000);
    case 2:
        return UINT64_MAX - rng_below(rng, 10);
    default:
        return rng_next(rng);
    }
}

/* Longest value any candidate of key may hold. */
static size_t model_max_len(const struct key_model *km)
{
    size_t max = 0;
    for (int i = 0; i < km->n; i++)
        if (km->cands[i].exists && km->cands[i].len > max)
            max = km->cands[i].len;
    return max;
}

/* Chooses a command and writes it to cmd; returns its length. */
static size_t plan_command(struct conn_state *cs, struct op *op, char *cmd, size_t room)
{
    /* weights: set 3, get 3, delete 1, incr 2, decr 2, append 2 */
    static const enum op_kind weights[] = {OP_SET,  OP_SET,  OP_SET,  OP_GET,    OP_GET,
                                           OP_GET,  OP_DELETE, OP_INCR, OP_INCR, OP_DECR,
                                           OP_DECR, OP_APPEND, OP_APPEND};
    char key[32];
    snprintf(key, sizeof(key), "key:%d", op->key);
    op->kind = weights[rng_below(&cs->rng, sizeof(weights) / sizeof(weights[0]))];
    /* A batch can grow a value by BATCH_MAX appends (and an incr to 20
     * digits); past that bound an append becomes a set. */
    if (op->kind == OP_APPEND &&
        model_max_len(&cs->model[op->key]) + BATCH_MAX * APPEND_MAX + 24 > VALUE_MAX)
        op->kind = OP_SET;
    size_t n = 0;
    switch (op->kind) {
    case OP_SET:
    case OP_APPEND:
        op->vlen = make_value(&cs->rng, op->value,
                              op->kind == OP_SET ? sizeof(op->value) : APPEND_MAX + 1,
                              op->kind == OP_APPEND);
        op->flags = op->kind == OP_SET && rng_below(&cs->rng, 4) == 0 ? (uint32_t)rng_next(&cs->rng)
                                                                       : 0;
        n = (size_t)snprintf(cmd, room, "%s %s %" PRIu32 " 0 %zu\r\n", op_names[op->kind], key,
                             op->flags, op->vlen);
        memcpy(cmd + n, op->value, op->vlen);
        n += op->vlen;
        memcpy(cmd + n, "\r\n", 2);
        n += 2;
        break;
    case OP_GET:
    case OP_DELETE:
        n = (size_t)snprintf(cmd, room, "%s %s\r\n", op_names[op->kind], key);
        break;
    case OP_INCR:
    case OP_DECR:
        op->delta = make_delta(&cs->rng);
        n = (size_t)snprintf(cmd, room, "%s %s %" PRIu64 "\r\n", op_names[op->kind], key,
                             op->delta);
        break;
    default:
        break;
    }
    return n;
}

static void report(struct conn_state *cs, const char *what, const struct op *op, const char *want,
                   size_t want_len, const char *got, size_t got_len)
{
    if (cs->reported++ >= REPORT_MAX)
        return;
    flockfile(stdout);
    printf("conn %d: %s on %s key:%d", cs->id, what, op_names[op->kind], op->key);
    if (op->kind == OP_INCR || op->kind == OP_DECR)
        printf(" %" PRIu64, op->delta);
    if (op->kind == OP_SET || op->kind == OP_APPEND) {
        printf(" \"");
        print_escaped(stdout, op->value, op->vlen);
        printf("\"");
    }
    printf("\n  want: \"");
    print_escaped(stdout, want, want_len);
    printf("\"\n  got:  \"");
    print_escaped(stdout, got, got_len);
    printf("\"\n");
    funlockfile(stdout);
}

static void *conn_main(void *arg)
{
    struct conn_state *cs = arg;
    const struct options *opt = cs->opt;
    int owned = 0;
    int *my_keys = malloc(sizeof(int) * (size_t)(opt->keys / opt->conns + 1));
    size_t cmd_cap = BATCH_MAX * (sizeof(((struct op *)0)->value) + 128);
    char *cmd = malloc(cmd_cap);
    struct op *batch = malloc(sizeof(*batch) * BATCH_MAX);
    char *got = malloc(REPLY_MAX);
    char *want = malloc(REPLY_MAX);
    if (my_keys == NULL || cmd == NULL || batch == NULL || got == NULL || want == NULL) {
        cs->protocol_errors++;
        goto done;
    }
    for (int k = cs->id; k < opt->keys; k += opt->conns)
        my_keys[owned++] = k;

    for (int round = 0; round < opt->rounds && owned > 0 && !past(&cs->deadline); round++) {
        int count = 1 + (int)rng_below(&cs->rng, BATCH_MAX);
        size_t used = 0;
        for (int i = 0; i < count; i++) {
            batch[i].key = my_keys[rng_below(&cs->rng, (uint64_t)owned)];
            used += plan_command(cs, &batch[i], cmd + used, cmd_cap - used);
        }
        if (!send_all(cs->fd, cmd, used)) {
            fprintf(stderr, "conn %d: send failed: %s\n", cs->id, strerror(errno));
            cs->protocol_errors++;
            goto done;
        }
        for (int i = 0; i < count; i++) {
            size_t got_len, want_len;
            bool ok = read_reply(&cs->rd, batch[i].kind, got, &got_len);
            cs->ops++;
            if (!ok) {
                cs->protocol_errors++;
                report(cs, "protocol error (EOF, timeout or malformed reply)", &batch[i], "", 0,
                       got, got_len);
                goto done; /* the stream is out of step: stop this connection */
            }
            if (!model_apply(cs, &batch[i], got, got_len, want, &want_len)) {
                cs->mismatches++;
                report(cs, "mismatch", &batch[i], want, want_len, got, got_len);
                goto done; /* the model no longer knows the server's state */
            }
        }
        cs->rounds++;
    }
done:
    free(my_keys);
    free(cmd);
    free(batch);
    free(got);
    free(want);
    return NULL;
}

/* The final check: one request for every key; each VALUE must match a
 * candidate of its key, and a key not returned must have a candidate that
 * does not exist. */
static bool final_multiget(const struct options *opt, const struct key_model *model,
                           uint64_t *checked, uint64_t *mismatches)
{
    bool ok = false;
    size_t cap = (size_t)opt->keys * 16 + 16, used = 0;
    char *req = malloc(cap);
    struct reader rd = {.fd = -1, .cap = 1 << 16};
    rd.buf = malloc(rd.cap);
    int fd = connect_to(opt);
    int next = 0; /* keys before `next` were returned or found missing */
    if (req == NULL || rd.buf == NULL || fd < 0)
        goto fail;
    rd.fd = fd;
    used = (size_t)sprintf(req, "get");
    for (int k = 0; k < opt->keys; k++)
        used += (size_t)sprintf(req + used, " key:%d", k);
    used += (size_t)sprintf(req + used, "\r\n");
    if (!send_all(fd, req, used))
        goto fail;

    for (;;) {
        const char *line;
        size_t len;
        int key = opt->keys;
        uint32_t flags = 0;
        size_t bytes = 0;
        if (!reader_line(&rd, LINE_MAX_, &line, &len)) {
            printf("final get: no reply line (EOF or timeout)\n");
            goto fail;
        }
        bool end = len == 5 && memcmp(line, "END\r\n", 5) == 0;
        if (!end) {
            char hdr[LINE_MAX_ + 1];
            memcpy(hdr, line, len);
            hdr[len] = '\0';
            if (sscanf(hdr, "VALUE key:%d %" SCNu32 " %zu\r\n", &key, &flags, &bytes) != 3 ||
                key < next || key >= opt->keys || bytes > VALUE_MAX * 2) {
                printf("final get: unexpected line \"");
                print_escaped(stdout, line, len);
                printf("\"\n");
                goto fail;
            }
        }
        for (; next < key; next++, (*checked)++) {
            const struct key_model *km = &model[next];
            bool may_miss = km->n == 0;
            for (int i = 0; i < km->n; i++)
                may_miss |= !km->cands[i].exists;
            if (!may_miss) {
                (*mismatches)++;
                printf("final get: key:%d missing, the model has it\n", next);
            }
        }
        if (end)
            break;
        const char *data;
        if (!reader_bytes(&rd, bytes + 2, &data))
            goto fail;
        const struct key_model *km = &model[key];
        struct cand seen = {.exists = true, .flags = flags, .len = bytes};
        bool match = false;
        if (bytes <= VALUE_MAX && memcmp(data + bytes, "\r\n", 2) == 0) {
            memcpy(seen.value, data, bytes);
            for (int i = 0; i < km->n; i++)
                match |= cand_equal(&km->cands[i], &seen);
        }
        if (!match) {
            (*mismatches)++;
            printf("final get: key:%d is flags %" PRIu32 " \"", key, flags);
            print_escaped(stdout, data, bytes);
            printf("\"; the model has ");
            if (km->n == 0 || !km->cands[0].exists)
                printf("no value\n");
            else {
                printf("flags %" PRIu32 " \"", km->cands[0].flags);
                print_escaped(stdout, km->cands[0].value, km->cands[0].len);
                printf("\"\n");
            }
        }
        (*checked)++;
        next = key + 1;
    }
    ok = true;
fail:
    if (fd >= 0)
        close(fd);
    free(req);
    free(rd.buf);
    return ok;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: concurrency --port N [--host 127.0.0.1] [--conns 50] [--keys 10000]\n"
                 "                   [--rounds 300] [--seconds 30] [--seed N] [--memcached-quirks]\n");
}

static bool parse_options(int argc, char **argv, struct options *opt)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},   {"port", required_argument, NULL, 'p'},
        {"conns", required_argument, NULL, 'c'},  {"keys", required_argument, NULL, 'k'},
        {"rounds", required_argument, NULL, 'r'}, {"seconds", required_argument, NULL, 's'},
        {"seed", required_argument, NULL, 'S'},   {"memcached-quirks", no_argument, NULL, 'Q'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    *opt = (struct options){.host = "127.0.0.1", .conns = 50, .keys = 10000, .rounds = 300,
                            .seconds = 30.0};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'H': opt->host = optarg; break;
        case 'p': opt->port = atoi(optarg); break;
        case 'c': opt->conns = atoi(optarg); break;
        case 'k': opt->keys = atoi(optarg); break;
        case 'r': opt->rounds = atoi(optarg); break;
        case 's': opt->seconds = atof(optarg); break;
        case 'S': opt->seed = strtoull(optarg, NULL, 0); break;
        case 'Q': opt->memcached_quirks = true; break;
        case 'h': usage(stdout); exit(0);
        default: return false;
        }
    }
    if (opt->seed == 0)
        opt->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return optind == argc && opt->port > 0 && opt->port < 65536 && opt->conns > 0 &&
           opt->conns <= 1000 && opt->keys >= opt->conns && opt->keys <= 1000000 &&
           opt->rounds > 0 && opt->seconds > 0 && opt->seconds < 3600;
}

int main(int argc, char **argv)
{
    struct options opt;
    if (!parse_options(argc, argv, &opt)) {
        usage(stderr);
        return 2;
    }
    printf("concurrency: %s:%d conns=%d keys=%d rounds=%d seconds=%.0f seed=%" PRIu64 "%s\n",
           opt.host, opt.port, opt.conns, opt.keys, opt.rounds, opt.seconds, opt.seed,
           opt.memcached_quirks ? " memcached-quirks" : "");
    fflush(stdout);

    int rc = 1, connected = 0, started = 0;
    struct timespec start, deadline;
    clock_gettime(CLOCK_MONOTONIC, &start);
    deadline = start;
    deadline.tv_sec += (time_t)opt.seconds;
    deadline.tv_nsec += (long)((opt.seconds - (double)(time_t)opt.seconds) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    struct key_model *model = calloc((size_t)opt.keys, sizeof(*model));
    struct conn_state *cs = calloc((size_t)opt.conns, sizeof(*cs));
    pthread_t *threads = calloc((size_t)opt.conns, sizeof(*threads));
    if (model == NULL || cs == NULL || threads == NULL)
        goto fail;
    for (int k = 0; k < opt.keys; k++) {
        model[k].cands = malloc(sizeof(struct cand) * CAND_MAX);
        if (model[k].cands == NULL)
            goto fail;
        model[k].n = 1;
        model[k].cands[0].exists = false;
    }

    /* Connect everyone first so that all connections are open at once. */
    for (int i = 0; i < opt.conns; i++) {
        cs[i] = (struct conn_state){.opt = &opt, .id = i, .model = model, .deadline = deadline,
                                    .rng = opt.seed * 0x9E3779B97F4A7C15ULL + (uint64_t)i + 1};
        cs[i].fd = connect_to(&opt);
        cs[i].rd = (struct reader){.fd = cs[i].fd, .cap = 4096};
        cs[i].rd.buf = malloc(cs[i].rd.cap);
        cs[i].scratch = malloc(sizeof(struct cand) * CAND_MAX);
        connected++;
        if (cs[i].fd < 0 || cs[i].rd.buf == NULL || cs[i].scratch == NULL)
            goto fail;
    }
    /* A clean slate: keys left by an earlier run would contradict the model. */
    {
        static const char flush[] = "flush_all\r\n";
        const char *line;
        size_t len;
        if (!send_all(cs[0].fd, flush, sizeof(flush) - 1) ||
            !reader_line(&cs[0].rd, LINE_MAX_, &line, &len) || len != 4 ||
            memcmp(line, "OK\r\n", 4) != 0) {
            printf("flush_all failed\n");
            goto fail;
        }
    }
    for (; started < opt.conns; started++) {
        if (pthread_create(&threads[started], NULL, conn_main, &cs[started]) != 0) {
            printf("pthread_create failed\n");
            goto fail;
        }
    }

fail:
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);

    uint64_t ops = 0, rounds = 0, mismatches = 0, errors = 0, ambiguous = 0, checked = 0;
    for (int i = 0; i < connected; i++) {
        ops += cs[i].ops;
        rounds += cs[i].rounds;
        mismatches += cs[i].mismatches;
        errors += cs[i].protocol_errors;
        ambiguous += cs[i].ambiguous;
        if (cs[i].fd >= 0)
            close(cs[i].fd);
        free(cs[i].rd.buf);
        free(cs[i].scratch);
    }
    bool setup_ok = started == opt.conns;
    bool final_ok = setup_ok && final_multiget(&opt, model, &checked, &mismatches);
    printf("concurrency: %" PRIu64 " ops in %" PRIu64 " rounds over %d connections in %.1fs; "
           "%" PRIu64 " replies only a memcached quirk explains\n",
           ops, rounds, opt.conns, elapsed_since(&start), ambiguous);
    printf("concurrency: final get checked %" PRIu64 " keys; %" PRIu64 " mismatches, %" PRIu64
           " protocol errors\n",
           checked, mismatches, errors);
    if (setup_ok && final_ok && mismatches == 0 && errors == 0 && ops > 0 &&
        checked == (uint64_t)opt.keys)
        rc = 0;
    if (model != NULL)
        for (int k = 0; k < opt.keys; k++)
            free(model[k].cands);
    free(model);
    free(cs);
    free(threads);
    return rc;
}
