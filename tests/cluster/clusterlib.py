"""clusterlib.py: a 3-node cluster for the client tests, and the rings the
clients are expected to build over it.

Every test in tests/cluster/ starts its own cluster with deploy/cluster.sh,
the command operators use, so that command is tested too:

  - As root (and where network namespaces can be made) the cluster is
    `cluster.sh --netns`: each node is its own host, 10.77.0.10-12 port
    11211, on a bridge inside a client namespace that this process then
    enters (setns on its main thread before any thread or socket exists;
    threads and child processes inherit it). All test traffic stays inside
    namespaces the test created, and `stop` deletes them.
  - Otherwise the nodes listen on free 127.0.0.1 ports.
  CORECACHE_CLUSTER_MODE=ports|netns forces one.

A node is stopped by the pid cluster.sh recorded for it (SIGTERM), frozen
with SIGSTOP (the case where a client's timeouts are what stops it from
hanging), and restarted empty at the same address.

The ring models are independent re-implementations of what each client
computes (libketama's MD5 continuum as libmemcached and twemproxy build it,
from deploy/ring_balance.py; pymemcache's own RendezvousHash is imported). A test checks that
every key sits on exactly the node the model names, so a spread figure is
the ring's, not an accident of the key set, and the failover assertions can
name the keys that must be lost.
"""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CLUSTER_SH = os.path.join(REPO, "deploy", "cluster.sh")
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import harness  # noqa: E402

CLONE_NEWNET = 0x40000000


def netns_possible():
    """True when this process may create network namespaces (root, ip(8))."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = "ccprobe%d" % os.getpid()
    ok = subprocess.run(["ip", "netns", "add", name], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return ok


def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns: %s" % os.strerror(err))


class Cluster:
    """N corecache nodes started by deploy/cluster.sh."""

    def __init__(self, nodes=3, flags=("-t", "1", "-m", "64"), mode=None, warm=False):
        mode = mode or os.environ.get("CORECACHE_CLUSTER_MODE")
        if mode is None:
            mode = "netns" if netns_possible() else "ports"
        self.mode = mode
        self.nodes = nodes
        self.flags = list(flags)
        self.warm = warm  # cluster.sh --warm: -e on tmpfs, kept across restarts
        self.tmp = tempfile.mkdtemp(prefix="corecache-cluster-")
        self.state = os.path.join(self.tmp, "state")
        self.servers = []  # "host:port" strings, node order
        self._home_ns = None

    # -- lifecycle ---------------------------------------------------------

    def sh(self, *args, check=True, timeout=60):
        argv = [CLUSTER_SH, "--state", self.state] + list(args)
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)
        out, err = proc.stdout.decode(), proc.stderr.decode()
        if check and proc.returncode != 0:
            raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(argv), proc.returncode, out, err))
        return proc.returncode, out, err

    def start(self):
        args = ["-n", str(self.nodes), "--binary", harness.SERVER]
        if self.mode == "netns":
            args.append("--netns")
        if self.warm:
            args.append("--warm")
        _, out, err = self.sh(*args, "start", "--", *self.flags)
        sys.stdout.write(err)
        self.servers = out.strip().split(",")
        assert len(self.servers) == self.nodes, out
        if self.mode == "netns":
            self._enter_client_ns()
        sys.stdout.write("cluster (%s): %s\n" % (self.mode, ",".join(self.servers)))
        sys.stdout.flush()
        return self

    def _env(self):
        env = {}
        with open(os.path.join(self.state, "cluster.env")) as f:
            for line in f:
                if "=" in line and not line.startswith("node_flags"):
                    k, v = line.strip().split("=", 1)
                    env[k] = v.strip("'\"")
        return env

    def _enter_client_ns(self):
        name = self._env()["tag"] + "-c"
        self._home_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/" + name, os.O_RDONLY)
        try:
            _setns(fd)
        finally:
            os.close(fd)

    def stop(self):
        if self._home_ns is not None:
            _setns(self._home_ns)
            os.close(self._home_ns)
            self._home_ns = None
        if os.path.exists(os.path.join(self.state, "cluster.env")):
            for i in range(self.nodes):  # a frozen node must be able to take SIGTERM
                self.thaw(i)
            self.sh("stop")
        try:
            os.rmdir(self.tmp)
        except OSError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- nodes -------------------------------------------------------------

    def addr(self, i):
        host, port = self.servers[i].rsplit(":", 1)
        return host, int(port)

    def pid(self, i):
        with open(os.path.join(self.state, "node%d.pid" % i)) as f:
            return int(f.read())

    def stop_node(self, i):
        self.sh("stop-node", str(i))

    def start_node(self, i):
        self.sh("start-node", str(i))

    def freeze(self, i):
        """SIGSTOP node i: it accepts (the kernel does) but never answers.

        kill() returns before the signal reaches every thread: a shard
        still running on the other core could answer one more request.
        Return only once every thread of the node reads as stopped."""
        pid = self.pid(i)
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if all(state in ("T", "t", "Z", "X") for state in thread_states(pid)):
                return
            time.sleep(0.005)
        raise AssertionError("node %d (pid %d) did not stop within 5 s" % (i, pid))

    def thaw(self, i):
        try:
            os.kill(self.pid(i), signal.SIGCONT)
        except (OSError, ValueError):
            pass

    def conn(self, i, timeout=5.0):
        host, port = self.addr(i)
        return harness.Conn(port, timeout=timeout, host=host)

    def stats(self, i):
        with self.conn(i) as c:
            c.send(b"stats\r\n")
            raw = c.recv_until(b"END\r\n").decode()
        out = {}
        for line in raw.split("\r\n"):
            if line.startswith("STAT "):
                _, k, v = line.split(" ", 2)
                out[k] = v
        return out

    def curr_items(self):
        return [int(self.stats(i)["curr_items"]) for i in range(self.nodes)]

    def flush_all(self):
        for i in range(self.nodes):
            with self.conn(i) as c:
                c.send(b"flush_all\r\n")
                assert c.recv_until(b"\r\n") == b"OK\r\n"

    def holders(self, keys, chunk=200, skip=()):
        """For each node, the set of `keys` it holds (asked directly); an
        empty set for the nodes in `skip` (down)."""
        out = []
        for i in range(self.nodes):
            held = set()
            if i in skip:
                out.append(held)
                continue
            with self.conn(i, timeout=10) as c:
                for k in range(0, len(keys), chunk):
                    part = keys[k:k + chunk]
                    c.send(("get %s\r\n" % " ".join(part)).encode())
                    raw = c.recv_until(b"END\r\n")
                    for line in raw.split(b"\r\n"):
                        if line.startswith(b"VALUE "):
                            held.add(line.split(b" ")[1].decode())
            out.append(held)
        return out


# -- rings ---------------------------------------------------------------------
# The libketama model is deploy/ring_balance.py's (the operators' tool), so
# these tests also check the tool against the real clients.

sys.path.insert(0, os.path.join(REPO, "deploy"))
from ring_balance import (KetamaRing, ketama_name, md5_32, one_at_a_time,  # noqa: E402,F401
                          twemproxy_fnv1a_64)


# -- README snippets -------------------------------------------------------------

def readme_snippet(name):
    """The code block after `<!-- snippet: NAME -->` in README.md: the tests
    run the client configurations the README shows, not copies of them."""
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    marker = "<!-- snippet: %s -->" % name
    at = text.find(marker)
    if at < 0:
        raise AssertionError("README.md has no snippet %r" % name)
    start = text.index("\n", text.index("```", at)) + 1
    return text[start:text.index("\n```", start) + 1]


# -- assertions ----------------------------------------------------------------

def spread(counts):
    """Each count's deviation from an even split, as a fraction (+0.03 = 3% over)."""
    even = sum(counts) / len(counts)
    return [c / even - 1 for c in counts]


