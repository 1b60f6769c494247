/*
 * login.c: the login protocols and their password files.
 *
 * ascii (-Y, memcached 1.6.18's try_read_command_asciiauth): until a
 * client sends `set <any> <any> <any> <n>\r\n<user> <password>\r\n` with a
 * known user, every command line is answered "CLIENT_ERROR
 * unauthenticated" (meta commands included) and nothing reaches the
 * cache; a connection that sends 2048 bytes without a newline is closed.
 * The exchange itself is core/auth.c's auth_text_step.
 *
 * binary SASL (-S, memcached 1.6.18's proto_bin.c): before
 * authentication only SASL_LIST_MECHS (answers "PLAIN"), SASL_AUTH,
 * SASL_STEP and VERSION are served; any other opcode is answered with
 * status 0x20 "Auth failure." and the connection is closed once that is
 * sent. SASL_AUTH with mechanism PLAIN checks authzid\0user\0password
 * against the password file (memcached hands this to Cyrus SASL; corecache
 * needs no Cyrus daemon or sasldb: the file has memcached -Y's format,
 * path from --sasl-pwdb or $MEMCACHED_SASL_PWDB as memcached's
 * --enable-sasl-pwdb builds read it). Success answers "Authenticated"; a
 * failure 0x20 "Auth failure." with the connection kept, as memcached.
 * After success the connection speaks plain binary (SASL opcodes then
 * answer "Unknown command"; memcached would let a client log in again).
 *
 * Password files are read here (io/ owns the files) and parsed by
 * core/auth.c. A reload publishes a new database through an atomic
 * pointer; the old one is kept until teardown, since a shard may be
 * checking a credential against it right now.
 */
#include "login.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/auth.h"
#include "../core/proto_bin.h"
#include "conn.h"
#include "serve.h"
#include "shard.h"

enum { LOGIN_TEXT, LOGIN_SASL, LOGIN_HTTP, LOGIN_KINDS };

struct retired {
    struct auth_db *db;
    struct retired *next;
};

struct login {
    const char *path[LOGIN_KINDS];
    _Atomic(struct auth_db *) db[LOGIN_KINDS];
    struct retired *retired;
};

static const char *const kind_flag[LOGIN_KINDS] = {"-Y", "-S", "--metrics-auth-file"};

