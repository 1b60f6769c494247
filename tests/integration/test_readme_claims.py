#!/usr/bin/python3
"""test_readme_claims.py: what README.md says the server speaks, it speaks.

The test reads README.md's Compatibility section, so a README that names a
command the server lacks fails here:

  - every text command of the "Supported:" list (and every `stats` group
    named after it) is sent with valid arguments to the real server, and
    must answer its reply (never ERROR, never a CLIENT_ERROR);
  - every meta command named (mg ms md ma mn me) answers a meta reply;
  - every binary opcode of the binary paragraph's list answers a binary
    packet (magic 0x81, its opcode echoed, not "Unknown command"; a quiet
    one is fenced by a NOOP);
  - a command the README names but this test has no valid request for
    fails too: the claim cannot be checked until one is added here;
  - the sentences that drifted (issue 10: "speaks only the text protocol",
    meta commands answering ERROR) are gone from the whole README;
  - the walk of a GET at its top is at most six hops, one file each, and
    every file it names exists.

Stdlib only; run with /usr/bin/python3.
"""

import os
import re
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")

SETUP = b"set k 0 0 2\r\n10\r\n"  # stored before a command that needs an item
LINE = rb"[^\r\n]*\r\n"

# command -> (setup, request, the whole reply it must give); setup's own
# reply must be STORED. Valid arguments throughout: these are claims, not
# error paths.
TEXT = {
    "set": (b"", b"set k 0 0 1\r\nx\r\n", rb"STORED\r\n"),
    "add": (b"", b"add text_add 0 0 1\r\nx\r\n", rb"STORED\r\n"),
    "replace": (SETUP, b"replace k 0 0 1\r\ny\r\n", rb"STORED\r\n"),
    "append": (SETUP, b"append k 0 0 1\r\ny\r\n", rb"STORED\r\n"),
    "prepend": (SETUP, b"prepend k 0 0 1\r\ny\r\n", rb"STORED\r\n"),
    "cas": (SETUP, b"cas k 0 0 1 999999999\r\ny\r\n", rb"EXISTS\r\n"),
    "get": (SETUP, b"get k missing\r\n", rb"VALUE k 0 2\r\n10\r\nEND\r\n"),
    "gets": (SETUP, b"gets k\r\n", rb"VALUE k 0 2 \d+\r\n10\r\nEND\r\n"),
    "gat": (SETUP, b"gat 100 k\r\n", rb"VALUE k 0 2\r\n10\r\nEND\r\n"),
    "gats": (SETUP, b"gats 100 k\r\n", rb"VALUE k 0 2 \d+\r\n10\r\nEND\r\n"),
    "touch": (SETUP, b"touch k 100\r\n", rb"TOUCHED\r\n"),
    "delete": (SETUP, b"delete k\r\n", rb"DELETED\r\n"),
    "incr": (SETUP, b"incr k 5\r\n", rb"15\r\n"),
    "decr": (SETUP, b"decr k 3\r\n", rb"7\r\n"),
    "flush_all": (SETUP, b"flush_all\r\nget k\r\n", rb"OK\r\nEND\r\n"),
    "version": (b"", b"version\r\n", rb"VERSION [^\r\n ]+\r\n"),
    "verbosity": (b"", b"verbosity 1\r\n", rb"OK\r\n"),
    "stats": (b"", b"stats\r\n", rb"(STAT [^\r\n]*\r\n)+END\r\n"),
    # quit and shutdown close instead of answering: see their tests
}
STATS_GROUPS = {
    "reset": rb"RESET\r\n",
    "sizes": rb"(STAT [^\r\n]*\r\n)*END\r\n",
}
STATS_GROUP_DEFAULT = rb"(STAT [^\r\n]*\r\n)+END\r\n"  # settings, items, slabs, conns
STATS_GROUP_MAY_BE_EMPTY = {"items", "slabs", "sizes"}

META = {
    "mg": (SETUP, b"mg k v\r\n", rb"VA 2\r\n10\r\n"),
    "ms": (b"", b"ms m 2\r\nhi\r\n", rb"HD\r\n"),
    "md": (SETUP, b"md k\r\n", rb"HD\r\n"),
    "ma": (SETUP, b"ma k v\r\n", rb"VA 2\r\n11\r\n"),
    "mn": (b"", b"mn\r\n", rb"MN\r\n"),
    "me": (SETUP, b"me k\r\n", rb"ME k [^\r\n]*\r\n"),
}

