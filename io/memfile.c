/*
 * memfile.c: shard item memory mapped from a file that outlives the
 * process, and what is saved beside it at a graceful stop (the contract is
 * memfile.h; the image itself is core/warm.c's).
 *
 *     FILE.i:       | header page | arena: the shard's share of -m ...... |
 *                     magic, generation, clean
 *     FILE.i.meta:  the image (segment table, flush and CAS state, clock
 *                   zero, settings, checksums), written at a graceful stop
 *
 * The file is mapped MAP_SHARED, so the items stay in the page cache (on
 * tmpfs: in memory) when the process exits, whatever way it exits. What
 * decides whether they may be used again is the clean mark:
 *
 *   start:  read the header and FILE.i.meta; reattach only if the file is
 *           clean and the image passes every check (warm_attach); then,
 *           before anything is served, clear `clean`, bump `generation`
 *           and delete FILE.i.meta. A crash or SIGKILL from here on leaves
 *           the file unclean, and the next start empty.
 *   stop:   (only after the shard drained: every acknowledged write is in
 *           the arena) write the image to FILE.i.meta.tmp, fsync, rename,
 *           msync the arena, and only then set `clean`.
 *
 * A stop cut short at any point leaves `clean` unset or an image whose
 * generation or checksums do not match, so it starts empty, never with a
 * half-saved state. The pages of the mapping are placed by first touch
 * (the shard thread, pinned to its node's CPUs), not bound with mbind.
 */
#include "memfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/store.h"
#include "../core/warm.h"
#include "log.h"
#include "server.h"

#define MEMFILE_MAGIC 0x454c49464d454d43ull /* "CMEMFILE" */
#define MEMFILE_HDR 4096

struct memfile_hdr {
    uint64_t magic;
    uint64_t generation; /* bumped at every start; the image must carry it */
    uint32_t clean;      /* 1 only between a completed save and the next start */
    uint32_t pad;
    uint64_t arena_size;
};

struct memfile {
    unsigned shard;
    size_t arena_size;
    char path[4096];
    char meta[4096 + 8];
    int fd;
    char *map;
    size_t map_size;
    struct memfile_hdr *hdr;
    /* what the start made of it (memfile_report) */
    int attached;
    uint64_t items;
    double attach_ms;
    char why[320];
};

static struct warm_params params_of(const struct memfile *mf, const struct server *srv)
{
    return (struct warm_params){
        .arena_size = mf->arena_size,
        .item_size_max = srv->cfg.item_size_max,
        .shards = srv->nshards,
        .shard = mf->shard,
        .cas_enabled = !srv->cfg.disable_cas,
        .engine = CORECACHE_VERSION,
    };
}

