"""test_auth.py: ascii authentication (-Y) and binary SASL PLAIN (-S), each
side by side with memcached 1.6.18 given the same users.

-Y: raw sockets replay one conversation (unauthenticated commands, meta
commands, wrong passwords, malformed exchanges, then the cache) against
both servers and compare every reply and the auth stats; pymemcache logs in
with its plain `set`; 2 KiB without a newline closes; SIGHUP rereads the
file on both.

-S: memcached needs Cyrus SASL's sasldb (Debian's sasl2-bin makes it);
corecache reads a user:password file (--sasl-pwdb). Raw binary packets
(list mechanisms, bad and good PLAIN, SASL_STEP, an unknown mechanism,
VERSION and a GET before authentication, which closes) are compared byte
for byte, except the version string; pylibmc logs in with the right and the
wrong password.
"""

import os
import shutil
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
from harness import MEMCACHED, Server, is_memcached  # noqa: E402

try:
    from pymemcache.client.base import Client
except ImportError:
    Client = None
try:
    import pylibmc
except ImportError:
    pylibmc = None

USERS = "alice:secret\nbob:hunter2\n"


def scratch():
    d = tempfile.mkdtemp(prefix="corecache-auth-")
    os.chmod(d, 0o755)
    return d


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)


def servers(flags_for):
    """The server under test, plus memcached when that is a different binary."""
    out = [Server(flags=flags_for(None))]
    if not is_memcached() and os.path.exists(MEMCACHED):
        out.append(Server(flags=flags_for(MEMCACHED), binary=MEMCACHED))
    return out


CONVERSATION = [
    b"get a\r\n",
    b"mg a v\r\n",
    b"ms a 2 T0\r\n",
    b"stats\r\n",
    b"set a 0 0 9\r\nalice bad\r\n",
    b"set a 0 0 5\r\nalice\r\n",
    b"set a 0 0 x\r\n",
    b"set a 0 0 5\r\nalicexy",
    b"set a 0 0 12\r\nalice secret\r\nget k\r\n",  # login and a command in one packet
    b"set k 0 0 2\r\nhi\r\nget k\r\n",
    b"mg k v\r\nms m 1\r\nx\r\nmg m v\r\nmn\r\n",
]


