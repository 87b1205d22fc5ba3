#!/usr/bin/env bash
# Local Kafka-compatible broker (Tansu) and ClickHouse for the test suite.
#
#   bash tests/services.sh start    start both, print `export ...` lines
#   bash tests/services.sh env      print the `export ...` lines again
#   bash tests/services.sh status   say what is running
#   bash tests/services.sh stop     stop both and remove their data
#   bash tests/services.sh clickhouse-start DIR / clickhouse-stop DIR
#                                   a ClickHouse of a test's own, in DIR
#
#   eval "$(bash tests/services.sh start)" && cargo nextest run --workspace
#
# tests/run.sh sources this file and uses the same functions with a fresh
# temporary folder per run. Starting also installs Chromium if it is missing
# (the report test opens the HTML report in it) and starts a Prometheus
# (installed from Debian's package if missing) that the metrics test has
# scrape the processes it starts.
#
# Environment:
#   CHATCART_TEST_SERVICES_DIR    state folder for start/stop
#                                 (default /tmp/chatcart-services)
#   CHATCART_TEST_KAFKA           if set, no broker is started; this is used
#   CHATCART_TEST_CLICKHOUSE      if set, no ClickHouse is started; this is used
#   CHATCART_TEST_TANSU_BIN       tansu binary to use instead of the one on PATH
#   CHATCART_TEST_PROMETHEUS      if set, no Prometheus is started; this is used,
#                                 with CHATCART_TEST_PROMETHEUS_TARGETS, the
#                                 folder its file_sd_configs read
#   CHATCART_TEST_PROMETHEUS_BIN  prometheus binary to use instead of Debian's
#   CHATCART_TEST_CHROMIUM        Chromium for the report test; otherwise
#                                 /usr/bin/chromium or chromium on PATH, and
#                                 Debian's package is installed if neither is
#   CHATCART_TEST_TANSU_STORAGE   Tansu storage URL (default memory://tansu/,
#                                 the storage that carries the most load here;
#                                 docs/benchmarks.md compares it with sqlite://,
#                                 which has fewer defects but a core-bound ceiling).
#                                 Tansu resolves sqlite://NAME relative to its
#                                 working folder, SERVICES_DIR/tansu, and does
#                                 the same with an absolute path (the leading
#                                 slash is dropped), so use a plain file name.
#   CHATCART_TEST_TANSU_LOG       RUST_LOG filter for the broker (default warn)
#   CHATCART_TEST_STARTUP_TIMEOUT seconds to wait for each service (default 60)
#   CHATCART_TEST_KEEP=1          keep the state folder on stop
#
# Only bash, coreutils and util-linux are needed at run time: ports are probed
# through /proc/net and readiness through bash's /dev/tcp, so neither curl nor
# python3 has to be present on a fresh machine.

# Sourced by run.sh under its own `set -euo pipefail`; set here too so the CLI
# behaves the same.
set -euo pipefail

readonly SVC_TANSU_VERSION=0.6.0
readonly SVC_TANSU_FEATURES=dynostore,libsql

svc_say() {
    # stderr, so that `eval "$(services.sh start)"` only sees the exports.
    printf '==> %s\n' "$*" >&2
}

svc_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Milliseconds since the epoch; EPOCHREALTIME needs bash 5, else whole seconds.
svc_now_ms() {
    if [[ -n ${EPOCHREALTIME:-} ]]; then
        local t=${EPOCHREALTIME/[.,]/}
        printf '%s\n' "$((10#$t / 1000))"
    else
        printf '%s\n' "$(($(date +%s) * 1000))"
    fi
}

svc_have() {
    command -v "$1" >/dev/null 2>&1
}

# Installs Debian packages PKG... (named by the first in what is said).
svc_apt_install() {
    svc_say "installing $1 with apt-get"
    svc_as_root apt-get update >&2
    svc_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "$@" >&2
}

# Installs the PyPI package PACKAGE with pip unless MODULE imports
# already, into CHATCART_TEST_PYTHON (python3); WHAT names it in what is
# said (default PACKAGE).
svc_pip_ensure() {
    local module=$1 package=$2 what=${3:-$2}
    local python=${CHATCART_TEST_PYTHON:-python3}
    if "$python" -c "import $module" 2>/dev/null; then
        return 0
    fi
    svc_say "installing $what with pip"
    "$python" -m pip install --quiet --disable-pip-version-check "$package" >&2 ||
        svc_die "pip could not install $package"
}

svc_as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif svc_have sudo; then
        sudo "$@"
    else
        svc_die "need root (or sudo) to run: $*"
    fi
}

# --- locating and installing -------------------------------------------------

svc_tansu_bin() {
    local bin
    if [[ -n ${CHATCART_TEST_TANSU_BIN:-} ]]; then
        printf '%s\n' "$CHATCART_TEST_TANSU_BIN"
        return 0
    fi
    if bin=$(command -v tansu 2>/dev/null); then
        printf '%s\n' "$bin"
        return 0
    fi
    # cargo install puts it here, which is not always on PATH (CI, sudo).
    bin="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
    if [[ -x $bin ]]; then
        printf '%s\n' "$bin"
        return 0
    fi
    return 1
}

