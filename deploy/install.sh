#!/usr/bin/env bash
# deploy/install.sh: install corecache on a Debian or Ubuntu host from this
# source tree, as a hardened systemd service on a tuned host; or undo that.
#
#   deploy/install.sh [options]               install, or bring an install up to date
#   deploy/install.sh --uninstall [options]   remove everything an install made, put the host back
#   deploy/install.sh --dry-run [...]         print every action, change nothing
#
# Where things go (DIR = --destdir or $DESTDIR, empty for the real host):
#   DIR/PREFIX/bin/corecache           the server, built with the release profile
#   DIR/PREFIX/sbin/corecache-tune     host tuning (deploy/corecache-tune.sh), also run at boot
#   DIR/etc/corecache/corecache.conf   the node's settings: CORECACHE_OPTS (the server's flags)
#                                      and placement; kept across runs, changed only by options
#   DIR/etc/systemd/system/corecache.service            the hardened unit
#   DIR/etc/systemd/system/corecache.service.d/10-placement.conf
#                                      CPUAffinity=/NUMAPolicy= from the config (generated)
#   DIR/etc/systemd/system/corecache-tune.service       tuning that a reboot forgets, at boot
#   DIR/etc/systemd/system/corecache.service.d/20-warm-restart.conf
#                                      -e on the tmpfs below, graceful stop (README "Warm restart")
#   DIR/etc/systemd/system/var-lib-corecache-memory.mount
#                                      the tmpfs holding the item memory across service restarts
#   DIR/etc/sysctl.d/60-corecache.conf                  the sysctls, persisted
#   DIR/var/lib/corecache/install.manifest              what this script installed, for --uninstall
#   DIR/var/lib/corecache/tune.saved   every runtime value tuning changed, with its previous value
#
# Options:
#   --prefix DIR       install prefix (default /usr/local)
#   --destdir DIR      stage the install under DIR (also $DESTDIR): files only; the
#                      host's users, services and kernel settings are not touched
#   --dry-run          print every action without doing it
#   --uninstall        reverse a previous install (reads the manifest)
#   --no-start         install and tune, but do not enable or start the service
#   --no-tune          do not tune the host (no sysctls, THP, IRQs, steering)
#   --build-dir DIR    where to build (default SRC/build-release)
#   --user NAME        the service's system user and group (default corecache)
#   --tune-root DIR    apply host tuning to a fake /proc and /sys under DIR, even
#                      with --destdir (the tests use it; never needed on a real host)
#  The node's settings (written to the config; without any of them, an
#  existing config is kept byte for byte):
#   --listen ADDRS     -l, the addresses to serve on (default 127.0.0.1; a cluster
#                      node needs its LAN address)
#   --port N           -p (default 11211)
#   --memory MB        -m, item memory (default 64)
#   --conns N          -c, connection limit (default 1024; LimitNOFILE follows it)
#   --backlog N        -b, listen backlog (default 4096; net.core.somaxconn follows it)
#   --threads N        -t, shards (default: one per CPU of --cpus)
#   --cpus LIST        CPUs the shards run on (CPUAffinity=), e.g. 2-15 (default all)
#   --numa-nodes LIST  memory nodes (NUMAPolicy=bind, NUMAMask=), e.g. 0 (default: no policy;
#                      corecache puts each shard's arena on its CPU's node itself)
#   --iface NAME       the NIC whose queues are placed on the shard CPUs (default none);
#                      adds --accept-by-cpu to the server's flags (--iface "" removes it)
#   --thp MODE         transparent huge pages: madvise (default), always, or keep
#  Security (README "Security"; each copies the file under /etc/corecache/ and
#  sets the flags; "" removes the setting and the flags):
#   --tls-cert FILE    PEM certificate chain: TLS on every listener (-Z)
#   --tls-key FILE     its private key (PEM; installed readable by the service's group only)
#   --tls-ca FILE      PEM CAs that client certificates must chain to (ssl_ca_cert)
#   --tls-verify N     client certificates: 0 none (default), 1 request, 2 require, 3 once
#   --auth-file FILE   user:password lines: ascii authentication (-Y)
#   --sasl-file FILE   user:password lines: binary SASL PLAIN (-S --sasl-pwdb)
#  To rotate a certificate: run install.sh again with the new files (the
#  service restarts), or replace the installed files and send SIGHUP:
#  `systemctl kill --kill-whom=main --signal=SIGHUP corecache` (new connections
#  get the new certificate, open ones stay; password files are reread too).
#
# Design. Nothing changes until everything has been computed and checked: the
# OS, the build dependencies, the kernel's io_uring (corecache-tune check, the
# same facts the server checks at startup, each with its fix), the build. Then
# every change is made through one journal: a file written remembers the
# version it replaced, a user created is deleted, a kernel value changed is put
# back. Any error prints one line saying what failed and unwinds the journal,
# so nothing half-installed stays. A file this script did not install (not in
# its manifest) is never overwritten. A second run with the same inputs finds
# every file and value as wanted and says "nothing to do".
set -Eeuo pipefail

prog=install.sh
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tune_src=$src/deploy/corecache-tune.sh

prefix=/usr/local
destdir=${DESTDIR:-}
dry=0
uninstall=0
start=1
tune=1
build_dir=$src/build-release
svc_user=corecache
tune_root=""
declare -A set_opt=() # config settings given on the command line

die() {
    echo "$prog: error: $*" >&2
    exit 1
}
say() { echo "$*"; }

need_arg() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }

