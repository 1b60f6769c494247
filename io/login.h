/*
 * login.h: who may talk to the server: memcached's ascii authentication
 * (-Y), binary SASL PLAIN (-S) and the metrics endpoint's HTTP basic auth
 * (the contract; see login.c).
 *
 * A login is a connection protocol (struct conn_ops) that new connections
 * start with: it runs the exchange and, once the client has proved who it
 * is, replaces itself with the real protocol (conn->ops). So an
 * authenticated connection runs exactly the code of an open server, and a
 * server without -Y or -S never sees this module on its request path.
 */
#ifndef CORECACHE_IO_LOGIN_H
#define CORECACHE_IO_LOGIN_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/cfg.h"
#include "../core/sink.h"

struct login;
struct conn_ops;

/*
 * Reads the password files of cfg (-Y auth_file; -S sasl_pwdb or
 * $MEMCACHED_SASL_PWDB; metrics_auth_file) and checks the protocol choice
 * as memcached does (-S is binary only, -Y ascii only). *out is NULL when
 * none of them is on. Returns 0, or -EINVAL with a message. Main thread.
 */
int login_create(struct login **out, const struct cfg *cfg, char *err, size_t errlen);
void login_destroy(struct login **login);

/* Rereads the password files (SIGHUP, as memcached rereads -Y's). A file
 * that fails to load keeps its previous users. Main thread. */
void login_reload(struct login *login, char *err, size_t errlen);

/* What new cache connections speak: a login in front of `proto`, or
 * `proto` itself when no login is required. */
const struct conn_ops *login_ops(const struct login *login, const struct conn_ops *proto);

/* The metrics endpoint: true if no basic auth is required or `credentials`
 * ("user:password", base64-decoded) is a user of --metrics-auth-file. */
bool login_http_enabled(const struct login *login);
bool login_http_check(const struct login *login, const char *credentials, size_t len);

#endif
