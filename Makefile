# keygate — every target is honest: it fails when its tool or its check fails.
GO        ?= go
PKGS      := ./...
BIN       := bin/keygate
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 30s

.PHONY: help build run test unit vet bench fuzz lint fmt-check

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/keygate
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/keygate

run: build ## serve the demo keys and routes (examples/) on loopback
	$(BIN) serve --keys-file examples/keys.yaml --routes-file examples/routes.yaml \
		--authz-addr 127.0.0.1:9191 --admin-addr 127.0.0.1:9193 --log-format text --log-level debug

test: vet fmt-check ## the whole suite: vet, gofmt, unit + integration tests with -race, fuzz seed corpora
	$(GO) test -race -shuffle=on -count=1 -timeout 15m $(PKGS)

unit: ## unit tests only (no integration/)
	$(GO) test -race -shuffle=on -count=1 $$($(GO) list ./... | grep -v /integration)

vet: ## go vet
	$(GO) vet $(PKGS)

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench: ## Go benchmarks of the hot path (ns/op, allocs/op)
	$(GO) test -run=NONE -bench=. -benchmem -count=5 ./pkg/...

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list ./pkg/...); do \
		for f in $$($(GO) test -list='^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; $(GO) test -run=NONE -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg; \
		done; \
	done

lint: ## staticcheck (fails if staticcheck is not installed)
	@command -v staticcheck >/dev/null || { echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@latest"; exit 1; }
	staticcheck $(PKGS)
