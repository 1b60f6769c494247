#!/usr/bin/python3
"""test_peek.py: reads served where they arrive (issue 17), through the server.

A `-t 2 -m 8` server (small, so it evicts) takes writers and readers on
separate connections, in separate threads. Writers set checksummed values
with a version under keys of both shards, some with a 1-2 s TTL, and record
each acknowledged version; readers `gets` keys on other connections and
check every value: its checksum (a torn read fails), its key, its flags
(the version's), and that its version is not older than the one acknowledged
before the read was sent (a stale read after an ack fails). Then it checks
read-your-writes on one connection (a pipelined set then get of a key the
other shard owns), and that reads were served where they arrived: after the
keys' read counts saturate, the readers' gets of the other shard's keys are
forwarded much less than one for one (stats forwarded_out), with get_hits
and cmd_get still counting every get.
"""

import os
import random
import socket
import struct
import sys
import threading
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NKEYS = 2000
SECONDS = 4.0


def value_for(key, version, size):
    body = b"%s:%d:" % (key, version)
    body += b"x" * (size - len(body) - 8)
    return body + b"%08x" % zlib.crc32(body)


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def cmd(self, data, until):
        self.sock.sendall(data)
        while not self.buf.endswith(until):
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf, b""
        return out

    def bin_get(self, key, opaque):
        """A binary GET; (status, flags, value)."""
        self.sock.sendall(struct.pack(">BBHBBHIIQ", 0x80, 0x00, len(key), 0, 0, 0, len(key), opaque, 0) + key)
        while len(self.buf) < 24 or len(self.buf) < 24 + struct.unpack(">I", self.buf[8:12])[0]:
            self.buf += self.sock.recv(1 << 16)
        magic, op, klen, elen, _, status, blen, rop, cas = struct.unpack(">BBHBBHIIQ", self.buf[:24])
        body, self.buf = self.buf[24:24 + blen], self.buf[24 + blen:]
        assert magic == 0x81 and rop == opaque, (magic, rop, opaque)
        if status != 0:
            return status, None, None
        return status, struct.unpack(">I", body[:4])[0], body[elen + klen:]

    def stats(self):
        out = self.cmd(b"stats\r\n", b"END\r\n")
        return {line.split()[1].decode(): line.split()[2].decode()
                for line in out.split(b"\r\n") if line.startswith(b"STAT ")}


