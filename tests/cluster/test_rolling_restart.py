"""test_rolling_restart.py: a rolling restart of a warm cluster (issue 14).

Three nodes started by `deploy/cluster.sh --warm` (each with -e on a tmpfs
directory of its own) serve a cache-aside load: a client maps each key to
its node with pymemcache's rendezvous hash, reads it, and on a miss (or an
error: the node is down) "loads it from the database" and sets it. While
it runs, `deploy/cluster.sh rolling-restart` stops and starts each node in
turn, each answering again before the next stops. The hit ratio is
recorded over time (printed, per 250 ms); it may dip only while a node is
down: once the restart is over, the first requests find every key they
found before, where a node restarted cold would miss a third of them.
"""

import subprocess
import sys
import threading
import time
import unittest

import clusterlib

try:
    from pymemcache.client.base import Client
    from pymemcache.client.rendezvous import RendezvousHash
except ImportError:
    print("pymemcache is missing (apt-get install python3-pymemcache)")
    sys.exit(77)

NKEYS = 20_000
VALUE = b"v" * 100


class Nodes:
    """Cache-aside over the nodes: one pymemcache client per node, no
    rehashing, so a down node's keys are misses until it is back."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.ring = RendezvousHash()
        for i in range(cluster.nodes):
            self.ring.add_node(i)
        self.clients = [None] * cluster.nodes

    def client(self, i):
        if self.clients[i] is None:
            host, port = self.cluster.addr(i)
            self.clients[i] = Client((host, port), connect_timeout=0.5, timeout=2)
        return self.clients[i]

    def close(self):
        for c in self.clients:
            if c is not None:
                c.close()

    def get_or_load(self, key):
        """True on a hit; a miss loads and sets the key."""
        i = self.ring.get_node(key)
        try:
            if self.client(i).get(key) is not None:
                return True
            self.client(i).set(key, VALUE, noreply=False)
        except (OSError, Exception):  # noqa: BLE001: the node is restarting
            if self.clients[i] is not None:
                self.clients[i].close()
            self.clients[i] = None
        return False


class RollingRestartTest(unittest.TestCase):
    def test_rolling_restart_keeps_the_hit_ratio(self):
        with clusterlib.Cluster(nodes=3, flags=("-t", "1", "-m", "64"), warm=True) as cluster:
            nodes = Nodes(cluster)
            keys = ["key:%d" % i for i in range(NKEYS)]
            for k in keys:
                nodes.get_or_load(k)
            hits = sum(nodes.get_or_load(k) for k in keys[:3000])
            self.assertGreaterEqual(hits, 2990, "the cluster does not hold the keys before the restart")

            argv = [clusterlib.CLUSTER_SH, "--state", cluster.state, "rolling-restart"]
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            out = {}
            reader = threading.Thread(target=lambda: out.update(err=proc.stderr.read()))
            reader.start()
            trace = []  # (seconds since the restart began, requests, hits)
            t0 = time.monotonic()
            bucket_start, n, h, j = t0, 0, 0, 0
            deadline = t0 + 120
            while proc.poll() is None and time.monotonic() < deadline:
                h += nodes.get_or_load(keys[(j * 7919) % NKEYS])
                n += 1
                j += 1
                if time.monotonic() - bucket_start >= 0.25:
                    trace.append((bucket_start - t0, n, h))
                    bucket_start, n, h = time.monotonic(), 0, 0
            proc.wait(timeout=120)
            proc.stdout.close()
            reader.join()
            proc.stderr.close()
            clusterlib.log("%s", out.get("err", b"").decode())
            self.assertEqual(proc.returncode, 0, "rolling-restart failed")
            # right after: the keys are where they were
            after = sum(nodes.get_or_load(keys[(i * 7919 + 13) % NKEYS]) for i in range(3000))
            clusterlib.log("hit ratio over time through the rolling restart (s, requests, ratio):")
            for t, n, h in trace:
                clusterlib.log("  %6.2f %6d %5.3f", t, n, h / n if n else 0.0)
            clusterlib.log("after the restart: %d of 3000 hits", after)
            self.assertGreaterEqual(after, 2970, "nodes came back cold: %d of 3000 hits" % after)
            nodes.close()
            for i in range(cluster.nodes):
                with open("%s/node%d.log" % (cluster.state, i)) as f:
                    self.assertIn("reattached", f.read(), "node %d" % i)


if __name__ == "__main__":
    unittest.main(verbosity=2)
