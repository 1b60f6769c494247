/*
 * app.h: a whole server process around a request handler (see app.c).
 */
#ifndef CORECACHE_IO_APP_H
#define CORECACHE_IO_APP_H

#include "server.h"

/* Runs the server to completion: parses argv (memcached's flags), starts
 * the shards with `handler`, waits for SIGTERM/SIGINT or `shutdown`, and
 * returns the process exit status (0, 1, or 2 for usage errors). Call it
 * once, from main(). */
int app_main(int argc, char **argv, const struct server_handler *handler);

#endif
