#!/usr/bin/env bash
# The soak of docs/benchmarks.md ("Soak"): a constant `chatcart surge` at RATE
# prompts/s for DURATION_S seconds through the whole stack on a Tansu of its
# own (SQLite storage: the memory storage skips records when a consumer
# resumes inside a batch, which the kills make happen), each stage in its
# own process, one of the four stages (picked at random) SIGKILLed and
# restarted every KILL_EVERY_S seconds, the analytics sink into ClickHouse
# when CLICKHOUSE is set. Every minute it samples the resident memory of
# every process. At the end: the surge's report (every request answered
# once), `chatcart audit`, and per process its RSS first, last and highest.
#
#   tests/soak.sh NAME PORT RATE DURATION_S [KILL_EVERY_S]
#
# Environment: CLICKHOUSE (a ClickHouse URL), SOAK_DIR (default
# /tmp/chatcart-soak), CHATCART_BIN (default target/release/chatcart),
# TANSU_BIN (default tansu), SEED (the kills' order; default 1).
# Not part of the test suite: one run takes DURATION_S plus a few minutes.
set -uo pipefail
NAME=$1 PORT=$2 RATE=$3 DUR=$4 EVERY=${5:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
C=${CHATCART_BIN:-$ROOT/target/release/chatcart}
TANSU=${TANSU_BIN:-tansu}
D=${SOAK_DIR:-/tmp/chatcart-soak}/$NAME
rm -rf "$D"
mkdir -p "$D/tansu"
cd "$D" || exit 1
unset CHATCART_TEST_KAFKA CHATCART_TEST_CLICKHOUSE
RANDOM=${SEED:-1}
say() { echo "[$(date -u +%T)] $*" | tee -a "$D/steps.log"; }

(cd "$D/tansu" && exec setsid env -u SCHEMA_REGISTRY RUST_LOG=warn "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
    --storage-engine sqlite://tansu.db --cluster-id chatcart-test --silent >"$D/tansu/log" 2>&1) &
sleep 0.5
TPID=$(pgrep -n -f "listener-url tcp://127.0.0.1:$PORT")
for _ in $(seq 1 60); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.5; done
say "tansu pid $TPID"
cat >"$D/chatcart.toml" <<EOT
[kafka]
bootstrap_servers = "127.0.0.1:$PORT"
partitions = 4
topic_prefix = "$NAME."
group_prefix = "$NAME"

[kafka.properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"

[[campaigns]]
id = "spring-festival"
budget_cents = 100000000000
credit = { free_up_to_cents = 2000 }
per_user_limit = 1
stock = { "egg-tart" = 1000000 }
EOT
if [[ -n ${CLICKHOUSE:-} ]]; then
    printf '\n[clickhouse]\nurl = "%s"\ndatabase = "soak_%s"\n' "$CLICKHOUSE" "${NAME//-/_}" >>"$D/chatcart.toml"
fi
say "topics create"
"$C" --config "$D/chatcart.toml" topics create >"$D/topics.log" 2>&1

declare -A PID
ROLES=(intent coupon fulfillment reply)
start() { # ROLE
    "$C" --config "$D/chatcart.toml" run "$1" >>"$D/$1.log" 2>&1 &
    PID[$1]=$!
    say "start $1 pid ${PID[$1]}"
}
for r in "${ROLES[@]}"; do start "$r"; done
if [[ -n ${CLICKHOUSE:-} ]]; then start analytics; fi
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
sample() { # seconds since the surge began
    local r
    for r in "${!PID[@]}"; do printf '%s\t%s\t%s\t%s\n' "$1" "$r" "${PID[$r]}" "$(rss "${PID[$r]}")"; done >>"$D/rss.tsv"
    printf '%s\t%s\t%s\t%s\n' "$1" broker "$TPID" "$(rss "$TPID")" >>"$D/rss.tsv"
}
sleep 15

say "surge: $RATE/s for ${DUR}s, a stage killed every ${EVERY}s"
"$C" --config "$D/chatcart.toml" surge --profile constant --rate "$RATE" --duration "${DUR}s" \
    --run "$NAME-r" --seed 17 --users 1000000 --drain-timeout 600s >"$D/surge.txt" 2>"$D/surge.err" &
SURGE=$!
t0=$(date +%s)
next_kill=$EVERY next_sample=0
while kill -0 "$SURGE" 2>/dev/null; do
    now=$(($(date +%s) - t0))
    if ((now >= next_sample)); then
        sample "$now"
        next_sample=$((next_sample + 60))
    fi
    if ((now >= next_kill && now < DUR)); then
        victim=${ROLES[RANDOM % ${#ROLES[@]}]}
        kill -KILL "${PID[$victim]}" 2>/dev/null
        wait "${PID[$victim]}" 2>/dev/null
        say "kill -9 $victim at ${now}s"
        start "$victim"
        next_kill=$((next_kill + EVERY))
    fi
    sleep 1
done
wait "$SURGE"
echo "surge rc=$?" >>"$D/steps.log"
sample "$(($(date +%s) - t0))"
sed -n 1,30p "$D/surge.txt"
say "audit"
AUDIT=(audit)
[[ -n ${CLICKHOUSE:-} ]] && AUDIT+=(--clickhouse)
timeout 900 "$C" --config "$D/chatcart.toml" "${AUDIT[@]}" >"$D/audit.log" 2>&1
echo "audit rc=$?" >>"$D/audit.log"
grep -E "FAIL|clean|rc=" "$D/audit.log" | head
echo "resident memory (MB) per process: first sample, last, highest"
awk -F'\t' '{ k = $2 " " $3; if (!(k in first)) { first[k] = $4; t[k] = $1 }
             last[k] = $4; lt[k] = $1; if ($4 > max[k]) max[k] = $4 }
    END { for (k in first) printf "  %-22s %5ds..%5ds  %7.1f %7.1f %7.1f\n", k, t[k], lt[k],
              first[k] / 1024, last[k] / 1024, max[k] / 1024 }' "$D/rss.tsv" | sort
for r in "${!PID[@]}"; do kill -TERM "${PID[$r]}" 2>/dev/null; done
sleep 5
for r in "${!PID[@]}"; do kill -KILL "${PID[$r]}" 2>/dev/null; done
kill -TERM "$TPID"
sleep 1
kill -KILL "$TPID" 2>/dev/null
say "done"
