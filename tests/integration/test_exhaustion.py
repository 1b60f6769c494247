#!/usr/bin/python3
"""test_exhaustion.py: the server driven into each resource it can run out
of, and back out again (issue 15).

Each test pushes the real server past one limit, checks the counter that
`stats` (and /metrics) keeps for it moved, and then checks recovery: every
reply that was owed arrives and is right, and new clients are served.

  - descriptors: soft and hard RLIMIT_NOFILE 200 under -c 1024 and 300
    clients: the start line says the limit is short; accepting backs off
    (the server does not spin: CPU over 2 s stays low), listen_disabled_num
    counts the pauses (memcached_connections_listener_disabled_total on
    /metrics), and once clients leave, every queued client is answered;
    with a hard limit that allows it, the soft limit is raised at start;
  - io_uring queues: --uring-cq-entries 16 (the SQ is then 16 too) under 64
    pipelining connections: uring_cq_overflows and uring_sq_full count,
    every reply right;
  - provided receive buffers: --recv-buffers 2 under 64 connections sending
    at once: recv_nobufs counts, every set stored; --recv-buffers 1 under
    24 connections pipelining sets of 1 B to 40 kB: every value intact
    (receives share the buffer where the kernel consumes it incrementally);
  - output backlog per connection and per shard: readers that do not read
    a pipeline of large gets: conn_yields and shard_out_yields count, RSS
    stays within the caps, and reading afterwards gets every reply in order;
  - cross-shard channel: pipelined large sets to keys of both shards:
    xchan_backlogged counts, every value reads back intact; sets of 100 kB
    (by pointer) pile up past the backlog's cap: xchan_backlog_yields
    counts, the backlog empties, every value reads back;
  - metrics endpoint: 130 idle connections, then a scrape is answered (the
    oldest idle connections make room: http_evicted); an idle connection is
    closed after --metrics-idle-timeout and a request that never finishes
    after the deadline (http_timeouts);
  - connection memory: --conn-memory 16 and a dozen 3 MB uploads left
    unfinished: those past the budget get memcached's "SERVER_ERROR out of
    memory reading request" and are closed (conn_mem_refused); other
    clients keep working; once the uploads go, large values store again;
    and without that budget (--conn-memory 0), under an address-space limit
    (prlimit --as: what the warmed server maps plus 48 MiB), 3 MB uploads
    until an allocation really fails: the same error and close, counted in
    malloc_fails (stats and /metrics), and the server recovers the same way
    (skipped in sanitizer builds, whose shadow memory no such limit holds).

corecache only (the options and counters are its own): against memcached
the file exits 77.
"""

import os
import random
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from metrics_server import MetricsServer, samples, skip_unless_corecache, wait_until  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stat(server, name):
    return int(server.stats()[name])


class LimitedServer(MetricsServer):
    """The server started under `prlimit --nofile=SOFT:HARD`."""

    def __init__(self, nofile, flags, **kw):
        super().__init__(flags, **kw)
        self.nofile = nofile

    def argv(self, port):
        return ["prlimit", "--nofile=%d:%d" % self.nofile, "--"] + super().argv(port)


class AddressSpaceServer(MetricsServer):
    """The server started under `prlimit --as=BYTES` (issue 15)."""

    def __init__(self, limit, flags, **kw):
        super().__init__(flags, **kw)
        self.limit = limit

    def argv(self, port):
        return ["prlimit", "--as=%d" % self.limit, "--"] + super().argv(port)


def pipeline_gets(sock, key, count):
    sock.sendall(("get %s\r\n" % key).encode() * count)


def read_gets(conn, key, value, count, timeout=60):
    """Reads `count` replies to `get key` and checks each is `value`."""
    head = ("VALUE %s 0 %d\r\n" % (key, len(value))).encode()
    one = head + value + b"\r\nEND\r\n"
    got = conn.recv_exact(len(one) * count, timeout=timeout)
    for i in range(count):
        if got[i * len(one):(i + 1) * len(one)] != one:
            raise AssertionError("reply %d of %d is wrong: %r" % (i, count, got[i * len(one):][:80]))


