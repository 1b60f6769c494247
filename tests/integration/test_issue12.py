#!/usr/bin/python3
"""test_issue12.py: memcached's own t/ suite's findings, pinned (issue 12).

Each test is named after the memcached 1.6.18 t/ file whose failure it
pins, and checks the same behaviour with the real server on a loopback
port (or a UNIX socket in a temporary directory):

  test_issue12_stats_detail   t/stats-detail.t: stats detail on|off|dump,
                              per-prefix get/hit/set/del, cleared by reset
  test_issue12_binary_detail  t/binary.t: binary `stats detail on` and dump
  test_issue12_flush_all      t/flush-all.t: -F refuses flush_all
  test_issue12_daemonize      t/daemonize.t: -d -P, the pid file names the
                              process `stats pid` reports
  test_issue12_unixsocket     t/unixsocket.t: -s serves on a UNIX socket
  test_issue12_command_line   every test's `-o relaxed_privileges -U N`:
                              accepted, each inert option named once
  test_issue12_issue_61       t/issue_61.t: -R 1 makes a pipelining
                              connection yield, counted in conn_yields
  test_issue12_watcher        t/watcher.t, t/watcher_connid.t: watch's
                              item_get/item_store/conn_new/conn_close/
                              eviction lines, skipped=, log_watchers, -W
  test_issue12_idle_timeout   t/idle-timeout.t: -o idle_timeout closes a
                              connection waiting for a command, counted in
                              idle_kicks; one reading a value stays open

Against memcached (CORECACHE_SERVER=/usr/bin/memcached) the tests that
use only memcached's behaviour run too; the start-up report is ours.
"""

