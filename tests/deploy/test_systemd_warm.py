#!/usr/bin/env python3
"""deploy/install.sh's warm restart under a real systemd (issue 14).

A Debian 12 root file system (mmdebstrap, minbase plus systemd and
corecache's libraries; cached in OUT, by default <build>/systemd-warm, so only
the first run downloads it) is booted with podman, systemd as PID 1, in a
network namespace of its own. deploy/install.sh --destdir stages corecache into
it (its release build cached in OUT too); inside, the test creates the service
user as install.sh says to, enables the tmpfs mount unit and the service, and
then:

- 1000 items are stored (bash's /dev/tcp, from inside the container);
- `systemctl restart corecache` (the unit's KillSignal=SIGTERM: a graceful stop
  that saves), and every item is served again, and the journal says
  "reattached 1000 items";
- the unit runs with KillSignal 15 and a 2 min stop timeout (20-warm-restart.conf);
- `systemctl kill -s KILL corecache` then a start: it starts empty, and says
  the last stop was not clean.

Exits 77 where it cannot run: not root, no podman/runc/mmdebstrap, no Debian
mirror (the first run), or podman cannot boot systemd here.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib  # noqa: E402
from deploylib import harness  # noqa: E402

OUT = os.environ.get("CORECACHE_SYSTEMD_OUT") or os.path.join(deploylib.REPO, "build", "systemd-warm")
ROOTFS_TAR = os.path.join(OUT, "bookworm-systemd.tar")
PACKAGES = "systemd,systemd-sysv,libnuma1,liburing2,libssl3,libjemalloc2,libstdc++6"
NAME = "corecache-systemd-warm-%d" % os.getpid()

CLIENT = r"""#!/bin/bash
# client.sh set|count N: N keys over bash's /dev/tcp to the service
exec 3<>/dev/tcp/127.0.0.1/11211 || exit 2
n=$2; good=0
if [ "$1" = set ]; then
  for ((i = 0; i < n; i++)); do printf 'set k%d 0 0 %d\r\nv%d\r\n' $i $((${#i} + 1)) $i >&3; done
  for ((i = 0; i < n; i++)); do read -r line <&3; [ "$line" = $'STORED\r' ] && good=$((good + 1)); done
else
  for ((i = 0; i < n; i++)); do
    printf 'get k%d\r\n' $i >&3; read -r line <&3
    if [ "${line%% *}" = VALUE ]; then
      read -r data <&3; read -r end <&3
      [ "$data" = "v$i"$'\r' ] && good=$((good + 1))
    fi
  done
fi
echo $good
"""


def prerequisites():
    if os.geteuid() != 0:
        harness.skip_process("needs root (mmdebstrap, podman)")
    for tool in ("podman", "runc", "mmdebstrap"):
        if shutil.which(tool) is None:
            harness.skip_process("%s not found (apt-get install podman runc mmdebstrap)" % tool)


def make_rootfs():
    if os.path.exists(ROOTFS_TAR):
        return
    os.makedirs(OUT, exist_ok=True)
    tmp = ROOTFS_TAR + ".part"
    code, out, err = deploylib.run(["mmdebstrap", "--variant=minbase", "--include=" + PACKAGES,
                                    "bookworm", tmp, "http://deb.debian.org/debian"], timeout=900)
    if code != 0:
        harness.skip_process("mmdebstrap could not make a Debian 12 root (no mirror?): %s"
                             % (out + err).strip()[-400:])
    os.rename(tmp, ROOTFS_TAR)


class SystemdWarmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="systemd-warm-", dir=OUT)
        cls.root = os.path.join(cls.tmp, "root")
        os.mkdir(cls.root)
        subprocess.run(["tar", "-C", cls.root, "-xf", ROOTFS_TAR], check=True)
        code, out, err = deploylib.run(
            ["bash", os.path.join(deploylib.REPO, "deploy", "install.sh"), "--destdir", cls.root,
             "--no-tune", "--build-dir", os.path.join(OUT, "release")], timeout=900)
        if code != 0:
            raise AssertionError("install.sh --destdir failed:\n%s" % (out + err)[-3000:])
        with open(os.path.join(cls.root, "client.sh"), "w") as f:
            f.write(CLIENT)
        os.chmod(os.path.join(cls.root, "client.sh"), 0o755)
        # runc with no default rlimits: podman's defaults exceed what an
        # unprivileged sandbox may set (as tests/deploy/test_container.py)
        conf = os.path.join(cls.tmp, "containers.conf")
        with open(conf, "w") as f:
            f.write("[containers]\ndefault_ulimits = []\n")
        cls.env = dict(os.environ, CONTAINERS_CONF=conf)
        code, out, err = deploylib.run(
            ["podman", "--runtime", "runc", "run", "-d", "--name", NAME, "--network", "none",
             "--cap-add", "SYS_ADMIN", "--systemd=always", "--rootfs", cls.root, "/sbin/init"],
            timeout=120, env=cls.env)
        if code != 0:
            cls.cleanup()
            harness.skip_process("podman cannot boot systemd here: %s" % (out + err).strip()[-400:])
        state = ""
        deadline = time.monotonic() + 90
        while state not in ("running", "degraded") and time.monotonic() < deadline:
            state = cls.sh("systemctl is-system-running", check=False).strip()
            time.sleep(0.3)
        if state not in ("running", "degraded"):
            why = cls.sh("systemctl --failed --no-legend; systemctl is-system-running", check=False)
            cls.cleanup()
            raise AssertionError("systemd did not come up (%s):\n%s" % (state, why))

    @classmethod
    def cleanup(cls):
        deploylib.run(["podman", "rm", "-f", "-t", "5", NAME], timeout=120, env=cls.env)
        shutil.rmtree(cls.tmp, True)

    @classmethod
    def tearDownClass(cls):
        cls.cleanup()

    @classmethod
    def sh(cls, script, check=True):
        code, out, err = deploylib.run(["podman", "exec", NAME, "bash", "-c", script], timeout=180,
                                       env=cls.env)
        if check and code != 0:
            raise AssertionError("%s: exit %d\n%s%s" % (script, code, out, err))
        return out

    def wait_serving(self):
        self.sh("for i in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/11211) 2>/dev/null && exit 0; "
                "sleep 0.1; done; exit 1")

    def journal(self):
        return self.sh("journalctl -u corecache --no-pager -o cat")

    def test_restart_under_systemd_keeps_the_items(self):
        self.sh("groupadd --system corecache && useradd --system --gid corecache --no-create-home "
                "--home-dir /nonexistent --shell /usr/sbin/nologin corecache && systemctl daemon-reload "
                "&& systemctl enable --now var-lib-corecache-memory.mount corecache.service")
        self.wait_serving()
        show = self.sh("systemctl show -p KillSignal -p TimeoutStopUSec -p ExecStart corecache")
        self.assertIn("KillSignal=15", show)
        self.assertIn("TimeoutStopUSec=2min", show)
        self.assertIn("-e /var/lib/corecache/memory/cache", show)
        self.assertEqual(self.sh("findmnt -n -o FSTYPE /var/lib/corecache/memory").strip(), "tmpfs")
        self.assertEqual(self.sh("/client.sh set 1000").strip(), "1000")
        self.sh("systemctl restart corecache")
        self.wait_serving()
        self.assertEqual(self.sh("/client.sh count 1000").strip(), "1000", self.journal())
        deadline = time.monotonic() + 30
        while "reattached 1000 items" not in self.journal():
            self.assertLess(time.monotonic(), deadline, self.journal())
            time.sleep(0.2)
        # an unclean end: SIGKILL, then a start, is empty and says why
        self.sh("systemctl kill -s KILL corecache; for i in $(seq 100); do "
                "systemctl is-active -q corecache || exit 0; sleep 0.1; done; exit 1")
        self.sh("systemctl start corecache")
        self.wait_serving()
        self.assertEqual(self.sh("/client.sh count 1000").strip(), "0")
        self.assertIn("starting empty: the last stop was not clean", self.journal())


if __name__ == "__main__":
    prerequisites()
    make_rootfs()
    unittest.main(verbosity=2)
