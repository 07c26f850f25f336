#!/usr/bin/env bash
# Single-node benchmark: one Tessera node against its own ceilings, measured in the same run.
#
#   scripts/bench-node.sh          (or `make bench`)
#
# 1. Storage ceiling: raw RocksDB puts/gets and the versioned cell path (`tessera-bench storage`).
# 2. Request-layer ceiling: the node's axum/tokio stack with empty handlers
#    (`tessera-bench http-ceiling`), under wrk and under `tessera-bench load`.
# 3. Layers: the same server doing only the node's storage calls (`http-ceiling --storage`): on
#    tokio's blocking pool as the node does, on that pool capped at one thread per core, and
#    inline; under wrk. Where the gap between ceiling and node comes from.
# 4. The node (`tessera serve`, fresh data dir, table with replication 1, keys preloaded), under
#    the same two loads: PUT, then GET, of 100-byte values on uniformly random keys.
# 5. `tessera-bench report`: a markdown table of absolute figures and ratios to the ceilings.
#
# Every setting can be changed through the environment (defaults below). Results, raw tool output
# and the exact commands are kept in $BENCH_OUT. Every process started here is stopped on exit.
# See docs/performance.md for what the numbers mean and the last recorded results.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}

DURATION=${BENCH_DURATION:-15}          # measured seconds per run
WARMUP=${BENCH_WARMUP:-3}               # seconds of load before each measured run
CONNECTIONS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_WRK_THREADS:-2}     # 2 beat 1 against the ceiling here; see docs/performance.md
KEYS=${BENCH_KEYS:-100000}
VALUE_SIZE=${BENCH_VALUE_SIZE:-100}
STORAGE_OPS=${BENCH_STORAGE_OPS:-200000}
STORAGE_THREADS=${BENCH_STORAGE_THREADS:-2}
SEED=${BENCH_SEED:-42}
# Port 0: the OS picks a free port. Not 127.0.0.11-19, where `make run` and cluster tests live.
NODE_HOST=${BENCH_NODE_HOST:-127.0.0.21}
CEILING_HOST=${BENCH_CEILING_HOST:-127.0.0.22}
LAYER_HOST=${BENCH_LAYER_HOST:-127.0.0.23}
LAYERS=${BENCH_LAYERS:-1}               # 0: skip step 3
TABLE=bench
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}      # before each measured run, wait up to this long for the machine to idle
PROFILE=${BENCH_PROFILE:-0}             # 1: also perf-record the node under wrk (separate runs)
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}       # 1: use the release binaries already built
OUT=${BENCH_OUT:-$CARGO_TARGET_DIR/bench/$(date -u +%Y%m%dT%H%M%SZ)}

BIN_DIR=${BENCH_BIN_DIR:-$CARGO_TARGET_DIR/release}   # another dir only to test this script
TESSERA=$BIN_DIR/tessera
BENCH=$BIN_DIR/tessera-bench

