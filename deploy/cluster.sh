#!/usr/bin/env bash
# deploy/cluster.sh: an N-node corecache cluster on this machine, for trying
# out clients, proxies and failover drills before they meet production.
#
#   deploy/cluster.sh [options] start [-- server flags]   start N nodes, print the server list
#   deploy/cluster.sh [options] stop                      stop every node, remove what start made
#   deploy/cluster.sh [options] status                    one line per node: address, pid, up/down
#   deploy/cluster.sh [options] servers                   print the server list again
#   deploy/cluster.sh [options] stop-node I               SIGTERM node I (0-based), by its pid
#   deploy/cluster.sh [options] start-node I              start node I again, same address
#   deploy/cluster.sh [options] rolling-restart           restart every node in turn (SIGTERM, start),
#                                                         each answering again before the next stops
#   deploy/cluster.sh [options] exec -- CMD [ARGS...]     run CMD where the clients are (see --netns)
#
# Options (start only, except --state):
#   -n N          nodes (default 3)
#   --ports LIST  comma-separated ports, one per node (default: free ports on
#                 127.0.0.1; with --netns, 11211 on every node)
#   --binary PATH the server (default: the repo's build/corecache, else corecache on PATH)
#   --netns       root only: every node is its own host, in its own network
#                 namespace, at SUBNET.(10+I), port 11211, all on one bridge
#                 in a client namespace at SUBNET.1. Nothing is configured in
#                 the namespace this script runs in; clients run with `exec`.
#   --subnet A.B.C the /24 inside the namespaces (default 10.77.0)
#   --name NAME   the namespaces are NAME-c and NAME-n0, NAME-n1, ... (default
#                 ccl followed by a random hex tag)
#   --state DIR   where the cluster's state lives (default /tmp/corecache-cluster-UID)
#   --stop-signal SIG  what stops a node (default TERM; memcached saves its -e
#                 memory only on USR1)
#   --warm        every node keeps its items across restarts: -e on a tmpfs
#                 directory of its own (/dev/shm/corecache-cluster-TAG/nodeI),
#                 removed by stop (README "Warm restart")
#
# Design. Everything `start` made is recorded in the state directory before
# it is made: cluster.env (the layout), nodeI.pid, nodeI.log, and the
# namespace names, so `stop` undoes exactly that and nothing else, and a
# failed `start` undoes its own partial work. Nodes are stopped by the pid
# recorded for them, after checking that the pid still runs our binary (a
# pid can be reused). stdout carries only the server list (start, servers),
# so `servers=$(deploy/cluster.sh start)` works; progress goes to stderr.
# Every wait is bounded.
set -Eeuo pipefail

prog=cluster.sh
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
    echo "$prog: $*" >&2
    exit 1
}
say() { echo "$prog: $*" >&2; }

usage() { # [exit status]
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
    exit "${1:-2}"
}

nodes=3
ports=""
binary=""
netns=0
subnet=10.77.0
name=""
state="/tmp/corecache-cluster-$(id -u)"
cmd=""
arg=""
extra=()
warm=0
memdir=""
stop_signal=TERM

while [ $# -gt 0 ]; do
    case "$1" in
    -n) nodes=${2:?-n needs a number}; shift 2 ;;
    --ports) ports=${2:?--ports needs a list}; shift 2 ;;
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --netns) netns=1; shift ;;
    --warm) warm=1; shift ;;
    --stop-signal) stop_signal=${2:?--stop-signal needs a signal name}; shift 2 ;;
    --subnet) subnet=${2:?--subnet needs A.B.C}; shift 2 ;;
    --name) name=${2:?--name needs a name}; shift 2 ;;
    --state) state=${2:?--state needs a directory}; shift 2 ;;
    -h | --help) usage 0 ;;
    start | stop | status | servers | exec | rolling-restart)
        cmd=$1; shift
        if [ $# -gt 0 ] && [ "$1" = "--" ]; then
            shift
            extra=("$@")
            set --
        fi
        ;;
    stop-node | start-node)
        cmd=$1; arg=${2:?$1 needs a node number}; shift 2 ;;
    *) echo "$prog: unknown argument: $1" >&2; usage ;;
    esac
done
[ -n "$cmd" ] || usage

# -- the layout --------------------------------------------------------------

