#!/usr/bin/python3
"""test_stampede.py: stampede protection under 200 concurrent clients.

A "stampede" (dog pile) is many clients missing the same hot key at once
and all recomputing it. memcached's meta protocol lets exactly one of them
win the right to recompute while the others wait or serve stale data; the
classic protocol's answer is the add-lock pattern. Each test below opens
200 connections (spread over the server's two shards, so about half the
requests are forwarded to the key's owner), releases them at once with a
barrier, and counts winners:

  - N (vivify on miss): `mg <key> N30 v t c`: exactly one W, 199 Z, all an
    empty value; the winner stores the value, the others poll and get it;
  - R (recache): the item's TTL is below R's: exactly one W among 200
    readers, every one of them served the current value;
  - md I (invalidation): exactly one W, every reader served the stale
    value with X; after the winner's store nobody sees X;
  - the add-lock through pymemcache: `get` misses, `add <key>:lock` with a
    TTL: exactly one loader, everyone ends with the loader's value.

Every wait is bounded (socket timeouts, barrier timeout, poll deadlines).
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from metaclient import MetaClient  # noqa: E402

CLIENTS = 200
DEADLINE = 20.0  # seconds any one phase may take


def run_clients(n, fn):
    """Runs fn(i, barrier) in n threads released together (fn may wait on
    the barrier again to line the threads up once more); returns their
    results. An exception raised by fn is re-raised here."""
    barrier = threading.Barrier(n, timeout=DEADLINE)
    results = [None] * n

    def body(i):
        try:
            results[i] = fn(i, barrier)
        except BaseException as e:  # reported by the caller
            results[i] = e

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE + 10)
        if t.is_alive():
            raise AssertionError("a client thread did not finish")
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def poll_value(c, key, want_value=None, deadline=DEADLINE):
    """mg <key> v until a non-empty (or the wanted) value shows; returns
    the last reply."""
    end = time.monotonic() + deadline
    while True:
        r = c.mg(key, "v")
        if r.code == "VA" and r.value and (want_value is None or r.value == want_value):
            return r
        if time.monotonic() > end:
            raise AssertionError("no value for %s: %r" % (key, r))
        time.sleep(0.01)


class StampedeTest(harness.ServerCase):
    SERVER_FLAGS = ["-t", "2", "-c", "1024"]

    def clients(self):
        return [MetaClient(self.server.port, timeout=DEADLINE) for _ in range(CLIENTS)]

    def test_stampede_vivify_one_winner(self):
        key = "hot:vivify"
        conns = self.clients()
        try:
            def miss(i, barrier):
                c = conns[i]
                barrier.wait()
                r = c.mg(key, "N30", "v", "t", "c")
                barrier.wait()  # everyone has missed before anyone stores
                if r.has("W"):
                    # the winner recomputes and stores the value
                    self.assertEqual(c.ms(key, "computed by %d" % i, "T60").code, "HD")
                    return ("W", r)
                return ("Z" if r.has("Z") else "?", r, poll_value(c, key))

            results = run_clients(CLIENTS, miss)
        finally:
            for c in conns:
                c.close()
        winners = [r for r in results if r[0] == "W"]
        self.assertEqual(len(winners), 1, "winners: %r" % winners)
        self.assertEqual(sum(1 for r in results if r[0] == "Z"), CLIENTS - 1,
                         [r[1] for r in results if r[0] == "?"][:5])
        winner_value = b"computed by "
        for r in results:
            first = r[1]
            self.assertEqual((first.code, first.value), ("VA", b""), first)  # the empty stub
            self.assertIn(int(first.flag("t")), (29, 30))
            if r[0] == "Z":
                self.assertFalse(r[1].has("W"))
                self.assertTrue(r[2].value.startswith(winner_value), r[2])
        # every loser saw the one winner's value
        self.assertEqual(len({r[2].value for r in results if r[0] == "Z"}), 1)

    def test_stampede_recache_one_winner(self):
        key = "hot:recache"
        with MetaClient(self.server.port) as c:
            self.assertEqual(c.ms(key, "current", "T10").code, "HD")
        conns = self.clients()
        try:
            def read(i, barrier):
                c = conns[i]
                barrier.wait()
                r = c.mg(key, "R30", "v", "t")
                barrier.wait()
                if r.has("W"):
                    self.assertEqual(c.ms(key, "refreshed", "T100").code, "HD")
                return r

            results = run_clients(CLIENTS, read)
            # served the current value while one client refreshed it
            self.assertEqual(sum(1 for r in results if r.has("W")), 1)
            self.assertEqual(sum(1 for r in results if r.has("Z")), CLIENTS - 1)
            for r in results:
                self.assertEqual(r.code, "VA")
                self.assertIn(r.value, (b"current",))
            self.assertEqual(poll_value(conns[0], key, b"refreshed").tokens, [])
        finally:
            for c in conns:
                c.close()

    def test_stampede_invalidation_one_winner(self):
        key = "hot:stale"
        with MetaClient(self.server.port) as c:
            self.assertEqual(c.ms(key, "old", "T100").code, "HD")
            self.assertEqual(c.md(key, "I", "T30").code, "HD")
        conns = self.clients()
        try:
            def read(i, barrier):
                c = conns[i]
                barrier.wait()
                r = c.mg(key, "v", "c")
                barrier.wait()
                if r.has("W"):
                    # a compare-and-set with the stale item's CAS ends it
                    self.assertEqual(c.ms(key, "new", "C" + r.flag("c"), "T100").code, "HD")
                return r

            results = run_clients(CLIENTS, read)
            self.assertEqual(sum(1 for r in results if r.has("W")), 1)
            for r in results:
                self.assertEqual((r.code, r.value), ("VA", b"old"))  # stale, still served
                self.assertTrue(r.has("X"), r)
                self.assertTrue(r.has("W") != r.has("Z"), r)
            r = poll_value(conns[0], key, b"new")
            self.assertFalse(r.has("X") or r.has("Z") or r.has("W"), r)
        finally:
            for c in conns:
                c.close()

    def test_stampede_add_lock_one_loader(self):
        try:
            from pymemcache.client.base import Client
        except ImportError:
            self.skipTest("pymemcache is not importable by %s" % sys.executable)
        key = "hot:addlock"
        loads = []
        clients = [Client(("127.0.0.1", self.server.port), connect_timeout=5, timeout=DEADLINE)
                   for _ in range(CLIENTS)]
        try:
            for cl in clients:
                cl.version()  # connect before the barrier

            def fetch(i, barrier):
                cl = clients[i]
                barrier.wait()
                value = cl.get(key)
                if value is not None:
                    return value
                # the lock's TTL releases it (and a crashed loader's): it is
                # not deleted, so a straggler that missed the value before
                # it was stored cannot take the lock again and reload
                if cl.add(key + ":lock", b"%d" % i, expire=30, noreply=False):
                    loads.append(i)  # the one loader: recompute, store
                    time.sleep(0.05)
                    cl.set(key, b"loaded by %d" % i, expire=60, noreply=False)
                    return cl.get(key)
                end = time.monotonic() + DEADLINE
                while True:
                    value = cl.get(key)
                    if value is not None:
                        return value
                    if time.monotonic() > end:
                        raise AssertionError("client %d never saw the value" % i)
                    time.sleep(0.01)

            values = run_clients(CLIENTS, fetch)
        finally:
            for cl in clients:
                cl.close()
        self.assertEqual(len(loads), 1, loads)
        self.assertEqual(set(values), {b"loaded by %d" % loads[0]})


if __name__ == "__main__":
    harness.main()
