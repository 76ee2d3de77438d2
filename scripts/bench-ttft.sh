#!/usr/bin/env bash
# bench-ttft: the time to first token the service adds (issue 25). An
# OpenAI-compatible fake model that answers at once (gymbro-load -mode
# fake-model -chunk-every 0: role chunk, content, finish_reason, usage,
# [DONE], as OpenAI streams them) serves both paths, and gymbro-load -mode
# ttft alternates, pair by pair, a streaming request straight to it with
# what the app does (POST /api/v1/messages, then GET its events URL), each
# until its first content. For each store it runs one user (sequential,
# EXCHANGES pairs, back to back) and USERS users at once (CONC_EXCHANGES
# pairs, each user thinking about THINK between its pairs), and
# prints p50/p90/p99 of both paths and of the time added; with TRACE=1
# (the default) the sequential run also prints where the added time goes,
# from the service's own timestamps (GYMBRO_TRACE_TTFT). Everything runs on
# free loopback ports in a temporary directory and is stopped on exit; the
# PostgreSQL run gets a schema and the Redis run a key prefix of its own,
# both removed at the end.
#
#   scripts/bench-ttft.sh [sqlite|postgres|all]   (default all)
#
# Environment: EXCHANGES (1000), USERS (50; 0 skips that run), CONC_EXCHANGES (2000), THINK
# (1s), TRACE
# (1; 0 for none), ROUNDS (1), BEFORE_BIN (another gymbro binary, run in
# every round right after GYMBRO_BIN on the same store, for a before/after
# comparison; it is traced only if it knows GYMBRO_TRACE_TTFT), DATABASE_URL
# (default the local PostgreSQL, database test), REDIS_URL (default the
# local Redis), GYMBRO_BIN and LOAD_BIN (prebuilt binaries; default: built
# into the temporary directory).
set -euo pipefail

WHICH=${1:-all}
EXCHANGES=${EXCHANGES:-1000}
USERS=${USERS:-50}
CONC_EXCHANGES=${CONC_EXCHANGES:-2000}
THINK=${THINK:-1s}
TRACE=${TRACE:-1}
ROUNDS=${ROUNDS:-1}
BEFORE_BIN=${BEFORE_BIN:-}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

MODEL_PORT=$(freeport)
"$LOAD_BIN" -mode fake-model -listen "127.0.0.1:$MODEL_PORT" -chunk-every 0 -chunks 3 -duration 4h 2>"$DIR/model.log" &
PIDS+=($!)
for _ in $(seq 100); do
	curl -fsS -o /dev/null -X POST -d '{}' "http://127.0.0.1:$MODEL_PORT/v1/chat/completions" 2>/dev/null && break
	sleep 0.1
done

# serve BIN STORE NAME: starts BIN on a fresh data directory (and a fresh
# schema and prefix for postgres) and sets PORT, DATA and SERVICE.
serve() {
	local bin=$1 store=$2 name=$3
	PORT=$(freeport)
	DATA=$DIR/data-$name
	local env=()
	if [ "$store" = postgres ]; then
		local schema=gymbro_ttft_${name//-/_}_$$
		SCHEMAS+=("$schema")
		PREFIXES+=("gymbro_ttft_${name}_$$:")
		env=(GYMBRO_DATABASE_URL="$DATABASE_URL" GYMBRO_DATABASE_SCHEMA="$schema" GYMBRO_REDIS_URL="$REDIS_URL" GYMBRO_REDIS_PREFIX="gymbro_ttft_${name}_$$:")
	fi
	if [ "$TRACE" = 1 ]; then env+=(GYMBRO_TRACE_TTFT=true); fi
	env GYMBRO_HTTP_ADDR=127.0.0.1:$PORT GYMBRO_DATA_DIR="$DATA" GYMBRO_RATE_LIMIT=0 GYMBRO_LOG_LEVEL=warn "${env[@]}" \
		GYMBRO_AI_PROVIDER=openai OPENAI_API_KEY=sk-fake-for-load OPENAI_BASE_URL=http://127.0.0.1:$MODEL_PORT/v1 \
		GYMBRO_AI_MAX_CONCURRENT=4096 GYMBRO_MAX_STREAMS_PER_USER=1000 \
		"$bin" serve >"$DIR/service-$name.log" 2>&1 &
	SERVICE=$!
	PIDS+=("$SERVICE")
	for _ in $(seq 200); do
		curl -fsS -o /dev/null "http://127.0.0.1:$PORT/api/v1/healthz" 2>/dev/null && return 0
		kill -0 "$SERVICE" 2>/dev/null || break
		sleep 0.1
	done
	echo "the service ($bin, $store) did not start:"; tail -5 "$DIR/service-$name.log"; exit 1
}

# measure BIN STORE LABEL: the sequential and the concurrent run.
measure() {
	local bin=$1 store=$2 label=$3
	local name="${label}-${store}-r$round"
	serve "$bin" "$store" "$name"
	local trace=()
	if [ "$TRACE" = 1 ] && [ "$(curl -sS -o /dev/null -w "%{http_code}" "http://127.0.0.1:$PORT/debug/ttft/00000000-0000-0000-0000-000000000000" 2>/dev/null)" = 401 ]; then
		trace=(-trace)
	fi
	echo "== $label, $store, round $round: 1 user, $EXCHANGES pairs (sequential)"
	"$LOAD_BIN" -url "http://127.0.0.1:$PORT" -data-dir "$DATA" -mode ttft -model-url "http://127.0.0.1:$MODEL_PORT/v1" \
		-users 1 -exchanges "$EXCHANGES" "${trace[@]}" -duration 30m -progress 1h 2>"$DIR/load.err" | grep -v '^\(post →\|delta at\|mode \)' ||
		{ tail -5 "$DIR/load.err"; exit 1; }
	if [ "$USERS" -gt 0 ]; then
		echo "== $label, $store, round $round: $USERS users at once, $CONC_EXCHANGES pairs"
		"$LOAD_BIN" -url "http://127.0.0.1:$PORT" -data-dir "$DATA" -mode ttft -model-url "http://127.0.0.1:$MODEL_PORT/v1" \
			-users "$USERS" -source-addrs 8 -exchanges "$CONC_EXCHANGES" -think "$THINK" "${trace[@]}" -duration 30m -progress 1h 2>"$DIR/load.err" | grep -v '^\(post →\|delta at\|mode \)' ||
			{ tail -5 "$DIR/load.err"; exit 1; }
	fi
	errors=$(grep -ac 'level=ERROR' "$DIR/service-$name.log" || true)
	[ "$errors" = 0 ] || { echo "service errors: $errors (first lines)"; grep -a 'level=ERROR' "$DIR/service-$name.log" | cut -c1-300 | head -3; }
	kill "$SERVICE" && wait "$SERVICE" 2>/dev/null || true
}

case $WHICH in
all) STORES=(sqlite postgres) ;;
sqlite | postgres) STORES=("$WHICH") ;;
*) echo "usage: $0 [sqlite|postgres|all]"; exit 2 ;;
esac
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
for round in $(seq "$ROUNDS"); do
	for store in "${STORES[@]}"; do
		measure "$GYMBRO_BIN" "$store" after
		if [ -n "$BEFORE_BIN" ]; then measure "$BEFORE_BIN" "$store" before; fi
	done
done