class PeekTest(unittest.TestCase):

    def setUp(self):
        self.server = harness.Server(["-t", "2", "-m", "8"]).start()

    def tearDown(self):
        self.server.stop()

    def test_peek_concurrent_writers_and_readers_see_whole_fresh_values(self):
        port = self.server.port
        acked = [0] * NKEYS
        lock = threading.Lock()
        errors = []
        deadline = time.monotonic() + SECONDS
        counts = {"reads": 0, "hits": 0}

        def writer(seed):
            rng = random.Random(seed)
            c = Conn(port)
            version = 0
            while time.monotonic() < deadline:
                k = rng.randrange(NKEYS)
                key = b"key%d" % k
                with lock:
                    version = acked[k] + 1 + seed * 0  # versions grow per key
                    acked_next = version
                ttl = rng.choice([0, 0, 0, 1, 2])
                val = value_for(key, acked_next, rng.randrange(40, 3000))
                out = c.cmd(b"set %s %d %d %d\r\n%s\r\n" % (key, acked_next & 0xffff, ttl, len(val), val),
                            b"\r\n")
                if out != b"STORED\r\n":
                    errors.append("set %r: %r" % (key, out))
                    return
                with lock:
                    if acked_next > acked[k]:
                        acked[k] = acked_next

        def reader(seed):
            rng = random.Random(seed)
            c = Conn(port)
            while time.monotonic() < deadline:
                k = rng.randrange(NKEYS // 4)  # hotter keys: their reads saturate
                key = b"key%d" % k
                with lock:
                    floor = acked[k]
                out = c.cmd(b"gets %s\r\n" % key, b"END\r\n")
                counts["reads"] += 1
                if out == b"END\r\n":
                    continue
                head, _, rest = out.partition(b"\r\n")
                parts = head.split()
                if len(parts) != 5 or parts[0] != b"VALUE" or parts[1] != key:
                    errors.append("bad header %r" % head)
                    return
                n = int(parts[3])
                data = rest[:n]
                if rest[n:] != b"\r\nEND\r\n":
                    errors.append("bad framing %r" % out[:200])
                    return
                body, crc = data[:-8], data[-8:]
                if b"%08x" % zlib.crc32(body) != crc:
                    errors.append("torn value %r" % data[:100])
                    return
                vkey, ver = body.split(b":")[:2]
                if vkey != key or int(parts[2]) != int(ver) & 0xffff:
                    errors.append("value of another key or version: %r %r" % (head, body[:60]))
                    return
                if int(ver) < floor:
                    errors.append("stale after ack: %r version %s < %d" % (key, ver, floor))
                    return
                counts["hits"] += 1

        # Versions must grow per key across writers: one writer per key range.
        threads = [threading.Thread(target=writer, args=(0,))]
        threads += [threading.Thread(target=reader, args=(i,)) for i in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertGreater(counts["hits"], 100)

    def test_peek_read_your_writes_and_serves_reads_where_they_arrive(self):
        conns = [Conn(self.server.port) for _ in range(8)]
        keys = [b"ryw%d" % i for i in range(200)]
        for i, key in enumerate(keys):
            out = conns[i % 8].cmd(b"set %s 0 0 1\r\na\r\nget %s\r\n" % (key, key), b"END\r\n")
            self.assertEqual(out, b"STORED\r\nVALUE %s 0 1\r\na\r\nEND\r\n" % key)
        before = conns[0].stats()
        rounds = 40
        for r in range(rounds):
            for i, key in enumerate(keys):
                out = conns[(i + r) % 8].cmd(b"get %s\r\n" % key, b"END\r\n")
                self.assertEqual(out, b"VALUE %s 0 1\r\na\r\nEND\r\n" % key)
        # every connection: a pipelined write then read sees the write
        for i, key in enumerate(keys):
            out = conns[(i + 3) % 8].cmd(b"set %s 0 0 1\r\nb\r\nget %s\r\n" % (key, key), b"END\r\n")
            self.assertEqual(out, b"STORED\r\nVALUE %s 0 1\r\nb\r\nEND\r\n" % key)
            out = conns[(i + 4) % 8].cmd(b"get %s\r\n" % key, b"END\r\n")
            self.assertEqual(out, b"VALUE %s 0 1\r\nb\r\nEND\r\n" % key)
        # gets: the same CAS through every connection (served here or by the
        # owner), and that CAS is the one a cas command must name
        for i, key in enumerate(keys[:50]):
            seen = set()
            for c in conns:
                head = c.cmd(b"gets %s\r\n" % key, b"END\r\n").split(b"\r\n")[0].split()
                seen.add(head[4])
            self.assertEqual(len(seen), 1, (key, seen))
            out = conns[i % 8].cmd(b"cas %s 0 0 1 %s\r\nc\r\nget %s\r\n" % (key, seen.pop(), key), b"END\r\n")
            self.assertEqual(out, b"STORED\r\nVALUE %s 0 1\r\nc\r\nEND\r\n" % key)
            out = conns[(i + 1) % 8].cmd(b"get %s\r\n" % key, b"END\r\n")
            self.assertEqual(out, b"VALUE %s 0 1\r\nc\r\nEND\r\n" % key)
        after = conns[0].stats()
        gets = rounds * len(keys) + 2 * len(keys) + 50 * 8 + 50 * 2
        self.assertEqual(int(after["cmd_get"]) - int(before["cmd_get"]), gets)
        self.assertEqual(int(after["get_hits"]) - int(before["get_hits"]), gets)
        # about half the gets arrive on the shard that does not own the key;
        # once a key's read count saturates (15 reads), those are served there
        forwarded = int(after["forwarded_out"]) - int(before["forwarded_out"])
        self.assertLess(forwarded, gets // 4, after)

    def test_peek_touch_and_flush_all_are_seen_on_every_connection(self):
        conns = [Conn(self.server.port) for _ in range(6)]
        keys = [b"ttl%d" % i for i in range(60)]
        for key in keys:
            self.assertEqual(conns[0].cmd(b"set %s 0 0 1\r\nv\r\n" % key, b"\r\n"), b"STORED\r\n")
        for r in range(20):  # every key read to saturation, through every connection
            for i, key in enumerate(keys):
                conns[(i + r) % 6].cmd(b"get %s\r\n" % key, b"END\r\n")
        for i, key in enumerate(keys[:30]):  # a touch that expires it, then a get elsewhere
            self.assertEqual(conns[i % 6].cmd(b"touch %s -1\r\n" % key, b"\r\n"), b"TOUCHED\r\n")
            for c in conns:
                self.assertEqual(c.cmd(b"get %s\r\n" % key, b"END\r\n"), b"END\r\n", key)
        # flush_all: its own connection sees every key gone at once (the
        # flush is applied on the other shard through the channel its later
        # gets also take; another connection may get ahead of that, as
        # before issue 17, so only this one is checked)
        self.assertEqual(conns[1].cmd(b"flush_all\r\n", b"\r\n"), b"OK\r\n")
        for key in keys[30:]:
            self.assertEqual(conns[1].cmd(b"get %s\r\n" % key, b"END\r\n"), b"END\r\n", key)

    def test_peek_per_class_hits_count_where_the_owner_would(self):
        # values of many sizes: a get served on the other shard counts its
        # hit in the same `stats slabs` class as the owner's get would
        conns = [Conn(self.server.port) for _ in range(4)]
        for i in range(100):
            v = b"x" * (10 + i * 30)
            self.assertEqual(conns[0].cmd(b"set sz%d 0 0 %d\r\n%s\r\n" % (i, len(v), v), b"\r\n"),
                             b"STORED\r\n")
        for r in range(30):
            for i in range(100):
                conns[(i + r) % 4].cmd(b"get sz%d\r\n" % i, b"END\r\n")
        out = conns[0].cmd(b"stats slabs\r\n", b"END\r\n")
        per = {}
        for line in out.split(b"\r\n"):
            f = line.split()
            if len(f) == 3 and f[1].endswith(b":get_hits"):
                per[int(f[1].split(b":")[0])] = int(f[2])
        self.assertEqual(sum(per.values()), 3000, per)
        # each key was read 30 times: every class's count is a multiple of 30
        self.assertTrue(all(v % 30 == 0 for v in per.values()), per)

    def test_peek_binary_get_served_where_it_arrives(self):
        text = Conn(self.server.port)  # a connection speaks one protocol, chosen by its first byte
        conns = [Conn(self.server.port) for _ in range(4)]
        keys = [b"bin%d" % i for i in range(100)]
        for i, key in enumerate(keys):
            self.assertEqual(text.cmd(b"set %s %d 0 %d\r\n%s\r\n" % (key, i, len(key) + 2, key + b"!!"),
                                          b"\r\n"), b"STORED\r\n")
        before = text.stats()
        for r in range(20):
            for i, key in enumerate(keys):
                status, flags, value = conns[(i + r) % 4].bin_get(key, r * 1000 + i)
                self.assertEqual((status, flags, value), (0, i, key + b"!!"))
                status, _, _ = conns[(i + r) % 4].bin_get(key + b"-absent", 7)
                self.assertEqual(status, 1)  # KEY_ENOENT
        after = text.stats()
        gets = 20 * len(keys) * 2
        self.assertEqual(int(after["cmd_get"]) - int(before["cmd_get"]), gets)
        self.assertEqual(int(after["get_hits"]) - int(before["get_hits"]), gets // 2)
        forwarded = int(after["forwarded_out"]) - int(before["forwarded_out"])
        self.assertLess(forwarded, gets // 4, after)


if __name__ == "__main__":
    harness.main()
