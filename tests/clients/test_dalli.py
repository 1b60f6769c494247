#!/usr/bin/python3
"""test_dalli.py: test_dalli.rb (Ruby's dalli and ActiveSupport's
MemCacheStore, Debian's ruby-dalli and ruby-activesupport) against three
corecache servers, then against three memcached 1.6.18 servers (which
proves the cases); every case must pass on both."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib  # noqa: E402
from clientlib import harness  # noqa: E402

RUBY = clientlib.need("ruby", "ruby")
code, out = clientlib.run([RUBY, "-e", 'require "dalli"; require "active_support"; require "active_support/cache"; require "active_support/cache/mem_cache_store"'])
if code != 0:
    harness.skip_process("dalli/activesupport missing (apt-get install ruby-dalli ruby-activesupport): "
                         + out[-300:])
SCRIPT = os.path.join(clientlib.HERE, "test_dalli.rb")


class DalliTest(unittest.TestCase):

    def run_on(self, binary, name):
        servers = clientlib.cluster(3, binary=binary, name=name)
        try:
            code, out = clientlib.run([RUBY, SCRIPT, ",".join("127.0.0.1:%d" % s.port for s in servers)],
                                      timeout=180)
            sys.stdout.write(out)
            self.assertEqual(code, 0, out[-3000:])
            self.assertRegex(out, r"dalli: 1[0-9] passed, 0 failed")
            for s in servers:
                self.assertTrue(s.running(), s)
        finally:
            clientlib.stop_all(servers)

    def test_dalli_and_memcachestore_on_corecache(self):
        self.run_on(None, "corecache")

    def test_dalli_and_memcachestore_on_memcached(self):
        self.run_on(clientlib.MEMCACHED, "memcached")


if __name__ == "__main__":
    harness.main()
