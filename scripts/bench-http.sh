#!/usr/bin/env bash
# bench-http: GET /api/v1/healthz against GET /api/v1/me (one valid ES256
# token) with wrk, on one running gymbro binary in development mode (embedded
# defaults, the Auth emulator, no rate limit), and the ratio of the two.
#
#   scripts/bench-http.sh [binary]        (make bench-http builds it first)
#
# Environment: DURATION (wrk -d per run, default 5s), THREADS (-t, 2),
# CONNS (-c, 50), ROUNDS (healthz/me pairs, alternating, default 5),
# GYMBRO_LOG_FORMAT etc. pass through to the service.
# FASTAPI=1 also runs the seed's own stack (bench/fastapi/app.py: FastAPI +
# PyJWT + uvicorn with uvloop, one worker) on the same token in each round
# and prints GymBro's /me over FastAPI's; it needs python3 with fastapi, jwt,
# uvicorn and uvloop (Debian 12: apt-get install python3-fastapi python3-jwt
# python3-uvicorn python3-uvloop).
# Needs wrk, curl and jq. The service runs in a temporary data directory on
# a free loopback port and is stopped on exit, whatever happens.
set -euo pipefail

BIN=${1:-bin/gymbro}
DURATION=${DURATION:-5s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-50}
ROUNDS=${ROUNDS:-5}
for tool in wrk curl jq; do
	command -v "$tool" >/dev/null || { echo "bench-http: $tool is missing" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "bench-http: $BIN is not an executable (make build)" >&2; exit 1; }

FASTAPI=${FASTAPI:-0}
PYTHON=${PYTHON:-python3}
if [ "$FASTAPI" = 1 ]; then
	"$PYTHON" -c 'import fastapi, jwt, uvicorn, uvloop' 2>/dev/null ||
		{ echo "bench-http: FASTAPI=1 needs $PYTHON with fastapi, jwt, uvicorn and uvloop (set PYTHON=/usr/bin/python3 for Debian's)" >&2; exit 1; }
fi

DIR=$(mktemp -d)
PID=""
PYPID=""
stop() {
	local p=$1
	if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
		kill "$p" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	fi
}
cleanup() {
	stop "$PID"
	stop "$PYPID"
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

# A free port: bind :0 and read back what the kernel picked.
freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 10000))
}
PORT=$(freeport)
B=http://127.0.0.1:$PORT

# ready URL PID NAME LOG waits until URL answers, or fails if PID exits.
ready() {
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || { echo "bench-http: $3 exited:" >&2; tail -20 "$4" >&2; exit 1; }
		sleep 0.1
	done
}

GYMBRO_HTTP_ADDR=127.0.0.1:$PORT GYMBRO_DATA_DIR=$DIR GYMBRO_RATE_LIMIT=0 \
	"$BIN" serve >"$DIR/service.log" 2>&1 &
PID=$!
ready "$B/api/v1/healthz" "$PID" "the service" "$DIR/service.log"

# The token: the development operator signs in on the emulator (README tour).
CFG=$(curl -fsS "$B/api/v1/console/config")
ANON=$(jq -r .anon_key <<<"$CFG")
LOGIN=$(jq -c '{email: .dev_operator.email, password: .dev_operator.password}' <<<"$CFG")
TOKEN=$(curl -fsS -X POST "$B/auth/v1/token?grant_type=password" -H "apikey: $ANON" \
	-H 'Content-Type: application/json' -d "$LOGIN" | jq -r .access_token)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || { echo "bench-http: no token from the emulator" >&2; exit 1; }
curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$B/api/v1/me"

if [ "$FASTAPI" = 1 ]; then
	PYPORT=$(freeport)
	P=http://127.0.0.1:$PYPORT
	# Its access log stays on, as GymBro's does (uvicorn's default).
	GYMBRO_ISSUER=$B/auth/v1 "$PYTHON" -m uvicorn app:app --app-dir bench/fastapi --host 127.0.0.1 \
		--port "$PYPORT" --loop uvloop --workers 1 >"$DIR/fastapi.log" 2>&1 &
	PYPID=$!
	ready "$P/api/v1/healthz" "$PYPID" "the FastAPI app" "$DIR/fastapi.log"
	curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$P/api/v1/me" ||
		{ echo "bench-http: the FastAPI app refused the token:" >&2; tail -5 "$DIR/fastapi.log" >&2; exit 1; }
fi

# rps runs wrk on a path and prints its requests/s.
rps() {
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "$@" | awk '/^Requests\/sec:/ {print $2}'
}
echo "bench-http: wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS alternating rounds, pid $PID on $B"
rps -d2s "$B/api/v1/healthz" >/dev/null # warm-up
rps -d2s -H "Authorization: Bearer $TOKEN" "$B/api/v1/me" >/dev/null
[ "$FASTAPI" = 1 ] && rps -d2s -H "Authorization: Bearer $TOKEN" "$P/api/v1/me" >/dev/null
median() {
	sort -n | awk '{r[NR] = $1} END {printf "%.2f", (NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2)}'
}
# Alternating short rounds: on a shared machine the load changes from one
# run to the next, and each pair sees about the same.
RATIOS=()
FACTORS=()
for i in $(seq "$ROUNDS"); do
	H=$(rps "$B/api/v1/healthz")
	M=$(rps -H "Authorization: Bearer $TOKEN" "$B/api/v1/me")
	R=$(awk -v m="$M" -v h="$H" 'BEGIN {printf "%.2f", m / h}')
	RATIOS+=("$R")
	line=$(printf 'round %d: healthz %8.0f req/s   me %8.0f req/s   me/healthz %s' "$i" "$H" "$M" "$R")
	if [ "$FASTAPI" = 1 ]; then
		F=$(rps -H "Authorization: Bearer $TOKEN" "$P/api/v1/me")
		X=$(awk -v m="$M" -v f="$F" 'BEGIN {printf "%.2f", m / f}')
		FACTORS+=("$X")
		line+=$(printf '   fastapi me %7.0f req/s   me/fastapi %s' "$F" "$X")
	fi
	echo "$line"
done
LOAD=$(cut -d' ' -f1 /proc/loadavg)
echo "median me/healthz over $ROUNDS rounds: $(printf '%s\n' "${RATIOS[@]}" | median) (load average $LOAD)"
if [ "$FASTAPI" = 1 ]; then
	echo "median me/fastapi-me over $ROUNDS rounds: $(printf '%s\n' "${FACTORS[@]}" | median)x"
fi
