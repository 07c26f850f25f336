#!/usr/bin/env bash
# Cluster benchmark: a 3-node Tessera cluster and a 3-node etcd cluster, side by side, under the
# same closed-loop load (`tessera-bench load`): same keys, 100-byte values, zipfian seed,
# connections, warmup and duration.
#
#   scripts/bench-cluster.sh
#
# 1. Builds the release binaries (BENCH_SKIP_BUILD=1 reuses them).
# 2. Runs BENCH_ROUNDS rounds (3). Each round measures, each on a FRESH cluster (fresh data dirs,
#    every key preloaded once, then one measured run), so that no run inherits the compaction
#    debt, siblings or warm caches of the runs before it, and neither system is measured later in
#    its cluster's life than the other:
#    - Tessera, as `make run` starts it (node i on 127.0.0.(10+i):7000, RUST_LOG=warn; table with
#      replication 3): YCSB-A (50% reads, 50% updates) and write-only, zipfian, at each level in
#      BENCH_LEVELS ("one quorum");
#    - etcd (/usr/bin/etcd, default fsync) on 127.0.0.31-33 (client 2379, peer 2380): YCSB-A and
#      write-only, through each protocol in BENCH_ETCD_PROTOCOLS: `etcd-grpc` (its native gRPC API,
#      the comparison the targets use) and `etcd` (its JSON gateway, a proxy inside etcd that costs
#      it CPU). etcd has one level: raft-committed writes and linearizable reads.
#    The rounds interleave the systems (Tessera, etcd, Tessera, etcd...), so the machine's drift
#    falls on both; the report gives each figure's median over the rounds.
# 3. Once, after the rounds: Tessera with `--sync-writes true` (fsync the WAL before every ack, as
#    etcd does) and Tessera with `--transport http` (one HTTP request per internal call instead of
#    the multiplexed stream), write-only at quorum, each on a fresh cluster.
# 4. Prints a markdown table (system, workload, level, median ops/s and p99 over the rounds, each
#    round's ops/s, errors), the ratios the targets name, and the exact commands. Raw output, logs
#    and commands are kept in $BENCH_OUT.
#
# Targets are given to every worker round-robin over the 3 nodes. Settings come from the
# environment (defaults below). Every process started here is stopped on exit, and the temp dir
# removed, even on failure or Ctrl-C. BENCH_PROFILE=1 adds an extra, unmeasured quorum write-only
# run with `perf record -g` attached to the Tessera nodes, and writes the report to $BENCH_OUT.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}

DURATION=${BENCH_DURATION:-15}          # measured seconds per run
WARMUP=${BENCH_WARMUP:-3}               # seconds of load before each measured run
CONNECTIONS=${BENCH_CONNECTIONS:-64}
KEYS=${BENCH_KEYS:-100000}
VALUE_SIZE=${BENCH_VALUE_SIZE:-100}
SEED=${BENCH_SEED:-42}
LEVELS=${BENCH_LEVELS:-"one quorum"}
ROUNDS=${BENCH_ROUNDS:-3}            # rounds of every measured run, interleaved; medians are reported
ETCD_PROTOCOLS=${BENCH_ETCD_PROTOCOLS:-"etcd-grpc etcd"}
SECRET=${TESSERA_CLUSTER_SECRET:-tessera-local-secret}
ETCD=${BENCH_ETCD:-/usr/bin/etcd}
ETCD_QUOTA=${BENCH_ETCD_QUOTA:-8589934592}   # 8 GiB: the preload and runs never hit the quota
SYNC_RUN=${BENCH_SYNC_RUN:-1}           # 0: no --sync-writes run
HTTP_RUN=${BENCH_HTTP_RUN:-1}           # 0: no --transport http run
ETCD_RUN=${BENCH_ETCD_RUN:-1}           # 0: no etcd runs
PROFILE=${BENCH_PROFILE:-0}
PROFILE_SECONDS=${BENCH_PROFILE_SECONDS:-10}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
PRELOAD_TIMEOUT=${BENCH_PRELOAD_TIMEOUT:-600}
OUT=${BENCH_OUT:-$CARGO_TARGET_DIR/bench-cluster/$(date -u +%Y%m%dT%H%M%SZ)}

