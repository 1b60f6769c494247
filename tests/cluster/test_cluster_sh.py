#!/usr/bin/python3
"""test_cluster_sh.py: deploy/cluster.sh itself, in both of its modes.

Loopback ports always; --netns (one network namespace per node, a client
namespace holding the bridge) when running as root where namespaces can be
made, otherwise that half is skipped with a message (the loopback half still
runs, so the file never passes without testing something).

What it pins: `start` prints exactly the server list and every listed
server answers; `status` exits 0 only with every node up; `stop-node`
stops the one node by its pid and `start-node` brings it back at the same
address; a second `start` is refused; a start that fails (a node the
server refuses to run) undoes itself: no process, namespace or state
left; `stop` leaves nothing behind either; bad arguments fail with a line
that says what was wrong.
"""

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import CLUSTER_SH, harness  # noqa: E402


def run(*args, state, timeout=60):
    proc = subprocess.run([CLUSTER_SH, "--state", state] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def namespaces(prefix):
    """The network namespaces whose names start with prefix (other tests'
    clusters run beside this one: each test names its own)."""
    if shutil.which("ip") is None:
        return set()
    out = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return {line.split()[0] for line in out.stdout.decode().splitlines() if line.startswith(prefix + "-")}


_names = itertools.count()


class ClusterShMixin:
    MODE = None

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="corecache-cluster-sh-")
        self.state = os.path.join(self.tmp.name, "state")
        self.addCleanup(self.tmp.cleanup)
        self.addCleanup(lambda: run("stop", state=self.state))
        self.name = "cct%x-%d" % (os.getpid(), next(_names))

    def start(self, *extra, flags=("-t", "1", "-m", "16")):
        args = ["-n", "3", "--binary", harness.SERVER, "--name", self.name] + list(extra)
        if self.MODE == "netns":
            args.append("--netns")
        return run(*args, "start", "--", *flags, state=self.state)

    def probe(self, server):
        host, port = server.rsplit(":", 1)
        argv = ["bash", "-c", 'exec 3<>"/dev/tcp/$0/$1"; printf "version\\r\\n" >&3; '
                'IFS= read -r l <&3; echo "$l"', host, port]
        if self.MODE == "netns":
            argv = [CLUSTER_SH, "--state", self.state, "exec", "--"] + argv
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
        return out.stdout.decode().strip()

    def pids(self):
        out = []
        for i in range(3):
            with open(os.path.join(self.state, "node%d.pid" % i)) as f:
                out.append(int(f.read()))
        return out

    def test_cluster_start_status_stop_node_restart_stop(self):
        rc, out, err = self.start()
        self.assertEqual(rc, 0, err)
        servers = out.strip().split(",")
        self.assertEqual(len(servers), 3, out)
        self.assertEqual(out.count("\n"), 1, "stdout must carry only the server list")
        if self.MODE == "netns":
            self.assertEqual(servers, ["10.77.0.10:11211", "10.77.0.11:11211", "10.77.0.12:11211"])
            self.assertEqual(namespaces(self.name), {self.name + s for s in ("-c", "-n0", "-n1", "-n2")})
        else:
            self.assertTrue(all(s.startswith("127.0.0.1:") for s in servers))
            self.assertEqual(len(set(servers)), 3)
        for s in servers:
            self.assertTrue(self.probe(s).startswith("VERSION "), s)
        self.assertEqual(run("servers", state=self.state)[1], out)
        rc, status, _ = run("status", state=self.state)
        self.assertEqual(rc, 0)
        self.assertEqual(status.count(" up "), 3, status)

        rc, _, err = self.start()
        self.assertEqual(rc, 1)
        self.assertIn("stop it first", err)

        pids = self.pids()
        self.assertEqual(run("stop-node", "1", state=self.state)[0], 0)
        self.assertTrue(clusterlib.wait_until(lambda: not alive(pids[1]), 5))
        self.assertTrue(alive(pids[0]) and alive(pids[2]))
        rc, status, _ = run("status", state=self.state)
        self.assertEqual(rc, 1)
        self.assertIn("node1 %s down" % servers[1], status)
        self.assertEqual(self.probe(servers[1]), "")
        self.assertTrue(self.probe(servers[0]).startswith("VERSION"))

        rc, _, err = run("start-node", "1", state=self.state)
        self.assertEqual(rc, 0, err)
        self.assertTrue(self.probe(servers[1]).startswith("VERSION"))
        rc, _, err = run("start-node", "1", state=self.state)
        self.assertEqual(rc, 1)
        self.assertIn("is running", err)

        pids = self.pids()
        rc, _, err = run("stop", state=self.state)
        self.assertEqual(rc, 0, err)
        for pid in pids:
            self.assertTrue(clusterlib.wait_until(lambda: not alive(pid), 5), pid)
        self.assertFalse(os.path.exists(self.state))
        self.assertEqual(namespaces(self.name), set())

    def test_cluster_failed_start_leaves_nothing(self):
        # corecache and memcached both refuse -m 0 ... -t 0 is corecache's
        # "one per CPU", so use a flag neither accepts.
        rc, out, err = self.start(flags=("--no-such-flag",))
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("exited at start", err)
        self.assertIn("undoing", err)
        self.assertFalse(os.path.exists(os.path.join(self.state, "cluster.env")))
        self.assertEqual(namespaces(self.name), set())
        rc, _, err = run("status", state=self.state)
        self.assertEqual(rc, 1)
        self.assertIn("no cluster", err)

    def test_cluster_bad_arguments_say_what_is_wrong(self):
        for args, words in ((["-n", "0"], "want 1 to 200"),
                            (["--ports", "1,2"], "want 3 ports"),
                            (["--ports", "1,2,x"], "x is not a port"),
                            (["--subnet", "10.77"], "want A.B.C")):
            rc, out, err = run(*args, "--binary", harness.SERVER, "start", state=self.state)
            self.assertEqual(rc, 1, args)
            self.assertIn(words, err, args)
            self.assertEqual(out, "")
        rc, _, err = run("--bogus", state=self.state)
        self.assertEqual(rc, 2)
        self.assertIn("unknown argument: --bogus", err)


