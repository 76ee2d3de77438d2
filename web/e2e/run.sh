#!/usr/bin/env bash
# Runs the console's browser test against a real gymbro binary:
#   web/e2e/run.sh BIN
# Starts `BIN serve` on a free loopback port with a fresh data dir in
# development mode, waits for /api/v1/healthz, runs console.test.mjs, always
# stops the server, keeps its log in web/e2e/artifacts/server.log, and exits
# with the test's status. Needs web/node_modules (npm ci in web/) and Chromium.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 path/to/gymbro" >&2
  exit 2
fi
if [[ ! -f "$1" || ! -x "$1" ]]; then
  echo "e2e: $1 is not an executable (build it with 'make build')" >&2
  exit 2
fi
BIN=$(realpath "$1")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ARTIFACTS="$HERE/artifacts"
mkdir -p "$ARTIFACTS"

if [[ ! -d "$HERE/../node_modules/playwright-core" ]]; then
  echo "e2e: web/node_modules is missing: run 'npm ci' in web/" >&2
  exit 2
fi
CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
if [[ ! -x "$CHROMIUM_PATH" ]]; then
  echo "e2e: no browser at $CHROMIUM_PATH (apt-get install -y chromium, or set CHROMIUM_PATH)" >&2
  exit 2
fi

PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
ADDR="127.0.0.1:$PORT"
URL="http://$ADDR"
DATA=$(mktemp -d "${TMPDIR:-/tmp}/gymbro-e2e.XXXXXX")
LOG="$DATA/server.log"
SERVER=""

cleanup() {
  if [[ -n "$SERVER" ]] && kill -0 "$SERVER" 2>/dev/null; then
    kill "$SERVER" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
  fi
  cp "$LOG" "$ARTIFACTS/server.log" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT INT TERM

echo "e2e: starting $BIN serve on $URL (data dir $DATA)"
GYMBRO_ENV=development \
GYMBRO_DATA_DIR="$DATA/data" \
GYMBRO_HTTP_ADDR="$ADDR" \
  "$BIN" serve >"$LOG" 2>&1 </dev/null &
SERVER=$!

# Poll healthz with a deadline; give up early if the server died.
deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null "$URL/api/v1/healthz" 2>/dev/null; do
  if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "e2e: the server exited during start-up; its log:" >&2
    tail -n 50 "$LOG" >&2 || true
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    echo "e2e: $URL/api/v1/healthz not ready after 60s; server log:" >&2
    tail -n 50 "$LOG" >&2 || true
    exit 1
  fi
  sleep 0.2
done
echo "e2e: server ready"

status=0
GYMBRO_E2E_URL="$URL" CHROMIUM_PATH="$CHROMIUM_PATH" \
  node --test --test-reporter=spec "$HERE/console.test.mjs" || status=$?
echo "e2e: test exited $status; artifacts in $ARTIFACTS"
exit "$status"
