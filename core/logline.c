/*
 * logline.c: memcached 1.6.18's `watch` lines (logger.c's _logger_parse_*
 * and util.c's uriencode), and how corecache tells what to put in them.
 *
 * memcached logs where its engine looks things up: do_item_get writes an
 * item_get line for every keyed lookup (gets, but also the lookup inside a
 * set, a delete, incr/decr or touch), do_store_item an item_store line
 * with the store's verdict, the LRU an eviction line per item evicted.
 * corecache's store returns verdicts to the protocol layers, not to us, so
 * the executor brackets a watched key with store_peek(): the item before
 * gives the item_get line, and for a storage command the item after tells
 * the verdict (a stored command always leaves a new item: a new address
 * and, with CAS on, a new CAS). Only while someone watches; see exec.c.
 *
 * Formats are memcached's to the byte (ts=%lld.%d, unpadded microseconds).
 */
#include "logline.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "item.h"

/* a key of PROTO_KEY_MAX bytes, each %XX, and the NUL */
#define STORE_KEY_URI_MAX (PROTO_KEY_MAX * 3 + 1)

unsigned logline_kind(enum logline_type type)
{
    switch (type) {
    case LOGLINE_ITEM_GET:
        return PROTO_WATCH_FETCHERS;
    case LOGLINE_ITEM_STORE:
        return PROTO_WATCH_MUTATIONS;
    case LOGLINE_EVICTION:
        return PROTO_WATCH_EVICTIONS;
    case LOGLINE_CONN_NEW:
    case LOGLINE_CONN_CLOSE:
        return PROTO_WATCH_CONNEVENTS;
    }
    return 0;
}

enum logline_close_reason logline_reason_of(const char *reason)
{
    /* conn.c's words: a client that quit or hung up closed normally */
    static const char *const normal[] = {"quit", "end of stream", "recv error", "send error"};
    if (reason == NULL)
        return LOGLINE_ERROR;
    for (size_t i = 0; i < sizeof(normal) / sizeof(normal[0]); i++) {
        if (strcmp(reason, normal[i]) == 0)
            return LOGLINE_NORMAL;
    }
    if (strcmp(reason, "idle timeout") == 0)
        return LOGLINE_IDLE_TIMEOUT;
    if (strncmp(reason, "shutdown", 8) == 0)
        return LOGLINE_SHUTDOWN;
    return LOGLINE_ERROR;
}

/* util.c's uriencode: alnum and "-._~" kept, every other byte %XX. */
size_t logline_uriencode(const char *src, size_t n, char *dst, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (d + 4 > cap)
            break;
        bool keep = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
                    c == '.' || c == '_' || c == '~';
        if (keep) {
            dst[d++] = (char)c;
        } else {
            dst[d++] = '%';
            dst[d++] = hex[c >> 4];
            dst[d++] = hex[c & 15];
        }
    }
    dst[d] = '\0';
    return d;
}

static const char *store_cmd_word(enum proto_cmd cmd)
{
    switch (cmd) {
    case PROTO_ADD:
        return "add";
    case PROTO_SET:
        return "set";
    case PROTO_REPLACE:
        return "replace";
    case PROTO_APPEND:
        return "append";
    case PROTO_PREPEND:
        return "prepend";
    case PROTO_CAS:
        return "cas";
    default:
        return "na";
    }
}

