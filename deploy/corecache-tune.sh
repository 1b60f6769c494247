#!/usr/bin/env bash
# deploy/corecache-tune.sh, installed as PREFIX/sbin/corecache-tune: the host
# tuning a corecache node wants, computed from its config, applied and undone.
#
#   corecache-tune [options] check        io_uring facts; exit 1 only if the config requires io_uring
#                                         (-o io_backend=io_uring) and it is unusable; otherwise
#                                         corecache runs on its epoll backend there
#   corecache-tune [options] plan         print every change apply would make
#   corecache-tune [options] apply        make them, recording each previous value
#   corecache-tune [options] restore      put back every value apply ever changed
#   corecache-tune [options] sysctl-conf  print the sysctl.d file that makes the sysctls persist
#   corecache-tune [options] undo FILE    put back the values recorded in a journal (see --journal)
#   corecache-tune [options] groups       the group the service must join to use io_uring, if any
#
# Options:
#   --config FILE  the node's config (default /etc/corecache/corecache.conf)
#   --root DIR     the host's /proc, /sys and /var/lib are under DIR (tests
#                  point it at a fake tree; the default is the real host, /)
#   --user NAME    the service user, for the io_uring probe and group (default corecache)
#   --journal FILE apply appends "PATH<TAB>PREVIOUS" for every value it writes,
#                  so a caller can undo exactly this run (`undo FILE`)
#   --dry-run      apply and restore print what they would do and do nothing
#
# What it tunes, each derived from the config (CORECACHE_* variables):
#   - sysctls: the accept queue (net.core.somaxconn, net.ipv4.tcp_max_syn_backlog)
#     at least the listen backlog (-b), and the usual settings for many short
#     connections (netdev_max_backlog, tcp_fin_timeout, no slow start after
#     idle on pooled connections). Capacity knobs are only ever raised.
#   - transparent huge pages: corecache asks for them on its slab arenas
#     (MADV_HUGEPAGE), which works in the "madvise" and "always" modes; "never"
#     is changed to CORECACHE_THP (default madvise). Explicit huge pages
#     (vm.nr_hugepages) are not used by corecache, so none are reserved.
#   - CORECACHE_IFACE's queues: queue i's interrupt goes to the i-th shard CPU
#     (round robin), transmit queue i serves the shard CPUs mapped to it (XPS),
#     and receive flow steering (RFS) makes the kernel finish each flow's receive
#     processing on the CPU of the shard that reads it. A NIC with fewer
#     receive queues than shards also gets RPS over the shard CPUs.
#   - io_uring: the check below; when the kernel restricts io_uring to a group
#     (kernel.io_uring_disabled=1, or 2 = off), the fix is that group.
#
# Design. Every value it changes is read first; the first previous value of
# each path is kept in ROOT/var/lib/corecache/tune.saved, so `restore` puts
# the host back as it was before corecache, however many times apply ran.
# apply is idempotent: a value already as wanted is not written. Values that
# do not survive a reboot (THP, IRQ affinity, RPS/XPS) are applied again at
# boot by corecache-tune.service. Nothing here starts or stops services.
set -Eeuo pipefail

prog=corecache-tune
root=""
config=/etc/corecache/corecache.conf
user=corecache
journal=""
dry=0
cmd=""
undo_file=""

die() {
    echo "$prog: $*" >&2
    exit 1
}
warn() { echo "$prog: warning: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
    --config) config=${2:?--config needs a file}; shift 2 ;;
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --user) user=${2:?--user needs a name}; shift 2 ;;
    --journal) journal=${2:?--journal needs a file}; shift 2 ;;
    --dry-run) dry=1; shift ;;
    check | plan | apply | restore | sysctl-conf | groups) cmd=$1; shift ;;
    undo) cmd=undo; undo_file=${2:?undo needs a journal file}; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
done
[ -n "$cmd" ] || die "no command (check, plan, apply, restore, sysctl-conf, undo FILE; --help)"
root=${root%/}
saved="$root/var/lib/corecache/tune.saved"

# -- the config ----------------------------------------------------------------

# conf_get KEY: the value of KEY in the config (systemd EnvironmentFile syntax:
# KEY=value or KEY="value", # comments). The file is parsed, never sourced.
conf_get() {
    [ -f "$config" ] || return 0
    awk -v key="$1" '
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
        END { printf "%s", out }' "$config"
}