svc_ensure_tansu() {
    local bin version engines
    if bin=$(svc_tansu_bin); then
        version=$(timeout 10 "$bin" --version 2>/dev/null || true)
        # A plain `cargo install tansu` has neither memory:// nor sqlite://.
        engines=$(timeout 10 "$bin" --help 2>/dev/null | grep '^Storage engines:' || true)
        if [[ $version != *"$SVC_TANSU_VERSION"* || $engines != *dynostore* || $engines != *libsql* ]]; then
            svc_say "warning: $bin reports '${version:-no version}' ('${engines:-no storage engines}');" \
                "tests expect tansu $SVC_TANSU_VERSION with dynostore and libsql:" \
                "cargo install tansu --force --version $SVC_TANSU_VERSION --locked --features $SVC_TANSU_FEATURES"
        fi
        return 0
    fi
    svc_have cargo || svc_die "tansu is not installed and cargo is not on PATH"
    svc_say "installing tansu $SVC_TANSU_VERSION with cargo (compiles for 10 to 25 minutes on 2 cores, once)"
    # --locked: the crate's own lockfile is the combination its authors tested.
    # dynostore gives memory:// storage, libsql gives sqlite://.
    cargo install tansu --version "$SVC_TANSU_VERSION" --locked \
        --features "$SVC_TANSU_FEATURES" >&2
    svc_tansu_bin >/dev/null || svc_die "cargo install finished but no tansu binary was found"
}

svc_clickhouse_bin() {
    local bin
    if bin=$(command -v clickhouse-server 2>/dev/null); then
        printf '%s\n' "$bin"
        return 0
    fi
    # /usr/sbin is often missing from a non-root PATH.
    for bin in /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
        if [[ -x $bin ]]; then
            printf '%s\n' "$bin"
            return 0
        fi
    done
    return 1
}

svc_ensure_clickhouse() {
    if svc_clickhouse_bin >/dev/null; then
        return 0
    fi
    svc_have apt-get || svc_die "clickhouse-server is not installed and apt-get is not available"
    svc_apt_install clickhouse-server clickhouse-client
    svc_clickhouse_bin >/dev/null || svc_die "apt-get finished but clickhouse-server was not found"
}

# chDB: a current ClickHouse engine as a Python package, for the check that
# the migrations also run on a current server (tests/current-clickhouse).
svc_ensure_chdb() {
    local python=${CHATCART_TEST_PYTHON:-python3}
    svc_have "$python" || svc_die "$python is needed to check the schema on a current ClickHouse"
    svc_pip_ensure chdb chdb "chdb (a current ClickHouse engine, about 150 MB)"
}

# stunnel: the TLS terminator in front of ClickHouse for the https tests
# (tests/tests/tls.rs), from Debian's stunnel4 package.
svc_ensure_stunnel() {
    if svc_have stunnel; then
        return 0
    fi
    svc_have apt-get || svc_die "stunnel is not installed and apt-get is not available"
    svc_apt_install stunnel4
    svc_have stunnel || svc_die "apt-get finished but stunnel was not found"
}

# ip: the network namespaces of the partition test (tests/tests/partition.rs),
# from Debian's iproute2 package.
svc_ensure_iproute2() {
    if svc_have ip; then
        return 0
    fi
    svc_have apt-get || svc_die "ip is not installed and apt-get is not available"
    svc_apt_install iproute2
    svc_have ip || svc_die "apt-get finished but ip was not found"
}

svc_tls_ready() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# The SCRAM logins on the broker svc_start_sasl_tansu starts: one user per
# mechanism (a Tansu user has the one it was made with). Throwaway
# passwords for a broker that listens on loopback only.
SVC_SCRAM_512_USER=chatcart-512
SVC_SCRAM_512_PASSWORD=scram-512-test-pw
SVC_SCRAM_256_USER=chatcart-256
SVC_SCRAM_256_PASSWORD=scram-256-test-pw

# svc_start_sasl_tansu DIR ADVERTISED -> sets SVC_TANSU
# A Tansu that requires a SASL login. Tansu 0.6 keeps users in its storage
# and offers SCRAM-SHA-256 and -512 only; its users are made through the
# broker (AlterUserScramCredentials), which takes no login. So: start it on
# SQLite without --authentication, make the users, restart it with it.
svc_start_sasl_tansu() {
    local dir=$1/tansu-sasl bin
    bin=$(svc_tansu_bin)
    mkdir -p "$dir"
    rm -f "$dir"/tansu.db*
    svc_start_tansu "$1" tansu-sasl "$2" sqlite://tansu.db
    "$bin" user create "$SVC_SCRAM_512_USER" "$SVC_SCRAM_512_PASSWORD" \
        --mechanism scram512 --broker "tcp://$SVC_TANSU" >>"$dir/users.log" 2>&1 &&
        "$bin" user create "$SVC_SCRAM_256_USER" "$SVC_SCRAM_256_PASSWORD" \
            --mechanism scram256 --broker "tcp://$SVC_TANSU" >>"$dir/users.log" 2>&1 ||
        svc_die "tansu would not make the SCRAM users (see $dir/users.log)"
    svc_kill "$dir/pid"
    svc_start_tansu "$1" tansu-sasl "$2" sqlite://tansu.db --authentication
}

