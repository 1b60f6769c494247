#!/usr/bin/env bash
# tests/deploy/host_scenario.sh: deploy/install.sh on a "real host" that is a
# throwaway copy of this one, end to end, without --destdir.
#
#   host_scenario.sh outer REPO DIR   (as root; test_install_host.py runs it;
#                                      DIR, an empty directory, holds the tmpfs)
#
# outer: in new mount, pid and network namespaces, lays a tmpfs overlay over
# / (every write lands in the tmpfs and vanishes with the namespace), gives
# it a fresh /proc (so /proc/sys/net is the new network namespace's), /dev
# and an empty /run and /sys (no systemd, no sysfs tree: nothing global to
# tune), brings up loopback, and chroots into it to run `inner`.
# inner: install (user, files, per-namespace sysctls), run again (nothing to
# do), serve from the installed files as the installed user, uninstall
# (user, files and sysctls as they were). Every check prints "ok: ..." or
# stops the script with "FAIL: ...".
set -Eeuo pipefail

fail() {
    echo "FAIL: $*"
    exit 1
}
ok() { echo "ok: $*"; }

outer() {
    local repo=$1 tmp=$2
    # Private from here on: nothing below is seen outside this namespace.
    mount --make-rprivate /
    mount -t tmpfs -o size=2g tmpfs "$tmp"
    mkdir "$tmp/upper" "$tmp/work" "$tmp/root"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$tmp/upper,workdir=$tmp/work" "$tmp/root"
    mount --rbind /dev "$tmp/root/dev"
    mount -t proc proc "$tmp/root/proc"
    mount -t tmpfs tmpfs "$tmp/root/run"
    ip link set lo up
    chroot "$tmp/root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root bash "$repo/tests/deploy/host_scenario.sh" inner "$repo"
}

sysctl_value() { cat "/proc/sys/${1//.//}"; }

inner() {
    local repo=$1 install out port=11311 pid
    install=$repo/deploy/install.sh
    [ ! -e /etc/corecache ] || fail "the copy already has /etc/corecache"
    if getent passwd corecache >/dev/null; then fail "the copy already has a corecache user"; fi
    local fin_before syn_before
    fin_before=$(sysctl_value net.ipv4.tcp_fin_timeout)
    syn_before=$(sysctl_value net.ipv4.tcp_max_syn_backlog)

    out=$("$install" --listen 127.0.0.1 --port "$port" --memory 32 --build-dir /var/tmp/corecache-build 2>&1) ||
        fail "install exited $?: $out"
    printf '%s\n' "$out" | sed 's/^/    /'
    getent passwd corecache | grep -q ':/nonexistent:/usr/sbin/nologin$' || fail "no system user corecache"
    getent group corecache >/dev/null || fail "no group corecache"
    for f in /usr/local/bin/corecache /usr/local/sbin/corecache-tune /etc/corecache/corecache.conf \
        /etc/systemd/system/corecache.service /etc/sysctl.d/60-corecache.conf \
        /var/lib/corecache/install.manifest /var/lib/corecache/tune.saved; do
        [ -f "$f" ] || fail "$f not installed"
    done
    grep -qx "u corecache" /var/lib/corecache/install.manifest || fail "the manifest does not own the user"
    [ "$(sysctl_value net.ipv4.tcp_fin_timeout)" = 15 ] || fail "tcp_fin_timeout not tuned"
    [ "$(sysctl_value net.ipv4.tcp_max_syn_backlog)" -ge 8192 ] || fail "tcp_max_syn_backlog not tuned"
    echo "$out" | grep -q "systemd is not running here" || fail "it did not notice that systemd is not running"
    ok "installed: user, files, sysctls"

    out=$("$install" --build-dir /var/tmp/corecache-build 2>&1) || fail "second run exited $?: $out"
    echo "$out" | grep -q "nothing to do: corecache is installed as configured" || fail "second run changed: $out"
    ok "second run: nothing to do"

    # Serve as the unit would: its user, its flags, no new privileges.
    local opts
    opts=$(sed -n 's/^CORECACHE_OPTS="\(.*\)"$/\1/p' /etc/corecache/corecache.conf)
    # shellcheck disable=SC2086 # the flags split at whitespace, as systemd splits $CORECACHE_OPTS
    setpriv --reuid=corecache --regid=corecache --init-groups --no-new-privs \
        /usr/local/bin/corecache $opts >/tmp/corecache.log 2>&1 &
    pid=$!
    local reply="" want="STORED|VALUE k 0 2|hi|END|"
    for _ in $(seq 100); do
        # shellcheck disable=SC2016 # expanded by the inner bash
        reply=$(timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1
            printf "set k 0 0 2\r\nhi\r\nget k\r\n" >&3
            for _ in 1 2 3 4; do IFS= read -r l <&3 || exit 1; printf "%s|" "${l%$'"'"'\r'"'"'}"; done' "$port" 2>/dev/null) &&
            [ "$reply" = "$want" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$reply" != "$want" ]; then
        local state=exited
        kill -0 "$pid" 2>/dev/null && state=running
        fail "the installed server ($state) answered '$reply'; its output: $(cat /tmp/corecache.log)"
    fi
    [ "$(stat -c %U "/proc/$pid")" = corecache ] || fail "the server does not run as corecache"
    kill "$pid"
    wait "$pid" || fail "the server exited $? on SIGTERM"
    ok "served as user corecache from the installed files"

    out=$("$install" --uninstall 2>&1) || fail "uninstall exited $?: $out"
    printf '%s\n' "$out" | sed 's/^/    /'
    if getent passwd corecache >/dev/null; then fail "user corecache left behind"; fi
    if getent group corecache >/dev/null; then fail "group corecache left behind"; fi
    for f in /usr/local/bin/corecache /usr/local/sbin/corecache-tune /etc/corecache /etc/sysctl.d/60-corecache.conf \
        /etc/systemd/system/corecache.service /var/lib/corecache; do
        [ ! -e "$f" ] || fail "$f left behind"
    done
    [ "$(sysctl_value net.ipv4.tcp_fin_timeout)" = "$fin_before" ] || fail "tcp_fin_timeout not put back"
    [ "$(sysctl_value net.ipv4.tcp_max_syn_backlog)" = "$syn_before" ] || fail "tcp_max_syn_backlog not put back"
    ok "uninstalled: user, files and sysctls as before"
    echo "ALL OK"
}

case "${1:-}" in
outer) outer "${2:?repo}" "${3:?an empty directory}" ;;
inner) inner "${2:?repo}" ;;
*) echo "usage: $0 outer REPO DIR | inner REPO" >&2; exit 2 ;;
esac
