/*
 * warm.h: the saved image of one store, for a warm restart (the contract;
 * see warm.c).
 *
 * A store's items live in its arena, which io/memfile.c maps from a file
 * that outlives the process. What the arena does not hold (the segment
 * table, the flush and CAS state, the clock's zero) is written at a
 * graceful stop as one image, checked in full on the next start, and
 * handed to the engine (store_warm_adopt) only when everything matches.
 * Pure: buffers in, buffers out; io/ reads and writes the files.
 */
#ifndef CORECACHE_CORE_WARM_H
#define CORECACHE_CORE_WARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "status.h"

struct store;

/* What must be the same across a restart for a shard's items to be its
 * own again; a difference refuses the image and says which. */
struct warm_params {
    uint64_t arena_size;    /* this shard's share of -m */
    uint64_t item_size_max; /* -I */
    uint32_t shards;        /* -t: keys are partitioned by shard */
    uint32_t shard;         /* this shard's index */
    bool cas_enabled;       /* -C */
    const char *engine;     /* the release that wrote the items */
};

/* Why a start did not reattach (the `warm_restart_cold` fact, io/facts.h):
 * WARM_COLD_NONE when it did, or when there is no -e. */
enum warm_cold {
    WARM_COLD_NONE = 0,     /* reattached (or no memory file) */
    WARM_COLD_NEW = 1,      /* a new memory file: nothing was saved */
    WARM_COLD_UNCLEAN = 2,  /* the last stop did not finish its save (killed, crashed) */
    WARM_COLD_SETTINGS = 3, /* saved under other settings or another release */
    WARM_COLD_DAMAGED = 4,  /* the saved state or the items fail a check, or cannot be read */
};

/* Bytes of the image of `store`. */
size_t warm_image_size(const struct store *store);

/*
 * Writes the image of `store` into `buf` (warm_image_size bytes):
 * `generation` is the memory file's (warm_attach wants the same one back),
 * `clock_started` the unix time of the store's mc_time_t 0. The store must
 * not change meanwhile (its own thread, or after it stopped).
 */
void warm_save(const struct store *store, const struct warm_params *p, uint64_t generation,
               int64_t clock_started, void *buf);

/*
 * Checks `buf` (len bytes, from warm_save) against `p`, `generation`, and
 * the arena it describes (checksums of the image and of every byte of the
 * items), then reattaches the items to `store`, a fresh store over that
 * arena whose clock reads `now` on a clock started at `clock_started`:
 * TTLs keep their absolute end, and what expired meanwhile is dropped.
 * MC_OK with *items; else MC_EINVAL with one line in `why` saying what did
 * not match and, in *cold (if not NULL), which kind of refusal it was
 * (after MC_EINVAL from the engine's part the store must be destroyed;
 * the arena is then garbage to write over).
 */
enum mc_status warm_attach(struct store *store, const struct warm_params *p, uint64_t generation,
                           int64_t clock_started, mc_time_t now, const void *buf, size_t len,
                           uint64_t *items, char *why, size_t whylen, enum warm_cold *cold) MC_MUST_CHECK;

#endif
