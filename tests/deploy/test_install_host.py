#!/usr/bin/python3
"""test_install_host.py: deploy/install.sh as on a real host, without
--destdir, on a throwaway copy of this machine (host_scenario.sh): new mount,
pid and network namespaces, a tmpfs overlay over /, a chroot. The install
creates the corecache user and group, installs into /usr/local and /etc,
tunes the network namespace's own sysctls, finds nothing to do on a second
run, the installed binary serves as the installed user with the installed
flags, and --uninstall removes user, group and files and puts the sysctls
back. Nothing of it reaches the real host: every write lands in the tmpfs.
Exits 77 unless run as root where namespaces and overlayfs are allowed.
"""

import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploylib import REPO, harness  # noqa: E402

SCENARIO = os.path.join(REPO, "tests", "deploy", "host_scenario.sh")


def namespaces_and_overlay_work():
    if os.geteuid() != 0:
        return "not root"
    with tempfile.TemporaryDirectory(prefix="corecache-overlay-probe-") as d:
        probe = ("set -e; mount --make-rprivate /; d=$0; mount -t tmpfs tmpfs $d; mkdir $d/u $d/w $d/m; "
                 "mount -t overlay overlay -o lowerdir=/,upperdir=$d/u,workdir=$d/w $d/m; test -x $d/m/bin/bash")
        proc = subprocess.run(["unshare", "--mount", "--pid", "--net", "--fork", "bash", "-c", probe, d],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return None if proc.returncode == 0 else "namespaces or overlayfs unavailable: " + proc.stdout.decode()


why = namespaces_and_overlay_work()
if why:
    harness.skip_process(why)


class InstallHostTest(unittest.TestCase):

    def test_install_host_install_rerun_serve_uninstall(self):
        tmp = tempfile.TemporaryDirectory(prefix="corecache-host-scenario-")
        self.addCleanup(tmp.cleanup)
        proc = subprocess.run(["unshare", "--mount", "--pid", "--net", "--fork", "--kill-child",
                               "bash", SCENARIO, "outer", REPO, tmp.name],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=400)
        out = proc.stdout.decode(errors="replace")
        sys.stdout.write(out)
        self.assertEqual(proc.returncode, 0)
        for step in ("installed: user, files, sysctls", "second run: nothing to do",
                     "served as user corecache from the installed files",
                     "uninstalled: user, files and sysctls as before"):
            self.assertIn("ok: " + step, out)
        self.assertTrue(out.rstrip().endswith("ALL OK"))


if __name__ == "__main__":
    harness.main()
