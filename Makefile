# Payment Management Service. `make dev` runs the whole stack in one process;
# `make test` runs every test (needs the local MySQL/MariaDB, started if down).

GO        ?= go
PKGS      := ./...
BIN       := bin

.PHONY: dev test test-race bench lint build migrate clean

dev: ## run embedded Temporal + UI (:8233), worker and HTTP API (:8080)
	$(GO) run ./starter dev

test: ## every unit and integration test, against the real MariaDB
	scripts/ensure-mysql.sh
	$(GO) test -count=1 -timeout 30m $(PKGS)

test-race: ## the packages with concurrency of their own, under the race detector
	scripts/ensure-mysql.sh
	$(GO) test -count=1 -race ./internal/ledger/... ./internal/encryption/... ./internal/auth/...

bench: ## benchmarks; figures and ratios against same-run baselines go to stdout
	scripts/ensure-mysql.sh
	$(GO) test -run '^$$' -bench . -benchtime 3x -benchmem ./internal/...
	$(GO) build -o $(BIN)/ ./starter ./worker
	$(BIN)/starter --log-level warn bench
	$(BIN)/starter --log-level warn bench --rss-file-bytes 1073741824 --worker-bin $(BIN)/worker
	$(BIN)/starter --log-level warn bench --download --serve-bin $(BIN)/starter --worker-bin $(BIN)/worker

lint: ## formatting and vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

build: ## binaries into bin/
	$(GO) build -o $(BIN)/ ./starter ./worker

migrate: ## apply migrations to PAYMENTS_MYSQL_DSN
	$(GO) run ./starter migrate

clean:
	rm -rf $(BIN)