BIN_DIR=${BENCH_BIN_DIR:-$CARGO_TARGET_DIR/release}
TESSERA=$BIN_DIR/tessera
BENCH=$BIN_DIR/tessera-bench
TABLE=bench

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench-cluster: %s\n' "$*" >&2; exit 1; }

for tool in timeout curl jq; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[ "$ETCD_RUN" = 0 ] || [ -x "$ETCD" ] || die "no etcd at $ETCD (Debian: apt-get install etcd-server), or BENCH_ETCD_RUN=0"
[ "$PROFILE" = 0 ] || command -v perf >/dev/null || die "BENCH_PROFILE=1 needs perf (Debian: linux-perf)"

mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench-cluster.XXXXXX")
PIDS=()          # every process started here, stopped on exit
RESULTS=$OUT/results.tsv   # system <tab> level <tab> round <tab> summary JSON
COMMANDS=$OUT/commands.sh
: >"$RESULTS"
printf '# Commands run by scripts/bench-cluster.sh, in order.\n' >"$COMMANDS"

NAME=bench-cluster
# shellcheck source=lib/bench-common.sh
. "$ROOT/scripts/lib/bench-common.sh"

# Stops every process in PIDS (used between the systems, so that each has the machine alone).
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
}

if [ "$SKIP_BUILD" != 1 ]; then
    log "building release binaries"
    (cd "$ROOT" && run_logged cargo build --release --bin tessera --bin tessera-bench)
fi
[ -x "$TESSERA" ] || die "no tessera binary at $TESSERA"
[ -x "$BENCH" ] || die "no tessera-bench binary at $BENCH"

TESSERA_SEED="127.0.0.11:7000"
TESSERA_TARGETS="http://127.0.0.11:7000,http://127.0.0.12:7000,http://127.0.0.13:7000"
ETCD_CLUSTER="e1=http://127.0.0.31:2380,e2=http://127.0.0.32:2380,e3=http://127.0.0.33:2380"
ETCD_TARGETS="http://127.0.0.31:2379,http://127.0.0.32:2379,http://127.0.0.33:2379"
NODE_PIDS=()     # the nodes of the system under test, for profiling

# start_tessera NAME [extra serve flags...]: a fresh 3-node cluster, as scripts/run-local.sh starts it.
start_tessera() {
    local name=$1
    shift
    check_free 127.0.0.11:7000 127.0.0.12:7000 127.0.0.13:7000
    local dir=$WORK/$name i
    rm -rf "$dir"   # fresh data dirs for every cluster
    mkdir -p "$dir"
    NODE_PIDS=()
    for i in 1 2 3; do
        # As make run: n1 starts the cluster, n2 and n3 join it through n1.
        local seed=()
        # shellcheck disable=SC2207
        [ "$i" = 1 ] || seed=(--seed "$TESSERA_SEED" $(join_flags "$TESSERA"))
        local serve=(env RUST_LOG=warn "$TESSERA" serve --node-id "n$i" --listen "127.0.0.$((10 + i)):7000"
            --data-dir "$dir/n$i" --cluster-secret "$SECRET" "${seed[@]}" "$@")
        record "${serve[@]}"
        "${serve[@]}" >"$OUT/$name-n$i.out" 2>>"$OUT/$name-n$i.log" &
        PIDS+=($!)
        NODE_PIDS+=($!)
    done
    for i in 1 2 3; do
        local pid=${NODE_PIDS[$((i - 1))]} up=0
        for _ in $(seq 1 300); do
            if grep -q "tessera listening" "$OUT/$name-n$i.out" 2>/dev/null; then up=1; break; fi
            kill -0 "$pid" 2>/dev/null || { tail -5 "$OUT/$name-n$i.log" >&2; die "tessera n$i exited; see $OUT/$name-n$i.log"; }
            sleep 0.1
        done
        [ "$up" = 1 ] || die "tessera n$i did not start within 30 s; see $OUT/$name-n$i.log"
    done
    # Every node must hold the 3-node ring before any request, or writes find too few replicas.
    wait_for_ring 3 127.0.0.11:7000 127.0.0.12:7000 127.0.0.13:7000
}

