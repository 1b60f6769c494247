#!/usr/bin/env bash
# deploy/container/build.sh: an OCI image of corecache made from Debian
# packages, without pulling any base image.
#
#   deploy/container/build.sh [--rootfs-only] [--tag NAME] [--out DIR]
#
# 1. builds corecache (Release) from this checkout with cmake;
# 2. makes a Debian 12 (bookworm) root file system with mmdebstrap, from the
#    mirrors apt is configured with on this machine: the "essential" set plus
#    the packages of the shared libraries the built binary loads (read from
#    ldd and dpkg, so a new dependency such as libssl3 comes along), the
#    binary copied in, a non-root user `corecache` (uid 11211) and an entry
#    point, /usr/local/bin/corecache-entrypoint;
# 3. commits that tree as image NAME (default "corecache") with buildah (into
#    the store podman reads). --rootfs-only stops after step 2.
#
# The image runs as user corecache and takes memcached's flags as
# arguments, as `docker run memcached:alpine` does:
#
#   podman run -d -p 11211:11211 corecache            # -l 0.0.0.0 -p 11211
#   podman run -d -p 11211:11211 corecache -m 1024 -t 4 -c 4096
#
# The entry point puts `-l 0.0.0.0` first (a container listens on its own
# interfaces; a later -l given by the user wins, as with every repeated
# option) and execs corecache.
#
# The default seccomp profiles of container runtimes refuse io_uring
# (Debian 12's containers-common, Docker's since 25.0): the calls fail with
# ENOSYS, and corecache serves through its epoll backend instead, saying so
# in one line (README, Requirements):
#
#   podman run -d -p 11211:11211 corecache
#
# For io_uring, the image carries a profile, podman's default plus
# io_uring_setup, io_uring_enter and io_uring_register, as its
# io.containers.seccomp.profile label, which podman applies when asked to
# (it also lies in DIR/seccomp.json):
#
#   podman run -d --seccomp-policy=image -p 11211:11211 corecache
#   podman run -d --security-opt seccomp=build-container/seccomp.json -p 11211:11211 corecache
#
# Outputs go to DIR (default build-container/ in the checkout, git-ignored):
# rootfs.tar and, when imported, the image in podman's store.
set -euo pipefail
cd "$(dirname "$0")/../.."

tag=corecache
out=build-container
rootfs_only=false
while [ $# -gt 0 ]; do
    case "$1" in
    --rootfs-only) rootfs_only=true ;;
    --tag) tag=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: deploy/container/build.sh [--rootfs-only] [--tag NAME] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done
for tool in cmake mmdebstrap; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool missing (apt-get install $tool)" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

echo "== building corecache (Release) in $out/build"
cmake -S . -B "$out/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$out/build" -j "$(nproc)" --target corecache >/dev/null

# The packages that hold the libraries the binary loads (liburing2, libnuma1,
# libjemalloc2, libssl3, ...): whatever the build links, the image carries.
libs=$(ldd "$out/build/corecache" | awk '$3 ~ /^\// {print $3}')
runtime_pkgs=$(for lib in $libs; do dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib"; done |
    cut -d: -f1 | sort -u | paste -sd, -)
[ -n "$runtime_pkgs" ] || { echo "build.sh: cannot tell which packages hold corecache's libraries" >&2; exit 1; }
echo "== run-time packages: $runtime_pkgs"

# apt's own sources (deb822 or one-line): the mirrors this machine trusts.
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$f" ] && sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] || { echo "build.sh: no apt sources configured" >&2; exit 1; }

echo "== making the root file system: $out/rootfs.tar"
entrypoint='#!/bin/sh
# corecache-entrypoint: listen on every interface of the container unless the
# arguments say otherwise (the last -l wins), then run corecache.
exec /usr/bin/corecache -l 0.0.0.0 "$@"
'
# The hooks' $1 is mmdebstrap's root directory, expanded by mmdebstrap's shell:
# shellcheck disable=SC2016
mmdebstrap --quiet --variant=essential --format=tar \
    --include="$runtime_pkgs" \
    --customize-hook="copy-in $out/build/corecache /usr/bin" \
    --customize-hook='chmod 0755 "$1/usr/bin/corecache"' \
    --customize-hook="printf '%s' '$entrypoint' > \"\$1/usr/local/bin/corecache-entrypoint\"" \
    --customize-hook='chmod 0755 "$1/usr/local/bin/corecache-entrypoint"' \
    --customize-hook='echo "corecache:x:11211:11211:corecache:/nonexistent:/usr/sbin/nologin" >> "$1/etc/passwd"' \
    --customize-hook='echo "corecache:x:11211:" >> "$1/etc/group"' \
    --customize-hook='rm -rf "$1/var/cache/apt" "$1/var/lib/apt/lists" "$1/usr/share/doc" "$1/usr/share/man"' \
    bookworm "$out/rootfs.tar" "${sources[@]}"

# podman's default seccomp profile, plus io_uring (see the top of the file)
profile=/usr/share/containers/seccomp.json
if [ -r "$profile" ]; then
    python3 - "$profile" "$out/seccomp.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["syscalls"].insert(0, {"names": ["io_uring_setup", "io_uring_enter", "io_uring_register"],
                         "action": "SCMP_ACT_ALLOW", "args": [], "comment": "corecache: io_uring",
                         "includes": {}, "excludes": {}})
json.dump(p, open(sys.argv[2], "w"), separators=(",", ":"))
PY
fi

if $rootfs_only; then
    echo "== rootfs only: $out/rootfs.tar"
    exit 0
fi
command -v buildah >/dev/null || { echo "build.sh: buildah needed (apt-get install buildah)" >&2; exit 1; }
ctr=$(buildah from scratch)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah add "$ctr" "$out/rootfs.tar" / >/dev/null
buildah config --user corecache --port 11211 --entrypoint '["/usr/local/bin/corecache-entrypoint"]' \
    --cmd '-p 11211' --label org.opencontainers.image.title=corecache "$ctr"
if [ -s "$out/seccomp.json" ]; then
    buildah config --label "io.containers.seccomp.profile=$(cat "$out/seccomp.json")" "$ctr"
fi
buildah commit --quiet "$ctr" "$tag" >/dev/null
echo "== image $tag built: podman run -d -p 11211:11211 $tag (epoll; --seccomp-policy=image for io_uring)"
