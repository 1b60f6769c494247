#!/usr/bin/python3
"""test_node.py: test_node.js (Node's `memcached`, Keyv with @keyv/memcache,
cache-manager) against three corecache servers and three memcached 1.6.18
servers; every case must pass on both. (memjs alone has its own test:
tests/integration/test_memjs.py.)

The npm packages are pinned (PACKAGES) and installed at test time with
`npm install --no-save` into $CORECACHE_NODE_DIR (CMake points it into the
build tree), reused when already there at the pinned versions. Exits 77
(skip), saying why, when node or npm is missing or the registry cannot be
reached."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib  # noqa: E402
from clientlib import harness  # noqa: E402

PACKAGES = {"memcached": "2.2.2", "keyv": "5.6.0", "@keyv/memcache": "2.0.2", "cache-manager": "7.2.9"}
NODE_DIR = os.environ.get("CORECACHE_NODE_DIR") or os.path.join(
    os.environ.get("CORECACHE_CLIENTS_BUILD") or clientlib.HERE, "node")
CASES = 13  # the cases test_node.js defines


def installed(name):
    try:
        with open(os.path.join(NODE_DIR, "node_modules", name, "package.json")) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def ensure_packages():
    node = clientlib.need("node", "nodejs")
    npm = clientlib.need("npm", "npm")
    if all(installed(n) == v for n, v in PACKAGES.items()):
        return node
    os.makedirs(NODE_DIR, exist_ok=True)
    cmd = [npm, "install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--prefix", NODE_DIR]
    cmd += ["%s@%s" % item for item in PACKAGES.items()]
    try:
        code, out = clientlib.run(cmd, timeout=240)
    except Exception as e:  # timeout
        harness.skip_process("npm install timed out (registry unreachable?): %s" % e)
    if code != 0 or not all(installed(n) == v for n, v in PACKAGES.items()):
        harness.skip_process("npm install failed (registry unreachable?):\n%s" % out[-2000:])
    return node


NODE = ensure_packages()


class NodeClientsTest(unittest.TestCase):

    def run_on(self, binary, name):
        servers = clientlib.cluster(3, binary=binary, name=name)
        try:
            env = dict(os.environ, NODE_PATH=os.path.join(NODE_DIR, "node_modules"))
            code, out = clientlib.run([NODE, os.path.join(clientlib.HERE, "test_node.js"),
                                       ",".join("127.0.0.1:%d" % s.port for s in servers)], env=env, timeout=120)
            sys.stdout.write(out)
            self.assertEqual(code, 0, out[-3000:])
            self.assertIn("node: %d passed, 0 failed" % CASES, out)
            for s in servers:
                self.assertTrue(s.running(), s)
        finally:
            clientlib.stop_all(servers)

    def test_node_clients_on_corecache(self):
        self.run_on(None, "corecache")

    def test_node_clients_on_memcached(self):
        self.run_on(clientlib.MEMCACHED, "memcached")


if __name__ == "__main__":
    harness.main()
