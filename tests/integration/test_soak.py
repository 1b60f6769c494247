#!/usr/bin/python3
"""test_soak.py: a checksummed soak across shards, in every protocol (issue 15).

Several connections run at once against a 2-shard server with little memory
(-m 8, so items are evicted all along). Each connection owns its keys and
keeps an exact model of them; it sends pipelined batches of random requests
in the text, meta or binary protocol (chosen per batch) and checks every
reply in order against the model:

  - set / ms / binary set          stored; the model takes the new value
  - get, multi-get / mg / getkq    a hit must be exactly the model's value; a
                                   miss is an eviction (the model forgets);
                                   multi-get hits come in the order asked
  - gets + cas                     the cas stores (or the key was evicted)
  - append / ms MA / binary append the model appends (or forgets)
  - incr / ma / binary incr        the counter the model predicts (or NF)

Every value encodes its key, version and a CRC32 of its payload, so a wrong
hit is told apart as corrupt (checksum), misrouted (another key's value),
stale (an older version) or reordered (a reply in another request's place,
binary opaques included). Any of those, or a reply that does not parse,
fails the test. At the end, the server must have evicted (the pressure was
real) and still answer.

Bounded: 50 s by default, 20 s against a sanitizer build; `--seconds N`
(or CORECACHE_SOAK_SECONDS) runs longer, e.g. an hour before a release:

    CORECACHE_SERVER=build/corecache /usr/bin/python3 tests/integration/test_soak.py --seconds 3600

Runs against memcached too (the control: the rules hold for the reference).
"""

import os
import random
import struct
import sys
import threading
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ABSENT = None


class SoakFailure(AssertionError):
    pass


