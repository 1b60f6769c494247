"""benchlib.py: what bench/'s Python scripts (hitratio.py, rss_abuse.py,
rss_per_item.py, tls.py) share: a free loopback port and a process's
resident memory read from /proc."""

import socket


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid):
    """VmRSS of pid in KiB (0 when the process has none, e.g. a zombie)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
