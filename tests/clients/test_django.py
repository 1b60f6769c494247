#!/usr/bin/python3
"""test_django.py: Django 3.2's cache framework on a 3-node cluster.

Debian's python3-django (3.2) with its two memcached backends as Django
users configure them: PyMemcacheCache (pymemcache's HashClient) and
PyLibMCCache (libmemcached), the latter in text and in binary protocol,
each with LOCATION listing three nodes. The cases are those of Django's
own cache tests (tests/cache/tests.py: BaseCacheTests and
BaseMemcachedTests, the ones that need no database or HTTP machinery),
rewritten here because Debian does not ship Django's test suite; their
names are Django's. Every case runs against three corecache nodes and
against three memcached 1.6.18 nodes, which proves the cases themselves.

The case that found issue 16 is test_zero_timeout: PyLibMCCache turns
timeout=0 into -1, which libmemcached sends as exptime 4294967295.
"""

import os
import pickle
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib  # noqa: E402
from clientlib import harness  # noqa: E402

try:
    import django
    from django.conf import settings
except ImportError:
    harness.skip_process("Django not found (apt-get install python3-django)")
for module, package in (("pymemcache", "python3-pymemcache"), ("pylibmc", "python3-pylibmc")):
    try:
        __import__(module)
    except ImportError:
        harness.skip_process("%s not found (apt-get install %s)" % (module, package))

BACKENDS = {
    "pymemcache": ("django.core.cache.backends.memcached.PyMemcacheCache", {}),
    "pylibmc": ("django.core.cache.backends.memcached.PyLibMCCache", {}),
    "pylibmc_binary": ("django.core.cache.backends.memcached.PyLibMCCache", {"binary": True}),
}
CLUSTERS = {}


def f():
    return 42


class C:
    def m(n):
        return 24


class Unpicklable:
    def __getstate__(self):
        raise pickle.PickleError()


def setup_django():
    """Starts both clusters and configures one Django cache per (cluster,
    backend, variant): plain, key-prefixed, VERSION=2, TIMEOUT=None and a
    one-year TIMEOUT, as Django's caches_setting_for_tests does."""
    CLUSTERS["corecache"] = clientlib.cluster(3)
    CLUSTERS["memcached"] = clientlib.cluster(3, binary=clientlib.MEMCACHED, name="memcached")
    caches = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    for cname, servers in CLUSTERS.items():
        location = ["127.0.0.1:%d" % s.port for s in servers]
        for bname, (backend, options) in BACKENDS.items():
            base = {"BACKEND": backend, "LOCATION": location, "OPTIONS": dict(options)}
            alias = "%s_%s" % (cname, bname)
            caches[alias] = dict(base)
            caches[alias + "_prefix"] = dict(base, KEY_PREFIX="cacheprefix%d" % os.getpid())
            caches[alias + "_v2"] = dict(base, VERSION=2)
            caches[alias + "_forever"] = dict(base, TIMEOUT=None)
            caches[alias + "_year"] = dict(base, TIMEOUT=31536000)
    settings.configure(CACHES=caches, INSTALLED_APPS=[], USE_TZ=True)
    django.setup()


