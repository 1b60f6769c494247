#!/usr/bin/python3
"""test_pymemcache.py: Debian's pymemcache 3.5.2 against the server under test.

Part 1 drives every public method of pymemcache.client.base.Client against
one server and asserts exact return values, with noreply on and off, default
arguments, binary-safe values, values at and over the 1 MiB item limit, TTL
expiry, delayed flush_all and cas conflicts.

Part 2 drives pymemcache.client.hash.HashClient over two server instances:
every method it has, keys spread over both (checked through each server's
curr_items and by asking each node directly), and what it does when a node
is stopped (ignore_exc, retry_attempts, dead-node removal).

Timing: memcached's clock ticks once per second, so an item set with TTL n
lives between n-1 and n seconds (plus a tick). Tests that must see an item
alive use TTL >= 2 and look at once; tests that must see it gone sleep past
n + 1. Total sleep stays under ten seconds.
"""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

try:
    from pymemcache.client.base import Client
    from pymemcache.client.hash import HashClient
    from pymemcache import exceptions as mcexc
except ImportError:  # the pyenv python3, not Debian's
    harness.skip_process("pymemcache is not importable by %s; run /usr/bin/python3"
                         % sys.executable)

MiB = 1024 * 1024
U64_MAX = 2 ** 64 - 1


def new_client(port, **kw):
    kw.setdefault("connect_timeout", 5)
    kw.setdefault("timeout", 5)
    return Client(("127.0.0.1", port), **kw)


def raw(port, data):
    """One raw request on its own connection; reply bytes."""
    with harness.Conn(port) as c:
        c.send(data)
        return c.recv_idle(idle=0.2)


