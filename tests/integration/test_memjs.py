#!/usr/bin/python3
"""test_memjs.py: runs test_memjs.js (memjs, a Node.js client that speaks
only the binary protocol) against a fresh 2-shard server.

memjs comes from the npm registry, pinned (MEMJS_VERSION), installed at test
time with `npm install --no-save` into a directory outside git's view:
$CORECACHE_NODE_DIR (CMake points it into the build tree, so the plain and
sanitizer builds never install into one directory at once), else this
directory's node_modules/ (gitignored). An installed copy of the pinned
version is reused. Exits 77 (skip), saying why, when node or npm is missing
or the registry cannot be reached; it never passes without running.
"""

import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MEMJS_VERSION = "1.3.2"
HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.environ.get("CORECACHE_NODE_DIR") or HERE
TESTS = 14  # the tests test_memjs.js defines


def installed_version():
    try:
        with open(os.path.join(NODE_DIR, "node_modules", "memjs", "package.json")) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def ensure_memjs():
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        harness.skip_process("node/npm not found (apt-get install nodejs npm)")
    if installed_version() == MEMJS_VERSION:
        return node
    os.makedirs(NODE_DIR, exist_ok=True)
    cmd = [npm, "install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund",
           "--prefix", NODE_DIR, "memjs@" + MEMJS_VERSION]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=180)
    except subprocess.TimeoutExpired:
        harness.skip_process("npm install memjs@%s timed out (registry unreachable?)" % MEMJS_VERSION)
    if proc.returncode != 0 or installed_version() != MEMJS_VERSION:
        harness.skip_process("npm install memjs@%s failed (registry unreachable?):\n%s"
                             % (MEMJS_VERSION, proc.stdout.decode(errors="replace")[-2000:]))
    return node


NODE = ensure_memjs()


class MemjsTest(unittest.TestCase):

    def test_memjs_all_pass(self):
        with harness.Server(["-t", "2"]) as server:
            env = dict(os.environ, NODE_PATH=os.path.join(NODE_DIR, "node_modules"))
            proc = subprocess.run([NODE, os.path.join(HERE, "test_memjs.js"), str(server.port)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env=env, timeout=120)
            out = proc.stdout.decode(errors="replace")
            sys.stdout.write(out)
            self.assertEqual(proc.returncode, 0, "test_memjs.js exited %d" % proc.returncode)
            self.assertIn("memjs: %d passed, 0 failed" % TESTS, out)
            self.assertTrue(server.running(), "server died under memjs")


if __name__ == "__main__":
    harness.main()
