# Vigil — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
API_PKG := github.com/vigil-tsdb/vigil/api
LDFLAGS := -X $(API_PKG).Version=$(VERSION) -X $(API_PKG).Revision=$(shell git rev-parse HEAD 2>/dev/null) \
	-X $(API_PKG).Branch=$(shell git rev-parse --abbrev-ref HEAD 2>/dev/null) -X $(API_PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION := v0.8.2
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
PROTOC_GEN_GO_VTPROTO_VERSION := v0.6.0
# Debian packages the tests and benchmarks run against (interop, comparisons).
DEBIAN_PKGS := prometheus prometheus-node-exporter victoria-metrics
FUZZTIME ?= 10s
# Every fuzz target, as package:Name; `make test` runs each for $(FUZZTIME).
FUZZ_TARGETS := \
	./storage:FuzzWALRecord \
	./ingester/ingesterpb:FuzzPushRequest \
	./ring:FuzzMemberMeta \
	./ring:FuzzGossipState \
	./collector:FuzzDecodeTarget \
	./api:FuzzRemoteWrite \
	./api:FuzzTextImport \
	./api:FuzzLineProtocol

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-14s\033[0m %s\n",$$1,$$2}'

.PHONY: build
build: ## Build bin/vigil and bin/vigil-bench.
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

.PHONY: run
run: build ## Build and run single-node Vigil with ./data (every role in one process).
	./$(BIN)/vigil

.PHONY: deps
deps: ## Install the Debian packages the tests need (prometheus, node_exporter, victoria-metrics).
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-node-exporter >/dev/null || missing="$$missing prometheus-node-exporter"; \
	command -v victoria-metrics >/dev/null || missing="$$missing victoria-metrics"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

.PHONY: test
test: deps ## Unit + integration tests with the race detector, then each fuzz target briefly.
	$(GO) test -race -count=1 -timeout 30m ./...
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	done

.PHONY: test-short
test-short: ## Unit tests only (-short), no race detector: the quick loop.
	$(GO) test -short -count=1 ./...

.PHONY: lint
lint: ## gofmt, go vet, staticcheck, generated code current.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@# stdmethods off: chunkenc.Iterator's Seek(int64) ValueType is not io.Seeker.
	$(GO) vet -stdmethods=false ./...
	@test -x $(GOBIN_DIR)/staticcheck || GOBIN=$(GOBIN_DIR) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN_DIR)/staticcheck ./...

.PHONY: proto
proto: ## Regenerate gRPC code from .proto files (needs protoc; installs the Go plugins).
	@command -v protoc >/dev/null || (apt-get update -qq && apt-get install -y -qq protobuf-compiler)
	@test -x $(GOBIN_DIR)/protoc-gen-go || GOBIN=$(GOBIN_DIR) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@test -x $(GOBIN_DIR)/protoc-gen-go-grpc || GOBIN=$(GOBIN_DIR) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@test -x $(GOBIN_DIR)/protoc-gen-go-vtproto || GOBIN=$(GOBIN_DIR) $(GO) install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@$(PROTOC_GEN_GO_VTPROTO_VERSION)
	PATH=$(GOBIN_DIR):$$PATH protoc --go_out=paths=source_relative:. --go-grpc_out=paths=source_relative:. \
		--go-vtproto_out=paths=source_relative:. --go-vtproto_opt=features=marshal+unmarshal+size \
		$$(git ls-files '*.proto')

.PHONY: proto-check
proto-check: proto ## Fail if generated code differs from what is committed.
	git diff --exit-code -- '*.pb.go'

.PHONY: bench
bench: deps build ## Compare Vigil, VictoriaMetrics and Prometheus on the same load (SMALL=1 for a ~1 min run).
	./$(BIN)/vigil-bench compare $(if $(SMALL),-small,)
