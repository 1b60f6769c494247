#!/usr/bin/python3
"""test_tune.py: deploy/corecache-tune.sh against fake /proc and /sys trees.

Every test builds its own fake host (deploylib.FakeHost) and hands it to the
script with --root, so the real host is never read for these decisions nor
written. What it pins:
  - the io_uring check: a kernel older than 6.0 or one built without
    CONFIG_IO_URING prints the fix and passes (corecache serves on epoll),
    and fails only where the config requires io_uring; kernel.io_uring_disabled=2 is fixed
    to 1 plus the service's group in kernel.io_uring_group; =1 with the group
    unset gets the group; =1 with another group already set is left alone
    and the service joins that group instead;
  - NIC placement: queue i's interrupt on the i-th shard CPU; vectors that
    are not queues untouched; XPS maps each shard CPU to one transmit queue;
    RPS only when there are fewer receive queues than shards; RFS always;
    masks beyond 32 CPUs in the kernel's comma-separated format; virtio-net's
    layout (vectors on the PCI parent, "virtioN-input.Q" names);
  - idempotence (a second apply writes nothing), restore putting back every
    original value, --dry-run writing nothing, capacity sysctls never
    lowered, a journal undoing exactly one run, THP modes, and an interrupt
    the kernel refuses to move being a warning rather than a failure.
"""

import os
import pwd
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib  # noqa: E402
from deploylib import TUNE_SH, harness, run  # noqa: E402


