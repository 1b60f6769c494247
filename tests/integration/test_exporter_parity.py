#!/usr/bin/python3
"""test_exporter_parity.py: memcached_exporter's families, from corecache as from memcached.

memcached_exporter (v0.11, pkg/exporter/exporter.go) is not packaged by
Debian, and its Go modules cannot be fetched here, so this test applies the
exporter's own derivation rules to the `stats`, `stats settings`, `stats
items` and `stats slabs` replies of both servers: which STAT name yields
which family, and under which condition (a key present; `lru_crawler yes`
for the crawler settings; `extstore_limit_maxbytes` for extstore). The rules
below are transcribed from parseStats and parseStatsSettings. Issue 16 found
46 families on corecache against 67 on memcached 1.6.18; the sets must be
equal, and corecache's built-in /metrics endpoint must describe every one,
with the crawler settings' values as `stats settings` reports them.

Where a `memcached_exporter` binary is on PATH (built outside this repo
from its source; Debian 12 does not ship it), the real exporter scrapes
both servers too, and its family sets must be equal, and equal to the
transcribed rules' (the second test; skipped without the binary).
"""

import os
import shutil
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MEMCACHED = "/usr/bin/memcached"

# parseStats: (STAT name, family), each emitted when the name is present.
GENERAL = [(op + suffix, "memcached_commands_total")
           for op in ("get", "delete", "incr", "decr", "cas", "touch") for suffix in ("_hits", "_misses")] + [
    ("uptime", "memcached_uptime_seconds"), ("time", "memcached_time_seconds"),
    ("cas_badval", "memcached_commands_total"), ("cmd_flush", "memcached_commands_total"),
    ("cmd_set", "memcached_commands_total"),
    ("rusage_user", "memcached_process_user_cpu_seconds_total"),
    ("rusage_system", "memcached_process_system_cpu_seconds_total"),
    ("bytes", "memcached_current_bytes"), ("limit_maxbytes", "memcached_limit_bytes"),
    ("curr_items", "memcached_current_items"), ("total_items", "memcached_items_total"),
    ("bytes_read", "memcached_read_bytes_total"), ("bytes_written", "memcached_written_bytes_total"),
    ("curr_connections", "memcached_current_connections"),
    ("total_connections", "memcached_connections_total"),
    ("rejected_connections", "memcached_connections_rejected_total"),
    ("conn_yields", "memcached_connections_yielded_total"),
    ("listen_disabled_num", "memcached_connections_listener_disabled_total"),
    ("evictions", "memcached_items_evicted_total"), ("reclaimed", "memcached_items_reclaimed_total"),
    ("lru_crawler_starts", "memcached_lru_crawler_starts_total"),
    ("crawler_items_checked", "memcached_lru_crawler_items_checked_total"),
    ("crawler_reclaimed", "memcached_lru_crawler_reclaimed_total"),
    ("moves_to_cold", "memcached_lru_crawler_moves_to_cold_total"),
    ("moves_to_warm", "memcached_lru_crawler_moves_to_warm_total"),
    ("moves_within_lru", "memcached_lru_crawler_moves_within_lru_total"),
    ("total_malloced", "memcached_malloced_bytes"),
    ("accepting_conns", "memcached_accepting_connections"),
]
EXTSTORE = ["memcached_extstore_compact_lost_total"]  # only with extstore_limit_maxbytes (never here)
ITEMS = [("number", "memcached_slab_current_items"), ("age", "memcached_slab_items_age_seconds"),
         ("hits_to_hot", "memcached_slab_lru_hits_total"), ("hits_to_warm", "memcached_slab_lru_hits_total"),
         ("hits_to_cold", "memcached_slab_lru_hits_total"), ("hits_to_temp", "memcached_slab_lru_hits_total"),
         ("crawler_reclaimed", "memcached_slab_items_crawler_reclaimed_total"),
         ("evicted", "memcached_slab_items_evicted_total"),
         ("evicted_nonzero", "memcached_slab_items_evicted_nonzero_total"),
         ("evicted_time", "memcached_slab_items_evicted_time_seconds"),
         ("evicted_unfetched", "memcached_slab_items_evicted_unfetched_total"),
         ("expired_unfetched", "memcached_slab_items_expired_unfetched_total"),
         ("outofmemory", "memcached_slab_items_outofmemory_total"),
         ("reclaimed", "memcached_slab_items_reclaimed_total"),
         ("tailrepairs", "memcached_slab_items_tailrepairs_total"),
         ("mem_requested", "memcached_slab_mem_requested_bytes"),
         ("moves_to_cold", "memcached_slab_items_moves_to_cold"),
         ("moves_to_warm", "memcached_slab_items_moves_to_warm"),
         ("moves_within_lru", "memcached_slab_items_moves_within_lru"),
         ("number_hot", "memcached_slab_hot_items"), ("number_warm", "memcached_slab_warm_items"),
         ("number_cold", "memcached_slab_cold_items"), ("number_temp", "memcached_slab_temporary_items"),
         ("age_hot", "memcached_slab_hot_age_seconds"), ("age_warm", "memcached_slab_warm_age_seconds")]
