#!/usr/bin/env bash
# idle-streams: hold STREAMS idle SSE streams on running messages against one
# gymbro binary and report its RSS per stream, heartbeat lateness and chunk
# fan-out (gymbro-load -mode idle). The messages are kept running for
# minutes by gymbro-load's fake model (one chunk every CHUNK_EVERY), so the
# streams see heartbeats (GYMBRO_SSE_HEARTBEAT, default 15 s) as well as
# chunks. Everything runs on free loopback ports in a temporary directory
# and is stopped on exit.
#
#   scripts/idle-streams.sh STREAMS [USERS]   (default 20000 streams, 100 users)
#
# Environment: DURATION (load phase, default 120s), CHUNK_EVERY (5s),
# LOADERS (gymbro-load processes sharing the streams, default 1: one process
# holds at most its RLIMIT_NOFILE hard limit of sockets), GYMBRO_BIN and
# LOAD_BIN (prebuilt binaries; default: built into the temporary directory).
set -euo pipefail

STREAMS=${1:-20000}
USERS=${2:-100}
DURATION=${DURATION:-120s}
CHUNK_EVERY=${CHUNK_EVERY:-5s}
LOADERS=${LOADERS:-1}
HEARTBEAT=${GYMBRO_SSE_HEARTBEAT:-15s}

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
MODEL_PORT=$(freeport)
PORT=$(freeport)

"$LOAD_BIN" -mode fake-model -listen "127.0.0.1:$MODEL_PORT" -chunk-every "$CHUNK_EVERY" -chunks 100000 -duration 2h 2>"$DIR/model.log" &
PIDS+=($!)

GYMBRO_HTTP_ADDR=127.0.0.1:$PORT GYMBRO_DATA_DIR=$DIR/data GYMBRO_RATE_LIMIT=0 \
	GYMBRO_AI_PROVIDER=openai OPENAI_API_KEY=sk-fake-for-load OPENAI_BASE_URL=http://127.0.0.1:$MODEL_PORT/v1 \
	GYMBRO_AI_TOTAL_TIMEOUT=1h GYMBRO_AI_IDLE_TIMEOUT=10m GYMBRO_AI_MAX_CONCURRENT=100000 \
	GYMBRO_MAX_STREAMS_PER_USER=100000 GYMBRO_MAX_RUNNING_PER_USER=10 GYMBRO_SSE_HEARTBEAT=$HEARTBEAT \
	"$GYMBRO_BIN" serve >"$DIR/service.log" 2>&1 &
SERVICE=$!
PIDS+=("$SERVICE")
for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://127.0.0.1:$PORT/api/v1/healthz" 2>/dev/null && break
	sleep 0.1
done
# Only this line of the start-up log: in development it also prints the
# emulator's keys and the operator's password.
echo "service pid $SERVICE on http://127.0.0.1:$PORT: $(grep -a 'open-file limit' "$DIR/service.log" || echo 'no open-file limit line')"

per=$((STREAMS / LOADERS))
LOADS=()
for i in $(seq "$LOADERS"); do
	"$LOAD_BIN" -url "http://127.0.0.1:$PORT" -data-dir "$DIR/data" -mode idle -users $((USERS / LOADERS)) \
		-streams "$per" -pid "$SERVICE" -heartbeat "$HEARTBEAT" -duration "$DURATION" -progress 10s \
		-idle-text "Hold this stream open please" >"$DIR/load$i.out" 2>"$DIR/load$i.err" &
	LOADS+=($!)
done
for p in "${LOADS[@]}"; do wait "$p" || true; done
for i in $(seq "$LOADERS"); do
	echo "== gymbro-load $i (stderr tail)"; tail -8 "$DIR/load$i.err"
	echo "== gymbro-load $i"; cat "$DIR/load$i.out"
done
echo "== service errors (first lines)"; grep -a 'level=ERROR' "$DIR/service.log" | cut -c1-300 | head -5 || true