# opt_value FLAG LONG: the value of -F VAL, -FVAL or --long=VAL in CORECACHE_OPTS.
opt_value() {
    local short=$1 long=$2 prev="" tok out=""
    local -a toks
    read -r -a toks <<<"$(conf_get CORECACHE_OPTS)"
    for tok in "${toks[@]}"; do
        if [ "$prev" = "$short" ] || [ "$prev" = "--$long" ]; then
            out=$tok
        elif [[ "$tok" == --"$long"=* ]]; then
            out=${tok#--"$long"=}
        elif [[ "$tok" == "$short"?* ]] && [[ "$tok" != --* ]]; then
            out=${tok#"$short"}
        fi
        prev=$tok
    done
    printf '%s' "$out"
}

# -- CPU lists and masks -------------------------------------------------------

# expand_cpus "0-3,6" -> "0 1 2 3 6"
expand_cpus() {
    local part a b out=()
    local -a parts
    IFS=, read -r -a parts <<<"$1"
    for part in "${parts[@]}"; do
        [ -n "$part" ] || continue
        if [[ "$part" =~ ^([0-9]+)-([0-9]+)$ ]]; then
            a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]}
            [ "$a" -le "$b" ] || die "CPU list $1: $part runs backwards"
            for ((; a <= b; a++)); do out+=("$a"); done
        elif [[ "$part" =~ ^[0-9]+$ ]]; then
            out+=("$part")
        else
            die "CPU list $1: $part is not a CPU number or range"
        fi
    done
    echo "${out[*]}"
}

# cpus_to_mask "0 5 33" -> "00000002,00000021" (the kernel's cpumask format)
cpus_to_mask() {
    local c max=0 words i mask=""
    local -a w
    for c in $1; do [ "$c" -gt "$max" ] && max=$c; done
    words=$((max / 32 + 1))
    for ((i = 0; i < words; i++)); do w[i]=0; done
    for c in $1; do w[c / 32]=$((w[c / 32] | (1 << (c % 32)))); done
    for ((i = words - 1; i >= 0; i--)); do
        mask+=$(printf '%08x' "${w[i]}")
        [ "$i" -eq 0 ] || mask+=,
    done
    echo "$mask"
}

# mask_is_zero "00000000,00000000" -> true
mask_is_zero() { [[ "$1" =~ ^[0,]*$ ]]; }

