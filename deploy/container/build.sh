#!/usr/bin/env bash
# deploy/container/build.sh: an OCI image of corecache made from Debian
# packages, without pulling any base image.
#
#   deploy/container/build.sh [--rootfs-only] [--tag NAME] [--out DIR]
#
# 1. builds corecache (Release) from this checkout with cmake;
# 2. makes a Debian 12 (bookworm) root file system with mmdebstrap, from the
#    mirrors apt is configured with on this machine: the "essential" set plus
#    corecache's run-time libraries (liburing2, libnuma1, libjemalloc2), the
#    binary copied in, a non-root user `corecache` (uid 11211) and an entry
#    point, /usr/local/bin/corecache-entrypoint;
# 3. imports that tree as image NAME (default "corecache") with podman, or
#    buildah if podman is missing. --rootfs-only stops after step 2.
#
# The image runs as user corecache and takes memcached's flags as
# arguments, as `docker run memcached:alpine` does:
#
#   podman run -d -p 11211:11211 corecache            # -l 0.0.0.0 -p 11211
#   podman run -d -p 11211:11211 corecache -m 1024 -t 4 -c 4096
#
# The entry point puts `-l 0.0.0.0` first (a container listens on its own
# interfaces; a later -l given by the user wins, as with every repeated
# option) and execs corecache. corecache uses io_uring: a container runtime
# whose seccomp profile refuses io_uring_setup (Docker's since 25.0) needs
# --security-opt seccomp=unconfined or a profile that allows it; podman's
# Debian 12 default profile allows it.
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
mmdebstrap --quiet --variant=essential --format=tar \
    --include=liburing2,libnuma1,libjemalloc2,libstdc++6 \
    --customize-hook="copy-in $out/build/corecache /usr/bin" \
    --customize-hook='chmod 0755 "$1/usr/bin/corecache"' \
    --customize-hook="printf '%s' '$entrypoint' > \"\$1/usr/local/bin/corecache-entrypoint\"" \
    --customize-hook='chmod 0755 "$1/usr/local/bin/corecache-entrypoint"' \
    --customize-hook='echo "corecache:x:11211:11211:corecache:/nonexistent:/usr/sbin/nologin" >> "$1/etc/passwd"' \
    --customize-hook='echo "corecache:x:11211:" >> "$1/etc/group"' \
    --customize-hook='rm -rf "$1/var/cache/apt" "$1/var/lib/apt/lists" "$1/usr/share/doc" "$1/usr/share/man"' \
    bookworm "$out/rootfs.tar" "${sources[@]}"

if $rootfs_only; then
    echo "== rootfs only: $out/rootfs.tar"
    exit 0
fi
changes=(--change 'USER corecache' --change 'EXPOSE 11211'
         --change 'ENTRYPOINT ["/usr/local/bin/corecache-entrypoint"]' --change 'CMD ["-p", "11211"]'
         --change 'LABEL org.opencontainers.image.title=corecache')
if command -v podman >/dev/null; then
    podman import "${changes[@]}" "$out/rootfs.tar" "$tag" >/dev/null
elif command -v buildah >/dev/null; then
    ctr=$(buildah from scratch)
    buildah add "$ctr" "$out/rootfs.tar" / >/dev/null
    buildah config --user corecache --port 11211 --entrypoint '["/usr/local/bin/corecache-entrypoint"]' \
        --cmd '-p 11211' "$ctr"
    buildah commit "$ctr" "$tag" >/dev/null
    buildah rm "$ctr" >/dev/null
else
    echo "build.sh: podman or buildah needed to import the image (or use --rootfs-only)" >&2
    exit 1
fi
echo "== image $tag built: podman run -d -p 11211:11211 $tag"
