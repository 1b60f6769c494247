#!/usr/bin/python3
"""test_stats_format.py: every stats reply, read the way memcached_exporter reads it.

memcached_exporter (github.com/prometheus/memcached_exporter, pkg/exporter
and its gomemcache client) asks `stats`, `stats slabs`, `stats items` and
`stats settings`, and reads each reply like this:

  - lines until exactly "END\\r\\n"; each line split on single spaces;
  - a line of `stats`/`stats slabs`/`stats items` counts only if it has
    exactly three parts and the first starts with "STAT"; its name split on
    ':' gives a global stat (1 part), a slab stat "<int>:<name>" (2 parts)
    or an item stat "items:<int>:<name>" (3 parts), and a slab or item id
    that is not an integer aborts the scrape;
  - `stats settings` lines must have three (or four) parts, else the scrape
    fails;
  - every value it maps is parsed with strconv.ParseFloat (the rusage
    values as "<seconds>.<microseconds>"), and any parse error sets
    memcached_up to 0.

This test applies those rules, more strictly (every line must have three
parts), to every stats reply of the server under test after a workload
that touches every counter family, and runs the exporter's mapping over the
result: a server that passes produces memcached_up 1 and every series the
exporter would. It also checks that a value is numeric wherever memcached
1.6.18 reports a number under the same name: the control run is against
memcached itself (always, when /usr/bin/memcached exists), so the rules are
proven against the reference. `stats shards` (corecache's own) follows the
same rules, and its per-shard values add up to the totals of `stats`.
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CORECACHE = not harness.is_memcached()
GROUPS = ["", "settings", "items", "slabs", "conns", "sizes"]
TIMEVAL = re.compile(r"^\d+\.\d{6}$")


def is_float(text):
    """strconv.ParseFloat's acceptance, for the values stats produce."""
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and text.lower() not in ("nan", "inf", "+inf", "-inf", "infinity")


def workload(server):
    """Touches every family of counters: hits, misses, sets of two sizes,
    cas hit/miss/badval, incr/decr, touch, delete, flush, a too-large set."""
    with server.conn() as c:
        cmds = [
            b"set a 0 0 1\r\n1\r\n", b"set big 0 0 3000\r\n" + b"x" * 3000 + b"\r\n",
            b"get a\r\n", b"get nope\r\n", b"gets a\r\n",
            b"incr a 5\r\n", b"decr a 1\r\n", b"incr nope 1\r\n", b"decr nope 1\r\n",
            b"touch a 100\r\n", b"touch nope 100\r\n",
            b"cas a 0 0 1 1\r\n2\r\n", b"cas nope 0 0 1 1\r\n2\r\n",
            b"delete big\r\n", b"delete nope\r\n",
            b"set huge 0 0 2000000\r\n" + b"y" * 2000000 + b"\r\n",
        ]
        for cmd in cmds:
            c.send(cmd)
            c.recv_until(b"END\r\n" if cmd.startswith(b"get") else b"\r\n")
        # a cas that stores: fetch the unique first
        c.send(b"gets a\r\n")
        reply = c.recv_until(b"END\r\n")
        unique = reply.split(b"\r\n")[0].split()[4]
        c.send(b"cas a 0 0 1 " + unique + b"\r\n3\r\n")
        assert c.recv_until(b"\r\n") == b"STORED\r\n"
        c.send(b"flush_all 1000\r\n")
        c.recv_until(b"\r\n")


def raw_group(server, group):
    cmd = (("stats " + group).strip() + "\r\n").encode()
    with server.conn() as c:
        c.send(cmd)
        raw = c.recv_until(b"END\r\n")
        extra = c.recv_idle(idle=0.2)
    return raw, extra


