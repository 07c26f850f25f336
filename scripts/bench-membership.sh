#!/usr/bin/env bash
# Membership benchmark: SWIM failure detection, idle gossip traffic and false positives under
# load, on a real 3-node Tessera cluster started as `make run` lays it out (node i on
# 127.0.0.(10+i):7000, membership over UDP on the same ip:port), with the default membership
# configuration.
#
#   scripts/bench-membership.sh
#   BENCH_TRIALS=4 BENCH_IDLE_SECONDS=10 BENCH_LOAD_SECONDS=30 scripts/bench-membership.sh   # quick
#
# 1. Builds the release binaries (BENCH_SKIP_BUILD=1 reuses them).
# 2. Starts n1 alone (no seeds), then n2 and n3 with `--seed 127.0.0.11:7000`, RUST_LOG=info (the
#    logs record "member up", "member suspected", "member down"), fresh data dirs, and waits until
#    every node's GET /v1/cluster lists n1, n2 and n3 with state "alive", alive true and
#    partitions in its ring.
# 3. Idle traffic: with the cluster converged and no load, reads each node's
#    tessera_membership_events_total counters (messages and bytes sent and received), waits
#    BENCH_IDLE_SECONDS, reads them again, and reports them per node and second. The state
#    machine's byte counts are payloads only; an on-the-wire figure adds the 16-byte HMAC tag and
#    28 bytes of IPv4 + UDP headers per datagram.
# 4. Detection after kill -9, BENCH_TRIALS times: waits for convergence, BENCH_SETTLE_SECONDS
#    plus a random 0-999 ms (so kills land anywhere in the probe period), `kill -9`s the victim
#    (BENCH_VICTIMS in turn, default n3 then n2: n1 is the seed and is not killed), then polls
#    both survivors' /v1/cluster every BENCH_POLL_MS until each reports the victim's state
#    "dead". Per trial it records, relative to the kill: the first poll where a survivor showed
#    it "suspect", showed alive false (what the coordinator uses), and showed it "dead", for the
#    first and the last survivor, and the "member suspected"/"member down" lines of the
#    survivors' logs. Then restarts the victim on its data dir (a new generation rejoins) and
#    waits for convergence again. Detection time = the last survivor's first "dead" poll.
# 5. False positives under load: creates a table (replication 3) and preloads every key as
#    scripts/bench-cluster.sh does, then runs YCSB-A at quorum for BENCH_LOAD_SECONDS with no node
#    killed. Before and after, reads every node's suspicion, refutation and death counters and the
#    member gauges; every BENCH_SAMPLE_SECONDS during the run, each node's suspect and dead
#    gauges (any non-zero is printed); afterwards, counts the membership lines each node logged
#    during the run. Any member declared dead in the window is a false death.
# 6. Writes $BENCH_OUT/report.md (figures, machine, membership parameters, exact commands) and
#    prints it. Raw data, node logs and commands stay in $BENCH_OUT.
#
# Polling times are upper bounds: a poll that sees "dead" happened up to one poll interval plus
# the request time (a /v1/cluster request pings every peer with a 500 ms timeout) after the
# change; the report gives the largest gap between two polls. The log lines' timestamps are the
# node's own and exact to the microsecond.
#
# Settings come from the environment (defaults below). Every process started here is stopped on
# exit (SIGTERM, then SIGKILL after 15 s), and the temp dir removed, even on failure or Ctrl-C.
# Only the PIDs this script started are ever signalled.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}

TRIALS=${BENCH_TRIALS:-20}              # kill -9 trials
VICTIMS=${BENCH_VICTIMS:-"n3 n2"}       # killed in turn; n1 is the seed
SETTLE_SECONDS=${BENCH_SETTLE_SECONDS:-5}   # converged for this long (plus 0-999 ms) before a kill
POLL_MS=${BENCH_POLL_MS:-100}           # pause between two polls of the survivors
DETECT_TIMEOUT=${BENCH_DETECT_TIMEOUT:-30}  # seconds: a trial not detected by then is a failure
CONVERGE_TIMEOUT=${BENCH_CONVERGE_TIMEOUT:-90}
IDLE_SETTLE=${BENCH_IDLE_SETTLE:-10}    # seconds converged before the idle window
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-60}
LOAD_SECONDS=${BENCH_LOAD_SECONDS:-600}
SAMPLE_SECONDS=${BENCH_SAMPLE_SECONDS:-5}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
KEYS=${BENCH_KEYS:-100000}
VALUE_SIZE=${BENCH_VALUE_SIZE:-100}
SEED=${BENCH_SEED:-42}
PRELOAD_TIMEOUT=${BENCH_PRELOAD_TIMEOUT:-600}
SECRET=${TESSERA_CLUSTER_SECRET:-tessera-local-secret}
NODE_LOG=${BENCH_RUST_LOG:-info}
IDLE_RUN=${BENCH_IDLE_RUN:-1}           # 0: skip step 3
DETECT_RUN=${BENCH_DETECT_RUN:-1}       # 0: skip step 4
LOAD_RUN=${BENCH_LOAD_RUN:-1}           # 0: skip step 5
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
OUT=${BENCH_OUT:-$CARGO_TARGET_DIR/bench-membership/$(date -u +%Y%m%dT%H%M%SZ)}