start_etcd() {
    check_free 127.0.0.31:2379 127.0.0.32:2379 127.0.0.33:2379
    local dir=$WORK/etcd i
    rm -rf "$dir"
    mkdir -p "$dir"
    NODE_PIDS=()
    for i in 1 2 3; do
        local ip=127.0.0.$((30 + i))
        local member=("$ETCD" --name "e$i" --data-dir "$dir/e$i"
            --listen-client-urls "http://$ip:2379" --advertise-client-urls "http://$ip:2379"
            --listen-peer-urls "http://$ip:2380" --initial-advertise-peer-urls "http://$ip:2380"
            --initial-cluster "$ETCD_CLUSTER" --initial-cluster-state new
            --initial-cluster-token tessera-bench --quota-backend-bytes "$ETCD_QUOTA"
            --logger zap --log-level warn)
        record "${member[@]}"
        "${member[@]}" >"$OUT/etcd-e$i.out" 2>>"$OUT/etcd-e$i.log" &
        PIDS+=($!)
        NODE_PIDS+=($!)
    done
    for i in 1 2 3; do
        local ip=127.0.0.$((30 + i)) pid=${NODE_PIDS[$((i - 1))]} up=0
        for _ in $(seq 1 300); do
            if curl -s --max-time 1 "http://$ip:2379/health" | grep -q '"health":"true"'; then up=1; break; fi
            kill -0 "$pid" 2>/dev/null || { tail -5 "$OUT/etcd-e$i.log" >&2; die "etcd e$i exited; see $OUT/etcd-e$i.log"; }
            sleep 0.1
        done
        [ "$up" = 1 ] || die "etcd e$i was not healthy within 30 s; see $OUT/etcd-e$i.log"
    done
}

COMMON=(--connections "$CONNECTIONS" --keys "$KEYS" --value-size "$VALUE_SIZE" --seed "$SEED"
    --distribution zipfian)

# bench SYSTEM LEVEL ROUND NAME [load flags...]: one measured run; its summary goes to RESULTS.
bench() {
    local system=$1 level=$2 round=$3 name=$4
    shift 4
    log "round $round: $system $name ($level): ${WARMUP}s warmup + ${DURATION}s"
    local out=$OUT/$system-$name-$level-r$round.txt
    run_logged timeout $((DURATION + WARMUP + 60)) "$BENCH" load "${COMMON[@]}" \
        --duration "$DURATION" --warmup "$WARMUP" --name "$name" "$@" | tee "$out" >&2
    local json
    json=$(grep '^{' "$out" | tail -1)
    [ -n "$json" ] || die "no summary from $system $name $level (round $round)"
    printf '%s\t%s\t%s\t%s\n' "$system" "$level" "$round" "$json" >>"$RESULTS"
}

# preload SYSTEM [load flags...]: writes every key once, before the measured runs.
preload() {
    local system=$1
    shift
    log "$system: preloading $KEYS keys"
    run_logged timeout "$PRELOAD_TIMEOUT" "$BENCH" load "${COMMON[@]}" --preload --duration 0 "$@" \
        | tee -a "$OUT/$system-preload.txt" >&2
}

