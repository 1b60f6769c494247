#!/usr/bin/python3
"""test_prometheus.py: the real Prometheus scraping corecache under load.

Debian's prometheus runs on a free loopback port with a temporary config
(one job, corecache's --metrics-port, scraped every second) and a temporary
TSDB directory; it is started and stopped by PID, never as a service.

  - while a client drives a known load (gets that hit and gets that miss,
    counted by the client), Prometheus scrapes corecache; once the load
    stops, Prometheus' HTTP API must report memcached_up 1, the exporter's
    hit and miss counters equal to what the client did, the per-shard
    corecache_* series adding up to the same, each shard's items as
    `stats shards` reports them, several samples taken during the load,
    and a service-time histogram with observations;
  - `promtool check metrics` accepts a scrape (format and naming lint);
  - deploy/prometheus.yml passes `promtool check config`;
  - deploy/grafana/corecache.json is JSON, has the panels operators need
    (hit rate, evictions, memory, connections, per-shard load and
    forwards), every metric its queries name is in a real scrape, and
    every query evaluates without error in this Prometheus.

Exits 77 (skipped) without prometheus/promtool, or against memcached.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from metrics_server import MetricsServer, samples, skip_unless_corecache, wait_until  # noqa: E402

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "corecache.json")
SCRAPE_CONFIG = os.path.join(ROOT, "deploy", "prometheus.yml")
KEYS = 300


class Prometheus:
    """Our own prometheus process on a free port."""

    def __init__(self, target):
        self.dir = tempfile.mkdtemp(prefix="corecache-prom-")
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: corecache\n    static_configs:\n"
                    "      - targets: ['%s']\n" % target)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w+")
        self.proc = None
        self.port = None

    def start(self):
        for _ in range(5):
            self.port = harness.free_port()
            self.proc = subprocess.Popen(
                [PROMETHEUS, "--config.file=" + self.config,
                 "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
            if wait_until(lambda: self.proc.poll() is not None or self.ready(), 30):
                if self.proc.poll() is None:
                    return self
            self.stop()
            if "address already in use" not in self.log_text():
                break
        raise AssertionError("prometheus did not start:\n" + self.log_text())

    def ready(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port, timeout=1) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def query(self, expr):
        """The result vector of an instant query: [(labels, value)]."""
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (self.port, urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=5) as r:
            reply = json.load(r)
        if reply["status"] != "success":
            raise AssertionError("query %s: %s" % (expr, reply))
        data = reply["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def value(self, expr):
        """The single value of a query, or None when it has no result."""
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, (expr, result)
        return result[0][1]

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to our PID
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Load:
    """A client thread: sets KEYS keys, then pipelined gets of present and
    absent keys until told to stop, counting hits and misses exactly."""

    def __init__(self, server):
        self.server = server
        self.hits = self.misses = 0
        self.error = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        try:
            with self.server.conn() as c:
                for i in range(KEYS):
                    c.send("set key%d 0 0 %d\r\nvalue%d\r\n" % (i, len(str(i)) + 5, i))
                for i in range(KEYS):
                    assert c.recv_until(b"\r\n") == b"STORED\r\n"
                i = 0
                deadline = time.monotonic() + 20  # bounded even if never stopped
                while not self.stop.is_set() and time.monotonic() < deadline:
                    batch = []
                    for j in range(20):
                        n = (i * 20 + j) % (2 * KEYS)  # half the names exist
                        batch.append("get key%d\r\n" % n)
                    c.send("".join(batch))
                    for j in range(20):
                        reply = c.recv_until(b"END\r\n")
                        if reply.startswith(b"VALUE"):
                            self.hits += 1
                        else:
                            self.misses += 1
                    i += 1
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


def dashboard_queries(dash):
    """Every PromQL expression of the dashboard (panels and variables)."""
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                exprs.append(t["expr"])
            walk(p.get("panels", []))
    walk(dash["panels"])
    return exprs


METRIC_NAME = re.compile(r"\b((?:memcached|corecache)_[a-z0-9_]+)\b")


class PrometheusTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        for tool in (PROMETHEUS, PROMTOOL):
            if not os.access(tool, os.X_OK):
                harness.skip_process("%s is not installed (Debian package prometheus)" % tool)
        cls.server = MetricsServer(["-t", "2", "-m", "16"]).start()
        cls.prom = Prometheus("127.0.0.1:%d" % cls.server.metrics_port).start()

    @classmethod
    def tearDownClass(cls):
        cls.prom.cleanup()
        cls.server.stop()

    def test_prometheus_sees_what_the_load_did(self):
        prom = self.prom
        up = wait_until(lambda: prom.value('up{job="corecache"}') == 1, 20)
        self.assertTrue(up, "Prometheus never scraped corecache:\n" + prom.log_text())
        load = Load(self.server)
        started = time.time()
        load.thread.start()
        time.sleep(3.5)  # several scrapes land during the load
        load.stop.set()
        load.thread.join(30)
        self.assertIsNone(load.error)
        self.assertGreater(load.hits, 100)
        self.assertGreater(load.misses, 100)

        hit = 'memcached_commands_total{job="corecache",command="get",status="hit"}'
        miss = 'memcached_commands_total{job="corecache",command="get",status="miss"}'
        # a scrape after the load ended carries the final counts
        final = wait_until(lambda: prom.value(hit) == load.hits, 15)
        self.assertTrue(final, "hits: Prometheus has %s, the client did %d" % (prom.value(hit), load.hits))
        self.assertEqual(prom.value(miss), load.misses)
        self.assertEqual(prom.value('memcached_up{job="corecache"}'), 1)
        self.assertEqual(prom.value('memcached_current_items{job="corecache"}'), KEYS)
        self.assertEqual(prom.value('memcached_commands_total{job="corecache",command="set",status="hit"}'), KEYS)

        # corecache's per-shard series add up to the same
        self.assertEqual(prom.value('count(corecache_requests_total{job="corecache"})'), 2)
        self.assertEqual(prom.value('sum(corecache_get_hits_total{job="corecache"})'), load.hits)
        self.assertEqual(prom.value('sum(corecache_get_misses_total{job="corecache"})'), load.misses)
        self.assertEqual(prom.value('sum(corecache_curr_items{job="corecache"})'), KEYS)
        self.assertEqual(prom.value('sum(corecache_forwarded_out_total{job="corecache"})'),
                         prom.value('sum(corecache_forwarded_in_total{job="corecache"})'))
        requests = prom.value('sum(corecache_requests_total{job="corecache"})')
        self.assertEqual(requests, KEYS + load.hits + load.misses)
        # and each shard's items are what `stats shards` says
        shards = self.server.stats("shards")
        for s in (0, 1):
            self.assertEqual(prom.value('corecache_curr_items{job="corecache",shard="%d"}' % s),
                             float(shards["%d:curr_items" % s]))
        # scraped under load: the hit counter grew across several samples
        window = int(time.time() - started) + 2
        grew = prom.value('count_over_time(%s[%ds])' % (hit, window))
        self.assertGreaterEqual(grew, 3)
        self.assertGreater(prom.value('max_over_time(rate(%s[3s])[%ds:1s])' % (hit, window)), 0)
        # the service-time histogram observed a sample of the requests
        timed = prom.value('sum(corecache_request_duration_seconds_count{job="corecache"})')
        self.assertGreater(timed, 0)
        self.assertLess(timed, requests)
        p99 = prom.value('histogram_quantile(0.99, sum by (le) (corecache_request_duration_seconds_bucket{job="corecache"}))')
        self.assertGreater(p99, 0)
        self.assertLess(p99, 1.1)

    def test_promtool_accepts_a_scrape(self):
        text = self.server.scrape()
        proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True,
                              timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(proc.stdout + proc.stderr, b"")

    def test_scrape_config_is_valid(self):
        proc = subprocess.run([PROMTOOL, "check", "config", SCRAPE_CONFIG], capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_dashboard_queries_name_real_metrics_and_evaluate(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        titles = " | ".join(p.get("title", "") for p in dash["panels"]).lower()
        for needed in ("hit rate", "evictions", "memory", "connections", "requests per shard", "forwards"):
            self.assertIn(needed, titles)
        exprs = dashboard_queries(dash)
        self.assertGreater(len(exprs), 15)
        scraped = {series.split("{")[0] for series in samples(self.server.scrape())}
        for expr in exprs:
            names = METRIC_NAME.findall(expr)
            self.assertTrue(names, expr)
            for name in names:
                self.assertIn(name, scraped, "the dashboard asks for %s, which no scrape has" % name)
            # Grafana's variables, as Grafana would fill them in
            promql = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
            self.prom.query(promql)  # raises unless Prometheus accepts it
        variable = dash["templating"]["list"][1]["definition"]
        self.assertIn(METRIC_NAME.search(variable).group(1), scraped)


if __name__ == "__main__":
    skip_unless_corecache()
    harness.main()
