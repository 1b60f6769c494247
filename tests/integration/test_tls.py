"""test_tls.py: TLS (-Z and memcached's ssl_* suboptions) with real clients.

Certificates are made at test time (tlscerts.py). Clients: pymemcache with
an ssl.SSLContext, `openssl s_client`, and raw ssl sockets. Covered: the
handshake and the cache through it (large values, pipelines, meta
commands), a `notls:` listener beside a TLS one, a client that does not
trust the server's certificate, client certificates required / missing /
from the wrong CA, the minimum version, session resumption with the
session cache, `refresh_certs` and SIGHUP with a changed certificate while
connections keep working under load, a failed reload that keeps the old
certificate, and `stats`/`stats settings` against memcached 1.6.18 -Z
with the same certificates.

Run by hand:
    CORECACHE_SERVER=build/corecache /usr/bin/python3 tests/integration/test_tls.py
"""

import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import tlscerts  # noqa: E402
from harness import MEMCACHED, Server, is_memcached  # noqa: E402

try:
    from pymemcache.client.base import Client
except ImportError:
    Client = None

CERTS = None


def setUpModule():
    global CERTS
    if not tlscerts.have_openssl():
        harness.skip_process("no openssl CLI")
    CERTS = tlscerts.Certs()


def tearDownModule():
    if CERTS is not None:
        CERTS.cleanup()


def tls_flags(extra=""):
    opts = "ssl_chain_cert=%s,ssl_key=%s" % (CERTS.path("server.pem"), CERTS.path("server.key"))
    if extra:
        opts += "," + extra
    return ["-t", "2", "-Z", "-o", opts]


def client_ctx(cert=None, ca="ca.pem", maximum=None):
    ctx = ssl.create_default_context(cafile=CERTS.path(ca))
    if cert is not None:
        ctx.load_cert_chain(CERTS.path(cert + ".pem"), CERTS.path(cert + ".key"))
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


