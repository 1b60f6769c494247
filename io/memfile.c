/*
 * memfile.c: shard item memory mapped from a file that outlives the
 * process, and what is saved beside it at a graceful stop (the contract is
 * memfile.h; the image itself is core/warm.c's).
 *
 *     FILE.i:       | arena: the shard's share of -m ....... | header unit |
 *                     offset 0, huge-page aligned             magic, generation, clean
 *     FILE.i.meta:  the shard's image (segment table, flush and CAS state,
 *                   clock zero, settings, checksums), written at a graceful stop
 *     FILE.meta:    the commit record, written by the main thread once every
 *                   shard saved (memcached's name for its metadata file)
 *
 * The arena starts the file, and the file's length is a whole number of the
 * file system's pages (statfs f_bsize: 4 KiB on tmpfs, the huge page size
 * on hugetlbfs), with the header in the last page. So on hugetlbfs the
 * mapping and the arena are huge-page aligned, as hugetlbfs requires of
 * every mmap offset and length; the header costs one page of the file's
 * own size.
 *
 * The file is mapped MAP_SHARED, so the items stay in the page cache (on
 * tmpfs or hugetlbfs: in memory) when the process exits, whatever way it
 * exits. What decides whether they may be used again is the clean mark
 * and the commit record:
 *
 *   start:  the main thread reads FILE.meta (memfile_begin) and deletes it.
 *           A file there that is not a corecache commit record (empty,
 *           damaged, memcached's own) refuses the start, as memcached
 *           refuses a metadata file it cannot parse: it is not ours to
 *           overwrite. Each shard then reads its header and FILE.i.meta;
 *           it reattaches only if the record was there, the file is clean
 *           and the image passes every check (warm_attach); then, before
 *           anything is served, it clears `clean`, bumps `generation` and
 *           deletes FILE.i.meta. A crash or SIGKILL from here on leaves no
 *           record and unclean files, and the next start empty.
 *   stop:   (only after the shard drained: every acknowledged write is in
 *           the arena) write the image to FILE.i.meta.tmp, fsync, rename,
 *           msync the arena, and only then set `clean`. When every shard
 *           did, the main thread writes FILE.meta (tmp, fsync, rename).
 *
 * A stop cut short at any point leaves no record, `clean` unset or an image
 * whose generation or checksums do not match, so it starts empty, never
 * with a half-saved state, and never with some shards warm and others not.
 *
 * The mapping is bound to the shard's NUMA node with mbind(2) through
 * numa/place.c, as an anonymous arena is; where that fails (no NUMA) the
 * pages are placed by first touch of the pinned shard thread, and the
 * start-up log says which.
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
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "../core/store.h"
#include "../core/warm.h"
#include "../numa/place.h"
#include "log.h"
#include "server.h"

#define MEMFILE_MAGIC 0x454c49464d454d43ull /* "CMEMFILE" */
#define HUGETLBFS_SUPER_MAGIC 0x958458f6
#define MEMFILE_RECORD_TAG "corecache memory file commit record"

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
    size_t unit;  /* the file system's page: the header's room, the rounding */
    bool huge;    /* on hugetlbfs */
    int numa;     /* place_bind_on_node's result */
    int node;
    struct memfile_hdr *hdr;
    /* what the start made of it (memfile_report) */
    int attached;
    enum warm_cold cold;
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

