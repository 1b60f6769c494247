"""clientlib.py: what the client-matrix tests share.

Each test in tests/clients/ runs a real client library or tool the way its
users run it, against real corecache servers (CORECACHE_SERVER, set by
CMake) and, where it compares, against Debian's memcached 1.6.18 run the
same way. Servers come from tests/integration/harness.py (free loopback
port, stderr kept for failures, stopped by PID). A client or package that
is missing makes the test exit 77 (skipped), saying why.
"""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402,F401

MEMCACHED = "/usr/bin/memcached"


def need(tool, package):
    """The path of `tool`, or skip the whole test naming the Debian package."""
    path = shutil.which(tool)
    if path is None:
        harness.skip_process("%s not found (apt-get install %s)" % (tool, package))
    return path


def cluster(n, binary=None, flags=None, name=None):
    """n started servers (corecache by default; binary=MEMCACHED for the reference)."""
    servers = []
    for i in range(n):
        srv = harness.Server(flags=flags if flags is not None else ["-t", "2"], binary=binary,
                             name="%s%d" % (name or os.path.basename(binary or harness.SERVER), i))
        servers.append(srv.start())
    return servers


def stop_all(servers):
    for srv in servers:
        srv.stop()


def run(cmd, timeout=120, env=None, cwd=None):
    """Runs cmd; returns (returncode, combined output as text)."""
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout, env=env, cwd=cwd)
    return proc.returncode, proc.stdout.decode(errors="replace")
