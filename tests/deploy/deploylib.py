"""deploylib.py: helpers for the tests of deploy/install.sh and corecache-tune.

Nothing here touches the host: installs go into a scratch root (--destdir)
and host tuning into a fake /proc and /sys (FakeHost, handed to the scripts
with --tune-root / --root). The one thing run on the host as it is, the
installed server, runs on a free loopback port as `nobody`, the way
systemd would run it from the installed unit (run_like_systemd).
"""

import ctypes
import os
import pwd
import resource
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
INSTALL_SH = os.path.join(REPO, "deploy", "install.sh")
TUNE_SH = os.path.join(REPO, "deploy", "corecache-tune.sh")
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import harness  # noqa: E402,F401


def run(argv, timeout=300, env=None):
    """Runs argv; returns (rc, stdout, stderr) as text."""
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, env=env)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def tree(root):
    """{relative path: content or "<dir>"} of everything under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "<dir>"
        for f in filenames:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def mtimes(root):
    return {p: os.stat(os.path.join(root, p)).st_mtime_ns for p in tree(root)}


# -- a fake host ---------------------------------------------------------------

class FakeHost:
    """A fake /proc and /sys: the files corecache-tune reads and writes."""

    def __init__(self, cpus="0-7", osrelease="6.1.0-18-amd64", uring_disabled="0",
                 uring_group="-1", thp="always madvise [never]", kconfig="CONFIG_IO_URING=y"):
        self.dir = tempfile.TemporaryDirectory(prefix="corecache-fakehost-")
        self.root = self.dir.name
        w = self.write
        w("proc/sys/net/core/somaxconn", "128")
        w("proc/sys/net/ipv4/tcp_max_syn_backlog", "512")
        w("proc/sys/net/core/netdev_max_backlog", "1000")
        w("proc/sys/net/ipv4/tcp_fin_timeout", "60")
        w("proc/sys/net/ipv4/tcp_slow_start_after_idle", "1")
        w("proc/sys/net/core/rps_sock_flow_entries", "0")
        w("proc/sys/kernel/osrelease", osrelease)
        if uring_disabled is not None:
            w("proc/sys/kernel/io_uring_disabled", uring_disabled)
            w("proc/sys/kernel/io_uring_group", uring_group)
        if kconfig is not None:
            w("boot/config-" + osrelease, kconfig)
        w("sys/devices/system/cpu/online", cpus)
        w("sys/kernel/mm/transparent_hugepage/enabled", thp)
        w("proc/interrupts", "           CPU0       CPU1\n  0:   10   0   IO-APIC   2-edge   timer\n")
        os.makedirs(self.path("var/lib"))  # as on any host

    def path(self, rel):
        return os.path.join(self.root, rel)

    def write(self, rel, text):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text + "\n")

    def read(self, rel):
        with open(self.path(rel)) as f:
            return f.read().strip()

    def add_nic(self, name, rx, tx, irq_names, first_irq=40, virtio=None):
        """A NIC with rx/tx queues and MSI vectors named irq_names (in order).
        virtio="virtio2": the netdev's device is a virtio device whose PCI
        parent holds msi_irqs, as virtio-net's is."""
        q = "sys/class/net/%s/queues" % name
        for i in range(rx):
            self.write("%s/rx-%d/rps_cpus" % (q, i), "00000000")
            self.write("%s/rx-%d/rps_flow_cnt" % (q, i), "0")
        for i in range(tx):
            self.write("%s/tx-%d/xps_cpus" % (q, i), "00000000")
        if virtio:
            pci = "sys/devices/pci0000:00/0000:00:03.0"
            dev = pci + "/" + virtio
            os.makedirs(self.path(dev), exist_ok=True)
            msi = pci + "/msi_irqs"
            os.symlink(os.path.relpath(self.path(dev), self.path("sys/class/net/%s" % name)),
                       self.path("sys/class/net/%s/device" % name))
        else:
            msi = "sys/class/net/%s/device/msi_irqs" % name
            os.makedirs(self.path("sys/class/net/%s/device" % name), exist_ok=True)
        os.makedirs(self.path(msi), exist_ok=True)
        lines = []
        for n, irq_name in enumerate(irq_names):
            irq = first_irq + n
            open(self.path("%s/%d" % (msi, irq)), "w").close()
            self.write("proc/irq/%d/smp_affinity_list" % irq, "0-7")
            lines.append("%3d:   5   0   PCI-MSIX-0000:00:03.0   %d-edge   %s" % (irq, n, irq_name))
        with open(self.path("proc/interrupts"), "a") as f:
            f.write("\n".join(lines) + "\n")

    def tree(self):
        """tree() of the fake host, the THP file read as the kernel's: its
        selected mode (writing "never" reads back "always madvise [never]")."""
        out = tree(self.root)
        thp = "sys/kernel/mm/transparent_hugepage/enabled"
        text = out[thp].decode().strip()
        if "[" in text:
            text = text.split("[")[1].split("]")[0]
        out[thp] = text
        return out

    def cleanup(self):
        self.dir.cleanup()


