/*
 * memfile.h: a shard's item memory in a file, for warm restarts (-e FILE;
 * the contract; see memfile.c).
 *
 * Shard i maps FILE.i (created or resized to its share of -m, rounded to
 * the file system's page, plus one such page for its header, at the end)
 * instead of anonymous memory, bound to its NUMA node; at a graceful stop
 * it writes FILE.i.meta (core/warm.c's image) and marks the file clean,
 * and once every shard did, FILE.meta records the stop as complete; the
 * next start with compatible settings reattaches every unexpired item.
 * memfile_map, _attach and _close run on the shard's own thread (setup and
 * teardown); memfile_begin, _report and _commit on the main thread, before
 * the shards start, after they passed the start gate, and after they were
 * joined.
 */
#ifndef CORECACHE_IO_MEMFILE_H
#define CORECACHE_IO_MEMFILE_H

#include <stddef.h>

#include "../core/warm.h" /* enum warm_cold */

struct memfile;
struct server;
struct store;
struct store_cfg;

/* Before any shard starts: reads and deletes the commit record FILE.meta.
 * -errno with `err` filled (the server must not start) when a file there is
 * not corecache's record, or cannot be removed. */
int memfile_begin(struct server *srv, char *err, size_t errlen);

/* Maps shard `shard`'s memory file (srv->cfg.memory_file + ".<shard>")
 * with room for `arena_size` bytes of items, bound to NUMA `node`; returns
 * that memory (page aligned, huge-page aligned on hugetlbfs), with *out
 * set, or NULL with -errno in *err (said on the log). */
void *memfile_map(struct server *srv, unsigned shard, size_t arena_size, int node,
                  struct memfile **out, int *err);

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

/* One line to the log saying what the start made of the shards' files
 * (and sets srv->warm's items and cold, the warm_restart_* facts), one
 * saying where the mappings are placed. */
void memfile_report(struct server *srv, struct memfile *const *mfs, unsigned n);

/* After every shard was joined: writes FILE.meta if each one saved. */
void memfile_commit(struct server *srv);

#endif
