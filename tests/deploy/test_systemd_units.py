#!/usr/bin/python3
"""test_systemd_units.py: systemd accepts the units install.sh writes.

The units are installed into a scratch root (--destdir), which is then given
the host's own system units (the targets they name) and checked offline with
`systemd-analyze --root=... verify`, for the plain layout and for one with
every generated placement setting (CPUAffinity, NUMAPolicy/NUMAMask, the
capability for a privileged port). `systemd-analyze security --offline`
must rate the service's exposure "OK" or better (below 2.0 of 10). A broken
copy of the unit must be refused, so the check is known to have teeth.
Exits 77 when systemd-analyze is missing (Debian package systemd).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib  # noqa: E402
from deploylib import INSTALL_SH, harness, run  # noqa: E402

ANALYZE = shutil.which("systemd-analyze")
if ANALYZE is None:
    harness.skip_process("systemd-analyze not found (apt-get install systemd)")
SYSTEM_UNITS = next((d for d in ("/usr/lib/systemd/system", "/lib/systemd/system")
                     if os.path.isdir(d)), None)
if SYSTEM_UNITS is None or not os.path.exists(os.path.join(SYSTEM_UNITS, "multi-user.target")):
    harness.skip_process("no system units to verify against (%s)" % SYSTEM_UNITS)

UNITS = ["/etc/systemd/system/corecache.service", "/etc/systemd/system/corecache-tune.service"]


class SystemdUnitsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.build = tempfile.TemporaryDirectory(prefix="corecache-release-")

    @classmethod
    def tearDownClass(cls):
        cls.build.cleanup()

    def installed_root(self, *settings):
        tmp = tempfile.TemporaryDirectory(prefix="corecache-units-")
        self.addCleanup(tmp.cleanup)
        root = os.path.join(tmp.name, "root")
        rc, out, err = run([INSTALL_SH, "--destdir", root, "--prefix", "/usr", "--build-dir",
                            self.build.name] + list(settings))
        self.assertEqual(rc, 0, out + err)
        shutil.copytree(SYSTEM_UNITS, root + "/usr/lib/systemd/system", symlinks=True)
        return root

    def verify(self, root, *units):
        rc, out, err = run([ANALYZE, "--root=" + root, "verify"] + list(units or UNITS), timeout=60)
        sys.stdout.write("systemd-analyze verify: rc %d\n%s%s" % (rc, out, err))
        return rc, out + err

    def test_units_verify_cleanly(self):
        root = self.installed_root("--port", "23456")
        rc, text = self.verify(root)
        self.assertEqual(rc, 0, text)
        self.assertEqual(text.strip(), "")

    def test_units_with_every_placement_setting_verify_cleanly(self):
        root = self.installed_root("--port", "411", "--cpus", "0-1,3", "--numa-nodes", "0")
        dropin = deploylib.Installed(root).dropin
        self.assertEqual(dropin["CPUAffinity"], ["0-1 3"])
        self.assertEqual(dropin["NUMAMask"], ["0"])
        rc, text = self.verify(root)
        self.assertEqual(rc, 0, text)
        self.assertEqual(text.strip(), "")

    def test_units_security_exposure_is_ok(self):
        root = self.installed_root("--port", "23456")
        rc, out, err = run([ANALYZE, "security", "--offline=true", "--root=" + root, UNITS[0]], timeout=60)
        m = re.search(r"Overall exposure level for corecache.service: ([0-9.]+) (\S+)", out + err)
        self.assertIsNotNone(m, out + err)
        sys.stdout.write("systemd-analyze security: %s %s\n" % (m.group(1), m.group(2)))
        self.assertLess(float(m.group(1)), 2.0)
        self.assertIn(m.group(2), ("OK", "SAFE"))

    def test_units_verify_refuses_a_broken_unit(self):
        root = self.installed_root("--port", "23456")
        path = root + UNITS[0]
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("ExecStart=/usr/bin/corecache", "ExecStart=/usr/bin/no-such-corecache"))
        # the warm-restart drop-in sets ExecStart again (with -e): break it too
        dropin = root + "/etc/systemd/system/corecache.service.d/20-warm-restart.conf"
        with open(dropin) as f:
            text = f.read()
        with open(dropin, "w") as f:
            f.write(text.replace("ExecStart=/usr/bin/corecache", "ExecStart=/usr/bin/no-such-corecache"))
        rc, text = self.verify(root, UNITS[0])
        self.assertNotEqual(rc, 0)
        self.assertIn("no-such-corecache", text)


if __name__ == "__main__":
    harness.main()
