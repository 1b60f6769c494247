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
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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
    if args.markdown:
        print("| server | items held | idle RSS (MB) | loaded RSS (MB) | RSS growth per item (B) | "
              "RSS per item of the next %d (B) | server's bytes per item (B) |" % args.items)
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f |" %
                  (r["server"], r["items"], r["rss_idle_mb"], r["rss_mb"], r["rss_per_item"],
                   r["marginal_per_item"], r["bytes_per_item"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
