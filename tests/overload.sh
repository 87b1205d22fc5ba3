#!/usr/bin/env bash
# One overload run of docs/benchmarks.md ("Overload: the front door"), on a
# fresh Tansu (memory storage) of its own: topics, the intent stage in one
# process (at most MAX_IN_FLIGHT records in flight, which makes it the
# bottleneck), the other stages in another, optionally `chatcart gateway`,
# a constant `chatcart surge` for DURATION_S seconds, then `chatcart audit`.
#
#   tests/overload.sh NAME PORT RATE DURATION_S direct|gateway [CAPACITY] [MAX_IN_FLIGHT] [PARTITIONS]
#
# PORT is the broker's (the gateway listens on PORT+1000); keep both below
# the ephemeral range (32768 on Linux), which the surge's connections use.
# Environment: ZIPF (who sends; default 1.1), MAXWAIT (gateway.max_wait_secs),
# MAXOPEN (surge --max-open), DRAIN (surge --drain-timeout, s), CLICKHOUSE
# (a ClickHouse URL: also run the analytics sink into database NAME, so
# the front-door views show the run; `chatcart report` reads them), GWLOG
# (the gateway's RUST_LOG), OVERLOAD_DIR (default /tmp/chatcart-overload),
# CHATCART_BIN (default target/release/chatcart), TANSU_BIN (default tansu).
# Not part of the test suite: one run takes minutes.
set -uo pipefail
NAME=$1 PORT=$2 RATE=$3 DUR=$4 MODE=$5 CAP=${6:-} MIF=${7:-5000} PARTS=${8:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
C=${CHATCART_BIN:-$ROOT/target/release/chatcart}
TANSU=${TANSU_BIN:-tansu}
D=${OVERLOAD_DIR:-/tmp/chatcart-overload}/$NAME; rm -rf "$D"; mkdir -p "$D/tansu"; cd "$D"
unset CHATCART_TEST_KAFKA CHATCART_TEST_CLICKHOUSE
say() { echo "[$(date -u +%T)] $*" | tee -a $D/steps.log; }
(cd $D/tansu && exec setsid env -u SCHEMA_REGISTRY RUST_LOG=warn $TANSU broker \
   --listener-url tcp://127.0.0.1:$PORT --advertised-listener-url tcp://127.0.0.1:$PORT \
   --storage-engine memory://tansu/ --cluster-id chatcart-test --silent >$D/tansu/log 2>&1) &
sleep 0.5; TPID=$(pgrep -n -f "listener-url tcp://127.0.0.1:$PORT")
for i in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.5; done
say "tansu pid $TPID"
GPORT=$((PORT + 1000))
cat > $D/chatcart.toml <<EOT
[kafka]
bootstrap_servers = "127.0.0.1:$PORT"
partitions = $PARTS
topic_prefix = "$NAME."
group_prefix = "$NAME"

[[campaigns]]
id = "spring-festival"
budget_cents = 100000000000
credit = { free_up_to_cents = 2000 }
per_user_limit = 1


[gateway]
listen = "127.0.0.1:$GPORT"
max_open_requests = 15000
max_wait_secs = ${MAXWAIT:-20}
max_connections = 15000

[kafka.properties]
"linger.ms" = "50"
"batch.num.messages" = "10000"
"fetch.wait.max.ms" = "200"
"fetch.min.bytes" = "65536"
EOT
[[ -n ${CLICKHOUSE:-} ]] && printf '\n[clickhouse]\nurl = "%s"\ndatabase = "ov_%s"\n' "$CLICKHOUSE" "$NAME" >> $D/chatcart.toml
say "topics create"; $C --config $D/chatcart.toml topics create >$D/topics.log 2>&1
say "start stages"
# The intent stage is the bottleneck (as an LLM fallback would make it):
# its own process, at most MIF records in flight; the others as configured.
CHATCART__RUNTIME__MAX_IN_FLIGHT=$MIF $C --config $D/chatcart.toml run intent >$D/intent.log 2>&1 &
IPID=$!
$C --config $D/chatcart.toml run coupon fulfillment reply >$D/stages.log 2>&1 &
SPID=$!
APID=""
if [[ -n ${CLICKHOUSE:-} ]]; then
  $C --config $D/chatcart.toml run analytics >$D/analytics.log 2>&1 &
  APID=$!
fi
GW=""
if [[ $MODE == gateway ]]; then
  RUST_LOG=${GWLOG:-info} $C --config $D/chatcart.toml gateway >$D/gateway.log 2>&1 &
  GPID=$!; GW="--via-gateway http://127.0.0.1:$GPORT"
  [[ -n $CAP ]] && GW="$GW --capacity $CAP"
fi
sleep 15
say "surge: rate $RATE for ${DUR}s $MODE"
$C --config $D/chatcart.toml surge --profile constant --rate $RATE --duration ${DUR}s --run $NAME-r --seed 17 --users 1000000 --zipf-exponent ${ZIPF:-1.1} --drain-timeout ${DRAIN:-300}s --max-open ${MAXOPEN:-8000} $GW > $D/surge.txt 2>$D/surge.err
echo "surge rc=$?" >> $D/steps.log
cat $D/surge.txt | sed -n 1,30p
say "audit"
timeout 600 $C --config $D/chatcart.toml audit >$D/audit.log 2>&1; echo "audit rc=$?" >> $D/audit.log; grep -E "FAIL|clean|rc=" $D/audit.log | head
[[ $MODE == gateway ]] && kill -TERM $GPID
[[ -n $APID ]] && kill -TERM $APID
kill -TERM $IPID; kill -TERM $SPID; for i in $(seq 1 20); do kill -0 $SPID 2>/dev/null || break; sleep 0.5; done; kill -KILL $SPID 2>/dev/null
kill -TERM $TPID; sleep 1; kill -KILL $TPID 2>/dev/null
say "done"
