#!/usr/bin/env bash
# A/B of two `tessera` binaries on the cluster workload: for each binary in turn (A B A B ...),
# a fresh 3-node cluster as `make run` starts it, a preload of every key, then YCSB-A and
# write-only at quorum (zipfian, 64 connections, 100-byte values). Alternating the binaries
# spreads the machine's drift over both.
#
#   scripts/bench-ab.sh OLD_BINARY NEW_BINARY      # e.g. copies of target/release/tessera
#
# Settings: BENCH_ROUNDS (2: each binary runs this many times), BENCH_DURATION (15),
# BENCH_WARMUP (3), BENCH_KEYS (100000). Prints one line per run. Every process started is
# stopped on exit, and the temp dirs removed.
set -euo pipefail

[ $# = 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}
BENCH=${BENCH_BIN:-$CARGO_TARGET_DIR/release/tessera-bench}
ROUNDS=${BENCH_ROUNDS:-2}
DURATION=${BENCH_DURATION:-15}
WARMUP=${BENCH_WARMUP:-3}
KEYS=${BENCH_KEYS:-100000}
TARGETS=http://127.0.0.11:7000,http://127.0.0.12:7000,http://127.0.0.13:7000
COMMON=(--target "$TARGETS" --table bench --keys "$KEYS" --connections 64 --value-size 100
    --seed 42 --distribution zipfian --consistency quorum)

PIDS=()
WORK=""
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
    [ -z "$WORK" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for bin in "$1" "$2"; do [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 1; }; done
[ -x "$BENCH" ] || { echo "no tessera-bench at $BENCH (cargo build --release --bin tessera-bench)" >&2; exit 1; }

one_run() {
    local label=$1 bin=$2 i
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench-ab.XXXXXX")
    for i in 1 2 3; do
        local seed=()
        [ "$i" = 1 ] || seed=(--seed 127.0.0.11:7000)
        RUST_LOG=warn "$bin" serve --node-id "n$i" --listen "127.0.0.$((10 + i)):7000" \
            --data-dir "$WORK/n$i" "${seed[@]}" >"$WORK/n$i.out" 2>"$WORK/n$i.log" &
        PIDS+=($!)
    done
    for i in 1 2 3; do
        local ring=0
        for _ in $(seq 1 300); do
            ring=$(curl -s --max-time 1 "http://127.0.0.$((10 + i)):7000/v1/cluster/ring" | jq '.nodes | length' 2>/dev/null || echo 0)
            [ "${ring:-0}" = 3 ] && break
            sleep 0.1
        done
        [ "${ring:-0}" = 3 ] || { echo "n$i did not join the ring; see $WORK/n$i.log" >&2; exit 1; }
    done
    timeout 600 "$BENCH" load "${COMMON[@]}" --create-table 3 --preload --duration 0 >/dev/null
    for workload in ycsb-a write-only; do
        printf '%s %s: ' "$label" "$workload"
        timeout $((DURATION + WARMUP + 60)) "$BENCH" load "${COMMON[@]}" --workload "$workload" \
            --duration "$DURATION" --warmup "$WARMUP" | tail -1
    done
    cleanup
    WORK=""
}

for _ in $(seq 1 "$ROUNDS"); do
    one_run A "$1"
    one_run B "$2"
done
