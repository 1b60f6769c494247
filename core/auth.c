/*
 * auth.c: password files, constant-time credential checks, SASL PLAIN and
 * memcached's ascii authentication exchange.
 *
 * The database keeps, per entry, the SHA-256 digests of the user name and
 * of the password, never the password itself:
 *
 *   entries: [ H(user0) | H(pass0) ] [ H(user1) | H(pass1) ] ...  (32 B each)
 *
 * A check hashes the offered user and password once, then compares the
 * digests with every entry, CRYPTO_memcmp (constant time over 32 bytes),
 * folding the verdicts with bitwise operations and no early exit. So the
 * time depends only on the number of entries and on the offered lengths
 * (which the client knows), not on which entry matched, on where the
 * bytes first differ, or on the stored lengths: memcached 1.6.18 compared
 * the lengths first and returned at the first match, which a client can
 * time. Hashing is here only to make the compared lengths equal; a
 * password file still holds passwords in the clear, as memcached's does.
 *
 * auth_text_step reproduces memcached 1.6.18's try_read_command_asciiauth
 * (proto_text.c) over a byte buffer, with one limit of ours: a credential
 * block longer than AUTH_TEXT_MAX closes the connection instead of being
 * buffered.
 */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_DIGEST SHA256_DIGEST_LENGTH
/* memcached closes a connection with no newline in its first 2048 bytes. */
#define AUTH_LINE_MAX 2048
/* The largest "user password" block we buffer. */
#define AUTH_TEXT_MAX 4096

struct auth_entry {
    unsigned char user[AUTH_DIGEST];
    unsigned char pass[AUTH_DIGEST];
};

struct auth_db {
    size_t count;
    struct auth_entry entries[];
};

static void digest(const char *data, size_t len, unsigned char out[AUTH_DIGEST])
{
    SHA256((const unsigned char *)data, len, out);
}

struct auth_db *auth_db_create(const char *text, size_t len, size_t *bad_line)
{
    *bad_line = 0;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    struct auth_db *db = calloc(1, sizeof(*db) + lines * sizeof(struct auth_entry));
    if (db == NULL)
        return NULL;
    size_t pos = 0, lineno = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += llen + (nl != NULL);
        lineno++;
        while (llen > 0 && line[llen - 1] == '\r')
            llen--;
        if (llen == 0)
            continue;
        const char *colon = memchr(line, ':', llen);
        if (colon == NULL) {
            *bad_line = lineno;
            free(db);
            return NULL;
        }
        struct auth_entry *e = &db->entries[db->count++];
        digest(line, (size_t)(colon - line), e->user);
        digest(colon + 1, llen - (size_t)(colon - line) - 1, e->pass);
    }
    return db;
}

void auth_db_destroy(struct auth_db **db)
{
    if (*db == NULL)
        return;
    OPENSSL_cleanse((*db)->entries, (*db)->count * sizeof(struct auth_entry));
    free(*db);
    *db = NULL;
}

size_t auth_db_count(const struct auth_db *db)
{
    return db->count;
}

bool auth_db_check(const struct auth_db *db, const char *user, size_t ulen, const char *pass,
                   size_t plen)
{
    unsigned char u[AUTH_DIGEST], p[AUTH_DIGEST];
    digest(user, ulen, u);
    digest(pass, plen, p);
    unsigned found = 0;
    for (size_t i = 0; i < db->count; i++) {
        const struct auth_entry *e = &db->entries[i];
        unsigned diff = (unsigned)CRYPTO_memcmp(u, e->user, AUTH_DIGEST) |
                        (unsigned)CRYPTO_memcmp(p, e->pass, AUTH_DIGEST);
        found |= (unsigned)(diff == 0);
    }
    OPENSSL_cleanse(p, sizeof(p));
    return found != 0;
}

bool auth_db_check_pair(const struct auth_db *db, const char *pair, size_t len)
{
    const char *colon = memchr(pair, ':', len);
    if (colon == NULL)
        return false;
    size_t ulen = (size_t)(colon - pair);
    return auth_db_check(db, pair, ulen, colon + 1, len - ulen - 1);
}

bool auth_plain_check(const struct auth_db *db, const char *msg, size_t len)
{
    const char *nul1 = memchr(msg, '\0', len);
    if (nul1 == NULL)
        return false;
    const char *user = nul1 + 1;
    size_t rest = len - (size_t)(user - msg);
    const char *nul2 = memchr(user, '\0', rest);
    if (nul2 == NULL)
        return false;
    size_t ulen = (size_t)(nul2 - user);
    const char *pass = nul2 + 1;
    size_t plen = len - (size_t)(pass - msg);
    size_t zlen = (size_t)(nul1 - msg);
    bool ok = auth_db_check(db, user, ulen, pass, plen);
    /* acting as another user is not offered */
    return ok && (zlen == 0 || (zlen == ulen && memcmp(msg, user, ulen) == 0));
}

/* ---- memcached's ascii exchange ---------------------------------------- */

struct token {
    const char *s;
    size_t len;
};

/* memcached's tokenize_command: words separated by single spaces. */
static size_t tokenize(const char *s, size_t len, struct token *toks, size_t max)
{
    size_t n = 0, i = 0;
    while (i < len && n < max) {
        while (i < len && s[i] == ' ')
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && s[i] != ' ')
            i++;
        toks[n].s = s + start;
        toks[n].len = i - start;
        n++;
    }
    return n;
}

/* memcached's safe_strtoul on a token that may end in '\r'. */
static bool token_size(const struct token *t, size_t *out)
{
    size_t len = t->len;
    if (len > 0 && t->s[len - 1] == '\r')
        len--;
    if (len == 0 || len > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (t->s[i] < '0' || t->s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(t->s[i] - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = (size_t)v;
    return true;
}

static void reply(struct auth_text_result *out, size_t used, const char *text)
{
    out->verdict = AUTH_TEXT_REPLY;
    out->used = used;
    out->reply = text;
}

void auth_text_step(const struct auth_db *db, const char *buf, size_t len,
                    struct auth_text_result *out)
{
    memset(out, 0, sizeof(*out));
    out->verdict = AUTH_TEXT_MORE;
    const char *nl = memchr(buf, '\n', len);
    if (nl == NULL) {
        if (len > AUTH_LINE_MAX)
            out->verdict = AUTH_TEXT_CLOSE;
        return;
    }
    size_t line_len = (size_t)(nl - buf) + 1;
    struct token toks[8];
    size_t n = tokenize(buf, line_len - 1, toks, 8);
    size_t size = 0;
    if (n < 5 || toks[0].len != 3 || memcmp(toks[0].s, "set", 3) != 0 || !token_size(&toks[4], &size)) {
        reply(out, line_len, "CLIENT_ERROR unauthenticated");
        return;
    }
    if (size > AUTH_TEXT_MAX) {
        out->verdict = AUTH_TEXT_CLOSE;
        return;
    }
    size_t total = line_len + size + 2;
    if (len < total) {
        out->need = total;
        return;
    }
    const char *data = buf + line_len;
    if (data[size] != '\r' || data[size + 1] != '\n') {
        reply(out, total, "CLIENT_ERROR bad command line termination");
        return;
    }
    n = tokenize(data, size, toks, 8);
    if (n < 2) {
        reply(out, total, "CLIENT_ERROR bad authentication token format");
        return;
    }
    out->attempt = true;
    if (auth_db_check(db, toks[0].s, toks[0].len, toks[1].s, toks[1].len)) {
        out->authenticated = true;
        reply(out, total, "STORED");
    } else {
        reply(out, total, "CLIENT_ERROR authentication failure");
    }
}