# Two masks name the same CPUs (the kernel prints as many words as it has CPUs).
mask_eq() {
    local a=${1//,/} b=${2//,/}
    while [ "${a#0}" != "$a" ]; do a=${a#0}; done
    while [ "${b#0}" != "$b" ]; do b=${b#0}; done
    [ "$a" = "$b" ]
}

shard_cpus() {
    local list
    list=$(conf_get CORECACHE_CPUS)
    [ -n "$list" ] || list=$(cat "$root/sys/devices/system/cpu/online" 2>/dev/null || echo 0)
    expand_cpus "$list"
}

# -- reading and writing values --------------------------------------------------

read_value() { # PATH -> current value (THP: the selected mode)
    local v
    v=$(cat "$root$1" 2>/dev/null) || return 1
    if [[ "$1" == */transparent_hugepage/* ]] && [[ "$v" =~ \[([a-z+]+)\] ]]; then
        v=${BASH_REMATCH[1]}
    fi
    printf '%s' "$v"
}

changed=0

# saved_value PATH: the value PATH had before corecache-tune first changed it.
saved_value() {
    [ -f "$saved" ] || return 0
    awk -F '\t' -v p="$1" '$1 == p { print $2; exit }' "$saved"
}

# set_value PATH VALUE WHAT [soft]: writes VALUE unless it is already there.
# A soft write that the kernel refuses (a managed IRQ) is a warning.
set_value() {
    local path=$1 want=$2 what=$3 soft=${4:-} cur
    cur=$(read_value "$path") || {
        [ -n "$soft" ] && { warn "$what: cannot read $path; skipped"; return 0; }
        die "$what: cannot read $root$path"
    }
    if [ "$cur" = "$want" ] || { [[ "$path" == */rps_cpus || "$path" == */xps_cpus || "$path" == */smp_affinity ]] && mask_eq "$cur" "$want"; }; then
        echo "  = $what: $want (already)"
        return 0
    fi
    if [ "$dry" = 1 ] || [ "$cmd" = plan ]; then
        echo "  + $what: $cur -> $want   ($path)"
        changed=1
        return 0
    fi
    if ! printf '%s\n' "$want" 2>/dev/null >"$root$path"; then
        [ -n "$soft" ] && { warn "$what: the kernel refused $want in $path (a managed interrupt?); left at $cur"; return 0; }
        die "$what: cannot write $want to $root$path"
    fi
    mkdir -p "$(dirname "$saved")"
    if ! grep -q "^$path	" "$saved" 2>/dev/null; then
        printf '%s\t%s\n' "$path" "$cur" >>"$saved"
    fi
    [ -z "$journal" ] || printf '%s\t%s\n' "$path" "$cur" >>"$journal"
    echo "  + $what: $cur -> $want"
    changed=1
}

# -- io_uring ------------------------------------------------------------------

# The facts corecache's own startup check depends on, each with its fix.
# Sets uring_fatal (io_uring cannot run; no setting here fixes it, so corecache
# serves on its epoll backend) and
# uring_sysctls ("key value" lines that fix a restriction).
uring_fatal=0
uring_sysctls=""
uring_groups="" # a group the service must be in (SupplementaryGroups=)

uring_check() {
    local rel major minor disabled group gid kconf probe
    uring_fatal=0 uring_sysctls="" uring_groups=""
    rel=$(cat "$root/proc/sys/kernel/osrelease" 2>/dev/null || uname -r)
    major=${rel%%.*}
    minor=${rel#*.}
    minor=${minor%%[!0-9]*}
    if [ "$major" -gt 6 ] || { [ "$major" -eq 6 ] && [ "$minor" -ge 0 ]; }; then
        echo "io_uring: kernel $rel: 6.0 or later (multishot receive with provided buffers): ok"
    else
        echo "io_uring: kernel $rel: too old for corecache's io_uring backend (Linux 6.0 or later)"
        echo "  fix: install a newer kernel (Debian 12's linux-image-amd64 is 6.1; Ubuntu 22.04: linux-generic-hwe-22.04) and reboot"
        uring_fatal=1
    fi

    kconf=""
    if [ -r "$root/boot/config-$rel" ]; then
        kconf=$(grep -E '^(# )?CONFIG_IO_URING[= ]' "$root/boot/config-$rel" || true)
    elif [ -r "$root/proc/config.gz" ]; then
        kconf=$( (zcat "$root/proc/config.gz" 2>/dev/null || true) | grep -E '^(# )?CONFIG_IO_URING[= ]' || true)
    fi
    case "$kconf" in
    CONFIG_IO_URING=y) echo "io_uring: CONFIG_IO_URING=y: ok" ;;
    "") echo "io_uring: kernel config not found (/boot/config-$rel, /proc/config.gz): the probe below decides" ;;
    *)
        echo "io_uring: the kernel is built without io_uring ($kconf)"
        echo "  fix: a kernel built with CONFIG_IO_URING=y (every Debian and Ubuntu kernel is)"
        uring_fatal=1
        ;;
    esac

    # The service user's primary group (install.sh creates a group of the same name).
    gid=$(id -g "$user" 2>/dev/null || getent group "$user" 2>/dev/null | cut -d: -f3 || true)
    disabled=$(cat "$root/proc/sys/kernel/io_uring_disabled" 2>/dev/null || echo absent)
    group=$(cat "$root/proc/sys/kernel/io_uring_group" 2>/dev/null || echo -1)
    case "$disabled" in
    absent) echo "io_uring: kernel.io_uring_disabled: not in this kernel (io_uring is open to all): ok" ;;
    0) echo "io_uring: kernel.io_uring_disabled=0: ok" ;;
    1 | 2)
        # Already fixed by us (the value we found is kept in tune.saved):
        # the fix must stay in the persisted sysctls.
        if [ "$disabled" = 1 ] && [ "$(saved_value /proc/sys/kernel/io_uring_disabled)" = 2 ]; then
            disabled=2
            echo "io_uring: kernel.io_uring_disabled was 2 (io_uring off); corecache-tune set it to 1"
        elif [ "$disabled" = 2 ]; then
            echo "io_uring: kernel.io_uring_disabled=2: io_uring is off for every process"
        else
            echo "io_uring: kernel.io_uring_disabled=1: only members of kernel.io_uring_group ($group) may use it"
        fi
        [ "$disabled" = 1 ] || uring_sysctls+="kernel.io_uring_disabled 1"$'\n'
        if [ "$group" != -1 ] && [ "$group" != "${gid:-x}" ]; then
            # Another service may rely on that group: join it instead of moving it.
            uring_groups=$(getent group "$group" 2>/dev/null | cut -d: -f1 || true)
            uring_groups=${uring_groups:-$group}
            echo "  fix: the service joins group $uring_groups (SupplementaryGroups= in the unit)"
        elif [ -n "$gid" ]; then
            uring_sysctls+="kernel.io_uring_group $gid"$'\n'
            echo "  fix: kernel.io_uring_group=$gid (group $user; persisted in sysctl.d)"
        else
            echo "  fix: kernel.io_uring_group=<gid of group $user>, set once that group exists"
        fi
        ;;
    *) warn "kernel.io_uring_disabled=$disabled: unknown value" ;;
    esac

    # The live probe: io_uring_setup(2) as the service user, as the server
    # will call it. Only on the real host (a --root tree has no kernel).
    if [ -z "$root" ] && command -v perl >/dev/null; then
        local as drop=()
        as=$(id -un)
        if [ "$(id -u)" -eq 0 ]; then
            # As root the kernel would allow what the service user may not.
            as=nobody
            getent passwd "$user" >/dev/null 2>&1 && as=$user
            drop=(setpriv --reuid="$as" --regid="$(id -g "$as")" --init-groups)
        fi
        # shellcheck disable=SC2016 # perl's variables, not the shell's
        probe=$("${drop[@]}" perl -e 'my $p = "\0" x 120; my $fd = syscall(425, 2, $p);
                     if ($fd < 0) { print "$!"; exit 1 } print "ok"' 2>&1 || true)
        if [ "$probe" = ok ]; then
            echo "io_uring: io_uring_setup as $as: ok"
        elif [ "$disabled" = 1 ] || [ "$disabled" = 2 ]; then
            echo "io_uring: io_uring_setup as $as: $probe (the fix above addresses it)"
        else
            echo "io_uring: io_uring_setup as $as: $probe"
            echo "  fix: io_uring is blocked outside the kernel's own settings: in a container, allow io_uring_setup,"
            echo "       io_uring_enter and io_uring_register in its seccomp profile (Docker's default profile blocks them)"
            uring_fatal=1
        fi
    fi
}