class TlsConn:
    """An ssl socket with bounded reads."""

    def __init__(self, port, ctx, timeout=5.0, session=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def recv_until(self, terminator, timeout=5.0):
        deadline = time.monotonic() + timeout
        while terminator not in self.buf:
            if time.monotonic() > deadline:
                raise AssertionError("timeout waiting for %r; have %r" % (terminator, self.buf[-200:]))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("closed waiting for %r; have %r" % (terminator, self.buf[-200:]))
            self.buf += chunk
        i = self.buf.index(terminator) + len(terminator)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def peer_cert_der(port, ca="ca.pem"):
    with TlsConn(port, client_ctx(ca=ca)) as c:
        return c.sock.getpeercert(binary_form=True)


def tls_stats(port, ctx=None):
    """`stats` over TLS, as a dict."""
    with TlsConn(port, ctx or client_ctx()) as c:
        c.send("stats\r\n")
        raw = c.recv_until(b"END\r\n").decode()
    return dict(line.split(" ", 2)[1:] for line in raw.split("\r\n")
                if line.startswith("STAT ") and len(line.split(" ", 2)) == 3)


def handshake_fails(port, ctx):
    """True when the handshake, or the first exchange after it (TLS 1.3
    reports a refused client certificate there), fails."""
    try:
        with TlsConn(port, ctx, timeout=3) as c:
            c.send("version\r\n")
            c.recv_until(b"\r\n", timeout=3)
    except (ssl.SSLError, ConnectionError, AssertionError, OSError):
        return True
    return False


class TlsBasics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.notls_port = harness.free_port()
        flags = tls_flags()
        if is_memcached():
            flags += ["-l", "notls:127.0.0.1:%d" % cls.notls_port]
        else:
            flags += ["-l", "127.0.0.1,notls:127.0.0.1:%d" % cls.notls_port]
        cls.srv = Server(flags=flags).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_pymemcache_over_tls(self):
        if Client is None:
            self.skipTest("no pymemcache")
        c = Client(("127.0.0.1", self.srv.port), tls_context=client_ctx(), timeout=5)
        self.assertTrue(c.set("tls-key", b"over tls"))
        self.assertEqual(c.get("tls-key"), b"over tls")
        big = os.urandom(700 * 1024)
        self.assertTrue(c.set("tls-big", big))
        self.assertEqual(c.get("tls-big"), big)
        many = {"k%d" % i: ("v%d" % i).encode() * 50 for i in range(200)}
        c.set_many(many)
        self.assertEqual(c.get_many(list(many)), many)
        self.assertEqual(c.incr("tls-n", 1), None)
        c.set("tls-n", "41")
        self.assertEqual(c.incr("tls-n", 1), 42)
        c.close()

    def test_pipeline_and_meta_over_tls(self):
        with TlsConn(self.srv.port, client_ctx()) as c:
            req = b"".join(b"ms p%d 3\r\nabc\r\n" % i for i in range(100))
            req += b"".join(b"mg p%d v\r\n" % i for i in range(100)) + b"mn\r\n"
            c.send(req)
            out = c.recv_until(b"MN\r\n")
            self.assertEqual(out.count(b"HD\r\n"), 100)
            self.assertEqual(out.count(b"VA 3\r\nabc\r\n"), 100)

    def test_notls_listener_stays_plain(self):
        with harness.Conn(self.notls_port) as c:
            c.send("set plain 0 0 2\r\nok\r\nget plain\r\n")
            self.assertEqual(c.recv_until(b"END\r\n"), b"STORED\r\nVALUE plain 0 2\r\nok\r\nEND\r\n")

    def test_plaintext_on_tls_port_is_refused(self):
        with harness.Conn(self.srv.port) as c:
            c.send("get foo\r\n")
            data, closed = c.recv_until_close(timeout=5)
            self.assertTrue(closed)
            self.assertNotIn(b"END", data)

    def test_handshake_error_is_counted(self):
        if is_memcached():
            self.skipTest("memcached counts only errors of its first SSL_accept")

        def errors():
            with harness.Conn(self.notls_port) as c:
                c.send("stats\r\n")
                raw = c.recv_until(b"END\r\n").decode()
            for line in raw.split("\r\n"):
                if line.startswith("STAT ssl_handshake_errors "):
                    return int(line.split()[2])
            raise AssertionError("no ssl_handshake_errors in stats")

        before = errors()
        with harness.Conn(self.srv.port) as c:
            c.send(b"\x16\x03\x01\x00\x05hello")  # a TLS record header, then junk
            c.recv_until_close(timeout=5)
        deadline = time.monotonic() + 5
        while errors() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreater(errors(), before)

    def test_untrusted_server_certificate_is_refused_by_client(self):
        self.assertTrue(handshake_fails(self.srv.port, client_ctx(ca="other-ca.pem")))

    def test_openssl_s_client(self):
        if shutil.which("openssl") is None:
            self.skipTest("no openssl")
        p = subprocess.run(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.srv.port, "-CAfile",
             CERTS.path("ca.pem"), "-verify_return_error", "-servername", "localhost", "-quiet"],
            input=b"version\r\nquit\r\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertIn(b"VERSION ", p.stdout, p.stderr.decode(errors="replace"))
        p = subprocess.run(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.srv.port, "-CAfile",
             CERTS.path("other-ca.pem"), "-verify_return_error", "-quiet"],
            input=b"version\r\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertNotIn(b"VERSION ", p.stdout)
        self.assertNotEqual(p.returncode, 0)

    def test_tls12_and_tls13(self):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = client_ctx()
            ctx.minimum_version = ctx.maximum_version = version
            with TlsConn(self.srv.port, ctx) as c:
                c.send("version\r\n")
                self.assertTrue(c.recv_until(b"\r\n").startswith(b"VERSION "))
                self.assertEqual(c.sock.version(), {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                                    ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version])

    def test_client_closes_mid_request(self):
        for _ in range(20):
            c = TlsConn(self.srv.port, client_ctx())
            c.send("set half 0 0 100\r\nonly part")
            c.close()
        with TlsConn(self.srv.port, client_ctx()) as c:
            c.send("version\r\n")
            self.assertTrue(c.recv_until(b"\r\n").startswith(b"VERSION "))


class TlsClientCertificates(unittest.TestCase):
    def test_required_certificate(self):
        flags = tls_flags("ssl_verify_mode=2,ssl_ca_cert=%s" % CERTS.path("ca.pem"))
        with Server(flags=flags) as srv:
            self.assertTrue(handshake_fails(srv.port, client_ctx()))              # none
            self.assertTrue(handshake_fails(srv.port, client_ctx(cert="rogue")))  # wrong CA
            with TlsConn(srv.port, client_ctx(cert="client")) as c:
                c.send("set k 0 0 1\r\nx\r\nget k\r\n")
                self.assertEqual(c.recv_until(b"END\r\n"), b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n")
            self.assertGreaterEqual(int(tls_stats(srv.port, client_ctx(cert="client"))["ssl_handshake_errors"]), 2)

    def test_requested_certificate_is_optional(self):
        flags = tls_flags("ssl_verify_mode=1,ssl_ca_cert=%s" % CERTS.path("ca.pem"))
        with Server(flags=flags) as srv:
            self.assertFalse(handshake_fails(srv.port, client_ctx()))
            self.assertFalse(handshake_fails(srv.port, client_ctx(cert="client")))
            self.assertTrue(handshake_fails(srv.port, client_ctx(cert="rogue")))

    def test_der_key(self):
        der = CERTS.path("server.der")
        tlscerts.openssl("pkey", "-in", CERTS.path("server.key"), "-outform", "DER", "-out", der)
        os.chmod(der, 0o644)
        flags = ["-t", "2", "-Z", "-o", "ssl_chain_cert=%s,ssl_key=%s,ssl_keyformat=2"
                 % (CERTS.path("server.pem"), der)]
        with Server(flags=flags) as srv:
            self.assertFalse(handshake_fails(srv.port, client_ctx()))

    def test_minimum_version(self):
        with Server(flags=tls_flags("ssl_min_version=3")) as srv:
            self.assertTrue(handshake_fails(srv.port, client_ctx(maximum=ssl.TLSVersion.TLSv1_2)))
            self.assertFalse(handshake_fails(srv.port, client_ctx()))


class TlsSessions(unittest.TestCase):
    def test_session_resumption(self):
        with Server(flags=tls_flags("ssl_session_cache")) as srv:
            ctx = client_ctx(maximum=ssl.TLSVersion.TLSv1_2)
            with TlsConn(srv.port, ctx) as c:
                c.send("version\r\n")
                c.recv_until(b"\r\n")
                session = c.sock.session
                self.assertFalse(c.sock.session_reused)
            with TlsConn(srv.port, ctx, session=session) as c:
                c.send("version\r\n")
                c.recv_until(b"\r\n")
                self.assertTrue(c.sock.session_reused)
            self.assertGreaterEqual(int(tls_stats(srv.port)["ssl_new_sessions"]), 1)

    def test_tls13_resumption(self):
        with Server(flags=tls_flags("ssl_session_cache")) as srv:
            ctx = client_ctx()
            with TlsConn(srv.port, ctx) as c:
                c.send("version\r\n")
                c.recv_until(b"\r\n")  # the tickets arrive after the handshake
                session = c.sock.session
            with TlsConn(srv.port, ctx, session=session) as c:
                c.send("version\r\n")
                c.recv_until(b"\r\n")
                self.assertTrue(c.sock.session_reused)


class TlsReload(unittest.TestCase):
    """The certificate files change; refresh_certs (or SIGHUP) switches new
    connections to the new certificate while open ones keep working."""

    def setUp(self):
        self.cert = CERTS.path("live.pem")
        self.key = CERTS.path("live.key")
        shutil.copy(CERTS.path("server.pem"), self.cert)
        shutil.copy(CERTS.path("server.key"), self.key)
        os.chmod(self.cert, 0o644)
        os.chmod(self.key, 0o644)
        self.srv = Server(flags=["-t", "2", "-Z", "-o",
                                 "ssl_chain_cert=%s,ssl_key=%s" % (self.cert, self.key)]).start()

    def tearDown(self):
        self.srv.stop()

    def command(self, line):
        with TlsConn(self.srv.port, client_ctx()) as c:
            c.send(line)
            return c.recv_until(b"\r\n")

    def load(self, stop, errors, counts, index):
        """One persistent connection doing set/get until stop is set."""
        try:
            with TlsConn(self.srv.port, client_ctx(), timeout=10) as c:
                n = 0
                while not stop.is_set() and n < 200000:
                    c.send("set load%d 0 0 5\r\nhello\r\nget load%d\r\n" % (index, index))
                    out = c.recv_until(b"END\r\n", timeout=10)
                    if out != b"STORED\r\nVALUE load%d 0 5\r\nhello\r\nEND\r\n" % index:
                        errors.append(out)
                        return
                    n += 1
                counts[index] = n
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            errors.append(repr(e))

    def reload_under_load(self, trigger):
        old = peer_cert_der(self.srv.port)
        stop, errors, counts = threading.Event(), [], {}
        threads = [threading.Thread(target=self.load, args=(stop, errors, counts, i)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        CERTS.issue("live", "ca", "localhost", server=True, out_cert=self.cert, out_key=self.key)
        trigger()
        deadline = time.monotonic() + 10
        while peer_cert_der(self.srv.port) == old and time.monotonic() < deadline:
            time.sleep(0.1)
        new = peer_cert_der(self.srv.port)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(len(counts), 4)
        self.assertTrue(all(n > 0 for n in counts.values()), counts)
        self.assertNotEqual(new, old)

    def test_refresh_certs_under_load(self):
        time.sleep(1.1)
        self.reload_under_load(lambda: self.assertEqual(self.command("refresh_certs\r\n"), b"OK\r\n"))
        self.assertLessEqual(int(tls_stats(self.srv.port)["time_since_server_cert_refresh"]), 1)

    def test_sighup_reloads(self):
        if is_memcached():
            self.skipTest("memcached reloads certificates only on refresh_certs")
        self.reload_under_load(lambda: self.srv.send_signal(signal.SIGHUP))

    def test_refresh_certs_noreply(self):
        with TlsConn(self.srv.port, client_ctx()) as c:
            c.send("refresh_certs noreply\r\nversion\r\n")
            self.assertTrue(c.recv_until(b"\r\n").startswith(b"VERSION "))

    def test_failed_reload_keeps_certificate(self):
        old = peer_cert_der(self.srv.port)
        with open(self.cert, "w") as f:
            f.write("not a certificate\n")
        reply = self.command("refresh_certs\r\n")
        self.assertTrue(reply.startswith(b"Error loading the certificate chain: " + self.cert.encode()), reply)
        self.assertEqual(peer_cert_der(self.srv.port), old)


def http_get(port, ctx=None, auth=None, host="127.0.0.1"):
    """GET /metrics; returns (status line, head, body) or raises."""
    raw = socket.create_connection((host, port), timeout=5)
    sock = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
    try:
        head = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        if auth is not None:
            import base64
            head += "Authorization: Basic %s\r\n" % base64.b64encode(auth.encode()).decode()
        sock.sendall((head + "\r\n").encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], head, body


class MetricsEndpoint(unittest.TestCase):
    """--metrics-port under -Z, --metrics-listen and --metrics-auth-file."""

    def setUp(self):
        if is_memcached():
            self.skipTest("memcached has no metrics endpoint")
        self.port = harness.free_port()

    def test_tls_when_the_cache_has_it(self):
        with Server(flags=tls_flags() + ["--metrics-port", str(self.port)]):
            status, _, body = http_get(self.port, client_ctx())
            self.assertEqual(status, b"HTTP/1.1 200 OK")
            self.assertIn(b"memcached_up 1", body)
            with self.assertRaises(AssertionError):
                status, _, _ = http_get(self.port)  # plain HTTP on a TLS port
                self.assertEqual(status, b"HTTP/1.1 200 OK")

    def test_own_address(self):
        with Server(flags=["-t", "2", "--metrics-port", str(self.port), "--metrics-listen", "127.0.0.2"]):
            status, _, _ = http_get(self.port, host="127.0.0.2")
            self.assertEqual(status, b"HTTP/1.1 200 OK")
            with self.assertRaises(OSError):
                http_get(self.port, host="127.0.0.1")

    def test_basic_auth(self):
        users = CERTS.path("metrics-users")
        with open(users, "w") as f:
            f.write("prometheus:scrape-secret\n")
        os.chmod(users, 0o644)
        with Server(flags=["-t", "2", "--metrics-port", str(self.port), "--metrics-auth-file", users]):
            status, head, body = http_get(self.port)
            self.assertEqual(status, b"HTTP/1.1 401 Unauthorized")
            self.assertIn(b"WWW-Authenticate: Basic realm=\"corecache\"", head)
            self.assertNotIn(b"memcached_up", body)
            status, _, _ = http_get(self.port, auth="prometheus:wrong")
            self.assertEqual(status, b"HTTP/1.1 401 Unauthorized")
            status, _, body = http_get(self.port, auth="prometheus:scrape-secret")
            self.assertEqual(status, b"HTTP/1.1 200 OK")
            self.assertIn(b"memcached_up 1", body)


def stat_lines(sock_send, recv_until):
    sock_send("stats\r\n")
    raw = recv_until(b"END\r\n").decode()
    return dict(line.split(" ", 2)[1:] for line in raw.split("\r\n")
                if line.startswith("STAT ") and len(line.split(" ", 2)) == 3)


class RawTls:
    """A TLS 1.3 client over ssl.MemoryBIO, so that a test can change or
    split the records it sends."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        ctx = client_ctx()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.out.read())
                data = self.sock.recv(65536)
                if not data:
                    raise AssertionError("closed during the handshake")
                self.inc.write(data)
        self.sock.sendall(self.out.read())
        self.buf = b""

    def records(self, data):
        """The ciphertext of data, as the client would send it."""
        self.obj.write(data)
        return self.out.read()

    def recv_until(self, terminator, timeout=5.0):
        deadline = time.monotonic() + timeout
        while terminator not in self.buf:
            if time.monotonic() > deadline:
                raise AssertionError("timeout waiting for %r" % terminator)
            try:
                self.buf += self.obj.read(1 << 20)
                continue
            except ssl.SSLWantReadError:
                pass
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("closed waiting for %r" % terminator)
            self.inc.write(data)
        i = self.buf.index(terminator) + len(terminator)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def closed_by_server(self, timeout=5.0):
        """True once the server has closed the socket (EOF or reset)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except (ConnectionError, socket.timeout):
            return False if isinstance(sys.exc_info()[1], socket.timeout) else True
        return True

    def close(self):
        self.sock.close()


class TlsRecordLayer(unittest.TestCase):
    """Issue 13: after a TLS 1.3 handshake corecache seals and opens the
    records itself (io/tls.c's own record layer); TLS 1.2 stays with
    OpenSSL's. stats says which layer the open connections use."""

    @classmethod
    def setUpClass(cls):
        if is_memcached():
            raise unittest.SkipTest("corecache's record layers")
        cls.srv = Server(flags=tls_flags()).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_stats_say_which_layer(self):
        ctx12 = client_ctx(maximum=ssl.TLSVersion.TLSv1_2)
        ctx13 = client_ctx()
        ctx13.minimum_version = ssl.TLSVersion.TLSv1_3
        with TlsConn(self.srv.port, ctx13) as a, TlsConn(self.srv.port, ctx12) as b:
            b.send("version\r\n")
            b.recv_until(b"\r\n")  # b's handshake is done
            deadline = time.monotonic() + 10
            while True:  # the harness's start-up probes may still be closing
                st = stat_lines(a.send, a.recv_until)
                if (st["ssl_record_layer_corecache"], st["ssl_record_layer_openssl"]) == ("1", "1"):
                    break
                self.assertLess(time.monotonic(), deadline, st)
                time.sleep(0.05)
            self.assertEqual(st["ssl_record_layer_kernel"], "0")
        with TlsConn(self.srv.port, ctx13) as a:
            deadline = time.monotonic() + 10
            while stat_lines(a.send, a.recv_until)["ssl_record_layer_openssl"] != "0":
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)

    def test_each_tls13_suite_with_large_values(self):
        if shutil.which("openssl") is None:
            self.skipTest("no openssl")
        value = os.urandom(90 * 1024).hex().encode()[:150 * 1024]
        for suite in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"):
            req = b"set big 0 0 %d\r\n%s\r\nget big\r\nstats\r\nquit\r\n" % (len(value), value)
            p = subprocess.run(
                ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.srv.port, "-CAfile",
                 CERTS.path("ca.pem"), "-tls1_3", "-ciphersuites", suite, "-quiet"],
                input=req, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            self.assertIn(b"STORED\r\nVALUE big 0 %d\r\n%s\r\nEND\r\n" % (len(value), value), p.stdout,
                          suite)
            self.assertIn(b"STAT ssl_record_layer_corecache ", p.stdout, suite)
            self.assertNotIn(b"STAT ssl_record_layer_corecache 0\r\n", p.stdout, suite)

    def test_key_update_both_ways(self):
        """openssl s_client's K (update requested: the server rekeys its
        side too) and k, between requests."""
        if shutil.which("openssl") is None:
            self.skipTest("no openssl")
        p = subprocess.Popen(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.srv.port, "-CAfile",
             CERTS.path("ca.pem"), "-tls1_3", "-crlf", "-msg"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # KEYUPDATE: stderr
        got = b""

        def wait_for(what, count):
            nonlocal got
            deadline = time.monotonic() + 15
            while got.count(what) < count:
                self.assertLess(time.monotonic(), deadline, got[-300:])
                if not select.select([p.stdout], [], [], 0.5)[0]:
                    continue
                chunk = os.read(p.stdout.fileno(), 65536)
                self.assertTrue(chunk, got[-300:])
                got += chunk

        try:
            # each line goes in its own write once the previous answer is
            # back, so s_client reads it alone (its K and k are whole lines)
            p.stdin.write(b"set ku 0 0 2\nok\n")
            p.stdin.flush()
            wait_for(b"STORED", 1)
            for i, command in enumerate((b"K\n", b"k\n", b"K\n")):
                p.stdin.write(command)
                p.stdin.flush()
                wait_for(b"KEYUPDATE", i + 1)
                p.stdin.write(b"get ku\n")
                p.stdin.flush()
                wait_for(b"VALUE ku 0 2\r\nok\r\nEND", i + 1)
            # the server answered each K (update_requested) with a KeyUpdate of its own, not k
            self.assertEqual(got.count(b"<<< TLS 1.3, Handshake [length 0005], KeyUpdate"), 2, got[-2000:])
        finally:
            p.kill()
            p.wait()

    def kernel_tls_stats(self, extra):
        """stats of a server with -o ssl_kernel_tls,<extra> while one TLS 1.3
        connection that moved a 70 KB value both ways is open."""
        with Server(flags=tls_flags("ssl_kernel_tls" + extra)) as srv:
            ctx = client_ctx()
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            with TlsConn(srv.port, ctx) as c:
                value = b"k" * 70000
                c.send(b"set kt 0 0 %d\r\n%s\r\nget kt\r\n" % (len(value), value))
                self.assertEqual(c.recv_until(b"END\r\n"),
                                 b"STORED\r\nVALUE kt 0 %d\r\n%s\r\nEND\r\n" % (len(value), value))
                deadline = time.monotonic() + 10
                while True:  # the harness's start-up probes may still be closing
                    st = stat_lines(c.send, c.recv_until)
                    # (with kTLS: and the receive side follows the transmit side
                    # once the ring's receive has been cycled)
                    if st["ssl_record_layer_openssl"] == "0" and \
                            st["ssl_record_layer_kernel_rx"] == st["ssl_record_layer_kernel"]:
                        break
                    self.assertLess(time.monotonic(), deadline, st)
                    time.sleep(0.05)
                # and requests after the stats (on kTLS: after both hand-overs)
                c.send(b"get kt\r\n")
                self.assertEqual(c.recv_until(b"END\r\n"), b"VALUE kt 0 %d\r\n%s\r\nEND\r\n" % (len(value), value))
        return st

    def test_kernel_tls_detected_or_fallback(self):
        """-o ssl_kernel_tls: where the kernel has kTLS (TCP_ULP "tls") both
        directions of the record layer go to it after the handshake
        (transmit: _kernel, receive: _kernel_rx); where it has not (this
        project's machines), stats say so and the own layer serves both."""
        st = self.kernel_tls_stats("")
        if st["ssl_kernel_tls_available"] == "yes":
            self.assertEqual(st["ssl_record_layer"], "kernel")
            self.assertEqual((st["ssl_record_layer_kernel"], st["ssl_record_layer_corecache"]), ("1", "0"))
            self.assertEqual(st["ssl_record_layer_kernel_rx"], "1")
        else:
            self.assertEqual(st["ssl_kernel_tls_available"], "no")
            self.assertEqual(st["ssl_record_layer"], "user")
            self.assertEqual((st["ssl_record_layer_kernel"], st["ssl_record_layer_corecache"]), ("0", "1"))
            self.assertEqual(st["ssl_record_layer_kernel_rx"], "0")

    def test_kernel_tls_stays_off_on_epoll(self):
        """The epoll backend keeps both directions in corecache's own layer,
        kTLS available or not."""
        st = self.kernel_tls_stats(",io_backend=epoll")
        self.assertEqual((st["ssl_record_layer_kernel"], st["ssl_record_layer_kernel_rx"],
                          st["ssl_record_layer_corecache"]), ("0", "0", "1"))

    def test_records_split_anywhere(self):
        c = RawTls(self.srv.port)
        try:
            wire = c.records(b"set split 0 0 5000\r\n" + b"s" * 5000 + b"\r\n")
            wire += c.records(b"get split\r\n")
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(wire), 7):  # header and tag cut apart too
                c.sock.sendall(wire[i:i + 7])
            self.assertEqual(c.recv_until(b"END\r\n"),
                             b"STORED\r\nVALUE split 0 5000\r\n" + b"s" * 5000 + b"\r\nEND\r\n")
        finally:
            c.close()

    def test_tampered_record_closes_only_that_connection(self):
        good = RawTls(self.srv.port)
        bad = RawTls(self.srv.port)
        try:
            wire = bytearray(bad.records(b"get x\r\n"))
            wire[-3] ^= 1  # inside the tag
            bad.sock.sendall(bytes(wire))
            self.assertTrue(bad.closed_by_server())
            wire = bytearray(good.records(b"version\r\n"))
            good.sock.sendall(bytes(wire))
            self.assertTrue(good.recv_until(b"\r\n").startswith(b"VERSION "))
            junk = RawTls(self.srv.port)
            junk.sock.sendall(b"\x17\x03\x03\xff\xff" + b"\0" * 64)  # longer than a record may be
            self.assertTrue(junk.closed_by_server())
            junk.close()
        finally:
            good.close()
            bad.close()


class TlsStatsLikeMemcached(unittest.TestCase):
    """stats settings' ssl_* lines and the TLS stats, next to memcached -Z."""

    def test_settings_match_memcached(self):
        if is_memcached() or not os.path.exists(MEMCACHED):
            self.skipTest("needs corecache and %s" % MEMCACHED)
        extra = ("ssl_verify_mode=3,ssl_ca_cert=%s,ssl_min_version=3,ssl_session_cache,ssl_wbuf_size=32,"
                 "ssl_keyformat=1" % CERTS.path("ca.pem"))
        notls = harness.free_port()
        got = {}
        for binary in (None, MEMCACHED):
            flags = tls_flags(extra)
            flags += (["-l", "notls:127.0.0.1:%d" % notls] if binary else
                      ["-l", "127.0.0.1,notls:127.0.0.1:%d" % notls])
            with Server(flags=flags, binary=binary) as srv:
                with harness.Conn(notls) as c:
                    c.send("stats settings\r\nstats\r\n")
                    raw = c.recv_until(b"END\r\n").decode() + c.recv_until(b"END\r\n").decode()
                got[binary] = dict(line.split(" ", 2)[1:] for line in raw.split("\r\n")
                                   if line.startswith("STAT ") and len(line.split(" ", 2)) == 3)
        ours, theirs = got[None], got[MEMCACHED]
        for name in theirs:
            if name in ("ssl_handshake_errors", "ssl_new_sessions"):
                continue  # counters: the harness's probes count differently
            if name.startswith("ssl_") or name in ("auth_enabled_sasl", "auth_enabled_ascii"):
                self.assertEqual(ours.get(name), theirs[name], name)
        for name in ("ssl_handshake_errors", "ssl_new_sessions", "time_since_server_cert_refresh"):
            self.assertIn(name, theirs)
            self.assertIn(name, ours)
        self.assertEqual(ours["ssl_record_layer"], "user")
        self.assertIn(ours["ssl_kernel_tls_available"], ("yes", "no"))


if __name__ == "__main__":
    harness.main()