import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def conn(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    # a write after a write would wait out delayed ACKs (Nagle): 40 ms a stats call
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s, s.makefile("rb")


def lines_until_end(f):
    out = []
    while True:
        line = f.readline()
        assert line, "connection closed"
        out.append(line)
        if line in (b"END\r\n", b"OK\r\n") or line.startswith(b"CLIENT_ERROR"):
            return out


class Issue12Test(unittest.TestCase):
    def test_issue12_stats_detail(self):
        with harness.Server(["-t", "2"]) as server:
            s, f = conn(server)
            s.sendall(b"stats detail dump\r\n")
            self.assertEqual(f.readline(), b"END\r\n")
            s.sendall(b"stats detail on\r\n")
            self.assertEqual(f.readline(), b"OK\r\n")
            s.sendall(b"set foo:123 0 0 6\r\nfooval\r\n")
            self.assertEqual(f.readline(), b"STORED\r\n")
            s.sendall(b"stats detail dump\r\n")
            self.assertEqual(lines_until_end(f), [b"PREFIX foo get 0 hit 0 set 1 del 0\r\n", b"END\r\n"])
            # keys of one prefix land on different shards: one table counts them all
            s.sendall(b"get foo:123 foo:124 foo:125\r\n")
            self.assertEqual(lines_until_end(f), [b"VALUE foo:123 0 6\r\n", b"fooval\r\n", b"END\r\n"])
            s.sendall(b"delete foo:126\r\n")
            self.assertEqual(f.readline(), b"NOT_FOUND\r\n")
            s.sendall(b"stats detail dump\r\n")
            self.assertEqual(lines_until_end(f), [b"PREFIX foo get 3 hit 1 set 1 del 1\r\n", b"END\r\n"])
            s.sendall(b"stats reset\r\n")
            self.assertEqual(f.readline(), b"RESET\r\n")
            s.sendall(b"stats detail dump\r\n")
            self.assertEqual(f.readline(), b"END\r\n")
            s.sendall(b"stats detail off\r\n")
            self.assertEqual(f.readline(), b"OK\r\n")
            s.sendall(b"get foo:123\r\n")
            lines_until_end(f)
            s.sendall(b"stats detail dump\r\n")
            self.assertEqual(f.readline(), b"END\r\n")
            s.sendall(b"stats detail bogus\r\n")
            self.assertEqual(f.readline(), b"CLIENT_ERROR usage: stats detail on|off|dump\r\n")
            s.close()

    def test_issue12_binary_detail(self):
        def stat(s, key):
            s.sendall(struct.pack(">BBHBBHIIQ", 0x80, 0x10, len(key), 0, 0, 0, len(key), 7, 0) + key)
            packets = []
            while True:
                hdr = b""
                while len(hdr) < 24:
                    hdr += s.recv(24 - len(hdr))
                _, op, klen, _, _, status, blen, opaque, _ = struct.unpack(">BBHBBHIIQ", hdr)
                body = b""
                while len(body) < blen:
                    body += s.recv(blen - len(body))
                packets.append((status, body[:klen], body[klen:]))
                if status != 0 or klen == 0:
                    return packets

        with harness.Server(["-t", "2"]) as server:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            self.assertEqual(stat(s, b"detail on"), [(0, b"", b"")])
            t, tf = conn(server)
            t.sendall(b"set a:1 0 0 1\r\nx\r\n")
            self.assertEqual(tf.readline(), b"STORED\r\n")
            got = stat(s, b"detail dump")
            self.assertEqual(got[0][1], b"detailed")
            self.assertIn(b"PREFIX a get 0 hit 0 set 1 del 0\r\n", got[0][2])
            self.assertEqual(got[-1], (0, b"", b""))
            s.close()
            t.close()

    def test_issue12_strtol_testing(self):
        # t/strtol-testing.t, and `slabs automove` as memcached answers it
        # (`slabs reassign`: test_issue12_slabs.py)
        with harness.Server(["-t", "2"]) as server:
            s, f = conn(server)
            for line, want in ((b"slabs automove invalid", b"CLIENT_ERROR bad command line format"),
                               (b"verbosity invalid", b"CLIENT_ERROR bad command line format"),
                               (b"slabs automove 1", b"OK"), (b"slabs automove 0", b"OK"),
                               (b"slabs automove 3", b"ERROR"), (b"slabs automove ratio 0.5", b"OK"),
                               (b"slabs automove ratio x", b"ERROR"), (b"slabs bogus", b"ERROR")):
                s.sendall(line + b"\r\n")
                self.assertEqual(f.readline(), want + b"\r\n", line)
            s.sendall(b"slabs automove 1 noreply\r\nmn\r\n")
            self.assertEqual(f.readline(), b"MN\r\n")
            s.close()

    def test_issue12_dash_X(self):
        # -X: stats cachedump refused with memcached's words
        with harness.Server(["-t", "2", "-X"]) as server:
            s, f = conn(server)
            s.sendall(b"stats cachedump 1 1\r\n")
            self.assertEqual(f.readline(), b"CLIENT_ERROR stats cachedump not allowed\r\n")
            s.sendall(b"stats settings\r\n")
            self.assertIn(b"STAT dump_enabled no\r\n", b"".join(lines_until_end(f)))
            s.close()

    def test_issue12_flush_all(self):
        with harness.Server(["-t", "2", "-F"]) as server:
            s, f = conn(server)
            s.sendall(b"set foo 0 0 3\r\nbar\r\nflush_all\r\n")
            self.assertEqual(f.readline(), b"STORED\r\n")
            self.assertEqual(f.readline(), b"CLIENT_ERROR flush_all not allowed\r\n")
            s.sendall(b"get foo\r\n")
            self.assertEqual(lines_until_end(f), [b"VALUE foo 0 3\r\n", b"bar\r\n", b"END\r\n"])
            # issue 15: -F is checked before the delay is read; noreply
            # silences the refusal (memcached 1.6.18's order)
            s.sendall(b"flush_all garbage\r\nflush_all 0 noreply\r\nflush_all x noreply\r\nmn\r\n")
            self.assertEqual(f.readline(), b"CLIENT_ERROR flush_all not allowed\r\n")
            self.assertEqual(f.readline(), b"MN\r\n")
            s.sendall(b"stats settings\r\n")
            self.assertIn(b"STAT flush_enabled no\r\n", b"".join(lines_until_end(f)))
            s.close()
            # binary flush (a connection's first byte picks its protocol):
            # memcached answers AUTH_ERROR (0x20)
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(struct.pack(">BBHBBHIIQ", 0x80, 0x08, 0, 0, 0, 0, 0, 9, 0))
            hdr = b""
            while len(hdr) < 24:
                hdr += s.recv(24 - len(hdr))
            self.assertEqual(struct.unpack(">H", hdr[6:8])[0], 0x20)
            # issue 15: the quiet flush (FLUSHQ, with a delay) is refused
            # aloud too, with memcached's body, before the NOOP's answer
            s.sendall(struct.pack(">BBHBBHIIQI", 0x80, 0x18, 0, 4, 0, 0, 4, 7, 0, 5) +
                      struct.pack(">BBHBBHIIQ", 0x80, 0x0a, 0, 0, 0, 0, 0, 8, 0))
            want = (struct.pack(">BBHBBHIIQ", 0x81, 0x18, 0, 0, 0, 0x20, 13, 7, 0) + b"Auth failure." +
                    struct.pack(">BBHBBHIIQ", 0x81, 0x0a, 0, 0, 0, 0, 0, 8, 0))
            want = b"Auth failure." + want  # after the first reply's body
            got = b""
            while len(got) < len(want):
                chunk = s.recv(len(want) - len(got))
                if not chunk:
                    break
                got += chunk
            self.assertEqual(got, want)
            s.close()

    def test_issue12_daemonize(self):
        with tempfile.TemporaryDirectory() as tmp:
            os.chmod(tmp, 0o777)  # -u nobody writes the pid file after dropping root
            pidfile = os.path.join(tmp, "mc.pid")
            port = harness.free_port()
            argv = [harness.SERVER, "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-t", "2",
                    "-d", "-P", pidfile] + harness.user_flags()
            # the parent returns at once; the daemon keeps the port
            self.assertEqual(subprocess.run(argv, timeout=10).returncode, 0)
            deadline = time.monotonic() + 10
            while not os.path.exists(pidfile) and time.monotonic() < deadline:
                time.sleep(0.05)
            with open(pidfile) as fh:
                pid = int(fh.read().strip())
            try:
                os.kill(pid, 0)
                s = None
                while s is None and time.monotonic() < deadline:
                    try:
                        s = socket.create_connection(("127.0.0.1", port), timeout=5)
                    except OSError:
                        time.sleep(0.05)
                f = s.makefile("rb")
                s.sendall(b"stats\r\n")
                stats = dict(l.split()[1:3] for l in lines_until_end(f)[:-1])
                self.assertEqual(int(stats[b"pid"]), pid)
                s.close()
            finally:
                os.kill(pid, signal.SIGTERM)  # the daemon we started, by its PID
            deadline = time.monotonic() + 10
            while os.path.exists(pidfile) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not harness.is_memcached():
                self.assertFalse(os.path.exists(pidfile), "pid file left after a clean exit")

    def test_issue12_unixsocket(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "mc.sock")
            argv = [harness.SERVER, "-s", path, "-a", "770", "-t", "2"] + harness.user_flags()
            proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 10
                while not os.path.exists(path) and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertEqual(os.stat(path).st_mode & 0o777, 0o770)
                for _ in range(4):  # connections reach every shard's accept
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(path)
                    s.settimeout(5)
                    f = s.makefile("rb")
                    s.sendall(b"set u 0 0 2\r\nhi\r\nget u\r\n")
                    self.assertEqual(f.readline(), b"STORED\r\n")
                    self.assertEqual(lines_until_end(f), [b"VALUE u 0 2\r\n", b"hi\r\n", b"END\r\n"])
                    # t/binary.t: stats settings names the socket
                    s.sendall(b"stats settings\r\n")
                    settings = b"".join(lines_until_end(f))
                    self.assertIn(b"STAT domain_socket " + path.encode() + b"\r\n", settings)
                    s.close()
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)
            self.assertEqual(proc.returncode, 0)

    @unittest.skipIf(harness.is_memcached(), "the start-up report is corecache's")
    def test_issue12_command_line(self):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        udp_port = probe.getsockname()[1]
        probe.close()
        flags = ["-t", "2", "-m", "60", "-o",
                 "slab_reassign,slab_automove,lru_crawler,lru_maintainer,slab_chunk_max=4096",
                 "-o", "relaxed_privileges", "-U", str(udp_port), "-R", "40"]
        with harness.Server(flags) as server:
            s, f = conn(server)
            s.sendall(b"set k 0 0 1\r\nv\r\n")
            self.assertEqual(f.readline(), b"STORED\r\n")
            s.close()
            text = server.stderr_text()
            # no UDP socket was opened on that port: it is still free to bind
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("127.0.0.1", udp_port))
            u.close()
        for name in ("-o slab_reassign", "-o lru_crawler", "-o lru_maintainer", "-o slab_chunk_max",
                     "-o relaxed_privileges"):
            self.assertEqual(text.count("corecache: %s: accepted, no effect: " % name), 1, text)
        self.assertNotIn("-R: accepted, no effect", text)  # -R works (test_issue12_issue_61)
        self.assertEqual(text.count("corecache: -U %d: no UDP port is opened" % udp_port), 1, text)
        bad = subprocess.run([harness.SERVER, "-o", "hashpower=5"], capture_output=True, text=True)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("Initial hashtable multiplier is too low", bad.stderr)
        usage = subprocess.run([harness.SERVER, "-h"], capture_output=True, text=True).stdout
        for word in ("--unix-socket", "--daemon", "--pidfile", "--max-reqs-per-event", "--hashpower",
                     "--slab-automove", "--lru-crawler", "--relaxed-privileges", "--watcher-logbuf-size"):
            self.assertIn(word, usage)

    def test_issue12_issue_61(self):
        # six sets in one send: with -R 1 the connection yields after each
        with harness.Server(["-t", "2", "-R", "1"]) as server:
            s, f = conn(server)
            s.sendall(b"set foobar 0 0 5\r\nBubba\r\n" * 6)
            for _ in range(6):
                self.assertEqual(f.readline(), b"STORED\r\n")
            self.assertGreaterEqual(int(stats(s, f)["conn_yields"]), 5)
        # without -R there is no cap: the same pipeline never yields
        with harness.Server(["-t", "2"]) as server:
            s, f = conn(server)
            s.sendall(b"set foobar 0 0 5\r\nBubba\r\n" * 6)
            for _ in range(6):
                self.assertEqual(f.readline(), b"STORED\r\n")
            self.assertEqual(stats(s, f)["conn_yields"], "0")

    def test_issue12_idle_timeout(self):
        with harness.Server(["-t", "2", "-o", "idle_timeout=1"]) as server:
            # opened first: a value half sent (memcached's conn_nread) is not idle
            busy, busy_f = conn(server)
            busy.sendall(b"set half 0 0 10\r\nabc")
            s, f = conn(server)
            self.assertEqual(stats(s, f)["idle_kicks"], "0")
            # the server closes it by itself: the read ends (EOF), well
            # before the socket's own 30 s timeout
            s.settimeout(30)
            self.assertEqual(s.recv(1), b"")
            busy.sendall(b"defghij\r\n")
            self.assertEqual(busy_f.readline(), b"STORED\r\n")
            s2, f2 = conn(server)
            self.assertGreaterEqual(int(stats(s2, f2)["idle_kicks"]), 1)

    def test_issue12_watcher(self):
        line = r"ts=\d+\.\d+ gid=\d+ "
        with harness.Server(["-t", "4", "-m", "8", "-o", "watcher_logbuf_size=8"]) as server:
            c, cf = conn(server)
            # the client's fd as stats conns names it (by its address: the
            # harness's probe connection may still be listed, closing)
            cfd = int(stats_conns_fd_of(c, cf))
            w, wf = conn(server)
            w.sendall(b"watch fetchers mutations\n")
            self.assertEqual(wf.readline(), b"OK\r\n")
            self.assertEqual(stats(c, cf)["log_watchers"], "1")
            # keys on every shard: each line names the asking connection
            for i in range(8):
                c.sendall(b"set k%d 0 0 4 noreply\r\nvbar\r\n" % i)
                self.assertRegex(wf.readline().decode(), "^" + line +
                                 "type=item_get key=k%d status=not_found clsid=0 cfd=%d size=0\n$" % (i, cfd))
                self.assertRegex(wf.readline().decode(), "^" + line +
                                 "type=item_store key=k%d status=stored cmd=set ttl=0 clsid=\\d+ cfd=%d size=4\n$"
                                 % (i, cfd))
            c.sendall(b"get k3\r\n")
            self.assertEqual(lines_until_end(cf), [b"VALUE k3 0 4\r\n", b"vbar\r\n", b"END\r\n"])
            self.assertRegex(wf.readline().decode(), "type=item_get key=k3 status=found clsid=\\d+ cfd=%d size=4\n$" % cfd)
            # add on a present key is refused: not_stored; memcached's URI encoding of keys
            # (one at a time: pipelined keys of different shards run in parallel,
            # so their lines may interleave in either order)
            c.sendall(b"add k3 0 0 1\r\nx\r\n")
            self.assertEqual(cf.readline(), b"NOT_STORED\r\n")
            self.assertIn(b"type=item_get key=k3 status=found", wf.readline())
            self.assertIn(b"type=item_store key=k3 status=not_stored cmd=add", wf.readline())
            c.sendall(b"set a#b/c 0 0 1\r\nx\r\n")
            self.assertEqual(cf.readline(), b"STORED\r\n")
            self.assertIn(b"type=item_get key=a%23b%2Fc status=not_found", wf.readline())
            self.assertIn(b"type=item_store key=a%23b%2Fc status=stored cmd=set", wf.readline())

            # connevents: a client that quits closes normally, an HTTP request is an error
            e, ef = conn(server)
            e.sendall(b"watch connevents\n")
            self.assertEqual(ef.readline(), b"OK\r\n")
            q, qf = conn(server)
            q.sendall(b"quit\r\n")
            self.assertRegex(ef.readline().decode(), "^" + line + r"type=conn_new rip=127\.0\.0\.1 rport=\d+ transport=tcp cfd=\d+\n$")
            self.assertRegex(ef.readline().decode(), "^" + line + r"type=conn_close rip=127\.0\.0\.1 rport=\d+ transport=tcp reason=normal cfd=\d+\n$")
            h, hf = conn(server)
            h.sendall(b"GET / HTTP/1.1\r\n")
            self.assertIn(b"type=conn_new", ef.readline())
            self.assertIn(b"reason=error", ef.readline())
            self.assertEqual(stats(c, cf)["log_watchers"], "2")
            for sock in (e, ef, w, wf):  # a makefile holds its socket open
                sock.close()
            # a closed watcher is forgotten at its shard's next tick
            deadline = time.monotonic() + 30
            while stats(c, cf)["log_watchers"] != "0":
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)

            # a watcher that does not read: its 8 KiB buffer fills, lines are
            # skipped and counted, and once it reads, skipped=N comes before the next line
            slow = socket.socket()
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.connect(("127.0.0.1", server.port))
            slow.sendall(b"watch fetchers\n")
            slowf = slow.makefile("rb")
            self.assertEqual(slowf.readline(), b"OK\r\n")
            batch = b"".join(b"get miss%d%s\r\n" % (i, b"X" * 180) for i in range(500))
            for _ in range(400):  # bounded: each batch is 500 lines the watcher does not read
                c.sendall(batch)
                for _ in range(500):
                    cf.readline()
                if int(stats(c, cf)["log_watcher_skipped"]) > 0:
                    break
            self.assertGreater(int(stats(c, cf)["log_watcher_skipped"]), 0)
            slow.settimeout(30)
            saw_skip = False
            for i in range(1000000):
                got = slowf.readline()
                self.assertTrue(got)
                if got.startswith(b"skipped="):
                    saw_skip = True
                    c.sendall(b"get after\r\n")
                    cf.readline()
                    self.assertRegex(slowf.readline().decode(), "^" + line + "type=item_get ")
                    break
                if i % 100 == 0:  # keeps lines coming while the buffer drains (t/watcher.t does too)
                    c.sendall(b"get more\r\n")
                    cf.readline()
            self.assertTrue(saw_skip)

        # evictions: a full cache evicts whole segments, one line per item evicted
        with harness.Server(["-t", "1", "-m", "4"]) as server:
            c, cf = conn(server)
            w, wf = conn(server)
            w.sendall(b"watch evictions\n")
            self.assertEqual(wf.readline(), b"OK\r\n")
            value = b"B" * 10000
            for i in range(2000):  # bounded: 20 MB into 4 MB
                c.sendall(b"set e%d 0 0 10000 noreply\r\n%s\r\n" % (i, value))
                if int(stats(c, cf)["evictions"]) > 0:
                    break
            self.assertRegex(wf.readline().decode(), "^" + line +
                             r"type=eviction key=e\d+ fetch=no ttl=-1 la=\d+ clsid=\d+ size=10000\n$")

        # -W: memcached's refusal
        with harness.Server(["-t", "1", "-W"]) as server:
            c, cf = conn(server)
            c.sendall(b"watch mutations\n")
            self.assertEqual(cf.readline(), b"CLIENT_ERROR watch commands not allowed\r\n")
            c.sendall(b"watch bogus\n")
            self.assertEqual(cf.readline(), b"CLIENT_ERROR watch commands not allowed\r\n")
        with harness.Server(["-t", "1"]) as server:
            c, cf = conn(server)
            c.sendall(b"watch bogus\n")
            self.assertEqual(cf.readline(), b"ERROR\r\n")


def stats_conns_fd_of(s, f):
    """The descriptor `stats conns` lists for this client, found by its
    address; the listing must be in descriptor order, as memcached's."""
    me = ("tcp:127.0.0.1:%d" % s.getsockname()[1]).encode()
    s.sendall(b"stats conns\r\n")
    fds, mine = [], None
    while True:
        line = f.readline()
        assert line, "connection closed"
        if line == b"END\r\n":
            assert fds == sorted(fds), fds
            return mine
        _, name, value = line.rstrip(b"\r\n").split(b" ", 2)
        fd = int(name.split(b":")[0])
        if not fds or fds[-1] != fd:
            fds.append(fd)
        if name.endswith(b":addr") and value == me:
            mine = fd


def stats(s, f, group=b""):
    s.sendall(b"stats " + group + b"\r\n" if group else b"stats\r\n")
    out = {}
    while True:
        line = f.readline()
        assert line, "connection closed"
        if line == b"END\r\n":
            return out
        _, name, value = line.decode().rstrip("\r\n").split(" ", 2)
        out[name] = value


if __name__ == "__main__":
    harness.main() if hasattr(harness, "main") else unittest.main()