# profile_run: an extra quorum write-only run, with perf attached to every node; not measured.
profile_run() {
    log "profiling: perf record -g on the Tessera nodes during quorum write-only"
    local pids
    pids=$(IFS=,; echo "${NODE_PIDS[*]}")
    timeout $((DURATION + WARMUP + 60)) "$BENCH" load "${COMMON[@]}" --target "$TESSERA_TARGETS" \
        --table "$TABLE" --workload write-only --consistency quorum --duration "$DURATION" \
        --warmup "$WARMUP" --name profiled >"$OUT/profile-load.txt" 2>&1 &
    local load=$!
    PIDS+=("$load")
    sleep "$WARMUP"
    run_logged timeout $((PROFILE_SECONDS + 30)) perf record -F 499 -g -o "$OUT/perf.data" \
        -p "$pids" -- sleep "$PROFILE_SECONDS" >"$OUT/perf-record.log" 2>&1 || true
    wait "$load" || true
    # Flat profiles: release builds have no frame pointers, so call chains are unreliable.
    perf report -i "$OUT/perf.data" --stdio --no-children -g none --sort dso 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | head -30 >"$OUT/perf-dso.txt" || true
    perf report -i "$OUT/perf.data" --stdio --no-children -g none --sort dso,symbol 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | head -150 >"$OUT/perf-report.txt" || true
    # Where the time goes, in the issue's terms, by symbol name: a rough split, but every sample
    # lands in exactly one bucket (the first that matches, in this order).
    perf report -i "$OUT/perf.data" --stdio --no-children -g none --sort dso,symbol 2>/dev/null \
        | grep -v '^#' | awk '
            NF < 3 { next }
            { pct = $1; sub(/%/, "", pct); line = $0 }
            line ~ /rocksdb|rocksdb_|librocksdb|snappy|lz4|zstd|crc32c/ { b["rocksdb"] += pct; next }
            line ~ /\[k\]/                                             { b["kernel (syscalls, TCP, scheduler)"] += pct; next }
            line ~ /malloc|free|realloc|_int_|unlink_chunk|consolidate|tcache/ { b["allocator (glibc malloc/free)"] += pct; next }
            line ~ /memmove|memcpy|memset|memcmp|strlen/                 { b["memcpy and friends"] += pct; next }
            line ~ /hyper|h1::|http::|httparse|axum|tower/               { b["HTTP framing (hyper, axum)"] += pct; next }
            line ~ /serde|postcard|json|base64/                          { b["serialization (serde, postcard, json)"] += pct; next }
            line ~ /tokio|mio|parking_lot|futures|crossbeam/             { b["async runtime (tokio)"] += pct; next }
            line ~ /tessera/                                             { b["other code in the tessera binary"] += pct; next }
            { b["other"] += pct }
            END { for (k in b) printf "%6.2f%%  %s\n", b[k], k }' \
        | sort -rn >"$OUT/perf-buckets.txt" || true
    log "perf reports: $OUT/perf-buckets.txt, $OUT/perf-dso.txt, $OUT/perf-report.txt"
}

# fresh_tessera NAME [serve flags...]: a fresh cluster with the table created and every key loaded.
fresh_tessera() {
    local name=$1
    shift
    start_tessera "$name" "$@"
    preload "$name" --target "$TESSERA_TARGETS" --table "$TABLE" --create-table 3 --consistency quorum
}

# fresh_etcd PROTOCOL: a fresh etcd cluster with every key loaded.
fresh_etcd() {
    start_etcd
    preload "$1" --target "$ETCD_TARGETS" --protocol "$1"
}

log "rounds: $ROUNDS; Tessera on 127.0.0.11-13:7000, etcd $("$ETCD" --version 2>/dev/null | head -1) on 127.0.0.31-33"
for round in $(seq 1 "$ROUNDS"); do
    for level in $LEVELS; do
        for workload in ycsb-a write-only; do
            fresh_tessera tessera
            bench tessera "$level" "$round" "$workload" --target "$TESSERA_TARGETS" --table "$TABLE" \
                --workload "$workload" --consistency "$level"
            if [ "$PROFILE" != 0 ] && [ "$round" = 1 ] && [ "$level" = quorum ] && [ "$workload" = write-only ]; then
                profile_run
            fi
            stop_all
        done
    done
    if [ "$ETCD_RUN" != 0 ]; then
        for protocol in $ETCD_PROTOCOLS; do
            for workload in ycsb-a write-only; do
                fresh_etcd "$protocol"
                bench "$protocol" linearizable "$round" "$workload" --target "$ETCD_TARGETS" \
                    --protocol "$protocol" --workload "$workload"
                stop_all
            done
        done
    fi
done

# --- Tessera, fsync before every acknowledgement ---
if [ "$SYNC_RUN" != 0 ]; then
    log "Tessera with --sync-writes true"
    fresh_tessera tessera-sync --sync-writes true
    bench tessera-sync quorum 1 write-only --target "$TESSERA_TARGETS" --table "$TABLE" \
        --workload write-only --consistency quorum
    stop_all
