# One image for both processes: `starter serve` (HTTP API) and `worker`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/ ./starter ./worker

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/starter /out/worker /usr/local/bin/
USER nonroot
ENTRYPOINT ["/usr/local/bin/starter"]
CMD ["serve"]