def fmt_spread(counts):
    return "%s (%s)" % (counts, ", ".join("%+.1f%%" % (100 * d) for d in spread(counts)))


def check_ring_spread(test, cluster, counts, ring):
    """A ketama client's spread: the observed counts match the ring's shares
    up to sampling error (4.5 sigma), and on the fixed --netns layout the
    ring itself is within 5% of even (a property of those addresses: see
    deploy/ring_balance.py --random)."""
    total = sum(counts)
    shares = ring.shares()
    log("ring shares: %s; observed: %s",
        ", ".join("%+.1f%%" % (100 * d) for d in spread(shares)), fmt_spread(counts))
    for c, p in zip(counts, shares):
        sigma = (total * p * (1 - p)) ** 0.5
        test.assertLessEqual(abs(c - total * p), 4.5 * sigma, "count %d vs ring share %.4f" % (c, p))
    if cluster.mode == "netns":
        for d in spread(shares):
            test.assertLessEqual(abs(d), 0.05, "the ring over 10.77.0.10-12 is documented within 5%")


def thread_states(pid):
    """The scheduler state letter of every thread of pid (R, S, T, ...)."""
    states = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        except FileNotFoundError:
            pass
    return states


def timed(fn, *args, **kwargs):
    t0 = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - t0


def wait_until(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def log(fmt, *args):
    sys.stdout.write((fmt % args if args else fmt) + "\n")
    sys.stdout.flush()


def port_free_here():
    """A TCP port free on 127.0.0.1 of the namespace this process is in."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
