#!/usr/bin/python3
"""test_shellcheck.py: the deploy scripts (and the tests' own) are shellcheck-clean (every
severity, style included) and parse with bash -n.
Exits 77 when shellcheck is missing (Debian package shellcheck).
"""

import glob
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploylib import REPO, harness, run  # noqa: E402

SHELLCHECK = shutil.which("shellcheck")
if SHELLCHECK is None:
    harness.skip_process("shellcheck not found (apt-get install shellcheck)")
SCRIPTS = sorted(glob.glob(os.path.join(REPO, "deploy", "*.sh")) +
                 glob.glob(os.path.join(REPO, "tests", "deploy", "*.sh")))


class ShellcheckTest(unittest.TestCase):

    def test_shellcheck_finds_the_deploy_scripts(self):
        names = {os.path.basename(p) for p in SCRIPTS}
        self.assertTrue({"install.sh", "corecache-tune.sh", "cluster.sh"} <= names, names)

    def test_shellcheck_deploy_scripts_are_clean(self):
        rc, out, err = run([SHELLCHECK, "--severity=style", "--external-sources"] + SCRIPTS, timeout=120)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(out, "")

    def test_shellcheck_deploy_scripts_parse(self):
        for path in SCRIPTS:
            rc, out, err = run(["bash", "-n", path])
            self.assertEqual(rc, 0, path + ": " + err)

    def test_shellcheck_would_catch_a_defect(self):
        # The check has teeth: an unquoted expansion is reported.
        proc = subprocess.run([SHELLCHECK, "-s", "bash", "-"], input=b'rm -rf $1/*\n',
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(b"SC2086", proc.stdout)


if __name__ == "__main__":
    harness.main()