BIN_DIR=${BENCH_BIN_DIR:-$CARGO_TARGET_DIR/release}
TESSERA=$BIN_DIR/tessera
BENCH=$BIN_DIR/tessera-bench
TABLE=bench
SEED_ADDR=127.0.0.11:7000
TARGETS="http://127.0.0.11:7000,http://127.0.0.12:7000,http://127.0.0.13:7000"
WIRE_OVERHEAD=$((16 + 28))
POLL_S=$(awk -v ms="$POLL_MS" 'BEGIN { printf "%.3f", ms / 1000 }')   # HMAC tag + IPv4 (20) + UDP (8) headers, per datagram

log() { printf '\n== %s\n' "$*" >&2; }
note() { printf '   %s\n' "$*" >&2; }
die() { printf 'bench-membership: %s\n' "$*" >&2; exit 1; }

for tool in timeout curl jq awk; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[ "$TRIALS" -ge 0 ] 2>/dev/null || die "BENCH_TRIALS must be a number"

mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench-membership.XXXXXX")
PIDS=()          # every process started here and still running, stopped on exit
NODE_PID=("" "" "" "")   # NODE_PID[i]: the running process of node n<i>
COMMANDS=$OUT/commands.sh
TRIALS_TSV=$OUT/detection.tsv
TRACE=$OUT/detection-trace.tsv
printf '# Commands run by scripts/bench-membership.sh, in order.\n' >"$COMMANDS"

NAME=bench-membership
# shellcheck source=lib/bench-common.sh
. "$ROOT/scripts/lib/bench-common.sh"

