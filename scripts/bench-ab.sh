#!/usr/bin/env bash
# A/B of two `tessera` binaries on the cluster workload: for each binary in turn (A B A B ...),
# a fresh 3-node cluster as `make run` starts it, a preload of every key, then YCSB-A and
# write-only at quorum (zipfian, 64 connections, 100-byte values). Alternating the binaries
# spreads the machine's drift over both.
#
#   scripts/bench-ab.sh OLD_BINARY NEW_BINARY      # e.g. copies of target/release/tessera
#
# Settings: BENCH_ROUNDS (2: each binary runs this many times), BENCH_DURATION (15),
# BENCH_WARMUP (3), BENCH_KEYS (100000), BENCH_SERVE_FLAGS (extra `tessera serve` flags for both,
# e.g. "--sync-writes true"), BENCH_WORKLOADS ("ycsb-a write-only"). Prints one line per run, with
# the three nodes' CPU (user + system, from /proc) per operation over the measured window: on this
# shared machine ops/s moves by +-20% with the neighbours, CPU per operation much less, so it is
# the figure an A/B is judged on. Logs, raw output and the commands run go to $BENCH_OUT. Every
# process started is stopped on exit, and the temp dir removed.
set -euo pipefail

[ $# = 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}
BENCH=${BENCH_BIN:-$CARGO_TARGET_DIR/release/tessera-bench}
ROUNDS=${BENCH_ROUNDS:-2}
DURATION=${BENCH_DURATION:-15}
WARMUP=${BENCH_WARMUP:-3}
KEYS=${BENCH_KEYS:-100000}
read -r -a SERVE_FLAGS <<<"${BENCH_SERVE_FLAGS:-}"
WORKLOADS=${BENCH_WORKLOADS:-"ycsb-a write-only"}
OUT=${BENCH_OUT:-$CARGO_TARGET_DIR/bench-ab/$(date -u +%Y%m%dT%H%M%SZ)}
TARGETS=http://127.0.0.11:7000,http://127.0.0.12:7000,http://127.0.0.13:7000
COMMON=(--target "$TARGETS" --table bench --keys "$KEYS" --connections 64 --value-size 100
    --seed 42 --distribution zipfian --consistency quorum)

die() { printf 'bench-ab: %s\n' "$*" >&2; exit 1; }

for bin in "$1" "$2"; do [ -x "$bin" ] || die "not an executable: $bin"; done
command -v jq >/dev/null || die "jq is not installed (make bench-deps)"
[ -x "$BENCH" ] || die "no tessera-bench at $BENCH (cargo build --release --bin tessera-bench)"

mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench-ab.XXXXXX")
PIDS=()
COMMANDS=$OUT/commands.sh
printf '# Commands run by scripts/bench-ab.sh, in order.\n' >"$COMMANDS"
NAME=bench-ab
# shellcheck source=lib/bench-common.sh
. "$ROOT/scripts/lib/bench-common.sh"

# one_run LABEL BINARY: a fresh cluster of BINARY, preloaded, then one run of each workload.
one_run() {
    local label=$1 bin=$2 i pid
    check_free 127.0.0.11:7000 127.0.0.12:7000 127.0.0.13:7000
    rm -rf "$WORK/data"
    for i in 1 2 3; do
        local seed=()
        # shellcheck disable=SC2207
        [ "$i" = 1 ] || seed=(--seed 127.0.0.11:7000 $(join_flags "$bin"))
        local serve=(env RUST_LOG=warn "$bin" serve --node-id "n$i" --listen "127.0.0.$((10 + i)):7000"
            --data-dir "$WORK/data/n$i" "${seed[@]}" "${SERVE_FLAGS[@]}")
        record "${serve[@]}"
        "${serve[@]}" >"$OUT/n$i.out" 2>>"$OUT/n$i.log" &
        PIDS+=($!)
    done
    wait_for_ring 3 127.0.0.11:7000 127.0.0.12:7000 127.0.0.13:7000
    run_logged timeout 600 "$BENCH" load "${COMMON[@]}" --create-table 3 --preload --duration 0 >/dev/null
    for workload in $WORKLOADS; do
        local result=$OUT/$label-$workload-$((++RUN)).txt before after ops
        run_logged timeout $((DURATION + WARMUP + 60)) "$BENCH" load "${COMMON[@]}" --workload "$workload" \
            --duration "$DURATION" --warmup "$WARMUP" >"$result" &
        local load=$!
        # The nodes' CPU over the measured window only (the warmup is not counted).
        sleep "$WARMUP"
        before=$(cpu_ticks "${PIDS[@]}")
        sleep "$DURATION"
        after=$(cpu_ticks "${PIDS[@]}")
        wait "$load"
        ops=$(grep '^{' "$result" | tail -1 | jq -r '.ops')
        printf '%s %s: %s; node CPU %s us/op\n' "$label" "$workload" "$(tail -1 "$result")" \
            "$(cpu_us_per_op "$before" "$after" "$ops")"
    done
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
}

RUN=0
for _ in $(seq 1 "$ROUNDS"); do
    one_run A "$1"
    one_run B "$2"
done
printf 'Logs and commands: %s\n' "$OUT"
