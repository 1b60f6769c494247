/*
 * evring.h: an io_uring-shaped queue on epoll, the fallback I/O backend
 * (the contract; see evring.c).
 *
 * Where io_uring is refused (a container's seccomp profile, Docker >= 25 and
 * podman by default; kernel.io_uring_disabled=2; gVisor) or lacks what the
 * runtime needs, a shard runs on an evring instead of its ring. The call
 * sites do not change: they fill the same struct io_uring_sqe with the same
 * liburing io_uring_prep_* helpers, on an SQE that shard_sqe() takes from
 * the evring, and the loop handles the same struct io_uring_cqe records,
 * through the same handler. The evring performs each operation with plain
 * syscalls when it is submitted or when epoll says its socket is ready.
 *
 * Operations understood, with io_uring's completion semantics (res, flags
 * F_MORE, F_BUFFER and the buffer id) for the forms corecache submits:
 *   ACCEPT        multishot (IORING_ACCEPT_MULTISHOT) or single
 *   RECV          multishot with IOSQE_BUFFER_SELECT from the provided
 *                 buffer ring given to evring_provide_buffers()
 *   SEND SENDMSG  tried at once, else when the socket is writable
 *   MSG_RING      wakes the evring whose evring_wake_fd() is the SQE's fd
 *                 (no CQE reaches the target: a wakeup, nothing more)
 *   TIMEOUT       relative, completes with -ETIME
 *   ASYNC_CANCEL  by user_data (IORING_ASYNC_CANCEL_* flags ignored)
 *   NOP
 * Anything else completes with -EINVAL. IOSQE_CQE_SKIP_SUCCESS is honoured.
 *
 * One thread (the shard's) uses an evring; only evring_wake_fd() is written
 * by others (what the MSG_RING of another evring does).
 */
#ifndef CORECACHE_IO_EVRING_H
#define CORECACHE_IO_EVRING_H

#include <liburing.h>
#include <stdint.h>

struct evring; /* opaque */

/* Makes an evring (its epoll instance and wake eventfd). 0 or -errno. */
int evring_create(struct evring **out) __attribute__((warn_unused_result));

/* Frees it and sets *ev to NULL. The wake eventfd stays open until the
 * process ends: other shards may still wake this one while it tears down,
 * and a closed number could be reused by a client's socket. */
void evring_destroy(struct evring **ev);

/* The descriptor other shards' MSG_RING targets (a shard's ring_fd). */
int evring_wake_fd(const struct evring *ev);

/* The provided buffer ring a buffer-select RECV takes from: the caller
 * fills and replenishes it with liburing's io_uring_buf_ring_add/advance,
 * exactly as for a registered one. nbufs is a power of two. */
void evring_provide_buffers(struct evring *ev, struct io_uring_buf_ring *br, unsigned nbufs,
                            uint16_t bgid);

/* An SQE to fill, submitted by the next evring_submit_and_wait(). Valid
 * until the next call of evring_sqe. NULL only when memory ran out and
 * nothing queued could be submitted to make room. */
struct io_uring_sqe *evring_sqe(struct evring *ev);

/* Performs what was queued, then waits for at least one completion or
 * wakeup, at most timeout_ns (negative: no limit). 0 or -errno (-EINTR). */
int evring_submit_and_wait(struct evring *ev, int64_t timeout_ns);

/* Hands every completion to fn, in the order they were produced, and
 * empties the queue; returns how many. fn may queue new SQEs. */
typedef void evring_cqe_fn(void *arg, const struct io_uring_cqe *cqe);
unsigned evring_drain(struct evring *ev, evring_cqe_fn *fn, void *arg);

#endif
