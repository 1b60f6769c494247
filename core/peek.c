/*
 * peek.c: a get for a key another shard owns, served by the shard it
 * arrived on from the owner's memory (issue 17; contract in peek.h).
 *
 * Why it can be done without a lock: items are immutable once written
 * (item.h): a set, append, incr or meta change of the value writes a new
 * copy and points the index entry at it; only a few header fields change
 * in place (exptime, atime, iflags, freq, an invalidated item's CAS), and
 * memory is reused only by the owner's allocations. So a reader needs to
 * know only that the owner changed nothing it read while it read.
 *
 * The protocol is a seqlock per owner (peek_shard.wseq), whose write side
 * the owner holds around every command except get/gets (core/exec.c wraps
 * them; io/ wraps the crawler and flush_all): every index write that adds
 * or moves an entry, every item written or compacted, every segment reused,
 * every in-place change of exptime, CAS or meta flags, every growth of the
 * index happens with wseq odd. What a get does on the owner without the
 * write side is harmless to a reader: it may unlink an expired item (an
 * index entry cleared, a segment put on the free list but not rewritten
 * until an allocation, which takes the write side) and bump the item's
 * freq, atime and fetched/active bits, which the reader reads only to
 * decide to forward.
 *
 *   reader                                      owner
 *   s1 = wseq (acquire); odd: forward           wseq++ (odd); fence(release)
 *   candidates = index entries with the tag     ... writes: items, entries,
 *   copy header+key of each, compare the key        segments, flush state ...
 *   copy the item (<= PEEK_VALUE_MAX value)     wseq++ (even, release)
 *   read the owner's clock and flush state
 *   fence(acquire); s2 = wseq; s2 != s1: forward
 *   compose the reply from the copy
 *
 * If s2 == s1 no write section overlapped the reads (fence-to-fence: a read
 * that saw a byte written after the owner's odd store would make s2 see
 * it), so the copy is a snapshot of the owner's state at the time of s1,
 * and a write acknowledged to any client before the reader's s1 (the ack
 * leaves the owner after its write section ended) is in it. Only the
 * reader's own connection can have asked for something not yet applied: a
 * pipelined "set k; get k" whose set is still in the channel. The reader
 * therefore forwards a get while it has forwarded requests for a key of
 * the same slot (top hash bits) not yet answered (a read too, so two gets of
 * a key on one connection never see its values out of order), or a
 * flush_all it sent that the owner has not applied yet (peek_reader, kept
 * by io/route.c), so the channel's order applies as before. Gets of other
 * keys need no such wait: a key this shard owns is not ordered against an
 * earlier forwarded one either.
 *
 * Memory safety: every location is bounded by the owner's arena before it
 * is read, so a torn entry or header (which validation rejects anyway)
 * never leads a read outside it. The index tables a reader may be in are
 * freed only after every shard has passed a quiescent point (segidx.h,
 * io/qsbr.c); the arena lives as long as the server.
 *
 * Exactness: the reply is what the owner's get would have answered at s1:
 * same value, flags and CAS. An expired or flushed item is forwarded (the
 * owner unlinks and counts it). A read the owner's get would have counted
 * in the item (eviction's read count below ITEM_FREQ_MAX, fetched/active
 * bits not yet set, atime due for a refresh) is served and then sent to
 * the owner as a one-way record (io/route.c X_BUMP), which applies
 * store_hit as its own get would have: eviction, `mg h/l`, the
 * *_unfetched counters and flush-by-atime see every read, one loop
 * iteration late. The record rides the same channel as everything else
 * this shard sends the owner, so a later request of this shard's (an mg,
 * say) sees it applied. Stats are counted by the reader in its own store
 * (store_count_remote_get), as every stat is summed over shards.
 *
 * The copies race with the owner's writes by design (a seqlock's reads,
 * validated afterwards): they are done word by word through volatile loads
 * in functions ThreadSanitizer does not instrument; everything else shared
 * (wseq, index entries, table pointers, flags) is a C11 atomic.
 */
#include "peek.h"

#include <string.h>

#include "clock.h"
#include "item.h"
#include "process.h"
#include "segidx.h"

/* The seqlock's racy reads: not instrumented by TSan (validated by wseq). */
#define PEEK_RACY __attribute__((noipa, no_sanitize_thread))

/* Copies `nwords` 8-byte words from the owner's memory. */
static PEEK_RACY void peek_copy(uint64_t *dst, const char *src, size_t nwords)
{
    const volatile uint64_t *s = (const volatile uint64_t *)(const void *)src;
    for (size_t i = 0; i < nwords; i++)
        dst[i] = s[i];
}

