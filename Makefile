# GymBro API. `make run` starts the service on embedded defaults; `make test`
# runs the whole suite (what CI runs).

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/gymbro
# Fuzz time per target inside `make test`; raise it for a real fuzzing session.
FUZZTIME ?= 10s
# How long Go may minimise each new input the fuzzer finds. Its default,
# 60s, spends a short run's remaining time minimising the first find while
# the progress line reports "0/sec"; a second keeps the run fuzzing.
FUZZMINIMIZETIME ?= 1s

.PHONY: run modules build web console firebase-emulator test test-prom test-go test-fuzz test-web test-e2e test-faults test-redis-failover bench bench-http bench-ttft lint tidy clean

## run: build the console if it is missing, build the binary, then start the service
# The binary is exec'd rather than `go run`: go run exits 1 on Ctrl-C even
# when the service shut down cleanly, and make then reports an error.
# (Make itself still ends by the interrupt, status 130, as it always does
# on Ctrl-C; it prints no error when the service exited 0.) A cold build
# is about 5 CPU-minutes: 2-3 minutes on two idle cores.
run: console modules
	@echo "make: compiling gymbro (first build: 2-3 minutes on two cores, then seconds)..."
	@CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/gymbro
	exec $(BIN) serve

# modules says what a first run is waiting for before Go downloads them.
modules:
	@$(GO) list -m -json github.com/jackc/pgx/v5 2>/dev/null | grep -q '"Dir"' || \
		echo "make: downloading Go modules (first run: a minute or two)..."
	@$(GO) mod download

## build: the binary in bin/, with the console embedded
build: web
	@echo "make: compiling $(BIN) (first build: 2-3 minutes on two cores)..."
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/gymbro

web/node_modules/.package-lock.json: web/package-lock.json
	@echo "make: installing the console's npm packages (first run: under a minute)..."
	cd web && npm ci --no-audit --no-fund

## web: build the console into web/dist
web: web/node_modules/.package-lock.json
	cd web && npm run build

# console builds the console only when it is missing, and never blocks
# `make run`: without npm the service starts and says how to build it.
console:
	@test -f web/dist/index.html || { echo "make: building the console (first run: about 30 s)..."; $(MAKE) --no-print-directory web; } || \
		echo "warning: the console could not be built; the API runs without it (see README)"

## test: the whole suite: vet, Go tests with -race, a short fuzz run, the console's unit tests and the browser test
# Each phase says what it starts; none stays silent for more than a minute
# or two.
test: lint test-go test-fuzz test-prom test-web test-e2e

# test-go prints a line per package as it finishes and, every minute, the
# packages still running (cmd/testprogress over go test -json): go test's
# plain output holds every package back behind the slowest, cmd/gymbro,
# for minutes.
test-go: firebase-emulator
	@echo "make: go test -race ./... (about 10 minutes on two cores; compiling comes first)..."
	$(GO) run ./cmd/testprogress -- $(GO) test -race -count=1 -timeout 10m -json ./...

# firebase-emulator installs the Firebase Auth emulator and JS client that
# the Firebase tests drive (test/firebase, pinned), only when the lockfile is
# newer than the last install (npm ci writes node_modules/.package-lock.json
# last): a reinstall costs about a minute even with npm's cache warm. Without
# npm those tests skip, saying why; with CI set a failed install fails here.
firebase-emulator:
	@test test/firebase/node_modules/.package-lock.json -nt test/firebase/package-lock.json || \
		{ command -v npm >/dev/null && echo "make: installing the Firebase Auth emulator (first run: a minute or two)..." && \
		  cd test/firebase && npm ci; } || \
		{ test -z "$$CI" || { echo "error: the Firebase Auth emulator could not be installed (is npm there?)" >&2; exit 1; }; \
		  echo "warning: the Firebase Auth emulator could not be installed (is npm there?): its tests will skip"; }

# test-prom checks the alert rules and runs their unit tests (Debian's
# prometheus package ships promtool; .ci/run installs it).
test-prom:
	@command -v promtool >/dev/null || { echo "test-prom: promtool is missing (apt-get install prometheus)"; exit 1; }
	promtool check rules deploy/prometheus/alerts.yml
	cd deploy/prometheus && promtool test rules alerts_test.yml

# test-faults cuts PostgreSQL and Redis for 8 s each, twice, under traffic
# (make test runs the same test with 2 s cuts).
test-faults:
	GYMBRO_FAULT_CUT=8s $(GO) test -race -count=1 -run '^TestDependencyCutsLoseNothing$$' -v ./cmd/gymbro

# test-redis-failover kills the Sentinel master six times under traffic (the
# first failover losing writes the replica never got); make test runs it
# once. It starts its own Redis master, replica and sentinels.
test-redis-failover:
	GYMBRO_FAILOVER_ROUNDS=6 $(GO) test -race -count=1 -run '^TestRedisSentinelFailover$$' -v ./cmd/gymbro

# test-pg-ha stops a synchronous PostgreSQL standby (commits hang) and
# promotes one, each for 15 s under traffic (make test runs them with 3 s).
.PHONY: test-pg-ha
test-pg-ha:
	GYMBRO_PG_OUTAGE=15s $(GO) test -race -count=1 -run '^TestPostgres(Promotion|CommitsHang)$$' -v ./cmd/gymbro

test-fuzz:
	@echo "make: fuzzing the token verifier for $(FUZZTIME) (its instrumented build first: a minute or two when cold)..."
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./internal/auth

test-web: web/node_modules/.package-lock.json
	cd web && npm test

test-e2e: build
	bash web/e2e/run.sh $(BIN)

## bench: Go benchmarks (figures go in docs/benchmarks.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

## bench-http: wrk against healthz and /me (one token) on the built binary, and their ratio
# The console is not needed for it, so the binary is built without npm.
bench-http:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/gymbro-bench ./cmd/gymbro
	scripts/bench-http.sh bin/gymbro-bench

## bench-ttft: time to first token through the service vs straight to a fake model, SQLite and PostgreSQL + Redis
# Sequential and at 50 users, with the breakdown of one exchange; BEFORE_BIN=<binary> alternates with another build.
bench-ttft:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/gymbro-bench ./cmd/gymbro
	$(GO) build -o bin/gymbro-load ./cmd/gymbro-load
	GYMBRO_BIN=bin/gymbro-bench LOAD_BIN=bin/gymbro-load scripts/bench-ttft.sh $(STORE)

## lint: gofmt, go vet, and a tidy go.mod
lint:
	@echo "make: lint: gofmt, go vet (type-checks every package: a minute or two when cold), go mod tidy -diff"
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff

tidy:
	$(GO) mod tidy

clean:
	rm -rf bin web/dist/assets web/dist/index.html