load_state() {
    [ -f "$state/cluster.env" ] || die "no cluster at $state (start one with: $prog --state $state start)"
    # shellcheck source=/dev/null
    . "$state/cluster.env"
}

node_addr() { # I -> host
    if [ "$netns" = 1 ]; then
        echo "$subnet.$((10 + $1))"
    else
        echo 127.0.0.1
    fi
}

node_port() { # I -> port
    local list
    IFS=, read -r -a list <<<"$node_ports"
    echo "${list[$1]}"
}

node_ns() { echo "${tag}-n$1"; }

server_list() {
    local i out=""
    for ((i = 0; i < nodes; i++)); do
        out+="${out:+,}$(node_addr "$i"):$(node_port "$i")"
    done
    echo "$out"
}

# Runs "$@" where the clients are: the client namespace with --netns.
in_client() {
    if [ "$netns" = 1 ]; then
        ip netns exec "${tag}-c" "$@"
    else
        "$@"
    fi
}

# Asks host:port for its version; prints the reply line. Bounded by 2 s.
probe() { # host port
    # shellcheck disable=SC2016 # expanded by the inner bash
    in_client timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "version\r\n" >&3 &&
        IFS= read -r line <&3 && printf "%s\n" "${line%$'"'"'\r'"'"'}"' "$1" "$2" 2>/dev/null
}

# True when pid runs our binary (a recorded pid may have been reused).
is_ours() { # pid
    local exe
    [ -n "$1" ] && [ -e "/proc/$1" ] || return 1
    exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
    [ "${exe% (deleted)}" = "$(readlink -f "$binary")" ]
}

node_pid() { cat "$state/node$1.pid" 2>/dev/null || true; }

# -- nodes -------------------------------------------------------------------

free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 40000))
        if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    die "found no free TCP port on 127.0.0.1"
}

