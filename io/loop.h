/*
 * loop.h: a shard's thread (the contract; see loop.c).
 *
 * The top of a shard: it sets the shard up on its own thread, runs the
 * event loop until the server stops and every shard has drained, and tears
 * the shard down. Nothing in io/ but the code that starts shards includes
 * this header.
 */
#ifndef CORECACHE_IO_LOOP_H
#define CORECACHE_IO_LOOP_H

/* Thread entry point; arg is the struct shard. */
void *loop_main(void *arg);

#endif
