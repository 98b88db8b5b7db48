# One image for both processes: `starter serve` (HTTP API) and `worker`
# (and `starter migrate`, the one-shot job that precedes them).
#
# Runtime base: alpine, not distroless. docker-compose.yml health-checks the
# API (GET /readyz) and the workers (GET /metrics) from inside their
# containers, which needs an HTTP client in the image; distroless has none
# (no shell, no wget, no curl) and neither binary has a health-check mode of
# its own. Alpine's busybox brings wget for about 8 MB, the binaries are
# static (CGO_ENABLED=0) so musl does not matter, and ca-certificates is
# installed for S3 and Temporal endpoints over TLS. debian:bookworm-slim
# would be ten times larger and still lacks wget without apt-get. The
# processes run as uid/gid 65532, the uid of distroless's `nonroot`, so
# volumes and policies written for the former image keep working.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/ ./starter ./worker

FROM alpine:3.22
RUN apk add --no-cache ca-certificates tzdata \
 && addgroup -S -g 65532 nonroot \
 && adduser -S -D -H -u 65532 -G nonroot -s /sbin/nologin nonroot
COPY --from=build /out/starter /out/worker /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/starter"]
CMD ["serve"]