while [ $# -gt 0 ]; do
    case "$1" in
    --prefix) need_arg "$@"; prefix=$2; shift 2 ;;
    --destdir) need_arg "$@"; destdir=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --uninstall) uninstall=1; shift ;;
    --no-start) start=0; shift ;;
    --no-tune) tune=0; shift ;;
    --build-dir) need_arg "$@"; build_dir=$2; shift 2 ;;
    --user) need_arg "$@"; svc_user=$2; shift 2 ;;
    --tune-root) need_arg "$@"; tune_root=$2; shift 2 ;;
    --listen | --port | --memory | --conns | --backlog | --threads | --cpus | --numa-nodes | --iface | --thp)
        need_arg "$@"; set_opt[${1#--}]=$2; shift 2 ;;
    --tls-cert | --tls-key | --tls-ca | --tls-verify | --auth-file | --sasl-file)
        [ $# -ge 2 ] || die "$1 needs a value (see --help)"
        set_opt[${1#--}]=$2; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
done

[[ "$prefix" == /* ]] || die "--prefix $prefix: must be an absolute path"
prefix=${prefix%/}
if [ -n "$destdir" ]; then
    mkdir -p "$destdir" 2>/dev/null || [ "$dry" = 1 ] || die "--destdir $destdir: cannot create it"
    [ ! -d "$destdir" ] || destdir=$(cd "$destdir" && pwd)
fi
[[ "$svc_user" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "--user $svc_user: not a valid user name"
real_host=1
[ -z "$destdir" ] || real_host=0
if [ -n "$tune_root" ]; then
    [ -d "$tune_root" ] || die "--tune-root $tune_root: no such directory"
    tune_root=$(cd "$tune_root" && pwd)
fi
# Tuning touches a kernel: the real one (real host) or a fake tree (--tune-root).
tuning_target=none
if [ "$tune" = 1 ]; then
    if [ -n "$tune_root" ]; then tuning_target=fake; elif [ "$real_host" = 1 ]; then tuning_target=host; fi
fi

bin_path=$prefix/bin/corecache
tune_path=$prefix/sbin/corecache-tune
conf_path=/etc/corecache/corecache.conf
# Secrets (--tls-*, --auth-file, --sasl-file): a key and password files are
# mode 640, group of the service user; certificates 644.
tls_cert_path=/etc/corecache/tls/server.pem
tls_key_path=/etc/corecache/tls/server.key
tls_ca_path=/etc/corecache/tls/ca.pem
auth_path=/etc/corecache/auth
sasl_path=/etc/corecache/sasl-users
unit_path=/etc/systemd/system/corecache.service
dropin_path=/etc/systemd/system/corecache.service.d/10-placement.conf
tune_unit_path=/etc/systemd/system/corecache-tune.service
warm_dropin_path=/etc/systemd/system/corecache.service.d/20-warm-restart.conf
mem_dir=/var/lib/corecache/memory
mem_unit_path=/etc/systemd/system/var-lib-corecache-memory.mount
sysctl_path=/etc/sysctl.d/60-corecache.conf
manifest_path=/var/lib/corecache/install.manifest
saved_path=/var/lib/corecache/tune.saved

D() { echo "$destdir$1"; } # a path as it lies on this machine

work=$(mktemp -d "${TMPDIR:-/tmp}/corecache-install.XXXXXX")

# -- the journal -----------------------------------------------------------------
#
# Each change pushes the command that undoes it. On error the ERR trap prints
# the failing command and runs them last to first; on success they are dropped.

undo=()
changes=0      # everything this run changed (or would)
file_changes=0 # files among them: the service restarts only for these

rollback() {
    local i
    [ ${#undo[@]} -gt 0 ] || return 0
    echo "$prog: undoing the ${#undo[@]} change(s) made so far" >&2
    for ((i = ${#undo[@]} - 1; i >= 0; i--)); do
        eval "${undo[i]}" >&2 || echo "$prog: warning: could not undo: ${undo[i]}" >&2
    done
    undo=()
    echo "$prog: the host is as it was before this run" >&2
}

on_error() {
    local rc=$1 line=$2 what=$3
    # In a subshell ($(...), a pipeline) only leave it: the main shell sees
    # the failure and unwinds there, once.
    [ "$BASHPID" = "$$" ] || exit "$rc"
    trap - ERR
    echo "$prog: error: \`$what\` failed (exit $rc, line $line)" >&2
    rollback
    rm -rf "$work"
    exit 1
}
trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR
# die() after the first change must unwind too.
die() {
    echo "$prog: error: $*" >&2
    [ "$BASHPID" = "$$" ] || exit 1
    trap - ERR
    rollback
    rm -rf "$work"
    exit 1
}
trap 'rm -rf "$work"' EXIT

# The manifest of the previous install: "f PATH", "d PATH", "u NAME", "g NAME".
declare -A owned=()
if [ -f "$(D "$manifest_path")" ]; then
    while read -r kind item; do
        [ -n "$kind" ] && owned["$kind $item"]=1
    done <"$(D "$manifest_path")"
fi
declare -A keep=() # what the new manifest lists

# mkdirs PATH: creates PATH's missing directories, each journaled.
mkdirs() {
    local dir=$1 missing=()
    while [ ! -d "$(D "$dir")" ] && [ "$dir" != / ]; do
        missing=("$dir" "${missing[@]}")
        dir=$(dirname "$dir")
    done
    for dir in "${missing[@]}"; do
        mkdir "$(D "$dir")"
        undo+=("rmdir $(printf '%q' "$(D "$dir")")")
        keep["d $dir"]=1
    done
}

# put FILE PATH MODE [GROUP]: installs FILE's content at PATH, if it differs.
put() {
    local file=$1 path=$2 mode=$3 group=${4:-} dest what=new backup
    dest=$(D "$path")
    keep["f $path"]=1
    if [ -e "$dest" ]; then
        if cmp -s "$file" "$dest" && [ "$(stat -c %a "$dest")" = "$mode" ]; then
            say "  = $path (unchanged)"
            return 0
        fi
        if [ -z "${owned["f $path"]:-}" ] && [ "$path" != "$conf_path" ] && [ "$path" != "$manifest_path" ]; then
            die "$dest exists and was not installed by $prog: move it away and run again"
        fi
        what=changed
    fi
    changes=$((changes + 1))
    file_changes=$((file_changes + 1))
    if [ "$dry" = 1 ]; then
        say "  + would install $path ($what, mode $mode)"
        return 0
    fi
    mkdirs "$(dirname "$path")"
    if [ -e "$dest" ]; then
        backup=$work/backup.${#undo[@]}
        cp -p "$dest" "$backup"
        undo+=("cp -p $(printf '%q %q' "$backup" "$dest")")
    else
        undo+=("rm -f $(printf '%q' "$dest")")
    fi
    if [ -n "$group" ] && getent group "$group" >/dev/null; then
        install -m "$mode" -g "$group" "$file" "$dest.corecache-new"
    else
        install -m "$mode" "$file" "$dest.corecache-new"
    fi
    mv -f "$dest.corecache-new" "$dest"
    say "  + $path ($what)"
}

# -- the config ------------------------------------------------------------------

# conf_get FILE KEY: like corecache-tune's: systemd EnvironmentFile syntax, parsed.
conf_get() {
    [ -f "$1" ] || return 0
    awk -v key="$2" '
        /^[ \t]*#/ { next }
        {
            line = $0
            sub(/^[ \t]+/, "", line)
            if (index(line, key "=") != 1) next
            val = substr(line, length(key) + 2)
            sub(/[ \t]+$/, "", val)
            if (val ~ /^".*"$/ || val ~ /^\047.*\047$/) val = substr(val, 2, length(val) - 2)
            out = val
        }
        END { printf "%s", out }' "$1"
}

# opts_set FLAG VALUE: replaces FLAG's value in the opts array, or appends it.
opts=()
opts_set() {
    local i
    for ((i = 0; i < ${#opts[@]}; i++)); do
        if [ "${opts[i]}" = "$1" ] && [ $((i + 1)) -lt ${#opts[@]} ]; then
            opts[i + 1]=$2
            return 0
        fi
    done
    opts+=("$1" "$2")
}
opts_flag() { # FLAG on|off: a flag without a value, present or not
    local i kept=()
    for ((i = 0; i < ${#opts[@]}; i++)); do
        [ "${opts[i]}" = "$1" ] || kept+=("${opts[i]}")
    done
    opts=("${kept[@]}")
    [ "$2" = off ] || opts+=("$1")
}
opts_get() { # FLAG LONG -> value
    local i out=""
    for ((i = 0; i < ${#opts[@]}; i++)); do
        case "${opts[i]}" in
        "$1" | "--$2") [ $((i + 1)) -lt ${#opts[@]} ] && out=${opts[i + 1]} ;;
        "--$2="*) out=${opts[i]#--"$2"=} ;;
        "$1"?*) out=${opts[i]#"$1"} ;;
        esac
    done
    echo "$out"
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_cpulist() { [[ "$1" =~ ^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$ ]]; }

opts_drop() { # FLAG: removes FLAG and its value (-o: only an ssl_* list)
    local i kept=()
    for ((i = 0; i < ${#opts[@]}; i++)); do
        if [ "${opts[i]}" = "$1" ] && { [ "$1" != -o ] || [[ "${opts[i + 1]:-}" == ssl_* ]]; }; then
            i=$((i + 1))
            continue
        fi
        kept+=("${opts[i]}")
    done
    opts=("${kept[@]}")
}

# The flags of --tls-*, --auth-file and --sasl-file, and which secret files to
# install (secret_src: source file by installed path).
declare -A secret_src=()
compose_security() {
    local k f
    for k in tls-cert tls-key tls-ca auth-file sasl-file; do
        f=${set_opt[$k]-}
        [ -z "$f" ] || [ -r "$f" ] || die "--$k $f: cannot read it"
    done
    if [ -n "${set_opt[tls-cert]+set}" ]; then
        opts_flag -Z off
        opts_drop -o
        if [ -n "${set_opt[tls-cert]}" ]; then
            [ -n "${set_opt[tls-key]:-}" ] || die "--tls-cert needs --tls-key"
            local list="ssl_chain_cert=$tls_cert_path,ssl_key=$tls_key_path"
            secret_src[$tls_cert_path]=${set_opt[tls-cert]}
            secret_src[$tls_key_path]=${set_opt[tls-key]}
            if [ -n "${set_opt[tls-ca]:-}" ]; then
                list+=",ssl_ca_cert=$tls_ca_path"
                secret_src[$tls_ca_path]=${set_opt[tls-ca]}
            fi
            if [ -n "${set_opt[tls-verify]:-}" ]; then
                [[ "${set_opt[tls-verify]}" =~ ^[0-3]$ ]] || die "--tls-verify ${set_opt[tls-verify]}: want 0, 1, 2 or 3"
                list+=",ssl_verify_mode=${set_opt[tls-verify]}"
            fi
            opts_flag -Z on
            opts+=(-o "$list")
        fi
    elif [ -n "${set_opt[tls-key]+set}${set_opt[tls-ca]+set}${set_opt[tls-verify]+set}" ]; then
        die "--tls-key, --tls-ca and --tls-verify go with --tls-cert"
    fi
    if [ -n "${set_opt[auth-file]+set}" ]; then
        opts_drop -Y
        if [ -n "${set_opt[auth-file]}" ]; then
            secret_src[$auth_path]=${set_opt[auth-file]}
            opts_set -Y "$auth_path"
        fi
    fi
    if [ -n "${set_opt[sasl-file]+set}" ]; then
        opts_flag -S off
        opts_drop --sasl-pwdb
        if [ -n "${set_opt[sasl-file]}" ]; then
            secret_src[$sasl_path]=${set_opt[sasl-file]}
            opts_flag -S on
            opts_set --sasl-pwdb "$sasl_path"
        fi
    fi
}

compose_config() {
    local old cpus nodes ifc thp
    old=$(D "$conf_path")
    if [ -f "$old" ] && [ ${#set_opt[@]} -eq 0 ]; then
        cp "$old" "$work/corecache.conf"
        config_kept=1
    else
        config_kept=0
        if [ -f "$old" ]; then
            read -r -a opts <<<"$(conf_get "$old" CORECACHE_OPTS)"
        else
            opts=(-l 127.0.0.1 -p 11211 -m 64 -c 1024 -b 4096)
        fi
        local k flag
        for k in listen port memory conns backlog threads; do
            [ -n "${set_opt[$k]:-}" ] || continue
            case $k in
            listen) flag=-l ;; port) flag=-p ;; memory) flag=-m ;;
            conns) flag=-c ;; backlog) flag=-b ;; threads) flag=-t ;;
            esac
            [ "$k" = listen ] || is_uint "${set_opt[$k]}" || die "--$k ${set_opt[$k]}: not a number"
            opts_set "$flag" "${set_opt[$k]}"
        done
        compose_security
        cpus=${set_opt[cpus]-$(conf_get "$old" CORECACHE_CPUS)}
        nodes=${set_opt[numa-nodes]-$(conf_get "$old" CORECACHE_NUMA_NODES)}
        ifc=${set_opt[iface]-$(conf_get "$old" CORECACHE_IFACE)}
        thp=${set_opt[thp]-$(conf_get "$old" CORECACHE_THP)}
        thp=${thp:-madvise}
        # Queues interrupting the shard CPUs pay off when each connection is
        # served by the shard on the CPU its queue interrupts.
        if [ -n "${set_opt[iface]+set}" ]; then
            if [ -n "$ifc" ]; then opts_flag --accept-by-cpu on; else opts_flag --accept-by-cpu off; fi
        fi
        cat >"$work/corecache.conf" <<EOF
# /etc/corecache/corecache.conf: this node's corecache settings.
#
# Read by corecache.service (EnvironmentFile=) and by corecache-tune. After an
# edit, run deploy/install.sh again: it regenerates the unit's placement
# drop-in and the sysctls from this file, re-tunes the host and restarts the
# service. A value is KEY="value" (systemd EnvironmentFile syntax).

# The server's flags, as memcached's (corecache -h). -u is not needed: the
# unit runs corecache as its own user. -b is the listen backlog; the kernel
# caps it at net.core.somaxconn, which corecache-tune raises to match.
CORECACHE_OPTS="${opts[*]}"

# CPUs the shards run on, e.g. "2-15" (systemd CPUAffinity=; corecache runs one
# shard per CPU of its affinity mask). Empty: every CPU.
CORECACHE_CPUS="$cpus"

# NUMA nodes for the process's memory, e.g. "0" (NUMAPolicy=bind, NUMAMask=).
# Empty: no policy; corecache still puts each shard's arena on its CPU's node.
CORECACHE_NUMA_NODES="$nodes"

# The NIC whose receive/transmit queues are placed on the shard CPUs (IRQ
# affinity, RPS/RFS, XPS). Empty: interrupts and steering are left alone.
# install.sh --iface also adds --accept-by-cpu to CORECACHE_OPTS (--iface ""
# takes it out): each connection goes to the shard on its queue's CPU.
CORECACHE_IFACE="$ifc"

# Transparent huge pages for the slab arenas: madvise, always, or keep.
CORECACHE_THP="$thp"
EOF
    fi
    # Check what the unit and the tuning will be derived from.
    read -r -a opts <<<"$(conf_get "$work/corecache.conf" CORECACHE_OPTS)"
    [ ${#opts[@]} -gt 0 ] || die "$conf_path: CORECACHE_OPTS is empty or missing"
    [ -z "$(opts_get -u user)" ] || die "$conf_path: CORECACHE_OPTS has -u: leave it out, the unit sets User=$svc_user"
    port=$(opts_get -p port)
    port=${port:-11211}
    conns=$(opts_get -c conn-limit)
    conns=${conns:-1024}
    listen=$(opts_get -l listen)
    listen=${listen:-127.0.0.1}
    if ! is_uint "$port" || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "$conf_path: -p $port is not a port"; fi
    is_uint "$conns" || die "$conf_path: -c $conns is not a number"
    cpus=$(conf_get "$work/corecache.conf" CORECACHE_CPUS)
    nodes=$(conf_get "$work/corecache.conf" CORECACHE_NUMA_NODES)
    [ -z "$cpus" ] || is_cpulist "$cpus" || die "$conf_path: CORECACHE_CPUS=$cpus is not a CPU list (like 0-3,8)"
    [ -z "$nodes" ] || is_cpulist "$nodes" || die "$conf_path: CORECACHE_NUMA_NODES=$nodes is not a node list (like 0 or 0-1)"
    thp=$(conf_get "$work/corecache.conf" CORECACHE_THP)
    case "${thp:-madvise}" in madvise | always | keep) ;; *) die "$conf_path: CORECACHE_THP=$thp: want madvise, always or keep" ;; esac
    conf_cpus=$cpus conf_nodes=$nodes
}

# -- the units -------------------------------------------------------------------

compose_units() {
    local nofile=$((conns + 1024))
    [ "$nofile" -ge 65536 ] || nofile=65536
    cat >"$work/corecache.service" <<EOF
# corecache.service: installed by corecache's deploy/install.sh.
# Settings live in /etc/corecache/corecache.conf; CPU and NUMA placement in
# corecache.service.d/10-placement.conf, generated from it.
[Unit]
Description=corecache, a memcached-compatible cache server
After=network-online.target corecache-tune.service
Wants=network-online.target corecache-tune.service

[Service]
Type=exec
User=$svc_user
Group=$svc_user
EnvironmentFile=$conf_path
ExecStart=$bin_path \$CORECACHE_OPTS
Restart=on-failure
RestartSec=2s
# Exit status 2 is a usage error in the flags: restarting cannot fix it.
RestartPreventExitStatus=2
TimeoutStopSec=30s

# Every connection is a descriptor; io_uring's rings and buffer rings may be
# charged to locked memory on older kernels.
LimitNOFILE=$nofile
LimitMEMLOCK=infinity

# Hardening: corecache needs its sockets, its memory and io_uring, nothing else.
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateMounts=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
UMask=0077
SystemCallArchitectures=native
# @system-service includes io_uring_setup/enter/register (@aio) and mbind,
# set_mempolicy, sched_setaffinity (@resources), which the shards use.
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
EOF

    local cpus=$conf_cpus nodes=$conf_nodes groups=""
    {
        echo "# Generated by corecache's deploy/install.sh from $conf_path: edit that"
        echo "# file and run install.sh again rather than editing this one."
        echo "[Service]"
        if [ -n "$cpus" ]; then
            echo "# One shard per CPU of the affinity mask."
            echo "CPUAffinity=${cpus//,/ }"
        fi
        if [ -n "$nodes" ]; then
            echo "NUMAPolicy=bind"
            echo "NUMAMask=${nodes//,/ }"
        fi
        if [ "$port" -lt 1024 ]; then
            echo "# Port $port is privileged."
            echo "AmbientCapabilities=CAP_NET_BIND_SERVICE"
            echo "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"
        fi
        if [ "$tuning_target" = host ]; then
            groups=$("$tune_src" --config "$work/corecache.conf" --user "$svc_user" groups)
        fi
        if [ -n "$groups" ]; then
            echo "# kernel.io_uring_disabled=1 allows io_uring to this group only."
            echo "SupplementaryGroups=$groups"
        fi
    } >"$work/10-placement.conf"

    # Warm restart (README "Warm restart"): the items live in files on a
    # tmpfs of their own, mounted apart from the service so that it outlives
    # every stop and start of it (not a reboot); SIGTERM drains and saves
    # them. The tmpfs holds -m plus a header page per shard and the saved
    # tables: -m + 1/16 + 64 MiB. A full tmpfs would SIGBUS the server, so
    # it is sized from -m, never left at the kernel's default.
    local mem_mb
    mem_mb=$(opts_get -m memory-limit)
    mem_mb=${mem_mb:-64}
    is_uint "$mem_mb" || mem_mb=64
    cat >"$work/var-lib-corecache-memory.mount" <<EOF
# var-lib-corecache-memory.mount: installed by corecache's deploy/install.sh.
# corecache's item memory (-e $mem_dir/cache), kept across service restarts.
[Unit]
Description=corecache item memory for warm restarts (tmpfs)

[Mount]
What=tmpfs
Where=$mem_dir
Type=tmpfs
Options=mode=0700,uid=$svc_user,gid=$svc_user,size=$((mem_mb + mem_mb / 16 + 64))m,nosuid,nodev,noexec
EOF
    cat >"$work/20-warm-restart.conf" <<EOF
# Generated by corecache's deploy/install.sh: warm restarts (README "Warm restart").
[Unit]
RequiresMountsFor=$mem_dir

[Service]
# The tmpfs belongs to the service's user (mount(8) maps the names).
ReadWritePaths=$mem_dir
ExecStart=
ExecStart=$bin_path \$CORECACHE_OPTS -e $mem_dir/cache
# SIGTERM is a graceful stop: accepting ends, connections finish, each shard
# saves its items; only a stop that completes is reattached at the next start.
KillSignal=SIGTERM
TimeoutStopSec=120s
EOF

    cat >"$work/corecache-tune.service" <<EOF
# corecache-tune.service: installed by corecache's deploy/install.sh.
# Applies the host tuning that a reboot forgets (THP mode, NIC interrupt
# affinity, RPS/RFS/XPS) before corecache starts; sysctls come from sysctl.d.
[Unit]
Description=corecache host tuning (huge pages, NIC queue placement)
Before=corecache.service
After=network-pre.target systemd-sysctl.service
ConditionPathExists=$conf_path

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=$tune_path --config $conf_path --user $svc_user apply

[Install]
WantedBy=multi-user.target
EOF
}

# -- steps -----------------------------------------------------------------------

preflight() {
    local id like missing=() pkg
    # shellcheck source=/dev/null
    id=$(. /etc/os-release 2>/dev/null && echo "${ID:-}") || true
    # shellcheck source=/dev/null
    like=$(. /etc/os-release 2>/dev/null && echo "${ID_LIKE:-}") || true
    case " $id $like " in
    *" debian "* | *" ubuntu "*) ;;
    *) die "this script installs on Debian or Ubuntu; /etc/os-release says ID=${id:-unknown}" ;;
    esac
    if [ "$real_host" = 1 ] && [ "$dry" = 0 ] && [ "$(id -u)" -ne 0 ]; then
        die "installing on this host needs root (or use --destdir DIR, or --dry-run)"
    fi
    [ "$uninstall" = 0 ] || return 0
    local deps=(cmake gcc make pkg-config liburing-dev libnuma-dev libjemalloc-dev libxxhash-dev)
    for pkg in "${deps[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$dry" = 1 ]; then
            say "  + would apt-get install ${missing[*]} (build dependencies)"
        elif [ "$real_host" = 1 ]; then
            say "  + apt-get install ${missing[*]} (build dependencies)"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        else
            die "missing build dependencies: ${missing[*]} (apt-get install them)"
        fi
    fi
}

uring_check() {
    say "kernel:"
    local out rc=0
    out=$("$tune_src" --config /dev/null --user "$svc_user" check 2>&1) || rc=$?
    printf '%s\n' "$out" | sed 's/^/  /'
    if [ "$rc" != 0 ]; then
        if [ "$real_host" = 1 ]; then
            die "this kernel cannot run corecache's io_uring backend, which the config requires (the fix is printed above)"
        fi
        say "  (staging with --destdir: the target host's kernel is what matters)"
    fi
}

build() {
    say "build (release profile) in $build_dir:"
    if [ "$dry" = 1 ]; then
        say "  + would run cmake -DCMAKE_BUILD_TYPE=Release -DCORECACHE_WERROR=OFF and build the corecache target"
        return 0
    fi
    if ! cmake -S "$src" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DCORECACHE_WERROR=OFF \
        -DCORECACHE_SANITIZE=OFF >"$work/cmake.log" 2>&1 ||
        ! cmake --build "$build_dir" --target corecache -j "$(nproc)" >>"$work/cmake.log" 2>&1; then
        tail -n 30 "$work/cmake.log" >&2
        die "the build failed (its last lines are above)"
    fi
    [ -x "$build_dir/corecache" ] || die "the build made no $build_dir/corecache"
    say "  = $build_dir/corecache: $("$build_dir/corecache" -V)"
}

check_flags() {
    [ "$dry" = 0 ] || return 0
    local out rc=0
    # The server judges its own flags: a usage error now beats a unit that
    # fails at every start. -V parses every flag, then prints the version
    # without looking at the host.
    out=$("$build_dir/corecache" "${opts[@]}" -V 2>&1) || rc=$?
    [ "$rc" = 0 ] || die "$conf_path: CORECACHE_OPTS is refused by corecache: $out"
}

ensure_user() {
    say "service user:"
    if [ "$real_host" = 0 ]; then
        say "  = not created (--destdir): create it on the target: groupadd --system $svc_user; useradd --system --gid $svc_user --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $svc_user"
        return 0
    fi
    if getent group "$svc_user" >/dev/null; then
        [ -z "${owned["g $svc_user"]:-}" ] || keep["g $svc_user"]=1
    else
        changes=$((changes + 1))
        if [ "$dry" = 1 ]; then
            say "  + would create system group $svc_user"
        else
            groupadd --system "$svc_user"
            undo+=("groupdel $(printf '%q' "$svc_user")")
            say "  + created system group $svc_user"
        fi
        keep["g $svc_user"]=1
    fi
    if getent passwd "$svc_user" >/dev/null; then
        [ -z "${owned["u $svc_user"]:-}" ] || keep["u $svc_user"]=1
        say "  = user $svc_user exists"
    else
        changes=$((changes + 1))
        if [ "$dry" = 1 ]; then
            say "  + would create system user $svc_user (no login, no home)"
        else
            useradd --system --gid "$svc_user" --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin --comment "corecache cache server" "$svc_user"
            undo+=("userdel $(printf '%q' "$svc_user")")
            say "  + created system user $svc_user (no login, no home)"
        fi
        keep["u $svc_user"]=1
    fi
}

# The secret files the config names: new ones from the command line; those a
# previous run installed and the config still names are kept as they are.
install_secrets() {
    local path mode
    for path in "$tls_cert_path" "$tls_key_path" "$tls_ca_path" "$auth_path" "$sasl_path"; do
        case "$path" in
        "$tls_cert_path" | "$tls_ca_path") mode=644 ;;
        *) mode=640 ;;
        esac
        if [ -n "${secret_src[$path]:-}" ]; then
            put "${secret_src[$path]}" "$path" "$mode" "$svc_user"
        elif [ -n "${owned["f $path"]:-}" ] && [ -f "$(D "$path")" ]; then
            if grep -qF -- "$path" "$work/corecache.conf"; then
                keep["f $path"]=1
                continue
            fi
            # ours, and the config no longer names it: a secret does not linger
            changes=$((changes + 1))
            file_changes=$((file_changes + 1))
            if [ "$dry" = 1 ]; then
                say "  - would remove $path (no longer used)"
                continue
            fi
            local backup=$work/backup.${#undo[@]}
            cp -p "$(D "$path")" "$backup"
            undo+=("cp -p $(printf '%q %q' "$backup" "$(D "$path")")")
            rm -f "$(D "$path")"
            say "  - $path (no longer used)"
        fi
    done
}

install_files() {
    say "files (under ${destdir:-/}):"
    if [ "$dry" = 1 ] && [ ! -x "$build_dir/corecache" ]; then
        say "  + would install $bin_path (from the build)"
        changes=$((changes + 1))
        keep["f $bin_path"]=1
    else
        put "$build_dir/corecache" "$bin_path" 755
    fi
    put "$tune_src" "$tune_path" 755
    # The state directory first, so that it is journaled and in the manifest
    # before host tuning records its saved values there.
    [ "$dry" = 1 ] || mkdirs "$(dirname "$manifest_path")"
    put "$work/corecache.conf" "$conf_path" 644
    [ "$config_kept" = 0 ] || say "    (kept as it is: no settings were given on the command line)"
    install_secrets
    put "$work/corecache.service" "$unit_path" 644
    put "$work/10-placement.conf" "$dropin_path" 644
    put "$work/20-warm-restart.conf" "$warm_dropin_path" 644
    put "$work/var-lib-corecache-memory.mount" "$mem_unit_path" 644
    put "$work/corecache-tune.service" "$tune_unit_path" 644
    if [ "$tune" = 1 ]; then
        # Read the host's current values (or the fake tree's) so no
        # capacity knob is ever lowered.
        local root_args=()
        case "$tuning_target" in
        fake) root_args=(--root "$tune_root") ;;
        # Staging: the target's kernel is unknown, so the values come from
        # the config alone (an empty tree reads as "nothing set yet").
        none) mkdir -p "$work/no-host"; root_args=(--root "$work/no-host") ;;
        esac
        "$tune_src" "${root_args[@]}" --config "$work/corecache.conf" --user "$svc_user" sysctl-conf >"$work/sysctl.conf"
        put "$work/sysctl.conf" "$sysctl_path" 644
    fi
}

apply_tuning() {
    local root_args=() saved
    case "$tuning_target" in
    none)
        if [ "$tune" = 0 ]; then
            say "host tuning: skipped (--no-tune)"
        else
            say "host tuning: not applied (--destdir); on the target, corecache-tune.service applies it at boot"
        fi
        return 0
        ;;
    fake) root_args=(--root "$tune_root"); say "host tuning (of the tree at $tune_root):" ;;
    host) say "host tuning:" ;;
    esac
    local conf=$work/corecache.conf
    if [ "$dry" = 1 ]; then
        "$tune_src" "${root_args[@]}" --config "$conf" --user "$svc_user" --dry-run apply |
            sed -e '/^(nothing/d' -e 's/^/  /' | tee "$work/tune.out"
        grep -q '^ *+' "$work/tune.out" && changes=$((changes + 1))
        return 0
    fi
    saved=${tune_root:-}$saved_path
    if [ -f "$saved" ]; then
        cp -p "$saved" "$work/tune.saved.before"
        undo+=("cp -p $(printf '%q %q' "$work/tune.saved.before" "$saved")")
    elif [ -n "$tune_root" ]; then
        # In a fake tree corecache-tune makes its own state directory.
        undo+=("rm -f $(printf '%q' "$saved"); rmdir $(printf '%q' "$(dirname "$saved")") 2>/dev/null || true")
    else
        undo+=("rm -f $(printf '%q' "$saved")")
    fi
    : >"$work/tune.journal"
    undo+=("$(printf '%q ' "$tune_src" "${root_args[@]}" undo "$work/tune.journal")")
    "$tune_src" "${root_args[@]}" --config "$conf" --user "$svc_user" --journal "$work/tune.journal" apply |
        sed -e '/^(nothing/d' -e 's/^/  /'
    [ ! -s "$work/tune.journal" ] || changes=$((changes + 1))
}

systemd_running() { [ -d /run/systemd/system ]; }

systemd_restore() { # WAS_ENABLED WAS_ACTIVE
    systemctl daemon-reload
    [ "$1" = 1 ] || systemctl disable corecache.service corecache-tune.service >/dev/null 2>&1 || true
    if [ "$2" = 1 ]; then systemctl restart corecache.service; else systemctl stop corecache.service || true; fi
}

probe_server() { # host port -> true when it answers version
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "version\r\n" >&3 && IFS= read -r l <&3 && [[ "$l" == VERSION* ]]' "$1" "$2" 2>/dev/null
}

service() {
    say "service:"
    if [ "$real_host" = 0 ]; then
        say "  = not started (--destdir)"
        return 0
    fi
    if [ "$start" = 0 ]; then
        say "  = not enabled or started (--no-start)"
        return 0
    fi
    if ! systemd_running; then
        say "  = systemd is not running here (PID 1 is $(cat /proc/1/comm 2>/dev/null)): the units are installed;"
        say "    once it runs: systemctl enable --now corecache-tune.service corecache.service"
        return 0
    fi
    local active=0 enabled=0
    systemctl is-active --quiet corecache.service && active=1
    systemctl is-enabled --quiet corecache.service 2>/dev/null && enabled=1
    if [ "$dry" = 1 ]; then
        [ "$enabled" = 1 ] || { say "  + would enable corecache.service and corecache-tune.service"; changes=$((changes + 1)); }
        if [ "$file_changes" -gt 0 ] || [ "$active" = 0 ]; then
            say "  + would $([ "$active" = 1 ] && echo restart || echo start) corecache.service"
        else
            say "  = corecache.service is running as installed"
        fi
        return 0
    fi
    if [ "$file_changes" -eq 0 ] && [ "$active" = 1 ] && [ "$enabled" = 1 ]; then
        say "  = corecache.service is running as installed"
        return 0
    fi
    # Undone after the files are back (the journal runs last to first):
    # the service returns to the state it had.
    undo+=("systemd_restore $enabled $active")
    systemctl daemon-reload
    [ "$enabled" = 1 ] || { systemctl enable corecache-tune.service corecache.service >/dev/null 2>&1; say "  + enabled"; }
    systemctl restart corecache.service
    changes=$((changes + 1))
    # The first -l address, with its own port if it names one.
    local host=${listen%%,*} hport=$port
    if [[ "$host" =~ ^\[(.*)\]:([0-9]+)$ ]] || [[ "$host" =~ ^([^:]*):([0-9]+)$ ]]; then
        host=${BASH_REMATCH[1]} hport=${BASH_REMATCH[2]}
    fi
    host=${host#[} host=${host%]}
    case "$host" in 0.0.0.0 | "" | "*") host=127.0.0.1 ;; "::") host=::1 ;; esac
    for _ in $(seq 50); do
        probe_server "$host" "$hport" && { say "  + corecache.service answers on $host:$hport"; return 0; }
        sleep 0.2
    done
    journalctl -u corecache.service -n 20 --no-pager >&2 2>/dev/null || true
    die "corecache.service did not answer on $host:$hport within 10 s (its log is above)"
}

write_manifest() {
    local item
    for item in "${!owned[@]}"; do
        # Directories made by an earlier run stay ours while they exist.
        case "$item" in
        "d "*) [ ! -d "$(D "${item#d }")" ] || keep["$item"]=1 ;;
        esac
    done
    keep["f $manifest_path"]=1
    [ "$dry" = 1 ] || mkdirs "$(dirname "$manifest_path")"
    printf '%s\n' "${!keep[@]}" | sort >"$work/manifest"
    put "$work/manifest" "$manifest_path" 644 >/dev/null
}

# -- uninstall -------------------------------------------------------------------

do_uninstall() {
    local manifest kind item root_args=() lines=() line
    manifest=$(D "$manifest_path")
    if [ ! -f "$manifest" ]; then
        say "corecache is not installed under ${destdir:-/} (no $manifest_path): nothing to do"
        return 0
    fi
    # Read first: the manifest is itself one of the files removed. Reverse
    # order puts a directory's contents before it, a user before its group.
    mapfile -t lines < <(sort -r "$manifest")
    local verb=""
    [ "$dry" = 0 ] || verb="would "
    if [ "$real_host" = 1 ] && systemd_running; then
        say "service:"
        say "  - ${verb}stop and disable corecache.service and corecache-tune.service"
        [ "$dry" = 1 ] || systemctl disable --now corecache.service corecache-tune.service >/dev/null 2>&1 || true
        # the items tmpfs goes with the service (its memory is given back)
        [ "$dry" = 1 ] || systemctl stop var-lib-corecache-memory.mount >/dev/null 2>&1 || true
    fi
    if [ "$tuning_target" != none ]; then
        say "host tuning: ${verb}put back every value it changed"
        [ "$tuning_target" = fake ] && root_args=(--root "$tune_root")
        local dry_args=()
        [ "$dry" = 0 ] || dry_args=(--dry-run)
        "$tune_src" "${root_args[@]}" "${dry_args[@]}" restore | sed 's/^/  /'
    fi
    say "files:"
    for line in "${lines[@]}"; do
        read -r kind item <<<"$line"
        [ "$kind" = f ] || continue
        say "  - ${verb}remove $item"
        [ "$dry" = 1 ] || rm -f "$(D "$item")"
    done
    for line in "${lines[@]}"; do
        read -r kind item <<<"$line"
        [ "$kind" = d ] || continue
        if [ "$dry" = 1 ]; then
            say "  - would remove $item/ (if empty)"
        elif rmdir "$(D "$item")" 2>/dev/null; then
            say "  - removed $item/"
        elif [ -d "$(D "$item")" ]; then
            say "  = kept $item/: not empty"
        fi
    done
    for line in "${lines[@]}"; do
        read -r kind item <<<"$line"
        case "$kind" in
        u) say "  - ${verb}delete user $item"; [ "$dry" = 1 ] || userdel "$item" 2>/dev/null || true ;;
        g) say "  - ${verb}delete group $item"; [ "$dry" = 1 ] || groupdel "$item" 2>/dev/null || true ;;
        esac
    done
    if [ "$real_host" = 1 ] && systemd_running && [ "$dry" = 0 ]; then
        systemctl daemon-reload
    fi
    say "${verb:+(dry run) }corecache is ${verb}uninstalled"
}

# -- main ------------------------------------------------------------------------

[ "$dry" = 0 ] || say "(dry run: nothing will be changed)"
preflight
if [ "$uninstall" = 1 ]; then
    do_uninstall
    exit 0
fi
uring_check
compose_config
build
check_flags
compose_units
ensure_user
install_files
apply_tuning
service
write_manifest
undo=()
if [ "$dry" = 1 ]; then
    if [ "$changes" -eq 0 ]; then say "(dry run) nothing to do: corecache is installed as configured"; else say "(dry run) $changes change(s) would be made"; fi
elif [ "$changes" -eq 0 ]; then
    say "nothing to do: corecache is installed as configured"
else
    say "done: $changes change(s); corecache is installed"
fi