# Percent of CPU time other processes used over one second: the machine is shared, and a busy
# neighbour lowers every figure, so each run records it.
cpu_busy() {
    local a b
    read -r -a a < <(grep '^cpu ' /proc/stat)
    sleep 1
    read -r -a b < <(grep '^cpu ' /proc/stat)
    local total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    local idle=$(( (b[4] - a[4]) + (b[5] - a[5]) ))
    echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

# Waits (at most QUIET_WAIT seconds) until other processes use under 15% of the CPU.
wait_quiet() {
    local waited=0 busy
    while busy=$(cpu_busy) && [ "$busy" -ge 15 ] && [ "$waited" -lt "$QUIET_WAIT" ]; do
        [ "$waited" = 0 ] && printf 'bench-node: the machine is %s%% busy with other work; waiting up to %ss\n' "$busy" "$QUIET_WAIT" >&2
        waited=$((waited + 1))
    done
}

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench-node: %s\n' "$*" >&2; exit 1; }

for tool in wrk timeout; do
    command -v "$tool" >/dev/null || die "$tool is not installed (make deps installs it)"
done
if [ "$PROFILE" = 1 ]; then command -v perf >/dev/null || die "BENCH_PROFILE=1 needs perf (Debian: linux-perf)"; fi

mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench.XXXXXX")
PIDS=()

# Stops what this script started, politely first (the node flushes RocksDB on SIGTERM), then
# forcefully after 10 s, and removes the scratch directory.
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a command, recording it in commands.txt first.
run() {
    printf '%q ' "$@" | sed 's/ $//' >> "$OUT/commands.txt"
    printf '\n' >> "$OUT/commands.txt"
    "$@"
}

# Starts a server in the background and sets ADDR once it prints `listening on http://ADDR`.
start_server() {
    local name=$1; shift
    printf '%q ' "$@" | sed 's/ $/ \&/' >> "$OUT/commands.txt"
    printf '\n' >> "$OUT/commands.txt"
    "$@" > "$WORK/$name.stdout" 2> "$WORK/$name.stderr" &
    local pid=$!
    PIDS+=("$pid")
    echo "$pid" > "$WORK/$name.pid"
    ADDR=""
    for _ in $(seq 600); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$WORK/$name.stderr" >&2
            die "$name exited before listening"
        fi
        ADDR=$(sed -n 's|.*listening on http://||p' "$WORK/$name.stdout" | head -n1)
        [ -n "$ADDR" ] && return
        sleep 0.1
    done
    die "$name did not listen within 60 s"
}

# Fails the run, with the exit status, if a server died (a dead server would be measured as errors).
check_alive() {
    local name=$1 pid status=0
    pid=$(cat "$WORK/$name.pid")
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" || status=$?
        tail -n 20 "$WORK/$name.stderr" >&2
        die "$name (pid $pid) died during the run with exit status $status"
    fi
}

stop_server() {
    local name=$1 pid
    pid=$(cat "$WORK/$name.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# A wrk script: METHOD on uniformly random keys, and a summary line in tessera-bench's JSON shape.
# Each wrk thread formats 50,000 requests up front and cycles through them, so that Lua costs
# nothing per request; the threads use different seeds.
write_lua() {
    local name=$1 method=$2 body=nil
    [ "$method" = PUT ] && body="string.rep(\"v\", $VALUE_SIZE)"
    cat > "$OUT/$name.lua" <<EOF
-- Generated by scripts/bench-node.sh: $method /v1/tables/$TABLE/rows/k{0..$((KEYS - 1))}/v
local name, method, keys, seed = "$name", "$method", $KEYS, $SEED
local prefix, suffix = "/v1/tables/$TABLE/rows/k", "/v"
local body = $body
local counter = 0
local requests, n, i = {}, 0, 0

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
end

function init(args)
    math.randomseed(seed + id)
    for j = 1, 50000 do
        requests[j] = wrk.format(method, prefix .. math.random(0, keys - 1) .. suffix, {}, body)
    end
    n = #requests
end

function request()
    i = i + 1
    if i > n then i = 1 end
    return requests[i]
end

function done(summary, latency, requests)
    local e = summary.errors
    local errors = {}
    for _, kind in ipairs({"connect", "read", "write", "status", "timeout"}) do
        if e[kind] > 0 then table.insert(errors, string.format('"%s":%d', kind, e[kind])) end
    end
    local seconds = summary.duration / 1e6
    local ok = summary.requests - e.status
    io.write(string.format(
        '{"name":"%s","tool":"wrk","workload":"%s","concurrency":%d,"duration_s":%.3f,"ops":%d,' ..
        '"ops_per_sec":%.1f,"p50_us":%.1f,"p99_us":%.1f,"p999_us":%.1f,"max_us":%.1f,"errors":{%s}}\n',
        name, string.lower(method), $CONNECTIONS, seconds, ok, ok / seconds,
        latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
        table.concat(errors, ",")))
end
EOF
}

# CPU accounting in clock ticks, so that every wrk run also says how much CPU the server, wrk and
# everything else on the machine used during it (the machine is shared: see docs/performance.md).
HZ=$(getconf CLK_TCK)
proc_ticks() {   # utime + stime of one process, all threads
    local stat f
    # A server that died reads as 0 here; check_alive then says what happened.
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    read -r -a f <<< "${stat##*) }"
    echo $(( f[11] + f[12] ))
}
children_ticks() {   # cutime + cstime of this shell: every child it has waited for
    local stat f
    stat=$(< "/proc/$$/stat")
    read -r -a f <<< "${stat##*) }"
    echo $(( f[13] + f[14] ))
}
machine_ticks() {   # user + nice + system + irq + softirq of the whole machine
    local a
    read -r -a a < <(grep '^cpu ' /proc/stat)
    echo $(( a[1] + a[2] + a[3] + a[6] + a[7] ))
}
# Adds the CPU figures to the summary line of a wrk output file.
annotate_cpu() {
    local file=$1 server=$2 client=$3 machine=$4
    awk -v s="$server" -v c="$client" -v m="$machine" -v hz="$HZ" '
        /^\{/ && !done {
            o = m - s - c; if (o < 0) o = 0
            sub(/\}$/, sprintf(",\"server_cpu_s\":%.2f,\"client_cpu_s\":%.2f,\"other_cpu_s\":%.2f}", s / hz, c / hz, o / hz))
            done = 1
        }
        { print }' "$file" > "$file.tmp"
    mv "$file.tmp" "$file"
}

# wrk: a warmup run whose output is discarded, then the measured run.
wrk_run() {
    local name=$1 method=$2 addr=$3
    local server=${name%-*} pid s0 c0 m0 s1 c1 m1
    pid=$(cat "$WORK/$server.pid")
    write_lua "$name" "$method"
    local url="http://$addr"
    wait_quiet
    log "wrk $name: ${WARMUP}s warmup, ${DURATION}s measured"
    run timeout $((WARMUP + 30)) wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" --timeout 10s \
        -s "$OUT/$name.lua" "$url" > /dev/null
    s0=$(proc_ticks "$pid"); c0=$(children_ticks); m0=$(machine_ticks)
    run timeout $((DURATION + 30)) wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s \
        --latency -s "$OUT/$name.lua" "$url" > "$OUT/wrk-$name.txt"
    s1=$(proc_ticks "$pid"); c1=$(children_ticks); m1=$(machine_ticks)
    annotate_cpu "$OUT/wrk-$name.txt" $((s1 - s0)) $((c1 - c0)) $((m1 - m0))
    cat "$OUT/wrk-$name.txt"
    check_alive "$server"
}

# tessera-bench load: warmup and measurement in one run.
gen_run() {
    local name=$1 workload=$2 addr=$3
    wait_quiet
    log "tessera-bench load $name: ${WARMUP}s warmup, ${DURATION}s measured"
    run timeout $((WARMUP + DURATION + 60)) "$BENCH" load --target "http://$addr" --table "$TABLE" \
        --workload "$workload" --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" \
        --keys "$KEYS" --value-size "$VALUE_SIZE" --seed "$SEED" --name "$name" \
        | tee "$OUT/gen-$name.txt"
    check_alive "${name%-*}"
}

# Writes every key once, untimed by the report (its summary is kept in preload-NAME.txt).
preload() {
    local name=$1 addr=$2; shift 2
    log "preloading $KEYS keys into $name"
    run timeout 600 "$BENCH" load --target "http://$addr" --table "$TABLE" "$@" --preload \
        --duration 0 --keys "$KEYS" --value-size "$VALUE_SIZE" --connections "$CONNECTIONS" --seed "$SEED" \
        | tee "$OUT/preload-$name.txt"
    check_alive "$name"
}

# perf: samples the node's stacks during a separate wrk run (sampling slows the node, so these runs
# are not the reported figures).
profile_run() {
    local name=$1 method=$2 addr=$3 pid=$4
    log "profiling the node under wrk $name"
    local perf_cmd=(timeout $((DURATION + 60)) perf record -e cpu-clock -F 999 -g -p "$pid"
        -o "$OUT/perf-$name.data" -- sleep "$DURATION")
    printf '%q ' "${perf_cmd[@]}" | sed 's/ $/ \&/' >> "$OUT/commands.txt"
    printf '\n' >> "$OUT/commands.txt"
    "${perf_cmd[@]}" 2> "$WORK/perf-$name.log" &
    local perf_pid=$!
    PIDS+=("$perf_pid")
    run timeout $((DURATION + 30)) wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s \
        -s "$OUT/$name.lua" "http://$addr" > "$OUT/wrk-profiled-$name.out"
    wait "$perf_pid" || true
    perf report -i "$OUT/perf-$name.data" --no-children --sort dso,symbol --percent-limit 0.5 --stdio -g none \
        2>/dev/null | grep -v '^$' > "$OUT/perf-$name.txt" || true
    perf report -i "$OUT/perf-$name.data" --children --sort symbol --percent-limit 2 --stdio -g none \
        2>/dev/null | grep -v '^$' > "$OUT/perf-$name-children.txt" || true
}

: > "$OUT/commands.txt"
if [ "$SKIP_BUILD" != 1 ]; then
    log "building release binaries into $CARGO_TARGET_DIR"
    (cd "$ROOT" && run cargo build --release --bin tessera --bin tessera-bench)
fi
[ -x "$TESSERA" ] && [ -x "$BENCH" ] || die "binaries missing in $BIN_DIR"

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, kernel $(uname -r)"
    echo "rustc: $(rustc --version 2>/dev/null || echo unknown)"
    echo "wrk: $(wrk -v 2>&1 | head -n1)"
    echo "settings: duration ${DURATION}s, warmup ${WARMUP}s, $CONNECTIONS connections, wrk -t$WRK_THREADS, $KEYS keys, ${VALUE_SIZE}-byte values, storage $STORAGE_OPS ops x $STORAGE_THREADS threads, seed $SEED"
    echo "CPU busy with other work just before the run: $(cpu_busy)%"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

log "storage ceiling"
run timeout 900 "$BENCH" storage --dir "$WORK/storage" --ops "$STORAGE_OPS" --value-size "$VALUE_SIZE" \
    --threads "$STORAGE_THREADS" --seed "$SEED" | tee "$OUT/storage.txt"
rm -rf "$WORK/storage"

log "request-layer ceiling"
start_server ceiling "$BENCH" http-ceiling --listen "$CEILING_HOST:0"
CEILING=$ADDR
wrk_run ceiling-put PUT "$CEILING"
wrk_run ceiling-get GET "$CEILING"
gen_run ceiling-put put "$CEILING"
gen_run ceiling-get get "$CEILING"
stop_server ceiling

if [ "$LAYERS" = 1 ]; then
    for layer in blocking capped inline; do
        case $layer in
            blocking) options=(--dispatch spawn-blocking) ;;
            capped) options=(--dispatch spawn-blocking --max-blocking-threads "$(nproc)") ;;
            inline) options=(--dispatch inline) ;;
        esac
        log "layer $layer: storage calls only, ${options[*]}"
        start_server "$layer" "$BENCH" http-ceiling --listen "$LAYER_HOST:0" --storage "$WORK/$layer" \
            "${options[@]}"
        LAYER=$ADDR
        preload "$layer" "$LAYER"
        wrk_run "$layer-put" PUT "$LAYER"
        wrk_run "$layer-get" GET "$LAYER"
        stop_server "$layer"
        rm -rf "${WORK:?}/$layer"
    done
