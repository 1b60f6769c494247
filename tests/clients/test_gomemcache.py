#!/usr/bin/python3
"""test_gomemcache.py: Go's gomemcache (Debian's
golang-github-bradfitz-gomemcache-dev) running its own test suite
(memcache_test.go: TestLocalhost, pointed at our server) and
gomemcache_cluster_test.go (three servers), against corecache and against
memcached 1.6.18.

The build is offline, in GOPATH mode: the package's Debian sources are
copied into a GOPATH in the build tree (its test's fixed "localhost:11211"
becomes $GOMEMCACHE_SERVER), our cluster test is copied beside them, and
`go test` runs with GO111MODULE=off and GOPROXY=off."""

import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib  # noqa: E402
from clientlib import harness  # noqa: E402

GO = clientlib.need("go", "golang-go")
SRC = "/usr/share/gocode/src/github.com/bradfitz/gomemcache/memcache"
if not os.path.isfile(os.path.join(SRC, "memcache.go")):
    harness.skip_process("gomemcache not found (apt-get install golang-github-bradfitz-gomemcache-dev)")
WORK = os.path.join(os.environ.get("CORECACHE_CLIENTS_BUILD") or clientlib.HERE, "gopath")
PKG = os.path.join(WORK, "src", "github.com", "bradfitz", "gomemcache", "memcache")


def prepare():
    shutil.rmtree(os.path.join(WORK, "src"), ignore_errors=True)
    os.makedirs(PKG)
    for name in ("memcache.go", "selector.go"):
        shutil.copy(os.path.join(SRC, name), PKG)
    with open(os.path.join(SRC, "memcache_test.go")) as f:
        text = f.read()
    fixed = 'const testServer = "localhost:11211"'
    if fixed not in text:
        harness.skip_process("gomemcache's memcache_test.go changed: no %s" % fixed)
    with open(os.path.join(PKG, "memcache_test.go"), "w") as f:
        f.write(text.replace(fixed, 'var testServer = os.Getenv("GOMEMCACHE_SERVER")'))
    shutil.copy(os.path.join(clientlib.HERE, "gomemcache_cluster_test.go"), PKG)


class GomemcacheTest(unittest.TestCase):

    def run_on(self, binary, name):
        servers = clientlib.cluster(3, binary=binary, name=name)
        try:
            env = dict(os.environ, GO111MODULE="off", GOPROXY="off", GOFLAGS="", GOPATH=WORK,
                       GOCACHE=os.path.join(WORK, "cache"),
                       GOMEMCACHE_SERVER="127.0.0.1:%d" % servers[0].port,
                       GOMEMCACHE_CLUSTER=",".join("127.0.0.1:%d" % s.port for s in servers))
            # gomemcache's own test first: the cluster tests begin with
            # flush_all, and memcached's flush has one-second granularity, so
            # an item set in the same second after it may count as flushed
            # (seen on memcached itself: GetMulti missed "foo").
            out = ""
            for tests in ("TestLocalhost", "TestCluster"):
                code, part = clientlib.run([GO, "test", "-count=1", "-v", "-run", tests,
                                            "github.com/bradfitz/gomemcache/memcache"],
                                           env=env, timeout=240, cwd=WORK)
                sys.stdout.write(part)
                self.assertEqual(code, 0, part[-3000:])
                out += part
            for test in ("TestLocalhost", "TestClusterSpreadAndGetMulti", "TestClusterCasTouchIncr"):
                self.assertIn("--- PASS: %s " % test, out)
            self.assertNotIn("SKIP", out)
        finally:
            clientlib.stop_all(servers)

    def test_gomemcache_on_corecache(self):
        self.run_on(None, "corecache")

    def test_gomemcache_on_memcached(self):
        self.run_on(clientlib.MEMCACHED, "memcached")


if __name__ == "__main__":
    prepare()
    harness.main()