# True when CORECACHE_OPTS forces the io_uring backend (`-o io_backend=io_uring`
# among the -o suboptions, or --io-backend io_uring / --io-backend=io_uring).
uring_required() {
    local prev="" tok val
    local -a toks
    read -r -a toks <<<"$(conf_get CORECACHE_OPTS)"
    for tok in "${toks[@]}"; do
        val=""
        if [ "$prev" = -o ]; then
            val=",$tok,"
        elif [[ "$tok" == -o?* ]]; then
            val=",${tok#-o},"
        elif [ "$prev" = --io-backend ]; then
            val=",io_backend=$tok,"
        elif [[ "$tok" == --io-backend=* ]]; then
            val=",io_backend=${tok#--io-backend=},"
        fi
        [[ "$val" == *,io_backend=io_uring,* ]] && return 0
        prev=$tok
    done
    return 1
}

# -- sysctls ---------------------------------------------------------------------

# Prints "key value" lines: the sysctls this node wants. Capacity knobs are
# raised to at least our value, never lowered; fin_timeout never raised.
sysctl_wanted() {
    local backlog cur key want
    backlog=$(opt_value -b listen-backlog)
    backlog=${backlog:-1024}
    [[ "$backlog" =~ ^[0-9]+$ ]] || die "CORECACHE_OPTS: -b $backlog is not a number"
    at_least() { # key value
        cur=$(read_value "/proc/sys/${1//.//}" 2>/dev/null || echo 0)
        [[ "$cur" =~ ^[0-9]+$ ]] || cur=0
        want=$2
        [ "$cur" -gt "$want" ] && want=$cur
        echo "$1 $want"
    }
    at_least net.core.somaxconn "$((backlog > 4096 ? backlog : 4096))"
    at_least net.ipv4.tcp_max_syn_backlog "$((backlog > 8192 ? backlog : 8192))"
    at_least net.core.netdev_max_backlog 16384
    cur=$(read_value /proc/sys/net/ipv4/tcp_fin_timeout 2>/dev/null || echo 60)
    want=15
    if [[ "$cur" =~ ^[0-9]+$ ]] && [ "$cur" -lt 15 ]; then want=$cur; fi
    echo "net.ipv4.tcp_fin_timeout $want"
    echo "net.ipv4.tcp_slow_start_after_idle 0"
    [ -z "$(conf_get CORECACHE_IFACE)" ] || at_least net.core.rps_sock_flow_entries 32768
    printf '%s' "$uring_sysctls"
}

