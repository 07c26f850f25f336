#!/usr/bin/env bash
# Adds node n<I> (I = 4 to 9) at 127.0.0.(10+I):7000 to the running `make run` cluster, the way an
# operator would: start it with --seed (it joins membership as `joining` and owns nothing), plan
# its addition, commit it. The partitions it gains are streamed to it; `tessera cluster watch`
# follows them. The node runs in the background (pid in ./data/n<I>.pid, log in ./data/n<I>.log);
# stopping `make run` (Ctrl-C) stops it too.
#
#   scripts/add-node.sh 4        # or: make add-node NODE=4
set -euo pipefail

I=${1:-}
[[ "$I" =~ ^[4-9]$ ]] || { echo "usage: $0 I   (I from 4 to 9: the node n<I> at 127.0.0.1<I>)" >&2; exit 2; }
BIN=${TESSERA_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}/debug/tessera}
DATA=${DATA_DIR:-./data}
SECRET=${TESSERA_CLUSTER_SECRET:-tessera-local-secret}
SEED=http://127.0.0.11:7000
NODE=n$I
ADDR=127.0.0.$((10 + I)):7000

[ -x "$BIN" ] || { echo "no tessera binary at $BIN: run 'make build' first" >&2; exit 1; }
curl -sf --max-time 2 "$SEED/health" >/dev/null \
  || { echo "no cluster answers at $SEED: start it with 'make run' first" >&2; exit 1; }
if [ -f "$DATA/$NODE.pid" ] && kill -0 "$(cat "$DATA/$NODE.pid")" 2>/dev/null; then
  echo "$NODE is already running (pid $(cat "$DATA/$NODE.pid"))" >&2; exit 1
fi

mkdir -p "$DATA"
"$BIN" serve --node-id "$NODE" --listen "$ADDR" --data-dir "$DATA/$NODE" --cluster-secret "$SECRET" \
  --seed 127.0.0.11:7000 >"$DATA/$NODE.out" 2>"$DATA/$NODE.log" &
echo $! > "$DATA/$NODE.pid"
echo "Started $NODE at http://$ADDR (pid $(cat "$DATA/$NODE.pid"), log $DATA/$NODE.log)."

# Bounded wait until the seed sees it alive.
for _ in $(seq 1 150); do
  curl -s --max-time 1 "$SEED/v1/cluster" | grep -q "\"id\":\"$NODE\"[^}]*\"state\":\"alive\"" && break
  kill -0 "$(cat "$DATA/$NODE.pid")" 2>/dev/null || { echo "$NODE exited; see $DATA/$NODE.log" >&2; tail -5 "$DATA/$NODE.log" >&2; exit 1; }
  sleep 0.2
done

echo
"$BIN" cluster plan --node "$SEED" add "$NODE"
echo
"$BIN" cluster commit --node "$SEED"
echo "Follow the transfers with: $BIN cluster watch --node $SEED"
