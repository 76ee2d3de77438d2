#!/usr/bin/env bash
# pooler-load: POST /api/v1/messages throughput through PgBouncer in
# transaction mode (GYMBRO_DATABASE_POOLER=transaction, as behind
# Supabase's pooler on port 6543) against a direct connection to the same
# PostgreSQL: the same scripts/post-load.sh run, in turn, ROUNDS times.
# A third run in each round, a direct connection with the transaction
# setting, tells the cost of the setting (statements parsed anew, the
# schema set per transaction) from PgBouncer's own. PgBouncer runs from this machine's package (run as the postgres
# user when we are root) on a free port in a temporary directory, with as
# many server connections as the service's pool (16), and is stopped on
# exit.
#
#   scripts/pooler-load.sh [ROUNDS] [USERS]   (default 3 rounds, 200 users)
#
# Environment: DURATION (default 30s, each run), DATABASE_URL (default the
# local PostgreSQL, database test, trust authentication).
set -euo pipefail

ROUNDS=${1:-3}
USERS=${2:-200}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable&pool_max_conns=16}

on_exit() {
	if [ -f "${PGB:-}/pgbouncer.pid" ]; then kill "$(cat "$PGB/pgbouncer.pid")" 2>/dev/null || true; fi
}
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
export GYMBRO_BIN LOAD_BIN

hostport=${DATABASE_URL#*@}
hostport=${hostport%%/*}
PGB_PORT=$(freeport)
PGB=$DIR/pgbouncer
mkdir -p "$PGB"
cat >"$PGB/pgbouncer.ini" <<INI
[databases]
* = host=${hostport%:*} port=${hostport#*:}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $PGB/users.txt
pool_mode = transaction
default_pool_size = 16
max_client_conn = 1000
logfile = $PGB/pgbouncer.log
pidfile = $PGB/pgbouncer.pid
INI
user=${DATABASE_URL#*://}
user=${user%%@*}
user=${user%%:*}
echo "\"$user\" \"\"" >"$PGB/users.txt"
RUN=()
if [ "$(id -u)" = 0 ]; then # PgBouncer refuses to run as root
	chmod 0711 "$DIR"
	chown -R postgres "$PGB"
	RUN=(runuser -u postgres --)
fi
"${RUN[@]}" pgbouncer -d "$PGB/pgbouncer.ini"
POOLED_URL=$(echo "$DATABASE_URL" | sed "s#@$hostport/#@127.0.0.1:$PGB_PORT/#")

run() { # name, then post-load.sh's environment
	local name=$1
	shift
	env "$@" "$(dirname "$0")/post-load.sh" postgres "$USERS" >"$DIR/run.out" 2>&1 || { cat "$DIR/run.out"; exit 1; }
	local posts p50 counts
	posts=$(sed -n 's/.*; posts [0-9]* (\([0-9.]*\/s\)).*/\1/p' "$DIR/run.out")
	p50=$(sed -n 's/^post → 202 .*\(p50=[^ ]*\).*/\1/p' "$DIR/run.out")
	counts=$(sed -n 's/^counts *//p' "$DIR/run.out")
	printf '%-10s posts %-9s 202 %-14s %s\n' "$name" "$posts" "$p50" "$counts"
}
echo "== POST throughput: direct, PgBouncer (transaction mode), direct with the transaction setting; $USERS users, ${DURATION:-30s} a run, in turn"
for i in $(seq "$ROUNDS"); do
	run direct DATABASE_URL="$DATABASE_URL"
	run pgbouncer DATABASE_URL="$POOLED_URL" POOLER=transaction
	run direct-tx DATABASE_URL="$DATABASE_URL" POOLER=transaction
done
