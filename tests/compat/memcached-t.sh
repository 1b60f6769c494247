#!/usr/bin/env bash
# memcached-t.sh: memcached's own test suite (t/*.t of a memcached checkout)
# against a server binary, by default the corecache built in BUILD_DIR.
#
#   tests/compat/memcached-t.sh MEMCACHED_SRC_DIR [BUILD_DIR]
#
# MEMCACHED_SRC_DIR is a checkout of github.com/memcached/memcached at tag
# 1.6.18 (never committed here; keep it outside the tree). BUILD_DIR is
# corecache's cmake build directory (default: build). SERVER=PATH runs the
# same files against another binary instead (memcached-debug built from the
# checkout, for the baseline); TESTS="name ..." runs only those files.
#
# memcached's t/lib/MemcachedTest.pm starts ./memcached-debug from the
# directory it runs in, under ./timedrun, adding `-u root` (as root),
# `-o relaxed_privileges` and `-U <port>`. So the script makes a scratch
# directory holding t/ (a link to the checkout's), timedrun (built from the
# checkout's timedrun.c) and memcached-debug (a link to the server), and runs
# each file there with `timeout 180 prove t/NAME.t`, one at a time.
#
# The selection: every t/*.t except proxy, extstore, TLS, SASL, ascii auth,
# the whitespace lint and 00-startup (65 files at 1.6.18). It prints
# "N passed, M failed" alone on a line, then the failing files; the exit status
# is 0 when none failed, 1 otherwise, 77 when the checkout or a tool is missing
# (ctest reports that as skipped).
set -uo pipefail

usage_missing() {
    cat >&2 <<MSG
memcached-t.sh: $1
It needs:
  - a memcached checkout at tag 1.6.18, outside this tree, e.g.
      git clone https://github.com/memcached/memcached <dir> && git -C <dir> checkout 1.6.18
  - perl's prove (Debian: perl) and gcc (to build the checkout's timedrun.c)
  - corecache built (cmake --build build), or SERVER=PATH to another binary
Usage: tests/compat/memcached-t.sh MEMCACHED_SRC_DIR [BUILD_DIR]
MSG
    exit 77
}

src=${1:-${MEMCACHED_SRC:-}}
[ -n "$src" ] || usage_missing "no memcached checkout given (argument or MEMCACHED_SRC)"
if [ ! -f "$src/t/lib/MemcachedTest.pm" ] || [ ! -f "$src/timedrun.c" ]; then
    usage_missing "'$src' is not a memcached checkout (no t/lib/MemcachedTest.pm or timedrun.c)"
fi
src=$(cd "$src" && pwd)
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$here/build}
server=${SERVER:-$build/corecache}
[ -x "$server" ] || usage_missing "no server binary at '$server'"
server=$(cd "$(dirname "$server")" && pwd)/$(basename "$server")
command -v prove >/dev/null || usage_missing "prove not found"
command -v gcc >/dev/null || usage_missing "gcc not found"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/memcached-t.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
ln -s "$src/t" "$scratch/t"
ln -s "$server" "$scratch/memcached-debug"
# timedrun.c includes config.h only for HAVE_* macros it can live without.
touch "$scratch/config.h"
if ! gcc -O2 -I"$scratch" -o "$scratch/timedrun" "$src/timedrun.c" 2>"$scratch/timedrun.log"; then
    cat "$scratch/timedrun.log" >&2
    usage_missing "could not build timedrun from $src/timedrun.c"
fi

if [ -n "${TESTS:-}" ]; then
    read -r -a names <<<"$TESTS"
else
    names=()
    for f in "$src"/t/*.t; do
        n=$(basename "$f" .t)
        case "$n" in
        *proxy* | *extstore* | *ssl* | *tls* | *sasl* | *auth* | *whitespace* | 00-startup) continue ;;
        esac
        names+=("$n")
    done
fi

passed=0
failed=()
log=${LOG_DIR:-$scratch/logs}
mkdir -p "$log"
for n in "${names[@]}"; do
    start=$(date +%s)
    if (cd "$scratch" && timeout 180 prove "t/$n.t") >"$log/$n.log" 2>&1; then
        passed=$((passed + 1))
        echo "ok   t/$n.t ($(($(date +%s) - start))s)"
    else
        failed+=("$n")
        echo "FAIL t/$n.t ($(($(date +%s) - start))s)"
        [ -n "${VERBOSE:-}" ] && sed 's/^/    /' "$log/$n.log" | tail -20
    fi
done
echo "${passed} passed, ${#failed[@]} failed"
for n in "${failed[@]}"; do
    echo "failed: t/$n.t"
done
[ ${#failed[@]} -eq 0 ]