# svc_start_tls DIR CLICKHOUSE_URL -> sets SVC_CLICKHOUSE_TLS, SVC_KAFKA_TLS,
# SVC_KAFKA_SASL
# A throwaway CA and a server certificate for 127.0.0.1 and localhost (and
# a second CA that signed nothing, for the wrong-CA tests), then stunnel
# serving TLS on ports of its own: in front of ClickHouse's HTTP port, in
# front of a second Tansu, and in front of a third that requires a SASL
# login, each advertising stunnel's port. (Tansu's own TLS options do not
# work, and a Tansu has one advertised listener, so the plaintext broker
# the other tests use cannot be the TLS one too.)
svc_start_tls() {
    local dir=$1/tls backend=${2#http://} port attempt rc front name accept broker
    local tls_port= sasl_port=
    local -a fronts=()
    backend=${backend%%/*}
    mkdir -p "$dir"
    (
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 \
            -subj "/CN=chatcart test CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout wrong-ca.key -out wrong-ca.pem -days 30 \
            -subj "/CN=chatcart wrong CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
        printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days 30 -extfile server.ext
        chmod 600 ./*.key
    ) >"$dir/openssl.log" 2>&1 || svc_die "openssl could not make the test certificates (see $dir/openssl.log)"
    SVC_KAFKA_TLS=
    SVC_KAFKA_SASL=
    if svc_tansu_bin >/dev/null; then
        tls_port=$(svc_free_port)
        svc_start_tansu "$1" tansu-tls "127.0.0.1:$tls_port"
        fronts+=("kafka-tls 127.0.0.1:$tls_port $SVC_TANSU")
        sasl_port=$(svc_free_port)
        while [[ $sasl_port == "$tls_port" ]]; do sasl_port=$(svc_free_port); done
        svc_start_sasl_tansu "$1" "127.0.0.1:$sasl_port"
        fronts+=("kafka-sasl 127.0.0.1:$sasl_port $SVC_TANSU")
    else
        svc_say "no tansu binary: no Kafka behind TLS (the Kafka TLS tests will say so)"
    fi
    for attempt in 1 2 3; do
        port=$(svc_free_port)
        svc_say "starting stunnel on 127.0.0.1:$port, TLS in front of ClickHouse at $backend (attempt $attempt)"
        printf '%s\n' "foreground = yes" "pid =" "debug = notice" "[clickhouse-https]" \
            "accept = 127.0.0.1:$port" "connect = $backend" "cert = $dir/server.pem" \
            "key = $dir/server.key" "sslVersionMin = TLSv1.2" >"$dir/stunnel.conf"
        for front in "${fronts[@]}"; do
            read -r name accept broker <<<"$front"
            printf '%s\n' "[$name]" "accept = $accept" "connect = $broker" \
                "cert = $dir/server.pem" "key = $dir/server.key" "sslVersionMin = TLSv1.2" \
                >>"$dir/stunnel.conf"
        done
        : >"$dir/log"
        svc_spawn "$dir/pid" "$dir/log" "$dir" stunnel "$dir/stunnel.conf"
        rc=0
        svc_wait stunnel "$dir/pid" "$dir/log" svc_tls_ready 127.0.0.1 "$port" || rc=$?
        if ((rc == 0)); then
            SVC_CLICKHOUSE_TLS=https://127.0.0.1:$port
            for front in "${fronts[@]}"; do
                read -r name accept broker <<<"$front"
                svc_tls_ready "${accept%:*}" "${accept##*:}" ||
                    svc_die "stunnel does not serve $name on $accept (see $dir/log)"
            done
            if [[ -n $tls_port ]]; then
                SVC_KAFKA_TLS=127.0.0.1:$tls_port
                SVC_KAFKA_SASL=127.0.0.1:$sasl_port
            fi
            return 0
        fi
    done
    svc_die "stunnel could not get a port after 3 attempts"
}

# Prometheus: tests/tests/prometheus.rs has it scrape the processes under
# test, from Debian's prometheus package (which brings promtool too).
svc_prometheus_bin() {
    local bin
    if [[ -n ${CHATCART_TEST_PROMETHEUS_BIN:-} ]]; then
        printf '%s\n' "$CHATCART_TEST_PROMETHEUS_BIN"
        return 0
    fi
    for bin in "$(command -v prometheus 2>/dev/null)" /usr/bin/prometheus; do
        if [[ -n $bin && -x $bin ]]; then
            printf '%s\n' "$bin"
            return 0
        fi
    done
    return 1
}

svc_ensure_prometheus() {
    if svc_prometheus_bin >/dev/null; then
        return 0
    fi
    svc_have apt-get || svc_die "prometheus is not installed and apt-get is not available (set CHATCART_TEST_PROMETHEUS_BIN)"
    # Its postinst starts a system service where there is an init system to
    # ask; the binary is all the tests need, so only its absence is an error.
    svc_apt_install prometheus || true
    svc_prometheus_bin >/dev/null || svc_die "apt-get finished but prometheus was not found"
}

svc_prometheus_ready() {
    local host=$1 port=$2 reply
    reply=$(
        exec 2>/dev/null
        exec 3<>"/dev/tcp/$host/$port" || exit 1
        printf 'GET /-/ready HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" >&3
        timeout 5 head -c 12 <&3
    ) || return 1
    [[ $reply == 'HTTP/1.'?' 200' ]]
}

# svc_start_prometheus DIR -> sets SVC_PROMETHEUS, SVC_PROMETHEUS_TARGETS
# Scrapes every second whatever the target files in DIR/prometheus/targets
# list; a test adds its processes by writing a file there (a JSON list of
# {"targets": ["HOST:PORT"], "labels": {...}}), which Prometheus notices
# within a second.
svc_start_prometheus() {
    local dir=$1/prometheus bin port attempt rc promtool
    bin=$(svc_prometheus_bin)
    mkdir -p "$dir/targets" "$dir/data"
    printf '%s\n' "global:" "  scrape_interval: 1s" "  evaluation_interval: 1s" \
        "scrape_configs:" "  - job_name: chatcart" "    file_sd_configs:" \
        "      - files: ['$dir/targets/*.json']" "        refresh_interval: 1s" \
        >"$dir/prometheus.yml"
    promtool=$(dirname "$bin")/promtool
    if [[ -x $promtool ]]; then
        "$promtool" check config "$dir/prometheus.yml" >"$dir/check.log" 2>&1 ||
            svc_die "promtool refused the generated configuration (see $dir/check.log)"
    fi
    for attempt in 1 2 3; do
        port=$(svc_free_port)
        svc_say "starting prometheus on 127.0.0.1:$port (attempt $attempt)"
        : >"$dir/log"
        svc_spawn "$dir/pid" "$dir/log" "$dir" "$bin" \
            --config.file="$dir/prometheus.yml" \
            --web.listen-address="127.0.0.1:$port" \
            --storage.tsdb.path="$dir/data" \
            --storage.tsdb.retention.time=2h
        rc=0
        svc_wait prometheus "$dir/pid" "$dir/log" svc_prometheus_ready 127.0.0.1 "$port" || rc=$?
        if ((rc == 0)); then
            SVC_PROMETHEUS=http://127.0.0.1:$port
            SVC_PROMETHEUS_TARGETS=$dir/targets
            return 0
        fi
    done
    svc_die "prometheus could not get a port after 3 attempts"
}

# kafka-python: tests/tests/partitioning.rs publishes with it, a Kafka
# client that shares no code (nor default partitioner) with librdkafka.
svc_ensure_kafka_python() {
    svc_pip_ensure kafka kafka-python
}

# PyYAML: tests/tests/compose.rs reads docker/compose.yml with it (anchors
# and merge keys included) to check each service's configuration.
svc_ensure_pyyaml() {
    svc_pip_ensure yaml pyyaml PyYAML
}

# The report test (tests/tests/report.rs) opens the HTML report in headless
# Chromium; it finds the browser through CHATCART_TEST_CHROMIUM, else
# /usr/bin/chromium, else chromium on PATH.
svc_chromium_bin() {
    local bin
    if [[ -n ${CHATCART_TEST_CHROMIUM:-} ]]; then
        printf '%s\n' "$CHATCART_TEST_CHROMIUM"
        return 0
    fi
    if [[ -x /usr/bin/chromium ]]; then
        printf '%s\n' /usr/bin/chromium
        return 0
    fi
    if bin=$(command -v chromium 2>/dev/null); then
        printf '%s\n' "$bin"
        return 0
    fi
    return 1
}

svc_ensure_chromium() {
    if svc_chromium_bin >/dev/null; then
        return 0
    fi
    svc_have apt-get || svc_die "chromium is not installed and apt-get is not available (set CHATCART_TEST_CHROMIUM to a Chromium binary)"
    svc_apt_install chromium
    svc_chromium_bin >/dev/null || svc_die "apt-get finished but chromium was not found"
}

# --- ports and probes --------------------------------------------------------

# True if any IPv4/IPv6 socket on this machine uses the port locally. Checking
# /proc/net rather than trying a connect also catches sockets that are bound
# but not listening, which would still make the service's bind fail.
svc_port_in_use() {
    local hex
    hex=$(printf '%04X' "$1")
    if [[ -r /proc/net/tcp ]]; then
        grep -q -i -E "^ *[0-9]+: [0-9A-F]+:${hex} " /proc/net/tcp /proc/net/tcp6 2>/dev/null
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

# Prints a port that nothing uses. Chosen below the kernel's ephemeral range so
# outgoing connections (the tests open many) cannot take it in the meantime;
# the remaining race with other programs is covered by retrying the start.
# Each service is up before the next port is picked, so they cannot collide.
svc_free_port() {
    local low=20000 high=32767 eph_low port _
    if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
        read -r eph_low _ </proc/sys/net/ipv4/ip_local_port_range
        if ((eph_low - 1 < high)); then
            high=$((eph_low - 1))
        fi
        if ((high - low < 1000)); then
            low=10000
        fi
    fi
    for _ in $(seq 1 200); do
        port=$((low + (RANDOM * 32768 + RANDOM) % (high - low + 1)))
        if ! svc_port_in_use "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    svc_die "found no free port between $low and $high"
}

# Kafka ApiVersions v0 with correlation id 1: an answer proves the broker
# parses the protocol, not merely that the port is open.
svc_kafka_ready() {
    local host=$1 port=$2 reply
    reply=$(
        exec 2>/dev/null
        exec 3<>"/dev/tcp/$host/$port" || exit 1
        printf '\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04test' >&3
        timeout 5 head -c 8 <&3 | od -An -tx1 | tr -d ' \n'
    ) || return 1
    # 4-byte length, then the correlation id echoed back.
    [[ ${#reply} -eq 16 && ${reply:8:8} == 00000001 ]]
}

svc_clickhouse_ready() {
    local host=$1 port=$2 reply
    reply=$(
        exec 2>/dev/null
        exec 3<>"/dev/tcp/$host/$port" || exit 1
        printf 'GET /ping HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" >&3
        timeout 5 cat <&3
    ) || return 1
    [[ $reply == *'Ok.'* ]]
}

# --- processes ---------------------------------------------------------------

svc_alive() {
    local pid=$1 state
    kill -0 "$pid" 2>/dev/null || return 1
    # A service that died while run.sh is its parent stays a zombie until
    # reaped, and kill -0 still succeeds on it.
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
    [[ $state != Z ]]
}

# svc_spawn PIDFILE LOGFILE WORKDIR CMD...
# Runs CMD in its own session, so a Ctrl-C meant for the test runner does not
# hit the services mid-test and the whole group can be stopped at once. The
# pid is written by the process itself: it is also the process group id.
svc_spawn() {
    local pidfile=$1 logfile=$2 workdir=$3
    shift 3
    rm -f "$pidfile"
    SVC_SPAWNED_MS=$(svc_now_ms)
    (
        cd "$workdir"
        # shellcheck disable=SC2016 # expanded by the inner bash
        exec setsid bash -c 'echo "$$" >"$0"; exec "$@"' "$pidfile" "$@"
    ) </dev/null >>"$logfile" 2>&1 &
    local _
    for _ in $(seq 1 100); do
        [[ -s $pidfile ]] && return 0
        sleep 0.05
    done
    svc_die "could not start: $*"
}

# svc_kill PIDFILE
svc_kill() {
    local pidfile=$1 pid _
    [[ -s $pidfile ]] || return 0
    pid=$(<"$pidfile")
    if svc_alive "$pid"; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        # Tansu allows its connections 5 s to finish after SIGTERM.
        for _ in $(seq 1 150); do
            svc_alive "$pid" || break
            sleep 0.1
        done
        if svc_alive "$pid"; then
            svc_say "pid $pid did not stop after SIGTERM, killing it"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    # Reaps it when this shell started it; otherwise a harmless no-op.
    wait "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

# svc_wait NAME PIDFILE LOGFILE PROBE HOST PORT
# 0 when ready, 2 when the process died of a port clash (caller retries),
# exits otherwise.
svc_wait() {
    local name=$1 pidfile=$2 logfile=$3 probe=$4 host=$5 port=$6
    local timeout=${CHATCART_TEST_STARTUP_TIMEOUT:-60} pid started now t0
    pid=$(<"$pidfile")
    started=$SECONDS
    t0=${SVC_SPAWNED_MS:-$(svc_now_ms)}
    while true; do
        if "$probe" "$host" "$port"; then
            svc_say "$name is ready on $host:$port after $(($(svc_now_ms) - t0)) ms"
            return 0
        fi
        if ! svc_alive "$pid"; then
            wait "$pid" 2>/dev/null || true
            rm -f "$pidfile"
            if grep -q -i -E 'address already in use|EADDRINUSE|AddrInUse' "${pidfile%/*}"/*log* 2>/dev/null; then
                svc_say "$name lost port $port to another program, retrying on another port"
                return 2
            fi
            svc_say "$name exited during startup; last lines of $logfile:"
            tail -n 40 "$logfile" >&2 || true
            exit 1
        fi
        now=$SECONDS
        if ((now - started >= timeout)); then
            svc_say "$name did not become ready on $host:$port within ${timeout} s; last lines of $logfile:"
            tail -n 40 "$logfile" >&2 || true
            svc_kill "$pidfile"
            exit 1
        fi
        sleep 0.2
    done
}

# --- the services ------------------------------------------------------------

# svc_start_tansu DIR [NAME [ADVERTISED [STORAGE [FLAG...]]]] -> sets
# SVC_TANSU (and, for the default NAME tansu, SVC_KAFKA). ADVERTISED is the
# host:port clients are told to connect to, when something (a TLS
# terminator) stands in front; FLAGs go to `tansu broker` as they are.
svc_start_tansu() {
    local dir=$1/${2:-tansu} advertised=${3:-} bin storage port attempt rc
    local -a extra=("${@:5}")
    bin=$(svc_tansu_bin)
    storage=${CHATCART_TEST_TANSU_STORAGE:-memory://tansu/}
    # Another broker keeps its data apart from the first's.
    [[ -z ${2:-} ]] || storage=${4:-memory://tansu/}
    mkdir -p "$dir"
    for attempt in 1 2 3; do
        port=$(svc_free_port)
        svc_say "starting tansu on 127.0.0.1:$port (storage $storage, attempt $attempt)"
        printf '%s\n' "$port" >"$dir/port"
        : >"$dir/log"
        # Every setting is passed as a flag: tansu reads CLUSTER_ID,
        # LISTENER_URL, STORAGE_ENGINE, ... from the environment and from a
        # .env file, and a flag wins over both.
        #  - listener: an IP literal, because a host name such as localhost
        #    makes tansu fall back to listening on every interface.
        #  - advertised listener: what clients are told to reconnect to;
        #    127.0.0.1 rather than localhost, which may resolve to ::1 first.
        #  - cluster id: fixed, since sqlite storage remembers it across
        #    restarts of the broker.
        #  - silent: no progress spinners or screen clearing in the log.
        # Unset variables that would enable features we pass no flag for.
        svc_spawn "$dir/pid" "$dir/log" "$dir" \
            env -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT \
            RUST_LOG="${CHATCART_TEST_TANSU_LOG:-warn}" \
            "$bin" broker \
            --listener-url "tcp://127.0.0.1:$port" \
            --advertised-listener-url "tcp://${advertised:-127.0.0.1:$port}" \
            --storage-engine "$storage" \
            --cluster-id chatcart-test \
            --silent "${extra[@]}"
        rc=0
        svc_wait tansu "$dir/pid" "$dir/log" svc_kafka_ready 127.0.0.1 "$port" || rc=$?
        if ((rc == 0)); then
            SVC_TANSU=127.0.0.1:$port
            [[ -n ${2:-} ]] || SVC_KAFKA=$SVC_TANSU
            return 0
        fi
    done
    svc_die "tansu could not get a port after 3 attempts"
}

# svc_start_clickhouse DIR -> sets SVC_CLICKHOUSE
svc_start_clickhouse() {
    local dir=$1/clickhouse bin port attempt rc
    bin=$(svc_clickhouse_bin)
    mkdir -p "$dir/data"
    # Our own users.xml: the packaged one lets the default user in from any
    # address; this one only from loopback.
    cat >"$dir/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles><default></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <!-- A user with a password, for the tests through TLS
             (tests/tests/tls.rs): a throwaway test credential. -->
        <chatcart_tls>
            <password>tls-test-pw</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </chatcart_tls>
    </users>
    <quotas><default></default></quotas>
</yandex>
EOF
    for attempt in 1 2 3; do
        port=$(svc_free_port)
        svc_say "starting clickhouse-server on 127.0.0.1:$port (attempt $attempt)"
        printf '%s\n' "$port" >"$dir/port"
        # A complete config of our own instead of overriding the packaged
        # /etc/clickhouse-server/config.xml: that one also opens the native
        # (9000) and interserver (9009) ports, logs to /var/log, keeps data in
        # /var/lib and pulls in /etc/metrika.xml. With no tcp_port and no
        # interserver port here, HTTP is the only listener, and every file the
        # server writes (data, metadata, preprocessed configs, logs, status)
        # stays under this folder. keep_alive_timeout is well above the
        # clickhouse crate's 2 s pool idle timeout (the packaged 3 s leaves
        # little margin), so a pooled connection is not closed under a
        # request on a busy machine.
        cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>$dir/server.log</log>
        <errorlog>$dir/server.err.log</errorlog>
        <size>100M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$port</http_port>
    <path>$dir/data/</path>
    <tmp_path>$dir/data/tmp/</tmp_path>
    <user_files_path>$dir/data/user_files/</user_files_path>
    <format_schema_path>$dir/data/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <max_concurrent_queries>100</max_concurrent_queries>
    <keep_alive_timeout>10</keep_alive_timeout>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <mlock_executable>false</mlock_executable>
</yandex>
EOF
        : >"$dir/log"
        : >"$dir/server.log"
        : >"$dir/server.err.log"
        svc_spawn "$dir/pid" "$dir/log" "$dir" \
            "$bin" --config-file="$dir/config.xml"
        rc=0
        svc_wait clickhouse "$dir/pid" "$dir/server.err.log" svc_clickhouse_ready 127.0.0.1 "$port" || rc=$?
        if ((rc == 0)); then
            SVC_CLICKHOUSE=http://127.0.0.1:$port
            return 0
        fi
    done
    svc_die "clickhouse-server could not get a port after 3 attempts"
}

# svc_restart_clickhouse DIR: starts the ClickHouse that svc_start_clickhouse
# set up in DIR again, on the same port and data, after it was stopped (the
# analytics outage test does this with a server of its own).
svc_restart_clickhouse() {
    local dir=$1/clickhouse bin port
    [[ -s $dir/config.xml && -s $dir/port ]] || svc_die "no ClickHouse was set up in $1"
    bin=$(svc_clickhouse_bin)
    port=$(<"$dir/port")
    svc_spawn "$dir/pid" "$dir/log" "$dir" "$bin" --config-file="$dir/config.xml"
    # The port may linger in TIME_WAIT for a moment: the wait tells.
    svc_wait clickhouse "$dir/pid" "$dir/server.err.log" svc_clickhouse_ready 127.0.0.1 "$port" ||
        svc_die "ClickHouse did not come back on port $port"
    SVC_CLICKHOUSE=http://127.0.0.1:$port
}

# svc_start DIR
# Starts whatever CHATCART_TEST_KAFKA / CHATCART_TEST_CLICKHOUSE do not
# already point at, then writes DIR/env and exports the variables.
svc_start() {
    local dir=$1
    mkdir -p "$dir"
    SVC_KAFKA=${CHATCART_TEST_KAFKA:-}
    SVC_CLICKHOUSE=${CHATCART_TEST_CLICKHOUSE:-}

    if [[ -n $SVC_KAFKA ]]; then
        svc_say "using the Kafka broker at $SVC_KAFKA (CHATCART_TEST_KAFKA)"
    else
        svc_ensure_tansu
    fi
    if [[ -n $SVC_CLICKHOUSE ]]; then
        svc_say "using ClickHouse at $SVC_CLICKHOUSE (CHATCART_TEST_CLICKHOUSE)"
    else
        svc_ensure_clickhouse
    fi
    svc_ensure_chdb
    svc_ensure_pyyaml
    svc_ensure_kafka_python
    svc_ensure_stunnel
    svc_ensure_iproute2
    svc_ensure_chromium
    if [[ -z ${CHATCART_TEST_PROMETHEUS:-} ]]; then
        svc_ensure_prometheus
    fi

    svc_have setsid || svc_die "setsid (util-linux) is required"
    svc_have timeout || svc_die "timeout (coreutils) is required"

    if [[ -z $SVC_KAFKA ]]; then
        svc_start_tansu "$dir"
    fi
    local tls_user=default tls_password=
    if [[ -z $SVC_CLICKHOUSE ]]; then
        svc_start_clickhouse "$dir"
        tls_user=chatcart_tls tls_password=tls-test-pw
    fi
    svc_start_tls "$dir" "$SVC_CLICKHOUSE"
    if [[ -n ${CHATCART_TEST_PROMETHEUS:-} ]]; then
        svc_say "using Prometheus at $CHATCART_TEST_PROMETHEUS (CHATCART_TEST_PROMETHEUS)"
        SVC_PROMETHEUS=$CHATCART_TEST_PROMETHEUS
        SVC_PROMETHEUS_TARGETS=${CHATCART_TEST_PROMETHEUS_TARGETS:?set CHATCART_TEST_PROMETHEUS_TARGETS to the folder its file_sd_configs read}
    else
        svc_start_prometheus "$dir"
    fi

    export CHATCART_TEST_KAFKA=$SVC_KAFKA
    export CHATCART_TEST_CLICKHOUSE=$SVC_CLICKHOUSE
    export CHATCART_TEST_CLICKHOUSE_TLS=$SVC_CLICKHOUSE_TLS
    export CHATCART_TEST_KAFKA_TLS=$SVC_KAFKA_TLS
    export CHATCART_TEST_KAFKA_SASL=$SVC_KAFKA_SASL
    export CHATCART_TEST_SCRAM_512_USER=$SVC_SCRAM_512_USER
    export CHATCART_TEST_SCRAM_512_PASSWORD=$SVC_SCRAM_512_PASSWORD
    export CHATCART_TEST_SCRAM_256_USER=$SVC_SCRAM_256_USER
    export CHATCART_TEST_SCRAM_256_PASSWORD=$SVC_SCRAM_256_PASSWORD
    export CHATCART_TEST_TLS_DIR=$dir/tls
    # The login the TLS tests use: a user with a password on the ClickHouse
    # started here, the default user on one given by CHATCART_TEST_CLICKHOUSE.
    export CHATCART_TEST_CLICKHOUSE_TLS_USER=$tls_user
    export CHATCART_TEST_CLICKHOUSE_TLS_PASSWORD=$tls_password
    export CHATCART_TEST_SERVICES_DIR=$dir
    export CHATCART_TEST_PROMETHEUS=$SVC_PROMETHEUS
    export CHATCART_TEST_PROMETHEUS_TARGETS=$SVC_PROMETHEUS_TARGETS
    # Fault tests restart or run a second broker with the same binary.
    local bin
    if bin=$(svc_tansu_bin); then
        export CHATCART_TEST_TANSU_BIN=$bin
    fi
    {
        printf 'export CHATCART_TEST_KAFKA=%q\n' "$CHATCART_TEST_KAFKA"
        printf 'export CHATCART_TEST_CLICKHOUSE=%q\n' "$CHATCART_TEST_CLICKHOUSE"
        printf 'export CHATCART_TEST_CLICKHOUSE_TLS=%q\n' "$CHATCART_TEST_CLICKHOUSE_TLS"
        printf 'export CHATCART_TEST_KAFKA_TLS=%q\n' "$CHATCART_TEST_KAFKA_TLS"
        printf 'export CHATCART_TEST_KAFKA_SASL=%q\n' "$CHATCART_TEST_KAFKA_SASL"
        for var in CHATCART_TEST_SCRAM_{512,256}_{USER,PASSWORD}; do
            printf 'export %s=%q\n' "$var" "${!var}"
        done
        printf 'export CHATCART_TEST_TLS_DIR=%q\n' "$CHATCART_TEST_TLS_DIR"
        printf 'export CHATCART_TEST_CLICKHOUSE_TLS_USER=%q\n' "$CHATCART_TEST_CLICKHOUSE_TLS_USER"
        printf 'export CHATCART_TEST_CLICKHOUSE_TLS_PASSWORD=%q\n' "$CHATCART_TEST_CLICKHOUSE_TLS_PASSWORD"
        printf 'export CHATCART_TEST_SERVICES_DIR=%q\n' "$CHATCART_TEST_SERVICES_DIR"
        printf 'export CHATCART_TEST_PROMETHEUS=%q\n' "$CHATCART_TEST_PROMETHEUS"
        printf 'export CHATCART_TEST_PROMETHEUS_TARGETS=%q\n' "$CHATCART_TEST_PROMETHEUS_TARGETS"
        if [[ -n ${CHATCART_TEST_TANSU_BIN:-} ]]; then
            printf 'export CHATCART_TEST_TANSU_BIN=%q\n' "$CHATCART_TEST_TANSU_BIN"
        fi
    } >"$dir/env"
}

# svc_stop DIR: stops what svc_start started there; safe to call twice or on
# a half-started folder.
svc_stop() {
    local dir=$1 name pid
    if [[ -s $dir/watchdog.pid ]]; then
        pid=$(<"$dir/watchdog.pid")
        if [[ $pid != "$$" ]]; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
        rm -f "$dir/watchdog.pid"
    fi
    for name in prometheus tls tansu-sasl tansu-tls tansu clickhouse; do
        if [[ -s $dir/$name/pid ]]; then
            svc_say "stopping $name (pid $(<"$dir/$name/pid"))"
            svc_kill "$dir/$name/pid"
        fi
    done
}

# svc_watchdog PID DIR
# The services run in sessions of their own, so nothing that kills the
# caller's process group (a CI timeout, kill -9 of run.sh) reaches them. This
# watcher, also in its own session, stops them once PID is gone. DIR must be
# the caller's own temporary folder: it is removed whole.
svc_watchdog() {
    local owner=$1 dir=$2
    # shellcheck disable=SC2016 # expanded by the inner bash
    setsid bash -c '
        source "$1"
        while kill -0 "$2" 2>/dev/null; do sleep 1; done
        svc_stop "$3"
        if [[ ${CHATCART_TEST_KEEP:-0} != 1 ]]; then rm -rf "$3"; fi
    ' bash "${BASH_SOURCE[0]}" "$owner" "$dir" </dev/null >/dev/null 2>&1 &
    printf '%s\n' "$!" >"$dir/watchdog.pid"
}

# svc_clear DIR: removes what svc_start put there and DIR itself if that
# leaves it empty. Not rm -rf DIR: the folder comes from the environment and
# may hold other things.
svc_clear() {
    local dir=$1
    rm -rf "$dir/tansu" "$dir/clickhouse" "$dir/prometheus" "$dir/env" "$dir/watchdog.pid"
    rmdir "$dir" 2>/dev/null || true
}

svc_running() {
    local dir=$1 name
    for name in tansu clickhouse; do
        if [[ -s $dir/$name/pid ]] && svc_alive "$(<"$dir/$name/pid")"; then
            return 0
        fi
    done
    return 1
}

svc_main() {
    local dir=${CHATCART_TEST_SERVICES_DIR:-/tmp/chatcart-services}
    case ${1:-} in
    start)
        if svc_running "$dir"; then
            svc_say "services are already running in $dir"
            cat "$dir/env"
            return 0
        fi
        svc_clear "$dir"
        # Do not leave the broker running if ClickHouse then fails.
        # shellcheck disable=SC2064 # the folder is fixed now
        trap "svc_stop $(printf '%q' "$dir")" EXIT
        svc_start "$dir"
        trap - EXIT
        svc_say "started; stop them with: bash ${BASH_SOURCE[0]} stop"
        cat "$dir/env"
        ;;
    clickhouse-start)
        # A ClickHouse of its own in folder $2 (started again if it was
        # there before); prints its URL.
        [[ -n ${2:-} ]] || svc_die "usage: $0 clickhouse-start DIR"
        svc_ensure_clickhouse
        if [[ -s $2/clickhouse/config.xml ]]; then
            svc_restart_clickhouse "$2"
        else
            svc_start_clickhouse "$2"
        fi
        printf '%s\n' "$SVC_CLICKHOUSE"
        ;;
    clickhouse-stop)
        [[ -n ${2:-} ]] || svc_die "usage: $0 clickhouse-stop DIR"
        svc_kill "$2/clickhouse/pid"
        ;;
    env)
        [[ -s $dir/env ]] || svc_die "nothing started in $dir"
        cat "$dir/env"
        ;;
    status)
        local name
        for name in tansu clickhouse; do
            if [[ -s $dir/$name/pid ]] && svc_alive "$(<"$dir/$name/pid")"; then
                printf '%s: running, pid %s, port %s\n' "$name" "$(<"$dir/$name/pid")" "$(<"$dir/$name/port")"
            else
                printf '%s: not running\n' "$name"
            fi
        done
        ;;
    stop)
        svc_stop "$dir"
        if [[ ${CHATCART_TEST_KEEP:-0} == 1 ]]; then
            svc_say "keeping $dir"
        else
            svc_clear "$dir"
        fi
        ;;
    *)
        printf 'usage: %s start|env|status|stop\n' "$0" >&2
        return 2
        ;;
    esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    svc_main "$@"
fi
