/*
 * main.c: corecache is the server process (app.c) with the router as its
 * request handler: every key goes to the shard that owns it (route.c).
 */
#include "app.h"
#include "route.h"

int main(int argc, char **argv)
{
    return app_main(argc, argv, &route_handler);
}
