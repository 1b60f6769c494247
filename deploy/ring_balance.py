#!/usr/bin/python3
"""ring_balance.py: how evenly a libketama ring spreads keys over your nodes.

    deploy/ring_balance.py 10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211
    deploy/ring_balance.py --entries 8 10.0.0.1,10.0.0.2,10.0.0.3
    deploy/ring_balance.py --random 2000 -n 3

libketama's consistent hashing -- libmemcached with
MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED (pylibmc's "ketama_weighted", PHP
memcached's OPT_LIBKETAMA_COMPATIBLE) and twemproxy's "distribution: ketama"
-- puts 160 points per server on a 32-bit circle, at MD5("host-i") (or
"host:port-i" when the port is not 11211). A node's share of the keys is the
share of the circle its points own, which depends only on the server
strings: with few nodes it is often far from even. This prints each node's
share for a given list, so the layout can be checked before it is deployed.

--entries N lists every node N times (ports 11211, 11212, ...): a corecache
node serves several ports with `-l host:11211,host:11212,...`, and a client
given all of them puts N x 160 points per node on the circle, which evens
the ring out (the key -> node mapping stays consistent; a node that fails
fails as all its entries). --random N reports, over N random address sets,
how often the worst node is within 5% of even.

The ring below is a re-implementation checked against the real clients:
tests/cluster/ asserts that every key sits on exactly the node it names.
Stdlib only.
"""

import argparse
import bisect
import hashlib
import random
import struct
import sys


def ketama_name(host, port):
    """libmemcached and twemproxy hash "host" for port 11211, else "host:port"."""
    return host if port == 11211 else "%s:%d" % (host, port)


def ketama_points(name, points=160):
    """libketama's points for one server among equal weights: MD5("name-i")
    for i = 0, 1, ..., each digest giving four little-endian 32-bit points."""
    out = []
    for i in range(points // 4):
        digest = hashlib.md5(("%s-%d" % (name, i)).encode()).digest()
        out.extend(struct.unpack("<4I", digest))
    return out


def md5_32(key):
    """libmemcached's MD5 key hash: the digest's first four bytes, little-endian."""
    return struct.unpack_from("<I", hashlib.md5(key.encode()).digest())[0]


def twemproxy_fnv1a_64(key):
    """twemproxy's "fnv1a_64": FNV-1a computed in 32 bits with the 64-bit
    constants truncated (its nc_hash_fnv.c), which is what its ring sees."""
    h = 0xcbf29ce484222325 & 0xffffffff
    for b in key.encode():
        h ^= b
        h = (h * (0x100000001b3 & 0xffffffff)) & 0xffffffff
    return h


def one_at_a_time(key):
    """Bob Jenkins' one-at-a-time hash: libmemcached's default key hash."""
    h = 0
    for b in key.encode():
        h = (h + b) & 0xffffffff
        h = (h + (h << 10)) & 0xffffffff
        h ^= h >> 6
    h = (h + (h << 3)) & 0xffffffff
    h ^= h >> 11
    h = (h + (h << 15)) & 0xffffffff
    return h


class KetamaRing:
    """A libketama circle. `entries` are server strings (see ketama_name);
    `node_of[i]` names the node entry i belongs to (default: itself)."""

    def __init__(self, entries, key_hash=md5_32, node_of=None, points=160):
        node_of = list(node_of) if node_of is not None else list(range(len(entries)))
        ring = []
        for i, name in enumerate(entries):
            ring.extend((p, node_of[i]) for p in ketama_points(name, points))
        ring.sort()
        self.values = [p for p, _ in ring]
        self.owners = [n for _, n in ring]
        self.nodes = max(node_of) + 1
        self.key_hash = key_hash

    def owner(self, key):
        """The node a key goes to: the first point at or after its hash."""
        i = bisect.bisect_left(self.values, self.key_hash(key))
        return self.owners[i if i < len(self.values) else 0]

    def shares(self):
        """Each node's fraction of the circle (= of the keys, on average)."""
        out = [0] * self.nodes
        prev = self.values[-1] - 2 ** 32
        for v, n in zip(self.values, self.owners):
            out[n] += v - prev
            prev = v
        return [s / 2 ** 32 for s in out]


def node_ring(hosts, entries=1):
    """A ring over nodes given as "host" or "host:port", each listed `entries`
    times on consecutive ports."""
    names, node_of = [], []
    for n, spec in enumerate(hosts):
        host, _, port = spec.rpartition(":") if ":" in spec else (spec, "", "11211")
        for e in range(entries):
            names.append(ketama_name(host, int(port) + e))
            node_of.append(n)
    return KetamaRing(names, node_of=node_of)


def deviations(shares):
    even = 1 / len(shares)
    return [s / even - 1 for s in shares]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("servers", nargs="?", help="host[:port],host[:port],...")
    ap.add_argument("--entries", type=int, default=1, help="list each node N times (ports +0..N-1)")
    ap.add_argument("--random", type=int, metavar="N", help="statistics over N random address sets")
    ap.add_argument("-n", type=int, default=3, help="nodes, with --random (default 3)")
    args = ap.parse_args(argv)
    if args.random:
        rng = random.Random(1)
        worst = []
        for _ in range(args.random):
            hosts = ["10.%d.%d.%d" % (rng.randrange(256), rng.randrange(256), rng.randrange(1, 255))
                     for _ in range(args.n)]
            worst.append(max(abs(d) for d in deviations(node_ring(hosts, args.entries).shares())))
        worst.sort()
        within = sum(1 for w in worst if w <= 0.05) / len(worst)
        print("%d nodes, %d entries each, %d random address sets: worst node within 5%% of even in %.0f%%;"
              " worst deviation median %.1f%%, 90th percentile %.1f%%"
              % (args.n, args.entries, args.random, 100 * within,
                 100 * worst[len(worst) // 2], 100 * worst[len(worst) * 9 // 10]))
        return 0
    if not args.servers:
        ap.error("give a server list, or --random N")
    hosts = args.servers.split(",")
    shares = node_ring(hosts, args.entries).shares()
    for host, share, dev in zip(hosts, shares, deviations(shares)):
        print("%-24s %5.1f%% of keys  (%+.1f%% from even)" % (host, 100 * share, 100 * dev))
    worst = max(abs(d) for d in deviations(shares))
    print("worst node: %.1f%% from even%s" % (100 * worst, "" if worst <= 0.05 else
          "; try --entries 4 or 8 (several ports per node)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