# Forgets a PID that has exited and been reaped, so that cleanup never signals a recycled PID.
untrack() {
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# Sets NOW to the wall clock in milliseconds, without forking.
now_ms() {
    local t=${EPOCHREALTIME/./}
    NOW=${t:0:${#t}-3}
}

if [ "$SKIP_BUILD" != 1 ]; then
    log "building release binaries"
    (cd "$ROOT" && run_logged cargo build --release --bin tessera --bin tessera-bench)
fi
[ -x "$TESSERA" ] || die "no tessera binary at $TESSERA"
[ -x "$BENCH" ] || die "no tessera-bench binary at $BENCH"

ip_of() { printf '127.0.0.%d' $((10 + $1)); }

# start_node I: starts n<I> (stdout truncated, stderr appended, so one log spans its restarts).
start_node() {
    local i=$1 ip
    ip=$(ip_of "$i")
    local serve=(env RUST_LOG="$NODE_LOG" "$TESSERA" serve --node-id "n$i" --listen "$ip:7000"
        --data-dir "$WORK/n$i" --cluster-secret "$SECRET")
    # shellcheck disable=SC2207
    [ "$i" = 1 ] || serve+=(--seed "$SEED_ADDR" $(join_flags "$TESSERA"))
    [ -n "${STARTED[$i]:-}" ] || { record "${serve[@]}"; STARTED[$i]=1; }
    "${serve[@]}" >"$OUT/n$i.out" 2>>"$OUT/n$i.log" &
    NODE_PID[$i]=$!
    PIDS+=($!)
}
STARTED=()

# wait_listening I: until n<I> prints its listening line (30 s at most).
wait_listening() {
    local i=$1 pid=${NODE_PID[$1]}
    for _ in $(seq 1 300); do
        grep -q "tessera listening" "$OUT/n$i.out" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { tail -5 "$OUT/n$i.log" >&2; die "tessera n$i exited; see $OUT/n$i.log"; }
        sleep 0.1
    done
    die "tessera n$i did not start within 30 s; see $OUT/n$i.log"
}

# cluster I: n<I>'s GET /v1/cluster (empty on failure).
cluster() {
    curl -s --max-time 2 "http://$(ip_of "$1"):7000/v1/cluster" || true
}

# converged_on I: n<I> lists n1, n2, n3 alive (SWIM state and the coordinator's view), in its ring.
converged_on() {
    cluster "$1" | jq -e '
        ([.members[] | select(.state == "alive" and .alive == true and .partitions > 0) | .id]) as $ok
        | (["n1", "n2", "n3"] - $ok | length) == 0' >/dev/null 2>&1
}

# wait_converged: until every node is converged (CONVERGE_TIMEOUT); sets CONVERGED_MS.
wait_converged() {
    local start i all
    now_ms
    start=$NOW
    while :; do
        all=1
        for i in 1 2 3; do
            kill -0 "${NODE_PID[$i]}" 2>/dev/null || { tail -5 "$OUT/n$i.log" >&2; die "tessera n$i exited; see $OUT/n$i.log"; }
            converged_on "$i" || { all=0; break; }
        done
        now_ms
        if [ "$all" = 1 ]; then
            CONVERGED_MS=$((NOW - start))
            return 0
        fi
        if [ $((NOW - start)) -gt $((CONVERGE_TIMEOUT * 1000)) ]; then
            for i in 1 2 3; do
                printf 'n%s sees: ' "$i" >&2
                cluster "$i" | jq -c '[.members[] | {id, state, alive, generation, partitions}]' >&2 || echo '(no answer)' >&2
            done
            die "the cluster did not converge within ${CONVERGE_TIMEOUT}s"
        fi
        sleep 0.2
    done
}

# scrape I FILE: n<I>'s /metrics into FILE; prints the time (ms) it was read.
scrape() {
    curl -s --max-time 5 "http://$(ip_of "$1"):7000/metrics" >"$2" || : >"$2"
    now_ms
    printf '%s\n' "$NOW"
}

# metric FILE NAME{LABELS}: a sample's value from a scrape, 0 when absent.
metric() {
    awk -v k="$2" '$1 == k { v = $2 } END { print (v == "" ? 0 : v) }' "$1"
}
event() { metric "$1" "tessera_membership_events_total{event=\"$2\"}"; }
members() { metric "$1" "tessera_membership_members{state=\"$2\"}"; }

# stats: numbers on stdin -> "median max min count" ("- - - 0" for none).
stats() {
    grep -E '^[0-9]+$' | sort -n | awk '{ a[NR] = $1 }
        END {
            if (NR == 0) { print "- - - 0"; exit }
            m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
            printf "%d %d %d %d\n", m, a[NR], a[1], NR
        }'
}

# log_ms LOGFILE FROM_LINE MESSAGE MEMBER: the time (ms) of the first MESSAGE line about MEMBER
# after line FROM_LINE of LOGFILE, or "-".
log_ms() {
    local line ts
    line=$(tail -n +"$(($2 + 1))" "$1" | grep -m1 -E "$3 .*member=\"?$4\"?( |$)" || true)
    ts=$(printf '%s' "$line" | grep -oE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z' || true)
    if [ -n "$ts" ]; then date -u -d "$ts" +%s%3N; else printf -- '-\n'; fi
}

rel() { if [ "$1" = - ] || [ -z "$1" ]; then printf -- '-'; else printf '%d' $(($1 - $2)); fi; }

# --- Machine and configuration ---
MACHINE_NPROC=$(nproc)
MACHINE_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
MACHINE_KERNEL=$(uname -sr)
MACHINE_CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
MACHINE_LOAD=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)
run_logged "$TESSERA" config --node-id n1 --listen 127.0.0.11:7000 --data-dir "$WORK/n1" \
    --cluster-secret "$SECRET" >"$OUT/config.toml"
"$TESSERA" --version >"$OUT/version.txt" 2>&1 || true

# --- Cluster ---
log "Tessera: n1 on 127.0.0.11:7000, then n2 and n3 joining through it (RUST_LOG=$NODE_LOG)"
check_free 127.0.0.11:7000 127.0.0.12:7000 127.0.0.13:7000
start_node 1
wait_listening 1
start_node 2
start_node 3
wait_listening 2
wait_listening 3
wait_converged
FIRST_CONVERGED_MS=$CONVERGED_MS
note "converged ${CONVERGED_MS} ms after n2 and n3 started listening"

# --- Idle traffic ---
IDLE_TSV=$OUT/idle.tsv
: >"$IDLE_TSV"
if [ "$IDLE_RUN" != 0 ]; then
    log "idle: ${IDLE_SETTLE}s settle, then ${IDLE_SECONDS}s with no load and no /v1/cluster polls"
    sleep "$IDLE_SETTLE"
    wait_converged
    declare -A IDLE_T0
    for i in 1 2 3; do IDLE_T0[$i]=$(scrape "$i" "$OUT/idle-before-n$i.prom"); done
    sleep "$IDLE_SECONDS"
    for i in 1 2 3; do
        t1=$(scrape "$i" "$OUT/idle-after-n$i.prom")
        secs=$(awk -v a="${IDLE_T0[$i]}" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1000 }')
        row="n$i $secs"
        for ev in messages_sent bytes_sent messages_received bytes_received probes acks ping_reqs \
            probe_failures suspicions deaths stalls; do
            row+=" $(( $(event "$OUT/idle-after-n$i.prom" "$ev") - $(event "$OUT/idle-before-n$i.prom" "$ev") ))"
        done
        printf '%s\n' "$row" >>"$IDLE_TSV"
    done
    awk -v w="$WIRE_OVERHEAD" '{
        printf "   %s over %ss: sent %.2f msg/s %.0f B/s (wire %.0f B/s), received %.2f msg/s %.0f B/s (wire %.0f B/s)\n",
            $1, $2, $3 / $2, $4 / $2, ($4 + w * $3) / $2, $5 / $2, $6 / $2, ($6 + w * $5) / $2 }' "$IDLE_TSV" >&2
fi

# --- Detection after kill -9 ---
printf 'trial\tvictim\tkill_ms\tjitter_ms\tsuspect_first\talive_false_first\talive_false_last\tdead_first\tdead_last\tlog_suspected_first\tlog_down_first\tlog_down_last\tmax_poll_gap\tpolls\trejoin_ms\n' >"$TRIALS_TSV"
printf 'trial\tsurvivor\tms_after_kill\tstate\talive\tphi\tgeneration\n' >"$TRACE"
read -r -a VICTIM_LIST <<<"$VICTIMS"
FAILED_TRIALS=0
if [ "$DETECT_RUN" != 0 ] && [ "$TRIALS" -gt 0 ]; then
    log "detection: $TRIALS kill -9 trials (victims in turn: $VICTIMS), polling every ${POLL_MS} ms"
    printf '# each trial: kill -KILL <victim pid>; poll both survivors'"'"' GET /v1/cluster every %s ms; restart the victim with its command above\n' \
        "$POLL_MS" >>"$COMMANDS"
    for trial in $(seq 1 "$TRIALS"); do
        victim=${VICTIM_LIST[$(((trial - 1) % ${#VICTIM_LIST[@]}))]}
        v=${victim#n}
        survivors=()
        for i in 1 2 3; do [ "$i" = "$v" ] || survivors+=("$i"); done
        wait_converged
        jitter=$((RANDOM % 1000))
        sleep "$SETTLE_SECONDS.$(printf '%03d' "$jitter")"
        wait_converged
        declare -A LOG_LINES=() SUSPECT=() AFALSE=() DEAD=()
        for s in "${survivors[@]}"; do LOG_LINES[$s]=$(wc -l <"$OUT/n$s.log"); done
        pid=${NODE_PID[$v]}
        now_ms
        kill_ms=$NOW
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null || true
        untrack "$pid"
        deadline=$((kill_ms + DETECT_TIMEOUT * 1000))
        last_poll=$kill_ms
        max_gap=0
        polls=0
        while :; do
            pending=0
            for s in "${survivors[@]}"; do
                [ -z "${DEAD[$s]:-}" ] || continue
                json=$(curl -s --max-time 2 "http://$(ip_of "$s"):7000/v1/cluster" || true)
                now_ms
                polls=$((polls + 1))
                seen=$(jq -r --arg v "$victim" \
                    '.members[]? | select(.id == $v) | "\(.state)\t\(.alive)\t\(.phi)\t\(.generation)"' \
                    <<<"$json" 2>/dev/null || true)
                [ -n "$seen" ] || seen=$'no-answer\t-\t-\t-'
                printf '%s\tn%s\t%s\t%s\n' "$trial" "$s" $((NOW - kill_ms)) "$seen" >>"$TRACE"
                state=${seen%%$'\t'*}
                alive=$(cut -f2 <<<"$seen")
                if [ -z "${SUSPECT[$s]:-}" ] && { [ "$state" = suspect ] || [ "$state" = dead ]; }; then SUSPECT[$s]=$NOW; fi
                if [ -z "${AFALSE[$s]:-}" ] && [ "$alive" = false ]; then AFALSE[$s]=$NOW; fi
                if [ "$state" = dead ]; then DEAD[$s]=$NOW; else pending=1; fi
            done
            gap=$((NOW - last_poll))
            [ "$gap" -le "$max_gap" ] || max_gap=$gap
            last_poll=$NOW
            [ "$pending" = 1 ] || break
            if [ "$NOW" -gt "$deadline" ]; then
                FAILED_TRIALS=$((FAILED_TRIALS + 1))
                note "trial $trial: $victim not seen dead by every survivor within ${DETECT_TIMEOUT}s"
                break
            fi
            sleep "$POLL_S"
        done
        # First and last over the survivors (a survivor that never got there counts as "-").
        firstlast() {
            local -n times=$1
            local s vals=()
            for s in "${survivors[@]}"; do vals+=("${times[$s]:--}"); done
            if [ "${vals[0]}" = - ] || [ "${vals[1]}" = - ]; then
                local only=${vals[0]}
                [ "$only" != - ] || only=${vals[1]}
                printf '%s\t-\n' "$(rel "$only" "$kill_ms")"
            elif [ "${vals[0]}" -le "${vals[1]}" ]; then
                printf '%s\t%s\n' $((vals[0] - kill_ms)) $((vals[1] - kill_ms))
            else
                printf '%s\t%s\n' $((vals[1] - kill_ms)) $((vals[0] - kill_ms))
            fi
        }
        declare -A LOG_SUS=() LOG_DOWN=()
        for s in "${survivors[@]}"; do
            LOG_SUS[$s]=$(log_ms "$OUT/n$s.log" "${LOG_LINES[$s]}" "member suspected" "$victim")
            LOG_DOWN[$s]=$(log_ms "$OUT/n$s.log" "${LOG_LINES[$s]}" "member down" "$victim")
        done
        sus_first=$(firstlast SUSPECT | cut -f1)
        afalse=$(firstlast AFALSE)
        dead=$(firstlast DEAD)
        logsus_first=$(firstlast LOG_SUS | cut -f1)
        logdown=$(firstlast LOG_DOWN)
        # Restart the victim on its data dir: a new generation joins through the seed.
        now_ms
        restart_ms=$NOW
        start_node "$v"
        wait_listening "$v"
        wait_converged
        now_ms
        rejoin=$((NOW - restart_ms))
        # afalse, dead and logdown are "first<TAB>last".
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$trial" "$victim" "$kill_ms" "$jitter" \
            "$sus_first" "$afalse" "$dead" "$logsus_first" "$logdown" "$max_gap" "$polls" "$rejoin" >>"$TRIALS_TSV"
        note "trial $trial ($victim): suspect $sus_first ms, alive=false $(tr '\t' / <<<"$afalse") ms, dead first/last $(tr '\t' / <<<"$dead") ms (log 'member down' $(tr '\t' / <<<"$logdown") ms); max poll gap $max_gap ms; rejoined in $rejoin ms"
    done
fi

# --- False positives under load ---
LOAD_TSV=$OUT/load-members.tsv
SAMPLES=$OUT/load-samples.tsv
LOAD_JSON=""
LOAD_HUMAN=""
LOAD_STATUS=0
NONZERO=0
if [ "$LOAD_RUN" != 0 ]; then
    COMMON=(--target "$TARGETS" --table "$TABLE" --connections "$CONNECTIONS" --keys "$KEYS"
        --value-size "$VALUE_SIZE" --seed "$SEED" --distribution zipfian --consistency quorum)
    wait_converged
    log "load: create table (replication 3) and preload $KEYS keys"
    for i in 1 2 3; do scrape "$i" "$OUT/preload-before-n$i.prom" >/dev/null; done
    run_logged timeout "$PRELOAD_TIMEOUT" "$BENCH" load "${COMMON[@]}" --create-table 3 --preload \
        --duration 0 >"$OUT/load-preload.txt" 2>&1 || die "preload failed; see $OUT/load-preload.txt"
    grep -v '^{' "$OUT/load-preload.txt" | tail -3 >&2 || true
    wait_converged
    log "load: YCSB-A at quorum for ${LOAD_SECONDS}s, no node killed; sampling every ${SAMPLE_SECONDS}s"
    declare -A LOAD_LINES=()
    for i in 1 2 3; do
        scrape "$i" "$OUT/load-before-n$i.prom" >/dev/null
        LOAD_LINES[$i]=$(wc -l <"$OUT/n$i.log")
    done
    load_cmd=(timeout $((LOAD_SECONDS + 120)) "$BENCH" load "${COMMON[@]}" --workload ycsb-a
        --duration "$LOAD_SECONDS" --warmup 0 --name ycsb-a-membership)
    record "${load_cmd[@]}"
    now_ms
    load_start=$NOW
    "${load_cmd[@]}" >"$OUT/load.txt" 2>&1 &
    load_pid=$!
    PIDS+=("$load_pid")
    printf 'ms_after_start\tnode\talive\tsuspect\tdead\tleft\tsuspicions_total\trefuted_total\tdeaths_total\tstalls_total\n' >"$SAMPLES"
    while kill -0 "$load_pid" 2>/dev/null; do
        sleep "$SAMPLE_SECONDS"
        for i in 1 2 3; do
            scrape "$i" "$WORK/sample.prom" >/dev/null
            if [ ! -s "$WORK/sample.prom" ]; then
                printf '%s\tn%s\tno-answer\n' $((NOW - load_start)) "$i" >>"$SAMPLES"
                note "$(( (NOW - load_start) / 1000 ))s: n$i did not answer /metrics within 5 s"
                continue
            fi
            row=$(printf '%s\tn%s' $((NOW - load_start)) "$i")
            for st in alive suspect dead left; do row+=$'\t'$(members "$WORK/sample.prom" "$st"); done
            for ev in suspicions false_suspicions_refuted deaths stalls; do row+=$'\t'$(event "$WORK/sample.prom" "$ev"); done
            printf '%s\n' "$row" >>"$SAMPLES"
            sus=$(members "$WORK/sample.prom" suspect)
            dd=$(members "$WORK/sample.prom" dead)
            if [ "$sus" != 0 ] || [ "$dd" != 0 ]; then
                NONZERO=$((NONZERO + 1))
                note "$(( (NOW - load_start) / 1000 ))s: n$i has $sus suspect and $dd dead members"
            fi
        done
    done
    wait "$load_pid" || LOAD_STATUS=$?
    untrack "$load_pid"
    now_ms
    load_end=$NOW
    for i in 1 2 3; do scrape "$i" "$OUT/load-after-n$i.prom" >/dev/null; done
    LOAD_JSON=$(grep '^{' "$OUT/load.txt" | tail -1 || true)
    LOAD_HUMAN=$(grep 'ops/s' "$OUT/load.txt" | grep -v '^{' | tail -1 || true)
    [ "$LOAD_STATUS" = 0 ] || note "the load exited with status $LOAD_STATUS; see $OUT/load.txt"
    [ -n "$LOAD_JSON" ] || note "no summary from the load; see $OUT/load.txt"
    : >"$LOAD_TSV"
    for i in 1 2 3; do
        # Lines logged by n<i> during the run (its log only grows).
        tail -n +"$((LOAD_LINES[$i] + 1))" "$OUT/n$i.log" >"$OUT/load-window-n$i.log"
        row="n$i"
        for ev in suspicions false_suspicions_refuted refutations deaths stalls probe_failures probes; do
            row+=" $(( $(event "$OUT/load-after-n$i.prom" "$ev") - $(event "$OUT/load-before-n$i.prom" "$ev") ))"
        done
        for st in suspect dead; do row+=" $(members "$OUT/load-before-n$i.prom" "$st")/$(members "$OUT/load-after-n$i.prom" "$st")"; done
        for msg in "member suspected" "member refuted its suspicion" "member down" "member left" "member up"; do
            row+=" $(grep -c -- "$msg" "$OUT/load-window-n$i.log" || true)"
        done
        row+=" $(grep -cE ' (WARN|ERROR) ' "$OUT/load-window-n$i.log" || true)"
        # The same counters over the preload (before the measured window).
        for ev in suspicions deaths; do
            row+=" $(( $(event "$OUT/load-before-n$i.prom" "$ev") - $(event "$OUT/preload-before-n$i.prom" "$ev") ))"
        done
        printf '%s\n' "$row" >>"$LOAD_TSV"
    done
fi

# --- Report ---
REPORT=$OUT/report.md
fmt_s() { if [ "$1" = - ]; then printf -- '-'; else awk -v m="$1" 'BEGIN { printf "%.2f s", m / 1000 }'; fi; }
{
    printf '# Membership benchmark\n\n'
    printf 'Run %s by `scripts/bench-membership.sh` on %s CPUs (%s), %s; load average at start %s.\n' \
        "$MACHINE_DATE" "$MACHINE_NPROC" "${MACHINE_CPU:-unknown CPU}" "$MACHINE_KERNEL" "$MACHINE_LOAD"
    printf 'Binary: %s (`%s`). 3 nodes on 127.0.0.11-13:7000 (loopback), n2 and n3 joining through n1 with `--seed`, RUST_LOG=%s; first convergence took %s ms.\n\n' \
        "$TESSERA" "$(tr -d '\n' <"$OUT/version.txt")" "$NODE_LOG" "$FIRST_CONVERGED_MS"

    printf '## Membership parameters\n\n'
    printf 'Effective configuration (`tessera config`), `[membership]`:\n\n```toml\n'
    sed -n '/^\[membership\]/,/^\[/p' "$OUT/config.toml" | grep -v '^\[[a-z]' | grep -v '^$' || true
    printf '```\n\n'
    if [ -f "$ROOT/crates/tessera-membership/src/config.rs" ]; then
        printf 'Everything else is compiled in: `Config::default()` in crates/tessera-membership/src/config.rs (the server derives probe_timeout_ms = probe_interval_ms / 2 and nack_timeout_ms = probe_interval_ms × 2/5 from the setting above, and sets the phi threshold):\n\n```\n'
        sed -n '/^impl Default for Config/,/^}/p' "$ROOT/crates/tessera-membership/src/config.rs" \
            | grep -E '^ +[a-z_]+: ' | sed 's/^ *//; s/,$//' || true
        printf '```\n\n'
    fi

    printf '## 1. Detection after kill -9\n\n'
    if [ "$DETECT_RUN" != 0 ] && [ "$TRIALS" -gt 0 ]; then
        n=$(($(wc -l <"$TRIALS_TSV") - 1))
        read -r med max min cnt < <(cut -f9 "$TRIALS_TSV" | tail -n +2 | stats)
        printf '**Detection time (last survivor reports the victim `"state":"dead"`): median %s, max %s** (min %s) over %s of %s trials' \
            "$(fmt_s "$med")" "$(fmt_s "$max")" "$(fmt_s "$min")" "$cnt" "$n"
        [ "$FAILED_TRIALS" = 0 ] && printf '; every trial detected within %ss.\n\n' "$DETECT_TIMEOUT" \
            || printf '; **%s trials not detected by both survivors within %ss**.\n\n' "$FAILED_TRIALS" "$DETECT_TIMEOUT"
        printf 'Victims in turn: %s (n1 is the seed; when it is a victim it restarts without seeds and is found again by its peers'"'"' reconnects). Before each kill the cluster was converged for %s s plus a random 0-999 ms. Times are ms after the kill; polls of both survivors'"'"' `GET /v1/cluster` every %s ms, so a poll time is an upper bound, late by up to the gap between two polls (largest gap per trial in the table; each request pings every peer with a 500 ms timeout). The log columns are the survivors'"'"' own "member suspected" / "member down" lines (microsecond timestamps, same clock).\n\n' \
            "$VICTIMS" "$SETTLE_SECONDS" "$POLL_MS"
        printf '| figure (ms after kill) | median | max | min | trials |\n|---|---:|---:|---:|---:|\n'
        for spec in "5:first survivor shows suspect (poll)" "6:first survivor shows alive=false (poll)" \
            "7:last survivor shows alive=false (poll)" "8:first survivor shows dead (poll)" \
            "9:**last survivor shows dead (poll): detection**" "10:first survivor logs member suspected" \
            "11:first survivor logs member down" "12:last survivor logs member down" \
            "13:largest gap between two polls" "15:victim restart until converged again"; do
            col=${spec%%:*}
            read -r med max min cnt < <(cut -f"$col" "$TRIALS_TSV" | tail -n +2 | stats)
            printf '| %s | %s | %s | %s | %s |\n' "${spec#*:}" "$med" "$max" "$min" "$cnt"
        done
        printf '\nPer trial:\n\n| trial | victim | suspect | alive=false first/last | dead first | dead last (detection) | log suspected | log down first/last | max poll gap | rejoin |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
        tail -n +2 "$TRIALS_TSV" | awk -F'\t' '{
            printf "| %s | %s | %s | %s / %s | %s | %s | %s | %s / %s | %s | %s |\n",
                $1, $2, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15 }'
        printf '\n'
    else
        printf 'Not run (BENCH_DETECT_RUN=0 or BENCH_TRIALS=0).\n\n'
    fi

    printf '## 2. Idle gossip traffic\n\n'
    if [ "$IDLE_RUN" != 0 ]; then
        printf 'Converged cluster, no load, no `/v1/cluster` polls, %s s window (after %s s settled). "payload" is what the state machine counts (`tessera_membership_events_total` messages_* and bytes_*): it excludes the 16-byte HMAC tag and the IP/UDP headers. "wire" adds %s bytes per datagram (16 tag + 20 IPv4 + 8 UDP), without the Ethernet framing (none on loopback).\n\n' \
            "$IDLE_SECONDS" "$IDLE_SETTLE" "$WIRE_OVERHEAD"
        printf '| node | window s | msgs sent/s | payload B sent/s | wire B sent/s | msgs recv/s | payload B recv/s | wire B recv/s | mean payload B/msg sent |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
        awk -v w="$WIRE_OVERHEAD" '{
            printf "| %s | %.1f | %.2f | %.0f | %.0f | %.2f | %.0f | %.0f | %.0f |\n",
                $1, $2, $3 / $2, $4 / $2, ($4 + w * $3) / $2, $5 / $2, $6 / $2, ($6 + w * $5) / $2, ($3 > 0 ? $4 / $3 : 0) }' "$IDLE_TSV"
        awk -v w="$WIRE_OVERHEAD" '{ t += $2; m += $3; b += $4; mr += $5; br += $6 }
            END { printf "| mean per node | %.1f | %.2f | %.0f | %.0f | %.2f | %.0f | %.0f | %.0f |\n",
                t / NR, m / t, b / t, (b + w * m) / t, mr / t, br / t, (br + w * mr) / t, (m > 0 ? b / m : 0) }' "$IDLE_TSV"
        printf '\nOther counters over the window (totals): \n\n| node | probes | acks | ping-reqs | probe failures | suspicions | deaths | stalls |\n|---|---:|---:|---:|---:|---:|---:|---:|\n'
        awk '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $7, $8, $9, $10, $11, $12, $13 }' "$IDLE_TSV"
        printf '\n'
    else
        printf 'Not run (BENCH_IDLE_RUN=0).\n\n'
    fi

    printf '## 3. False positives under load\n\n'
    if [ "$LOAD_RUN" != 0 ]; then
        printf 'No node killed. YCSB-A (50%% reads, 50%% updates, zipfian) at quorum, %s connections, %s keys, %s-byte values, %s s, after a preload of every key. Load summary:\n\n```\n%s\n```\n\n' \
            "$CONNECTIONS" "$KEYS" "$VALUE_SIZE" "$LOAD_SECONDS" "${LOAD_HUMAN:-(no summary line; see load.txt)}"
        [ "$LOAD_STATUS" = 0 ] || printf '**The load exited with status %s.**\n\n' "$LOAD_STATUS"
        deaths=$(awk '{ d += $5 } END { print d + 0 }' "$LOAD_TSV")
        downs=$(awk '{ d += $13 } END { print d + 0 }' "$LOAD_TSV")
        dead_end=$(awk '{ split($10, g, "/"); d += g[2] } END { print d + 0 }' "$LOAD_TSV")
        suspicions=$(awk '{ s += $2 } END { print s + 0 }' "$LOAD_TSV")
        refuted=$(awk '{ r += $3 } END { print r + 0 }' "$LOAD_TSV")
        logsus=$(awk '{ s += $11 } END { print s + 0 }' "$LOAD_TSV")
        read -r max_sus max_dead nsamples < <(awk -F'\t' 'NR > 1 && NF >= 10 { n++; if ($4 > s) s = $4; if ($5 > d) d = $5 }
            END { print s + 0, d + 0, n + 0 }' "$SAMPLES")
        printf '**False deaths: %s "member down" log lines, %s deaths declared by suspicion timers, %s dead members at the end** (every node, whole run). ' \
            "$downs" "$deaths" "$dead_end"
        printf '**Suspicions raised: %s (%s "member suspected" log lines), false suspicions refuted: %s.** ' \
            "$suspicions" "$logsus" "$refuted"
        printf 'Of %s gauge samples (every %s s, 3 nodes), %s showed a suspect or dead member (most suspect at once: %s, most dead: %s).\n\n' \
            "$nsamples" "$SAMPLE_SECONDS" "$NONZERO" "$max_sus" "$max_dead"
        printf 'Counters are deltas over the run; gauges before/after; log lines are those each node wrote during the run.\n\n'
        printf '| node | suspicions | false suspicions refuted | refutations of itself | deaths declared | stalls | probe failures | probes | suspect gauge | dead gauge | log: suspected | log: refuted | log: down | log: left | log: up | log: WARN/ERROR lines |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
        awk '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
            $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 }' "$LOAD_TSV"
        printf '\nDuring the preload (before the window): suspicions %s, deaths %s (n1, n2, n3).\n\n' \
            "$(awk '{ printf "%s%s", (NR > 1 ? "/" : ""), $17 }' "$LOAD_TSV")" \
            "$(awk '{ printf "%s%s", (NR > 1 ? "/" : ""), $18 }' "$LOAD_TSV")"
        if [ -n "$LOAD_JSON" ]; then
            printf 'Load summary JSON: `%s`\n\n' "$LOAD_JSON"
        fi
    else
        printf 'Not run (BENCH_LOAD_RUN=0).\n\n'
    fi

    printf '## Commands\n\n```\n'
    cat "$COMMANDS"
    printf '```\n\nRaw data: %s (detection.tsv, detection-trace.tsv, idle.tsv, idle-*.prom, load*.txt, load-samples.tsv, load-*.prom, n1-n3 logs).\n' "$OUT"
} >"$REPORT"

log "report ($REPORT)"
cat "$REPORT"
