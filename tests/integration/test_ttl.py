#!/usr/bin/python3
"""test_ttl.py: --default-ttl and --max-ttl, TTL on every item.

The server under test runs with --default-ttl 2 --max-ttl 4: an item stored
with exptime 0 ("never") lives 2 seconds, and no item, whatever TTL its
client asked for (classic or meta, absolute unix time included), lives
more than 4. Both options show in `stats settings`. memcached has neither
option, so against memcached the test skips.

Timing: the server's clock counts whole seconds (refreshed every 0.1 s), so
an item stored with TTL n dies between n-1 and n seconds later, plus a
tick: at 2.4 s the 2-second items are gone and the 4-second ones alive; at
5.4 s those are gone too. Total sleep: 5.4 seconds.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from metaclient import MetaClient  # noqa: E402

if harness.is_memcached():
    harness.skip_process("memcached has no --default-ttl/--max-ttl")


class TtlPolicyTest(harness.ServerCase):
    SERVER_FLAGS = ["-t", "2", "--default-ttl", "2", "--max-ttl=4"]

    def test_ttl_settings_shown(self):
        s = self.server.stats("settings")
        self.assertEqual(s["default_ttl"], "2")
        self.assertEqual(s["max_ttl"], "4")

    def test_ttl_every_item_expires(self):
        far = str(int(time.time()) + 86400)  # an absolute exptime a day away
        with harness.Conn(self.server.port) as c:
            c.send(b"set never 0 0 1\r\nv\r\n"
                   b"set long 0 100 1\r\nv\r\n"
                   b"set abs 0 " + far.encode() + b" 1\r\nv\r\n"
                   b"set short 0 1 1\r\nv\r\n"
                   b"add touched 0 100 1\r\nv\r\ntouch touched 0\r\n")
            self.assertEqual(c.recv_until(b"TOUCHED\r\n"), b"STORED\r\n" * 5 + b"TOUCHED\r\n")
        with MetaClient(self.server.port) as m:
            self.assertEqual(m.ms("meta", "v", "T1000").code, "HD")
            self.assertEqual(m.mg("viv", "N0", "t").tokens[0][0], "t")
            ttl = {k: int(m.mg(k, "t").flag("t")) for k in
                   ("never", "long", "abs", "short", "touched", "meta", "viv")}
        # "never" and touch 0 take the default; everything else is capped
        self.assertLessEqual(ttl["never"], 2)
        self.assertLessEqual(ttl["touched"], 2)
        self.assertLessEqual(ttl["viv"], 2)
        for k in ("long", "abs", "meta"):
            self.assertIn(ttl[k], (3, 4), k)
        self.assertLessEqual(ttl["short"], 1)
        time.sleep(2.4)  # TTL 2 is over (>= 2 s + a 0.1 s clock tick); TTL 4 is not (< 3 s)
        with harness.Conn(self.server.port) as c:
            c.send(b"get never touched viv short long\r\n")
            got = c.recv_until(b"END\r\n")
        self.assertEqual(got.count(b"VALUE"), 1, got)  # only "long" is left
        self.assertIn(b"VALUE long", got)
        time.sleep(3.0)  # 5.4 s: TTL 4 is over too
        with harness.Conn(self.server.port) as c:
            c.send(b"get long abs meta\r\n")
            self.assertEqual(c.recv_until(b"END\r\n"), b"END\r\n")

    def test_ttl_option_errors(self):
        for args, message in ((["--max-ttl", "x"], "--max-ttl x: not an unsigned decimal number"),
                              (["--default-ttl=2147483648"],
                               "--default-ttl 2147483648: default TTL must be at most 2147483647")):
            p = subprocess.run([harness.SERVER] + harness.user_flags() + args,
                               capture_output=True, text=True, timeout=10)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(message, p.stderr)


if __name__ == "__main__":
    harness.main()
