#!/usr/bin/python3
"""test_haproxy.py: HAProxy (Debian's haproxy) in TCP mode in front of two
servers, health-checked with memcached's `version` command:

    option tcp-check
    tcp-check send "version\\r\\n"
    tcp-check expect rstring ^VERSION\\ [0-9]+\\.[0-9]+\\.[0-9]+\\r$

the configuration HAProxy users write for memcached (one active server, one
backup). The test reads HAProxy's own view of the servers through its stats
socket (a unix socket in a temporary directory): both servers UP; a cache
client through HAProxy reaches the active one; after the active one stops,
HAProxy marks it DOWN and traffic goes to the backup; a third "server" that
answers the check with ERROR is never UP, which proves the check is read.
Run with corecache servers and with memcached 1.6.18 servers.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib  # noqa: E402
from clientlib import harness  # noqa: E402

HAPROXY = clientlib.need("haproxy", "haproxy")

CONFIG = """
global
    maxconn 200
    stats socket {sock} mode 600 level admin
defaults
    mode tcp
    timeout connect 1s
    timeout client 10s
    timeout server 10s
frontend cache
    bind 127.0.0.1:{port}
    default_backend memcached
backend memcached
    option tcp-check
    tcp-check connect
    tcp-check send "version\\r\\n"
    tcp-check expect rstring ^VERSION\\ [0-9]+\\.[0-9]+\\.[0-9]+\\r$
    default-server inter 200ms fall 2 rise 1
    server active 127.0.0.1:{a} check
    server backup 127.0.0.1:{b} check backup
    server liar 127.0.0.1:{c} check backup
"""


class Liar:
    """A TCP listener that answers every line with ERROR (not a cache)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]

    def serve_pending(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(0.5)
            try:
                if conn.recv(100):
                    conn.sendall(b"ERROR\r\n")
            except OSError:
                pass


class HaproxyTest(unittest.TestCase):

    def server_states(self, sock_path):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(sock_path)
            s.sendall(b"show stat\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == "memcached" and row.get("svname") not in ("BACKEND", "FRONTEND"):
                out[row["svname"]] = row["status"]
        return out

    def wait_states(self, sock_path, liar, want, timeout=10):
        deadline = time.monotonic() + timeout
        states = {}
        while time.monotonic() < deadline:
            liar.serve_pending()
            states = self.server_states(sock_path)
            if all(states.get(k, "").startswith(v) for k, v in want.items()):
                return states
        self.fail("HAProxy states %s, want %s" % (states, want))

    def run_on(self, binary, name):
        active, backup = clientlib.cluster(2, binary=binary, name=name)
        liar = Liar()
        tmp = tempfile.mkdtemp(prefix="corecache-haproxy-")
        sock_path = os.path.join(tmp, "stats.sock")
        port = harness.free_port()
        cfg = os.path.join(tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(CONFIG.format(sock=sock_path, port=port, a=active.port, b=backup.port, c=liar.port))
        proc = subprocess.Popen([HAPROXY, "-f", cfg, "-db"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(sock_path) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.wait_states(sock_path, liar, {"active": "UP", "backup": "UP", "liar": "DOWN"})
            with harness.Conn(port) as c:
                c.send(b"set via_haproxy 0 0 5\r\nhello\r\nget via_haproxy\r\nversion\r\n")
                reply = c.recv_until(b"VERSION 1.6.18\r\n")
                self.assertEqual(reply, b"STORED\r\nVALUE via_haproxy 0 5\r\nhello\r\nEND\r\nVERSION 1.6.18\r\n")
            self.assertEqual(active.command(b"get via_haproxy\r\n", terminator=b"END\r\n"),
                             b"VALUE via_haproxy 0 5\r\nhello\r\nEND\r\n")
            active.stop()
            self.wait_states(sock_path, liar, {"active": "DOWN", "backup": "UP", "liar": "DOWN"})
            with harness.Conn(port) as c:
                c.send(b"set after_failover 0 0 2\r\nok\r\nget after_failover\r\n")
                self.assertEqual(c.recv_until(b"END\r\n"),
                                 b"STORED\r\nVALUE after_failover 0 2\r\nok\r\nEND\r\n")
            self.assertEqual(backup.command(b"get after_failover\r\n", terminator=b"END\r\n"),
                             b"VALUE after_failover 0 2\r\nok\r\nEND\r\n")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                out = proc.communicate(timeout=10)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                out = proc.communicate()[0]
            sys.stdout.write(out.decode(errors="replace")[-2000:])
            liar.sock.close()
            backup.stop()
            if active.running():
                active.stop()

    def test_haproxy_version_check_on_corecache(self):
        self.run_on(None, "corecache")

    def test_haproxy_version_check_on_memcached(self):
        self.run_on(clientlib.MEMCACHED, "memcached")


if __name__ == "__main__":
    harness.main()