sysctl_conf() {
    echo "# Installed by corecache's deploy/install.sh; removed by install.sh --uninstall."
    echo "# Derived by corecache-tune from the node's corecache.conf (listen backlog, NIC steering, io_uring)."
    sysctl_wanted | while read -r key want; do
        [ -n "$key" ] && echo "$key = $want"
    done
}

# -- the NIC ---------------------------------------------------------------------

# The interrupt lines of IFACE's queues, "IRQ QUEUE" per line, queue order.
nic_irqs() { # iface
    local ifc=$1 dev devname msi irq name q
    dev=$root/sys/class/net/$ifc/device
    devname=$(basename "$(readlink "$dev" 2>/dev/null || echo none)")
    msi=""
    if [ -d "$dev/msi_irqs" ]; then msi=$dev/msi_irqs; elif [ -d "$dev/../msi_irqs" ]; then msi=$dev/../msi_irqs; fi
    [ -n "$msi" ] || return 0
    for irq in "$msi"/*; do
        irq=${irq##*/}
        name=$(awk -v irq="$irq:" '$1 == irq { print $NF }' "$root/proc/interrupts")
        name=${name%%@*}
        case "$name" in
        *config* | *async* | *mgmt* | *ctrl* | *event* | *fdir* | *aux*) continue ;;
        esac
        # Queue vectors end in a queue number after a queue word or the
        # device's name: eth0-TxRx-3, eth0-rx-3, virtio2-input.3,
        # mlx5_comp3, eth0-3. The others (config, async, mgmt, the bare
        # device name) are not on the data path.
        shopt -s nocasematch
        if [[ "$name" =~ (txrx|rx|tx|input|output|comp|queue|fp)[-_.]?([0-9]+)$ ]]; then
            q=${BASH_REMATCH[2]}
        elif [[ "$name" == "$ifc-"* || "$name" == "$devname-"* ]] && [[ "$name" =~ -([0-9]+)$ ]]; then
            q=${BASH_REMATCH[1]}
        else
            shopt -u nocasematch
            continue
        fi
        shopt -u nocasematch
        echo "$irq $q"
    done | sort -n -k2 -k1
}