def make_value(key, version, rng):
    """b"<key>|<version>|<crc32>|<payload>" with a payload of 10 B..6 KB."""
    n = rng.choice((10, 100, 700, 3000, 6000)) + rng.randrange(50)
    payload = bytes(rng.getrandbits(8) for _ in range(16)) * (n // 16 + 1)
    payload = payload[:n]
    return b"%s|%d|%08x|%s" % (key, version, zlib.crc32(payload), payload)


def diagnose(key, want, got):
    """Why `got` is not `want` for `key`: corrupt, misrouted, stale or other."""
    try:
        gkey, gver, gcrc, rest = got.split(b"|", 3)
        payload = rest.split(b"+")[0]
        if zlib.crc32(payload) != int(gcrc, 16):
            return "corrupt (checksum)"
        if gkey != key:
            return "misrouted (value of %r)" % gkey
        if want is not None:
            wver = int(want.split(b"|", 2)[1])
            if int(gver) < wver:
                return "stale (version %s, want %d)" % (gver.decode(), wver)
        return "wrong (version %s)" % gver.decode()
    except ValueError:
        return "unparsable"


class Worker:
    """One connection, its keys, its model, and the checks."""

    def __init__(self, port, wid, nkeys, seed):
        # a connection's protocol is fixed by its first byte (as memcached):
        # text and meta share one, binary has its own
        self.conns = {"text": harness.Conn(port, timeout=30), "binary": harness.Conn(port, timeout=30)}
        self.conn = self.conns["text"]
        self.rng = random.Random(seed)
        self.keys = [b"soak%d:%d" % (wid, i) for i in range(nkeys)]
        self.counters = [b"ctr%d:%d" % (wid, i) for i in range(8)]
        self.model = {}      # key -> bytes (present) or ABSENT
        self.cmodel = {}     # counter -> int or ABSENT
        self.version = 0
        self.ops = 0
        self.hits = 0
        self.opaque = 0

    # -- checks ----------------------------------------------------------

    def fail(self, what):
        raise SoakFailure("worker %s: %s" % (self.keys[0].split(b":")[0].decode(), what))

    def check_hit(self, key, got):
        want = self.model.get(key)
        if want is ABSENT or got != want:
            self.fail("get %r: %s: got %r" % (key, diagnose(key, want, got) if want is not ABSENT
                                              else "a value for an absent key", got[:60]))
        self.hits += 1

    def miss(self, key):
        self.model[key] = ABSENT  # evicted

    # -- the batch: (send bytes, check function) pairs ---------------------

    def new_value(self, key):
        self.version += 1
        return make_value(key, self.version, self.rng)

    def run_batch(self):
        proto = self.rng.choice(("text", "meta", "binary"))
        self.conn = self.conns["binary" if proto == "binary" else "text"]
        ops = [getattr(self, "%s_%s" % (proto, self.rng.choice(("set", "set", "get", "get", "multi",
                                                                   "append", "incr"))))()
               for _ in range(self.rng.randrange(1, 40))]
        self.conn.send(b"".join(out for out, _ in ops))
        for _, check in ops:
            check()
        self.ops += len(ops)
        if self.rng.randrange(10) == 0:
            self.conn = self.conns["text"]
            self.text_gets_cas()

    # text ----------------------------------------------------------------

    def read_line(self):
        return self.conn.recv_until(b"\r\n")[:-2]

    def text_set(self):
        key = self.rng.choice(self.keys)
        value = self.new_value(key)

        def check():
            line = self.read_line()
            if line != b"STORED":
                self.fail("set %r: %r" % (key, line))
            self.model[key] = value
        return b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value), check

    def read_values(self, asked):
        """VALUE blocks until END; hits must come in the order asked."""
        got = []
        while True:
            line = self.read_line()
            if line == b"END":
                break
            parts = line.split(b" ")
            if parts[0] != b"VALUE" or len(parts) < 4:
                self.fail("get %r: reply line %r" % (asked, line[:80]))
            data = self.conn.recv_exact(int(parts[3]) + 2)
            if data[-2:] != b"\r\n":
                self.fail("get: value block not ended by \\r\\n")
            got.append((parts[1], data[:-2], parts[4] if len(parts) > 4 else None))
        pos = 0
        for key, value, _ in got:
            while pos < len(asked) and asked[pos] != key:
                self.miss(asked[pos])
                pos += 1
            if pos == len(asked):
                self.fail("get %r: %r out of order or not asked" % (asked, key))
            self.check_hit(key, value)
            pos += 1
        for key in asked[pos:]:
            self.miss(key)
        return got

    def text_get(self):
        key = self.rng.choice(self.keys)
        return b"get %s\r\n" % key, lambda: self.read_values([key])

    def text_multi(self):
        asked = self.rng.sample(self.keys, self.rng.randrange(2, 12))
        return b"get %s\r\n" % b" ".join(asked), lambda: self.read_values(asked)

    def appended(self, key, extra, stored, what):
        """An append's outcome, applied in reply order."""
        before = self.model.get(key, ABSENT)
        if stored:
            if before is ABSENT:
                self.fail("%s %r stored on a key that is absent" % (what, key))
            self.model[key] = before + extra
        else:
            self.model[key] = ABSENT  # evicted

    def text_append(self):
        key = self.rng.choice(self.keys)
        extra = b"+%d" % self.rng.randrange(1000)

        def check():
            line = self.read_line()
            if line not in (b"STORED", b"NOT_STORED"):
                self.fail("append %r: %r" % (key, line))
            self.appended(key, extra, line == b"STORED", "append")
        return b"append %s 0 0 %d\r\n%s\r\n" % (key, len(extra), extra), check

    def counter_op(self):
        return self.rng.choice(self.counters), self.rng.randrange(1, 1000)

    def counter_check(self, ctr, delta, got, vivified=False):
        """An incr's outcome, in reply order. got: the new value, or None
        for not found; vivified: a missing counter is created at 0 (meta N,
        binary initial), so 0 is always a possible answer."""
        before = self.cmodel.get(ctr, ABSENT)
        if got is None:
            self.cmodel[ctr] = ABSENT
            return
        if vivified and got == 0:
            self.cmodel[ctr] = 0
            return
        if before is ABSENT or got != before + delta:
            self.fail("incr %r by %d: %r, model %r" % (ctr, delta, got, before))
        self.cmodel[ctr] = got

    def text_incr(self):
        ctr, delta = self.counter_op()
        if self.cmodel.get(ctr, ABSENT) is ABSENT:  # (re)create it first, in the same batch
            out = b"set %s 0 0 1\r\n0\r\nincr %s %d\r\n" % (ctr, ctr, delta)

            def check():
                if self.read_line() != b"STORED":
                    self.fail("set %r" % ctr)
                self.cmodel[ctr] = 0
                line = self.read_line()
                self.counter_check(ctr, delta, None if line == b"NOT_FOUND" else int(line))
            return out, check

        def check():
            line = self.read_line()
            self.counter_check(ctr, delta, None if line == b"NOT_FOUND" else int(line))
        return b"incr %s %d\r\n" % (ctr, delta), check

    def text_gets_cas(self):
        key = self.rng.choice(self.keys)
        self.conn.send(b"gets %s\r\n" % key)
        got = self.read_values([key])
        if not got:
            return
        value = self.new_value(key)
        self.conn.send(b"cas %s 0 0 %d %s\r\n%s\r\n" % (key, len(value), got[0][2], value))
        line = self.read_line()
        if line == b"STORED":
            self.model[key] = value
        elif line == b"NOT_FOUND":
            self.model[key] = ABSENT
        else:
            self.fail("cas %r: %r (the only writer of this key)" % (key, line))
        self.ops += 2

    # meta ----------------------------------------------------------------

    def meta_set(self):
        key = self.rng.choice(self.keys)
        value = self.new_value(key)

        def check():
            line = self.read_line()
            if line != b"HD":
                self.fail("ms %r: %r" % (key, line))
            self.model[key] = value
        return b"ms %s %d T0\r\n%s\r\n" % (key, len(value), value), check

    def read_mg(self, key):
        line = self.read_line()
        if line == b"EN" or line.startswith(b"EN "):
            self.miss(key)
            return
        parts = line.split(b" ")
        if parts[0] != b"VA" or b"k" + key not in parts[2:]:
            self.fail("mg %r: %r" % (key, line[:80]))
        data = self.conn.recv_exact(int(parts[1]) + 2)
        self.check_hit(key, data[:-2])

    def meta_get(self):
        key = self.rng.choice(self.keys)
        return b"mg %s v k\r\n" % key, lambda: self.read_mg(key)

    def meta_multi(self):
        asked = self.rng.sample(self.keys, self.rng.randrange(2, 12))

        def check():
            for key in asked:
                self.read_mg(key)
            if self.read_line() != b"MN":
                self.fail("mn after mg of %r" % asked)
        return b"".join(b"mg %s v k\r\n" % k for k in asked) + b"mn\r\n", check

    def meta_append(self):
        key = self.rng.choice(self.keys)
        extra = b"+%d" % self.rng.randrange(1000)

        def check():
            line = self.read_line()
            if line not in (b"HD", b"NS"):
                self.fail("ms MA %r: %r" % (key, line))
            self.appended(key, extra, line == b"HD", "ms MA")
        return b"ms %s %d MA\r\n%s\r\n" % (key, len(extra), extra), check

    def meta_incr(self):
        ctr, delta = self.counter_op()

        def check():  # N0 J0: a missing counter is created at 0 and returned as 0
            line = self.read_line()
            if not line.startswith(b"VA "):
                self.fail("ma %r: %r" % (ctr, line))
            got = int(self.conn.recv_exact(int(line.split(b" ")[1]) + 2)[:-2])
            self.counter_check(ctr, delta, got, vivified=True)
        return b"ma %s N0 J0 D%d v\r\n" % (ctr, delta), check

    # binary --------------------------------------------------------------

    def bin_req(self, op, key=b"", extras=b"", value=b""):
        self.opaque = (self.opaque + 1) & 0xffffffff
        body = extras + key + value
        return self.opaque, struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0, len(body),
                                        self.opaque, 0) + body

    def bin_read(self, opaque, op):
        head = self.conn.recv_exact(24)
        magic, rop, keylen, extlen, _, status, body, ropaque, cas = struct.unpack(">BBHBBHIIQ", head)
        if magic != 0x81 or rop != op or ropaque != opaque:
            self.fail("binary reply %02x op %02x opaque %d, want op %02x opaque %d (reordered?)"
                      % (magic, rop, ropaque, op, opaque))
        data = self.conn.recv_exact(body)
        return status, data[extlen:extlen + keylen], data[extlen + keylen:]

    def binary_set(self):
        key = self.rng.choice(self.keys)
        value = self.new_value(key)
        opaque, out = self.bin_req(0x01, key, struct.pack(">II", 0, 0), value)

        def check():
            status, _, _ = self.bin_read(opaque, 0x01)
            if status != 0:
                self.fail("binary set %r: status %d" % (key, status))
            self.model[key] = value
        return out, check

    def binary_get(self):
        key = self.rng.choice(self.keys)
        opaque, out = self.bin_req(0x0c, key)

        def check():
            status, rkey, value = self.bin_read(opaque, 0x0c)
            if status == 1:
                self.miss(key)
            elif status == 0 and rkey == key:
                self.check_hit(key, value)
            else:
                self.fail("binary getk %r: status %d key %r" % (key, status, rkey))
        return out, check

    def binary_multi(self):
        asked = self.rng.sample(self.keys, self.rng.randrange(2, 12))
        reqs = [self.bin_req(0x0d, k) for k in asked]  # getkq: hits only
        nop_opaque, nop = self.bin_req(0x0a)

        def check():
            pending = list(zip(asked, (o for o, _ in reqs)))
            while True:
                head = self.conn.recv_exact(24)
                _, rop, keylen, extlen, _, status, body, ropaque, _ = struct.unpack(">BBHBBHIIQ", head)
                data = self.conn.recv_exact(body)
                if rop == 0x0a:
                    if ropaque != nop_opaque:
                        self.fail("binary noop opaque %d, want %d" % (ropaque, nop_opaque))
                    break
                while pending and pending[0][1] != ropaque:
                    self.miss(pending.pop(0)[0])
                if not pending or rop != 0x0d or status != 0:
                    self.fail("binary getkq reply op %02x opaque %d status %d out of order" % (rop, ropaque, status))
                key, _ = pending.pop(0)
                if data[extlen:extlen + keylen] != key:
                    self.fail("binary getkq %r: reply for key %r" % (key, data[extlen:extlen + keylen]))
                self.check_hit(key, data[extlen + keylen:])
            for key, _ in pending:
                self.miss(key)
        return b"".join(r for _, r in reqs) + nop, check

    def binary_append(self):
        key = self.rng.choice(self.keys)
        extra = b"+%d" % self.rng.randrange(1000)
        opaque, out = self.bin_req(0x0e, key, b"", extra)

        def check():
            status, _, _ = self.bin_read(opaque, 0x0e)
            if status not in (0, 1, 5):  # stored; not found / not stored: evicted
                self.fail("binary append %r: status %d" % (key, status))
            self.appended(key, extra, status == 0, "binary append")
        return out, check

    def binary_incr(self):
        ctr, delta = self.counter_op()
        # initial 0 when missing: then the reply is 0 (created), not 0+delta
        opaque, out = self.bin_req(0x05, ctr, struct.pack(">QQI", delta, 0, 0))

        def check():
            status, _, value = self.bin_read(opaque, 0x05)
            if status != 0 or len(value) != 8:
                self.fail("binary incr %r: status %d" % (ctr, status))
            self.counter_check(ctr, delta, struct.unpack(">Q", value)[0], vivified=True)
        return out, check


