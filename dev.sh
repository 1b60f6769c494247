#!/usr/bin/env bash
# dev.sh: the two ways into corecache, for a fresh Debian 12 machine (as root)
# or a developer's checkout. Safe to rerun: it installs only what is missing
# and rebuilds only what changed.
#
#   ./dev.sh serve [corecache flags]  build, then serve on 127.0.0.1:11211 in the foreground
#   ./dev.sh test                     build, then run every test: plain, then under ASan+UBSan
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DEPS=(cmake gcc make pkg-config liburing-dev libnuma-dev libjemalloc-dev libxxhash-dev libcmocka-dev libssl-dev)
TEST_DEPS=(memcached libmemcached-tools openssl sasl2-bin python3 python3-pymemcache python3-pylibmc netcat-openbsd
           procps python3-matplotlib nodejs
           prometheus # prometheus + promtool: tests/integration/test_prometheus.py
           clang libclang-rt-14-dev) # libFuzzer: tests/fuzz
# test_memjs installs memjs with npm: Debian's npm package, unless the nodejs
# installed already bundles npm (NodeSource's conflicts with Debian's npm).
command -v npm >/dev/null 2>&1 || TEST_DEPS+=(npm)
TEST_DEPS+=(mmdebstrap podman runc) # tests/deploy/test_systemd_warm.py (issue 14)
TEST_DEPS+=(shellcheck nutcracker iproute2 systemd php-cli php-memcached libspymemcached-java
            default-jdk-headless) # tests/deploy, tests/cluster
TEST_DEPS+=(python3-django ruby ruby-dalli ruby-activesupport golang-go golang-github-bradfitz-gomemcache-dev
            php-memcache haproxy) # tests/clients (issue 16's client matrix)
TEST_DEPS+=(mmdebstrap buildah podman runc) # tests/deploy/test_container.py

install_missing() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "dev.sh: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
        exit 1
    fi
    echo "dev.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() { # build DIR [cmake args...]
    local dir=$1
    shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j "$(nproc)"
}

case "${1:-}" in
serve)
    shift
    install_missing "${BUILD_DEPS[@]}"
    build build
    args=(-l 127.0.0.1 -p 11211)
    [ "$(id -u)" -eq 0 ] && args+=(-u nobody) # like memcached, corecache will not run as root
    echo "dev.sh: corecache on 127.0.0.1:11211 (Ctrl-C stops it)"
    exec ./build/corecache "${args[@]}" "$@"
    ;;
test)
    install_missing "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}"
    status=0
    echo "== build and test: build/ (warnings are errors)"
    build build -DCORECACHE_WERROR=ON
    (cd build && ctest --output-on-failure -j 2) || status=1
    echo "== build and test: build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer)"
    build build-asan -DCORECACHE_WERROR=ON -DCORECACHE_SANITIZE=ON
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --output-on-failure -j 2) || status=1
    exit $status
    ;;
*)
    echo "usage: ./dev.sh serve [corecache flags] | ./dev.sh test" >&2
    exit 2
    ;;
esac