class CacheCases:
    """Django's BaseCacheTests and BaseMemcachedTests cases; self.alias names the cache."""

    alias = None

    @property
    def cache(self):
        from django.core.cache import caches
        return caches[self.alias]

    def other(self, variant):
        from django.core.cache import caches
        return caches[self.alias + "_" + variant]

    def tearDown(self):
        self.cache.clear()

    def test_simple(self):
        self.cache.set("key", "value")
        self.assertEqual(self.cache.get("key"), "value")

    def test_default_used_when_none_is_set(self):
        self.cache.set("key_default_none", None)
        self.assertIsNone(self.cache.get("key_default_none", default="default"))

    def test_add(self):
        self.assertIs(self.cache.add("addkey1", "value"), True)
        self.assertIs(self.cache.add("addkey1", "newvalue"), False)
        self.assertEqual(self.cache.get("addkey1"), "value")

    def test_prefix(self):
        self.cache.set("somekey", "value")
        prefixed = self.other("prefix")
        self.assertIs(prefixed.has_key("somekey"), False)
        prefixed.set("somekey", "value2")
        self.assertEqual(self.cache.get("somekey"), "value")
        self.assertEqual(prefixed.get("somekey"), "value2")

    def test_non_existent(self):
        self.assertIsNone(self.cache.get("does_not_exist"))
        self.assertEqual(self.cache.get("does_not_exist", "bang!"), "bang!")

    def test_get_many(self):
        c = self.cache
        c.set_many({"a": "a", "b": "b", "c": "c", "d": "d"})
        self.assertEqual(c.get_many(["a", "c", "d"]), {"a": "a", "c": "c", "d": "d"})
        self.assertEqual(c.get_many(["a", "b", "e"]), {"a": "a", "b": "b"})
        self.assertEqual(c.get_many(iter(["a", "b", "e"])), {"a": "a", "b": "b"})
        c.set_many({"x": None, "y": 1})
        self.assertEqual(c.get_many(["x", "y"]), {"x": None, "y": 1})

    def test_get_many_across_nodes(self):
        """Many keys: every node holds some, and one get_many reads them all."""
        c = self.cache
        nodes = CLUSTERS[self.cluster]
        before = [int(s.stats()["cmd_set"]) for s in nodes]
        data = {"spread%d" % i: i for i in range(300)}
        self.assertEqual(c.set_many(data), [])
        self.assertEqual(c.get_many(list(data) + ["missing"]), data)
        per_node = [int(s.stats()["cmd_set"]) - b for s, b in zip(nodes, before)]
        self.assertEqual(sum(per_node), 300)
        self.assertTrue(all(n > 0 for n in per_node), per_node)

    def test_delete(self):
        c = self.cache
        c.set_many({"key1": "spam", "key2": "eggs"})
        self.assertEqual(c.get("key1"), "spam")
        self.assertIs(c.delete("key1"), True)
        self.assertIsNone(c.get("key1"))
        self.assertEqual(c.get("key2"), "eggs")

    def test_delete_nonexistent(self):
        self.assertIs(self.cache.delete("nonexistent_key"), False)

    def test_has_key(self):
        c = self.cache
        c.set("hello1", "goodbye1")
        self.assertIs(c.has_key("hello1"), True)
        self.assertIs(c.has_key("goodbye1"), False)
        c.set("no_expiry", "here", None)
        self.assertIs(c.has_key("no_expiry"), True)
        c.set("null", None)
        self.assertIs(c.has_key("null"), True)

    def test_in(self):
        c = self.cache
        c.set("hello2", "goodbye2")
        self.assertIn("hello2", c)
        self.assertNotIn("goodbye2", c)
        c.set("null", None)
        self.assertIn("null", c)

    def test_incr(self):
        c = self.cache
        c.set("answer", 41)
        self.assertEqual(c.incr("answer"), 42)
        self.assertEqual(c.get("answer"), 42)
        self.assertEqual(c.incr("answer", 10), 52)
        self.assertEqual(c.get("answer"), 52)
        self.assertEqual(c.incr("answer", -10), 42)
        with self.assertRaises(ValueError):
            c.incr("does_not_exist")

    def test_decr(self):
        c = self.cache
        c.set("answer", 43)
        self.assertEqual(c.decr("answer"), 42)
        self.assertEqual(c.get("answer"), 42)
        self.assertEqual(c.decr("answer", 10), 32)
        self.assertEqual(c.get("answer"), 32)
        self.assertEqual(c.decr("answer", -10), 42)
        with self.assertRaises(ValueError):
            c.decr("does_not_exist")

    def test_close(self):
        self.assertTrue(hasattr(self.cache, "close"))
        self.cache.close()
        self.cache.set("after_close", 1)
        self.assertEqual(self.cache.get("after_close"), 1)

    def test_data_types(self):
        tests = {"string": "this is a string", "int": 42, "bool": True, "list": [1, 2, 3, 4],
                 "tuple": (1, 2, 3, 4), "dict": {"A": 1, "B": 2}, "function": f, "class": C}
        for key, value in tests.items():
            with self.subTest(key=key):
                self.cache.set(key, value)
                self.assertEqual(self.cache.get(key), value)

    def test_expiration(self):
        c = self.cache
        c.set("expire1", "very quickly", 1)
        c.set("expire2", "very quickly", 1)
        c.set("expire3", "very quickly", 1)
        time.sleep(2.5)
        self.assertIsNone(c.get("expire1"))
        self.assertIs(c.add("expire2", "newvalue"), True)
        self.assertEqual(c.get("expire2"), "newvalue")
        self.assertIs(c.has_key("expire3"), False)

    def test_touch(self):
        c = self.cache
        # (Django's case touches to 4 s and sleeps across it; the margins here
        # are wider, so a loaded machine cannot make the case flaky)
        c.set("expire1", "very quickly", timeout=1)
        self.assertIs(c.touch("expire1", timeout=30), True)
        c.set("expire3", "slowly", timeout=30)
        self.assertIs(c.touch("expire3", timeout=1), True)
        time.sleep(2.5)
        self.assertIs(c.has_key("expire1"), True)
        self.assertIs(c.has_key("expire3"), False)
        c.set("expire2", "very quickly", timeout=1)
        self.assertIs(c.touch("expire2", timeout=None), True)
        time.sleep(2.5)
        self.assertIs(c.has_key("expire2"), True)
        self.assertIs(c.touch("nonexistent"), False)

    def test_unicode(self):
        stuff = {"ascii": "ascii_value", "unicode_ascii": "Iñtërnâtiônàlizætiøn1",
                 "Iñtërnâtiônàlizætiøn": "Iñtërnâtiônàlizætiøn2", "ascii2": {"x": 1}}
        c = self.cache
        for key, value in stuff.items():
            with self.subTest(key=key):
                c.set(key, value)
                self.assertEqual(c.get(key), value)
        for key, value in stuff.items():
            with self.subTest(key=key):
                self.assertIs(c.delete(key), True)
                self.assertIs(c.add(key, value), True)
                self.assertEqual(c.get(key), value)
        for key, value in stuff.items():
            c.delete(key)
        c.set_many(stuff)
        for key, value in stuff.items():
            with self.subTest(key=key):
                self.assertEqual(c.get(key), value)

    def test_binary_string(self):
        from zlib import compress, decompress
        value = "value_to_be_compressed"
        compressed_value = compress(value.encode())
        c = self.cache
        c.set("binary1", compressed_value)
        self.assertEqual(value, decompress(c.get("binary1")).decode())
        c.add("binary1-add", compressed_value)
        self.assertEqual(value, decompress(c.get("binary1-add")).decode())
        c.set_many({"binary1-set_many": compressed_value})
        self.assertEqual(value, decompress(c.get("binary1-set_many")).decode())

    def test_set_many(self):
        c = self.cache
        c.set_many({"key1": "spam", "key2": "eggs"})
        self.assertEqual(c.get("key1"), "spam")
        self.assertEqual(c.get("key2"), "eggs")

    def test_set_many_returns_empty_list_on_success(self):
        self.assertEqual(self.cache.set_many({"key1": "spam", "key2": "eggs"}), [])

    def test_set_many_expiration(self):
        c = self.cache
        c.set_many({"key1": "spam", "key2": "eggs"}, 1)
        time.sleep(2.5)
        self.assertIsNone(c.get("key1"))
        self.assertIsNone(c.get("key2"))

    def test_delete_many(self):
        c = self.cache
        c.set_many({"key1": "spam", "key2": "eggs", "key3": "ham"})
        c.delete_many(["key1", "key2"])
        self.assertIsNone(c.get("key1"))
        self.assertIsNone(c.get("key2"))
        self.assertEqual(c.get("key3"), "ham")

    def test_clear(self):
        c = self.cache
        c.set_many({"key1": "spam", "key2": "eggs"})
        c.clear()
        self.assertIsNone(c.get("key1"))
        self.assertIsNone(c.get("key2"))

    def test_long_timeout(self):
        """Timeouts beyond 30 days are sent as unix times."""
        c = self.cache
        c.set("key1", "eggs", 60 * 60 * 24 * 30 + 1)
        self.assertEqual(c.get("key1"), "eggs")
        self.assertIs(c.add("key2", "ham", 60 * 60 * 24 * 30 + 1), True)
        self.assertEqual(c.get("key2"), "ham")
        c.set_many({"key3": "sausage", "key4": "lobster bisque"}, 60 * 60 * 24 * 30 + 1)
        self.assertEqual(c.get("key3"), "sausage")
        self.assertEqual(c.get("key4"), "lobster bisque")

    def test_forever_timeout(self):
        c = self.cache
        c.set("key1", "eggs", None)
        self.assertEqual(c.get("key1"), "eggs")
        self.assertIs(c.add("key2", "ham", None), True)
        self.assertEqual(c.get("key2"), "ham")
        self.assertIs(c.add("key1", "new eggs", None), False)
        self.assertEqual(c.get("key1"), "eggs")
        c.set_many({"key3": "sausage", "key4": "lobster bisque"}, None)
        self.assertEqual(c.get("key3"), "sausage")
        self.assertEqual(c.get("key4"), "lobster bisque")
        c.set("key5", "belgian fries", timeout=1)
        self.assertIs(c.touch("key5", timeout=None), True)
        time.sleep(2.5)
        self.assertEqual(c.get("key5"), "belgian fries")

    def test_zero_timeout(self):
        """Issue 16: timeout=0 means "expire now"; PyLibMCCache sends -1,
        which libmemcached writes as exptime 4294967295. In the text
        protocol memcached reads it as -1, already expired; in the binary
        protocol the exptime is an unsigned field and memcached 1.6.18 reads
        4294967295 as a unix time far in the future, so the item stays
        (its binary touch reads it as -1 and expires the item)."""
        c = self.cache
        gone = None if not self.binary else ...
        def expect(key, value):
            self.assertEqual(c.get(key), None if gone is None else value, key)
        c.set("key1", "eggs", 0)
        expect("key1", "eggs")
        self.assertIs(c.add("key2", "ham", 0), True)
        expect("key2", "ham")
        c.set_many({"key3": "sausage", "key4": "lobster bisque"}, 0)
        expect("key3", "sausage")
        expect("key4", "lobster bisque")
        c.set("key5", "belgian fries", timeout=5)
        self.assertIs(c.touch("key5", timeout=0), True)
        self.assertIsNone(c.get("key5"))  # binary touch: memcached reads the exptime as signed
        # and the connection is still in step
        c.set("after", "still in step")
        self.assertEqual(c.get("after"), "still in step")
        self.assertEqual(c.get_many(["after", "nokey"]), {"after": "still in step"})

    def test_float_timeout(self):
        self.cache.set("key1", "spam", 100.2)
        self.assertEqual(self.cache.get("key1"), "spam")

    def test_cache_versioning_get_set(self):
        c, v2 = self.cache, self.other("v2")
        c.set("answer1", 42)
        self.assertEqual(c.get("answer1"), 42)
        self.assertEqual(c.get("answer1", version=1), 42)
        self.assertIsNone(c.get("answer1", version=2))
        self.assertIsNone(v2.get("answer1"))
        self.assertEqual(v2.get("answer1", version=1), 42)
        c.set("answer2", 42, version=2)
        self.assertIsNone(c.get("answer2"))
        self.assertEqual(c.get("answer2", version=2), 42)
        self.assertEqual(v2.get("answer2"), 42)
        v2.set("answer3", 42)
        self.assertIsNone(c.get("answer3"))
        self.assertEqual(c.get("answer3", version=2), 42)

    def test_incr_version(self):
        c = self.cache
        c.set("answer", 42, version=2)
        self.assertIsNone(c.get("answer"))
        self.assertEqual(c.get("answer", version=2), 42)
        self.assertEqual(c.incr_version("answer", version=2), 3)
        self.assertIsNone(c.get("answer", version=2))
        self.assertEqual(c.get("answer", version=3), 42)
        with self.assertRaises(ValueError):
            c.incr_version("does_not_exist")

    def test_decr_version(self):
        c = self.cache
        c.set("answer", 42, version=2)
        self.assertEqual(c.decr_version("answer", version=2), 1)
        self.assertEqual(c.get("answer"), 42)
        self.assertIsNone(c.get("answer", version=2))
        with self.assertRaises(ValueError):
            c.decr_version("does_not_exist", version=2)

    def test_add_fail_on_pickleerror(self):
        with self.assertRaises(pickle.PickleError):
            self.cache.add("unpicklable", Unpicklable())

    def test_set_fail_on_pickleerror(self):
        with self.assertRaises(pickle.PickleError):
            self.cache.set("unpicklable", Unpicklable())

    def test_get_or_set(self):
        c = self.cache
        self.assertIsNone(c.get("projector"))
        self.assertEqual(c.get_or_set("projector", 42), 42)
        self.assertEqual(c.get("projector"), 42)
        self.assertIsNone(c.get_or_set("null", None))
        self.assertIsNone(c.get("null", "default"))

    def test_get_or_set_callable(self):
        self.assertEqual(self.cache.get_or_set("mykey", lambda: "value"), "value")
        self.assertEqual(self.cache.get_or_set("mykey", lambda: "other"), "value")

    def test_get_or_set_version(self):
        c = self.cache
        self.assertEqual(c.get_or_set("brian", 1979, version=2), 1979)
        self.assertIsNone(c.get("brian", version=1))
        self.assertEqual(c.get_or_set("brian", 42, version=1), 42)
        self.assertEqual(c.get_or_set("brian", 1979, version=2), 1979)
        self.assertIsNone(c.get("brian", version=3))

    def test_invalid_key_length(self):
        with self.assertRaises(Exception):
            self.cache.set("a" * 251, "value")

    def test_key_at_the_length_limit(self):
        """Django's key is ":1:" + the key: 247 bytes make a 250-byte key."""
        key = "k" * 247
        self.cache.set(key, "edge")
        self.assertEqual(self.cache.get(key), "edge")

    def test_default_never_expiring_timeout(self):
        forever = self.other("forever")
        forever.set("infinite_foo", "bar")
        self.assertEqual(forever.get("infinite_foo"), "bar")

    def test_default_far_future_timeout(self):
        year = self.other("year")
        year.set("future_foo", "bar")
        self.assertEqual(year.get("future_foo"), "bar")

    def test_memcached_deletes_key_on_failed_set(self):
        c = self.cache
        c.set("small_value", "a")
        self.assertEqual(c.get("small_value"), "a")
        large_value = "a" * (1048576 + 1)
        try:
            c.set("small_value", large_value)
        except Exception:
            pass
        value = c.get("small_value")
        self.assertTrue(value is None or value == large_value)
        c.set("after_large", "fine")
        self.assertEqual(c.get("after_large"), "fine")

    def test_large_value_below_the_limit(self):
        value = os.urandom(900 * 1024)
        self.cache.set("large", value)
        self.assertEqual(self.cache.get("large"), value)


def make_cases():
    for cname in ("corecache", "memcached"):
        for bname in BACKENDS:
            name = "Django_%s_%s" % (cname, bname)
            cls = type(name, (CacheCases, unittest.TestCase),
                       {"alias": "%s_%s" % (cname, bname), "cluster": cname,
                        "binary": bool(BACKENDS[bname][1].get("binary"))})
            globals()[name] = cls


make_cases()

if __name__ == "__main__":
    try:
        setup_django()
        harness.main()
    finally:
        for servers in CLUSTERS.values():
            for srv in servers:
                srv.kill()
