#!/usr/bin/env bash
# Starts a local Tessera cluster: node i on 127.0.0.(10+i):7000 (HTTP on TCP, membership on UDP),
# data in ./data/n<i>, logs in ./data/n<i>.log. n1 starts the cluster; the others join it by
# naming it as their seed (they find each other by gossip) and add themselves to the ring
# (--auto-join: each addition is a committed layout epoch, and the partitions it gains are
# streamed to it). Ctrl-C (or SIGTERM) stops every node gracefully.
#
#   NODES=3 (default) scripts/run-local.sh
set -euo pipefail

NODES=${NODES:-3}
BIN=${TESSERA_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}/debug/tessera}
DATA=${DATA_DIR:-./data}
SECRET=${TESSERA_CLUSTER_SECRET:-tessera-local-secret}

[ -x "$BIN" ] || { echo "no tessera binary at $BIN: run 'make build' first" >&2; exit 1; }
mkdir -p "$DATA"

SEED=127.0.0.11:7000

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  # Nodes added by scripts/add-node.sh run in the background with a pid file: stop them too.
  for pidfile in "$DATA"/n*.pid; do
    [ -f "$pidfile" ] || continue
    kill -TERM "$(cat "$pidfile")" 2>/dev/null && pids+=("$(cat "$pidfile")") || true
    rm -f "$pidfile"
  done
  echo "Stopping ${#pids[@]} nodes..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for pid in "${pids[@]}"; do
    # Nodes this shell did not start cannot be waited for: poll them (bounded).
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  echo "Stopped. Data is kept in $DATA (make clean-data removes it)."
  exit 0
}
trap stop INT TERM EXIT

for i in $(seq 1 "$NODES"); do
  seed=()
  [ "$i" = 1 ] || seed=(--seed "$SEED" --auto-join)
  "$BIN" serve --node-id "n$i" --listen "127.0.0.$((10 + i)):7000" --data-dir "$DATA/n$i" \
    --cluster-secret "$SECRET" "${seed[@]}" >"$DATA/n$i.out" 2>"$DATA/n$i.log" &
  pids+=($!)
done

# Wait (bounded) for every node to print its listening line.
for i in $(seq 1 "$NODES"); do
  for _ in $(seq 1 100); do
    grep -q "tessera listening" "$DATA/n$i.out" 2>/dev/null && break
    kill -0 "${pids[$((i - 1))]}" 2>/dev/null || { echo "node n$i exited; see $DATA/n$i.log" >&2; tail -5 "$DATA/n$i.log" >&2; exit 1; }
    sleep 0.1
  done
done

# Wait (bounded) until n1 sees every node alive by gossip, and every node has added itself to
# the ring (one committed epoch each) with no move left under way.
echo "Waiting for the $NODES nodes to join the ring..."
for _ in $(seq 1 600); do
  alive=$(curl -s --max-time 1 http://127.0.0.11:7000/v1/cluster | grep -o '"state":"alive"' | wc -l || true)
  ring=$(curl -s --max-time 1 http://127.0.0.11:7000/v1/cluster/ring || true)
  owners=$(printf '%s' "$ring" | grep -o '"nodes":{[^}]*}' | grep -o '"n[0-9]*":' | wc -l || true)
  if [ "${alive:-0}" -ge "$NODES" ] && [ "${owners:-0}" -ge "$NODES" ] \
     && printf '%s' "$ring" | grep -q '"moving":false'; then
    break
  fi
  sleep 0.2
done

cat <<MSG

Tessera cluster of $NODES nodes is up:
$(for i in $(seq 1 "$NODES"); do echo "  n$i  http://127.0.0.$((10 + i)):7000   log: $DATA/n$i.log"; done)

Membership and the ring:  tessera cluster status   (or curl http://127.0.0.11:7000/v1/cluster)

Try (any node takes any request):
  curl -X PUT http://127.0.0.11:7000/v1/tables/demo
  curl -X PUT --data-binary hello http://127.0.0.11:7000/v1/tables/demo/rows/k1/greeting
  curl -i http://127.0.0.12:7000/v1/tables/demo/rows/k1/greeting

Ctrl-C stops the cluster.
MSG

# Stay up until interrupted. A node that dies (or that you kill to watch the others cope) is
# reported; the rest keep running.
running=("${pids[@]}")
while [ ${#running[@]} -gt 0 ]; do
  wait -n "${running[@]}" 2>/dev/null || true
  still=()
  for i in $(seq 1 "$NODES"); do
    pid=${pids[$((i - 1))]}
    if kill -0 "$pid" 2>/dev/null; then
      still+=("$pid")
    elif [[ " ${running[*]} " == *" $pid "* ]]; then
      echo "node n$i (pid $pid) exited; see $DATA/n$i.log. The others keep running." >&2
    fi
  done
  running=("${still[@]}")
done
echo "every node has exited" >&2
