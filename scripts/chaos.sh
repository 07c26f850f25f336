#!/usr/bin/env bash
# Chaos testing: starts 5 local Tessera nodes on 127.0.0.101-105:7000 (or --target running ones),
# runs workloads while a seeded schedule partitions, kills, pauses and slows them, heals, checks
# every client's history against what the cluster holds, and writes a report (summary.md,
# plot.svg, history.jsonl) under ./data/chaos/. Exit 0: no violation; 1: violations; 2: could not
# run; 3: missing rights (partitions need iptables, so root).
#
#   sudo scripts/chaos.sh                      # the default schedule: 5 nodes, 5 minutes, every nemesis
#   sudo scripts/chaos.sh --seed 3             # replay seed 3
#   sudo scripts/chaos.sh --nemesis isolate,kill --duration 60
#   scripts/chaos.sh --check data/chaos/seed-3-*/history.jsonl   # judge a saved history again
#   scripts/chaos.sh --help                    # every option
#
# docs/chaos.md explains every nemesis, check and figure of the report.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}
CARGO=${CARGO:-cargo}
CHAOS=$CARGO_TARGET_DIR/debug/tessera-chaos
export TESSERA_BIN=${TESSERA_BIN:-$CARGO_TARGET_DIR/debug/tessera}

# Build what is missing or stale (quietly; the first build of tessera compiles RocksDB).
if [ "${CHAOS_NO_BUILD:-}" != 1 ]; then
  "$CARGO" build --quiet --bin tessera --bin tessera-chaos
fi

# The harness removes its own iptables chain and tc qdisc on every exit, Ctrl-C and SIGTERM
# included. If it is killed outright (SIGKILL), this trap still removes them: the chain is named
# after the first node's address, and the qdisc has the handle 7c3a:.
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [ "$(id -u)" = 0 ] && command -v iptables >/dev/null; then
    for chain in $(iptables -w 5 -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^TCHAOS_/ {print $2}'); do
      # Only a chain no live run holds (each run locks its range while it runs).
      lock="${TMPDIR:-/tmp}/tessera-chaos-$chain.lock"
      if [ -e "$lock" ] && command -v flock >/dev/null && ! flock -n "$lock" true; then continue; fi
      while iptables -w 5 -D OUTPUT -j "$chain" 2>/dev/null; do :; done
      iptables -w 5 -F "$chain" 2>/dev/null || true
      iptables -w 5 -X "$chain" 2>/dev/null || true
    done
  fi
  if [ "$(id -u)" = 0 ] && command -v tc >/dev/null && tc qdisc show dev lo 2>/dev/null | grep -q 'prio 7c3a: root'; then
    tc qdisc del dev lo root 2>/dev/null || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$CHAOS" "$@" &
pid=$!
wait "$pid"