class ExporterRules:
    """memcached_exporter's reading of stats replies, as assertions."""

    def __init__(self, test):
        self.t = test

    def lines(self, raw, group):
        self.t.assertTrue(raw.endswith(b"END\r\n"), "stats %s: no END: %r" % (group, raw[-80:]))
        body = raw[:-len(b"END\r\n")]
        self.t.assertTrue(body == b"" or body.endswith(b"\r\n"), "stats %s: a line without CRLF" % group)
        out = []
        for line in body.split(b"\r\n")[:-1] if body else []:
            parts = line.split(b" ")
            self.t.assertEqual(len(parts), 3, "stats %s: not three tokens: %r" % (group, line))
            self.t.assertEqual(parts[0], b"STAT", "stats %s: %r" % (group, line))
            self.t.assertNotEqual(parts[1], b"", line)
            self.t.assertNotEqual(parts[2], b"", line)
            out.append((parts[1].decode(), parts[2].decode()))
        names = [n for n, _ in out]
        self.t.assertEqual(len(names), len(set(names)), "stats %s: a name repeats" % group)
        return out

    def classify(self, pairs):
        """gomemcache's statsFromAddr: global, slab and item maps."""
        stats, slabs, items = {}, {}, {}
        for name, value in pairs:
            f = name.split(":")
            if len(f) == 1:
                stats[name] = value
            elif len(f) == 2:
                self.t.assertRegex(f[0], r"^-?\d+$", "slab id of %s" % name)
                slabs.setdefault(int(f[0]), {})[f[1]] = value
            elif len(f) == 3:
                self.t.assertRegex(f[1], r"^-?\d+$", "item class of %s" % name)
                items.setdefault(int(f[1]), {})[f[2]] = value
        return stats, slabs, items

    def exporter_series(self, stats, slabs, items, settings):
        """The exporter's parseStats/parseStatsSettings; returns the series
        it would produce, failing on any value it could not parse."""
        series = {}

        def parse(m, key, name):
            if key not in m:
                return None
            self.t.assertTrue(is_float(m[key]), "%s=%r: ParseFloat fails" % (key, m[key]))
            series[name] = float(m[key])
            return series[name]

        for op in ("get", "delete", "incr", "decr", "cas", "touch"):
            parse(stats, op + "_hits", "commands{%s,hit}" % op)
            parse(stats, op + "_misses", "commands{%s,miss}" % op)
        for key in ("uptime", "time", "cas_badval", "cmd_flush", "cmd_set", "bytes", "limit_maxbytes",
                    "curr_items", "total_items", "bytes_read", "bytes_written", "curr_connections",
                    "total_connections", "rejected_connections", "conn_yields", "listen_disabled_num",
                    "evictions", "reclaimed", "store_too_large", "store_no_memory", "lru_crawler_starts",
                    "direct_reclaims", "crawler_items_checked", "crawler_reclaimed", "moves_to_cold",
                    "moves_to_warm", "moves_within_lru", "total_malloced", "accepting_conns"):
            parse(stats, key, key)
        for key in ("rusage_user", "rusage_system"):
            if key in stats:
                self.t.assertRegex(stats[key], TIMEVAL, key)
                series[key] = float(stats[key])
        self.t.assertIn("version", stats)
        for cls, u in items.items():
            for key in ("number", "age", "hits_to_hot", "hits_to_warm", "hits_to_cold", "hits_to_temp",
                        "crawler_reclaimed", "evicted", "evicted_nonzero", "evicted_time",
                        "evicted_unfetched", "expired_unfetched", "outofmemory", "reclaimed",
                        "store_too_large", "store_no_memory", "tailrepairs", "mem_requested",
                        "moves_to_cold", "moves_to_warm", "moves_within_lru", "number_hot",
                        "number_warm", "number_cold", "number_temp", "age_hot", "age_warm"):
                parse(u, key, "items%d:%s" % (cls, key))
        for cls, v in slabs.items():
            for key in ("get_hits", "delete_hits", "incr_hits", "decr_hits", "cas_hits", "touch_hits",
                        "cas_badval", "cmd_set", "chunk_size", "chunks_per_page", "total_pages",
                        "total_chunks", "used_chunks", "free_chunks", "free_chunks_end",
                        "mem_requested"):
                parse(v, key, "slab%d:%s" % (cls, key))
        parse(settings, "maxconns", "maxconns")
        if settings.get("lru_crawler") == "yes":
            for key in ("lru_crawler_sleep", "lru_crawler_tocrawl", "hot_lru_pct", "warm_lru_pct",
                        "hot_max_factor", "warm_max_factor"):
                parse(settings, key, key)
            if "lru_maintainer_thread" in settings:
                self.t.assertIn(settings["lru_maintainer_thread"], ("yes", "no"))
        return series