class TuneTest(unittest.TestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="corecache-tune-conf-")
        self.addCleanup(tmp.cleanup)
        self.conf = os.path.join(tmp.name, "corecache.conf")  # outside the fake host

    def host(self, **kw):
        h = deploylib.FakeHost(**kw)
        self.addCleanup(h.cleanup)
        return h

    def tune(self, host, *args, user="nobody"):
        rc, out, err = run([TUNE_SH, "--root", host.root, "--config", self.conf, "--user", user] + list(args))
        sys.stdout.write("$ corecache-tune %s\n%s%s" % (" ".join(args), out, err))
        return rc, out, err

    def ok(self, host, *args):
        rc, out, err = self.tune(host, *args)
        self.assertEqual(rc, 0, err)
        return out

    # -- io_uring --------------------------------------------------------

    def test_tune_io_uring_kernel_too_old(self):
        h = self.host(osrelease="5.15.0-91-generic")
        deploylib.write_config(self.conf)
        rc, out, _ = self.tune(h, "check")
        self.assertEqual(rc, 0)  # corecache serves on epoll there
        self.assertIn("kernel 5.15.0-91-generic: too old for corecache's io_uring backend (Linux 6.0 or later)", out)
        self.assertIn("fix: install a newer kernel", out)
        self.assertIn("corecache will serve on its epoll backend", out)
        # A config that refuses the fallback makes the check fail.
        for opts in ("-p 11211 -o io_backend=io_uring", "-p 11211 -o modern,io_backend=io_uring",
                     "-p 11211 --io-backend io_uring", "-p 11211 --io-backend=io_uring"):
            deploylib.write_config(self.conf, opts=opts)
            rc, out, _ = self.tune(h, "check")
            self.assertEqual(rc, 1, opts)
            self.assertIn("the config requires it (-o io_backend=io_uring)", out)
        deploylib.write_config(self.conf, opts="-p 11211 -o io_backend=epoll")
        self.assertEqual(self.tune(h, "check")[0], 0)

    def test_tune_io_uring_not_built_in(self):
        h = self.host(kconfig="# CONFIG_IO_URING is not set")
        deploylib.write_config(self.conf)
        rc, out, _ = self.tune(h, "check")
        self.assertEqual(rc, 0)  # corecache serves on epoll there
        self.assertIn("built without io_uring", out)
        self.assertIn("corecache will serve on its epoll backend", out)
        self.assertIn("fix: a kernel built with CONFIG_IO_URING=y", out)

    def test_tune_io_uring_disabled_2_is_fixed_with_the_services_group(self):
        gid = pwd.getpwnam("nobody").pw_gid  # the service user's primary group
        h = self.host(uring_disabled="2")
        deploylib.write_config(self.conf)
        rc, out, _ = self.tune(h, "check")
        self.assertEqual(rc, 0)  # fixable: not fatal
        self.assertIn("kernel.io_uring_disabled=2: io_uring is off for every process", out)
        self.ok(h, "apply")
        self.assertEqual(h.read("proc/sys/kernel/io_uring_disabled"), "1")
        self.assertEqual(h.read("proc/sys/kernel/io_uring_group"), str(gid))
        # The persisted fix still says so once applied (the saved original is 2).
        conf = self.ok(h, "sysctl-conf")
        self.assertIn("kernel.io_uring_disabled = 1", conf)
        self.assertIn("kernel.io_uring_group = %d" % gid, conf)
        self.ok(h, "restore")
        self.assertEqual(h.read("proc/sys/kernel/io_uring_disabled"), "2")
        self.assertEqual(h.read("proc/sys/kernel/io_uring_group"), "-1")

    def test_tune_io_uring_disabled_1_joins_an_existing_group(self):
        h = self.host(uring_disabled="1", uring_group="0")
        deploylib.write_config(self.conf)
        out = self.ok(h, "check")
        self.assertIn("the service joins group root", out)
        self.assertEqual(self.ok(h, "groups").strip(), "root")
        self.ok(h, "apply")
        self.assertEqual(h.read("proc/sys/kernel/io_uring_group"), "0")  # not moved
        self.assertNotIn("kernel.io_uring", self.ok(h, "sysctl-conf"))

    def test_tune_io_uring_open_needs_nothing(self):
        h = self.host(uring_disabled=None)
        deploylib.write_config(self.conf)
        out = self.ok(h, "check")
        self.assertIn("not in this kernel (io_uring is open to all): ok", out)
        self.assertEqual(self.ok(h, "groups"), "")

    # -- the NIC ---------------------------------------------------------

    def test_tune_places_each_queue_on_its_shard_cpu(self):
        h = self.host(cpus="0-7")
        h.add_nic("eth9", 4, 4, ["eth9"] + ["eth9-TxRx-%d" % i for i in range(4)] + ["eth9-fdir-0"])
        deploylib.write_config(self.conf, cpus="2-5", iface="eth9")
        self.ok(h, "apply")
        for q in range(4):
            self.assertEqual(h.read("proc/irq/%d/smp_affinity_list" % (41 + q)), str(2 + q))
            rps = h.read("sys/class/net/eth9/queues/rx-%d/rps_cpus" % q)
            self.assertEqual(int(rps.replace(",", ""), 16), 0)  # the NIC's own queues steer
            self.assertEqual(h.read("sys/class/net/eth9/queues/rx-%d/rps_flow_cnt" % q), "8192")
            self.assertEqual(h.read("sys/class/net/eth9/queues/tx-%d/xps_cpus" % q), "%08x" % (1 << (2 + q)))
        self.assertEqual(h.read("proc/irq/40/smp_affinity_list"), "0-7")  # the bare device vector
        self.assertEqual(h.read("proc/irq/45/smp_affinity_list"), "0-7")  # flow director, not a queue
        self.assertEqual(h.read("proc/sys/net/core/rps_sock_flow_entries"), "32768")

    def test_tune_fewer_queues_than_shards_spreads_with_rps(self):
        h = self.host(cpus="0-3")
        h.add_nic("eth0", 1, 1, ["virtio2-config", "virtio2-input.0", "virtio2-output.0"], virtio="virtio2")
        deploylib.write_config(self.conf, iface="eth0")
        out = self.ok(h, "apply")
        self.assertEqual(h.read("proc/irq/41/smp_affinity_list"), "0")
        self.assertEqual(h.read("proc/irq/42/smp_affinity_list"), "0")
        self.assertEqual(h.read("proc/irq/40/smp_affinity_list"), "0-7")
        self.assertEqual(h.read("sys/class/net/eth0/queues/rx-0/rps_cpus"), "0000000f")
        self.assertEqual(h.read("sys/class/net/eth0/queues/rx-0/rps_flow_cnt"), "32768")
        self.assertEqual(h.read("sys/class/net/eth0/queues/tx-0/xps_cpus"), "00000000")
        self.assertIn("one transmit queue", out)

    def test_tune_masks_beyond_32_cpus(self):
        h = self.host(cpus="0-63")
        h.add_nic("eth9", 2, 2, ["eth9-TxRx-0", "eth9-TxRx-1"])
        deploylib.write_config(self.conf, cpus="1,33,40-41", iface="eth9")
        self.ok(h, "apply")
        self.assertEqual(h.read("sys/class/net/eth9/queues/rx-0/rps_cpus"), "00000302,00000002")
        self.assertEqual(h.read("sys/class/net/eth9/queues/tx-0/xps_cpus"), "00000100,00000002")  # 1, 40
        self.assertEqual(h.read("sys/class/net/eth9/queues/tx-1/xps_cpus"), "00000202,00000000")  # 33, 41
        self.assertEqual(h.read("proc/irq/41/smp_affinity_list"), "33")

    def test_tune_refused_interrupt_is_a_warning(self):
        h = self.host()
        h.add_nic("eth9", 2, 2, ["eth9-TxRx-0", "eth9-TxRx-1"])
        # A path that cannot be written stands for a kernel-managed interrupt.
        os.remove(h.path("proc/irq/41/smp_affinity_list"))
        os.mkdir(h.path("proc/irq/41/smp_affinity_list"))
        deploylib.write_config(self.conf, cpus="0-1", iface="eth9")
        rc, out, err = self.tune(h, "apply")
        self.assertEqual(rc, 0, err)
        self.assertIn("warning: IRQ 41", err)
        self.assertEqual(h.read("proc/irq/40/smp_affinity_list"), "0")

    def test_tune_unknown_interface_fails_clearly(self):
        h = self.host()
        deploylib.write_config(self.conf, iface="eth7")
        rc, _, err = self.tune(h, "apply")
        self.assertEqual(rc, 1)
        self.assertIn("CORECACHE_IFACE=eth7: no such interface", err)

    # -- lifecycle -------------------------------------------------------

    def test_tune_apply_is_idempotent_and_restore_puts_everything_back(self):
        h = self.host()
        h.add_nic("eth9", 2, 2, ["eth9-TxRx-0", "eth9-TxRx-1"])
        deploylib.write_config(self.conf, cpus="0-3", iface="eth9", opts="-p 11211 -b 16384")
        pristine = h.tree()
        out = self.ok(h, "plan")
        self.assertEqual(h.tree(), pristine, "plan changed something")
        self.assertIn("+ net.core.somaxconn: 128 -> 16384", out)
        self.ok(h, "--dry-run", "apply")
        self.assertEqual(h.tree(), pristine, "--dry-run changed something")
        self.ok(h, "apply")
        self.assertEqual(h.read("proc/sys/net/core/somaxconn"), "16384")
        self.assertEqual(h.read("proc/sys/net/ipv4/tcp_max_syn_backlog"), "16384")
        self.assertEqual(h.read("proc/sys/net/ipv4/tcp_fin_timeout"), "15")
        self.assertEqual(h.read("proc/sys/net/ipv4/tcp_slow_start_after_idle"), "0")
        tuned = deploylib.tree(h.root)
        out = self.ok(h, "apply")
        self.assertIn("(nothing changed)", out)
        self.assertEqual(deploylib.tree(h.root), tuned)
        self.ok(h, "--dry-run", "restore")
        self.assertEqual(deploylib.tree(h.root), tuned)
        self.ok(h, "restore")
        self.assertEqual(h.tree(), pristine)

    def test_tune_never_lowers_capacity_or_raises_fin_timeout(self):
        h = self.host()
        h.write("proc/sys/net/core/somaxconn", "65535")
        h.write("proc/sys/net/ipv4/tcp_fin_timeout", "10")
        deploylib.write_config(self.conf)
        conf = self.ok(h, "sysctl-conf")
        self.assertIn("net.core.somaxconn = 65535", conf)
        self.assertIn("net.ipv4.tcp_fin_timeout = 10", conf)
        self.ok(h, "apply")
        self.assertEqual(h.read("proc/sys/net/core/somaxconn"), "65535")
        self.assertEqual(h.read("proc/sys/net/ipv4/tcp_fin_timeout"), "10")

    def test_tune_journal_undoes_exactly_one_run(self):
        h = self.host()
        deploylib.write_config(self.conf, opts="-b 4096")
        self.ok(h, "apply")
        first = h.tree()
        deploylib.write_config(self.conf, opts="-b 20000")
        journal = self.conf + ".journal"
        self.ok(h, "--journal", journal, "apply")
        self.assertEqual(h.read("proc/sys/net/core/somaxconn"), "20000")
        self.ok(h, "undo", journal)
        self.assertEqual(h.tree(), first)

    def test_tune_thp_modes(self):
        for start, want, end in (("always madvise [never]", "", "madvise"),
                                 ("[always] madvise never", "", "always"),
                                 ("always madvise [never]", "always", "always"),
                                 ("always madvise [never]", "keep", "never")):
            h = self.host(thp=start)
            deploylib.write_config(self.conf, thp=want)
            self.ok(h, "apply")
            self.assertEqual(h.tree()["sys/kernel/mm/transparent_hugepage/enabled"], end, (start, want))
        deploylib.write_config(self.conf, thp="sometimes")
        rc, _, err = self.tune(self.host(), "apply")
        self.assertEqual(rc, 1)
        self.assertIn("CORECACHE_THP=sometimes: want madvise, always or keep", err)


if __name__ == "__main__":
    harness.main()