SLABS = [(op + "_hits", "memcached_slab_commands_total")
         for op in ("get", "delete", "incr", "decr", "cas", "touch")] + [
    ("cas_badval", "memcached_slab_commands_total"), ("cmd_set", "memcached_slab_commands_total"),
    ("chunk_size", "memcached_slab_chunk_size_bytes"), ("chunks_per_page", "memcached_slab_chunks_per_page"),
    ("total_pages", "memcached_slab_current_pages"), ("total_chunks", "memcached_slab_current_chunks"),
    ("used_chunks", "memcached_slab_chunks_used"), ("free_chunks", "memcached_slab_chunks_free"),
    ("free_chunks_end", "memcached_slab_chunks_free_end"),
    ("mem_requested", "memcached_slab_mem_requested_bytes")]
# parseStatsSettings: maxconns always; the rest only when lru_crawler is "yes".
CRAWLER_SETTINGS = [("lru_crawler", "memcached_lru_crawler_enabled"),
                    ("lru_crawler_sleep", "memcached_lru_crawler_sleep"),
                    ("lru_crawler_tocrawl", "memcached_lru_crawler_to_crawl"),
                    ("lru_maintainer_thread", "memcached_lru_crawler_maintainer_thread"),
                    ("hot_lru_pct", "memcached_lru_crawler_hot_percent"),
                    ("warm_lru_pct", "memcached_lru_crawler_warm_percent"),
                    ("hot_max_factor", "memcached_lru_crawler_hot_max_factor"),
                    ("warm_max_factor", "memcached_lru_crawler_warm_max_factor")]


def per_class(stats, prefix):
    """{class: {name: value}} from `stats items` (prefix "items:") or `stats slabs`."""
    out = {}
    for key, value in stats.items():
        parts = key[len(prefix):].split(":") if key.startswith(prefix) else []
        if len(parts) == 2 and parts[0].isdigit():
            out.setdefault(int(parts[0]), {})[parts[1]] = value
    return out


def exporter_families(srv):
    general, settings = srv.stats(), srv.stats("settings")
    slabs_reply = srv.stats("slabs")
    items, slabs = per_class(srv.stats("items"), "items:"), per_class(slabs_reply, "")
    # memcached 1.6 reports total_malloced in `stats slabs`, and gomemcache's
    # Stats() gives the exporter those server-wide lines with `stats`'
    # (found by running the real exporter: the second test)
    general = dict(general)
    general.update({k: v for k, v in slabs_reply.items() if ":" not in k})
    fams = {"memcached_up", "memcached_version"}
    fams |= {f for name, f in GENERAL if name in general}
    if "extstore_limit_maxbytes" in general:
        fams |= set(EXTSTORE)
    for stats in items.values():
        fams |= {f for name, f in ITEMS if name in stats}
    for stats in slabs.values():
        fams |= {f for name, f in SLABS if name in stats}
    if "maxconns" in settings:
        fams.add("memcached_max_connections")
    if settings.get("lru_crawler") == "yes":
        fams |= {f for name, f in CRAWLER_SETTINGS if name in settings}
    return fams


