#!/usr/bin/env bash
# Starts PostgreSQL 15 and MariaDB on 127.0.0.1 for the SQL integration tests
# (tests/sql_sources.rs), creating the `bi_agent` user and the `bi_agent_test`
# database in each. Safe to run again: whatever exists or runs already is kept.
#
# Runs as root on Debian 12. Progress goes to stderr; stdout carries only the
# two `export` lines, so a caller can do:
#
#     eval "$(.ci/start-databases.sh)"
#     cargo test --test sql_sources -- --include-ignored
#
# Test credentials only: never point this at a machine that holds real data.
set -euo pipefail

readonly PG_VERSION=15
readonly PG_CLUSTER=main
readonly PG_PORT=5432
readonly MY_PORT=3306
readonly DB_USER=bi_agent
readonly DB_PASSWORD=bi_agent
readonly DB_NAME=bi_agent_test

log() { echo "start-databases: $*" >&2; }

# Runs a command with its stdout sent to stderr, keeping our stdout clean.
quiet() { "$@" >&2; }

# Waits up to 60 s for a command to succeed.
wait_for() {
    local what=$1
    shift
    for _ in $(seq 1 120); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    log "$what did not come up within 60 s"
    return 1
}

install_missing() {
    local packages=()
    [[ -x /usr/lib/postgresql/$PG_VERSION/bin/postgres ]] || packages+=(postgresql)
    command -v mariadbd >/dev/null 2>&1 || packages+=(mariadb-server)
    if ((${#packages[@]} > 0)); then
        log "installing ${packages[*]}"
        export DEBIAN_FRONTEND=noninteractive
        quiet apt-get update
        quiet apt-get install -y --no-install-recommends "${packages[@]}"
    fi
}

start_postgres() {
    if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$PG_VERSION $PG_CLUSTER"; then
        log "creating PostgreSQL cluster $PG_VERSION/$PG_CLUSTER"
        quiet pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT"
    fi
    if ! pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1; then
        log "starting PostgreSQL $PG_VERSION"
        quiet pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
    fi
    wait_for "PostgreSQL" pg_isready -q -h 127.0.0.1 -p "$PG_PORT"

    local psql=(runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qAt)
    if [[ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" ]]; then
        quiet "${psql[@]}" -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD'"
    else
        quiet "${psql[@]}" -c "ALTER ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD'"
    fi
    if [[ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]]; then
        quiet "${psql[@]}" -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
    fi
    wait_for "PostgreSQL login as $DB_USER" env PGPASSWORD="$DB_PASSWORD" \
        psql -h 127.0.0.1 -p "$PG_PORT" -U "$DB_USER" -d "$DB_NAME" -qAt -c "SELECT 1"
}

start_mariadb() {
    if ! mariadb-admin --protocol=socket -uroot ping >/dev/null 2>&1; then
        log "starting MariaDB"
        # The init script works without systemd (containers); if it is absent
        # or fails, run the server in the background ourselves.
        if ! quiet service mariadb start; then
            log "service mariadb start failed; starting mysqld_safe directly"
            install -d -o mysql -g mysql /run/mysqld
            nohup mysqld_safe --bind-address=127.0.0.1 --port="$MY_PORT" >/dev/null 2>&1 &
        fi
    fi
    wait_for "MariaDB" mariadb-admin --protocol=socket -uroot ping

    # Root logs in through the Unix socket (Debian's unix_socket auth).
    quiet mariadb --protocol=socket -uroot <<SQL
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$DB_USER'@'%';
FLUSH PRIVILEGES;
SQL
    wait_for "MariaDB login as $DB_USER" mariadb-admin --protocol=tcp -h 127.0.0.1 -P "$MY_PORT" \
        -u"$DB_USER" -p"$DB_PASSWORD" ping
}

install_missing
start_postgres
start_mariadb
log "PostgreSQL on 127.0.0.1:$PG_PORT and MariaDB on 127.0.0.1:$MY_PORT are ready"
echo "export BI_AGENT_TEST_POSTGRES_URL=postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME"
echo "export BI_AGENT_TEST_MYSQL_URL=mysql://$DB_USER:$DB_PASSWORD@127.0.0.1:$MY_PORT/$DB_NAME"