# Starts node I and waits until it answers. Returns 1 if it exited, with
# its log on stderr; 2 if it exited because its port was taken.
start_node() { # I
    local i=$1 addr port pid user=() launch=() log
    addr=$(node_addr "$i")
    port=$(node_port "$i")
    log="$state/node$i.log"
    [ "$(id -u)" -eq 0 ] && user=(-u nobody) # like memcached, corecache refuses root without -u
    [ "$netns" = 1 ] && launch=(ip netns exec "$(node_ns "$i")")
    local warm_flags=()
    if [ "$warm" = 1 ]; then
        mkdir -p "$memdir/node$i"
        chmod 0777 "$memdir/node$i" # the node may run as nobody
        warm_flags=(-e "$memdir/node$i/mem")
    fi
    # setsid: the node outlives this script and the terminal's signals. In a
    # script (no job control) the background child is not a group leader,
    # so setsid does not fork, and with exec $! is the server's own pid.
    # Locked memory: io_uring charges its rings and buffer rings to the
    # user's locked-memory total (all nodes run as one user, as nobody
    # here), checked against each process's RLIMIT_MEMLOCK; lift it as the
    # systemd unit does (LimitMEMLOCK=infinity), where allowed.
    (
        ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true
        exec setsid "${launch[@]}" "$binary" -p "$port" -l "$addr" -U 0 "${user[@]}" "${node_flags[@]}" "${warm_flags[@]}" \
            </dev/null >"$log" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$state/node$i.pid"
    # answering `version` means the shards are up (the kernel queues
    # connections before that); a warm node first reattaches its items
    for _ in $(seq $((warm ? 600 : 100))); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || true
            if grep -qi "in use" "$log"; then
                return 2
            fi
            say "node $i ($addr:$port) exited at start:"
            sed 's/^/    /' "$log" >&2
            return 1
        fi
        if probe "$addr" "$port" | grep -q '^VERSION'; then
            is_ours "$pid" || die "node $i: pid $pid does not run $binary (setsid forked?)"
            say "node $i: $addr:$port pid $pid"
            return 0
        fi
        sleep 0.1
    done
    say "node $i ($addr:$port, pid $pid) did not answer within 10 s; stopping it"
    kill -KILL "$pid" 2>/dev/null || true
    return 1
}

stop_node() { # I [signal]
    local i=$1 pid
    pid=$(node_pid "$i")
    if ! is_ours "$pid"; then
        rm -f "$state/node$i.pid"
        return 0
    fi
    kill -"$stop_signal" "$pid" 2>/dev/null || true
    # a warm node saves its items after draining: give it longer
    for _ in $(seq $((warm ? 600 : 100))); do
        [ -e "/proc/$pid" ] || break
        # Reap it if it is our child (start-node in this same shell); a
        # zombie still has a /proc entry.
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
        sleep 0.1
    done
    if [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
        say "node $i (pid $pid) ignored SIG$stop_signal for $((warm ? 60 : 10)) s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$state/node$i.pid"
}

# -- network namespaces --------------------------------------------------------

ns_up() {
    local i ns
    ip netns add "${tag}-c"
    echo "${tag}-c" >>"$state/netns"
    ip -n "${tag}-c" link set lo up
    ip -n "${tag}-c" link add br0 type bridge
    ip -n "${tag}-c" addr add "$subnet.1/24" dev br0
    ip -n "${tag}-c" link set br0 up
    for ((i = 0; i < nodes; i++)); do
        ns=$(node_ns "$i")
        ip netns add "$ns"
        echo "$ns" >>"$state/netns"
        ip -n "$ns" link set lo up
        # Both ends are born inside namespaces: no interface ever appears in
        # the namespace this script runs in.
        ip -n "${tag}-c" link add "vn$i" type veth peer name eth0 netns "$ns"
        ip -n "${tag}-c" link set "vn$i" master br0 up
        ip -n "$ns" addr add "$(node_addr "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
    done
}

ns_down() {
    local ns
    [ -f "$state/netns" ] || return 0
    while read -r ns; do
        if [ -n "$ns" ]; then ip netns del "$ns" 2>/dev/null || true; fi
    done <"$state/netns"
    rm -f "$state/netns"
}

# -- commands ------------------------------------------------------------------

teardown() {
    local i
    for ((i = 0; i < nodes; i++)); do
        stop_node "$i"
    done
    ns_down
}

cmd_start() {
    if ! [[ "$nodes" =~ ^[1-9][0-9]*$ ]] || [ "$nodes" -gt 200 ]; then die "-n $nodes: want 1 to 200 nodes"; fi
    [[ "$subnet" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "--subnet $subnet: want A.B.C (a /24)"
    [[ "$stop_signal" =~ ^(TERM|INT|USR1)$ ]] || die "--stop-signal $stop_signal: want TERM, INT or USR1"
    if [ -f "$state/cluster.env" ]; then
        die "a cluster is already recorded in $state: stop it first ($prog --state $state stop)"
    fi
    if [ -z "$binary" ]; then
        if [ -x "$repo/build/corecache" ]; then
            binary=$repo/build/corecache
        else
            binary=$(command -v corecache) || die "no server binary: build one (./dev.sh) or pass --binary"
        fi
    fi
    [ -x "$binary" ] || die "--binary $binary: not an executable file"
    binary=$(readlink -f "$binary")
    if [ "$netns" = 1 ]; then
        [ "$(id -u)" -eq 0 ] || die "--netns needs root (network namespaces); run without it for a loopback cluster"
        command -v ip >/dev/null || die "--netns needs ip(8): apt-get install iproute2"
    fi

    local list=() i
    if [ -n "$ports" ]; then
        IFS=, read -r -a list <<<"$ports"
        [ "${#list[@]}" -eq "$nodes" ] || die "--ports $ports: want $nodes ports, one per node"
        for i in "${list[@]}"; do
            if ! [[ "$i" =~ ^[0-9]+$ ]] || [ "$i" -lt 1 ] || [ "$i" -gt 65535 ]; then die "--ports: $i is not a port"; fi
        done
    fi
    for ((i = 0; i < nodes; i++)); do
        if [ -z "$ports" ]; then
            if [ "$netns" = 1 ]; then list+=(11211); else list+=("$(free_port)"); fi
        fi
    done
    node_ports=$(
        IFS=,
        echo "${list[*]}"
    )
    node_flags=("${extra[@]}")
    if [ -n "$name" ]; then
        [[ "$name" =~ ^[a-z][a-z0-9-]{0,30}$ ]] || die "--name $name: want lower-case letters, digits and -"
        tag=$name
    else
        tag="ccl$(printf '%x%02x' "$$" $((RANDOM % 256)))"
    fi

    mkdir -p "$state"
    {
        printf 'nodes=%q\nnode_ports=%q\nbinary=%q\nnetns=%q\nsubnet=%q\ntag=%q\n' \
            "$nodes" "$node_ports" "$binary" "$netns" "$subnet" "$tag"
        [ "$warm" = 0 ] || printf 'warm=1\nmemdir=%q\n' "/dev/shm/corecache-cluster-$tag"
        printf 'stop_signal=%q\n' "$stop_signal"
        printf 'node_flags=(%s)\n' "$(printf '%q ' "${node_flags[@]}")"
    } >"$state/cluster.env"

    [ "$warm" = 0 ] || memdir=/dev/shm/corecache-cluster-$tag
    trap 'say "start failed; undoing it"; teardown; rm -rf "$state"' ERR
    [ "$netns" = 0 ] || ns_up
    for ((i = 0; i < nodes; i++)); do
        local rc=0 tries=0
        while :; do
            rc=0
            start_node "$i" || rc=$?
            if [ "$rc" != 2 ] || [ -n "$ports" ] || [ "$netns" = 1 ] || [ $((tries += 1)) -ge 5 ]; then break; fi
            # Lost a race for a free port: take another one.
            list[i]=$(free_port)
            node_ports=$(
                IFS=,
                echo "${list[*]}"
            )
            sed -i "s/^node_ports=.*/node_ports=$node_ports/" "$state/cluster.env"
        done
        if [ "$rc" != 0 ]; then
            [ "$rc" = 2 ] && say "node $i: port $(node_port "$i") is in use"
            false
        fi
    done
    trap - ERR
    server_list
}

cmd_stop() {
    load_state
    teardown
    if [ "$warm" = 1 ] && [ -n "$memdir" ]; then rm -rf "$memdir"; fi
    rm -f "$state"/node*.log "$state/cluster.env"
    rmdir "$state" 2>/dev/null || true
    say "stopped"
}

cmd_status() {
    load_state
    local i pid up=0 reply
    for ((i = 0; i < nodes; i++)); do
        pid=$(node_pid "$i")
        reply=""
        is_ours "$pid" && reply=$(probe "$(node_addr "$i")" "$(node_port "$i")" || true)
        if [ -n "$reply" ]; then
            up=$((up + 1))
            echo "node$i $(node_addr "$i"):$(node_port "$i") pid $pid up ($reply)"
        else
            echo "node$i $(node_addr "$i"):$(node_port "$i") down"
        fi
    done
    [ "$up" -eq "$nodes" ]
}

# One node at a time: SIGTERM (it drains and, with --warm, saves its
# items), start it again, and wait until it answers before the next, so
# at most one node's keys are away at any moment.
cmd_rolling_restart() {
    load_state
    local i t0 t1
    for ((i = 0; i < nodes; i++)); do
        t0=$(date +%s.%N)
        stop_node "$i"
        start_node "$i" || die "node $i did not come back (log: $state/node$i.log); the rest were left alone"
        t1=$(date +%s.%N)
        # corecache logs what it reattached once all its shards are up
        for _ in $(seq 50); do
            [ "$warm" = 0 ] || [ "$(basename "$binary")" != corecache ] || ! grep -q 'warm restart' "$state/node$i.log" || break
            sleep 0.1
        done
        say "node $i: serving again after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s$(
            [ "$warm" = 0 ] || { printf ': '; grep -ho 'warm restart.*' "$state/node$i.log" | tail -1; })"
    done
}

check_node() {
    if ! [[ "$arg" =~ ^[0-9]+$ ]] || [ "$arg" -ge "$nodes" ]; then die "node $arg: want 0 to $((nodes - 1))"; fi
}

case "$cmd" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
rolling-restart) cmd_rolling_restart ;;
servers) load_state; server_list ;;
stop-node) load_state; check_node; stop_node "$arg"; say "node $arg stopped" ;;
start-node)
    load_state
    check_node
    is_ours "$(node_pid "$arg")" && die "node $arg is running (pid $(node_pid "$arg"))"
    start_node "$arg" || die "node $arg did not start (log: $state/node$arg.log)"
    ;;
exec)
    load_state
    [ ${#extra[@]} -gt 0 ] || die "exec needs a command: $prog exec -- CMD [ARGS...]"
    in_client "${extra[@]}"
    ;;
esac