class StatsFormatTest(unittest.TestCase):
    """Against the server under test (CORECACHE_SERVER) and memcached."""

    @classmethod
    def setUpClass(cls):
        cls.servers = []
        binaries = [harness.SERVER]
        if CORECACHE and os.path.exists(harness.MEMCACHED):
            binaries.append(harness.MEMCACHED)
        for binary in binaries:
            srv = harness.Server(["-t", "2", "-m", "16"], binary=binary).start()
            workload(srv)
            cls.servers.append(srv)

    @classmethod
    def tearDownClass(cls):
        for srv in cls.servers:
            srv.stop()

    def replies(self, srv):
        out = {}
        for group in GROUPS + (["shards"] if not harness.is_memcached(srv.binary) else []):
            raw, extra = raw_group(srv, group)
            self.assertEqual(extra, b"", "stats %s: bytes after END" % group)
            out[group] = raw
        return out

    def test_every_reply_follows_exporter_rules(self):
        for srv in self.servers:
            with self.subTest(server=srv.name):
                rules = ExporterRules(self)
                replies = self.replies(srv)
                parsed = {g: rules.lines(raw, g) for g, raw in replies.items()}
                stats, _, _ = rules.classify(parsed[""])
                _, slabs, _ = rules.classify(parsed["slabs"])
                _, _, items = rules.classify(parsed["items"])
                settings = dict(parsed["settings"])
                series = rules.exporter_series(stats, slabs, items, settings)
                # the workload shows up where the exporter looks
                self.assertEqual(series["commands{get,hit}"], 3, series)
                self.assertGreaterEqual(series["commands{get,miss}"], 1)
                self.assertEqual(series["commands{cas,miss}"], 1)
                self.assertEqual(series["commands{cas,hit}"], 1)
                self.assertEqual(series["commands{incr,miss}"], 1)
                self.assertEqual(series["store_too_large"], 1)
                self.assertGreater(series["rusage_user"] + series["rusage_system"], 0)
                self.assertTrue(slabs, "stats slabs lists no class")
                self.assertTrue(items, "stats items lists no class")
                for cls_id in items:
                    self.assertIn(cls_id, slabs, "items class %d has no slab" % cls_id)
                for key in ("pid", "uptime", "time", "version", "curr_connections", "total_connections",
                            "rejected_connections", "cmd_get", "cmd_set", "get_hits", "get_misses",
                            "get_expired", "get_flushed", "cas_hits", "cas_misses", "cas_badval",
                            "evictions", "reclaimed", "expired_unfetched", "evicted_unfetched",
                            "store_too_large", "store_no_memory", "bytes", "limit_maxbytes",
                            "curr_items", "total_items", "threads"):
                    self.assertIn(key, stats, "stats lacks %s" % key)
                for key in ("chunk_size", "chunks_per_page", "total_pages", "total_chunks", "used_chunks",
                            "free_chunks", "free_chunks_end", "get_hits", "cmd_set"):
                    self.assertIn(key, next(iter(slabs.values())), "stats slabs lacks %s" % key)
                for key in ("number", "age", "mem_requested", "evicted", "evicted_nonzero",
                            "evicted_time", "outofmemory", "tailrepairs", "reclaimed",
                            "expired_unfetched", "evicted_unfetched", "crawler_reclaimed",
                            "crawler_items_checked", "lrutail_reflocked"):
                    self.assertIn(key, next(iter(items.values())), "stats items lacks %s" % key)

    def test_numbers_where_memcached_has_numbers(self):
        if len(self.servers) < 2:
            self.skipTest("needs both corecache and /usr/bin/memcached")
        rules = ExporterRules(self)
        ours, ref = (self.replies(s) for s in self.servers)
        for group in ("", "settings", "items", "slabs"):
            mine = dict(rules.lines(ours[group], group))
            theirs = dict(rules.lines(ref[group], group))
            common = set(mine) & set(theirs)
            self.assertTrue(common, "stats %s: no name in common with memcached" % group)
            for name in sorted(common):
                if name in ("version", "inter", "hash_algorithm"):
                    continue
                self.assertEqual(is_float(mine[name]), is_float(theirs[name]),
                                 "stats %s %s: %r here, %r in memcached" % (group, name, mine[name],
                                                                             theirs[name]))
            if group in ("", "items", "slabs"):
                for name in sorted(set(mine) - set(theirs)):
                    if name not in ("version", "corecache_version"):
                        self.assertTrue(is_float(mine[name]), "%s %s=%r" % (group, name, mine[name]))

    def test_stats_shards_add_up_to_stats(self):
        srv = self.servers[0]
        if harness.is_memcached(srv.binary):
            self.skipTest("stats shards is corecache's")
        rules = ExporterRules(self)
        with srv.conn() as c:
            # one connection: nothing changes between the two replies but
            # this connection's own traffic counters
            c.send(b"stats\r\n")
            total = dict(rules.lines(c.recv_until(b"END\r\n"), ""))
            c.send(b"stats shards\r\n")
            shards = rules.lines(c.recv_until(b"END\r\n"), "shards")
        per = {}
        for name, value in shards:
            shard, _, key = name.partition(":")
            self.assertRegex(shard, r"^\d+$", name)
            self.assertTrue(is_float(value), "%s=%r" % (name, value))
            per.setdefault(int(shard), {})[key] = float(value)
        self.assertEqual(sorted(per), list(range(int(total["threads"]))))
        for key in ("requests", "forwarded_out", "forwarded_in", "curr_items", "bytes", "evictions",
                    "hit_ratio"):
            for shard in per:
                self.assertIn(key, per[shard], "shard %d lacks %s" % (shard, key))
        for key in ("get_hits", "get_misses", "cmd_set", "curr_items", "bytes", "total_items", "evictions",
                    "cas_hits", "store_too_large"):
            self.assertEqual(sum(per[s][key] for s in per), float(total[key]), key)
        # forwards: every key sent away is served by another shard
        self.assertEqual(sum(per[s]["forwarded_out"] for s in per), sum(per[s]["forwarded_in"] for s in per))
        for s in per:
            hits, misses = per[s]["get_hits"], per[s]["get_misses"]
            want = hits / (hits + misses) if hits + misses else 0.0
            self.assertAlmostEqual(per[s]["hit_ratio"], want, places=5)

    def test_stats_reset_reply(self):
        # its own servers: the class's keep their counters for the others
        for srv in self.servers:
            with harness.Server(["-t", "2", "-m", "16"], binary=srv.binary) as fresh:
                workload(fresh)
                self.assertEqual(fresh.command(b"stats reset\r\n", terminator=b"\r\n"), b"RESET\r\n")
                rules = ExporterRules(self)
                stats = dict(rules.lines(raw_group(fresh, "")[0], ""))
                self.assertEqual(stats["get_hits"], "0")
                self.assertEqual(stats["curr_items"], "1")  # gauges survive


if __name__ == "__main__":
    harness.main()