# Binary opcodes (memcached's protocol_binary.h) and the extras a valid
# request carries.
HEADER = struct.Struct(">BBHBBHIIQ")
STORE_EXTRAS = struct.pack(">II", 0, 0)
ARITH_EXTRAS = struct.pack(">QQI", 1, 0, 0)
TTL_EXTRAS = struct.pack(">I", 100)
BINARY = {  # name -> (opcode, extras, key, value)
    "get": (0x00, b"", b"k", b""),
    "set": (0x01, STORE_EXTRAS, b"k", b"v"),
    "add": (0x02, STORE_EXTRAS, b"a", b"v"),
    "replace": (0x03, STORE_EXTRAS, b"k", b"v"),
    "delete": (0x04, b"", b"k", b""),
    "incr": (0x05, ARITH_EXTRAS, b"k", b""),
    "decr": (0x06, ARITH_EXTRAS, b"k", b""),
    "quit": (0x07, b"", b"", b""),
    "flush": (0x08, b"", b"", b""),
    "getq": (0x09, b"", b"k", b""),
    "noop": (0x0A, b"", b"", b""),
    "version": (0x0B, b"", b"", b""),
    "getk": (0x0C, b"", b"k", b""),
    "getkq": (0x0D, b"", b"k", b""),
    "append": (0x0E, b"", b"k", b"v"),
    "prepend": (0x0F, b"", b"k", b"v"),
    "stat": (0x10, b"", b"", b""),
    "setq": (0x11, STORE_EXTRAS, b"k", b"v"),
    "addq": (0x12, STORE_EXTRAS, b"a", b"v"),
    "replaceq": (0x13, STORE_EXTRAS, b"k", b"v"),
    "deleteq": (0x14, b"", b"k", b""),
    "incrq": (0x15, ARITH_EXTRAS, b"k", b""),
    "decrq": (0x16, ARITH_EXTRAS, b"k", b""),
    "quitq": (0x17, b"", b"", b""),
    "flushq": (0x18, b"", b"", b""),
    "appendq": (0x19, b"", b"k", b"v"),
    "prependq": (0x1A, b"", b"k", b"v"),
    "touch": (0x1C, TTL_EXTRAS, b"k", b""),
    "gat": (0x1D, TTL_EXTRAS, b"k", b""),
    "gatq": (0x1E, TTL_EXTRAS, b"k", b""),
    "gatk": (0x23, TTL_EXTRAS, b"k", b""),
    "gatkq": (0x24, TTL_EXTRAS, b"k", b""),
}
NOOP = 0x0A
# Quiet opcodes: success is silent, so a NOOP fences them (quitq closes).
QUIET = {"getq", "getkq", "setq", "addq", "replaceq", "deleteq", "incrq", "decrq", "flushq",
         "appendq", "prependq", "gatq", "gatkq"}
UNKNOWN_COMMAND, EINVAL = 0x81, 0x04
STAT_GROUPS_BINARY = (b"settings", b"items", b"slabs", b"sizes")

# Sentences issue 10 found drifted: none may come back.
DRIFT = [
    r"speaks only the text protocol",
    r"speaks the text protocol only",
    r"text protocol only",
    r"leave the binary protocol off",
    r"answers `?ERROR`? to meta commands",
    r"meta protocol \(not yet in corecache",
]


def normalized(text):
    """Markdown text with every run of white space folded to one space."""
    return re.sub(r"\s+", " ", text)


def readme():
    with open(README, encoding="utf-8") as f:
        return f.read()


