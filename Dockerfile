# syntax=docker/dockerfile:1
#
# GymBro API image: one static binary with the developer console embedded,
# on distroless (CA certificates and tzdata, no shell, no package manager),
# running as an unprivileged user. Build from the repository root:
#
#   docker build --build-arg VERSION=$(git describe --always) -t gymbro-api .
#
# There is no HEALTHCHECK: distroless has no shell or curl to run one. Let
# the orchestrator probe the service over HTTP instead: liveness on
# GET /api/v1/healthz (no dependencies), readiness on GET /api/v1/readyz
# (503 while PostgreSQL, Redis or the issuers' JWKS are unreachable).
# deploy/README.md has the details.

ARG NODE_VERSION=22
ARG GO_VERSION=1.26

# --- the console (Vue 3 + Vite) into web/dist ---
FROM node:${NODE_VERSION}-bookworm-slim AS web
WORKDIR /src/web
# The lockfile alone first, so the npm ci layer is reused until it changes.
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# --- the Go binary, static (CGO_ENABLED=0: the SQLite driver is pure Go) ---
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
COPY --from=web /src/web/dist ./web/dist
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/gymbro ./cmd/gymbro \
 && test -f web/dist/index.html \
 && install -d -m 0700 /out/data

# --- the runtime: nothing but the binary ---
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gymbro /usr/local/bin/gymbro
# The data directory (SQLite and the development Auth emulator's keys) must
# be writable by the non-root user, and by it alone: the build made it 0700
# (COPY keeps the mode), since the databases hold conversations and tokens;
# the service writes its files 0600 too. A fleet keeps its state in
# PostgreSQL.
COPY --from=build --chown=65532:65532 /out/data /data
ENV GYMBRO_ENV=production \
    GYMBRO_HTTP_ADDR=0.0.0.0:8080 \
    GYMBRO_DATA_DIR=/data \
    GYMBRO_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gymbro"]
CMD ["serve"]