class AsciiAuth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = scratch()
        cls.users = os.path.join(cls.dir, "users")
        write(cls.users, USERS)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def run_conversation(self, srv):
        replies = []
        with srv.conn() as c:
            for req in CONVERSATION:
                c.send(req)
                replies.append(c.recv_idle(idle=0.3, timeout=3))
        return replies

    def test_conversation_like_memcached(self):
        got = []
        for srv in servers(lambda b: ["-t", "2", "-Y", self.users]):
            with srv:
                got.append((self.run_conversation(srv), srv))
        ours = got[0][0]
        self.assertEqual(ours[0], b"CLIENT_ERROR unauthenticated\r\n")
        self.assertEqual(ours[1], b"CLIENT_ERROR unauthenticated\r\n")
        self.assertEqual(ours[4], b"CLIENT_ERROR authentication failure\r\n")
        self.assertEqual(ours[5], b"CLIENT_ERROR bad authentication token format\r\n")
        self.assertEqual(ours[8], b"STORED\r\nEND\r\n")
        self.assertEqual(ours[9], b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n")
        self.assertEqual(ours[10], b"VA 2\r\nhi\r\nHD\r\nVA 1\r\nx\r\nMN\r\n")
        if len(got) > 1:
            for i, req in enumerate(CONVERSATION):
                self.assertEqual(ours[i], got[1][0][i], "reply to %r" % req)

    def test_auth_stats_like_memcached(self):
        counts = []
        for srv in servers(lambda b: ["-t", "2", "-Y", self.users]):
            with srv:
                self.run_conversation(srv)
                with srv.conn() as c:
                    c.send("set a 0 0 11\r\nbob hunter2\r\nstats\r\nstats settings\r\n")
                    raw = c.recv_until(b"STORED\r\n") + c.recv_until(b"END\r\n") + c.recv_until(b"END\r\n")
                stats = dict(line.split(" ", 2)[1:] for line in raw.decode().split("\r\n")
                             if line.startswith("STAT ") and len(line.split(" ", 2)) == 3)
                counts.append({k: stats[k] for k in ("auth_cmds", "auth_errors", "auth_enabled_ascii",
                                                      "auth_enabled_sasl")})
        self.assertEqual(counts[0], {"auth_cmds": "3", "auth_errors": "1",
                                     "auth_enabled_ascii": self.users, "auth_enabled_sasl": "no"})
        if len(counts) > 1:
            self.assertEqual(counts[0], counts[1])

    def test_pymemcache_logs_in(self):
        if Client is None:
            self.skipTest("no pymemcache")
        with Server(flags=["-t", "2", "-Y", self.users]) as srv:
            c = Client(("127.0.0.1", srv.port), timeout=5, default_noreply=False)
            self.assertTrue(c.set("login", "bob hunter2"))  # the login itself
            self.assertTrue(c.set("real", b"value"))
            self.assertEqual(c.get("real"), b"value")
            c.close()
            bad = Client(("127.0.0.1", srv.port), timeout=5, default_noreply=False)
            with self.assertRaises(Exception):
                bad.get("real")  # CLIENT_ERROR unauthenticated
            bad.close()

    def test_junk_without_newline_closes(self):
        for srv in servers(lambda b: ["-t", "2", "-Y", self.users]):
            with srv:
                with srv.conn() as c:
                    c.send(b"g" * 4000)
                    data, closed = c.recv_until_close(timeout=5)
                    self.assertTrue(closed, srv)
                    self.assertEqual(data, b"")

    def test_sighup_rereads_the_file(self):
        path = os.path.join(self.dir, "users-hup")
        for srv in servers(lambda b: ["-t", "2", "-Y", path]):
            write(path, "carol:old\n")
            with srv:
                write(path, "carol:new\n")
                srv.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 5
                reply = b""
                while time.monotonic() < deadline:
                    with srv.conn() as c:
                        c.send("set a 0 0 9\r\ncarol new\r\n")
                        reply = c.recv_until(b"\r\n")
                    if reply == b"STORED\r\n":
                        break
                    time.sleep(0.2)  # memcached rereads on its next clock tick
                self.assertEqual(reply, b"STORED\r\n", srv)
                with srv.conn() as c:
                    c.send("set a 0 0 9\r\ncarol old\r\n")
                    self.assertEqual(c.recv_until(b"\r\n"), b"CLIENT_ERROR authentication failure\r\n")

    def test_bad_files_refuse_to_start(self):
        if is_memcached():
            self.skipTest("corecache's messages")
        bad = os.path.join(self.dir, "bad")
        write(bad, "alice:secret\nnocolon\n")
        for path, message in ((bad, "line 2 is malformed"),
                              (os.path.join(self.dir, "missing"), "cannot open the password file")):
            srv = Server(flags=["-t", "2", "-Y", path])
            with self.assertRaises(harness.ServerStartError) as cm:
                srv.start()
            self.assertIn(message, str(cm.exception))


    def test_every_pipelined_line_is_answered(self):
        """memcached 1.6.18 answers only the last of several unauthenticated
        lines that arrive together (its reply object is overwritten, so the
        answer depends on how TCP split the stream); corecache answers each
        one, as it answers every other pipeline (README, Security)."""
        if is_memcached():
            self.skipTest("corecache's behaviour")
        with Server(flags=["-t", "2", "-Y", self.users]) as srv:
            with srv.conn() as c:
                c.send("get a\r\nset a 0 0 9\r\nalice bad\r\nset a 0 0 12\r\nalice secret\r\nget a\r\n")
                self.assertEqual(c.recv_until(b"END\r\n"),
                                 b"CLIENT_ERROR unauthenticated\r\nCLIENT_ERROR authentication failure\r\n"
                                 b"STORED\r\nEND\r\n")


# -- binary SASL ----------------------------------------------------------

def packet(op, key=b"", body=b"", opaque=0x01020304):
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), 0, 0, 0, len(key) + len(body), opaque, 0) + key + body


def read_packet(sock):
    head = b""
    while len(head) < 24:
        chunk = sock.recv(24 - len(head))
        if not chunk:
            return None
        head += chunk
    blen = struct.unpack(">I", head[8:12])[0]
    body = b""
    while len(body) < blen:
        chunk = sock.recv(blen - len(body))
        if not chunk:
            break
        body += chunk
    return head + body


def status(pkt):
    return struct.unpack(">H", pkt[6:8])[0]


SASL_LIST, SASL_AUTH, SASL_STEP = 0x20, 0x21, 0x22


