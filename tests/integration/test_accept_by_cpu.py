#!/usr/bin/python3
"""test_accept_by_cpu.py: --accept-by-cpu gives a connection to the shard on
the CPU that received it.

On loopback the kernel processes a connection's SYN on the CPU of the
process that calls connect(), so pinning this test to one CPU at a time
stands in for a NIC queue whose interrupt is on that CPU. The server runs
2 shards on two CPUs of this test's affinity mask; `stats shards` tells
where each connection lives (N:curr_connections).

- with --accept-by-cpu, every connection made from CPU a is on one shard,
  every connection made from CPU b on the other, and they serve keys owned
  by either shard;
- without it the kernel hashes: 32 connections from one CPU land on both
  shards (the check that the first case is the option's doing);
- with one shard on two CPUs, a connection from the CPU that has no shard
  is still accepted (the kernel's hash decides there).

memcached has no such option: against memcached the test skips.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

if harness.is_memcached():
    harness.skip_process("memcached has no --accept-by-cpu")

MASK = sorted(os.sched_getaffinity(0))
if len(MASK) < 2:
    harness.skip_process("needs two CPUs in the affinity mask, has %s" % MASK)
CPU_A, CPU_B = MASK[0], MASK[1]


def pinned(cpu):
    """A context in which this (single-threaded) test runs on `cpu` only."""
    class _Pin:
        def __enter__(self):
            os.sched_setaffinity(0, {cpu})

        def __exit__(self, *exc):
            os.sched_setaffinity(0, MASK)
    return _Pin()


def start_server(flags):
    """A server whose shards run on CPU_A and CPU_B (it inherits the mask)."""
    os.sched_setaffinity(0, {CPU_A, CPU_B})
    try:
        return harness.Server(flags).start()
    finally:
        os.sched_setaffinity(0, MASK)


def shard_connections(server, conn):
    """{shard: curr_connections} as `stats shards` says, asked on conn."""
    conn.send(b"stats shards\r\n")
    out = conn.recv_until(b"END\r\n").decode()
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].endswith(":curr_connections"):
            counts[int(parts[1].split(":")[0])] = int(parts[2])
    return counts


def settled_connections(server, conn, want, timeout=3.0):
    """shard_connections once their sum is `want`, or what they are at the
    deadline: the harness's own readiness probe closes just before a test
    starts, and the server frees a closed connection asynchronously (once
    the kernel hands back its buffers), so it may still be counted."""
    deadline = time.monotonic() + timeout
    counts = shard_connections(server, conn)
    while sum(counts.values()) != want and time.monotonic() < deadline:
        time.sleep(0.02)
        counts = shard_connections(server, conn)
    return counts


class AcceptByCpuTest(unittest.TestCase):
    N = 16

    def open_from(self, server, cpu, n):
        with pinned(cpu):
            conns = [server.conn() for _ in range(n)]
            for c in conns:  # accepted and served, not only queued
                c.send(b"version\r\n")
                self.assertTrue(c.recv_until(b"\r\n").startswith(b"VERSION "))
        return conns

    def test_each_cpu_has_its_shard(self):
        server = start_server(["-t", "2", "--accept-by-cpu"])
        opened = []
        try:
            with pinned(CPU_A):
                probe = server.conn()
            opened.append(probe)
            base = settled_connections(server, probe, 1)
            self.assertEqual(sum(base.values()), 1, base)
            shard_a = next(s for s, n in base.items() if n == 1)

            opened += self.open_from(server, CPU_A, self.N)
            after_a = shard_connections(server, probe)
            self.assertEqual(after_a[shard_a], self.N + 1,
                             "every connection from CPU %d on one shard: %s" % (CPU_A, after_a))

            conns_b = self.open_from(server, CPU_B, self.N)
            opened += conns_b
            after_b = shard_connections(server, probe)
            self.assertEqual(after_b[shard_a], self.N + 1, after_b)
            self.assertEqual(sum(after_b.values()), 2 * self.N + 1, after_b)
            self.assertEqual(len(after_b), 2)
            self.assertEqual(after_b[1 - shard_a], self.N,
                             "every connection from CPU %d on the other shard: %s" % (CPU_B, after_b))

            # Keys of both shards through a connection of each: routing is
            # unchanged by where a connection lives.
            for i, c in enumerate((opened[1], conns_b[0])):
                for k in range(40):
                    key = b"steer:%d:%d" % (i, k)
                    c.send(b"set " + key + b" 0 0 1\r\nx\r\n")
                    self.assertEqual(c.recv_until(b"\r\n"), b"STORED\r\n")
                    c.send(b"get " + key + b"\r\n")
                    self.assertEqual(c.recv_until(b"END\r\n"),
                                     b"VALUE " + key + b" 0 1\r\nx\r\nEND\r\n")
        finally:
            for c in opened:
                c.close()
            server.stop()

    def test_without_it_the_kernel_hashes(self):
        server = start_server(["-t", "2"])
        opened = []
        try:
            opened = self.open_from(server, CPU_A, 2 * self.N)
            counts = shard_connections(server, opened[0])
            self.assertEqual(sum(counts.values()), 2 * self.N, counts)
            self.assertTrue(all(n > 0 for n in counts.values()) and len(counts) == 2,
                            "32 hashed connections should reach both shards: %s" % counts)
        finally:
            for c in opened:
                c.close()
            server.stop()

    def test_cpu_without_a_shard_still_accepts(self):
        server = start_server(["-t", "1", "--accept-by-cpu"])
        opened = []
        try:
            opened = self.open_from(server, CPU_B, 4) + self.open_from(server, CPU_A, 4)
            counts = shard_connections(server, opened[0])
            self.assertEqual(counts, {0: 8})
        finally:
            for c in opened:
                c.close()
            server.stop()


if __name__ == "__main__":
    harness.main()
