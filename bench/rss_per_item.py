#!/usr/bin/env python3
"""bench/rss_per_item.py: RSS growth per item, corecache beside memcached 1.6.

Each server is started fresh with the same flags (-t 2 -m 1024 by default;
memcached also -U 0), its RSS read from /proc once it answers, then
--items keys of --value bytes are loaded (keys "memtier-<n>", as
memtier_benchmark names them; pipelined sets with noreply, then one
`stats` to wait for the last of them), and the RSS read again:

    bytes per item = (RSS after - RSS before) / items held

(bench/MEASURE's recipe: it includes the buffers and rings a loaded server
touches once). Then --items more keys are loaded and their RSS growth per
item printed too: memory per item alone, the fixed part being warm.

It also prints the server's own `bytes` (item memory as the server counts
it) per item, and the RSS of the idle server, which is the fixed overhead
(buffers, rings, tables) on top of the items.

    bench/rss_per_item.py [--build build] [--items 1000000] [--value 100]
                          [--threads 2] [--memory 1024] [--markdown]
                          [--results bench/RESULTS.md]

--results writes the table, with the command and the commit, as this
script's section of RESULTS.md (benchlib.write_section).
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from hitratio import MEMCACHED, Server, rss_kb  # noqa: E402


def load(server, items, value, batch=2000, first=0):
    blob = b"x" * value
    for start in range(first, first + items, batch):
        out = []
        for i in range(start, min(first + items, start + batch)):
            out.append(b"set memtier-%d 0 0 %d noreply\r\n%s\r\n" % (i, value, blob))
        server.sock.sendall(b"".join(out))
    return server.stats()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--items", type=int, default=1000000)
    ap.add_argument("--value", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory", type=int, default=1024)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--results", help="write the table as this script's section of RESULTS.md")
    args = ap.parse_args()
    corecache = os.path.join(args.build, "corecache")
    common = ["-t", str(args.threads), "-m", str(args.memory)]
    rows = []
    for name, argv in (("memcached", [MEMCACHED, "-U", "0"]), ("corecache", [corecache])):
        server = Server(name, argv + common)
        try:
            time.sleep(0.5)
            before = rss_kb(server.proc.pid)
            t0 = time.monotonic()
            st = load(server, args.items, args.value)
            secs = time.monotonic() - t0
            time.sleep(0.5)
            after = rss_kb(server.proc.pid)
            held = int(st["curr_items"])
            # the next `items` keys: the RSS they add is per-item memory
            # only, the buffers and rings being warm by now
            st2 = load(server, args.items, args.value, first=args.items)
            time.sleep(0.5)
            after2 = rss_kb(server.proc.pid)
            held2 = int(st2["curr_items"]) - held
            row = {
                "server": name, "items": held, "rss_idle_mb": before / 1024,
                "rss_mb": after / 1024,
                "rss_per_item": (after - before) * 1024 / held if held else 0,
                "bytes_per_item": int(st["bytes"]) / held if held else 0,
                "marginal_per_item": (after2 - after) * 1024 / held2 if held2 > 0 else 0,
                "seconds": secs,
            }
            rows.append(row)
            print("%-9s items %8d  idle RSS %6.1f MB  loaded RSS %7.1f MB  RSS/item %6.1f B  "
                  "next %d items: %6.1f B each  bytes/item %6.1f B  (%.1f s)" %
                  (name, held, row["rss_idle_mb"], row["rss_mb"], row["rss_per_item"], held2,
                   row["marginal_per_item"], row["bytes_per_item"], secs),
                  file=sys.stderr, flush=True)
        finally:
            server.stop()
    table = ["| server | items held | idle RSS (MB) | loaded RSS (MB) | RSS growth per item (B) | "
             "RSS per item of the next %d (B) | server's bytes per item (B) |" % args.items,
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        table.append("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f |" %
                     (r["server"], r["items"], r["rss_idle_mb"], r["rss_mb"], r["rss_per_item"],
                      r["marginal_per_item"], r["bytes_per_item"]))
    if args.markdown:
        print("\n".join(table))
    if args.results:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "unknown"
        benchlib.write_section(args.results, "rss_per_item.py", "\n".join([
            "## Memory per item (issue 11)", "",
            "`bench/rss_per_item.py --results bench/RESULTS.md` (commit %s, %s): each server freshly "
            "started with `-t %d -m %d`, %d keys of %d bytes loaded by pipelined noreply sets, RSS read "
            "before and after; then as many again, whose RSS growth is memory per item alone. Target "
            "(issue 11): at most 130 B per item." % (commit, time.strftime("%Y-%m-%d"), args.threads,
                                                      args.memory, args.items, args.value),
            ""] + table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