fi

log "node"
start_server node env RUST_LOG=warn "$TESSERA" serve --node-id bench --listen "$NODE_HOST:0" \
    --data-dir "$WORK/node"
NODE=$ADDR
preload node "$NODE" --create-table 1
wrk_run node-put PUT "$NODE"
wrk_run node-get GET "$NODE"
gen_run node-put put "$NODE"
gen_run node-get get "$NODE"
if [ "$PROFILE" = 1 ]; then
    NODE_PID=$(cat "$WORK/node.pid")
    profile_run node-put PUT "$NODE" "$NODE_PID"
    profile_run node-get GET "$NODE" "$NODE_PID"
fi
stop_server node
grep -iE 'warn|error' "$WORK/node.stderr" | head -n 20 > "$OUT/node-warnings.txt" || true

echo "CPU busy with other work just after the run: $(cpu_busy)%" >> "$OUT/machine.txt"

"$BENCH" report "$OUT/storage.txt" "$OUT"/wrk-*.txt "$OUT"/gen-*.txt > "$OUT/report.md"
{
    echo
    echo "### Results"
    echo
    cat "$OUT/machine.txt"
    echo
    cat "$OUT/report.md"
    echo
    echo "### Commands"
    echo
    echo '```sh'
    cat "$OUT/commands.txt"
    echo '```'
    echo
    echo "Raw output: $OUT"
}