void *memfile_map(struct server *srv, unsigned shard, size_t arena_size, struct memfile **out,
                  int *err)
{
    *out = NULL;
    struct memfile *mf = calloc(1, sizeof(*mf));
    if (mf == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    mf->fd = -1;
    mf->shard = shard;
    mf->arena_size = arena_size;
    snprintf(mf->path, sizeof(mf->path), "%s.%u", srv->cfg.memory_file, shard);
    snprintf(mf->meta, sizeof(mf->meta), "%s.meta", mf->path);
    mf->map_size = MEMFILE_HDR + arena_size;
    mf->fd = open(mf->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    if (mf->fd < 0 || fstat(mf->fd, &st) != 0)
        goto fail;
    /* two servers on one file would write each other's items: the lock
     * dies with the process, however it ends */
    if (flock(mf->fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            errno = EBUSY;
        goto fail;
    }
    /* another -m: the file is resized (its image will be refused) */
    if ((size_t)st.st_size != mf->map_size && ftruncate(mf->fd, (off_t)mf->map_size) != 0)
        goto fail;
    mf->map = mmap(NULL, mf->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, mf->fd, 0);
    if (mf->map == MAP_FAILED) {
        mf->map = NULL;
        goto fail;
    }
    mf->hdr = (struct memfile_hdr *)mf->map;
    *out = mf;
    return mf->map + MEMFILE_HDR;

fail:
    *err = -errno;
    log_error(srv, "corecache: -e %s: %s: %s%s", srv->cfg.memory_file, mf->path, strerror(errno),
              errno == EBUSY ? " (another corecache uses this memory file)" : "");
    if (mf->fd >= 0)
        close(mf->fd);
    free(mf);
    return NULL;
}

/* The whole of FILE.i.meta in a malloc'd buffer, or NULL (errno set). */
static void *read_meta(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return NULL;
    char *buf = NULL;
    if (fstat(fd, &st) == 0 && st.st_size > 0 && (buf = malloc((size_t)st.st_size)) != NULL) {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        *len = got;
    }
    close(fd);
    return buf;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

int memfile_attach(struct memfile *mf, struct server *srv, const struct store_cfg *scfg,
                   struct store **store)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool touched = false;
    if (mf->hdr->magic != MEMFILE_MAGIC) {
        snprintf(mf->why, sizeof(mf->why), "no saved state (a new memory file)");
    } else if (mf->hdr->clean != 1) {
        snprintf(mf->why, sizeof(mf->why),
                 "the last stop was not clean (killed or crashed): its items are not trusted");
    } else {
        size_t len = 0;
        void *image = read_meta(mf->meta, &len);
        if (image == NULL) {
            snprintf(mf->why, sizeof(mf->why), "its saved state %.200s cannot be read: %s", mf->meta,
                     strerror(errno));
        } else {
            struct warm_params p = params_of(mf, srv);
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            mc_time_t t = mc_clock_now(&srv->clock, now.tv_sec);
            store_set_clock(*store, t);
            if (warm_attach(*store, &p, mf->hdr->generation, srv->clock.started, t, image, len,
                            &mf->items, mf->why, sizeof(mf->why)) == MC_OK)
                mf->attached = 1;
            else
                touched = true;
            free(image);
        }
    }
    /* from here on the file is in use: a crash must not find it clean */
    mf->hdr->magic = MEMFILE_MAGIC;
    mf->hdr->generation++;
    mf->hdr->clean = 0;
    mf->hdr->arena_size = mf->arena_size;
    (void)msync(mf->map, MEMFILE_HDR, MS_SYNC);
    if (unlink(mf->meta) != 0 && errno != ENOENT)
        log_error(srv, "corecache: -e: cannot remove %s: %s", mf->meta, strerror(errno));
    if (touched) {
        store_destroy(store);
        if (store_create(scfg, store) != MC_OK)
            return -ENOMEM;
        mf->items = 0;
    }
    mf->attach_ms = ms_since(&t0);
    return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes the image and marks the file clean; false (errno) if any step failed. */
static bool save(struct memfile *mf, const struct server *srv, const struct store *store)
{
    struct warm_params p = params_of(mf, srv);
    size_t len = warm_image_size(store);
    char *image = malloc(len);
    if (image == NULL)
        return false;
    warm_save(store, &p, mf->hdr->generation, srv->clock.started, image);
    char tmp[sizeof(mf->meta) + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", mf->meta);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write_all(fd, image, len) == 0 && fsync(fd) == 0;
    int saved_errno = errno;
    if (fd >= 0)
        close(fd);
    free(image);
    ok = ok && rename(tmp, mf->meta) == 0 && msync(mf->map, mf->map_size, MS_SYNC) == 0;
    if (!ok) {
        if (saved_errno != 0 && errno == 0)
            errno = saved_errno;
        return false;
    }
    mf->hdr->clean = 1;
    return msync(mf->map, MEMFILE_HDR, MS_SYNC) == 0;
}

void memfile_close(struct memfile **mfp, struct server *srv, const struct store *save_from)
{
    struct memfile *mf = *mfp;
    if (mf == NULL)
        return;
    if (save_from != NULL) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        errno = 0;
        if (save(mf, srv, save_from))
            log_info(srv, "corecache: shard %u: saved its items to %s for a warm restart (%.1f ms)",
                     mf->shard, mf->path, ms_since(&t0));
        else
            log_error(srv, "corecache: shard %u: cannot save %s for a warm restart: %s", mf->shard,
                      mf->meta, strerror(errno));
    }
    munmap(mf->map, mf->map_size);
    close(mf->fd);
    free(mf);
    *mfp = NULL;
}

void memfile_report(const struct server *srv, struct memfile *const *mfs, unsigned n)
{
    unsigned long long items = 0;
    unsigned attached = 0;
    double ms = 0;
    const struct memfile *refused = NULL;
    for (unsigned i = 0; i < n; i++) {
        const struct memfile *mf = mfs[i];
        if (mf == NULL)
            return;
        items += (unsigned long long)mf->items;
        attached += (unsigned)mf->attached;
        if (mf->attach_ms > ms)
            ms = mf->attach_ms;
        if (!mf->attached && refused == NULL)
            refused = mf;
    }
    if (refused == NULL)
        log_write("corecache: warm restart from %s: reattached %llu items in %u shard%s (%.0f ms)",
                  srv->cfg.memory_file, items, n, n == 1 ? "" : "s", ms);
    else if (attached == 0)
        log_write("corecache: warm restart from %s: starting empty: %s", srv->cfg.memory_file,
                  refused->why);
    else
        log_write("corecache: warm restart from %s: reattached %llu items in %u of %u shards; shard %u "
                  "starts empty: %s",
                  srv->cfg.memory_file, items, attached, n, refused->shard, refused->why);
}
