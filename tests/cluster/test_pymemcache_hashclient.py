#!/usr/bin/python3
"""test_pymemcache_hashclient.py: pymemcache's HashClient over a 3-node
cluster, configured the way a production caching layer configures it.

The client is README.md's `cache_client` (run from the README itself):
pickle serde, 0.5 s connect and request timeouts, TCP_NODELAY, a connection
pool per node, errors read as misses (ignore_exc), a node retried twice, one
second apart, before it leaves the ring for dead_timeout seconds (3 s here,
30 s in the README). Keys go to nodes by rendezvous hashing (HashClient's
default). On top of it, README.md's `get_or_load`, the cache-aside read
every such layer has: get; on a miss take an add-lock so that one caller
loads while the others wait for the value; long keys hashed under 250 bytes.

What it shows:
  - keys spread within +-5% of even, each on exactly the node the client's
    ring names (checked against each node's own contents);
  - one loader per cold key among 16 concurrent readers;
  - a stopped node (SIGTERM by pid) loses only its keys: the others keep
    serving, no request waits past the client's timeout, the client ejects
    the node after its retry attempts and fails its keys over to the rest;
  - once the node is back and dead_timeout has passed, the ring is whole
    and exactly that node's keys (~1/3) miss once, then none;
  - a frozen node (SIGSTOP: connections accepted, never answered) costs
    each request at most the client's timeout until it is ejected.
Exits 77 when pymemcache is missing.
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import harness, log  # noqa: E402

try:
    from pymemcache import serde
    from pymemcache.client.hash import HashClient
    from pymemcache.client.rendezvous import RendezvousHash
except ImportError:
    harness.skip_process("pymemcache not found (apt-get install python3-pymemcache)")

KEYS = ["user:%d:profile" % i for i in range(30000)]
SAMPLE = KEYS[::5]  # the keys the failover phases read one at a time
TIMEOUT = 0.5
RETRY_ATTEMPTS = 2
RETRY_TIMEOUT = 1.0
DEAD_TIMEOUT = 3.0  # production: 30-60 s; short here so the test sees the node return
SLACK = 0.3  # scheduling noise allowed on top of a timeout


# The client configuration and the cache-aside read are README.md's own
# ("Production"), run as they are printed there.
README = {}
exec(clusterlib.readme_snippet("python-client"), README)
exec(clusterlib.readme_snippet("python-cache-aside"), README)
cache_key = README["cache_key"]
get_or_load = README["get_or_load"]


def make_client(servers):
    return README["cache_client"](servers, dead_timeout=DEAD_TIMEOUT)


def load(name):
    """The "database": a value the test can check."""
    return {"name": name, "n": len(name)}


class HashClientTest(unittest.TestCase):

    def setUp(self):
        self.cluster = clusterlib.Cluster(nodes=3)
        self.addCleanup(self.cluster.stop)
        self.cluster.start()
        self.client = make_client(self.cluster.servers)
        # The client's own ring, asked directly: where each key must live.
        self.ring = RendezvousHash()
        for s in self.cluster.servers:
            self.ring.add_node(s)

    def tearDown(self):
        self.client.close()

    def owners(self, keys):
        by_node = [set() for _ in self.cluster.servers]
        for k in keys:
            by_node[self.cluster.servers.index(self.ring.get_node(k))].add(k)
        return by_node

    def populate(self):
        failed = self.client.set_many({k: load(k) for k in KEYS}, expire=0)
        self.assertEqual(failed, [])

    def test_hashclient_spreads_keys_evenly_on_the_rings_nodes(self):
        self.populate()
        held = self.cluster.holders(KEYS)
        want = self.owners(KEYS)
        counts = self.cluster.curr_items()
        log("keys per node (curr_items): %s", clusterlib.fmt_spread(counts))
        for i in range(3):
            self.assertEqual(held[i], want[i], "node %d holds other keys than the ring names" % i)
            self.assertEqual(counts[i], len(want[i]))
        for dev in clusterlib.spread(counts):
            self.assertLessEqual(abs(dev), 0.05, clusterlib.fmt_spread(counts))
        # Every key reads back through the client, pickled and unpickled.
        got = self.client.get_many(KEYS[:2000])
        self.assertEqual(got, {k: load(k) for k in KEYS[:2000]})

    def test_cache_aside_add_lock_lets_exactly_one_reader_load(self):
        loads = []
        lock = threading.Lock()

        def slow_load(name):
            with lock:
                loads.append(name)
            time.sleep(0.3)  # a slow query: every reader arrives while it runs
            return load(name)

        for name in ("report:daily", "user:42:feed", "x" * 400):
            start = threading.Barrier(16)
            results = []
            before = len(loads)

            def reader():
                start.wait()
                results.append(get_or_load(self.client, name, slow_load))

            threads = [threading.Thread(target=reader) for _ in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            self.assertEqual(results, [load(name)] * 16)
            self.assertEqual(len(loads) - before, 1, "%s was loaded %d times" % (name[:20], len(loads) - before))
            self.assertIsNone(self.client.get(cache_key(name) + ":lock"), "lock left behind")
            self.assertEqual(self.client.get(cache_key(name)), load(name))
        self.assertLessEqual(len(cache_key("x" * 400)), 250)

    def test_stopped_node_loses_only_its_keys_and_returns_whole(self):
        self.populate()
        owners = self.owners(SAMPLE)
        down = 1
        self.cluster.stop_node(down)

        # The outage: the other nodes keep serving; the node's keys miss;
        # nothing waits past the timeout.
        worst = 0.0
        missed = set()
        for k in SAMPLE:
            value, took = clusterlib.timed(self.client.get, k)
            worst = max(worst, took)
            if value is None:
                missed.add(k)
            else:
                self.assertEqual(value, load(k))
        log("outage: %d of %d sampled keys missed (node %d held %d); slowest request %.3f s",
            len(missed), len(SAMPLE), down, len(owners[down]), worst)
        self.assertEqual(missed, owners[down])
        self.assertLess(worst, TIMEOUT + SLACK)

        # Failover: after its retry attempts the client drops the node from
        # its ring, and a write of one of its keys lands on a live node.
        key = sorted(owners[down])[0]
        self.assertTrue(clusterlib.wait_until(
            lambda: self.client.set(key, "during-outage") is True,
            (RETRY_ATTEMPTS + 1) * (RETRY_TIMEOUT + TIMEOUT) + 2))
        self.assertIn(key, set.union(*self.cluster.holders([key], skip=(down,))))

        # The node comes back empty. Once dead_timeout has passed the client
        # puts it back in its ring: exactly its keys miss, once.
        self.cluster.start_node(down)
        time.sleep(DEAD_TIMEOUT + 0.5)
        loaded = []

        def counted_load(name):
            loaded.append(name)
            return load(name)
        for k in SAMPLE:
            self.assertEqual(get_or_load(self.client, k, counted_load), load(k))
        log("after restart: %d of %d sampled keys missed once (%.1f%%)",
            len(loaded), len(SAMPLE), 100.0 * len(loaded) / len(SAMPLE))
        self.assertEqual(set(loaded), owners[down])
        self.assertAlmostEqual(len(loaded) / len(SAMPLE), 1 / 3, delta=0.05 / 3)
        loaded.clear()
        for k in SAMPLE:
            get_or_load(self.client, k, counted_load)
        self.assertEqual(loaded, [], "keys missed a second time")
        self.assertEqual(self.cluster.holders(SAMPLE)[down], owners[down])

    def test_frozen_node_costs_at_most_the_timeout_until_ejected(self):
        self.populate()
        frozen = 2
        owners = self.owners(SAMPLE)
        mine = sorted(owners[frozen])[:50]
        others = sorted(owners[0])[:50]
        self.cluster.freeze(frozen)
        try:
            worst = 0.0
            ejected_at = None
            t0 = time.monotonic()
            deadline = t0 + (RETRY_ATTEMPTS + 1) * (RETRY_TIMEOUT + TIMEOUT) + 3
            i = 0
            while time.monotonic() < deadline:
                k = mine[i % len(mine)]
                i += 1
                value, took = clusterlib.timed(self.client.get, k)
                worst = max(worst, took)
                self.assertIsNone(value)
                # A set goes through once the client has ejected the node.
                if ejected_at is None and self.client.set(k, "moved") is True:
                    ejected_at = time.monotonic() - t0
                    break
                time.sleep(0.05)
            log("frozen node: slowest request %.3f s (timeout %.1f s); ejected after %s s",
                worst, TIMEOUT, "%.1f" % ejected_at if ejected_at is not None else "never")
            self.assertLess(worst, TIMEOUT + SLACK)
            self.assertIsNotNone(ejected_at, "the client never ejected the frozen node")
            for k in others:  # the rest of the cluster never noticed
                value, took = clusterlib.timed(self.client.get, k)
                self.assertEqual(value, load(k))
                self.assertLess(took, TIMEOUT)
        finally:
            self.cluster.thaw(frozen)


if __name__ == "__main__":
    harness.main()