nic_tune() {
    local ifc=$1 qdir ncpu nrx ntx i c irq q mask
    local -a cpus rx tx
    qdir=$root/sys/class/net/$ifc/queues
    [ -d "$qdir" ] || die "CORECACHE_IFACE=$ifc: no such interface ($qdir)"
    read -r -a cpus <<<"$(shard_cpus)"
    ncpu=${#cpus[@]}
    mapfile -t rx < <(find "$qdir" -mindepth 1 -maxdepth 1 -name 'rx-*' -printf '%f\n' | sort -t- -k2 -n)
    mapfile -t tx < <(find "$qdir" -mindepth 1 -maxdepth 1 -name 'tx-*' -printf '%f\n' | sort -t- -k2 -n)
    nrx=${#rx[@]} ntx=${#tx[@]}
    echo "NIC $ifc: $nrx receive and $ntx transmit queues; shard CPUs: ${cpus[*]}"

    # Queue i's interrupt on shard CPU i (mod the shard count).
    local irqs
    irqs=$(nic_irqs "$ifc")
    if [ -z "$irqs" ]; then
        echo "  = interrupts: $ifc has no MSI queue vectors (virtual NIC?): nothing to place"
    else
        while read -r irq q; do
            c=${cpus[q % ncpu]}
            set_value "/proc/irq/$irq/smp_affinity_list" "$c" "IRQ $irq (queue $q) -> CPU $c" soft
        done <<<"$irqs"
        if [ -z "$root" ] && pgrep -x irqbalance >/dev/null 2>&1; then
            warn "irqbalance is running and will move these interrupts again: set IRQBALANCE_BANNED_CPULIST=$(conf_get CORECACHE_CPUS) in /etc/default/irqbalance, or stop it"
        fi
    fi

    # RPS when the NIC has fewer receive queues than there are shards, so
    # every shard CPU takes a share; RFS always, so that a flow's receive
    # processing runs where its shard reads it.
    # The kernel rounds a flow count up to a power of two: ask for one, so
    # that a second run reads back what it wrote.
    local all flows=32768
    while [ "$flows" -gt 1 ] && [ $((flows * (nrx > 0 ? nrx : 1))) -gt 32768 ]; do flows=$((flows / 2)); done
    all=$(cpus_to_mask "${cpus[*]}")
    for ((i = 0; i < nrx; i++)); do
        if [ "$nrx" -lt "$ncpu" ]; then mask=$all; else mask=0; fi
        set_value "/sys/class/net/$ifc/queues/${rx[i]}/rps_cpus" "$mask" "RPS $ifc ${rx[i]}" soft
        set_value "/sys/class/net/$ifc/queues/${rx[i]}/rps_flow_cnt" "$flows" "RFS $ifc ${rx[i]} flow count" soft
    done

    # XPS: shard CPU j sends on transmit queue j mod ntx.
    if [ "$ntx" -gt 1 ]; then
        for ((i = 0; i < ntx; i++)); do
            local mine=""
            for ((c = 0; c < ncpu; c++)); do
                [ $((c % ntx)) -eq "$i" ] && mine+="${cpus[c]} "
            done
            if [ -n "$mine" ]; then mask=$(cpus_to_mask "$mine"); else mask=0; fi
            set_value "/sys/class/net/$ifc/queues/${tx[i]}/xps_cpus" "$mask" "XPS $ifc ${tx[i]} -> CPUs ${mine:-none}" soft
        done
    else
        echo "  = XPS: one transmit queue: nothing to map"
    fi
}

# -- commands --------------------------------------------------------------------

tune() {
    local key want thp want_thp ifc
    uring_check >/dev/null
    echo "sysctls:"
    while read -r key want; do
        [ -n "$key" ] || continue
        if [ ! -e "$root/proc/sys/${key//.//}" ]; then
            # A container's network namespace shows only its own net.* knobs.
            echo "  = $key: not available here (this kernel or network namespace); left to sysctl.d"
            continue
        fi
        set_value "/proc/sys/${key//.//}" "$want" "$key"
    done < <(sysctl_wanted)

    echo "transparent huge pages (for the slab arenas):"
    want_thp=$(conf_get CORECACHE_THP)
    want_thp=${want_thp:-madvise}
    thp=$(read_value /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo absent)
    case "$want_thp:$thp" in
    *:absent) echo "  = this kernel has no transparent huge pages: the arenas use small pages" ;;
    keep:*) echo "  = left as it is ($thp), as CORECACHE_THP=keep asks" ;;
    madvise:always) echo "  = always (already covers the arenas' MADV_HUGEPAGE)" ;;
    madvise:* | always:*) set_value /sys/kernel/mm/transparent_hugepage/enabled "$want_thp" "THP mode" ;;
    *) die "CORECACHE_THP=$want_thp: want madvise, always or keep" ;;
    esac

    ifc=$(conf_get CORECACHE_IFACE)
    if [ -n "$ifc" ]; then
        nic_tune "$ifc"
    else
        echo "NIC: CORECACHE_IFACE is not set: interrupts and packet steering left as they are"
    fi
}

restore_from() { # FILE: "PATH<TAB>VALUE" lines, put back last to first
    local file=$1 path value
    [ -f "$file" ] || { echo "  = nothing recorded in $file"; return 0; }
    while IFS=$'\t' read -r path value; do
        [ -n "$path" ] || continue
        if [ "$dry" = 1 ]; then
            echo "  - $path: back to $value"
            continue
        fi
        if [ ! -e "$root$path" ]; then
            echo "  = $path: gone (device removed?); nothing to put back"
        elif printf '%s\n' "$value" 2>/dev/null >"$root$path"; then
            echo "  - $path: back to $value"
        else
            warn "$path: could not put back $value"
        fi
    done < <(tac "$file")
}

case "$cmd" in
check)
    uring_check
    if [ "$uring_fatal" != 0 ]; then
        # corecache falls back to its epoll backend where io_uring cannot
        # run (README, Requirements), unless the config forbids it.
        if uring_required; then
            echo "io_uring: the config requires it (-o io_backend=io_uring): corecache will not start here"
            exit 1
        fi
        echo "io_uring: unusable here: corecache will serve on its epoll backend (slower; -o io_backend=io_uring would refuse to start)"
    fi
    ;;
plan)
    uring_check
    tune
    [ "$changed" = 1 ] || echo "(nothing to change)"
    ;;
apply)
    tune
    [ "$changed" = 1 ] || echo "(nothing changed)"
    ;;
sysctl-conf)
    uring_check >/dev/null
    sysctl_conf
    ;;
groups)
    uring_check >/dev/null
    [ -z "$uring_groups" ] || echo "$uring_groups"
    ;;
restore)
    restore_from "$saved"
    if [ "$dry" = 0 ]; then
        rm -f "$saved"
        rmdir "$(dirname "$saved")" 2>/dev/null || true
    fi
    ;;
undo)
    restore_from "$undo_file"
    ;;
esac
