#!/usr/bin/env bash
# bench/profile.sh: user-space instructions per request of corecache, counted
# by callgrind (this machine has no hardware counters for perf), and where
# they go.
#
#   bench/profile.sh [BUILD_DIR]        (default: build)
#
# corecache runs under `valgrind --tool=callgrind` with -t 1, twice: once
# started, prefilled and stopped (the baseline), once started, prefilled,
# loaded with REQUESTS requests of corecache-bench and stopped. The difference
# of the two totals divided by REQUESTS is the server's instructions per
# request, startup and prefill excluded (callgrind_control cannot zero the
# counters mid-run: it waits forever on a thread blocked in io_uring_enter). Load: 90% get / 10% set, 100-byte
# values, 50 connections, pipeline PIPELINE, 100000 keys: compare.py's get90
# workloads. Environment: REQUESTS (default 200000), PIPELINE (default 16),
# TOP (functions listed, default 15), THREADS (the server's -t, default 1:
# with 2, half the keys are forwarded, and the difference from -t 1 is the
# cost of the cross-shard hop; issue 17), TLS (1: corecache -Z with a fresh EC
# P-256 certificate and corecache-bench --tls, the TLS path's instructions;
# `TLS=1 PIPELINE=16 bench/profile.sh` against the plain run gives the cost
# TLS adds per request), KEEP (a path: the loaded run's callgrind file is
# copied there and the baseline's to KEEP.base, for callgrind_annotate
# --inclusive=yes or kcachegrind).
#
# Only corecache: under valgrind memcached exits at startup with "failed to
# set rlimit for open files" (valgrind refuses its setrlimit), whatever -c,
# and the ceiling never acts on SIGINT (its one thread sleeps in
# io_uring_enter with valgrind's lock held; corecache's 100 ms tick wakes
# it). bench/compare.py measures all three by CPU time from /proc instead.
set -euo pipefail
build=${1:-build}
requests=${REQUESTS:-200000}
pipeline=${PIPELINE:-16}
top=${TOP:-15}
threads=${THREADS:-1}
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install valgrind" >&2; exit 2; }
for b in corecache bench/corecache-bench; do
    [ -x "$build/$b" ] || { echo "$build/$b not found: build first" >&2; exit 2; }
done
load=(-c 50 -P "$pipeline" --ratio 9:1 --keys 100000 --value-size 100)
tls=${TLS:-0}

# The servers refuse root; as root they run as nobody from the start (so
# that callgrind can write its output), else as the caller.
as_user=()
[ "$(id -u)" -eq 0 ] && as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
work=$(mktemp -d)
chmod 777 "$work"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

server_tls=()
if [ "$tls" = 1 ]; then
    ec=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)
    openssl genpkey "${ec[@]}" -out "$work/key.pem" 2>/dev/null
    openssl req -x509 -new -key "$work/key.pem" -days 2 -subj /CN=localhost -out "$work/cert.pem" 2>/dev/null
    chmod 644 "$work/key.pem" "$work/cert.pem"
    server_tls=(-Z -o "ssl_chain_cert=$work/cert.pem,ssl_key=$work/key.pem")
    load+=(--tls)
fi

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run_once NAME BINARY OUT [REQUESTS]: total instructions of one run in OUT.
run_once() {
    local name=$1 bin=$2 out=$3 n=${4:-0} port pid
    port=$(free_port)
    "${as_user[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$bin" -p "$port" -l 127.0.0.1 -t "$threads" -m 256 "${server_tls[@]}" 2>"$out.log" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || { echo "$name exited under valgrind:" >&2; tail -5 "$out.log" >&2; exit 1; }
        sleep 0.2
    done
    "$build/bench/corecache-bench" -s 127.0.0.1 -p "$port" -q "${load[@]}" --prefill-only >/dev/null
    # -d: corecache-bench stops at --duration (10 s by default) even with -n,
    # and under callgrind 10^5 requests may take longer: the division below
    # needs every one of them served.
    [ "$n" -eq 0 ] || "$build/bench/corecache-bench" -s 127.0.0.1 -p "$port" -q "${load[@]}" -n "$n" -d 600 >/dev/null
    kill -INT "$pid"
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { echo "$name did not stop within 120 s of SIGINT (a loaded machine stretches valgrind's shutdown)" >&2; exit 1; }
    wait "$pid" || true
    pids=()
}

total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'; }

echo "callgrind, -t $threads${server_tls:+ -Z}; load: corecache-bench ${load[*]} -n $requests after a prefill"
echo
# Under TLS the baseline also opens the load's 50 connections (a short run
# of base_requests), so that their handshakes, about as many instructions
# as 10^5 requests' records, are not counted as the requests' cost.
base_requests=0
[ "$tls" = 1 ] && base_requests=2000
run_once corecache "$build/corecache" "$work/base" "$base_requests"
run_once corecache "$build/corecache" "$work/load" "$requests"
base=$(total "$work/base")
loaded=$(total "$work/load")
[ -z "${KEEP:-}" ] || { cp "$work/load" "$KEEP"; cp "$work/base" "$KEEP.base"; }
printf "corecache: %.0f instructions per request\n" "$(/usr/bin/python3 -c "print(($loaded - $base) / ($requests - $base_requests))")"
echo
echo "corecache's functions by instructions in the loaded run (prefill and startup included):"
echo
callgrind_annotate "$work/load" 2>/dev/null | awk '/file:function/ { on = 1; next } on && NF && !/^-/' |
    head -n "$top" | sed "s|$(pwd)/||"
