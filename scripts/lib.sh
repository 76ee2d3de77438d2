# shellcheck shell=bash
# lib.sh: what the load scripts share, sourced after `set -euo pipefail`:
# a temporary directory DIR and the processes started for the run (PIDS),
# stopped and removed on exit, after the caller's on_exit if it defines
# one; the two binaries, built into DIR unless GYMBRO_BIN and LOAD_BIN
# name prebuilt ones; and freeport, a free loopback port.

DIR=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if declare -F on_exit >/dev/null; then on_exit; fi
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

GYMBRO_BIN=${GYMBRO_BIN:-}
LOAD_BIN=${LOAD_BIN:-}
if [ -z "$GYMBRO_BIN" ]; then GYMBRO_BIN=$DIR/gymbro; CGO_ENABLED=0 go build -o "$GYMBRO_BIN" ./cmd/gymbro; fi
if [ -z "$LOAD_BIN" ]; then LOAD_BIN=$DIR/gymbro-load; go build -o "$LOAD_BIN" ./cmd/gymbro-load; fi

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
