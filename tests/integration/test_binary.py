#!/usr/bin/python3
"""test_binary.py: the binary protocol over raw sockets, where replies are
not byte-comparable with memcached (stat values, timing) or where the server
must survive abuse.

  - binary STAT groups carry exactly the names (and, for settings, the
    values) of the text `stats` groups;
  - -B binary / ascii / auto decide what a connection may speak;
  - text and binary clients share one cache (flags, CAS and values agree);
  - a pipeline of 10,000 quiet gets across two shards, fenced by a NOOP,
    answers every hit in request order and the NOOP last;
  - oversized and malformed packets get their error or a close, and the
    server keeps serving.

Stdlib only; run with /usr/bin/python3. Against memcached (no corecache
built) the corecache-only checks are skipped.
"""

import os
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HEADER = struct.Struct(">BBHBBHIIQ")
GET, SET, ADD, NOOP, VERSION, STAT, GETKQ, ADDQ, SETQ = 0x00, 0x01, 0x02, 0x0A, 0x0B, 0x10, 0x0D, 0x12, 0x11


def pkt(op, key=b"", extras=b"", value=b"", opaque=0, cas=0, keylen=None, bodylen=None):
    if isinstance(key, str):
        key = key.encode()
    kl = len(key) if keylen is None else keylen
    bl = len(extras) + len(key) + len(value) if bodylen is None else bodylen
    return HEADER.pack(0x80, op, kl, len(extras), 0, 0, bl, opaque, cas) + extras + key + value


def set_pkt(key, value, flags=0, op=SET, opaque=0):
    return pkt(op, key, struct.pack(">II", flags, 0), value, opaque=opaque)


class Reply:
    def __init__(self, raw):
        (self.magic, self.op, self.keylen, self.extlen, _, self.status, self.bodylen, self.opaque,
         self.cas) = HEADER.unpack(raw[:24])
        body = raw[24:]
        self.extras = body[:self.extlen]
        self.key = body[self.extlen:self.extlen + self.keylen]
        self.value = body[self.extlen + self.keylen:]


def read_reply(conn):
    head = conn.recv_exact(24)
    bodylen = struct.unpack(">I", head[8:12])[0]
    return Reply(head + conn.recv_exact(bodylen, timeout=30))


def read_until_noop(conn):
    replies = []
    while True:
        r = read_reply(conn)
        if r.op == NOOP:
            return replies
        replies.append(r)


def binary_stats(server, group=b""):
    with server.conn() as c:
        c.send(pkt(STAT, group))
        out = {}
        while True:
            r = read_reply(c)
            if r.status != 0:
                return r
            if r.keylen == 0:
                return out
            out[r.key.decode()] = r.value.decode()


