#!/usr/bin/env bash
# bench/memcslap.sh: a first side-by-side of corecache and memcached 1.6 with
# libmemcached's memcslap, the same load against each, in one run.
#
#   bench/memcslap.sh [BUILD_DIR]        (default: build)
#
# Each server runs alone, freshly started, with the same flags (-t THREADS
# -m 64) pinned to SERVER_CPUS; memcslap runs pinned to CLIENT_CPUS. For each
# of memcslap's tests (set, get, mget) it prints memcslap's own time and the
# resulting requests per second. Environment: THREADS (default 1),
# SERVER_CPUS (default 0), CLIENT_CPUS (default 1), CONCURRENCY (default 8),
# EXECUTE (requests per memcslap thread, default 20000). Then, per server, what
# `stats` says it kept of the items (they are of mixed sizes; -m 64).
set -euo pipefail
build=${1:-build}
threads=${THREADS:-1}
server_cpus=${SERVER_CPUS:-0}
client_cpus=${CLIENT_CPUS:-1}
concurrency=${CONCURRENCY:-8}
execute=${EXECUTE:-20000}
command -v memcslap >/dev/null || { echo "memcslap not found: apt-get install libmemcached-tools" >&2; exit 2; }
[ -x "$build/corecache" ] || { echo "$build/corecache not found: build first" >&2; exit 2; }
user=(); [ "$(id -u)" -eq 0 ] && user=(-u nobody)

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_one() { # name binary
    local name=$1 bin=$2 port pid
    port=$(free_port)
    taskset -c "$server_cpus" "$bin" -p "$port" -l 127.0.0.1 -t "$threads" -m 64 "${user[@]}" &
    pid=$!
    for _ in $(seq 50); do /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break; sleep 0.1; done
    for t in set get mget; do
        local out secs n
        out=$(timeout 300 taskset -c "$client_cpus" memcslap --servers="127.0.0.1:$port" --test=$t \
              --concurrency="$concurrency" --execute-number="$execute" 2>&1)
        # the measured line: "Time to <test> <n> keys by <c> threads: <s> seconds."
        secs=$(echo "$out" | awk -v t="$t" '$1 == "Time" && $3 == t && /threads:/ {print $(NF-1)}')
        n=$(echo "$out" | awk -v t="$t" '$1 == "Time" && $3 == t && /threads:/ {print $4}')
        if [ -z "$secs" ]; then
            echo "memcslap --test=$t against $name printed no result:" >&2
            echo "$out" >&2
            continue
        fi
        printf "| %-9s | %-4s | %8s | %7s | %10.0f |\n" "$name" "$t" "$n" "$secs" \
            "$(/usr/bin/python3 -c "print($n / $secs if $secs > 0 else 0)")"
    done
    # What the server kept of memcslap's items in -m 64 (its values are of
    # mixed sizes: this is where slab classes cost memory).
    memory+=("$(/usr/bin/python3 - "$port" "$name" <<'PY'
import socket, sys
port, name = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"stats\r\n")
buf = b""
while not buf.endswith(b"END\r\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
st = dict(line.split()[1:3] for line in buf.decode().splitlines() if line.startswith("STAT "))
print("| %-9s | %11s | %10s | %9s | %13s |" % (name, st["total_items"], st["curr_items"], st["evictions"],
                                                  "%.1f MB" % (int(st["bytes"]) / 1e6)))
PY
)")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}
memory=()

echo "memcslap --concurrency=$concurrency --execute-number=$execute; servers: -t $threads -m 64 on CPU $server_cpus, memcslap on CPU $client_cpus"
echo
echo "| server    | test | requests | seconds | requests/s |"
echo "|-----------|------|----------|---------|------------|"
run_one memcached /usr/bin/memcached
run_one corecache "$build/corecache"
echo
echo "Items after the run (stats): stored, kept in -m 64, evicted, and the bytes they hold"
echo
echo "| server    | total_items | curr_items | evictions | bytes         |"
echo "|-----------|-------------|------------|-----------|---------------|"
printf "%s\n" "${memory[@]}"