/* Reads and parses one password file. */
static struct auth_db *load_file(const char *flag, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "corecache: %s %s: cannot open the password file: %s", flag, path,
                 strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    size_t got;
    while (text != NULL && (got = fread(text + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *more = cap < (64u << 20) ? realloc(text, cap * 2) : NULL;
            if (more == NULL) {
                free(text);
                text = NULL;
                break;
            }
            text = more;
            cap *= 2;
        }
    }
    fclose(f);
    if (text == NULL) {
        snprintf(err, errlen, "corecache: %s %s: out of memory reading the password file", flag, path);
        return NULL;
    }
    size_t bad_line = 0;
    struct auth_db *db = auth_db_create(text, len, &bad_line);
    memset(text, 0, len);
    free(text);
    if (db == NULL) {
        if (bad_line != 0)
            snprintf(err, errlen,
                     "corecache: %s %s: line %zu is malformed: each line must be user:password", flag,
                     path, bad_line);
        else
            snprintf(err, errlen, "corecache: %s %s: out of memory", flag, path);
        return NULL;
    }
    if (auth_db_count(db) == 0) {
        auth_db_destroy(&db);
        snprintf(err, errlen, "corecache: %s %s: the password file has no user:password line", flag, path);
        return NULL;
    }
    return db;
}

int login_create(struct login **out, const struct cfg *cfg, char *err, size_t errlen)
{
    *out = NULL;
    const char *sasl_path = cfg->sasl_pwdb != NULL ? cfg->sasl_pwdb : getenv("MEMCACHED_SASL_PWDB");
    if (cfg->enable_sasl && strcmp(cfg->protocol, "ascii") == 0) {
        snprintf(err, errlen, "corecache: -S -B ascii: you cannot allow the ASCII protocol while using SASL");
        return -EINVAL;
    }
    if (cfg->enable_sasl && sasl_path == NULL) {
        snprintf(err, errlen,
                 "corecache: -S: SASL PLAIN needs a password file of user:password lines: "
                 "--sasl-pwdb=<file> or MEMCACHED_SASL_PWDB=<file>");
        return -EINVAL;
    }
    if (cfg->auth_file != NULL && strcmp(cfg->protocol, "binary") == 0) {
        snprintf(err, errlen,
                 "corecache: -Y -B binary: you cannot allow the BINARY protocol while using ascii "
                 "authentication tokens");
        return -EINVAL;
    }
    if (cfg->auth_file != NULL && cfg->enable_sasl) {
        snprintf(err, errlen, "corecache: -Y and -S: choose ascii (-Y) or binary SASL (-S) authentication");
        return -EINVAL;
    }
    const char *paths[LOGIN_KINDS] = {cfg->auth_file, cfg->enable_sasl ? sasl_path : NULL,
                                      cfg->metrics_auth_file};
    if (paths[0] == NULL && paths[1] == NULL && paths[2] == NULL)
        return 0;
    struct login *login = calloc(1, sizeof(*login));
    if (login == NULL) {
        snprintf(err, errlen, "corecache: out of memory");
        return -ENOMEM;
    }
    for (int k = 0; k < LOGIN_KINDS; k++) {
        login->path[k] = paths[k];
        if (paths[k] == NULL)
            continue;
        struct auth_db *db = load_file(kind_flag[k], paths[k], err, errlen);
        if (db == NULL) {
            login_destroy(&login);
            return -EINVAL;
        }
        atomic_store(&login->db[k], db);
    }
    *out = login;
    return 0;
}

void login_destroy(struct login **login)
{
    if (*login == NULL)
        return;
    for (int k = 0; k < LOGIN_KINDS; k++) {
        struct auth_db *db = atomic_load(&(*login)->db[k]);
        auth_db_destroy(&db);
    }
    while ((*login)->retired != NULL) {
        struct retired *r = (*login)->retired;
        (*login)->retired = r->next;
        auth_db_destroy(&r->db);
        free(r);
    }
    free(*login);
    *login = NULL;
}

void login_reload(struct login *login, char *err, size_t errlen)
{
    err[0] = '\0';
    if (login == NULL)
        return;
    for (int k = 0; k < LOGIN_KINDS; k++) {
        if (login->path[k] == NULL)
            continue;
        struct auth_db *db = load_file(kind_flag[k], login->path[k], err, errlen);
        struct retired *r = db != NULL ? malloc(sizeof(*r)) : NULL;
        if (r == NULL) {
            auth_db_destroy(&db);
            continue;
        }
        r->db = atomic_exchange(&login->db[k], db);
        r->next = login->retired;
        login->retired = r;
    }
}

bool login_http_enabled(const struct login *login)
{
    return login != NULL && login->path[LOGIN_HTTP] != NULL;
}

bool login_http_check(const struct login *login, const char *credentials, size_t len)
{
    if (!login_http_enabled(login))
        return true;
    struct auth_db *db = atomic_load((_Atomic(struct auth_db *) *)&login->db[LOGIN_HTTP]);
    return auth_db_check_pair(db, credentials, len);
}

static struct auth_db *conn_db(struct conn *conn, int kind)
{
    return atomic_load(&conn->shard->srv->login->db[kind]);
}

/* --- ascii (-Y) ------------------------------------------------------- */

static size_t text_login_step(struct conn *conn, const char *buf, size_t len, size_t *need)
{
    struct auth_text_result r;
    auth_text_step(conn_db(conn, LOGIN_TEXT), buf, len, &r);
    switch (r.verdict) {
    case AUTH_TEXT_MORE:
        *need = r.need;
        return 0;
    case AUTH_TEXT_CLOSE:
        conn_close(conn, "unauthenticated client sent no command line");
        return len;
    case AUTH_TEXT_REPLY:
        break;
    }
    if (r.attempt) {
        conn->shard->m.auth_cmds++;
        if (!r.authenticated)
            conn->shard->m.auth_errors++;
    }
    if (!sink_put(&conn->out.sink, r.reply, strlen(r.reply)) || !sink_puts(&conn->out.sink, "\r\n")) {
        conn_close(conn, "out of memory composing a reply");
        return len;
    }
    if (r.authenticated)
        conn->ops = &serve_text_ops;
    return r.used;
}

static const struct conn_ops login_text_ops = {
    .name = "ascii-auth",
    .step = text_login_step,
};

/* --- binary SASL (-S) -------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A response packet: no extras, no key, body `text`. */
static bool bin_answer(struct conn *conn, const unsigned char *req, uint16_t status, const char *text)
{
    size_t blen = strlen(text);
    char *p = sink_reserve(&conn->out.sink, PROTO_BIN_HEADER_LEN + blen);
    if (p == NULL)
        return false;
    memset(p, 0, PROTO_BIN_HEADER_LEN);
    p[0] = (char)PROTO_BIN_RES_MAGIC;
    p[1] = (char)req[1];
    p[6] = (char)(status >> 8);
    p[7] = (char)(status & 0xff);
    p[8] = (char)(blen >> 24);
    p[9] = (char)(blen >> 16);
    p[10] = (char)(blen >> 8);
    p[11] = (char)blen;
    memcpy(p + 12, req + 12, 4); /* opaque */
    memcpy(p + PROTO_BIN_HEADER_LEN, text, blen);
    sink_commit(&conn->out.sink, PROTO_BIN_HEADER_LEN + blen);
    return true;
}

#define SASL_MECH_MAX 32 /* memcached's MAX_SASL_MECH_LEN */
#define SASL_BODY_MAX 4096

static size_t sasl_login_step(struct conn *conn, const char *buf, size_t len, size_t *need)
{
    const unsigned char *h = (const unsigned char *)buf;
    if (h[0] != PROTO_BIN_REQ_MAGIC) /* not binary: the binary parser closes */
        return serve_binary_ops.step(conn, buf, len, need);
    if (len < PROTO_BIN_HEADER_LEN) {
        *need = PROTO_BIN_HEADER_LEN;
        return 0;
    }
    uint8_t op = h[1];
    uint32_t keylen = (uint32_t)h[2] << 8 | h[3];
    uint32_t extlen = h[4];
    uint32_t bodylen = be32(h + 8);
    struct shard *shard = conn->shard;
    bool ok = true;

    switch (op) {
    case PROTO_BIN_VERSION:
        return serve_binary_ops.step(conn, buf, len, need);
    case PROTO_BIN_SASL_LIST_MECHS:
    case PROTO_BIN_SASL_AUTH:
    case PROTO_BIN_SASL_STEP:
        break;
    default:
        /* memcached: "Auth failure." and close once it is sent */
        if (!bin_answer(conn, h, PROTO_BIN_AUTH_ERROR, "Auth failure."))
            conn_close(conn, "out of memory composing a reply");
        conn_close_after_write(conn);
        return len;
    }
    if (keylen + extlen > bodylen || keylen > SASL_MECH_MAX || bodylen > SASL_BODY_MAX) {
        if (!bin_answer(conn, h, PROTO_BIN_EINVAL, "Invalid arguments"))
            conn_close(conn, "out of memory composing a reply");
        conn_close_after_write(conn);
        return len;
    }
    size_t total = PROTO_BIN_HEADER_LEN + (size_t)bodylen;
    if (len < total) {
        *need = total;
        return 0;
    }
    const char *mech = buf + PROTO_BIN_HEADER_LEN + extlen;
    const char *data = mech + keylen;
    size_t dlen = bodylen - keylen - extlen;
    if (op == PROTO_BIN_SASL_LIST_MECHS) {
        ok = bin_answer(conn, h, PROTO_BIN_SUCCESS, "PLAIN");
    } else {
        bool authenticated = op == PROTO_BIN_SASL_AUTH && keylen == 5 && memcmp(mech, "PLAIN", 5) == 0 &&
                             auth_plain_check(conn_db(conn, LOGIN_SASL), data, dlen);
        shard->m.auth_cmds++;
        if (authenticated) {
            ok = bin_answer(conn, h, PROTO_BIN_SUCCESS, "Authenticated");
            conn->ops = &serve_binary_ops;
        } else {
            shard->m.auth_errors++;
            ok = bin_answer(conn, h, PROTO_BIN_AUTH_ERROR, "Auth failure.");
        }
    }
    if (!ok)
        conn_close(conn, "out of memory composing a reply");
    return total;
}

static const struct conn_ops login_sasl_ops = {
    .name = "binary-sasl",
    .step = sasl_login_step,
};

const struct conn_ops *login_ops(const struct login *login, const struct conn_ops *proto)
{
    if (login == NULL)
        return proto;
    if (login->path[LOGIN_TEXT] != NULL)
        return &login_text_ops;
    if (login->path[LOGIN_SASL] != NULL)
        return &login_sasl_ops;
    return proto;
}
