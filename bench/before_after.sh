#!/usr/bin/env bash
# before_after.sh: this tree's corecache against the same server built from
# another commit (default: the first parent of HEAD), in one compare.py run,
# so that a change's effect on throughput and CPU per request is measured
# under the same load, on the same machine, at the same time.
#
#   bench/before_after.sh [REF] [compare.py options...]
#   bench/before_after.sh HEAD~3 --workloads get90-p16,value4k --repeat 3 --no-memtier
#
# REF is built in a temporary git worktree (removed afterwards) with the
# same CMake flags as build/; the report names it `baseline`, this tree's
# build `corecache`. Results go to a temporary directory unless --out-dir
# is given: a before/after run is evidence for a change, not bench/RESULTS.md.
# Debian's python3 (/usr/bin/python3, with python3-matplotlib) runs compare.py.
set -euo pipefail
cd "$(dirname "$0")/.."

ref=HEAD~1
if [ $# -gt 0 ] && [[ $1 != -* ]]; then
    ref=$1
    shift
fi
commit=$(git rev-parse --verify "$ref^{commit}")

scratch=$(mktemp -d)
cleanup() {
    git worktree remove --force "$scratch/src" >/dev/null 2>&1 || true
    rm -rf "$scratch"
}
trap cleanup EXIT

echo "before_after: building $ref ($commit) as the baseline" >&2
git worktree add --detach --quiet "$scratch/src" "$commit"
cmake -S "$scratch/src" -B "$scratch/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$scratch/build" -j "$(nproc)" --target corecache >/dev/null
baseline="$scratch/build/corecache"
[ -x "$baseline" ] || baseline="$scratch/build/io/corecache"

echo "before_after: building this tree" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null

out=()
[[ " $* " == *" --out-dir "* ]] || out=(--out-dir "$scratch/out")
/usr/bin/python3 bench/compare.py --build-dir build --servers corecache,ceiling --baseline "$baseline" "${out[@]}" "$@"
[ ${#out[@]} -eq 0 ] || cat "$scratch/out/RESULTS.md"
