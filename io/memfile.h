/*
 * memfile.h: a shard's item memory in a file, for warm restarts (-e FILE;
 * the contract; see memfile.c).
 *
 * Shard i maps FILE.i (created or resized to its share of -m plus one
 * header page) instead of anonymous memory; at a graceful stop it writes
 * FILE.i.meta (core/warm.c's image) and marks the file clean; the next
 * start with compatible settings reattaches every unexpired item. Called
 * by the shard's own thread, in setup and teardown, except memfile_report
 * (main thread, after every shard passed the start gate).
 */
#ifndef CORECACHE_IO_MEMFILE_H
#define CORECACHE_IO_MEMFILE_H

#include <stddef.h>

struct shard;
struct server;
struct store_cfg;

/* Maps the shard's memory file and sets shard->memfile; returns the item
 * memory (arena_size bytes) or NULL with -errno in *err. */
void *memfile_map(struct shard *shard, size_t arena_size, int *err);

/* After shard->store was created over the mapping: reattaches the saved
 * items if the file was left clean by a compatible run, else leaves the
 * store empty (recreating it from `scfg` if a half-done attach touched it)
 * and records why; then marks the file in use (not clean). -errno only if
 * the store cannot be recreated. */
int memfile_attach(struct shard *shard, const struct store_cfg *scfg);

/* Teardown: if `save` (the shard drained after a graceful stop), writes the
 * image and marks the file clean; then unmaps it. Sets shard->memfile NULL. */
void memfile_close(struct shard *shard, int save);

/* One line to the log saying what the start made of the memory files. */
void memfile_report(struct server *srv);

#endif