size_t logline_format(const struct logline_event *ev, int64_t ts_sec, int32_t ts_usec, uint64_t gid, char *buf,
                      size_t cap)
{
    static const char *const status_map[] = {"not_stored", "stored", "exists",
                                             "not_found", "too_large", "no_memory"};
    static const char *const reason_map[] = {"error", "normal", "idle_timeout", "shutdown"};
    char key[STORE_KEY_URI_MAX];
    int n = -1;
    if (ev->type == LOGLINE_ITEM_GET || ev->type == LOGLINE_ITEM_STORE || ev->type == LOGLINE_EVICTION)
        logline_uriencode(ev->key, ev->nkey, key, sizeof(key));
    switch (ev->type) {
    case LOGLINE_ITEM_GET:
        n = snprintf(buf, cap, "ts=%" PRId64 ".%d gid=%" PRIu64 " type=item_get key=%s status=%s clsid=%u cfd=%d size=%zu\n",
                     ts_sec, (int)ts_usec, gid, key, ev->found ? "found" : "not_found", ev->clsid, ev->cfd, ev->size);
        break;
    case LOGLINE_ITEM_STORE:
        n = snprintf(buf, cap,
                     "ts=%" PRId64 ".%d gid=%" PRIu64
                     " type=item_store key=%s status=%s cmd=%s ttl=%u clsid=%u cfd=%d size=%zu\n",
                     ts_sec, (int)ts_usec, gid, key, status_map[ev->status], store_cmd_word(ev->cmd),
                     (unsigned)ev->ttl, ev->clsid, ev->cfd, ev->size);
        break;
    case LOGLINE_EVICTION:
        n = snprintf(buf, cap,
                     "ts=%" PRId64 ".%d gid=%" PRIu64
                     " type=eviction key=%s fetch=%s ttl=%" PRId64 " la=%d clsid=%u size=%zu\n",
                     ts_sec, (int)ts_usec, gid, key, ev->found ? "yes" : "no", ev->ttl, (int)ev->last_access,
                     ev->clsid, ev->size);
        break;
    case LOGLINE_CONN_NEW:
        n = snprintf(buf, cap, "ts=%" PRId64 ".%d gid=%" PRIu64 " type=conn_new rip=%s rport=%u transport=%s cfd=%d\n",
                     ts_sec, (int)ts_usec, gid, ev->rip, (unsigned)ev->rport, ev->local ? "local" : "tcp", ev->cfd);
        break;
    case LOGLINE_CONN_CLOSE:
        n = snprintf(buf, cap,
                     "ts=%" PRId64 ".%d gid=%" PRIu64
                     " type=conn_close rip=%s rport=%u transport=%s reason=%s cfd=%d\n",
                     ts_sec, (int)ts_usec, gid, ev->rip, (unsigned)ev->rport, ev->local ? "local" : "tcp",
                     reason_map[ev->reason], ev->cfd);
        break;
    }
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* The storage command a meta set's mode is (memcached's ms M flag). */
static enum proto_cmd meta_store_cmd(const struct proto_req *req)
{
    if (proto_meta_has(&req->meta, 'C'))
        return PROTO_CAS;
    switch (req->meta.mode) {
    case 'E':
    case 'e':
        return PROTO_ADD;
    case 'A':
    case 'a':
        return PROTO_APPEND;
    case 'P':
    case 'p':
        return PROTO_PREPEND;
    case 'R':
    case 'r':
        return PROTO_REPLACE;
    default:
        return PROTO_SET;
    }
}

static enum proto_cmd store_cmd(const struct proto_req *req)
{
    if (req->cmd == PROTO_MS)
        return meta_store_cmd(req);
    if (req->cmd == PROTO_SET && req->cas != 0) /* binary set with a CAS */
        return PROTO_CAS;
    return req->cmd;
}

bool logline_is_store(const struct proto_req *req)
{
    return (req->cmd >= PROTO_SET && req->cmd <= PROTO_CAS) || req->cmd == PROTO_MS;
}

void logline_get_event(const struct item *it, const char *key, size_t nkey, int cfd, struct logline_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = LOGLINE_ITEM_GET;
    ev->key = key;
    ev->nkey = nkey;
    ev->found = it != NULL;
    ev->clsid = it != NULL ? item_clsid(it) : 0;
    ev->size = it != NULL ? item_nbytes(it) : 0;
    ev->cfd = cfd;
}

void logline_store_event(const struct proto_req *req, const struct item *before, uint64_t before_cas,
                         const struct item *after, const char *key, size_t nkey, struct logline_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = LOGLINE_ITEM_STORE;
    ev->key = key;
    ev->nkey = nkey;
    ev->cmd = store_cmd(req);
    ev->cfd = req->cfd;
    bool stored = after != NULL && (before == NULL || after != before || item_cas(after) != before_cas);
    if (stored) {
        ev->status = LOGLINE_STORED;
        ev->ttl = item_exptime(after);
        ev->clsid = item_clsid(after);
        ev->size = item_nbytes(after);
        return;
    }
    ev->size = req->nbytes;
    if (req->too_large)
        ev->status = LOGLINE_TOO_LARGE;
    else if (ev->cmd == PROTO_CAS)
        ev->status = before == NULL ? LOGLINE_NOT_FOUND : LOGLINE_EXISTS;
    else if (ev->cmd == PROTO_SET)
        ev->status = LOGLINE_NO_MEMORY; /* a set is refused only for lack of room */
    else
        ev->status = LOGLINE_NOT_STORED;
}

void logline_evict_event(const struct item *it, uint32_t now, struct logline_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = LOGLINE_EVICTION;
    ev->key = item_key(it);
    ev->nkey = item_nkey(it);
    ev->found = item_fetched(it);
    mc_time_t exptime = item_exptime(it);
    ev->ttl = exptime > 0 ? (int64_t)exptime - (int64_t)now : -1;
    ev->last_access = now > item_atime(it) ? now - item_atime(it) : 0;
    ev->clsid = item_clsid(it);
    ev->size = item_nbytes(it);
}