class SingleServerTest(unittest.TestCase):
    """pymemcache.client.base.Client against one server."""

    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server().start()
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        # default_noreply stays at pymemcache's default (True) in self.c;
        # self.r waits for every reply.
        self.c = new_client(self.port)
        self.r = new_client(self.port, default_noreply=False)
        self.assertTrue(self.r.flush_all())

    def tearDown(self):
        self.c.close()
        self.r.close()

    def sync(self):
        """Waits until the server has run every noreply command sent on
        self.c: replies on one connection come in order, and self.r is a
        different connection that could otherwise overtake them."""
        self.assertRegex(self.c.version(), rb"^\d")

    # -- storage commands --------------------------------------------------

    def test_set_defaults_to_noreply_and_stores(self):
        self.assertIs(self.c.set("k", b"v"), True)
        self.sync()
        self.assertEqual(self.r.get("k"), b"v")
        # flags default to 0 and exptime to 0
        self.assertEqual(raw(self.port, b"get k\r\n"), b"VALUE k 0 1\r\nv\r\nEND\r\n")

    def test_set_with_reply_flags_and_overwrite(self):
        self.assertIs(self.r.set("k", b"one", flags=7), True)
        self.assertIs(self.r.set("k", b"two", noreply=False, flags=4294967295), True)
        self.assertEqual(raw(self.port, b"get k\r\n"),
                         b"VALUE k 4294967295 3\r\ntwo\r\nEND\r\n")
        self.assertIs(self.r.set("k", "text value"), True)  # str is encoded
        self.assertEqual(self.r.get("k"), b"text value")
        self.assertIs(self.r.set("k", 12345), True)
        self.assertEqual(self.r.get("k"), b"12345")

    def test_set_many_returns_failed_keys(self):
        values = {"a%d" % i: b"v%d" % i for i in range(20)}
        self.assertEqual(self.r.set_many(values), [])
        self.assertEqual(self.c.set_many({"x": b"1", "y": b"2"}), [])  # noreply
        self.sync()
        self.assertEqual(self.r.set_multi({"z": b"3"}, noreply=False), [])
        got = self.r.get_many(list(values) + ["x", "y", "z"])
        want = dict(values, x=b"1", y=b"2", z=b"3")
        self.assertEqual(got, want)
        self.assertEqual(self.r.set_many({}), [])

    def test_add_only_when_missing(self):
        self.assertIs(self.r.add("k", b"first"), True)
        self.assertIs(self.r.add("k", b"second"), False)
        self.assertIs(self.c.add("k", b"third"), True)  # noreply: always True
        self.sync()
        self.assertIs(self.r.add("k", b"x", noreply=True), True)
        self.assertEqual(self.r.get("k"), b"first")
        self.assertIs(self.c.add("n", b"new"), True)
        self.sync()
        self.assertEqual(self.r.get("n"), b"new")

    def test_replace_only_when_present(self):
        self.assertIs(self.r.replace("k", b"x"), False)
        self.assertIsNone(self.r.get("k"))
        self.assertIs(self.c.replace("k", b"x"), True)  # noreply
        self.sync()
        self.assertIsNone(self.r.get("k"))
        self.r.set("k", b"old")
        self.assertIs(self.r.replace("k", b"new", flags=3), True)
        self.assertEqual(raw(self.port, b"get k\r\n"), b"VALUE k 3 3\r\nnew\r\nEND\r\n")

    def test_append_prepend(self):
        self.assertIs(self.r.append("k", b"x"), False)  # NOT_STORED
        self.assertIs(self.r.prepend("k", b"x"), False)
        self.assertIs(self.c.append("k", b"x"), True)  # noreply
        self.sync()
        self.assertIsNone(self.r.get("k"))
        self.r.set("k", b"mid", flags=5)
        self.assertIs(self.r.append("k", b"-end"), True)
        self.assertIs(self.r.prepend("k", b"start-"), True)
        self.assertIs(self.c.append("k", b"!"), True)
        self.sync()
        self.assertIs(self.c.prepend("k", b"<"), True)
        self.sync()
        self.assertEqual(self.r.get("k"), b"<start-mid-end!")
        # append/prepend ignore their flags: the item keeps its own
        self.assertIs(self.r.append("k", b"", flags=9), True)
        self.assertEqual(raw(self.port, b"get k\r\n"),
                         b"VALUE k 5 15\r\n<start-mid-end!\r\nEND\r\n")

    def test_cas_success_conflict_and_missing(self):
        self.assertIsNone(self.r.cas("k", b"v", 1))  # NOT_FOUND
        self.r.set("k", b"v1")
        value, token = self.r.gets("k")
        self.assertEqual(value, b"v1")
        self.assertTrue(token.isdigit())
        # another writer wins: the old token conflicts
        self.r.set("k", b"v2")
        self.assertIs(self.r.cas("k", b"mine", token), False)  # EXISTS
        self.assertEqual(self.r.get("k"), b"v2")
        value, token2 = self.r.gets("k")
        self.assertNotEqual(token, token2)
        self.assertIs(self.r.cas("k", b"mine", int(token2)), True)  # STORED
        self.assertEqual(self.r.get("k"), b"mine")
        self.assertIs(self.r.cas("k", b"again", token2), False)  # token used up
        # noreply: always True, and the write happens when the token matches
        _, token3 = self.r.gets("k")
        self.assertIs(self.r.cas("k", b"quiet", token3, noreply=True), True)
        self.assertEqual(self.r.get("k"), b"quiet")
        with self.assertRaises(mcexc.MemcacheIllegalInputError):
            self.r.cas("k", b"x", "12a")

    # -- retrieval ---------------------------------------------------------

    def test_get_defaults(self):
        self.assertIsNone(self.r.get("missing"))
        self.assertEqual(self.r.get("missing", default=b"dflt"), b"dflt")
        self.assertEqual(self.r.gets("missing"), (None, None))
        self.assertEqual(self.r.gets("missing", default=b"d", cas_default=b"0"), (b"d", b"0"))
        self.assertEqual(self.r.get_many([]), {})
        self.assertEqual(self.r.gets_many([]), {})

    def test_get_many_partial(self):
        self.r.set_many({"a": b"1", "c": b"3"})
        self.assertEqual(self.r.get_many(["a", "b", "c", "a"]), {"a": b"1", "c": b"3"})
        self.assertEqual(self.r.get_multi(["b"]), {})

    def test_gets_many_distinct_tokens(self):
        self.r.set_many({"a": b"1", "b": b"2"})
        got = self.r.gets_many(["a", "b", "nope"])
        self.assertEqual(sorted(got), ["a", "b"])
        self.assertEqual(got["a"][0], b"1")
        self.assertEqual(got["b"][0], b"2")
        self.assertNotEqual(got["a"][1], got["b"][1])
        self.r.set("a", b"1")  # same value, new version
        self.assertNotEqual(self.r.gets("a")[1], got["a"][1])
        self.assertEqual(self.r.gets("b")[1], got["b"][1])

    def test_binary_safe_values(self):
        values = {
            "bytes": bytes(range(256)) * 4,
            "crlf": b"\r\n\r\nEND\r\nVALUE x 0 1\r\n",
            "nul": b"\x00" * 100,
            "empty": b"",
            "space": b" ",
        }
        self.assertEqual(self.r.set_many(values), [])
        self.assertEqual(self.r.get_many(list(values)), values)
        for k, v in values.items():
            self.assertEqual(self.r.get(k), v, k)

    def test_key_lengths(self):
        k250 = "k" * 250
        self.assertIs(self.r.set(k250, b"v"), True)
        self.assertEqual(self.r.get(k250), b"v")
        # pymemcache refuses longer keys itself, before talking to the server
        with self.assertRaises(mcexc.MemcacheIllegalInputError):
            self.r.set("k" * 251, b"v")
        with self.assertRaises(mcexc.MemcacheIllegalInputError):
            self.r.get("has space")

    def test_values_near_and_over_item_limit(self):
        near = os.urandom(MiB - 1024)
        self.assertIs(self.r.set("big", near), True)
        self.assertEqual(self.r.get("big"), near)
        for size in (MiB, MiB + 1, 2 * MiB):
            with self.assertRaises(mcexc.MemcacheServerError) as cm:
                self.r.set("huge", b"x" * size)
            self.assertEqual(cm.exception.args[0], b"object too large for cache")
        # a failed set unlinks the old value: no stale data survives
        self.r.set("stale", b"old value")
        with self.assertRaises(mcexc.MemcacheServerError):
            self.r.set("stale", b"y" * (MiB + 1))
        self.assertIsNone(self.r.get("stale"))
        # the connection is usable again (pymemcache reconnects)
        self.assertEqual(self.r.get("big"), near)

    # -- delete ------------------------------------------------------------

    def test_delete(self):
        self.r.set("k", b"v")
        self.assertIs(self.r.delete("k"), True)
        self.assertIs(self.r.delete("k"), False)
        self.assertIs(self.c.delete("k"), True)  # noreply
        self.sync()
        self.r.set("k", b"v")
        self.assertIs(self.r.delete("k", noreply=True), True)
        self.assertIsNone(self.r.get("k"))

    def test_delete_many(self):
        self.r.set_many({"a": b"1", "b": b"2", "c": b"3"})
        self.assertIs(self.r.delete_many(["a", "b", "missing"]), True)
        self.assertEqual(self.r.get_many(["a", "b", "c"]), {"c": b"3"})
        self.assertIs(self.c.delete_many(["c"]), True)  # noreply
        self.sync()
        self.assertIs(self.r.delete_multi([]), True)
        self.assertEqual(self.r.get_many(["a", "b", "c"]), {})

    def test_item_protocol_helpers(self):
        self.r["k"] = b"v"
        self.assertEqual(self.r["k"], b"v")
        del self.r["k"]
        with self.assertRaises(KeyError):
            self.r["k"]

    # -- incr / decr -------------------------------------------------------

    def test_incr_decr_basic(self):
        self.assertIsNone(self.r.incr("n", 1))  # NOT_FOUND
        self.assertIsNone(self.r.decr("n", 1))
        self.r.set("n", b"10")
        self.assertEqual(self.r.incr("n", 5), 15)
        self.assertEqual(self.r.decr("n", 3), 12)
        self.assertEqual(self.r.incr("n", 0), 12)
        self.assertIsNone(self.r.incr("n", 8, noreply=True))
        self.assertEqual(self.r.get("n"), b"20")
        self.assertIsNone(self.r.decr("n", 20, noreply=True))
        self.assertEqual(self.r.get("n"), b"0 ")

    def test_decr_floor_and_padding(self):
        self.r.set("n", b"10")
        self.assertEqual(self.r.decr("n", 1), 9)
        # memcached pads a shorter result with spaces to the old length
        self.assertEqual(self.r.get("n"), b"9 ")
        self.assertEqual(self.r.decr("n", 100), 0)
        self.assertEqual(self.r.get("n"), b"0 ")
        self.r.set("m", b"1000")
        self.assertEqual(self.r.decr("m", 999), 1)
        self.assertEqual(self.r.get("m"), b"1   ")
        self.assertEqual(self.r.incr("m", 99999), 100000)
        self.assertEqual(self.r.get("m"), b"100000")

    def test_incr_wraps_at_2_64(self):
        self.r.set("n", str(U64_MAX).encode())
        self.assertEqual(self.r.incr("n", 1), 0)
        self.assertEqual(self.r.get("n"), b"0" + b" " * 19)
        self.assertEqual(self.r.incr("n", U64_MAX), U64_MAX)
        self.assertEqual(self.r.incr("n", 2), 1)

    def test_incr_errors(self):
        self.r.set("s", b"abc")
        with self.assertRaises(mcexc.MemcacheClientError) as cm:
            self.r.incr("s", 1)
        self.assertEqual(cm.exception.args[0],
                         b"cannot increment or decrement non-numeric value")
        with self.assertRaises(mcexc.MemcacheClientError) as cm:
            self.r.decr("s", 1)
        self.assertEqual(cm.exception.args[0],
                         b"cannot increment or decrement non-numeric value")
        self.r.set("n", b"5")
        with self.assertRaises(mcexc.MemcacheClientError) as cm:
            self.r.incr("n", 2 ** 64)
        self.assertEqual(cm.exception.args[0], b"invalid numeric delta argument")
        with self.assertRaises(mcexc.MemcacheIllegalInputError):
            self.r.incr("n", "1")
        self.assertEqual(self.r.get("n"), b"5")

    # -- touch, TTL, flush_all --------------------------------------------

    def test_touch_missing_and_noreply(self):
        self.assertIs(self.r.touch("k", 10), False)
        self.assertIs(self.c.touch("k", 10), True)  # noreply
        self.sync()
        self.r.set("k", b"v")
        self.assertIs(self.r.touch("k"), True)  # default expire 0
        self.assertIs(self.r.touch("k", 100, noreply=True), True)
        self.assertEqual(self.r.get("k"), b"v")

    def test_negative_ttl_expires_at_once(self):
        self.assertIs(self.r.set("k", b"v", expire=-1), True)
        self.assertIsNone(self.r.get("k"))
        self.r.set("t", b"v")
        self.assertIs(self.r.touch("t", -1), True)
        self.assertIsNone(self.r.get("t"))
        self.assertIs(self.r.add("k", b"again", expire=-1), True)
        self.assertIsNone(self.r.get("k"))

    def test_ttl_expiry_and_touch(self):
        r = self.r
        r.set("short", b"1", expire=2)
        r.set("touched-short", b"2", expire=100)
        self.assertIs(r.touch("touched-short", 2), True)
        r.set("touched-long", b"3", expire=2)
        self.assertIs(r.touch("touched-long", 0), True)  # 0: never expires
        r.add("added", b"4", expire=2)
        r.set("forever", b"5")
        r.set("later", b"6", expire=60)
        # all alive now (TTL 2 lives at least one full second)
        self.assertEqual(r.get_many(["short", "touched-short", "touched-long", "added",
                                     "forever", "later"]),
                         {"short": b"1", "touched-short": b"2", "touched-long": b"3",
                          "added": b"4", "forever": b"5", "later": b"6"})
        time.sleep(3.2)
        self.assertEqual(r.get_many(["short", "touched-short", "touched-long", "added",
                                     "forever", "later"]),
                         {"touched-long": b"3", "forever": b"5", "later": b"6"})
        self.assertIs(r.add("added", b"new"), True)  # the expired item is gone
        self.assertIs(r.replace("short", b"x"), False)
        self.assertIsNone(r.incr("short", 1))

    def test_flush_all_now_and_noreply(self):
        self.r.set_many({"a": b"1", "b": b"2"})
        self.assertIs(self.r.flush_all(), True)
        self.assertEqual(self.r.get_many(["a", "b"]), {})
        self.r.set("a", b"1")
        self.assertIs(self.c.flush_all(), True)  # noreply
        self.sync()
        self.assertIsNone(self.r.get("a"))
        self.r.set("a", b"1")
        self.assertIs(self.r.flush_all(0, noreply=False), True)
        self.assertIsNone(self.r.get("a"))

    def test_flush_all_with_delay(self):
        self.r.set("old", b"1")
        # delay 3: memcached flushes at its clock's now+2, at least 1s away
        self.assertIs(self.r.flush_all(delay=3), True)
        self.assertEqual(self.r.get("old"), b"1")
        time.sleep(3.2)
        self.assertIsNone(self.r.get("old"))
        # items stored after the flush time are kept
        self.r.set("new", b"2")
        self.assertEqual(self.r.get("new"), b"2")
        with self.assertRaises(mcexc.MemcacheIllegalInputError):
            self.r.flush_all(delay="3")

    # -- whole-server commands --------------------------------------------

    def test_stats_general(self):
        # A fresh server: flush_all invalidates lazily and flushed items are
        # reclaimed at memcached's leisure, so only here are counts exact.
        fresh = harness.Server().start()
        try:
            self.check_stats_general(fresh)
        finally:
            fresh.stop()

    def check_stats_general(self, server):
        r = new_client(server.port, default_noreply=False)
        s0 = r.stats()
        for name in (b"pid", b"uptime", b"time", b"version", b"curr_items",
                     b"total_items", b"cmd_get", b"cmd_set", b"get_hits", b"get_misses",
                     b"curr_connections", b"limit_maxbytes", b"threads"):
            self.assertIn(name, s0)
        self.assertEqual(s0[b"pid"], server.pid)
        self.assertEqual(s0[b"limit_maxbytes"], 64 * MiB)
        self.assertEqual(s0[b"threads"], 2)
        self.assertEqual(s0[b"curr_items"], 0)
        self.assertEqual(s0[b"total_items"], 0)
        r.set_many({"a": b"1", "b": b"2", "c": b"3"})
        r.get_many(["a", "b", "zz"])
        r.set("a", b"again")
        r.delete("b")
        s1 = r.stats()
        r.close()
        self.assertEqual(s1[b"curr_items"], 2)
        self.assertEqual(s1[b"total_items"], 4)
        self.assertEqual(s1[b"cmd_set"] - s0[b"cmd_set"], 4)
        self.assertEqual(s1[b"get_hits"] - s0[b"get_hits"], 2)
        self.assertEqual(s1[b"get_misses"] - s0[b"get_misses"], 1)
        self.assertEqual(s1[b"cmd_get"] - s0[b"cmd_get"], 3)

    def test_stats_args(self):
        # A fresh server, for the same reason as test_stats_general.
        fresh = harness.Server().start()
        try:
            self.check_stats_args(fresh)
        finally:
            fresh.stop()

    def check_stats_args(self, server):
        r = new_client(server.port, default_noreply=False)
        settings = r.stats("settings")
        self.assertEqual(settings[b"maxbytes"], 64 * MiB)
        self.assertEqual(settings[b"item_size_max"], MiB)
        self.assertEqual(settings[b"tcpport"], server.port)
        self.assertEqual(settings[b"num_threads"], 2)
        self.assertEqual(settings[b"maxconns"], 1024)
        self.assertEqual(settings[b"cas_enabled"], b"yes")
        r.set("k", b"v" * 100)
        items = r.stats("items")
        self.assertTrue(items, "stats items is empty with one item stored")
        self.assertTrue(all(re.match(rb"^items:\d+:\w+$", k) for k in items), items)
        number = [v for k, v in items.items() if k.endswith(b":number")]
        self.assertEqual(sum(number), 1)
        slabs = r.stats("slabs")
        self.assertIn(b"active_slabs", slabs)
        self.assertIn(b"total_malloced", slabs)
        self.assertEqual(slabs[b"active_slabs"], 1)
        conns = r.stats("conns")
        self.assertTrue(conns)
        self.assertEqual(r.stats()[b"cmd_set"], 1)
        # pymemcache cannot read "stats reset"'s RESET reply
        with self.assertRaises(mcexc.MemcacheUnknownError):
            r.stats("reset")
        self.assertEqual(r.stats()[b"cmd_set"], 0)
        with self.assertRaises(mcexc.MemcacheUnknownCommandError):
            r.stats("no-such-group")
        r.close()

    def test_version(self):
        v = self.r.version()
        self.assertRegex(v, rb"^\d+\.\d+\.\d+")
        self.assertEqual(v, self.r.stats()[b"version"])
        if harness.is_memcached():
            self.assertEqual(v, b"1.6.18")

    def test_cache_memlimit(self):
        # both servers move the limit at runtime (corecache: io/memlimit.c,
        # within the memory reserved from -m, which is 64 MiB here)
        self.assertIs(self.r.cache_memlimit(32), True)
        self.assertEqual(int(self.r.stats()[b"limit_maxbytes"]), 32 * 1024 * 1024)
        self.assertIs(self.r.cache_memlimit(64), True)
        self.assertEqual(int(self.r.stats()[b"limit_maxbytes"]), 64 * 1024 * 1024)
        self.assertIs(self.r.set("k", b"v"), True)

    def test_quit_and_close_then_reconnect(self):
        self.r.set("k", b"v")
        self.assertIsNotNone(self.r.sock)
        self.assertIsNone(self.r.quit())
        self.assertIsNone(self.r.sock)
        self.assertEqual(self.r.get("k"), b"v")  # reconnects
        self.r.close()
        self.assertIsNone(self.r.sock)
        self.r.close()  # twice is fine
        self.assertEqual(self.r.get("k"), b"v")
        before = self.r.stats()[b"total_connections"]
        self.r.quit()
        self.assertEqual(self.r.stats()[b"total_connections"], before + 1)

    def test_key_prefix(self):
        p = new_client(self.port, key_prefix=b"ns:", default_noreply=False)
        try:
            self.assertEqual(p.check_key("k"), b"ns:k")
            self.assertIs(p.set("k", b"v"), True)
            self.assertEqual(p.get("k"), b"v")
            self.assertEqual(p.get_many(["k", "x"]), {"k": b"v"})
            self.assertEqual(raw(self.port, b"get ns:k k\r\n"), b"VALUE ns:k 0 1\r\nv\r\nEND\r\n")
        finally:
            p.close()

    def test_shutdown_not_enabled(self):
        # The shared server runs without -A: the command is refused and the
        # server keeps running.
        with self.assertRaises(mcexc.MemcacheUnknownCommandError):
            self.r.shutdown()
        self.assertTrue(self.server.running())
        self.assertIs(self.r.set("k", b"v"), True)

    def test_shutdown_enabled(self):
        server = harness.Server(["-t", "2", "-A"]).start()
        try:
            c = new_client(server.port, default_noreply=False)
            self.assertIs(c.set("k", b"v"), True)
            self.assertIsNone(c.shutdown())
            self.assertEqual(server.wait(10), 0)
            c.close()
        finally:
            server.kill()

    def test_ignore_exc_turns_read_errors_into_misses(self):
        self.r.set("k", b"v")
        c = new_client(self.port, ignore_exc=True, default_noreply=False)
        try:
            self.assertEqual(c.get("k"), b"v")
            # "stats" with a bad group makes the server answer ERROR
            self.assertEqual(c.stats("no-such-group"), {})
        finally:
            c.close()


