#!/usr/bin/env bash
# run_fuzz.sh: runs one libFuzzer target for a bounded time.
#
#   tests/fuzz/run_fuzz.sh BINARY SEED_CORPUS DICT SECONDS [WORK_DIR]
#
# The seed corpus is only read; what the run discovers goes to WORK_DIR
# (default: a temporary directory, removed afterwards), and a crashing input
# to WORK_DIR/crash-* (kept, and named in the output). SECONDS 0 replays the
# seeds only. Exits 77 when the binary was not built (no clang/libFuzzer).
#
# The suite runs each target about 10-20 s (tests/fuzz/CMakeLists.txt). For
# hours, in a sanitizer build directory, one target per core:
#
#   cmake -S . -B build-asan -DCORECACHE_SANITIZE=ON && cmake --build build-asan -j2
#   mkdir -p ~/fuzz-proto
#   tests/fuzz/run_fuzz.sh build-asan/tests/fuzz/fuzz_proto tests/fuzz/corpus/proto \
#       tests/fuzz/proto.dict 14400 ~/fuzz-proto
#
# (targets: proto, proto_bin, http, exec). Minimize a finding with
# `BINARY -minimize_crash=1 -runs=100000 crash-...`, and add it to
# tests/fuzz/corpus/<target>/ once fixed so the suite replays it.
set -euo pipefail

if [ $# -lt 4 ]; then
    echo "usage: $0 BINARY SEED_CORPUS DICT SECONDS [WORK_DIR]" >&2
    exit 2
fi
bin=$1 seeds=$2 dict=$3 seconds=$4
if [ ! -x "$bin" ]; then
    echo "SKIP: $bin was not built (needs clang and libFuzzer: apt-get install clang libclang-rt-14-dev)"
    exit 77
fi
if [ $# -ge 5 ]; then
    work=$5
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/corecache-fuzz.XXXXXX")
    trap 'rm -rf "$work/corpus"' EXIT
fi
mkdir -p "$work/corpus"

args=(-dict="$dict" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
      -artifact_prefix="$work/")
if [ "$seconds" -eq 0 ]; then
    args+=(-runs=0)
else
    args+=(-max_total_time="$seconds")
fi
echo "fuzz: $bin for ${seconds}s from $seeds (findings under $work)"
status=0
"$bin" "${args[@]}" "$work/corpus" "$seeds" || status=$?
if [ $status -ne 0 ]; then
    echo "fuzz: $bin failed ($status); the input is under $work:" >&2
    ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* 2>/dev/null >&2 || true
fi
exit $status
