#!/usr/bin/python3
"""test_container.py: deploy/container/build.sh's image, run as users run it.

build.sh makes a Debian 12 root file system with mmdebstrap (from apt's
configured mirrors, no base image pulled) holding corecache, its run-time
libraries, a non-root user and an entry point, and imports it with podman.
Then, where this machine can run containers (podman run works):

    podman run -d -p 127.0.0.1:PORT:11211 corecache
    podman run -d --seccomp-policy=image -p 127.0.0.1:PORT:11211 corecache -m 32 -t 1 -c 64

must serve memcached's protocol on PORT, run as user corecache (not root),
answer VERSION 1.6.18, and take memcached's flags (checked in `stats
settings`). The first is podman's default: its seccomp profile refuses
io_uring, so corecache serves through its epoll backend and says so in the
container's log (issue 16); the second applies the image's own profile
(podman's default plus io_uring; see build.sh), and io_uring runs. Where it cannot, the same root file system is tested with a
plain chroot instead (the entry point run as user corecache, listening on
127.0.0.1 because a chroot shares the host's network), and the output says
so. The image build downloads Debian packages: this test is slow and has
its own timeout. Skips (77) without mmdebstrap or without root.
"""

import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib  # noqa: E402
from deploylib import harness  # noqa: E402

BUILD_SH = os.path.join(deploylib.REPO, "deploy", "container", "build.sh")
OUT = os.environ.get("CORECACHE_CONTAINER_OUT") or os.path.join(deploylib.REPO, "build-container")
TAG = "localhost/corecache-test:latest"

if os.geteuid() != 0:
    harness.skip_process("needs root (mmdebstrap, chroot, podman)")
if shutil.which("mmdebstrap") is None:
    harness.skip_process("mmdebstrap not found (apt-get install mmdebstrap)")