def write_config(path, opts="-l 127.0.0.1 -p 11211 -b 2048", cpus="", iface="", thp="", nodes=""):
    with open(path, "w") as f:
        f.write('CORECACHE_OPTS="%s"\nCORECACHE_CPUS="%s"\nCORECACHE_IFACE="%s"\n'
                'CORECACHE_THP="%s"\nCORECACHE_NUMA_NODES="%s"\n' % (opts, cpus, iface, thp, nodes))


# -- the installed unit, run as systemd would -----------------------------------

def parse_unit(text):
    """[Section] Key=Value lines -> {key: [values]} (sections merged)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        k, _, v = line.partition("=")
        out.setdefault(k, []).append(v)
    return out


def parse_env(path):
    """systemd EnvironmentFile: KEY=value or KEY="value"."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, _, v = line.partition("=")
            env[k] = shlex.split(v)[0] if v.strip() else ""
    return env


def cpu_list(spec):
    cpus = set()
    for part in spec.replace(" ", ",").split(","):
        if "-" in part:
            a, b = part.split("-")
            cpus.update(range(int(a), int(b) + 1))
        elif part:
            cpus.add(int(part))
    return cpus


class Installed:
    """What install.sh put under a scratch root, as systemd would read it."""

    def __init__(self, destdir):
        self.destdir = destdir
        etc = os.path.join(destdir, "etc/systemd/system")
        with open(os.path.join(etc, "corecache.service")) as f:
            self.unit = parse_unit(f.read())
        with open(os.path.join(etc, "corecache.service.d/10-placement.conf")) as f:
            self.dropin = parse_unit(f.read())
        self.env = parse_env(destdir + self.unit["EnvironmentFile"][0])

    def argv(self):
        """ExecStart with $CORECACHE_OPTS split at whitespace (systemd's rule
        for an unbraced $VAR standing alone), the binary under destdir."""
        words = self.unit["ExecStart"][0].split()
        argv = [self.destdir + words[0]]
        for w in words[1:]:
            argv += self.env.get(w[1:], "").split() if w.startswith("$") else [w]
        return argv

    def nofile(self):
        return int(self.unit["LimitNOFILE"][0])

    def cpus(self):
        spec = self.dropin.get("CPUAffinity", [""])[0]
        return cpu_list(spec) if spec else None


PR_SET_NO_NEW_PRIVS = 38


def run_like_systemd(installed, stderr):
    """Starts the installed binary as the unit would: the unit's ExecStart
    and EnvironmentFile, LimitNOFILE, LimitMEMLOCK, CPUAffinity,
    NoNewPrivileges, and an
    unprivileged user (nobody standing in for the service user, which a
    scratch install does not create)."""
    cpus = installed.cpus()
    nofile = installed.nofile()
    root = os.geteuid() == 0
    nobody = pwd.getpwnam("nobody")

    memlock = installed.unit.get("LimitMEMLOCK", [""])[0]
    # Raising a hard limit takes CAP_SYS_RESOURCE, which a container's root
    # may lack: then the limits go as high as the hard ones.
    can_raise = sys_resource_capable()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = nofile if can_raise or nofile <= hard else hard

    def preexec():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        if memlock == "infinity":
            lim = resource.RLIM_INFINITY if can_raise else resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (lim, lim))
        if cpus:
            os.sched_setaffinity(0, cpus)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if root:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)

    proc = subprocess.Popen(installed.argv(), stdin=subprocess.DEVNULL, stdout=stderr,
                            stderr=stderr, preexec_fn=preexec)
    proc.nofile = nofile
    return proc


def sys_resource_capable():
    """True when this process has CAP_SYS_RESOURCE (bit 24 of CapEff)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 24))
    return False
