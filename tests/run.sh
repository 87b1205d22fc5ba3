#!/usr/bin/env bash
# The project's test command: bash tests/run.sh [ARGS...]
#
# Starts a Tansu broker and a ClickHouse server on free loopback ports (see
# tests/services.sh; both are installed first if missing), runs the whole
# workspace's tests against them, stops them and exits with the test
# runner's status. ARGS go to the test runner unchanged, e.g.
#   bash tests/run.sh -E 'test(e2e)'        (cargo-nextest)
#
# Environment, besides what tests/services.sh reads:
#   CHATCART_TEST_KAFKA, CHATCART_TEST_CLICKHOUSE
#       point at services already running; whichever is set is not started.
#   CHATCART_TEST_KEEP=1
#       keep the services' temporary folder (logs, data) after the run.
#   CHATCART_TEST_COMMAND
#       shell command run instead of cargo, with ARGS as "$@"; for checking
#       this script itself, e.g.
#       CHATCART_TEST_COMMAND='env | grep CHATCART_TEST' bash tests/run.sh
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/services.sh
source "$repo_root/tests/services.sh"

services_dir=

# shellcheck disable=SC2317 # only reached through the trap
cleanup() {
    local rc=$?
    # A second Ctrl-C during cleanup must not leave the services running.
    trap '' INT TERM
    if [[ -n $services_dir ]]; then
        svc_stop "$services_dir"
        if [[ ${CHATCART_TEST_KEEP:-0} == 1 ]]; then
            svc_say "kept $services_dir"
        else
            rm -rf "$services_dir"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
# Without these, a signal would end the script without running the EXIT trap
# in some bash versions; the codes are the conventional 128 + signal.
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$repo_root"

services_dir=$(mktemp -d "${TMPDIR:-/tmp}/chatcart-test.XXXXXX")
svc_say "services folder: $services_dir"
svc_start "$services_dir"
svc_watchdog "$$" "$services_dir"
svc_say "CHATCART_TEST_KAFKA=$CHATCART_TEST_KAFKA"
svc_say "CHATCART_TEST_CLICKHOUSE=$CHATCART_TEST_CLICKHOUSE"

rc=0
if [[ -n ${CHATCART_TEST_COMMAND:-} ]]; then
    svc_say "running: $CHATCART_TEST_COMMAND"
    bash -c "$CHATCART_TEST_COMMAND" bash "$@" || rc=$?
elif cargo nextest --version >/dev/null 2>&1; then
    svc_say "running: cargo nextest run --workspace --no-fail-fast $*"
    cargo nextest run --workspace --no-fail-fast "$@" || rc=$?
else
    svc_say "cargo-nextest not found; running: cargo test --workspace --no-fail-fast $*"
    cargo test --workspace --no-fail-fast "$@" || rc=$?
fi
svc_say "tests finished with exit code $rc"
exit "$rc"
