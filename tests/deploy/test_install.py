#!/usr/bin/python3
"""test_install.py: deploy/install.sh into scratch roots, never the host.

Each test installs into its own --destdir (the release build is made once,
in a scratch build directory, and reused). What it pins:
  - --dry-run prints every action and writes nothing;
  - the install lays out binary, tuning script, config, unit, placement
    drop-in, boot-time tuning unit, sysctl file and manifest; the installed
    binary, started the way the installed unit says (its ExecStart with the
    installed config's flags, LimitNOFILE, CPUAffinity, NoNewPrivileges, an
    unprivileged user), serves memcached clients;
  - a second run changes nothing and says so; settings given later change
    the config and the drop-in only;
  - --uninstall leaves the scratch root as empty as it found it;
  - errors stop with one clear line and undo every change made so far, both
    through an explicit check (a file it did not install) and through the
    error trap (a directory that cannot be made); flags the server itself
    refuses are refused before anything is installed;
  - host tuning against a fake /proc and /sys (--tune-root): applied by the
    install, unchanged by a second run, put back exactly by --uninstall;
  - as root, a --dry-run against this very host changes nothing on it.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib  # noqa: E402
from deploylib import INSTALL_SH, harness, run  # noqa: E402

if shutil.which("cmake") is None:
    harness.skip_process("cmake not found: install.sh builds from source")

FILES = ["usr/bin/corecache", "usr/sbin/corecache-tune", "etc/corecache/corecache.conf",
         "etc/systemd/system/corecache.service",
         "etc/systemd/system/corecache.service.d/10-placement.conf",
         "etc/systemd/system/corecache-tune.service", "etc/sysctl.d/60-corecache.conf",
         "var/lib/corecache/install.manifest"]


class InstallTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.build = tempfile.TemporaryDirectory(prefix="corecache-release-")

    @classmethod
    def tearDownClass(cls):
        cls.build.cleanup()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="corecache-destdir-")
        self.addCleanup(self.tmp.cleanup)
        os.chmod(self.tmp.name, 0o755)  # the installed binary runs as nobody
        self.dest = os.path.join(self.tmp.name, "root")
        os.mkdir(self.dest)

    def install(self, *args, dest=None):
        argv = [INSTALL_SH, "--destdir", dest or self.dest, "--prefix", "/usr",
                "--build-dir", self.build.name] + list(args)
        rc, out, err = run(argv)
        sys.stdout.write("$ %s\n%s%s" % (" ".join(argv[1:]), out, err))
        return rc, out, err

    def ok(self, *args):
        rc, out, err = self.install(*args)
        self.assertEqual(rc, 0, err)
        return out

    def test_install_dry_run_writes_nothing(self):
        out = self.ok("--dry-run", "--port", "23456")
        self.assertEqual(os.listdir(self.dest), [])
        for f in FILES[:-1]:
            self.assertIn("would install /" + f, out)
        self.assertIn("would run cmake -DCMAKE_BUILD_TYPE=Release", out)

    def test_install_into_scratch_root_then_serve_with_installed_config(self):
        port = harness.free_port()
        cpu = min(os.sched_getaffinity(0))
        out = self.ok("--listen", "127.0.0.1", "--port", str(port), "--memory", "32",
                      "--conns", "200", "--cpus", str(cpu))
        self.assertIn("done:", out)
        for f in FILES:
            self.assertTrue(os.path.isfile(os.path.join(self.dest, f)), f)
        self.assertTrue(os.access(os.path.join(self.dest, "usr/bin/corecache"), os.X_OK))
        with open(os.path.join(self.dest, "var/lib/corecache/install.manifest")) as f:
            manifest = f.read().split("\n")
        for f in FILES:
            self.assertIn("f /" + f, manifest)

        inst = deploylib.Installed(self.dest)
        self.assertEqual(inst.unit["ExecStart"], ["/usr/bin/corecache $CORECACHE_OPTS"])
        self.assertEqual(inst.unit["User"], ["corecache"])
        for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                          "Restart=on-failure", "LimitMEMLOCK=infinity"):
            k, v = hardening.split("=")
            self.assertEqual(inst.unit[k], [v], hardening)
        self.assertEqual(inst.cpus(), {cpu})
        self.assertEqual(inst.env["CORECACHE_OPTS"].split(),
                         ["-l", "127.0.0.1", "-p", str(port), "-m", "32", "-c", "200", "-b", "4096"])

        stderr = tempfile.TemporaryFile()
        proc = deploylib.run_like_systemd(inst, stderr)
        try:
            self.assertTrue(self._wait_port(port, proc), self._text(stderr))
            from pymemcache.client.base import Client
            mc = Client(("127.0.0.1", port), connect_timeout=2, timeout=2, default_noreply=False)
            self.assertTrue(mc.set("deployed", b"yes", expire=60))
            self.assertEqual(mc.get("deployed"), b"yes")
            stats = mc.stats("settings")
            self.assertEqual(int(stats[b"maxconns"]), 200)
            self.assertEqual(int(stats[b"maxbytes"]), 32 * 1024 * 1024)
            self.assertEqual(int(mc.stats()[b"threads"]), 1)  # one shard per CPU of CPUAffinity
            mc.close()
            status = open("/proc/%d/status" % proc.pid).read()
            self.assertIn("NoNewPrivs:\t1", status)
            self.assertIn("Cpus_allowed_list:\t%d\n" % cpu, status)
            limits = open("/proc/%d/limits" % proc.pid).read()
            self.assertRegex(limits, r"Max open files\s+%d" % proc.nofile)
            if deploylib.sys_resource_capable():
                self.assertEqual(proc.nofile, inst.nofile())
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(10), 0, self._text(stderr))

    @staticmethod
    def _text(f):
        f.seek(0)
        return f.read().decode(errors="replace")

    @staticmethod
    def _wait_port(port, proc):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def test_install_second_run_changes_nothing(self):
        self.ok("--port", "23456")
        before = deploylib.mtimes(self.dest)
        out = self.ok()
        self.assertIn("nothing to do: corecache is installed as configured", out)
        self.assertNotIn(" + ", out)
        self.assertEqual(deploylib.mtimes(self.dest), before)
        out = self.ok("--dry-run")
        self.assertIn("(dry run) nothing to do", out)

    def test_install_settings_change_config_and_drop_in_only(self):
        self.ok("--port", "23456")
        conf = os.path.join(self.dest, "etc/corecache/corecache.conf")
        before = deploylib.tree(self.dest)
        out = self.ok("--cpus", "0", "--numa-nodes", "0", "--port", "23457")
        after = deploylib.tree(self.dest)
        changed = sorted(p for p in after if after[p] != before.get(p))
        self.assertEqual(changed, ["etc/corecache/corecache.conf",
                                   "etc/systemd/system/corecache.service.d/10-placement.conf"])
        self.assertIn("-p 23457", deploylib.parse_env(conf)["CORECACHE_OPTS"])
        dropin = deploylib.Installed(self.dest).dropin
        self.assertEqual(dropin["CPUAffinity"], ["0"])
        self.assertEqual(dropin["NUMAPolicy"], ["bind"])
        self.assertEqual(dropin["NUMAMask"], ["0"])
        self.assertIn("+ /etc/corecache/corecache.conf (changed)", out)
        # An operator's edit survives a run without settings.
        with open(conf, "a") as f:
            f.write("# tuned by hand\n")
        self.assertIn("nothing to do", self.ok())
        self.assertTrue(open(conf).read().endswith("# tuned by hand\n"))

    def test_install_tls_and_auth_files(self):
        """--tls-cert/--tls-key/--tls-ca and --auth-file copy the files under
        /etc/corecache (the key and passwords readable by the service's group
        only), set -Z -o ssl_* and -Y, survive a run without settings, and
        go away with "" (flags and files). The installed config serves TLS
        and asks for the password."""
        certs = os.path.join(self.tmp.name, "certs")
        os.mkdir(certs)
        ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        subprocess.run(["openssl", "genpkey"] + ec + ["-out", certs + "/k.pem"], check=True,
                       capture_output=True)
        subprocess.run(["openssl", "req", "-x509", "-new", "-key", certs + "/k.pem", "-days", "2",
                        "-subj", "/CN=localhost", "-out", certs + "/c.pem"], check=True, capture_output=True)
        with open(certs + "/users", "w") as f:
            f.write("app:s3cret\n")
        out = self.ok("--port", "23456", "--tls-cert", certs + "/c.pem", "--tls-key", certs + "/k.pem",
                      "--tls-ca", certs + "/c.pem", "--tls-verify", "1", "--auth-file", certs + "/users")
        conf = os.path.join(self.dest, "etc/corecache/corecache.conf")
        opts = deploylib.parse_env(conf)["CORECACHE_OPTS"].split()
        self.assertIn("-Z", opts)
        self.assertEqual(opts[opts.index("-o") + 1],
                         "ssl_chain_cert=/etc/corecache/tls/server.pem,ssl_key=/etc/corecache/tls/server.key,"
                         "ssl_ca_cert=/etc/corecache/tls/ca.pem,ssl_verify_mode=1")
        self.assertEqual(opts[opts.index("-Y") + 1], "/etc/corecache/auth")
        modes = {p: os.stat(os.path.join(self.dest, p)).st_mode & 0o777
                 for p in ("etc/corecache/tls/server.pem", "etc/corecache/tls/server.key",
                           "etc/corecache/tls/ca.pem", "etc/corecache/auth")}
        self.assertEqual(modes, {"etc/corecache/tls/server.pem": 0o644, "etc/corecache/tls/server.key": 0o640,
                                 "etc/corecache/tls/ca.pem": 0o644, "etc/corecache/auth": 0o640})
        self.assertIn("nothing to do", self.ok())
        with open(os.path.join(self.dest, "var/lib/corecache/install.manifest")) as f:
            self.assertIn("f /etc/corecache/tls/server.key", f.read())

        # The installed flags, files moved into the scratch root, serve TLS
        # with the password asked first (as root the key is read before -u).
        if os.geteuid() == 0:
            import ssl
            port = harness.free_port()
            argv = [os.path.join(self.dest, "usr/bin/corecache")] + [
                a.replace("/etc/corecache", os.path.join(self.dest, "etc/corecache")) for a in opts]
            argv = [a if a != "23456" else str(port) for a in argv] + ["-u", "nobody"]
            proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
            try:
                self.assertTrue(self._wait_port(port, proc), proc.stderr.read1(4096) if proc.poll() else "")
                ctx = ssl.create_default_context(cafile=certs + "/c.pem")
                with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                     server_hostname="localhost") as s:
                    s.sendall(b"get x\r\nset a 0 0 10\r\napp s3cret\r\n")
                    data = b""
                    while not data.endswith(b"STORED\r\n"):
                        chunk = s.recv(4096)
                        self.assertTrue(chunk, data)
                        data += chunk
                    self.assertEqual(data, b"CLIENT_ERROR unauthenticated\r\nSTORED\r\n")
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)

        self.ok("--tls-cert", "", "--auth-file", "")
        opts = deploylib.parse_env(conf)["CORECACHE_OPTS"].split()
        for flag in ("-Z", "-o", "-Y"):
            self.assertNotIn(flag, opts)
        for p in ("etc/corecache/tls/server.pem", "etc/corecache/tls/server.key", "etc/corecache/auth"):
            self.assertFalse(os.path.exists(os.path.join(self.dest, p)), p)
        rc, out, err = self.install("--tls-cert", certs + "/c.pem")
        self.assertEqual(rc, 1)
        self.assertIn("--tls-cert needs --tls-key", err)

    def test_install_privileged_port_gets_only_that_capability(self):
        self.ok("--port", "411")
        dropin = deploylib.Installed(self.dest).dropin
        self.assertEqual(dropin["AmbientCapabilities"], ["CAP_NET_BIND_SERVICE"])
        self.assertEqual(dropin["CapabilityBoundingSet"], ["CAP_NET_BIND_SERVICE"])

    def test_install_uninstall_leaves_the_scratch_root_empty(self):
        self.ok("--port", "23456")
        out = self.ok("--uninstall", "--dry-run")
        self.assertIn("would remove /usr/bin/corecache", out)
        self.assertTrue(os.path.exists(os.path.join(self.dest, "usr/bin/corecache")))
        self.ok("--uninstall")
        self.assertEqual(deploylib.tree(self.dest), {})
        self.assertIn("nothing to do", self.ok("--uninstall"))

    def test_install_refuses_to_overwrite_a_file_it_did_not_install(self):
        unit = os.path.join(self.dest, "etc/systemd/system/corecache.service")
        os.makedirs(os.path.dirname(unit))
        with open(unit, "w") as f:
            f.write("# someone else's\n")
        before = deploylib.tree(self.dest)
        rc, out, err = self.install("--port", "23456")
        self.assertEqual(rc, 1)
        self.assertIn("error: %s exists and was not installed by install.sh" % unit, err)
        self.assertIn("undoing", err)
        self.assertEqual(deploylib.tree(self.dest), before)

    def test_install_error_midway_undoes_every_change(self):
        # /etc/sysctl.d is a file: the sysctl file, installed after the
        # binary, the config and the units, cannot be written.
        os.makedirs(os.path.join(self.dest, "etc"))
        with open(os.path.join(self.dest, "etc/sysctl.d"), "w") as f:
            f.write("not a directory\n")
        before = deploylib.tree(self.dest)
        rc, out, err = self.install("--port", "23456")
        self.assertEqual(rc, 1)
        self.assertIn("+ /usr/bin/corecache (new)", out)  # it got that far
        self.assertRegex(err, r"install.sh: error: `[^`]+` failed \(exit \d+, line \d+\)")
        self.assertIn("the host is as it was before this run", err)
        self.assertEqual(deploylib.tree(self.dest), before)

    def test_install_refuses_flags_the_server_refuses(self):
        rc, out, err = self.install("--memory", "0")
        self.assertEqual(rc, 1)
        self.assertIn("CORECACHE_OPTS is refused by corecache", err)
        self.assertIn("-m", err)
        self.assertEqual(deploylib.tree(self.dest), {})
        rc, out, err = self.install("--cpus", "0-x")
        self.assertEqual(rc, 1)
        self.assertIn("CORECACHE_CPUS=0-x is not a CPU list", err)
        self.assertEqual(deploylib.tree(self.dest), {})

    def test_install_tunes_a_fake_host_and_uninstall_puts_it_back(self):
        host = deploylib.FakeHost(cpus="0-7", uring_disabled="0")
        self.addCleanup(host.cleanup)
        host.add_nic("eth9", 4, 4, ["eth9"] + ["eth9-TxRx-%d" % i for i in range(4)])
        pristine = host.tree()
        out = self.ok("--tune-root", host.root, "--iface", "eth9", "--cpus", "2-5", "--backlog", "8192")
        self.assertEqual(host.read("proc/sys/net/core/somaxconn"), "8192")
        self.assertEqual(host.read("proc/sys/net/ipv4/tcp_max_syn_backlog"), "8192")
        self.assertEqual(host.read("sys/kernel/mm/transparent_hugepage/enabled"), "madvise")
        for q in range(4):
            self.assertEqual(host.read("proc/irq/%d/smp_affinity_list" % (41 + q)), str(2 + q))
            self.assertEqual(host.read("sys/class/net/eth9/queues/tx-%d/xps_cpus" % q),
                             "%08x" % (1 << (2 + q)))
        self.assertEqual(host.read("proc/irq/40/smp_affinity_list"), "0-7")  # not a queue vector
        sysctl = open(os.path.join(self.dest, "etc/sysctl.d/60-corecache.conf")).read()
        self.assertIn("net.core.somaxconn = 8192", sysctl)
        self.assertIn("net.core.rps_sock_flow_entries = 32768", sysctl)
        self.assertIn("IRQ 41 (queue 0) -> CPU 2", out)
        conf = open(os.path.join(self.dest, "etc/corecache/corecache.conf")).read()
        self.assertRegex(conf, r'CORECACHE_OPTS="[^"]* --accept-by-cpu"',
                         "queues on the shard CPUs: connections steered to them")

        tuned = host.tree()
        self.assertIn("nothing to do", self.ok("--tune-root", host.root))
        self.assertEqual(host.tree(), tuned)

        self.ok("--uninstall", "--tune-root", host.root)
        self.assertEqual(host.tree(), pristine)
        self.assertEqual(deploylib.tree(self.dest), {})

    def test_install_failure_after_tuning_puts_the_fake_host_back(self):
        host = deploylib.FakeHost()
        self.addCleanup(host.cleanup)
        host.add_nic("eth9", 2, 2, ["eth9-TxRx-0", "eth9-TxRx-1"])
        pristine = host.tree()
        # The manifest is written last, after tuning; a directory in its
        # place makes that step fail.
        os.makedirs(os.path.join(self.dest, "var/lib/corecache/install.manifest"))
        before = deploylib.tree(self.dest)
        rc, out, err = self.install("--tune-root", host.root, "--iface", "eth9", "--cpus", "0-1")
        self.assertEqual(rc, 1)
        self.assertIn("IRQ 40 (queue 0) -> CPU 0", out)  # tuning happened
        self.assertIn("the host is as it was before this run", err)
        self.assertEqual(host.tree(), pristine)
        self.assertEqual(deploylib.tree(self.dest), before)

    @unittest.skipUnless(os.geteuid() == 0, "the host dry run checks a root's view of the host")
    def test_install_dry_run_on_this_host_changes_nothing(self):
        watched = ["/proc/sys/net/core/somaxconn", "/proc/sys/net/ipv4/tcp_fin_timeout",
                   "/proc/sys/net/ipv4/tcp_max_syn_backlog", "/sys/kernel/mm/transparent_hugepage/enabled"]

        def snapshot():
            out = {}
            for p in watched + ["/etc/corecache", "/var/lib/corecache/install.manifest",
                                "/etc/systemd/system/corecache.service", "/usr/local/bin/corecache"]:
                if os.path.isfile(p):
                    out[p] = open(p).read()
                else:
                    out[p] = os.path.exists(p)
            out["user"] = subprocess.run(["getent", "passwd", "corecache"], stdout=subprocess.PIPE).stdout
            return out

        before = snapshot()
        rc, out, err = run([INSTALL_SH, "--dry-run", "--build-dir", self.build.name])
        sys.stdout.write(out + err)
        self.assertEqual(rc, 0, err)
        self.assertEqual(snapshot(), before)
        self.assertIn("host tuning:", out)
        self.assertIn("would install /usr/local/bin/corecache", out)
        if not before["user"]:
            self.assertIn("would create system user corecache", out)


if __name__ == "__main__":
    harness.main()
