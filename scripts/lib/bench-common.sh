# Shared by the benchmark scripts (sourced, not run): process tracking and cleanup, the command
# record, and the check that nothing already listens where a cluster is about to start.
#
# The sourcing script sets, before calling these:
#   NAME      its name, for messages
#   OUT       where results go (kept on failure)
#   WORK      a temp dir (removed on exit)
#   COMMANDS  the file commands are recorded in
#   PIDS=()   every process it starts; each is stopped on exit
# and defines die().

# Stops one process: SIGTERM (graceful: a Tessera node leaves the cluster and closes RocksDB,
# etcd closes its bolt db), then SIGKILL after 15 s.
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# On exit, however it comes: stop every process in PIDS and remove WORK.
bench_cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    rm -rf "$WORK"
    [ "$status" = 0 ] || printf '%s: failed (exit %s); output so far is in %s\n' "$NAME" "$status" "$OUT" >&2
    exit "$status"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# Records a command in COMMANDS.
record() {
    printf '%q ' "$@" >>"$COMMANDS"
    printf '\n' >>"$COMMANDS"
}

# Records a command, then runs it. Not for background processes: `run_logged ... &` would fork a
# subshell, and `$!` would be the subshell, not the process to stop.
run_logged() {
    record "$@"
    "$@"
}

# Fails if something already listens where a cluster is about to start (a `make run` left up,
# or another benchmark's cluster): HTTP answering, or a TCP or UDP socket bound there.
check_free() {
    local addr
    for addr in "$@"; do
        if curl -s -o /dev/null --max-time 1 "http://$addr/"; then
            die "something already answers on $addr; stop it first (a 'make run' cluster, or another benchmark?)"
        fi
        if command -v ss >/dev/null && ss -Hlntu 2>/dev/null | awk '{print $5}' | grep -qx "$addr"; then
            die "a TCP or UDP socket is already bound to $addr (ss -lntu); stop its owner first"
        fi
    done
}

# wait_for_ring COUNT HOST:PORT...: waits up to 60 s until every node listed holds a ring of COUNT
# nodes with no move under way (before that, writes could find too few replicas). Fails, naming
# the node, if one does not.
wait_for_ring() {
    local count=$1 addr ring
    shift
    for addr in "$@"; do
        ring=0
        for _ in $(seq 1 600); do
            # Releases before committed layouts have no `moving`: their ring never moves.
            ring=$(curl -s --max-time 1 "http://$addr/v1/cluster/ring" \
                | jq 'if (.moving // false) then -1 else (.nodes | length) end' 2>/dev/null || echo 0)
            [ "${ring:-0}" = "$count" ] && break
            sleep 0.1
        done
        [ "${ring:-0}" = "$count" ] || die "the node on $addr did not learn the $count-node ring within 60 s (it holds ${ring:-0}; -1 is a move under way)"
    done
}

# join_flags BINARY: the flags a node started with --seed needs to add itself to the ring. Since
# committed layouts, a seeded node owns nothing until it is added (`--auto-join` adds it); older
# binaries joined the ring by themselves and do not know the flag.
join_flags() {
    if "$1" serve --help 2>/dev/null | grep -q -- '--auto-join'; then
        echo --auto-join
    fi
}

# CPU time (user + system, in clock ticks) the given processes have used so far.
cpu_ticks() {
    local pid total=0 fields
    for pid in "$@"; do
        # Fields 14 and 15 of /proc/PID/stat; the command name (field 2) may hold spaces, so
        # split after its closing parenthesis.
        fields=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        read -r -a fields <<<"$fields"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# Node CPU per operation: cpu_us_per_op TICKS_BEFORE TICKS_AFTER OPS
cpu_us_per_op() {
    local ticks=$(( $2 - $1 )) hz
    hz=$(getconf CLK_TCK)
    [ "$3" -gt 0 ] || { echo "n/a"; return; }
    echo $(( ticks * 1000000 / hz / $3 ))
}
