#!/usr/bin/env bash
# Starts a real Prometheus Alertmanager on 127.0.0.1 for the webhook format
# test (tests/alertmanager.rs): the agent posts its alerts to
# /api/v2/alerts, the test reads them back. Safe to run again: an
# Alertmanager this script started and that still runs is kept.
#
# Runs as root on Debian 12 (installs prometheus-alertmanager if it is
# missing; Debian's package also enables a system service on :9093, which
# this script stops so the port is ours). Progress goes to stderr; stdout
# carries only the `export` line, so a caller can do:
#
#     eval "$(.ci/start-alertmanager.sh)"
#     cargo test --test alertmanager -- --include-ignored
set -euo pipefail

readonly HOST=127.0.0.1
readonly PORT=9093
readonly STATE_DIR=${BI_AGENT_TEST_ALERTMANAGER_STATE:-/tmp/bi-agent-alertmanager}
readonly PID_FILE=$STATE_DIR/alertmanager.pid
readonly LOG_FILE=$STATE_DIR/alertmanager.log
readonly BINARY=/usr/bin/prometheus-alertmanager

log() { echo "start-alertmanager: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

ours_running() {
    [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

install() {
    if [[ ! -x $BINARY ]]; then
        log "installing prometheus-alertmanager"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update >&2
        apt-get install -y --no-install-recommends prometheus-alertmanager >&2
    fi
    # The package's own service (started where systemd runs) would hold the port.
    if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus-alertmanager 2>/dev/null; then
        systemctl stop prometheus-alertmanager >&2 || true
    fi
}

start() {
    mkdir -p "$STATE_DIR/data"
    if ours_running && port_open; then
        log "already running (pid $(cat "$PID_FILE"))"
        return 0
    fi
    if port_open; then
        log "port $HOST:$PORT is taken by another program; stop it or free the port"
        return 1
    fi
    # Every alert goes to a receiver that does nothing: the test reads the
    # alerts through the API, not through notifications.
    cat >"$STATE_DIR/alertmanager.yml" <<'YAML'
route:
  receiver: blackhole
receivers:
  - name: blackhole
YAML
    log "starting on $HOST:$PORT (log: $LOG_FILE)"
    setsid nohup "$BINARY" --config.file="$STATE_DIR/alertmanager.yml" --storage.path="$STATE_DIR/data" \
        --web.listen-address="$HOST:$PORT" --cluster.listen-address= >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    for _ in $(seq 1 100); do
        if port_open; then
            return 0
        fi
        if ! ours_running; then
            log "Alertmanager exited; last log lines:"
            tail -n 20 "$LOG_FILE" >&2
            return 1
        fi
        sleep 0.1
    done
    log "Alertmanager did not accept connections within 10 s; see $LOG_FILE"
    return 1
}

install
start
log "Alertmanager on $HOST:$PORT"
echo "export BI_AGENT_TEST_ALERTMANAGER_URL=http://$HOST:$PORT"
