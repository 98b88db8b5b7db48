# Payment Management Service. `make dev` runs the whole stack in one process;
# `make test` runs every test (needs the local MySQL/MariaDB, started if down).

GO        ?= go
PKGS      := ./...
BIN       := bin
# make fuzz: how long each fuzz target runs, which ones (a regexp on their
# names), and extra go test flags (e.g. -parallel 1 on a shared machine).
FUZZTIME  ?= 30s
FUZZ      ?= .
FUZZFLAGS ?=

.PHONY: dev cluster test drill test-race fuzz bench lint build migrate compose-check clean

# docker-compose.yml requires these variables; dummy values let
# `docker-compose config` check the file's syntax and interpolation without
# real secrets (they take precedence over a local .env).
COMPOSE_DUMMY_ENV := MYSQL_ROOT_PASSWORD=x PAYMENTS_MYSQL_PASSWORD=x TEMPORAL_DB_PASSWORD=x \
	PAYMENTS_S3_ACCESS_KEY=x PAYMENTS_S3_SECRET_KEY=x PAYMENTS_KEYS=x PAYMENTS_BLIND_INDEX_KEY=x \
	PAYMENTS_API_TOKENS=x PAYMENTS_CODEC_TOKEN=x
COMPOSE_CHECK = if command -v docker-compose >/dev/null 2>&1; then \
		env $(COMPOSE_DUMMY_ENV) docker-compose -f docker-compose.yml config -q \
		&& echo "docker-compose.yml: valid"; \
	else echo "docker-compose.yml: not validated (docker-compose is not on PATH)"; fi

# dev and cluster build, then exec the binary: under `go run`, Ctrl-C made
# go exit 1 after the service's clean stop, and make printed an error.
dev: ## run embedded Temporal + UI (:8233), worker and HTTP API (:8080)
	@$(GO) build -o $(BIN)/ ./starter && exec $(BIN)/starter dev

cluster: ## the scale-out shape on this machine: Temporal server on PostgreSQL + UI (:8233), two workers, one API (:8080)
	scripts/ensure-mysql.sh
	scripts/ensure-postgres.sh
	@$(GO) build -o $(BIN)/ ./starter && exec $(BIN)/starter cluster

test: ## every unit and integration test against the real MariaDB and PostgreSQL, then the drills; validates docker-compose.yml
	@$(COMPOSE_CHECK)
	scripts/ensure-mysql.sh
	scripts/ensure-postgres.sh
	$(GO) test -count=1 -timeout 30m $(PKGS)
	$(MAKE) drill

drill: ## crash drills on the cluster topology: real Temporal server process, worker processes, S3 staging, faults
	scripts/ensure-mysql.sh
	scripts/ensure-postgres.sh
	PAYMENTS_DRILL=1 $(GO) test -count=1 -timeout 40m -v ./internal/drill/

test-race: ## the packages with concurrency of their own, under the race detector
	scripts/ensure-mysql.sh
	$(GO) test -count=1 -race ./internal/ledger/... ./internal/encryption/... ./internal/auth/...

fuzz: ## every fuzz target for FUZZTIME each (default 30s), one after another; a crasher is saved under its package's testdata/fuzz
	@failed=""; \
	for t in $$(grep -rHo --include='*_test.go' --exclude-dir=.git --exclude-dir=.data --exclude-dir=bin '^func Fuzz[A-Za-z0-9_]*' . \
			| sed 's/:func /:/' | sort | grep -E ":($(FUZZ))"); do \
		dir=$$(dirname $${t%%:*}); name=$${t##*:}; \
		echo "== $$name ($$dir)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$dir/ || failed="$$failed $$dir:$$name"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed"; exit 1; fi

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

compose-check: ## validate docker-compose.yml with docker-compose (skipped when not installed)
	@$(COMPOSE_CHECK)

clean:
	rm -rf $(BIN)