class HashClientTest(unittest.TestCase):
    """pymemcache.client.hash.HashClient over two servers."""

    N = 200

    def setUp(self):
        # Fresh servers per test: flush_all invalidates lazily and memcached
        # reclaims flushed items whenever it likes, so curr_items is exact
        # only on servers no earlier test wrote to.
        self.servers = [harness.Server(name="node0").start(),
                        harness.Server(name="node1").start()]
        self.addrs = [("127.0.0.1", s.port) for s in self.servers]
        self.hc = HashClient(self.addrs, connect_timeout=5, timeout=5, default_noreply=False)
        self.direct = [new_client(s.port, default_noreply=False) for s in self.servers]

    def tearDown(self):
        self.hc.close()
        for d in self.direct:
            d.close()
        for s in self.servers:
            s.stop()

    def node_of(self, key):
        """Index of the server HashClient routes key to."""
        name = self.hc.hasher.get_node(key)
        return [("127.0.0.1:%d" % s.port) for s in self.servers].index(name)

    def test_keys_spread_over_both_nodes(self):
        values = {"key:%d" % i: b"value-%d" % i for i in range(self.N)}
        self.assertEqual(self.hc.set_many(values), [])
        counts = [d.stats()[b"curr_items"] for d in self.direct]
        self.assertEqual(sum(counts), self.N)
        # Rendezvous hashing over 200 keys: each node gets a fair share
        self.assertGreater(min(counts), self.N // 4, counts)
        for key, value in values.items():
            home = self.node_of(key)
            self.assertEqual(self.direct[home].get(key), value)
            self.assertIsNone(self.direct[1 - home].get(key))
        self.assertEqual(self.hc.get_many(list(values)), values)
        self.assertEqual(self.hc.get_multi(list(values)[:5]),
                         {k: values[k] for k in list(values)[:5]})

    def test_every_method(self):
        hc = self.hc
        keys = ["k%d" % i for i in range(20)]
        self.assertEqual(set(self.node_of(k) for k in keys), {0, 1})
        for k in keys:
            self.assertIs(hc.set(k, b"v"), True)
            self.assertEqual(hc.get(k), b"v")
            self.assertIs(hc.add(k, b"x"), False)
            self.assertIs(hc.replace(k, b"10"), True)
            self.assertEqual(hc.incr(k, 5), 15)
            self.assertEqual(hc.decr(k, 6), 9)
            self.assertEqual(hc.get(k), b"9 ")
            self.assertIs(hc.append(k, b"a"), True)
            self.assertIs(hc.prepend(k, b"p"), True)
            self.assertEqual(hc.get(k), b"p9 a")
            value, token = hc.gets(k)
            self.assertEqual(value, b"p9 a")
            self.assertIs(hc.cas(k, b"c", token), True)
            self.assertIs(hc.cas(k, b"c2", token), False)
            self.assertIs(hc.touch(k, 100), True)
            self.assertEqual(hc.get(k), b"c")
            self.assertIs(hc.delete(k), True)
            self.assertIs(hc.delete(k), False)
            self.assertIsNone(hc.get(k))
            self.assertEqual(hc.get(k, default=b"d"), b"d")
            self.assertIs(hc.add(k, b"added"), True)
            self.assertIsNone(hc.incr("missing-" + k, 1))
            self.assertIs(hc.touch("missing-" + k, 1), False)
        got = hc.gets_many(keys)
        self.assertEqual(sorted(got), sorted(keys))
        self.assertTrue(all(v[0] == b"added" for v in got.values()))
        self.assertEqual(sorted(hc.gets_multi(keys[:3])), sorted(keys[:3]))
        self.assertIs(hc.delete_many(keys[:10]), True)
        self.assertEqual(sorted(hc.get_many(keys)), sorted(keys[10:]))
        self.assertIs(hc.delete_multi(keys[10:12]), True)
        self.assertEqual(len(hc.get_many(keys)), 8)
        self.assertEqual(hc.set_multi({"m1": b"1", "m2": b"2"}), [])
        self.assertIsNone(hc.flush_all())
        self.assertEqual(hc.get_many(keys + ["m1", "m2"]), {})
        hc.set("q", b"1")
        self.assertIsNone(hc.quit())
        self.assertEqual(hc.get("q"), b"1")  # reconnects
        hc.close()
        self.assertEqual(hc.get("q"), b"1")
        # noreply through the hash client
        self.assertIs(hc.set("nr", b"1", noreply=True), True)
        self.assertIs(hc.delete("nr", noreply=True), True)
        self.assertIsNone(hc.get("nr"))

    def test_add_server_moves_keys(self):
        one = HashClient(self.addrs[:1], connect_timeout=5, timeout=5, default_noreply=False)
        try:
            keys = ["add:%d" % i for i in range(100)]
            self.assertEqual(one.set_many({k: b"1" for k in keys}), [])
            self.assertEqual(self.direct[0].stats()[b"curr_items"], 100)
            one.add_server("127.0.0.1", self.servers[1].port)
            moved = [k for k in keys if self.node_of(k) == 1]
            self.assertTrue(moved)
            # keys now routed to the new, empty node miss until written again
            got = one.get_many(keys)
            self.assertEqual(set(got), set(keys) - set(moved))
            self.assertEqual(one.set_many({k: b"2" for k in moved}), [])
            self.assertEqual(self.direct[1].stats()[b"curr_items"], len(moved))
            self.assertEqual(len(one.get_many(keys)), 100)
        finally:
            one.close()

    def test_node_down_with_ignore_exc_and_retries(self):
        pair = self.servers
        addrs = self.addrs
        names = ["127.0.0.1:%d" % s.port for s in pair]
        hc = HashClient(addrs, connect_timeout=2, timeout=2, default_noreply=False,
                        ignore_exc=True, retry_attempts=1, retry_timeout=0,
                        dead_timeout=3600)
        strict = HashClient(addrs, connect_timeout=2, timeout=2, default_noreply=False)
        try:
            keys = ["node:%d" % i for i in range(100)]
            self.assertEqual(hc.set_many({k: k.encode() for k in keys}), [])
            on = [[k for k in keys if hc.hasher.get_node(k) == n] for n in names]
            self.assertTrue(on[0] and on[1])
            ka, kb = on[0][0], on[1][0]

            # Drop hc's open sockets first: on a stale socket the failure
            # is a reset or an EOF depending on timing, and pymemcache
            # counts only the former; a refused connect is deterministic.
            hc.close()
            pair[1].stop()  # exits 0 on SIGTERM, or the test fails here

            self.assertEqual(hc.get(ka), ka.encode())
            # strict client: the refused connection surfaces
            with self.assertRaises(OSError):
                strict.get(kb)
            # ignore_exc: a miss, then a failed retry, then the node is
            # declared dead and removed from the ring
            self.assertIsNone(hc.get(kb))
            # retry_timeout=0 needs the clock to move between attempts
            time.sleep(0.01)
            self.assertIs(hc.set(kb, b"again"), False)
            time.sleep(0.01)
            self.assertIs(hc.set(kb, b"again"), False)
            self.assertEqual(hc.hasher.nodes, [names[0]])
            self.assertEqual(hc.hasher.get_node(kb), names[0])
            # node 1's keys now live on node 0
            self.assertIs(hc.set(kb, b"moved"), True)
            self.assertEqual(hc.get(kb), b"moved")
            d0 = new_client(pair[0].port, default_noreply=False)
            try:
                self.assertEqual(d0.get(kb), b"moved")
                self.assertEqual(d0.stats()[b"curr_items"], len(on[0]) + 1)
            finally:
                d0.close()
            got = hc.get_many(keys)
            self.assertEqual(set(got), set(on[0]) | {kb})
        finally:
            hc.close()
            strict.close()


if __name__ == "__main__":
    harness.main()
