"""metrics_server.py: a server under test with its Prometheus endpoint on.

MetricsServer is harness.Server with `--metrics-port` on a second free
loopback port, chosen again on each start attempt (harness retries a start
whose port was taken meanwhile). http_request() speaks just enough HTTP/1.1
over a raw socket to see exactly what the server sends: status line,
headers, body by Content-Length, and whether the connection was closed.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class MetricsServer(harness.Server):
    def __init__(self, flags=None, **kw):
        super().__init__(flags, **kw)
        self.metrics_port = None
        self._for_port = None

    def argv(self, port):
        if self._for_port != port:
            self.metrics_port = harness.free_port()
            self._for_port = port
        return super().argv(port) + ["--metrics-port", str(self.metrics_port)]

    def http(self, host="127.0.0.1", timeout=5.0):
        return HttpConn(self.metrics_port, host=host, timeout=timeout)

    def scrape(self):
        """GET /metrics on a fresh connection; returns the body (str)."""
        with self.http() as h:
            h.send(b"GET /metrics HTTP/1.1\r\nHost: corecache\r\nConnection: close\r\n\r\n")
            resp = h.response()
        assert resp.status == 200, resp
        return resp.body.decode()


def samples(text):
    """{series: value} of an exposition text ("name{labels}" -> float)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


class Response:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def __repr__(self):
        return "<Response %d %s %r %r>" % (self.status, self.reason, self.headers, self.body[:200])


class HttpConn(harness.Conn):
    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        super().__init__(port, timeout=timeout, host=host)

    def response(self, head_only=False):
        """Reads one response: head, then Content-Length bytes of body."""
        head = self.recv_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        version, status, reason = lines[0].split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                assert name.lower() not in headers, "header %s twice" % name
                headers[name.lower()] = value.strip()
        length = int(headers["content-length"])
        body = b"" if head_only else self.recv_exact(length)
        return Response(int(status), reason, headers, body)


def wait_until(predicate, timeout, interval=0.2):
    """Polls predicate() until it returns a true value or timeout passes;
    returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def skip_unless_corecache():
    if harness.is_memcached():
        harness.skip_process("the metrics endpoint is corecache's (memcached has none)")

