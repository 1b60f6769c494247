#!/usr/bin/python3
"""test_pylibmc.py: pylibmc (libmemcached) in binary mode against a 2-shard server.

Every method pylibmc.Client has is called with binary=True, so libmemcached
speaks memcached's binary protocol: single-key commands, the multi-key ones
it pipelines as quiet commands ended by a NOOP (get_multi, set_multi,
delete_multi, add_multi, incr_multi), CAS, stats and flush. With two shards
about half the keys of every multi-key call belong to the other shard, so
forwarded quiet requests and their placeholders are exercised too.

Exits 77 (skip) when pylibmc (Debian's python3-pylibmc) is not installed.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

try:
    import pylibmc
except ImportError:
    harness.skip_process("pylibmc not found (apt-get install python3-pylibmc)")


class PylibmcBinaryTest(harness.ServerCase):

    def setUp(self):
        self.mc = self.client()
        self.mc.flush_all()

    def tearDown(self):
        self.mc.disconnect_all()

    def client(self, **behaviors):
        behaviors.setdefault("cas", True)
        return pylibmc.Client(["127.0.0.1:%d" % self.server.port], binary=True,
                              behaviors=behaviors)

    # -- every method ------------------------------------------------------

    def test_pylibmc_binary_flag_is_on(self):
        self.assertTrue(self.mc.binary)
        self.assertEqual(list(self.mc.addresses), ["127.0.0.1:%d" % self.server.port])

    def test_pylibmc_set_get_types(self):
        values = {"bytes": b"\x00\r\n\xffbinary", "str": "text ключ", "int": 42, "long": 2 ** 62,
                  "bool": True, "list": [1, "two", 3.0], "empty": b""}
        for key, value in values.items():
            self.assertTrue(self.mc.set(key, value))
        for key, value in values.items():
            self.assertEqual(self.mc.get(key), value, key)
        self.assertIsNone(self.mc.get("missing"))
        self.assertEqual(self.mc.get("missing", "default"), "default")

    def test_pylibmc_large_value(self):
        value = os.urandom(700 * 1024)
        self.assertTrue(self.mc.set("big", value))
        self.assertEqual(self.mc.get("big"), value)

    def test_pylibmc_too_large_value(self):
        self.mc.set("big", b"old")
        with self.assertRaises(pylibmc.Error):
            self.mc.set("big", b"x" * (2 * 1024 * 1024))
        self.assertIsNone(self.mc.get("big"))  # a failed set drops the old value
        self.assertTrue(self.mc.set("after", b"ok"))  # the connection survived the swallow
        self.assertEqual(self.mc.get("after"), b"ok")

    def test_pylibmc_add_replace(self):
        self.assertTrue(self.mc.add("k", "v1"))
        self.assertFalse(self.mc.add("k", "v2"))
        self.assertEqual(self.mc.get("k"), "v1")
        with self.assertRaises(pylibmc.NotFound):  # binary KEY_ENOENT: an error, not False
            self.mc.replace("missing", "x")
        self.assertIsNone(self.mc.get("missing"))
        self.assertTrue(self.mc.replace("k", "v3"))
        self.assertEqual(self.mc.get("k"), "v3")

    def test_pylibmc_append_prepend(self):
        self.assertFalse(self.mc.append("k", b"x"))
        self.assertTrue(self.mc.set("k", b"mid"))
        self.assertTrue(self.mc.append("k", b"-end"))
        self.assertTrue(self.mc.prepend("k", b"start-"))
        self.assertEqual(self.mc.get("k"), b"start-mid-end")
        self.assertFalse(self.mc.prepend("missing", b"x"))

    def test_pylibmc_delete(self):
        self.mc.set("k", "v")
        self.assertTrue(self.mc.delete("k"))
        self.assertFalse(self.mc.delete("k"))
        self.assertIsNone(self.mc.get("k"))

    def test_pylibmc_incr_decr(self):
        self.mc.set("n", 10)
        self.assertEqual(self.mc.incr("n"), 11)
        self.assertEqual(self.mc.incr("n", 9), 20)
        self.assertEqual(self.mc.decr("n", 5), 15)
        self.assertEqual(self.mc.decr("n", 100), 0)  # decr stops at zero
        self.assertEqual(self.mc.get("n"), 0)
        with self.assertRaises(pylibmc.NotFound):
            self.mc.incr("missing")
        self.mc.set("text", "abc")
        with self.assertRaises(pylibmc.Error):
            self.mc.incr("text")

    def test_pylibmc_incr_multi(self):
        self.mc.set_multi({"a": 1, "b": 2, "c": 3})
        self.mc.incr_multi(["a", "b", "c"], delta=10)
        self.assertEqual(self.mc.get_multi(["a", "b", "c"]), {"a": 11, "b": 12, "c": 13})
        with self.assertRaises(pylibmc.NotFound):  # binary incr with no initial: a miss
            self.mc.incr_multi(["p1", "p2"], key_prefix="pre:")
        self.assertEqual(self.mc.get_multi(["pre:p1"]), {})

    def test_pylibmc_gets_cas(self):
        self.mc.set("k", "v1")
        value, cas = self.mc.gets("k")
        self.assertEqual(value, "v1")
        self.assertTrue(cas)
        self.assertTrue(self.mc.cas("k", "v2", cas))
        self.assertFalse(self.mc.cas("k", "v3", cas))  # stale
        self.assertEqual(self.mc.get("k"), "v2")
        self.assertEqual(self.mc.gets("missing"), (None, None))
        value2, cas2 = self.mc.gets("k")
        self.assertNotEqual(cas2, cas)

    def test_pylibmc_touch(self):
        self.mc.set("k", "v", time=1)
        self.assertTrue(self.mc.touch("k", 100))
        self.assertFalse(self.mc.touch("missing", 100))
        self.mc.set("short", "v", time=1)
        time.sleep(2.1)
        self.assertEqual(self.mc.get("k"), "v")  # the touch moved its expiry
        self.assertIsNone(self.mc.get("short"))

    def test_pylibmc_multi_across_shards(self):
        data = {"key:%d" % i: "value:%d" % i for i in range(300)}
        self.assertEqual(self.mc.set_multi(data), [])
        got = self.mc.get_multi(list(data) + ["nope:%d" % i for i in range(50)])
        self.assertEqual(got, data)
        self.assertEqual(self.mc.get_multi(["a", "b"], key_prefix="x:"), {})
        self.assertEqual(self.mc.add_multi({"key:1": "other", "fresh": "new"}), ["key:1"])
        self.assertEqual(self.mc.get_multi(["key:1", "fresh"]), {"key:1": "value:1", "fresh": "new"})
        self.assertTrue(self.mc.delete_multi(["key:%d" % i for i in range(0, 300, 2)]))
        got = self.mc.get_multi(list(data))
        self.assertEqual(sorted(got), sorted("key:%d" % i for i in range(1, 300, 2)))

    def test_pylibmc_prefixed_multi(self):
        self.assertEqual(self.mc.set_multi({"a": 1, "b": 2}, key_prefix="p:"), [])
        self.assertEqual(self.mc.get("p:a"), 1)
        self.assertEqual(self.mc.get_multi(["a", "b", "c"], key_prefix="p:"), {"a": 1, "b": 2})
        self.mc.delete_multi(["a"], key_prefix="p:")
        self.assertIsNone(self.mc.get("p:a"))

    def test_pylibmc_flush_all(self):
        self.mc.set_multi({"f%d" % i: i for i in range(20)})
        self.assertTrue(self.mc.flush_all())
        self.assertEqual(self.mc.get_multi(["f%d" % i for i in range(20)]), {})

    def test_pylibmc_get_stats(self):
        self.mc.set("k", "v")
        self.mc.get("k")
        self.mc.get("missing")
        (server, raw), = self.mc.get_stats()
        stats = {k: v.decode() for k, v in raw.items()}
        self.assertIn(str(self.server.port), server.decode())
        self.assertGreater(int(stats["pid"]), 0)
        self.assertEqual(stats["threads"], "2")
        self.assertGreaterEqual(int(stats["curr_items"]), 1)
        self.assertGreaterEqual(int(stats["get_hits"]), 1)
        self.assertGreaterEqual(int(stats["get_misses"]), 1)
        # libmemcached keeps only the general stat names it knows, so a group
        # comes back as that fixed set (test_binary.py checks groups raw)
        for group in ("settings", "items", "slabs"):
            self.assertEqual(len(self.mc.get_stats(group)), 1, group)
        with self.assertRaises(pylibmc.Error):  # KEY_ENOENT for an unknown group
            self.mc.get_stats("nonsense")

    def test_pylibmc_clone_and_behaviors(self):
        clone = self.mc.clone()
        self.assertTrue(clone.binary)
        self.assertTrue(clone.set("cloned", "yes"))
        self.assertEqual(self.mc.get("cloned"), "yes")
        self.assertTrue(self.mc.get_behaviors()["cas"])
        self.mc.set_behaviors({"tcp_nodelay": True})
        self.assertTrue(self.mc.behaviors["tcp_nodelay"])
        self.assertTrue(self.mc.set("after_behaviors", 1))
        self.assertEqual(self.mc.get("after_behaviors"), 1)
        clone.disconnect_all()

    def test_pylibmc_serialize_hash(self):
        raw, flags = self.mc.serialize({"a": 1})
        self.assertEqual(self.mc.deserialize(raw, flags), {"a": 1})
        self.assertIsInstance(self.mc.hash("k"), int)

    def test_pylibmc_pool_threads(self):
        pool = pylibmc.ClientPool(self.client(), 4)
        errors = []

        def work(n):
            try:
                with pool.reserve() as mc:
                    for i in range(200):
                        key = "t%d:%d" % (n, i)
                        mc.set(key, i)
                        if mc.get(key) != i:
                            errors.append((key, mc.get(key)))
                    got = mc.get_multi(["t%d:%d" % (n, i) for i in range(200)])
                    if len(got) != 200:
                        errors.append(("multi", n, len(got)))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertFalse(any(t.is_alive() for t in threads), "a worker hung")
        self.assertEqual(errors, [])


if __name__ == "__main__":
    harness.main()
