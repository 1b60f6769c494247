#!/usr/bin/python3
"""test_meta.py: the meta protocol (doc/protocol.txt, "Meta Commands") end to end.

A meta client (metaclient.py; pymemcache has none) drives the server under
test with protocol.txt's commands and checks the replies protocol.txt
defines: mg/ms/md/ma/mn/me with their flags, quiet mode with mn as the
pipeline fence, opaques, base64 keys, the stale/win flags. The server runs
with two shards (-t 2), and the pipelines spread their keys over both, so
requests forwarded to the other shard must come back in request order with
their opaque and quiet mode intact.

Byte-exact comparison with memcached 1.6.18 is test_differential.py's job;
here the checks are semantic and pass against memcached too (run with
CORECACHE_SERVER=/usr/bin/memcached), except where noted (E and x, added by
memcached 1.6.27, and corecache's stats).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from metaclient import MetaClient  # noqa: E402


class MetaTest(harness.ServerCase):
    def setUp(self):
        self.c = MetaClient(self.server.port)
        self.c.send(b"flush_all\r\n")
        self.assertEqual(self.c.conn.recv_until(b"\r\n"), b"OK\r\n")

    def tearDown(self):
        self.c.close()

    # -- Meta Get ----------------------------------------------------------

    def test_meta_get_value_and_flags(self):
        c = self.c
        self.assertEqual(c.ms("foo", "hi", "F7", "T100").code, "HD")
        r = c.mg("foo", "v")
        self.assertEqual((r.code, r.size, r.value), ("VA", 2, b"hi"))
        # without v: HD and the requested flags, in the order asked
        r = c.mg("foo", "s", "f", "k", "t", "c")
        self.assertEqual(r.code, "HD")
        self.assertEqual([t[0] for t in r.tokens], ["s", "f", "k", "t", "c"])
        self.assertEqual(r.flag("s"), "2")
        self.assertEqual(r.flag("f"), "7")
        self.assertEqual(r.flag("k"), "foo")
        self.assertIn(int(r.flag("t")), (99, 100))  # "t20" for 20 seconds left
        self.assertTrue(int(r.flag("c")) > 0)
        r = c.mg("foo", "c", "t", "k")
        self.assertEqual([t[0] for t in r.tokens], ["c", "t", "k"])
        # a miss: EN
        self.assertEqual(c.mg("nope", "v").code, "EN")
        # h and l: hit before? seconds since last access, before this command
        self.assertEqual(c.ms("hl", "x").code, "HD")
        self.assertEqual(c.mg("hl", "h").flag("h"), "0")
        self.assertEqual(c.mg("hl", "h").flag("h"), "1")
        self.assertEqual(c.mg("hl", "l").flag("l"), "0")

    def test_meta_get_touch_and_no_bump(self):
        c = self.c
        c.ms("k", "v")
        self.assertEqual(c.mg("k", "t").flag("t"), "-1")  # no TTL
        r = c.mg("k", "T30", "t")
        self.assertIn(int(r.flag("t")), (29, 30))
        # u: no bump, so the item is still "not hit before"
        c.ms("u", "v")
        c.mg("u", "u")
        self.assertEqual(c.mg("u", "h").flag("h"), "0")
        # T-1: expires now
        c.mg("k", "T-1")
        self.assertEqual(c.mg("k").code, "EN")

    def test_meta_opaque_pipeline(self):
        """protocol.txt: pipeline mg's with O tokens 1 2 3 and q, fenced by
        mn: misses are silent, hits carry their opaque, MN ends it."""
        c = self.c
        keys = ["opq%d" % i for i in range(20)]
        for i, k in enumerate(keys):
            if i % 3 == 0:
                c.ms(k, "v%d" % i)
        c.send(b"".join(MetaClient.mg_req(k, "O%d" % i, "v", "q", "k") for i, k in enumerate(keys))
               + b"mn\r\n")
        got = c.until_mn()
        want = [i for i in range(20) if i % 3 == 0]
        self.assertEqual([int(r.flag("O")) for r in got], want)
        for r in got:
            i = int(r.flag("O"))
            self.assertEqual(r.flag("k"), keys[i])
            self.assertEqual(r.value, b"v%d" % i)
        # without q every miss answers EN with its opaque, in order
        c.send(b"".join(MetaClient.mg_req(k, "O%d" % i, "k") for i, k in enumerate(keys))
               + b"mn\r\n")
        got = c.until_mn()
        self.assertEqual(len(got), 20)
        self.assertEqual([r.code for r in got], ["HD" if i % 3 == 0 else "EN" for i in range(20)])
        self.assertEqual([int(r.flag("O")) for r in got], list(range(20)))

    def test_meta_quiet_mode_rules(self):
        """q hides EN (mg), HD (ms, md, ma); EX, NF, NS and errors stay."""
        c = self.c
        c.send(MetaClient.ms_req("q1", "v", "q", "O1")          # HD: hidden
               + MetaClient.ms_req("q1", "w", "q", "ME", "O2")  # NS: shown
               + MetaClient.ms_req("q1", "w", "q", "C1", "O3")  # EX: shown
               + MetaClient.mg_req("q1", "v", "q", "O4")        # hit: shown
               + MetaClient.mg_req("q2", "v", "q", "O5")        # EN: hidden
               + MetaClient.md_req("q2", "q", "O6")             # NF: shown
               + MetaClient.md_req("q1", "q", "O7")             # HD: hidden
               + MetaClient.ma_req("q3", "q", "O8")             # NF: shown
               + MetaClient.ma_req("q3", "q", "N0", "O9")       # created: shown
               + MetaClient.ma_req("q3", "q", "O10")            # HD: hidden
               + MetaClient.mg_req("q1", "q", "v", "v")         # error: shown
               + b"mn\r\n")
        got = c.until_mn()
        self.assertEqual([(r.code, r.flag("O")) for r in got],
                         [("NS", "2"), ("EX", "3"), ("VA", "4"), ("NF", "6"), ("NF", "8"),
                          ("HD", "9"), ("CLIENT_ERROR", None)])
        self.assertEqual(got[-1].line, b"CLIENT_ERROR duplicate flag")
        self.assertEqual(c.mg("q3", "v").value, b"1")

    def test_meta_base64_keys(self):
        c = self.c
        key = bytes(range(1, 40)) + b" \r\n\x00"
        import base64
        b64 = base64.b64encode(key)
        self.assertEqual(c.ms(b64, "bin", "b").code, "HD")
        r = c.mg(b64, "b", "v", "k")
        self.assertEqual(r.value, b"bin")
        # the key comes back encoded, followed by a bare b
        self.assertEqual(r.tokens, ["k" + b64.decode(), "b"])
        self.assertEqual(c.ma(base64.b64encode(b"ctr"), "b", "N0", "J41", "v").value, b"41")
        self.assertEqual(c.mg("ctr", "v").value, b"41")
        self.assertEqual(c.md(b64, "b").code, "HD")
        self.assertEqual(c.mg(b64, "b").code, "EN")
        self.assertEqual(c.mg("!!!", "b").line, b"CLIENT_ERROR error decoding key")

    # -- Meta Set ----------------------------------------------------------

    def test_meta_set_modes(self):
        c = self.c
        self.assertEqual(c.ms("m", "a", "ME").code, "HD")   # add
        self.assertEqual(c.ms("m", "x", "ME").code, "NS")
        self.assertEqual(c.ms("m", "b", "MA").code, "HD")   # append
        self.assertEqual(c.ms("m", "0", "MP").code, "HD")   # prepend
        self.assertEqual(c.mg("m", "v").value, b"0ab")
        self.assertEqual(c.ms("m", "r", "MR").code, "HD")   # replace
        self.assertEqual(c.ms("none", "r", "MR").code, "NS")
        self.assertEqual(c.ms("none", "r", "MA").code, "NS")
        self.assertEqual(c.ms("m", "s", "MS", "F3").code, "HD")
        r = c.mg("m", "v", "f")
        self.assertEqual((r.value, r.flag("f")), (b"s", "3"))
        self.assertEqual(c.ms("m", "x", "MZ").line, b"CLIENT_ERROR invalid mode for ms M token")

    def test_meta_set_cas(self):
        c = self.c
        r = c.ms("k", "one", "c")
        cas = int(r.flag("c"))
        self.assertEqual(c.ms("k", "two", "C%d" % (cas + 1000)).code, "EX")
        self.assertEqual(c.ms("gone", "two", "C%d" % cas).code, "NF")
        r = c.ms("k", "two", "C%d" % cas, "c")
        self.assertEqual(r.code, "HD")
        self.assertNotEqual(int(r.flag("c")), cas)
        self.assertEqual(c.mg("k", "c").flag("c"), r.flag("c"))
        # append respects a given CAS too
        self.assertEqual(c.ms("k", "x", "MA", "C1").code, "EX")
        # c, k and O come back in request order; c is 0 when not stored
        r = c.ms("nope", "v", "MR", "O9", "c", "k")
        self.assertEqual(r.tokens, ["O9", "c0", "knope"])

    # -- Meta Delete -------------------------------------------------------

    def test_meta_delete(self):
        c = self.c
        self.assertEqual(c.md("k").code, "NF")
        cas = int(c.ms("k", "v", "c").flag("c"))
        self.assertEqual(c.md("k", "C%d" % (cas + 1)).code, "EX")
        r = c.md("k", "C%d" % cas, "k", "O5")
        self.assertEqual((r.code, r.tokens), ("HD", ["kk", "O5"]))
        self.assertEqual(c.mg("k").code, "EN")

    def test_meta_delete_invalidate_serves_stale(self):
        """md I: the item stays, marked stale with a new CAS; readers get
        it with X, the first of them W (it recaches), later ones Z."""
        c = self.c
        cas = int(c.ms("k", "old", "c", "T100").flag("c"))
        self.assertEqual(c.md("k", "I", "T30").code, "HD")
        r = c.mg("k", "v", "c", "t")
        self.assertEqual(r.value, b"old")
        self.assertTrue(r.has("X") and r.has("W") and not r.has("Z"), r)
        self.assertIn(int(r.flag("t")), (29, 30))
        new_cas = int(r.flag("c"))
        self.assertNotEqual(new_cas, cas)
        for _ in range(3):
            r = c.mg("k", "v")
            self.assertEqual(r.value, b"old")
            self.assertTrue(r.has("X") and r.has("Z") and not r.has("W"), r)
        # a late writer holding the old CAS: stored only with I, and stale
        self.assertEqual(c.ms("k", "late", "C%d" % cas).code, "EX")
        self.assertEqual(c.ms("k", "late", "C%d" % cas, "I").code, "HD")
        r = c.mg("k", "v")
        self.assertEqual(r.value, b"late")
        self.assertTrue(r.has("X"))
        # the winner stores the new value: fresh for everyone
        self.assertEqual(c.ms("k", "new", "T100").code, "HD")
        r = c.mg("k", "v")
        self.assertEqual((r.value, r.tokens), (b"new", []))

    # -- Meta Arithmetic ---------------------------------------------------

    def test_meta_arithmetic(self):
        c = self.c
        self.assertEqual(c.ma("n").code, "NF")
        r = c.ma("n", "N0", "J10", "v")
        self.assertEqual((r.code, r.value), ("VA", b"10"))
        self.assertEqual(c.ma("n", "v").value, b"11")
        self.assertEqual(c.ma("n", "v", "D9").value, b"20")
        self.assertEqual(c.ma("n", "v", "MD", "D5").value, b"15")
        self.assertEqual(c.ma("n", "v", "M-", "D100").value, b"0")   # floors at 0
        self.assertEqual(c.ma("n", "v", "M+", "D18446744073709551615").value, b"18446744073709551615")
        self.assertEqual(c.ma("n", "v").value, b"0")                  # wraps
        # t shows the TTL as the flags before it left it (T applies in order)
        r = c.ma("n", "c", "t", "T60")
        self.assertEqual(r.code, "HD")
        self.assertEqual(r.tokens[1], "t-1")
        self.assertIn(c.ma("n", "T60", "t").flag("t"), ("60", "59"))
        cas = int(c.mg("n", "c").flag("c"))
        self.assertEqual(c.ma("n", "C%d" % (cas + 1)).code, "EX")
        self.assertEqual(c.ma("n", "C%d" % cas).code, "HD")
        c.ms("text", "abc")
        self.assertEqual(c.ma("text").line,
                         b"CLIENT_ERROR cannot increment or decrement non-numeric value")
        self.assertEqual(c.ma("n", "MX").line, b"CLIENT_ERROR invalid mode for ma M token")

    # -- Meta No-Op, Meta Debug --------------------------------------------

    def test_meta_noop_and_debug(self):
        c = self.c
        self.assertEqual(c.mn().line, b"MN")
        self.assertIsNone(c.me("k"))
        c.ms("k", "hello", "T100")
        key, fields = c.me("k")
        self.assertEqual(key, "k")
        self.assertEqual(set(fields), {"exp", "la", "cas", "fetch", "cls", "size"})
        self.assertEqual(fields["fetch"], "no")
        c.mg("k")
        self.assertEqual(c.me("k")[1]["fetch"], "yes")

    def test_meta_errors(self):
        c = self.c
        self.assertEqual(c.mg("k", "v", "v").line, b"CLIENT_ERROR duplicate flag")
        self.assertEqual(c.mg("k", "!").line, b"CLIENT_ERROR invalid flag")
        self.assertEqual(c.mg("k", "N").line, b"CLIENT_ERROR bad token in command line format")
        self.assertEqual(c.mg("k", "O" + "x" * 32).line, b"CLIENT_ERROR opaque token too long")
        self.assertEqual(c.mg("k", *("v" * 18)).line, b"CLIENT_ERROR options flags are too long")
        self.assertEqual(c.md("k", "z").line, b"CLIENT_ERROR invalid or duplicate flag")
        self.assertEqual(c.mg("k" * 251).line, b"CLIENT_ERROR bad command line format")
        c.send(b"mg\r\n")
        self.assertEqual(c.reply().line, b"ERROR")
        # an ms error after its length swallows the data block
        c.send(b"ms k 5 Z\r\nhello\r\nmn\r\n")
        self.assertEqual(c.reply().line, b"CLIENT_ERROR invalid flag")
        self.assertEqual(c.reply().line, b"MN")
        c.send(b"ms k 2\r\nhello\r\n")
        self.assertEqual(c.reply().line, b"CLIENT_ERROR bad data chunk")

    def test_meta_mixed_with_classic(self):
        c = self.c
        c.send(b"set a 5 0 1\r\n1\r\n" + MetaClient.mg_req("a", "v", "f") + b"incr a 1\r\n"
               + MetaClient.ma_req("a", "v") + b"get a\r\n")
        self.assertEqual(c.conn.recv_until(b"STORED\r\n"), b"STORED\r\n")
        r = c.reply()
        self.assertEqual((r.value, r.flag("f")), (b"1", "5"))
        self.assertEqual(c.conn.recv_until(b"\r\n"), b"2\r\n")
        self.assertEqual(c.reply().value, b"3")
        self.assertEqual(c.conn.recv_until(b"END\r\n"), b"VALUE a 5 1\r\n3\r\nEND\r\n")

    # -- later memcached (1.6.27) flags: E and x -------------------------------

    def test_meta_explicit_cas_and_remove_value(self):
        if harness.is_memcached():
            self.skipTest("E and x are memcached 1.6.27's; 1.6.18 calls them invalid")
        c = self.c
        self.assertEqual(c.ms("k", "v", "E12345", "c").flag("c"), "12345")
        self.assertEqual(c.mg("k", "c").flag("c"), "12345")
        self.assertEqual(c.md("k", "I", "E777").code, "HD")
        self.assertEqual(c.mg("k", "c").flag("c"), "777")
        self.assertEqual(c.mg("viv", "N30", "E99", "c").flag("c"), "99")
        self.assertEqual(c.ma("ctr", "N0", "E55", "c").flag("c"), "55")
        self.assertEqual(c.ma("ctr", "E56", "c").flag("c"), "56")
        c.ms("x", "value", "F3", "T100")
        self.assertEqual(c.md("x", "x", "F9").code, "HD")
        r = c.mg("x", "v", "f", "t")
        self.assertEqual((r.value, r.flag("f"), r.flag("t")), (b"", "9", "-1"))


class MetaCrossShardTest(harness.ServerCase):
    """Two shards: every key is owned by one of them and each connection
    lives on one, so about half of all requests are forwarded. Replies must
    still come back in request order with opaques and quiet mode kept."""

    N = 400

    def test_meta_pipeline_order_across_shards(self):
        n = self.N
        with MetaClient(self.server.port) as c:
            reqs = []
            want = []  # (code, opaque, value) of every reply not hidden by q
            for i in range(n):
                key = "x%d" % i
                o = "O%d" % i
                kind = i % 5
                if kind == 0:
                    reqs.append(MetaClient.ms_req(key, "v%d" % i, o, "q"))      # hidden HD
                    reqs.append(MetaClient.mg_req(key, o, "v", "q"))           # value
                    want.append(("VA", str(i), b"v%d" % i))
                elif kind == 1:
                    reqs.append(MetaClient.mg_req(key, o, "v", "q"))           # hidden EN
                elif kind == 2:
                    reqs.append(MetaClient.mg_req(key, o, "k"))                # EN O k
                    want.append(("EN", str(i), None))
                elif kind == 3:
                    reqs.append(MetaClient.ma_req(key, o, "N0", "J%d" % i, "v"))
                    want.append(("VA", str(i), b"%d" % i))
                else:
                    reqs.append(MetaClient.md_req(key, o, "q"))                # NF shown
                    want.append(("NF", str(i), None))
            c.send(b"".join(reqs) + b"mn\r\n")
            got = c.until_mn()
            self.assertEqual([(r.code, r.flag("O"), r.value) for r in got], want)
        if not harness.is_memcached():
            stats = self.server.stats()
            self.assertGreater(int(stats["forwarded_out"]), n // 4,
                               "the pipeline did not cross shards")


if __name__ == "__main__":
    harness.main()
