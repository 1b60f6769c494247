#!/usr/bin/python3
"""test_metrics_http.py: the Prometheus endpoint as an HTTP server.

  - GET /metrics: 200, the exposition content type, a Content-Length that
    is the body's; keep-alive (two requests on one connection), pipelining
    (two requests in one packet, two responses in order), HEAD (the head
    only), a request sent one byte at a time;
  - every error status: 400 (malformed), 404 (other paths), 405 (other
    methods), 431 (a head over 8 KiB), 505 (HTTP/2.0), each followed by
    the connection closing; memcached's protocol on the metrics port is a
    400;
  - junk on the metrics port (random bytes, unfinished heads, floods of
    errors) while a cache client keeps working: every cache reply right,
    and the cache's request counters count only the cache's requests;
  - --metrics-port listens on every -l address and nowhere without the
    flag; a metrics port in use makes the server exit 1 and say so.

corecache only: against memcached it exits 77 (skipped).
"""

import os
import random
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from metrics_server import MetricsServer, samples, skip_unless_corecache, wait_until  # noqa: E402

GET = b"GET /metrics HTTP/1.1\r\nHost: corecache\r\n\r\n"


class EndpointTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = MetricsServer(["-t", "2"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def check_metrics_response(self, resp):
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(int(resp.headers["content-length"]), len(resp.body))
        text = resp.body.decode()
        self.assertIn("\nmemcached_up 1\n", text)
        self.assertIn("# TYPE corecache_requests_total counter\n", text)
        self.assertTrue(text.endswith("\n"))

    def test_get_keep_alive_two_requests_one_connection(self):
        with self.server.http() as h:
            for _ in range(2):
                h.send(GET)
                resp = h.response()
                self.check_metrics_response(resp)
                self.assertEqual(resp.headers["connection"], "keep-alive")
            self.assertFalse(h.is_closed(timeout=0.3))

    def test_pipelined_requests_answered_in_order(self):
        with self.server.http() as h:
            h.send(GET + b"HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n" + b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
            self.check_metrics_response(h.response())
            head = h.response(head_only=True)
            self.assertEqual(head.status, 200)
            self.assertGreater(int(head.headers["content-length"]), 1000)
            self.assertEqual(h.response().status, 404)
            self.assertTrue(h.is_closed())

    def test_head_has_no_body(self):
        with self.server.http() as h:
            h.send(b"HEAD /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            resp = h.response(head_only=True)
            self.assertEqual(resp.status, 200)
            data, closed = h.recv_until_close()
            self.assertEqual(data, b"")
            self.assertTrue(closed)

    def test_request_sent_one_byte_at_a_time(self):
        with self.server.http() as h:
            h.send_bytewise(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            self.check_metrics_response(h.response())
            self.assertTrue(h.is_closed())

    def test_http_10_closes_after_response(self):
        with self.server.http() as h:
            h.send(b"GET /metrics HTTP/1.0\r\n\r\n")
            resp = h.response()
            self.check_metrics_response(resp)
            self.assertEqual(resp.headers["connection"], "close")
            self.assertTrue(h.is_closed())

    def test_every_error_status_then_close(self):
        big = b"GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 9000 + b"\r\n\r\n"
        cases = [
            (b"GET /metrics\r\n\r\n", 400),
            (b"GET /metrics HTTP/1.1\r\n\r\n", 400),  # no Host
            (b"GET /metrics HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
            (b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd", 400),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # TLS hello-ish
            (b"get foo\r\n\r\n", 400),  # memcached's protocol
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 404),
            (b"GET /metrics/../x HTTP/1.1\r\nHost: a\r\n\r\n", 404),
            (b"PUT /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 405),
            (b"DELETE /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 405),
            (big, 431),
            (b"GET /metrics HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ]
        for request, status in cases:
            with self.subTest(request=request[:40], status=status):
                with self.server.http() as h:
                    h.send(request + GET)  # a request after an error is never answered
                    resp = h.response()
                    self.assertEqual(resp.status, status, resp)
                    self.assertEqual(resp.headers["connection"], "close")
                    if status == 405:
                        self.assertEqual(resp.headers["allow"], "GET, HEAD")
                    data, closed = h.recv_until_close()
                    self.assertTrue(closed, "still open after %d" % status)
                    self.assertEqual(data, b"")

    def test_memcached_text_on_cache_port_unaffected_by_endpoint(self):
        reply = self.server.command(b"set k 0 0 1\r\nv\r\nget k\r\n", terminator=b"END\r\n")
        self.assertEqual(reply, b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n")


class JunkTest(unittest.TestCase):
    """A broken or hostile scraper cannot disturb the cache."""

    def test_junk_on_metrics_port_while_cache_serves(self):
        with MetricsServer(["-t", "2"]) as server:
            stop = threading.Event()
            junk_sent = [0]

            def junk():
                rng = random.Random(5)
                while not stop.is_set():
                    try:
                        with server.http(timeout=2) as h:
                            kind = rng.randrange(4)
                            if kind == 0:
                                h.send(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))
                            elif kind == 1:
                                h.send(b"GET /metrics HTTP/1.1\r\nHost: a\r\nX: " + b"y" * rng.randrange(9000))
                            elif kind == 2:
                                h.send(b"GET /metrics HTTP/1.1\r\nHo")  # unfinished, then gone
                            else:
                                h.send((b"BREW /coffee HTTP/1.1\r\nHost: a\r\n\r\n") * 50)
                            h.recv_idle(idle=0.01, timeout=0.05)
                        junk_sent[0] += 1
                    except OSError:
                        pass

            threads = [threading.Thread(target=junk) for _ in range(2)]
            for t in threads:
                t.start()
            requests = 0
            try:
                deadline = time.monotonic() + 3.0
                with server.conn() as c:
                    i = 0
                    while time.monotonic() < deadline and i < 20000:
                        key = "key%d" % (i % 500)
                        value = "value%d" % i
                        c.send("set %s 0 0 %d\r\n%s\r\nget %s\r\n" % (key, len(value), value, key))
                        want = "STORED\r\nVALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(value), value)
                        self.assertEqual(c.recv_until(b"END\r\n").decode(), want)
                        requests += 2
                        i += 1
            finally:
                stop.set()
                for t in threads:
                    t.join(10)
            self.assertGreater(junk_sent[0], 20, "the junk threads hardly ran")
            self.assertGreater(requests, 200)
            # the endpoint still serves, and counted none of the junk as requests
            body = server.scrape()
            s = samples(body)
            counted = sum(v for k, v in s.items() if k.startswith("corecache_requests_total{"))
            self.assertEqual(counted, requests)
            self.assertEqual(s["memcached_commands_total{command=\"get\",status=\"hit\"}"], requests / 2)


class ListenTest(unittest.TestCase):

    def test_metrics_port_on_every_listen_address(self):
        with MetricsServer(["-t", "2", "-l", "127.0.0.1,127.0.0.2"]) as server:
            for host in ("127.0.0.1", "127.0.0.2"):
                with server.http(host=host) as h:
                    h.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    self.assertEqual(h.response().status, 200, host)

    def test_off_by_default(self):
        with harness.Server(["-t", "2"]) as server:
            conns = server.stats("conns")
            listening = [conns[fd + ":addr"] for fd in {k.split(":")[0] for k in conns}
                         if conns.get(fd + ":state") == "conn_listening"]
            self.assertEqual(len(listening), 2)  # one socket per shard, on the cache port
            for addr in listening:
                self.assertTrue(addr.endswith(":%d" % server.port), addr)

    def test_scrape_answers_when_cache_is_at_its_connection_limit(self):
        with MetricsServer(["-t", "2", "-c", "3"]) as server:
            # the harness's probe connection is closed, and no longer counted
            self.assertTrue(wait_until(lambda: samples(server.scrape())["memcached_current_connections"] == 0, 5))
            clients = [server.conn() for _ in range(3)]
            try:
                for c in clients:  # all three admitted
                    c.send(b"version\r\n")
                    self.assertTrue(c.recv_until(b"\r\n").startswith(b"VERSION"))
                with server.conn() as fourth:
                    self.assertEqual(fourth.recv_until(b"\r\n"), b"ERROR Too many open connections\r\n")
                # scrapers are not cache clients: not refused, not counted
                with server.http() as h:
                    h.send(GET)
                    resp = h.response()
                    self.assertEqual(resp.status, 200)
                    s = samples(resp.body.decode())
                    self.assertEqual(s["memcached_current_connections"], 3)
                    self.assertEqual(s["memcached_connections_rejected_total"], 1)
                    # this one, and perhaps the last scrape's, still closing
                    self.assertIn(sum(v for k, v in s.items() if k.startswith("corecache_http_connections{")),
                                  (1, 2))
            finally:
                for c in clients:
                    c.close()

    def test_metrics_port_in_use_exits_71(self):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        busy = holder.getsockname()[1]
        try:
            port = harness.free_port()
            proc = subprocess.run([harness.SERVER, "-p", str(port), "-l", "127.0.0.1", "--metrics-port",
                                   str(busy)] + harness.user_flags(), stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=10)
            self.assertEqual(proc.returncode, 71, proc.stderr)  # memcached's EX_OSERR
            self.assertIn(b"port %d" % busy, proc.stderr)
        finally:
            holder.close()



class DescribeTest(unittest.TestCase):

    def test_describe_metrics_lists_both_names_and_exits_0(self):
        proc = subprocess.run([harness.SERVER, "--describe-metrics"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=10)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = proc.stdout.decode().splitlines()
        self.assertGreater(len(lines), 100)
        for line in lines:
            self.assertEqual(line.count("\t"), 4, line)
        text = proc.stdout.decode()
        for want in ("\nshard\tcounter\trequests\tcorecache_requests_total{shard}\t",
                     "\nstore\tcounter\tget_hits\tcorecache_get_hits_total{shard}\t",
                     "\nserver\tusec\trusage_user\t-\t",
                     "\nitems\tcounter\titems:<class>:evicted\t-\t",
                     "\nexporter\tcounter\tevictions\tmemcached_items_evicted_total\t",
                     "\nshard\thistogram\t-\tcorecache_request_duration_seconds{shard,le}\t"):
            self.assertIn(want, text)
        # every family a scrape has is listed
        with MetricsServer(["-t", "2"]) as server:
            scraped = {k.split("{")[0] for k in samples(server.scrape())}
        listed = text.replace("{", "\t").split("\t")
        for family in scraped:
            base = family
            for suffix in ("_bucket", "_sum", "_count"):
                if family.startswith("corecache_request_duration_seconds") and family.endswith(suffix):
                    base = family[:-len(suffix)]
            self.assertIn(base, listed, "%s is scraped but not listed" % family)


if __name__ == "__main__":
    skip_unless_corecache()
    harness.main()