def pipelined_sets(test, server, nconns, per, size, prefix, values, timeout):
    """nconns connections each send `per` sets of `size`-byte values in one
    pipeline, all at once (a thread each), and read every STORED; the
    values go into `values` (key -> bytes)."""
    conns = [server.conn(timeout=timeout) for _ in range(nconns)]
    threads = []
    for i, c in enumerate(conns):
        batch = []
        for j in range(per):
            key = "%s_%d_%d" % (prefix, i, j)
            values[key] = (key.encode() + b":") * (size // (len(key) + 1))
            batch.append(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(values[key]), values[key]))
        threads.append(threading.Thread(target=c.send, args=(b"".join(batch),)))
    for t in threads:
        t.start()
    for c in conns:
        want = b"STORED\r\n" * per
        test.assertEqual(c.recv_exact(len(want), timeout=timeout), want)
        c.close()
    for t in threads:
        t.join()


def check_values(test, server, values):
    """Every key of `values` reads back its value, byte for byte."""
    with server.conn(timeout=60) as c:
        for key, value in values.items():
            c.send("get %s\r\n" % key)
            want = b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key.encode(), len(value), value)
            test.assertEqual(c.recv_exact(len(want)), want, key)


class DescriptorTest(unittest.TestCase):

    def test_issue15_descriptors_run_out_accept_backs_off_and_recovers(self):
        server = LimitedServer((200, 200), ["-t", "2", "-c", "1024"]).start()
        try:
            # said once at start (the listeners may answer a moment before)
            self.assertTrue(wait_until(lambda: "open files but the limit is 200" in server.stderr_text(), 5),
                            server.stderr_text())
            clients = []
            for _ in range(300):  # the listen backlog (1024) holds those not accepted
                clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
            time.sleep(0.5)
            before = cpu_seconds(server.pid)
            time.sleep(2.0)
            spent = cpu_seconds(server.pid) - before
            # Re-arming the accept at once spun both cores (~4 s of CPU in 2 s).
            self.assertLess(spent, 0.5, "the server burned %.2f s of CPU in 2 s while out of descriptors"
                            % spent)
            # The first client was accepted: it sees the listener paused, as
            # memcached's accepting_conns reads 0 while its listener is off.
            first = clients[0]
            first.settimeout(10)

            def accepting():
                first.sendall(b"stats\r\n")
                raw = b""
                while not raw.endswith(b"END\r\n"):
                    raw += first.recv(65536)
                return int(raw.split(b"STAT accepting_conns ")[1].split(b"\r\n")[0])
            self.assertTrue(wait_until(lambda: accepting() == 0, 5), "accepting_conns never read 0 while paused")
            for sock in clients[:150]:
                sock.close()
            clients = clients[150:]
            # Every queued client is now answered, the ones the server had
            # not accepted before included.
            for sock in clients:
                sock.settimeout(10)
                sock.sendall(b"version\r\n")
            for sock in clients:
                self.assertTrue(sock.recv(100).startswith(b"VERSION "))
            self.assertGreater(stat(server, "listen_disabled_num"), 0)
            # issue 12: memcached's time_in_listen_disabled_us counts the pause
            self.assertGreater(stat(server, "time_in_listen_disabled_us"), 0)
            self.assertTrue(wait_until(lambda: stat(server, "accepting_conns") == 1, 10),
                            "accepting_conns stayed 0 once descriptors were back")
            metrics = samples(server.scrape())
            self.assertGreater(metrics["memcached_connections_listener_disabled_total"], 0)
            for sock in clients:
                sock.close()
            with server.conn() as c:
                c.send("set k 0 0 1\r\nv\r\nget k\r\n")
                self.assertEqual(c.recv_until(b"END\r\n"), b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n")
        finally:
            server.stop()

    def test_issue15_soft_limit_raised_to_fit_c(self):
        server = LimitedServer((256, 8192), ["-t", "2", "-c", "2000"]).start()
        try:
            self.assertNotIn("open files", server.stderr_text())
            with open("/proc/%d/limits" % server.pid) as f:
                line = [l for l in f if l.startswith("Max open files")][0]
            soft = int(line.split()[3])
            self.assertGreaterEqual(soft, 2000)
        finally:
            server.stop()


class RingTest(unittest.TestCase):

    def run_pipelines(self, server, nconns, count, value):
        """nconns connections each set their own key and pipeline `count`
        gets of it, all sent before any reply is read."""
        conns = [server.conn(timeout=30) for _ in range(nconns)]
        try:
            for i, c in enumerate(conns):
                c.send(b"set key%d 0 0 %d\r\n%s\r\n" % (i, len(value), value)
                       + b"get key%d\r\n" % i * count)
            for i, c in enumerate(conns):
                self.assertEqual(c.recv_until(b"STORED\r\n", timeout=30), b"STORED\r\n")
                read_gets(c, "key%d" % i, value, count)
        finally:
            for c in conns:
                c.close()

    def test_issue15_completion_queue_overflow(self):
        with MetricsServer(["-t", "2", "--uring-cq-entries", "16"]) as server:
            for _ in range(10):  # until both have happened (each round may see one, not the other)
                self.run_pipelines(server, 64, 20, b"x" * 100)
                if stat(server, "uring_cq_overflows") > 0 and stat(server, "uring_sq_full") > 0:
                    break
            self.assertGreater(stat(server, "uring_cq_overflows"), 0)
            self.assertGreater(stat(server, "uring_sq_full"), 0)  # the SQ is 16 entries too
            # and it still serves
            self.run_pipelines(server, 8, 5, b"after")

    def test_issue15_receive_buffers_run_out(self):
        with MetricsServer(["-t", "2", "--recv-buffers", "2"]) as server:
            value = bytes(range(256)) * 100  # 25.6 kB: two buffers each
            for _ in range(5):
                conns = [server.conn(timeout=30) for _ in range(64)]
                payload = [b"set big%d 0 0 %d\r\n%s\r\nget big%d\r\n" % (i, len(value), value, i)
                           for i in range(len(conns))]
                threads = [threading.Thread(target=c.send, args=(p,)) for c, p in zip(conns, payload)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                for i, c in enumerate(conns):
                    self.assertEqual(c.recv_until(b"STORED\r\n", timeout=30), b"STORED\r\n")
                    read_gets(c, "big%d" % i, value, 1)
                    c.close()
                if stat(server, "recv_nobufs") > 0:
                    break
            self.assertGreater(stat(server, "recv_nobufs"), 0)

    def test_issue15_one_receive_buffer_shared_by_many_connections(self):
        # Where the kernel consumes provided buffers incrementally
        # (IOU_PBUF_RING_INC, io/shard.c), receives of many connections land
        # one after another in the same buffer, each at the offset io/conn.c
        # keeps for it: one wrong offset and a value below comes back
        # corrupt. With one buffer in all, requests straddle it constantly.
        with MetricsServer(["-t", "2", "--recv-buffers", "1"]) as server:
            rng = random.Random(15)
            conns = [server.conn(timeout=60) for _ in range(24)]
            values = [[os.urandom(rng.randrange(1, 40000)) for _ in range(12)] for _ in conns]
            payload = [b"".join(b"set inc%d_%d 0 0 %d\r\n%s\r\n" % (i, j, len(v), v)
                                for j, v in enumerate(vals))
                       for i, vals in enumerate(values)]
            threads = [threading.Thread(target=c.send, args=(p,)) for c, p in zip(conns, payload)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for c, vals in zip(conns, values):
                want = b"STORED\r\n" * len(vals)
                self.assertEqual(c.recv_exact(len(want), timeout=60), want)
            for i, (c, vals) in enumerate(zip(conns, values)):
                for j, v in enumerate(vals):
                    c.send(b"get inc%d_%d\r\n" % (i, j))
                    read_gets(c, "inc%d_%d" % (i, j), v, 1)
                c.close()


class BacklogTest(unittest.TestCase):

    def test_issue15_output_backlog_per_connection_and_per_shard(self):
        with MetricsServer(["-t", "2", "-m", "64"]) as server:
            value = os.urandom(128 * 1024)
            with server.conn() as c:
                c.send(b"set big 0 0 %d\r\n%s\r\n" % (len(value), value))
                self.assertEqual(c.recv_until(b"STORED\r\n"), b"STORED\r\n")
            rss_before = server.rss_kb()
            count, nconns = 120, 12  # 15 MB asked per connection, 180 MB in all
            conns = []
            for _ in range(nconns):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader
                sock.connect(("127.0.0.1", server.port))
                conn = harness.Conn.__new__(harness.Conn)
                conn.timeout, conn.sock, conn.buf = 60, sock, b""
                conns.append(conn)
                pipeline_gets(sock, "big", count)
            wait_until(lambda: stat(server, "shard_out_yields") > 0, 10)
            self.assertGreater(stat(server, "conn_yields"), 0)
            self.assertGreater(stat(server, "shard_out_yields"), 0)
            # The shard caps (2 x 4 x 256 KiB) plus the replies already asked of
            # the other shard when a connection paused; without caps this is
            # the whole 180 MB.
            held_mb = int(server.stats()["shard_out_bytes"]) / 1048576
            self.assertLess(held_mb, 96, "%.0f MiB of replies held" % held_mb)
            grown_mb = (server.rss_kb() - rss_before) / 1024
            if not harness.sanitizer_build():  # a sanitizer's quarantine holds freed memory
                self.assertLess(grown_mb, 96, "RSS grew %.0f MiB" % grown_mb)
            for c in conns:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                read_gets(c, "big", value, count, timeout=120)
                c.close()
            self.assertEqual(server.stats()["shard_out_bytes"], "0")

    def test_issue15_cross_shard_channel_backlog(self):
        with MetricsServer(["-t", "2", "-m", "512"]) as server:
            nconns, per, size = 8, 200, 32 * 1024  # 50 MB of sets, half to the other shard, inline in the channel
            for attempt in range(3):
                values = {}
                pipelined_sets(self, server, nconns, per, size, "xk%d" % attempt, values, timeout=60)
                check_values(self, server, values)
                if stat(server, "xchan_backlogged") > 0:
                    break
            self.assertGreater(stat(server, "xchan_backlogged"), 0)
            self.assertEqual(server.stats()["xchan_backlog_bytes"], "0")

    def test_issue15_cross_shard_backlog_cap(self):
        # Pipelined sets of 32 kB (inline in the 512 KiB channels) fill the
        # channel to the other shard; the records that wait pile up in the
        # backlog until its cap (4 x 1 MiB, io/guard.h) makes connections
        # with sets out wait for their replies before parsing more.
        with MetricsServer(["-t", "2", "-m", "1024"]) as server:
            nconns, per, size = 8, 400, 32 * 1024
            values = {}
            peak, done = [0], threading.Event()

            def sample():  # the backlog of both shards, while the sets pour in
                with server.conn(timeout=60) as probe:
                    while not done.is_set():
                        probe.send(b"stats\r\n")
                        stats = probe.recv_until(b"END\r\n", timeout=60)
                        for line in stats.split(b"\r\n"):
                            if line.startswith(b"STAT xchan_backlog_bytes "):
                                peak[0] = max(peak[0], int(line.split()[2]))
                        time.sleep(0.01)

            sampler = threading.Thread(target=sample, daemon=True)  # never outlives a failure
            sampler.start()
            try:
                self.fill_backlog(server, nconns, per, size, values)
            finally:
                done.set()
                sampler.join(60)
            self.assertGreater(stat(server, "xchan_backlog_yields"), 0)
            # two shards' caps, plus what passed each cap: one set per connection
            self.assertLess(peak[0], 2 * 4 * 1048576 + 2 * nconns * (size + 200), "backlog peaked at %d" % peak[0])
            wait_until(lambda: server.stats()["xchan_backlog_bytes"] == "0", 30)
            check_values(self, server, values)  # recovered: every value intact

    def test_noreply_pipeline_across_shards_holds_no_placeholders(self):
        # A forwarded noreply set reserves a reply placeholder (so that a
        # reply read after it means it was applied); filled with nothing, it
        # must go at once, not wait for the connection's next send, which a
        # pure noreply pipeline never makes. Before the fix each one held
        # ~600 B until the pipeline paused: ~450 B per set of RSS here.
        with MetricsServer(["-t", "2", "-m", "1024"]) as server:
            n, blob = 400000, b"x" * 100
            rss_before = server.rss_kb()
            with server.conn(timeout=120) as c:
                for start in range(0, n, 2000):
                    c.send(b"".join(b"set np%d 0 0 100 noreply\r\n%s\r\n" % (i, blob)
                                    for i in range(start, start + 2000)))
                c.send(b"get np0 np%d\r\n" % (n - 1))  # a reply after the last set: all applied
                self.assertEqual(c.recv_until(b"END\r\n"),
                                 b"VALUE np0 0 100\r\n%s\r\nVALUE np%d 0 100\r\n%s\r\nEND\r\n"
                                 % (blob, n - 1, blob))
            self.assertEqual(int(server.stats()["curr_items"]), n)
            self.assertGreater(stat(server, "forwarded_out"), n // 4)
            per_item = (server.rss_kb() - rss_before) * 1024 / n
            if not harness.sanitizer_build():  # a sanitizer's quarantine holds freed memory
                # an item takes ~142 B and its index entry ~16 here
                self.assertLess(per_item, 300, "RSS grew %.0f B per noreply set" % per_item)

    def fill_backlog(self, server, nconns, per, size, values):
        """Pipelined sets from nconns connections until the cap has tripped (8 tries: a
        slow client, as under a sanitizer, lets the other shard keep up more often)."""
        for attempt in range(8):
            pipelined_sets(self, server, nconns, per, size, "bk%d" % attempt, values, timeout=120)
            if stat(server, "xchan_backlog_yields") > 0:
                break


class MetricsEndpointTest(unittest.TestCase):

    def test_issue15_idle_scrapers_cannot_lock_out_a_scrape(self):
        with MetricsServer(["-t", "2"]) as server:
            idle = [server.http() for _ in range(130)]  # 64 slots per shard
            time.sleep(0.5)
            for _ in range(3):
                text = server.scrape()
                self.assertIn("\nmemcached_up 1\n", text)
            self.assertGreater(samples(text)['corecache_http_evicted_total{shard="0"}'] +
                               samples(text)['corecache_http_evicted_total{shard="1"}'], 0)
            # the evicted ones were closed, not left hanging
            closed = sum(1 for h in idle if h.is_closed(timeout=0.05))
            self.assertGreater(closed, 0)
            for h in idle:
                h.close()

    def test_issue15_idle_timeout_and_request_deadline(self):
        with MetricsServer(["-t", "2", "--metrics-idle-timeout", "1"]) as server:
            with server.http() as idle, server.http() as slow:
                slow.send(b"GET /metr")  # and never the rest
                self.assertTrue(idle.is_closed(timeout=5), "an idle connection stayed open")
                # the deadline (10 s) runs from the request's first byte
                slow.send(b"ic")
                self.assertTrue(slow.is_closed(timeout=15), "an unfinished request stayed open")
            self.assertGreaterEqual(stat(server, "http_timeouts"), 2)
            self.assertIn("\nmemcached_up 1\n", server.scrape())


class ConnectionMemoryTest(unittest.TestCase):

    def test_issue15_connection_memory_runs_out(self):
        # 8 MiB of input buffers per shard: the third 3 MB upload on a
        # shard finds them taken.
        with MetricsServer(["-t", "2", "-I", "4m", "--conn-memory", "16"]) as server:
            ok = server.conn()
            ok.send("set small 0 0 2\r\nok\r\n")
            self.assertEqual(ok.recv_until(b"\r\n"), b"STORED\r\n")
            uploads = [server.conn(timeout=10) for _ in range(12)]
            refused = 0
            for c in uploads:
                try:
                    c.send(b"set up 0 0 3000000\r\n" + b"u" * 2000000)  # two thirds, then wait
                except OSError:
                    pass
            for c in uploads:
                data, closed = c.recv_until_close(timeout=1.0)
                if closed:
                    self.assertEqual(data, b"SERVER_ERROR out of memory reading request\r\n")
                    refused += 1
                else:
                    self.assertEqual(data, b"")
            self.assertGreater(refused, 0)
            self.assertEqual(stat(server, "conn_mem_refused"), refused)
            # the other clients are untouched; when the uploads go away,
            # the memory is back and a large value is stored again
            ok.send("get small\r\n")
            self.assertEqual(ok.recv_until(b"END\r\n"), b"VALUE small 0 2\r\nok\r\nEND\r\n")
            for c in uploads:
                c.close()
            self.assertTrue(wait_until(lambda: server.stats()["conn_input_bytes"] == "0", 10))
            value = b"y" * 3000000
            # (1 MB: the key may live on the other shard, whose reply is a
            # copy, and jemalloc keeps the address space it had, which
            # RLIMIT_AS counts)
            big = value[:1000000]
            with server.conn(timeout=30) as c:
                c.send(b"set big 0 0 %d\r\n%s\r\nget big\r\n" % (len(big), big))
                self.assertEqual(c.recv_until(b"\r\n"), b"STORED\r\n")
                self.assertEqual(c.recv_until(b"END\r\n"),
                                 b"VALUE big 0 %d\r\n%s\r\nEND\r\n" % (len(big), big))
            ok.close()

    def test_issue15_allocation_fails_for_connection_memory(self):
        # No budget of ours this time (--conn-memory 0): the kernel refuses
        # the memory. The server runs under an address-space limit (RLIMIT_AS)
        # of what it maps once started and warmed, plus 48 MiB; uploads of
        # 3 MB each then grow their input buffers until an allocation fails.
        if harness.sanitizer_build():  # a sanitizer maps terabytes of shadow
            self.skipTest("RLIMIT_AS cannot hold a sanitizer build")
        flags = ["-t", "2", "-I", "4m", "--conn-memory", "0"]
        value = b"w" * 3000000

        def warm(server):
            with server.conn(timeout=30) as c:
                c.send(b"set warm 0 0 %d\r\n%s\r\n" % (len(value), value))
                self.assertEqual(c.recv_until(b"\r\n"), b"STORED\r\n")

        with MetricsServer(flags) as server:
            warm(server)
            with open("/proc/%d/status" % server.pid) as f:
                vm_kb = int([l for l in f if l.startswith("VmPeak:")][0].split()[1])
        limit = vm_kb * 1024 + (48 << 20)
        with AddressSpaceServer(limit, flags) as server:
            warm(server)
            ok = server.conn()
            ok.send("set small 0 0 2\r\nok\r\n")
            self.assertEqual(ok.recv_until(b"\r\n"), b"STORED\r\n")
            uploads = []
            for _ in range(64):  # 192 MB asked at most: far past the 48 MiB
                c = server.conn(timeout=10)
                uploads.append(c)
                try:
                    c.send(b"set up 0 0 %d\r\n" % len(value) + value[:2900000])  # then wait
                except OSError:
                    pass
                # each upload held whole (a 4 MiB input buffer), or refused
                n = len(uploads)
                self.assertTrue(wait_until(lambda: stat(server, "malloc_fails") > 0 or
                                           stat(server, "conn_input_bytes") >= n * (4 << 20), 30))
                if stat(server, "malloc_fails") > 0:
                    break
            fails = stat(server, "malloc_fails")
            self.assertGreater(fails, 0, "no allocation failed under RLIMIT_AS %d" % limit)
            # the upload that found no memory: memcached's answer
            # (try_read_network), then the close; the earlier ones wait on
            self.assertEqual(uploads[-1].recv_until_close(timeout=30),
                             (b"SERVER_ERROR out of memory reading request\r\n", True))
            for c in uploads[:-1]:
                self.assertEqual(c.recv_until_close(timeout=0.2), (b"", False))
            self.assertEqual(stat(server, "conn_mem_refused"), 0)  # not our budget: the kernel's
            metrics = samples(server.scrape())
            self.assertEqual(sum(v for k, v in metrics.items() if k.startswith("corecache_malloc_fails")), fails)
            # the other clients are untouched; with the uploads gone, the
            # memory is back and a large value is stored again
            ok.send("get small\r\n")
            self.assertEqual(ok.recv_until(b"END\r\n"), b"VALUE small 0 2\r\nok\r\nEND\r\n")
            for c in uploads:
                c.close()
            self.assertTrue(wait_until(lambda: server.stats()["conn_input_bytes"] == "0", 10))
            # (1 MB: the key may live on the other shard, whose reply is a
            # copy, and jemalloc keeps the address space it had, which
            # RLIMIT_AS counts)
            big = value[:1000000]
            with server.conn(timeout=30) as c:
                c.send(b"set big 0 0 %d\r\n%s\r\nget big\r\n" % (len(big), big))
                self.assertEqual(c.recv_until(b"\r\n"), b"STORED\r\n")
                self.assertEqual(c.recv_until(b"END\r\n"),
                                 b"VALUE big 0 %d\r\n%s\r\nEND\r\n" % (len(big), big))
            ok.close()


if __name__ == "__main__":
    skip_unless_corecache()
    harness.main()
