/*
 * auth.h: credentials and the login exchanges (the contract; see auth.c).
 *
 * A credential database is parsed from the text of a password file of
 * `user:password` lines (memcached's -Y format; -S's PLAIN users, and the
 * metrics endpoint's basic auth, use the same file format). Checking a
 * credential takes the same time whichever entry matches, if any, and
 * whatever the lengths involved (see auth.c).
 *
 * Pure: text in, verdicts out; no files, no sockets (io/login.c reads the
 * file and runs the exchanges on connections).
 */
#ifndef CORECACHE_CORE_AUTH_H
#define CORECACHE_CORE_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct auth_db; /* opaque */

/*
 * Parses a password file's text: one `user:password` per line; the
 * password runs from the first ':' to the end of the line ('\r' and '\n'
 * excluded). Empty lines are skipped. Returns NULL when a line has no ':'
 * (*bad_line is then its 1-based number) or memory runs out (*bad_line 0).
 * Any thread.
 */
struct auth_db *auth_db_create(const char *text, size_t len, size_t *bad_line);
void auth_db_destroy(struct auth_db **db);
/* The number of entries. */
size_t auth_db_count(const struct auth_db *db);

/*
 * True if (user, pass) is an entry. Every entry is compared, in constant
 * time, over SHA-256 digests: the time taken does not depend on which
 * entry matched, on where the bytes differ, or on the lengths. Any thread;
 * db is only read.
 */
bool auth_db_check(const struct auth_db *db, const char *user, size_t ulen, const char *pass,
                   size_t plen);

/* "user:password" (HTTP basic auth after base64), split at the first ':'. */
bool auth_db_check_pair(const struct auth_db *db, const char *pair, size_t len);

/*
 * SASL PLAIN (RFC 4616): message = [authzid] NUL authcid NUL passwd. True if
 * authcid/passwd is an entry and authzid is empty or equal to authcid.
 */
bool auth_plain_check(const struct auth_db *db, const char *msg, size_t len);

/*
 * memcached 1.6.18's ascii authentication (-Y): before anything else a
 * client sends `set <key> <flags> <exptime> <bytes>\r\n<user> <password>\r\n`
 * (key, flags and exptime are ignored). auth_text_step looks at the start of
 * buf and says what memcached would do:
 *
 *   AUTH_TEXT_MORE   incomplete; *need = total bytes needed when known
 *   AUTH_TEXT_REPLY  consume `used` bytes, send `reply` (no CRLF);
 *                    `authenticated` says whether the client now is;
 *                    `attempt` whether this counted as an auth command
 *   AUTH_TEXT_CLOSE  no newline within 2048 bytes: close the connection
 *
 * Replies: STORED; CLIENT_ERROR unauthenticated (any other command);
 * CLIENT_ERROR authentication failure; CLIENT_ERROR bad authentication
 * token format; CLIENT_ERROR bad command line termination.
 */
enum auth_text_verdict { AUTH_TEXT_MORE, AUTH_TEXT_REPLY, AUTH_TEXT_CLOSE };

struct auth_text_result {
    enum auth_text_verdict verdict;
    size_t used;
    size_t need;
    const char *reply;
    bool authenticated;
    bool attempt;
};

void auth_text_step(const struct auth_db *db, const char *buf, size_t len,
                    struct auth_text_result *out);

#endif
