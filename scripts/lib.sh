# shellcheck shell=bash
# lib.sh: what the load scripts share, sourced after `set -euo pipefail`:
# a temporary directory DIR and the processes started for the run (PIDS),
# stopped and removed on exit, after the caller's on_exit if it defines
# one; the PostgreSQL schemas (SCHEMAS, in DATABASE_URL) and Redis key
# prefixes (PREFIXES, in REDIS_URL) the run made, dropped on exit too; the
# two binaries, built into DIR unless GYMBRO_BIN and LOAD_BIN name prebuilt
# ones; and freeport, a free loopback port.

DIR=$(mktemp -d)
PIDS=()
SCHEMAS=()
PREFIXES=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if declare -F on_exit >/dev/null; then on_exit; fi
	for s in "${SCHEMAS[@]}"; do psql -q "${DATABASE_URL%%\?*}" -c "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true; done
	for p in "${PREFIXES[@]}"; do
		redis-cli -u "${REDIS_URL:-redis://127.0.0.1:6379/0}" --scan --pattern "$p*" 2>/dev/null |
			xargs -r -n 500 redis-cli -u "${REDIS_URL:-redis://127.0.0.1:6379/0}" del >/dev/null 2>&1 || true
	done
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

GYMBRO_BIN=${GYMBRO_BIN:-}
LOAD_BIN=${LOAD_BIN:-}
if [ -z "$GYMBRO_BIN" ]; then GYMBRO_BIN=$DIR/gymbro; CGO_ENABLED=0 go build -o "$GYMBRO_BIN" ./cmd/gymbro; fi
if [ -z "$LOAD_BIN" ]; then LOAD_BIN=$DIR/gymbro-load; go build -o "$LOAD_BIN" ./cmd/gymbro-load; fi

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