void *memfile_map(struct server *srv, unsigned shard, size_t arena_size, int node,
                  struct memfile **out, int *err)
{
    *out = NULL;
    struct memfile *mf = calloc(1, sizeof(*mf));
    if (mf == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    mf->fd = -1;
    mf->shard = shard;
    mf->node = node;
    mf->arena_size = arena_size;
    snprintf(mf->path, sizeof(mf->path), "%s.%u", srv->cfg.memory_file, shard);
    snprintf(mf->meta, sizeof(mf->meta), "%s.meta", mf->path);
    mf->fd = open(mf->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    struct statfs fs;
    if (mf->fd < 0 || fstat(mf->fd, &st) != 0 || fstatfs(mf->fd, &fs) != 0)
        goto fail;
    /* two servers on one file would write each other's items: the lock
     * dies with the process, however it ends */
    if (flock(mf->fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            errno = EBUSY;
        goto fail;
    }
    mf->huge = fs.f_type == HUGETLBFS_SUPER_MAGIC;
    long page = sysconf(_SC_PAGESIZE);
    mf->unit = mf->huge && fs.f_bsize > 0 ? (size_t)fs.f_bsize : page > 0 ? (size_t)page : 4096;
    if (mf->unit < sizeof(struct memfile_hdr))
        mf->unit = 4096;
    atomic_store(&srv->warm.unit, mf->unit); /* the same file system for every shard */
    mf->map_size = (arena_size + mf->unit - 1) / mf->unit * mf->unit + mf->unit;
    /* another -m: the file is resized (its image will be refused, and
     * saying why needs the header, which moves to the new end with it) */
    struct memfile_hdr moved = {0};
    if ((size_t)st.st_size != mf->map_size) {
        off_t old_hdr = st.st_size - (off_t)mf->unit;
        if (st.st_size % (off_t)mf->unit == 0 && old_hdr > 0 &&
            pread(mf->fd, &moved, sizeof(moved), old_hdr) != (ssize_t)sizeof(moved))
            moved.magic = 0;
        if (ftruncate(mf->fd, (off_t)mf->map_size) != 0)
            goto fail;
    }
    mf->map = mmap(NULL, mf->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, mf->fd, 0);
    if (mf->map == MAP_FAILED) {
        mf->map = NULL;
        goto fail;
    }
    /* before any page of it is touched (a new file's arena, this header) */
    mf->numa = place_bind_on_node(mf->map, mf->map_size, node);
    if (mf->numa == 0)
        atomic_fetch_add(&srv->warm.numa_bound, 1);
    mf->hdr = (struct memfile_hdr *)(mf->map + mf->map_size - mf->unit);
    if (moved.magic == MEMFILE_MAGIC)
        *mf->hdr = moved;
    *out = mf;
    return mf->map;

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

/* put_file's payload within what read_meta read: NULL if the length does
 * not fit (a file cut short, or not written by put_file). */
static const char *payload(const char *file, size_t filelen, size_t *len)
{
    uint64_t n;
    if (file == NULL || filelen < sizeof(n))
        return NULL;
    memcpy(&n, file, sizeof(n));
    if (n > filelen - sizeof(n))
        return NULL;
    *len = (size_t)n;
    return file + sizeof(n);
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
        mf->cold = WARM_COLD_NEW;
        snprintf(mf->why, sizeof(mf->why), "no saved state (a new memory file)");
    } else if (mf->hdr->clean != 1 || !srv->warm.committed) {
        mf->cold = WARM_COLD_UNCLEAN;
        snprintf(mf->why, sizeof(mf->why),
                 mf->hdr->clean != 1 ? "the last stop was not clean (killed or crashed): its items are not trusted"
                                     : "the last stop was not clean (no commit record %s.meta: not every "
                                       "shard finished its save)",
                 srv->cfg.memory_file);
    } else {
        size_t filelen = 0, len = 0;
        void *file = read_meta(mf->meta, &filelen);
        const char *image = payload(file, filelen, &len);
        if (image == NULL) {
            if (file != NULL)
                errno = EBADMSG;
            free(file);
            mf->cold = WARM_COLD_DAMAGED;
            snprintf(mf->why, sizeof(mf->why), "its saved state %.200s cannot be read: %s", mf->meta,
                     strerror(errno));
        } else {
            struct warm_params p = params_of(mf, srv);
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            mc_time_t t = mc_clock_now(&srv->clock, now.tv_sec);
            store_set_clock(*store, t);
            if (warm_attach(*store, &p, mf->hdr->generation, srv->clock.started, t, image, len,
                            &mf->items, mf->why, sizeof(mf->why), &mf->cold) == MC_OK)
                mf->attached = 1;
            else
                touched = true;
            free(file);
        }
    }
    /* from here on the file is in use: a crash must not find it clean */
    mf->hdr->magic = MEMFILE_MAGIC;
    mf->hdr->generation++;
    mf->hdr->clean = 0;
    mf->hdr->arena_size = mf->arena_size;
    (void)msync(mf->hdr, mf->unit, MS_SYNC);
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

/*
 * Writes `path` (through path.tmp, fsynced, renamed): `len` bytes, after
 * their length in 8 bytes if `framed`. hugetlbfs has no write(2): there the
 * file is sized to whole pages of `unit` and written through a shared
 * mapping, so its tail is zero padding (which the length, or for text the
 * first NUL, excludes). False with errno on failure.
 */
static bool put_file(const char *path, const void *buf, size_t len, size_t unit, bool framed)
{
    char tmp[4096 + 32];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    uint64_t n = len;
    size_t head = framed ? sizeof(n) : 0;
    bool ok = (!framed || write_all(fd, (const char *)&n, sizeof(n)) == 0) && write_all(fd, buf, len) == 0;
    if (!ok && errno == EINVAL) { /* hugetlbfs */
        size_t size = (head + len + unit - 1) / unit * unit;
        char *map = ftruncate(fd, (off_t)size) == 0
                        ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                        : MAP_FAILED;
        if (map != MAP_FAILED) {
            memcpy(map, &n, head);
            memcpy(map + head, buf, len);
            ok = msync(map, size, MS_SYNC) == 0;
            munmap(map, size);
        }
    }
    ok = ok && fsync(fd) == 0;
    int saved_errno = errno;
    close(fd);
    if (ok && rename(tmp, path) == 0)
        return true;
    if (!ok)
        errno = saved_errno;
    saved_errno = errno;
    (void)unlink(tmp);
    errno = saved_errno;
    return false;
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
    bool ok = put_file(mf->meta, image, len, mf->unit, true);
    int saved_errno = errno;
    free(image);
    ok = ok && msync(mf->map, mf->map_size, MS_SYNC) == 0;
    if (!ok) {
        if (saved_errno != 0 && errno == 0)
            errno = saved_errno;
        return false;
    }
    mf->hdr->clean = 1;
    return msync(mf->hdr, mf->unit, MS_SYNC) == 0;
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
        if (save(mf, srv, save_from) && (atomic_fetch_add(&srv->warm.saved, 1), true))
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

void memfile_report(struct server *srv, struct memfile *const *mfs, unsigned n)
{
    unsigned long long items = 0;
    unsigned attached = 0, bound = 0, huge = 0;
    double ms = 0;
    const struct memfile *refused = NULL, *unbound = NULL;
    for (unsigned i = 0; i < n; i++) {
        const struct memfile *mf = mfs[i];
        if (mf == NULL)
            return;
        items += (unsigned long long)mf->items;
        attached += (unsigned)mf->attached;
        bound += mf->numa == 0;
        huge += mf->huge;
        if (mf->attach_ms > ms)
            ms = mf->attach_ms;
        if (!mf->attached && refused == NULL)
            refused = mf;
        if (mf->numa != 0 && unbound == NULL)
            unbound = mf;
    }
    atomic_store(&srv->warm.items, items);
    atomic_store(&srv->warm.cold, refused == NULL ? WARM_COLD_NONE : (unsigned)refused->cold);
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
    char pages[64] = "";
    if (huge > 0)
        snprintf(pages, sizeof(pages), ", on hugetlbfs (%zu KiB pages)", mfs[0]->unit >> 10);
    if (unbound == NULL)
        log_write("corecache: -e %s: %u mapping%s bound to %s shard's NUMA node with mbind%s",
                  srv->cfg.memory_file, n, n == 1 ? "" : "s", n == 1 ? "its" : "each", pages);
    else
        log_write("corecache: -e %s: %u of %u mappings bound to their shard's NUMA node; shard %u's "
                  "not (%s): its pages go where its pinned thread first touches them%s",
                  srv->cfg.memory_file, bound, n, unbound->shard,
                  unbound->numa == -ENOSYS ? "no NUMA support" : strerror(-unbound->numa), pages);
}

/* FILE.meta's path. */
static void record_path(const struct server *srv, char *out, size_t len)
{
    snprintf(out, len, "%s.meta", srv->cfg.memory_file);
}

int memfile_begin(struct server *srv, char *err, size_t errlen)
{
    char path[4096 + 8];
    record_path(srv, path, sizeof(path));
    srv->warm.committed = false;
    size_t len = 0;
    errno = 0;
    char *file = read_meta(path, &len);
    if (file == NULL && errno == ENOENT)
        return 0; /* nothing was saved, or the stop did not finish */
    size_t filelen = len;
    const char *text = file;
    len = file != NULL ? strnlen(file, filelen) : 0; /* hugetlbfs pads with NULs */
    char want[160];
    int wlen = snprintf(want, sizeof(want), "%s\nrelease %s\nshards ", MEMFILE_RECORD_TAG, CORECACHE_VERSION);
    size_t taglen = strlen(MEMFILE_RECORD_TAG);
    if (text == NULL || len <= taglen || memcmp(text, MEMFILE_RECORD_TAG "\n", taglen + 1) != 0) {
        /* as memcached refuses a metadata file it cannot parse: this file
         * is not ours, and deleting it could lose someone's state */
        snprintf(err, errlen,
                 "corecache: -e %s: %s is not a corecache commit record (%s): remove it to start, "
                 "empty",
                 srv->cfg.memory_file, path,
                 file == NULL && errno != 0 ? strerror(errno)
                 : filelen == 0             ? "it is empty"
                                            : "damaged, or another program's such as memcached's");
        free(file);
        return -EINVAL;
    }
    /* ours: the release and shard count must be this run's, else each
     * shard's image check says what differs */
    srv->warm.committed = len > (size_t)wlen && memcmp(text, want, (size_t)wlen) == 0;
    free(file);
    if (unlink(path) != 0) {
        snprintf(err, errlen, "corecache: -e %s: cannot remove %s: %s", srv->cfg.memory_file, path,
                 strerror(errno));
        return -errno;
    }
    return 0;
}

void memfile_commit(struct server *srv)
{
    if (srv->cfg.memory_file == NULL || atomic_load(&srv->warm.saved) != srv->nshards)
        return;
    char path[4096 + 8], text[256];
    record_path(srv, path, sizeof(path));
    int len = snprintf(text, sizeof(text), "%s\nrelease %s\nshards %u\n", MEMFILE_RECORD_TAG,
                       CORECACHE_VERSION, srv->nshards);
    /* text, for an operator to read too */
    if (put_file(path, text, (size_t)len, (size_t)atomic_load(&srv->warm.unit), false))
        return;
    log_error(srv, "corecache: -e %s: cannot write %s (the next start will be empty): %s",
              srv->cfg.memory_file, path, strerror(errno));
}
