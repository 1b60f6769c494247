#!/usr/bin/env bash
# backends.sh: corecache's two I/O backends side by side (issue 16): the
# same build run once on io_uring (`corecache`) and once on the epoll
# fallback (`baseline` in the report: the binary behind -o io_backend=epoll,
# io/evring.h), with memcached 1.6.18 beside them, in one compare.py run, so
# what a container without io_uring costs is measured under the same load.
#
#   bench/backends.sh [compare.py options...]
#   bench/backends.sh --workloads get90-p16,value4k --repeat 3 --no-memtier
#
# Results go to a temporary directory unless --out-dir is given (printed at
# the end): evidence for the fallback, not bench/RESULTS.md.
# Debian's python3 (/usr/bin/python3, with python3-matplotlib) runs compare.py.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
bin="$(pwd)/build/corecache"
[ -x "$bin" ] || bin="$(pwd)/build/io/corecache"
# the same binary, told to run the epoll backend (exec: the PID stays the server's)
printf '#!/bin/sh\nexec "%s" -o io_backend=epoll "$@"\n' "$bin" >"$scratch/corecache-epoll"
chmod +x "$scratch/corecache-epoll"

out=()
[[ " $* " == *" --out-dir "* ]] || out=(--out-dir "$scratch/out")
/usr/bin/python3 bench/compare.py --build-dir build --servers corecache,memcached \
    --baseline "$scratch/corecache-epoll" "${out[@]}" "$@"
[ ${#out[@]} -eq 0 ] || cat "$scratch/out/RESULTS.md"
