# keygate — every target is honest: it fails when its tool or its check fails.
GO        ?= go
PKGS      := ./...
BIN       := bin/keygate
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 30s

.PHONY: help build run demo test unit vet bench bench-go bench-load fuzz soak lint fmt-check

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/keygate
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/keygate

run: build ## serve the demo keys and routes (examples/) on loopback; the read-only console on 127.0.0.1:9194
	@echo 'keygate run: the console (read-only) is at http://127.0.0.1:9194/ — sign in with the demo account key kg_aak_nUiYTIUqr5Aj7kIUAGkO8XBSCjI5Lh45WctQ (README "Try it")'
	$(BIN) serve --keys-file examples/keys.yaml --routes-file examples/routes.yaml \
		--authz-addr 127.0.0.1:9191 --admin-addr 127.0.0.1:9193 --console-addr 127.0.0.1:9194 --log-format text --log-level debug

demo: build ## database mode on the local PostgreSQL (DEMO_DATABASE_URL, default database keygate_demo), seeded with the demo apps, tenants and keys; the console on 127.0.0.1:9194
	KEYGATE=$(BIN) scripts/demo.sh

test: vet fmt-check lint proto-check graphql-check ## the whole suite: vet, gofmt, staticcheck, generated code, unit + integration tests with -race, fuzz seed corpora
	$(GO) test -race -shuffle=on -count=1 -timeout 15m $(PKGS)

unit: ## unit tests only (no integration/)
	$(GO) test -race -shuffle=on -count=1 $$($(GO) list ./... | grep -v /integration)

vet: ## go vet
	$(GO) vet $(PKGS)

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# --- performance (docs/performance.md). `make bench` = bench-go + bench-load.
# ghz is installed from the Go module proxy at a pinned version into its
# own directory of bin/, so that changing GHZ_VERSION installs it again.
BENCH_COUNT      ?= 5
GHZ_VERSION      := v0.121.0
GHZ              := $(CURDIR)/bin/ghz-$(GHZ_VERSION)/ghz
BENCH_OUT        ?= $(CURDIR)/bin/bench
BENCH_LOAD_FLAGS ?= -large -profile

bench: bench-go bench-load ## Go benchmarks, then the load run against the floor server (needs PostgreSQL)

bench-go: ## Go benchmarks of the hot path (ns/op, allocs/op; BENCH_COUNT runs each, for benchstat)
	$(GO) test -run=NONE -bench=. -benchmem -count=$(BENCH_COUNT) ./pkg/...

bench-load: $(GHZ) ## load run: floor vs keygate with ghz, 100k and 1M keys in PostgreSQL (DATABASE_URL; results in BENCH_OUT)
	$(GO) run ./bench/load -ghz $(GHZ) -out $(BENCH_OUT) $(BENCH_LOAD_FLAGS)

$(GHZ):
	GOBIN=$(dir $(GHZ)) $(GO) install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

# envoyproxy/ratelimit, Envoy's global rate-limit service, for the
# integration test of per-key rate limits (integration/ratelimit_test.go,
# which installs it the same way when missing): from the Go module proxy at
# a pinned pseudo-version (the project tags no releases) into bin/.
RATELIMIT_VERSION := v1.4.1-0.20260122083618-3fb702589d36
RATELIMIT         := $(CURDIR)/bin/ratelimit-$(RATELIMIT_VERSION)/service_cmd

.PHONY: ratelimit
ratelimit: $(RATELIMIT) ## install envoyproxy/ratelimit (pinned) into bin/ for the rate-limit integration test

$(RATELIMIT):
	GOBIN=$(dir $(RATELIMIT)) $(GO) install github.com/envoyproxy/ratelimit/src/service_cmd@$(RATELIMIT_VERSION)

fuzz: ## run every fuzz target for FUZZTIME each, then a line per target with its executions
	FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh

soak: ## long tests: 1,000,000 keys warm load and memory, longer faults, 1M-key spraying, 1 min churn
	KEYGATE_LONG=1 $(GO) test -count=1 -v -timeout 30m -run 'Scale|LoadAll|FaultsUnderLoad|KeySpraying|ConcurrentChecks' ./integration/ ./pkg/store/postgres/

STATICCHECK_VERSION := v0.8.2

lint: ## staticcheck at a pinned version, from the Go module proxy
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

# --- protobuf: buf and the Go plugins come from the Go module proxy at pinned
# versions (no remote plugins, no BSR); the plugins are installed into bin/.
BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
TOOLS_BIN                  := $(CURDIR)/bin
BUF                        := $(GO) run github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
PROTO_GEN_DIR              := pkg/account/accountv1

.PHONY: tools proto proto-check

tools: ## install the protoc plugins (pinned versions) into bin/
	GOBIN=$(TOOLS_BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(TOOLS_BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

proto: tools ## buf lint, then regenerate the Go code of proto/ (committed)
	$(BUF) lint
	PATH="$(TOOLS_BIN):$$PATH" $(BUF) generate

proto-check: tools ## buf lint, regenerate into a temp dir, fail if the committed code differs
	$(BUF) lint
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	PATH="$(TOOLS_BIN):$$PATH" $(BUF) generate --output "$$tmp" && \
	if ! diff -ru "$(PROTO_GEN_DIR)" "$$tmp/$(PROTO_GEN_DIR)"; then \
		echo "generated code is out of date with proto/: run make proto"; exit 1; \
	fi

# --- GraphQL: the Account API's schema (pkg/accountgraphql/*.graphqls, one
# file per area, listed in its gqlgen.yml) drives gqlgen, from the Go module
# proxy at a pinned version; its output (generated.go, models_gen.go) is
# committed. The resolvers are written by
# hand beside it, so gqlgen's own resolver generation is off.
GQLGEN_VERSION := v0.17.98
GQLGEN         := $(GO) run github.com/99designs/gqlgen@$(GQLGEN_VERSION)
GRAPHQL_DIR    := pkg/accountgraphql
GRAPHQL_GEN    := generated.go models_gen.go

.PHONY: graphql graphql-check

graphql: ## regenerate the GraphQL Account API's code from its schema (committed)
	cd $(GRAPHQL_DIR) && $(GQLGEN) generate --config gqlgen.yml

graphql-check: ## regenerate the GraphQL code and fail if the committed code differs (it is put back)
	@tmp=$$(mktemp -d); \
	for f in $(GRAPHQL_GEN); do cp "$(GRAPHQL_DIR)/$$f" "$$tmp/$$f"; done; \
	(cd $(GRAPHQL_DIR) && $(GQLGEN) generate --config gqlgen.yml) || { rm -rf "$$tmp"; exit 1; }; \
	status=0; \
	for f in $(GRAPHQL_GEN); do \
		if ! diff -u "$$tmp/$$f" "$(GRAPHQL_DIR)/$$f"; then status=1; fi; \
		cp "$$tmp/$$f" "$(GRAPHQL_DIR)/$$f"; \
	done; \
	rm -rf "$$tmp"; \
	if [ $$status -ne 0 ]; then echo "generated GraphQL code is out of date with $(GRAPHQL_DIR)/*.graphqls: run make graphql"; exit 1; fi