class SoakTest(unittest.TestCase):
    SECONDS = None

    def test_issue15_checksummed_soak(self):
        seconds = self.SECONDS or float(os.environ.get("CORECACHE_SOAK_SECONDS", 0)) or (
            20 if harness.sanitizer_build() else 50)
        with harness.Server(["-t", "2", "-m", "8"]) as server:
            nworkers = 4
            workers = [Worker(server.port, w, 1500, seed=1000 + w) for w in range(nworkers)]
            errors = []
            deadline = time.monotonic() + seconds

            def run(worker):
                try:
                    while time.monotonic() < deadline and not errors:
                        worker.run_batch()
                except BaseException as e:  # noqa: B902 (reported below)
                    errors.append(e)

            threads = [threading.Thread(target=run, args=(w,)) for w in workers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(seconds + 120)
            if errors:
                raise errors[0]
            ops = sum(w.ops for w in workers)
            hits = sum(w.hits for w in workers)
            stats = server.stats()
            sys.stdout.write("soak: %d requests in %.0f s, %d hits checked, %s evictions\n"
                             % (ops, seconds, hits, stats.get("evictions")))
            self.assertGreater(hits, 100)
            self.assertGreater(int(stats["evictions"]), 0, "no eviction pressure")
            for w in workers:
                for c in w.conns.values():
                    c.close()
            with server.conn() as c:
                c.send("version\r\n")
                self.assertTrue(c.recv_until(b"\r\n").startswith(b"VERSION "))


if __name__ == "__main__":
    if "--seconds" in sys.argv:
        i = sys.argv.index("--seconds")
        SoakTest.SECONDS = float(sys.argv[i + 1])
        del sys.argv[i:i + 2]
    harness.main()
