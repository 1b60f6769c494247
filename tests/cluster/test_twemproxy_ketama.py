#!/usr/bin/python3
"""test_twemproxy_ketama.py: twemproxy (Debian's nutcracker) in front of a
3-node cluster, with distribution ketama.

The proxy's pool: hash fnv1a_64, distribution ketama, a 500 ms server
timeout, preconnect, auto_eject_hosts with server_failure_limit 2 and
server_retry_timeout 2 s (production: 30 s). Its servers are listed without
names, so its ring is libketama's over "host" (port 11211) or "host:port",
the same ring libmemcached's ketama_weighted builds. The application talks
to the proxy with pymemcache (1 s timeouts); errors read as misses.

What it shows: every key on exactly the node the ring model names (keys
hashed with twemproxy's fnv1a_64, which is FNV-1a in 32 bits), the spread
(see test_libmemcached_ketama.py on what a 3-node ketama ring can promise:
the observed counts are checked against the ring's shares, and the ring
itself against +-5% on the fixed netns layout); a stopped node (SIGTERM by
pid) ejected by the proxy so that only its keys miss, no request outlasting
the proxy's timeout, writes failing over to where the 2-node ring puts
them; after a restart the proxy puts the node back and exactly its keys
(~1/3) miss once; a frozen node (SIGSTOP) costs a request at most the
proxy's timeout.
Exits 77 when nutcracker or pymemcache is missing.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import harness, log  # noqa: E402

NUTCRACKER = shutil.which("nutcracker") or (os.path.exists("/usr/sbin/nutcracker") and "/usr/sbin/nutcracker")
if not NUTCRACKER:
    harness.skip_process("nutcracker not found (apt-get install nutcracker)")
try:
    from pymemcache.client.base import Client
    from pymemcache.exceptions import MemcacheError
except ImportError:
    harness.skip_process("pymemcache not found (apt-get install python3-pymemcache)")

KEYS = ["user:%d:profile" % i for i in range(30000)]
PROXY_TIMEOUT = 0.5
RETRY = 2.0
SLACK = 0.3

CONFIG = """\
corecache:
  listen: 127.0.0.1:{port}
  hash: fnv1a_64
  distribution: ketama
  timeout: {timeout_ms}
  preconnect: true
  auto_eject_hosts: true
  server_failure_limit: 2
  server_retry_timeout: {retry_ms}
  servers:
{servers}"""


class Proxy:
    """nutcracker on a free loopback port (of the client namespace, with --netns)."""

    def __init__(self, servers):
        self.dir = tempfile.mkdtemp(prefix="corecache-nutcracker-")
        self.port = clusterlib.port_free_here()
        self.stats_port = clusterlib.port_free_here()
        conf = os.path.join(self.dir, "nutcracker.yml")
        with open(conf, "w") as f:
            f.write(CONFIG.format(port=self.port, timeout_ms=int(PROXY_TIMEOUT * 1000),
                                  retry_ms=int(RETRY * 1000),
                                  servers="".join("   - %s:1\n" % s for s in servers)))
        self.log = os.path.join(self.dir, "nutcracker.log")
        test = subprocess.run([NUTCRACKER, "-t", "-c", conf], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=10)
        assert test.returncode == 0, test.stdout.decode()
        self.proc = None
        self.proc = subprocess.Popen(
            [NUTCRACKER, "-c", conf, "-s", str(self.stats_port), "-a", "127.0.0.1",
             "-o", self.log, "-p", os.path.join(self.dir, "nutcracker.pid")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not clusterlib.wait_until(self._up, 10):
            text = self.log_text()
            self.stop()
            raise AssertionError("nutcracker did not start: " + text)

    def _up(self):
        try:
            # (twemproxy does not proxy `version`.)
            c = Client(("127.0.0.1", self.port), connect_timeout=0.2, timeout=0.5)
            try:
                c.get("nutcracker-is-up")
                return True
            finally:
                c.close()
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class TwemproxyTest(unittest.TestCase):

    def setUp(self):
        self.cluster = clusterlib.Cluster(nodes=3)
        self.addCleanup(self.cluster.stop)
        self.cluster.start()
        self.proxy = Proxy(self.cluster.servers)
        self.addCleanup(self.proxy.stop)
        self.mc = Client(("127.0.0.1", self.proxy.port), connect_timeout=1, timeout=1,
                         no_delay=True, default_noreply=False)
        self.addCleanup(self.mc.close)
        self.names = [clusterlib.ketama_name(*self.cluster.addr(i)) for i in range(3)]
        self.ring = clusterlib.KetamaRing(self.names, clusterlib.twemproxy_fnv1a_64)

    def owned(self, keys, ring=None):
        ring = ring or self.ring
        out = [set() for _ in range(ring.nodes)]
        for k in keys:
            out[ring.owner(k)].add(k)
        return out

    def populate(self):
        for i in range(0, len(KEYS), 500):
            failed = self.mc.set_many({k: k.encode() for k in KEYS[i:i + 500]})
            self.assertEqual(failed, [])

    def get(self, key):
        """The caching layer's read through the proxy: an error is a miss."""
        t0 = time.monotonic()
        try:
            value = self.mc.get(key)
        except (MemcacheError, OSError):
            value = None
            self.mc.close()  # a fresh connection for the next request
        return value, time.monotonic() - t0

    def set(self, key, value):
        try:
            return self.mc.set(key, value) is True
        except (MemcacheError, OSError):
            self.mc.close()
            return False

    def test_twemproxy_places_every_key_on_its_ring_node(self):
        self.populate()
        held = self.cluster.holders(KEYS)
        want = self.owned(KEYS)
        for i in range(3):
            self.assertEqual(held[i], want[i], "node %d holds other keys than the ring names" % i)
        counts = self.cluster.curr_items()
        self.assertEqual(counts, [len(w) for w in want])
        clusterlib.check_ring_spread(self, self.cluster, counts, self.ring)
        self.assertEqual(self.mc.get_many(KEYS[:500]), {k: k.encode() for k in KEYS[:500]})

    def test_twemproxy_ejects_a_stopped_node_and_takes_it_back(self):
        self.populate()
        sample = KEYS[::5]
        owners = self.owned(sample)
        down = 1
        self.cluster.stop_node(down)

        missed, worst = set(), 0.0
        for k in sample:
            value, took = self.get(k)
            worst = max(worst, took)
            if value is None:
                missed.add(k)
            else:
                self.assertEqual(value, k.encode())
        log("outage: %d of %d sampled keys missed (node %d held %d); slowest request %.3f s",
            len(missed), len(sample), down, len(owners[down]), worst)
        self.assertEqual(missed, owners[down])
        self.assertLess(worst, PROXY_TIMEOUT + SLACK)

        # Ejected: the node's keys are written where a ring of the other two
        # puts them. (Every server_retry_timeout the proxy tries the node
        # again, and that one request fails: the caching layer retries.)
        moved = sorted(owners[down])[:200]
        for k in moved:
            self.assertTrue(clusterlib.wait_until(lambda: self.set(k, b"failover"), 5, step=0.05))
        two = clusterlib.KetamaRing([n for i, n in enumerate(self.names) if i != down],
                                    clusterlib.twemproxy_fnv1a_64)
        live = [i for i in range(3) if i != down]
        held = self.cluster.holders(moved, skip=(down,))
        for k in moved:
            self.assertIn(k, held[live[two.owner(k)]], "failed-over key not where the 2-node ring puts it")

        # Back, empty: within server_retry_timeout the proxy takes it back
        # and exactly its keys miss, once.
        self.cluster.start_node(down)
        sampled = set(sample)
        probe = next(k for k in KEYS if k not in sampled and self.ring.owner(k) == down)
        t0 = time.monotonic()
        self.assertTrue(clusterlib.wait_until(
            lambda: self.set(probe, b"x") and probe in self.cluster.holders([probe])[down], RETRY + 5, step=0.1),
            "the proxy never took the node back")
        log("the proxy took node %d back after %.1f s", down, time.monotonic() - t0)
        missed = {k for k in sample if self.get(k)[0] is None}
        log("after restart: %d of %d sampled keys missed once (%.1f%%)",
            len(missed), len(sample), 100.0 * len(missed) / len(sample))
        self.assertEqual(missed, owners[down])
        for k in sorted(missed):
            self.assertTrue(self.set(k, k.encode()))
        self.assertEqual({k for k in sample if self.get(k)[0] is None}, set())

    def test_twemproxy_frozen_node_costs_at_most_the_timeout(self):
        self.populate()
        frozen = 2
        mine = sorted(self.owned(KEYS[:3000])[frozen])
        self.cluster.freeze(frozen)
        try:
            worst, slow = 0.0, 0
            t0 = time.monotonic()
            i = 0
            while time.monotonic() - t0 < RETRY * 2:
                value, took = self.get(mine[i % len(mine)])
                i += 1
                worst = max(worst, took)
                slow += took > PROXY_TIMEOUT / 2
                self.assertIsNone(value)
            log("frozen node: %d requests, %d waited for the timeout, slowest %.3f s (timeout %.1f s)",
                i, slow, worst, PROXY_TIMEOUT)
            self.assertLess(worst, PROXY_TIMEOUT + SLACK)
            # Ejected after server_failure_limit: most requests no longer wait.
            self.assertLess(slow, i / 2)
        finally:
            self.cluster.thaw(frozen)


if __name__ == "__main__":
    harness.main()