class SaslAuth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = scratch()
        cls.pwdb = os.path.join(cls.dir, "pwdb")
        write(cls.pwdb, USERS)
        # memcached: Cyrus SASL with a sasldb holding the same users
        cls.memcached_env = None
        if shutil.which("saslpasswd2") and os.path.exists(MEMCACHED):
            sasldb = os.path.join(cls.dir, "sasldb2")
            for line in USERS.split():
                user, pw = line.split(":", 1)
                subprocess.run(["saslpasswd2", "-p", "-a", "memcached", "-c", "-f", sasldb, user],
                               input=pw.encode(), check=True, timeout=30)
            os.chmod(sasldb, 0o644)
            write(os.path.join(cls.dir, "memcached.conf"), "mech_list: plain\nsasldb_path: %s\n" % sasldb)
            cls.memcached_env = {"SASL_CONF_PATH": cls.dir}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def server(self, binary=None):
        if (binary or harness.SERVER) == MEMCACHED or is_memcached(binary):
            if self.memcached_env is None:
                self.skipTest("memcached -S needs saslpasswd2 (Debian's sasl2-bin)")
            return Server(flags=["-t", "2", "-S"], binary=binary, env=self.memcached_env)
        return Server(flags=["-t", "2", "-S", "--sasl-pwdb", self.pwdb], binary=binary)

    def exchange(self, srv):
        """The raw conversation; returns the replies (None: closed)."""
        out = []
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        try:
            for req in (packet(SASL_LIST), packet(SASL_AUTH, b"PLAIN", b"\0alice\0wrong"),
                        packet(SASL_STEP, b"PLAIN", b"\0alice\0secret"),
                        packet(SASL_AUTH, b"CRAM-MD5", b""),
                        packet(SASL_AUTH, b"PLAIN", b"\0alice\0secret"),
                        packet(0x01, b"k", b"v", opaque=9)[:0] +  # a SET with extras:
                        struct.pack(">BBHBBHIIQ", 0x80, 0x01, 1, 8, 0, 0, 10, 9, 0) + b"\0" * 8 + b"kv",
                        packet(0x00, b"k")):
                s.sendall(req)
                out.append(read_packet(s))
        finally:
            s.close()
        return out

    def test_sasl_exchange_like_memcached(self):
        results = []
        for srv in [self.server()] + ([self.server(MEMCACHED)] if not is_memcached() and
                                      self.memcached_env else []):
            with srv:
                results.append(self.exchange(srv))
        ours = results[0]
        self.assertEqual(status(ours[0]), 0)
        self.assertIn(b"PLAIN", ours[0][24:])
        self.assertEqual((status(ours[1]), ours[1][24:]), (0x20, b"Auth failure."))
        self.assertEqual(status(ours[2]), 0x20)
        self.assertEqual(status(ours[3]), 0x20)
        self.assertEqual((status(ours[4]), ours[4][24:]), (0, b"Authenticated"))
        self.assertEqual(status(ours[5]), 0)  # SET after login
        self.assertEqual(ours[6][24 + 4:], b"v")  # GET: flags, then the value
        if len(results) > 1:
            self.assertEqual(ours[1:5], results[1][1:5])
            self.assertEqual(ours[0][:6], results[1][0][:6])
            cas = slice(16, 24)  # CAS values are each server's own
            self.assertEqual(ours[6][:16] + ours[6][24:], results[1][6][:16] + results[1][6][24:])
            del cas

    def test_unauthenticated_command_closes(self):
        for srv in [self.server()] + ([self.server(MEMCACHED)] if not is_memcached() and
                                      self.memcached_env else []):
            with srv:
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                s.sendall(packet(0x0b))  # VERSION is allowed
                self.assertEqual(status(read_packet(s)), 0)
                s.sendall(packet(0x00, b"k"))
                pkt = read_packet(s)
                self.assertEqual((status(pkt), pkt[24:]), (0x20, b"Auth failure."), srv)
                self.assertIsNone(read_packet(s), srv)  # closed
                s.close()

    def test_ascii_client_is_refused(self):
        srv = self.server()
        with srv:
            with srv.conn() as c:
                c.send("get %s\r\n" % ("k" * 40))  # a binary header's worth of bytes
                data, closed = c.recv_until_close(timeout=5)
                self.assertTrue(closed)
                self.assertNotIn(b"END", data)

    def test_pylibmc(self):
        if pylibmc is None or not pylibmc.support_sasl:
            self.skipTest("no pylibmc with SASL")
        with self.server() as srv:
            c = pylibmc.Client(["127.0.0.1:%d" % srv.port], binary=True, username="bob", password="hunter2")
            c.set("pk", "pv")
            self.assertEqual(c.get("pk"), "pv")
            c.disconnect_all()
            bad = pylibmc.Client(["127.0.0.1:%d" % srv.port], binary=True, username="bob", password="nope")
            with self.assertRaises(pylibmc.Error):
                bad.set("pk", "x")
            c = pylibmc.Client(["127.0.0.1:%d" % srv.port], binary=True, username="alice", password="secret")
            self.assertEqual(c.get("pk"), "pv")

    def test_env_password_file_and_errors(self):
        if is_memcached():
            self.skipTest("corecache's options")
        with Server(flags=["-t", "2", "-S"], env={"MEMCACHED_SASL_PWDB": self.pwdb}) as srv:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(packet(SASL_AUTH, b"PLAIN", b"\0bob\0hunter2"))
            self.assertEqual(read_packet(s)[24:], b"Authenticated")
            s.close()
        env = dict(os.environ)
        env.pop("MEMCACHED_SASL_PWDB", None)
        srv = Server(flags=["-t", "2", "-S"])
        srv.env = {"MEMCACHED_SASL_PWDB": ""}
        with self.assertRaises(harness.ServerStartError):
            Server(flags=["-t", "2", "-S", "-B", "ascii", "--sasl-pwdb", self.pwdb]).start()


if __name__ == "__main__":
    harness.main()