class BinaryTest(harness.ServerCase):

    def setUp(self):
        with self.server.conn() as c:
            c.send(b"flush_all\r\n")
            self.assertEqual(c.recv_until(b"\r\n"), b"OK\r\n")

    def test_binary_stat_groups_match_text(self):
        with self.server.conn() as c:
            for i in range(50):
                c.send(set_pkt("s%d" % i, b"v" * (i * 40), op=SETQ))
            c.send(pkt(NOOP))
            self.assertEqual(read_until_noop(c), [])
        # flush_all is lazy (as memcached's): an earlier test's flushed items
        # count in curr_items until the background crawler reclaims them,
        # which may happen between the two stats calls. Wait until only
        # this test's 50 items are left.
        deadline = time.monotonic() + 10
        while int(self.server.stats("")["curr_items"]) != 50:
            self.assertLess(time.monotonic(), deadline, "flushed items never reclaimed")
            time.sleep(0.05)
        for group in ("", "items", "slabs", "settings", "sizes"):
            text = self.server.stats(group)
            binary = binary_stats(self.server, group.encode())
            self.assertIsInstance(binary, dict, group)
            self.assertEqual(sorted(binary), sorted(text), group)
            if group in ("settings", "sizes"):
                self.assertEqual(binary, text, group)
            if group == "items":
                # the crawler examines items every 100 ms tick, and the
                # clock's second may turn, between the two requests too:
                # its counters and the ages may move, nothing else
                def still(d):
                    return {k: v for k, v in d.items()
                            if not k.endswith(("crawler_items_checked", "crawler_reclaimed", ":age",
                                               ":age_hot", ":age_warm"))}
                self.assertEqual(still(binary), still(text), group)
            if group == "":
                for name in ("curr_items", "total_items", "threads", "limit_maxbytes", "version"):
                    self.assertEqual(binary[name], text[name], name)

    def test_binary_stat_unknown_group_not_found(self):
        r = binary_stats(self.server, b"nosuchgroup")
        self.assertEqual((r.status, r.value), (1, b"Not found"))

    def test_binary_text_and_binary_share_the_cache(self):
        with self.server.conn() as b, self.server.conn() as t:
            b.send(set_pkt("shared", b"from binary", flags=77))
            r = read_reply(b)
            self.assertEqual(r.status, 0)
            t.send(b"gets shared\r\n")
            line = t.recv_until(b"END\r\n")
            self.assertEqual(line, b"VALUE shared 77 11 %d\r\nfrom binary\r\nEND\r\n" % r.cas)
            t.send(b"set fromtext 5 0 4\r\ntext\r\n")
            self.assertEqual(t.recv_until(b"\r\n"), b"STORED\r\n")
            b.send(pkt(GET, "fromtext"))
            r = read_reply(b)
            self.assertEqual((r.status, r.extras, r.value), (0, struct.pack(">I", 5), b"text"))

    def test_binary_quiet_pipeline_10k_across_shards(self):
        n = 10000
        with self.server.conn(timeout=30) as c:
            c.send(b"".join(set_pkt("q%d" % i, b"%d" % i, op=SETQ) for i in range(0, n, 2)))
            # a quiet error from either shard still comes back, in order
            c.send(set_pkt("q0", b"x", op=ADDQ, opaque=1) + set_pkt("q2", b"x", op=ADDQ, opaque=2))
            c.send(b"".join(pkt(GETKQ, "q%d" % i, opaque=i) for i in range(n)) + pkt(NOOP, opaque=n))
            replies = read_until_noop(c)
        self.assertEqual([(r.op, r.status, r.opaque) for r in replies[:2]], [(ADDQ, 2, 1), (ADDQ, 2, 2)])
        hits = replies[2:]
        self.assertEqual(len(hits), n // 2)
        for j, r in enumerate(hits):
            i = 2 * j
            self.assertEqual((r.op, r.status, r.opaque, r.key, r.value),
                             (GETKQ, 0, i, b"q%d" % i, b"%d" % i))

    def test_binary_oversized_bodies(self):
        with self.server.conn() as c:
            # a 4 GiB set: E2BIG at once, the client need not send it
            c.send(pkt(SET, "k", struct.pack(">II", 0, 0), bodylen=0xFFFFFFFF))
            r = read_reply(c)
            self.assertEqual((r.op, r.status, r.value), (SET, 3, b"Too large."))
        with self.server.conn() as c:
            # a get with a 1 GiB body: invalid, closed
            c.send(pkt(GET, "k", bodylen=1 << 30))
            r = read_reply(c)
            self.assertEqual((r.status, r.value), (4, b"Invalid arguments"))
            self.assertTrue(c.is_closed())
        with self.server.conn() as c:
            # a 65535-byte key: read, then refused and closed (memcached's
            # 16 KiB read buffer fills first: it closes without a word)
            c.send(pkt(GET, b"k" * 65535))
            if not harness.is_memcached():
                r = read_reply(c)
                self.assertEqual((r.status, r.value), (4, b"Invalid arguments"))
            self.assertTrue(c.is_closed())
        with self.server.conn() as c:
            # a binary connection (its first byte was 0x80) meeting a bad magic
            c.send(pkt(NOOP) + b"\x00" * 24)
            self.assertEqual(read_reply(c).op, NOOP)
            data, closed = c.recv_until_close()
            self.assertEqual((data, closed), (b"", True))
        with self.server.conn() as c:  # still serving
            c.send(pkt(VERSION))
            self.assertEqual(read_reply(c).status, 0)

    def test_binary_large_value_split_in_many_sends(self):
        value = os.urandom(900 * 1024)
        data = set_pkt("big", value) + pkt(GET, "big")
        with self.server.conn(timeout=30) as c:
            for i in range(0, len(data), 7001):
                c.send(data[i:i + 7001])
            self.assertEqual(read_reply(c).status, 0)
            r = read_reply(c)
            self.assertEqual((r.status, r.value), (0, value))


class ProtocolOptionTest(unittest.TestCase):
    """-B, memcached's binding protocol option."""

    def setUp(self):
        if harness.is_memcached():
            self.skipTest("corecache's -B checks (memcached waits where corecache closes)")

    def test_binary_option_binary_refuses_text(self):
        with harness.Server(["-t", "1", "-B", "binary"]) as s:
            with s.conn() as c:
                c.send(pkt(VERSION))
                self.assertEqual(read_reply(c).status, 0)
            with s.conn() as c:
                c.send(b"version\r\n")
                self.assertEqual(c.recv_until_close(), (b"", True))
            self.assertEqual(binary_stats(s, b"settings")["binding_protocol"], "binary")

    def test_binary_option_ascii_does_not_negotiate(self):
        with harness.Server(["-t", "1", "-B", "ascii"]) as s:
            self.assertEqual(s.stats("settings")["binding_protocol"], "ascii")
            with s.conn() as c:
                c.send(pkt(NOOP) + b"\r\n")
                reply = c.recv_until(b"\r\n")
                self.assertFalse(reply.startswith(b"\x81"), reply)

    def test_binary_option_auto_is_default(self):
        with harness.Server(["-t", "1"]) as s:
            self.assertEqual(s.stats("settings")["binding_protocol"], "auto-negotiate")

    def test_binary_option_bad_value(self):
        argv = [harness.SERVER, "-B", "soap", "-p", str(harness.free_port())] + harness.user_flags()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(b"-B soap: protocol must be auto, ascii or binary", proc.stderr)


if __name__ == "__main__":
    harness.main()
