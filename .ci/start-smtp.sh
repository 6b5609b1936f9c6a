#!/usr/bin/env bash
# Starts the test SMTP receiver (.ci/smtp_sink.py) on 127.0.0.1 for the e-mail
# channel tests (tests/channel_email.rs). It stores every message it receives
# as one .eml file (plus a .json envelope) under $BI_AGENT_TEST_MAILDIR/new.
# Safe to run again: a receiver that already runs is kept.
#
# Runs as root on Debian 12 (installs python3-aiosmtpd for the system Python
# if it is missing). Progress goes to stderr; stdout carries only the two
# `export` lines, so a caller can do:
#
#     eval "$(.ci/start-smtp.sh)"
#     cargo test --test channel_email -- --include-ignored
#
# A test receiver only: it accepts mail for anyone and delivers nothing.
set -euo pipefail

readonly HOST=127.0.0.1
readonly PORT=2525
readonly MAILDIR=${BI_AGENT_TEST_MAILDIR:-/tmp/bi-agent-mail}
readonly STATE_DIR=${BI_AGENT_TEST_SMTP_STATE:-/tmp/bi-agent-smtp}
readonly PID_FILE=$STATE_DIR/smtp_sink.pid
readonly LOG_FILE=$STATE_DIR/smtp_sink.log
# The system Python, where Debian's python3-aiosmtpd lives: a pyenv `python3`
# earlier on PATH would not see it.
readonly PYTHON=/usr/bin/python3
SINK=$(cd "$(dirname "$0")" && pwd)/smtp_sink.py
readonly SINK

log() { echo "start-smtp: $*" >&2; }

# Whether something accepts TCP connections on HOST:PORT.
port_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

# Whether the receiver this script started (per the pid file) still runs.
sink_running() {
    [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

install_aiosmtpd() {
    if ! "$PYTHON" -c 'import aiosmtpd' 2>/dev/null; then
        log "installing python3-aiosmtpd"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update >&2
        apt-get install -y --no-install-recommends python3-aiosmtpd >&2
    fi
}

start_sink() {
    mkdir -p "$STATE_DIR" "$MAILDIR"
    if sink_running && port_open; then
        log "receiver already running (pid $(cat "$PID_FILE"))"
        return 0
    fi
    if port_open; then
        log "port $HOST:$PORT is taken by another program; stop it or free the port"
        return 1
    fi
    log "starting receiver on $HOST:$PORT (log: $LOG_FILE)"
    # setsid + nohup: the receiver outlives this script and the caller's shell.
    setsid nohup "$PYTHON" "$SINK" "$HOST" "$PORT" "$MAILDIR" >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    for _ in $(seq 1 100); do
        if port_open; then
            return 0
        fi
        if ! sink_running; then
            log "receiver exited; last log lines:"
            tail -n 20 "$LOG_FILE" >&2
            return 1
        fi
        sleep 0.1
    done
    log "receiver did not accept connections within 10 s; see $LOG_FILE"
    return 1
}

install_aiosmtpd
start_sink
log "SMTP receiver on $HOST:$PORT, mail in $MAILDIR/new"
echo "export BI_AGENT_TEST_SMTP_URL=smtp://$HOST:$PORT"
echo "export BI_AGENT_TEST_MAILDIR=$MAILDIR"