def fill(srv):
    with srv.conn() as c:
        for i in range(200):
            size = (i * 53) % 2000 + 1
            c.send(b"set k%d 0 0 %d\r\n%s\r\nget k%d\r\n" % (i, size, b"v" * size, i))
            c.recv_until(b"END\r\n")


class ExporterParityTest(unittest.TestCase):

    def test_issue16_exporter_families_match_memcached(self):
        if harness.is_memcached():
            self.skipTest("compares corecache with memcached")
        mport = harness.free_port()
        ours = harness.Server(flags=["-t", "2", "--metrics-port", str(mport)])
        ref = harness.Server(binary=MEMCACHED, name="memcached")
        with ours, ref:
            fill(ours)
            fill(ref)
            mine, theirs = exporter_families(ours), exporter_families(ref)
            self.assertGreaterEqual(len(theirs), 60, sorted(theirs))
            self.assertEqual(sorted(theirs - mine), [], "families memcached gives and corecache does not")
            self.assertEqual(sorted(mine - theirs), [], "families corecache gives and memcached does not")

            body = ""
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not body:
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5) as r:
                        body = r.read().decode()
                except OSError:
                    time.sleep(0.1)
            described = {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")}
            self.assertEqual(sorted(theirs - described), [], "exporter families missing from /metrics")

            # the crawler settings: /metrics carries what `stats settings` says
            settings = ours.stats("settings")
            samples = dict(line.rsplit(" ", 1) for line in body.splitlines()
                           if line and not line.startswith("#"))
            for name, family in CRAWLER_SETTINGS:
                value = settings[name]
                want = {"yes": 1.0, "no": 0.0}.get(value)
                want = float(value) if want is None else want
                self.assertEqual(float(samples[family]), want, (name, value, family))
            self.assertEqual(float(samples["memcached_connections_listener_disabled_total"]),
                             float(ours.stats()["listen_disabled_num"]))

    def test_issue16_real_memcached_exporter_families_match(self):
        if harness.is_memcached():
            self.skipTest("compares corecache with memcached")
        exporter = shutil.which("memcached_exporter")
        if exporter is None:
            self.skipTest("memcached_exporter is not on PATH (Debian 12 does not ship it)")
        ours = harness.Server(flags=["-t", "2"])
        ref = harness.Server(binary=MEMCACHED, name="memcached")
        with ours, ref:
            fill(ours)
            fill(ref)
            mine, theirs = scrape_families(exporter, ours), scrape_families(exporter, ref)
            sys.stdout.write("memcached_exporter: %d families on memcached, %d on corecache\n"
                             % (len(theirs), len(mine)))
            self.assertGreaterEqual(len(theirs), 60, sorted(theirs))
            self.assertEqual(sorted(theirs - mine), [], "families memcached gives and corecache does not")
            self.assertEqual(sorted(mine - theirs), [], "families corecache gives and memcached does not")
            # the transcribed rules above say what the real exporter does
            self.assertEqual(sorted(exporter_families(ref) ^ theirs), [], "rules differ from the exporter")


def scrape_families(exporter, srv):
    """The memcached_* families the real exporter reports for srv (its own
    build_info, go_* and process_* left out)."""
    port = harness.free_port()
    proc = subprocess.Popen([exporter, "--memcached.address=127.0.0.1:%d" % srv.port,
                             "--web.listen-address=127.0.0.1:%d" % port],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        body = ""
        deadline = time.monotonic() + 20
        while "memcached_up 1" not in body:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("memcached_exporter gave no scrape with memcached_up 1: %r"
                                     % body[-500:])
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.1)
        return {line.split()[2] for line in body.splitlines()
                if line.startswith("# TYPE memcached_") and not line.startswith("# TYPE memcached_exporter_")}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    harness.main()
