#!/usr/bin/python3
"""test_php_memcached.py: README.md's PHP client (php-memcached on Debian's
libmemcached) over a 3-node cluster, run from the README itself.

The README's `cache()` function is taken verbatim from the "php-client"
snippet, with only its server list replaced by the cluster's, and driven by
a small PHP script. What it shows: OPT_LIBKETAMA_COMPATIBLE puts every key
on the node the libketama model names (so PHP shares its ring with pylibmc's
ketama_weighted, twemproxy and spymemcached's LIBMEMCACHED format, which the
other tests check against the same model); a stopped node loses only its
keys and no request waits past the configured timeout; after a restart only
its keys miss, once.
Exits 77 when php or its memcached extension is missing.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import harness, log  # noqa: E402

PHP = shutil.which("php")
if PHP is None:
    harness.skip_process("php not found (apt-get install php-cli php-memcached)")
if subprocess.run([PHP, "-r", "exit(class_exists('Memcached') ? 0 : 1);"]).returncode != 0:
    harness.skip_process("php has no memcached extension (apt-get install php-memcached)")

KEYS = ["user:%d:profile" % i for i in range(6000)]
TIMEOUT = 0.5  # the snippet's connect/poll/send/receive timeouts
SLACK = 0.3

DRIVER = r"""
$m = cache();
$keys = array_values(array_filter(explode("\n", file_get_contents($argv[2]))));
if ($argv[1] === 'set') {
    foreach (array_chunk($keys, 500) as $chunk) {
        $items = [];
        foreach ($chunk as $k) { $items[$k] = "v:$k"; }
        if (!$m->setMulti($items, 300)) { fwrite(STDERR, $m->getResultMessage() . "\n"); exit(1); }
    }
    echo json_encode(['libketama' => $m->getOption(Memcached::OPT_LIBKETAMA_COMPATIBLE)]);
} else {
    $missed = []; $worst = 0.0;
    foreach ($keys as $k) {
        $t = microtime(true);
        $v = $m->get($k);
        $worst = max($worst, microtime(true) - $t);
        if ($v === false) { $missed[] = $k; }
        elseif ($v !== "v:$k") { fwrite(STDERR, "wrong value for $k\n"); exit(1); }
    }
    echo json_encode(['missed' => $missed, 'worst' => $worst]);
}
"""


class PhpMemcachedTest(unittest.TestCase):

    def setUp(self):
        self.cluster = clusterlib.Cluster(nodes=3)
        self.addCleanup(self.cluster.stop)
        self.cluster.start()
        tmp = tempfile.TemporaryDirectory(prefix="corecache-php-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        snippet = clusterlib.readme_snippet("php-client")
        servers = ", ".join("['%s', %d]" % self.cluster.addr(i) for i in range(3))
        snippet, n = re.subn(r"\$m->addServers\(\[.*\]\);", "$m->addServers([%s]);" % servers, snippet)
        self.assertEqual(n, 1, "the README snippet's addServers line changed")
        self.script = os.path.join(self.dir, "client.php")
        with open(self.script, "w") as f:
            f.write("<?php\n" + snippet + DRIVER)
        names = [clusterlib.ketama_name(*self.cluster.addr(i)) for i in range(3)]
        self.ring = clusterlib.KetamaRing(names, clusterlib.md5_32)

    def php(self, mode, keys):
        path = os.path.join(self.dir, "keys")
        with open(path, "w") as f:
            f.write("\n".join(keys) + "\n")
        proc = subprocess.run([PHP, self.script, mode, path], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode())
        return json.loads(proc.stdout)

    def owned(self, keys):
        out = [set() for _ in range(3)]
        for k in keys:
            out[self.ring.owner(k)].add(k)
        return out

    def test_php_places_every_key_on_the_libketama_ring(self):
        self.assertTrue(self.php("set", KEYS)["libketama"])
        held = self.cluster.holders(KEYS)
        self.assertEqual(held, self.owned(KEYS))
        log("php-memcached: every key on its ring node; %s", clusterlib.fmt_spread(self.cluster.curr_items()))

    def test_php_stopped_node_loses_only_its_keys(self):
        self.php("set", KEYS)
        sample = KEYS[::3]
        owners = self.owned(sample)
        down = 1
        self.cluster.stop_node(down)
        got = self.php("get", sample)
        log("outage: %d of %d keys missed (node %d held %d); slowest request %.3f s",
            len(got["missed"]), len(sample), down, len(owners[down]), got["worst"])
        self.assertEqual(set(got["missed"]), owners[down])
        self.assertLess(got["worst"], TIMEOUT + SLACK)

        self.cluster.start_node(down)
        time.sleep(1)
        got = self.php("get", sample)  # a new process: a fresh client sees the whole ring
        self.assertEqual(set(got["missed"]), owners[down])
        self.php("set", sorted(owners[down]))
        self.assertEqual(self.php("get", sample)["missed"], [])


if __name__ == "__main__":
    harness.main()
