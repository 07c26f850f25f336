#!/usr/bin/env bash
# Streaming throughput of the transfer engine, unthrottled, on loopback, against a raw RocksDB
# range scan + batch write of the same data on the same machine in the same run.
#
#   scripts/bench-rebalance.sh
#
# 1. n1 (127.0.0.51:7100) alone: a table with replication 1, BENCH_KEYS keys of BENCH_VALUE_SIZE
#    bytes written through HTTP (tessera-bench load --preload). n1 stops cleanly.
# 2. The ceiling: `tessera-bench raw-copy` scans every cell of n1's RocksDB and writes it into a
#    fresh RocksDB in batches of the chunk size (no decode, no merge, no network).
# 3. n1 again, and n2 (127.0.0.52:7100, --seed n1, rebalance.max_mb_per_s = 0): n2 is told to pull
#    every partition of the table from n1 (POST /internal/v1/transfers); the run is timed from the
#    request until GET /v1/cluster/transfers shows none pending, and MB/s and keys/s are the sums
#    of the transfers' bytes and keys over that time.
# 4. Prints both, and the ratio. Logs and the data dirs are in $BENCH_OUT (removed unless
#    BENCH_KEEP=1). Every process started here is stopped on exit, even on failure.
#
# Settings from the environment: BENCH_KEYS (1000000), BENCH_VALUE_SIZE (200), BENCH_CHUNK_KB
# (256), BENCH_MAX_CONCURRENT (2), BENCH_BIN_DIR (the binaries; default $CARGO_TARGET_DIR/release,
# built unless BENCH_SKIP_BUILD=1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}
KEYS=${BENCH_KEYS:-1000000}
VALUE_SIZE=${BENCH_VALUE_SIZE:-200}
CHUNK_KB=${BENCH_CHUNK_KB:-256}
MAX_CONCURRENT=${BENCH_MAX_CONCURRENT:-2}
SECRET=tessera-local-secret
BIN_DIR=${BENCH_BIN_DIR:-$CARGO_TARGET_DIR/release}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/bench-rebalance.XXXXXX)}
N1=127.0.0.51:7100
N2=127.0.0.52:7100

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  (cd "$ROOT" && cargo build --release --bin tessera --bin tessera-bench)
fi
TESSERA=$BIN_DIR/tessera
BENCH=$BIN_DIR/tessera-bench

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ ${BENCH_KEEP:-0} != 1 ]]; then rm -rf "$OUT"; else echo "kept $OUT"; fi
}
trap cleanup EXIT

mkdir -p "$OUT"
cat > "$OUT/node.toml" <<EOF
[rebalance]
max_mb_per_s = 0
max_concurrent = $MAX_CONCURRENT
chunk_kb = $CHUNK_KB
EOF

# Starts a node; its pid goes to PIDS. Waits (bounded) for its listening line.
start() {
  local id=$1 addr=$2; shift 2
  RUST_LOG=warn "$TESSERA" serve --config "$OUT/node.toml" --node-id "$id" --listen "$addr" \
    --data-dir "$OUT/$id" --cluster-secret "$SECRET" "$@" > "$OUT/$id.out" 2>> "$OUT/$id.log" &
  PIDS+=($!)
  for _ in $(seq 1 300); do
    grep -q "tessera listening" "$OUT/$id.out" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$id did not start; see $OUT/$id.log" >&2
  exit 1
}

stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}

echo "== 1. loading $KEYS keys of $VALUE_SIZE bytes into n1"
start n1 $N1
curl -sf -X PUT "http://$N1/v1/tables/bench" -H 'content-type: application/json' \
  -d '{"replication": 1, "read": "one", "write": "one"}' > /dev/null
"$BENCH" load --target "http://$N1" --table bench --keys "$KEYS" --value-size "$VALUE_SIZE" \
  --preload --duration 0 --warmup 0 > "$OUT/load.txt"
stop_all

echo "== 2. raw RocksDB copy of n1's cells (scan + batch writes of $CHUNK_KB KiB)"
RAW=$("$BENCH" raw-copy --from "$OUT/n1/rocksdb" --to "$OUT/raw-copy" --chunk-kb "$CHUNK_KB")
echo "$RAW"
rm -rf "$OUT/raw-copy"

echo "== 3. n2 pulls every partition of the table from n1, unthrottled"
start n1 $N1
start n2 $N2 --seed $N1
for _ in $(seq 1 300); do
  curl -sf "http://$N2/v1/tables/bench" > /dev/null && break
  sleep 0.1
done
PARTITIONS=$(curl -sf "http://$N1/v1/cluster/ring" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitions"])')
BODY=$(python3 -c "import json; print(json.dumps({'table': 'bench', 'partitions': list(range($PARTITIONS)), 'sources': ['n1']}))")
START=$(date +%s.%N)
curl -sf -X POST "http://$N2/internal/v1/transfers" -H "x-tessera-secret: $SECRET" \
  -H 'content-type: application/json' -d "$BODY" > /dev/null
for _ in $(seq 1 36000); do
  PENDING=$(curl -sf "http://$N2/v1/cluster/transfers" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])')
  [[ $PENDING == 0 ]] && break
  sleep 0.05
done
END=$(date +%s.%N)
curl -sf "http://$N2/v1/cluster/transfers" > "$OUT/transfers.json"
curl -sf "http://$N2/metrics" | grep '^tessera_transfer' > "$OUT/n2-metrics.txt" || true
python3 - "$START" "$END" "$OUT/transfers.json" "$RAW" <<'EOF'
import json, re, sys
start, end, path, raw = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
report = json.load(open(path))
seconds = end - start
keys = sum(t["keys_done"] for t in report["transfers"])
data = sum(t["bytes_done"] for t in report["transfers"])
resent = sum(t["resent_chunks"] for t in report["transfers"])
mbs = data / 1e6 / seconds
print(f"transfer: {len(report['transfers'])} partitions, {keys} keys, {data/1e6:.1f} MB in {seconds:.2f} s: "
      f"{mbs:.1f} MB/s, {keys/seconds:.0f} keys/s, {resent} chunks re-sent")
raw_mbs = float(re.search(r"([0-9.]+) MB/s", raw).group(1))
print(f"ratio to the raw copy: {mbs / raw_mbs:.2f}")
EOF