fi

# --- Tessera over the per-call HTTP transport ---
if [ "$HTTP_RUN" != 0 ]; then
    log "Tessera with --transport http"
    fresh_tessera tessera-http --transport http
    bench tessera-http quorum 1 write-only --target "$TESSERA_TARGETS" --table "$TABLE" \
        --workload write-only --consistency quorum
    stop_all
fi

# --- Report ---
# One JSON object per run: {system, level, round, summary}.
RUNS=$(while IFS=$'\t' read -r system level round json; do
    jq -c --arg system "$system" --arg level "$level" --argjson round "$round" \
        '{system: $system, level: $level, round: $round, s: .}' <<<"$json"
done <"$RESULTS" | jq -s -c '.')
{
    printf '%s connections, %s keys (zipfian, seed %s), %s-byte values, %ss warmup + %ss measured per run, ' \
        "$CONNECTIONS" "$KEYS" "$SEED" "$VALUE_SIZE" "$WARMUP" "$DURATION"
    printf 'each run on a fresh, preloaded cluster; %s rounds, figures are medians over them.\n\n' "$ROUNDS"
    printf '| system | workload | level | ops/s (median) | p99 ms (median) | p999 ms (median) | ops/s per round | errors |\n'
    printf '|---|---|---|---:|---:|---:|---|---|\n'
    jq -r '
        def median: sort | if length == 0 then 0 elif length % 2 == 1 then .[length / 2 | floor]
            else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        def ms: (. / 1000 * 100 | round / 100 | tostring);
        def order: {"tessera": 0, "tessera-sync": 1, "tessera-http": 2, "etcd-grpc": 3, "etcd": 4}[.] // 9;
        group_by([.system, .s.name, .level]) | sort_by([(.[0].system | order), .[0].s.name, .[0].level]) | .[] |
        "| \(.[0].system) | \(.[0].s.name) | \(.[0].level) | \(map(.s.ops_per_sec) | median | round) | \(map(.s.p99_us) | median | ms) | \(map(.s.p999_us) | median | ms) | \(sort_by(.round) | map(.s.ops_per_sec | round | tostring) | join(", ")) | \(map(.s.errors | to_entries[] | "\(.key): \(.value)") | if length == 0 then "0" else join(", ") end) |"
    ' <<<"$RUNS"
    printf '\nRatios of quorum write-only to etcd write-only (median of medians, and per round):\n\n'
    jq -r '
        def median: sort | if length == 0 then 0 elif length % 2 == 1 then .[length / 2 | floor]
            else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        def pick($system; $level): map(select(.system == $system and .level == $level and .s.name == "write-only"));
        (pick("tessera"; "quorum")) as $t |
        ["etcd-grpc", "etcd"][] as $e | (pick($e; "linearizable")) as $o |
        select(($o | length) > 0 and ($t | length) > 0) |
        ($t | map(.s.ops_per_sec) | median) as $tm | ($o | map(.s.ops_per_sec) | median) as $om |
        "- tessera quorum / \($e): \($tm / $om * 100 | round / 100)x (medians \($tm | round) / \($om | round)); per round: \(
            [$t[] as $x | $o[] | select(.round == $x.round) | ($x.s.ops_per_sec / .s.ops_per_sec * 100 | round / 100 | tostring) + "x"] | join(", "))"
    ' <<<"$RUNS"
    printf '\ntessera = sync_writes false (WAL written, not fsynced); tessera-sync = --sync-writes true;\n'
    printf 'tessera-http = the per-call HTTP transport instead of the stream (these two: one round);\n'
    printf 'etcd-grpc = etcd over its gRPC API; etcd = over its JSON gateway; etcd fsyncs every raft commit.\n'
} >"$OUT/table.md"

log "results"
cat "$OUT/table.md"
log "commands (also in $COMMANDS)"
cat "$COMMANDS"
printf '\nRaw output, logs and commands: %s\n' "$OUT"