struct peek_clock {
    mc_time_t now;
    mc_time_t oldest_live;
};

static PEEK_RACY void peek_read_clock(const struct store_peek_view *v, struct peek_clock *c)
{
    c->now = *(const volatile mc_time_t *)v->now;
    c->oldest_live = *(const volatile mc_time_t *)v->oldest_live;
}

_Static_assert(ITEM_HEADER_SIZE == 28, "PEEK_WORDS_MAX (peek.h) counts a 28-byte header");

/* The reply, composed from the validated copy by process.c's own VALUE
 * line writer, always copying (the copy is this shard's, not the owner's). */
bool peek_write_text(const struct item *it, bool with_cas, struct sink *out)
{
    return process_write_value(NULL, it, item_key(it), item_nkey(it), with_cas, out);
}

enum peek_result peek_lookup(const struct peek_reader *r, unsigned owner, const char *key,
                             uint32_t nkey, uint64_t hash, struct peek_copy *copy,
                             const struct item **out_found)
{
    const struct peek_shard *o = &r->shards[owner];
    if (r->pending[peek_slot(hash)] != 0 ||
        atomic_load_explicit(r->flush_issued, memory_order_acquire) >
            atomic_load_explicit(&o->flushes, memory_order_acquire) ||
        !atomic_load_explicit(&o->readable, memory_order_acquire))
        return PEEK_FORWARD;
    unsigned s1 = atomic_load_explicit(&o->wseq, memory_order_acquire);
    if (s1 & 1)
        return PEEK_FORWARD;
    const struct store_peek_view *v = &o->view;
    uint64_t locs[SEGIDX_CANDIDATES_MAX];
    unsigned n = segidx_shared_candidates(v->idx, hash, locs);
    const size_t arena_len = (size_t)v->nsegs * v->seg_size;
    /* the copy: words as written, read as an item (the union keeps that
     * within the aliasing rules); its header is zeroed only to tell the
     * compiler it is set before it is read (peek_copy is out of line) */
    memset(copy->u.w, 0, 4 * sizeof(uint64_t));
    uint64_t *buf = copy->u.w;
    const struct item *found = NULL;
    for (unsigned i = 0; i < n && found == NULL; i++) {
        uint32_t seg = SEGIDX_LOC_SEG(locs[i]);
        size_t at = (size_t)seg * v->seg_size + SEGIDX_LOC_OFF(locs[i]);
        size_t head = (ITEM_HEADER_SIZE + nkey + 7) / 8;
        if (seg >= v->nsegs || at + head * 8 > arena_len)
            continue; /* torn or stale: validation fails below anyway */
        peek_copy(buf, v->arena + at, head);
        const struct item *it = &copy->u.it;
        if (item_nkey(it) != nkey || memcmp(item_key(it), key, nkey) != 0)
            continue;
        size_t words = (item_total(it) + 7) / 8;
        if (item_nbytes(it) > PEEK_VALUE_MAX || at + words * 8 > arena_len)
            return PEEK_FORWARD;
        peek_copy(buf + head, v->arena + at + head * 8, words - head);
        found = it;
        copy->loc = locs[i];
        copy->wseq = s1;
    }
    struct peek_clock c;
    peek_read_clock(v, &c);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&o->wseq, memory_order_relaxed) != s1)
        return PEEK_FORWARD;
    if (found == NULL)
        return PEEK_MISS;
    /* what the owner's store_find would unlink (expired, flushed, or in
     * the flush's own second): the owner does it and counts it */
    if (item_exptime(found) != 0 && item_exptime(found) <= c.now)
        return PEEK_FORWARD;
    if (c.oldest_live != 0 && c.oldest_live <= c.now && item_atime(found) <= c.oldest_live + 1)
        return PEEK_FORWARD;
    /* what the owner's store_hit would change: the owner counts it */
    bool bump = item_freq(found) < ITEM_FREQ_MAX || !item_fetched(found) || !item_active(found) ||
                (uint64_t)item_atime(found) + MC_ITEM_UPDATE_INTERVAL < c.now;
    *out_found = found;
    return bump ? PEEK_HIT_BUMP : PEEK_HIT;
}

enum peek_result peek_get(const struct peek_reader *r, unsigned owner, const char *key,
                          uint32_t nkey, uint64_t hash, bool with_cas, struct sink *out)
{
    struct peek_copy copy;
    const struct item *it = NULL;
    enum peek_result res = peek_lookup(r, owner, key, nkey, hash, &copy, &it);
    if ((res == PEEK_HIT || res == PEEK_HIT_BUMP) && !peek_write_text(it, with_cas, out))
        return PEEK_NOMEM;
    return res;
}