class LoopbackTest(ClusterShMixin, unittest.TestCase):
    MODE = "ports"

    def test_cluster_given_ports_are_used(self):
        ports = [clusterlib.port_free_here() for _ in range(3)]
        rc, out, err = self.start("--ports", ",".join(map(str, ports)))
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), ",".join("127.0.0.1:%d" % p for p in ports))

    def test_cluster_netns_needs_root(self):
        argv = [CLUSTER_SH, "--state", os.path.join(self.tmp.name, "unprivileged"), "--netns",
                "--binary", harness.SERVER, "start"]
        if os.geteuid() == 0:  # ask as nobody
            os.chmod(self.tmp.name, 0o777)
            argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + argv
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("--netns needs root", proc.stderr.decode())


@unittest.skipUnless(clusterlib.netns_possible(), "network namespaces need root and ip(8)")
class NetnsTest(ClusterShMixin, unittest.TestCase):
    MODE = "netns"

    def test_cluster_netns_clients_see_a_private_lan(self):
        rc, _, err = self.start()
        self.assertEqual(rc, 0, err)
        rc, addrs, _ = run("exec", "--", "ip", "-br", "-4", "addr", state=self.state)
        self.assertEqual(rc, 0)
        self.assertIn("10.77.0.1/24", addrs)
        # Nothing was configured where this test runs.
        here = subprocess.run(["ip", "-br", "-4", "addr"], stdout=subprocess.PIPE).stdout.decode()
        self.assertNotIn("10.77.0.", here)


if __name__ == "__main__":
    if not clusterlib.netns_possible():
        sys.stdout.write("note: not root or no ip(8): the --netns half is skipped\n")
    harness.main()