def section(text, title):
    """The body of the `## title` section."""
    m = re.search(r"^## " + re.escape(title) + r"\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if m is None:
        raise AssertionError("README.md has no '## %s' section" % title)
    return normalized(m.group(1))


def claims():
    """(text commands, stats groups, meta commands, binary opcodes) README
    claims, in README's order."""
    compat = section(readme(), "Compatibility")
    m = re.search(r"Supported: `([^`]+)`", compat)
    if m is None:
        raise AssertionError("README's Compatibility section has no 'Supported: `...`' list")
    text = m.group(1).split()
    m = re.search(r"\(and `stats ([^`]+)`\)", compat)
    groups = m.group(1).split("|") if m else []
    m = re.search(r"meta protocol: `([^`]+)`", compat)
    meta = m.group(1).split() if m else []
    m = re.search(r"binary protocol is supported.*?quiet variants included \(([^)]*)\)", compat)
    binary = []
    if m:
        for part in m.group(1).split(","):
            for name in part.split("/"):
                word = name.strip().split(" ")[0].strip("`")
                if word:
                    binary.append(word)
    return text, groups, meta, binary


class Reader:
    """Reads from a harness.Conn until the bytes match `want` whole, or an
    error line or close shows they never will, or the deadline passes."""

    ERRORS = re.compile(rb"(^|\n)(ERROR|CLIENT_ERROR[^\r\n]*|SERVER_ERROR[^\r\n]*)\r\n")

    @staticmethod
    def read(conn, want, timeout=10.0):
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            if re.fullmatch(want, buf, re.S) or Reader.ERRORS.search(buf):
                break
            chunk = conn._recv_some(min(0.5, max(deadline - time.monotonic(), 0.001)))
            if chunk == b"":
                break
            if chunk:
                buf += chunk
        return buf


def read_packet(conn):
    head = conn.recv_exact(24)
    magic, opcode, keylen, extlen, _, status, bodylen, _, _ = HEADER.unpack(head)
    body = conn.recv_exact(bodylen) if bodylen else b""
    return magic, opcode, status, keylen, bodylen, body


def packet(opcode, extras=b"", key=b"", value=b""):
    return HEADER.pack(0x80, opcode, len(key), len(extras), 0, 0,
                       len(extras) + len(key) + len(value), 0x5EC0DE, 0) + extras + key + value


class ReadmeClaimsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text, cls.groups, cls.meta, cls.binary = claims()
        cls.server = harness.Server(["-t", "2"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def exchange(self, setup, request, want):
        with self.server.conn() as c:
            if setup:
                c.send(setup)
                self.assertEqual(c.recv_until(b"\r\n"), b"STORED\r\n")
            c.send(request)
            got = Reader.read(c, want)
        return got

    def check(self, kind, name, setup, request, want):
        got = self.exchange(setup, request, want)
        self.assertIsNone(Reader.ERRORS.search(got),
                          "README claims %s %r, but %r answers %r" % (kind, name, request, got))
        self.assertRegex(got, re.compile(want, re.S),
                         "README claims %s %r: %r answers %r" % (kind, name, request, got))

    def test_readme_claims_parsed(self):
        # the README's lists were found and hold what every version claims;
        # an empty parse would make the other tests vacuous
        for name in ("get", "set", "delete", "stats", "quit"):
            self.assertIn(name, self.text)
        self.assertTrue(set(self.meta) >= {"mg", "ms", "md", "ma", "mn"}, self.meta)
        self.assertTrue(self.groups, "no `stats <groups>` list after Supported:")
        self.assertTrue(set(self.binary) >= {"get", "set", "noop", "quit"}, self.binary)

    def test_readme_text_commands_answer(self):
        for name in self.text:
            if name in ("quit", "shutdown"):
                continue
            with self.subTest(command=name):
                self.assertIn(name, TEXT, "README claims text command %r: no valid request for it "
                              "in test_readme_claims.py's TEXT, so the claim is unchecked" % name)
                self.check("text command", name, *TEXT[name])

    def test_readme_stats_groups_answer(self):
        for group in self.groups:
            with self.subTest(group=group):
                want = STATS_GROUPS.get(group, STATS_GROUP_DEFAULT)
                if group in STATS_GROUP_MAY_BE_EMPTY:
                    want = rb"(STAT [^\r\n]*\r\n)*END\r\n"
                self.check("stats group", group, SETUP, b"stats " + group.encode() + b"\r\n", want)

    def test_readme_quit_closes(self):
        if "quit" not in self.text:
            self.skipTest("README does not claim quit")
        with self.server.conn() as c:
            c.send(b"quit\r\n")
            data, closed = c.recv_until_close(timeout=5)
        self.assertTrue(closed, "quit did not close the connection")
        self.assertEqual(data, b"", "quit answered %r" % data)

    def test_readme_shutdown_with_A_stops_the_server(self):
        if "shutdown" not in self.text:
            self.skipTest("README does not claim shutdown")
        server = harness.Server(["-t", "2", "-A"]).start()
        try:
            with server.conn() as c:
                c.send(b"shutdown\r\n")
                data, closed = c.recv_until_close(timeout=10)
            self.assertIsNone(Reader.ERRORS.search(data), "shutdown answered %r" % data)
            self.assertTrue(closed, "shutdown did not close the connection")
            self.assertIsNotNone(server.wait(10), "the server still runs after shutdown")
        finally:
            server.kill()

    def test_readme_meta_commands_answer(self):
        for name in self.meta:
            with self.subTest(command=name):
                self.assertIn(name, META, "README claims meta command %r: no valid request for it "
                              "in test_readme_claims.py's META" % name)
                self.check("meta command", name, *META[name])

    def test_readme_binary_opcodes_answer(self):
        for name in self.binary:
            with self.subTest(opcode=name):
                self.assertIn(name, BINARY, "README claims binary opcode %r: no valid request for it "
                              "in test_readme_claims.py's BINARY" % name)
                self.check_binary(name)

    def check_binary(self, name):
        opcode, extras, key, value = BINARY[name]
        quiet = name in QUIET
        with self.server.conn() as c:
            c.send(packet(0x01, STORE_EXTRAS, b"k", b"10"))  # the item the request finds
            magic, op, status, _, _, _ = read_packet(c)
            self.assertEqual((magic, op, status), (0x81, 0x01, 0))
            if name == "quitq":
                c.send(packet(opcode))
                data, closed = c.recv_until_close(timeout=5)
                self.assertTrue(closed and data == b"", "binary quitq: %r, closed %s" % (data, closed))
                return
            if name == "stat":
                for group in (b"",) + STAT_GROUPS_BINARY:
                    c.send(packet(opcode, key=group))
                    count = 0
                    while True:
                        magic, op, status, keylen, bodylen, _ = read_packet(c)
                        self.assertEqual((magic, op, status), (0x81, opcode, 0), "stat %r" % group)
                        if keylen == 0 and bodylen == 0:
                            break
                        count += 1
                    if group in (b"", b"settings"):
                        self.assertGreater(count, 0, "stat %r answered no STAT packet" % group)
                return
            c.send(packet(opcode, extras, key, value) + (packet(NOOP) if quiet else b""))
            seen = []
            while True:
                magic, op, status, _, _, body = read_packet(c)
                seen.append((op, status))
                self.assertEqual(magic, 0x81, "binary %s: a reply with magic %#x" % (name, magic))
                self.assertNotIn(status, (UNKNOWN_COMMAND, EINVAL),
                                 "binary %s answered status %#x %r" % (name, status, body))
                if not quiet or op == NOOP:
                    break
            self.assertEqual(seen[0][0], opcode if not quiet or len(seen) > 1 else NOOP,
                             "binary %s: replies %r" % (name, seen))
            if name == "quit":
                self.assertTrue(c.is_closed(timeout=5), "binary %s did not close" % name)

    def test_readme_get_walk_fits_six_hops_of_real_files(self):
        # issue 10: the walk of a GET, at the top of README, is a table of at
        # most six hops, each in one file, and names files that exist
        walk = re.search(r"^## Where a request goes\s*$(.*?)(?=^## )", readme(), re.M | re.S)
        self.assertIsNotNone(walk, "README.md has no '## Where a request goes' section")
        rows = [line for line in walk.group(1).splitlines()
                if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line)][1:]  # minus the header
        self.assertTrue(1 <= len(rows) <= 6, "the GET walk has %d hops (at most six)" % len(rows))
        root = os.path.dirname(README)
        for row in rows:
            cells = [c.strip() for c in row.strip().strip("|").split("|")]
            files = re.findall(r"`([^`]+)`", cells[-1])
            self.assertEqual(len(files), 1, "a hop in more than one file: %r" % row)
            for path in re.findall(r"`([\w./-]+\.[ch])`", row):
                self.assertTrue(os.path.isfile(os.path.join(root, path)),
                                "the GET walk names %s, which does not exist" % path)

    def test_readme_drift_is_gone(self):
        text = normalized(readme())
        for pattern in DRIFT:
            with self.subTest(pattern=pattern):
                m = re.search(pattern, text, re.I)
                self.assertIsNone(m, "README.md still says %r, which is false (issue 10)"
                                  % (m.group(0) if m else ""))

    def test_readme_check_fails_on_a_false_claim(self):
        # the checker can fail: an unknown command answers ERROR, which
        # check() refuses
        with self.assertRaises(AssertionError):
            self.check("text command", "frobnicate", b"", b"frobnicate k\r\n", rb"OK\r\n")


if __name__ == "__main__":
    harness.main()