def talk(port, data, until, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(data)
                buf = b""
                while not buf.endswith(until):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                if buf.endswith(until):
                    return buf
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("no reply ending %r on port %d" % (until, port))
        time.sleep(0.2)


def stats(port, group=b""):
    raw = talk(port, b"stats " + group + b"\r\n", b"END\r\n")
    out = {}
    for line in raw.decode().split("\r\n"):
        if line.startswith("STAT "):
            _, name, value = line.split(" ", 2)
            out[name] = value
    return out


def host_has_io_uring():
    """kernel.io_uring_disabled is 0 (or absent: a kernel before 6.6)."""
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            return f.read().strip() == "0"
    except OSError:
        return True


def podman_ways(tmp):
    """podman command prefixes to try, in order: podman as installed; then
    runc without default rlimits, for hosts where crun cannot set rlimits or
    drive hybrid cgroups (this project's sandbox)."""
    conf = os.path.join(tmp, "containers.conf")
    with open(conf, "w") as f:
        f.write("[containers]\ndefault_ulimits = []\n")
    ways = [([], None)]
    if shutil.which("runc"):
        ways.append((["--runtime", "runc"], dict(os.environ, CONTAINERS_CONF=conf)))
    return ways


def podman_works(tmp):
    """(podman argv prefix, env) that can run the image, or (None, why)."""
    if shutil.which("podman") is None:
        return None, "podman not installed"
    why = ""
    for extra, env in podman_ways(tmp):
        cmd = ["podman"] + extra + ["run", "--rm", "--network", "none", TAG, "-V"]
        code, out, err = deploylib.run(cmd, timeout=120, env=env)
        if code == 0 and "corecache" in out:
            return (["podman"] + extra, env), None
        why += "%s: %s\n" % (" ".join(cmd[:3]), (out + err).strip()[-300:])
    return None, why


class ContainerTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        args = ["bash", BUILD_SH, "--out", OUT, "--tag", TAG]
        if shutil.which("podman") is None and shutil.which("buildah") is None:
            args.append("--rootfs-only")
        code, out, err = deploylib.run(args, timeout=1500)
        sys.stdout.write(out + err[-3000:])
        if code != 0:
            raise AssertionError("build.sh failed (%d):\n%s" % (code, (out + err)[-3000:]))
        cls.rootfs_tar = os.path.join(OUT, "rootfs.tar")

    @classmethod
    def tearDownClass(cls):
        # the image this test built (by its own tag), so runs do not pile up images
        if shutil.which("podman"):
            deploylib.run(["podman", "rmi", "-f", TAG], timeout=120)

    def test_rootfs_holds_corecache_and_its_user(self):
        with tarfile.open(self.rootfs_tar) as tar:
            names = set(n.lstrip("./") for n in tar.getnames())
            self.assertIn("usr/bin/corecache", names)
            self.assertIn("usr/local/bin/corecache-entrypoint", names)
            passwd = tar.extractfile(tar.getmember("./etc/passwd")).read().decode()
        self.assertIn("corecache:x:11211:11211:", passwd)

    def test_image_serves_as_non_root_with_memcached_flags(self):
        tmp = tempfile.mkdtemp(prefix="corecache-podman-")
        way, why = podman_works(tmp)
        if way is None:
            sys.stdout.write("podman cannot run containers here:\n%s-> testing the rootfs with chroot\n" % why)
            return self.chroot_run()
        podman, env = way
        sys.stdout.write("containers run here with: %s\n" % " ".join(podman))
        started = []
        run = podman + ["run", "-d"]
        try:
            # as a user types it: podman's default seccomp profile
            port = harness.free_port()
            code, out, err = deploylib.run(run + ["-p", "127.0.0.1:%d:11211" % port, TAG], env=env)
            self.assertEqual(code, 0, err)
            started.append(out.strip())
            self.assertEqual(talk(port, b"version\r\n", b"\r\n"), b"VERSION 1.6.18\r\n")
            self.assertEqual(talk(port, b"set k 0 0 2\r\nhi\r\nget k\r\n", b"END\r\n"),
                             b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n")
            self.assertIn("corecache_version", stats(port))
            backend = stats(port, b"settings")["io_backend"]
            code, out, err = deploylib.run(podman + ["logs", started[0]], env=env)
            sys.stdout.write("podman run (default seccomp profile): io_backend %s\n" % backend)
            # the backend that runs is the one the log names (epoll where the
            # default profile refuses io_uring, as Debian 12's podman does)
            self.assertEqual(backend == "epoll", "I/O backend: epoll" in out + err, out + err)
            code, out, err = deploylib.run(podman + ["top", started[0], "user", "args"], env=env)
            self.assertEqual(code, 0, err)
            self.assertIn("corecache", out)
            self.assertNotIn("root", out.split("\n", 1)[1])
            # the image's own profile: io_uring allowed
            port2 = harness.free_port()
            code, out, err = deploylib.run(run + ["--seccomp-policy=image",
                                                  "-p", "127.0.0.1:%d:11211" % port2, TAG,
                                                  "-m", "32", "-t", "1", "-c", "64"], env=env)
            self.assertEqual(code, 0, err)
            started.append(out.strip())
            talk(port2, b"version\r\n", b"\r\n")
            settings = stats(port2, b"settings")
            self.assertEqual((settings["maxbytes"], settings["num_threads"], settings["maxconns"]),
                             (str(32 << 20), "1", "64"))
            if host_has_io_uring():
                self.assertEqual(settings["io_backend"], "io_uring")
        finally:
            for cid in started:
                code, out, err = deploylib.run(podman + ["logs", cid], env=env)
                sys.stdout.write("container %s:\n%s%s" % (cid[:12], out[-1000:], err[-1000:]))
                deploylib.run(podman + ["rm", "-f", cid], timeout=60, env=env)
            shutil.rmtree(tmp, ignore_errors=True)

    def chroot_run(self):
        root = tempfile.mkdtemp(prefix="corecache-rootfs-")
        proc = None
        try:
            with tarfile.open(self.rootfs_tar) as tar:
                tar.extractall(root)
            port = harness.free_port()
            # the entry point as the image runs it; -l 127.0.0.1 after it wins
            proc = subprocess.Popen(["chroot", "--userspec=corecache:corecache", root,
                                     "/usr/local/bin/corecache-entrypoint", "-p", str(port), "-l", "127.0.0.1",
                                     "-m", "32", "-t", "1"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.assertEqual(talk(port, b"version\r\n", b"\r\n"), b"VERSION 1.6.18\r\n")
            self.assertEqual(talk(port, b"set k 0 0 2\r\nhi\r\nget k\r\n", b"END\r\n"),
                             b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n")
            self.assertEqual(stats(port, b"settings")["maxbytes"], str(32 << 20))
            with open("/proc/%d/status" % proc.pid) as f:
                uid = [line.split()[1] for line in f if line.startswith("Uid:")][0]
            self.assertEqual(uid, "11211")
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    out = proc.communicate(timeout=10)[0]
                except subprocess.TimeoutExpired:
                    proc.kill()
                    out = proc.communicate()[0]
                sys.stdout.write(out.decode(errors="replace")[-1000:])
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    harness.main()
