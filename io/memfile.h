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

struct memfile;
struct server;
struct store;
struct store_cfg;

/* Maps shard `shard`'s memory file (srv->cfg.memory_file + ".<shard>")
 * with room for `arena_size` bytes of items; returns that memory, with
 * *out set, or NULL with -errno in *err (said on the log). */
void *memfile_map(struct server *srv, unsigned shard, size_t arena_size, struct memfile **out,
                  int *err);

/* After *store was created over the mapping (from `scfg`): reattaches the
 * saved items if the file was left clean by a compatible run, else leaves
 * the store empty (recreating it if a half-done attach touched it) and
 * records why; then marks the file in use (not clean). -errno only if the
 * store cannot be recreated. */
int memfile_attach(struct memfile *mf, struct server *srv, const struct store_cfg *scfg,
                   struct store **store);

/* Teardown: with `save_from` (the shard drained after a graceful stop),
 * writes its image and marks the file clean; then unmaps the file (the
 * arena is gone) and sets *mf NULL. */
void memfile_close(struct memfile **mf, struct server *srv, const struct store *save_from);

/* One line to the log saying what the start made of the shards' files. */
void memfile_report(const struct server *srv, struct memfile *const *mfs, unsigned n);

#endif
