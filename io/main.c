/*
 * main.c: corecache is the server process (app.c) executing every request
 * with core/exec.c against the shards' stores: each key runs on the shard
 * that owns it (route.c carries it there when that is another shard).
 */
#include "app.h"

static const struct server_handler corecache_handler = {
    .name = "corecache",
    .local = NULL, /* keys run against the store of the shard that owns them */
};

int main(int argc, char **argv)
{
    return app_main(argc, argv, &corecache_handler);
}
