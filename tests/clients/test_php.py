#!/usr/bin/python3
"""test_php.py: test_php.php (PHP's memcache extension, php-memcache, beside
php-memcached) against three corecache servers and three memcached 1.6.18
servers; every case must pass on both."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib  # noqa: E402
from clientlib import harness  # noqa: E402

PHP = clientlib.need("php", "php-cli")
for cls, package in (("Memcache", "php-memcache"), ("Memcached", "php-memcached")):
    code, out = clientlib.run([PHP, "-r", "exit(class_exists('%s') ? 0 : 1);" % cls])
    if code != 0:
        harness.skip_process("PHP class %s missing (apt-get install %s)" % (cls, package))
CASES = 9  # the cases test_php.php defines


class PhpTest(unittest.TestCase):

    def run_on(self, binary, name):
        servers = clientlib.cluster(3, binary=binary, name=name)
        try:
            code, out = clientlib.run([PHP, os.path.join(clientlib.HERE, "test_php.php"),
                                       ",".join("127.0.0.1:%d" % s.port for s in servers)], timeout=120)
            sys.stdout.write(out)
            self.assertEqual(code, 0, out[-3000:])
            self.assertIn("php: %d passed, 0 failed" % CASES, out)
        finally:
            clientlib.stop_all(servers)

    def test_php_extensions_on_corecache(self):
        self.run_on(None, "corecache")

    def test_php_extensions_on_memcached(self):
        self.run_on(clientlib.MEMCACHED, "memcached")


if __name__ == "__main__":
    harness.main()
