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
DEBIAN_PKGS := prometheus prometheus-node-exporter victoria-metrics prometheus-alertmanager
FUZZTIME ?= 10s
# Every fuzz target, as package:Name; `make test` runs each for $(FUZZTIME)
# through scripts/fuzz.sh (which retries Go's fuzz deadline race, see there).
FUZZ_TARGETS := \
	./storage:FuzzWALRecord \
	./ingester/ingesterpb:FuzzPushRequest \
	./ring:FuzzMemberMeta \
	./ring:FuzzGossipState \
	./collector:FuzzDecodeTarget \
	./collector:FuzzImportPrometheus \
	./collector:FuzzScrapeParse \
	./collector:FuzzSpoolFrame \
	./collector:FuzzAssign \
	./collector:FuzzCoordValue \
	./rules:FuzzRuleGroupValue \
	./model/downsample:FuzzAggregateChunk \
	./api:FuzzRemoteWrite \
	./api:FuzzTextImport \
	./api:FuzzLineProtocol \
	./alerting:FuzzReceiversConfig \
	./alerting:FuzzRoutingConfig \
	./alerting:FuzzDecodeAlerts \
	./cmd/vigil-bench:FuzzActiveIngesters \
	./adapter:FuzzParseConfig

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-14s\033[0m %s\n",$$1,$$2}'

.PHONY: build
build: ## Build bin/vigil, bin/vigil-bench and bin/vigil-adapter.
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

.PHONY: run
run: build ## Build and run single-node Vigil with ./data (every role in one process).
	./$(BIN)/vigil

.PHONY: deps
deps: ## Install the Debian packages the tests need (prometheus, node_exporter, victoria-metrics, alertmanager).
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-node-exporter >/dev/null || missing="$$missing prometheus-node-exporter"; \
	command -v victoria-metrics >/dev/null || missing="$$missing victoria-metrics"; \
	command -v prometheus-alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

.PHONY: test
test: deps proto-check ## Generated code current; unit + integration tests with the race detector, then each fuzz target briefly.
	$(GO) test -race -count=1 -timeout 30m ./...
	@# The downsampling acceptance test at full size (2,000 series x 40 days); under -race it runs 200.
	$(GO) test -count=1 -timeout 20m -run '^TestTiersEqualRaw$$' ./cmd/vigil
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh $(FUZZ_TARGETS)

.PHONY: test-short
test-short: ## Unit tests only (-short), no race detector: the quick loop.
	$(GO) test -short -count=1 ./...

.PHONY: lint
lint: ## gofmt, go vet, staticcheck (make proto-check: generated code current).
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
	@out=$$(git status --porcelain -- '*.pb.go'); if [ -n "$$out" ]; then echo "$$out"; echo "generated code is not current: run make proto and commit it"; exit 1; fi

.PHONY: bench bench-downsample
bench-downsample: ## sum(rate(c[1h])) over 30 days at 1h step, raw vs the 1h tier, and bytes per tier (BENCH_SERIES, BENCH_INTERVAL).
	VIGIL_BENCH_DOWNSAMPLE=1 VIGIL_BENCH_SERIES=$(or $(BENCH_SERIES),1000) VIGIL_BENCH_INTERVAL=$(or $(BENCH_INTERVAL),60s) \
		$(GO) test -count=1 -v -timeout 60m -run '^TestBenchDownsample$$' ./cmd/vigil

bench: deps build ## Compare Vigil, a 3-ingester Vigil cluster, VictoriaMetrics and Prometheus on the same load (SMALL=1 for a short run).
	./$(BIN)/vigil-bench compare $(if $(SMALL),-small,)

# --- Docker: a scratch image and a multi-node cluster on one compose network.
DOCKER ?= docker
DOCKER_IMAGE ?= vigil-tsdb/vigil
# `docker compose` (v2 plugin) when it answers, else docker-compose (v1).
COMPOSE ?= $(shell $(DOCKER) compose version >/dev/null 2>&1 && echo "$(DOCKER) compose" || echo docker-compose)
COMPOSE_FILE := docker/docker-compose.yml
COMPOSE_PROJECT ?= vigil
# Published on 127.0.0.1 only (see docker/docker-compose.yml).
VIGIL_QUERIER_PORT ?= 9009
VIGIL_DISTRIBUTOR_PORT ?= 9010
CLUSTER_READY_TIMEOUT ?= 120
COMPOSE_CMD = VIGIL_IMAGE=$(DOCKER_IMAGE):latest VIGIL_QUERIER_PORT=$(VIGIL_QUERIER_PORT) \
	VIGIL_DISTRIBUTOR_PORT=$(VIGIL_DISTRIBUTOR_PORT) $(COMPOSE) -p $(COMPOSE_PROJECT) -f $(COMPOSE_FILE)

.PHONY: docker
docker: ## Build static vigil, vigil-bench and vigil-adapter into docker/build, then the FROM-scratch image vigil-tsdb/vigil.
	rm -rf docker/build
	mkdir -p docker/build/rootfs/tmp docker/build/datafs/data
	chmod 1777 docker/build/rootfs/tmp
	chmod 0755 docker/build/datafs/data
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o docker/build/ ./cmd/vigil ./cmd/vigil-bench ./cmd/vigil-adapter
	$(DOCKER) build -t $(DOCKER_IMAGE):latest -t $(DOCKER_IMAGE):$(subst +,-,$(VERSION)) docker

.PHONY: cluster-up
cluster-up: ## Start the compose cluster (etcd, 3 ingesters, 2 distributors, 2 queriers, load) and wait until it serves.
	@$(DOCKER) image inspect $(DOCKER_IMAGE):latest >/dev/null 2>&1 || { echo "no image $(DOCKER_IMAGE):latest: run make docker first"; exit 1; }
	$(COMPOSE_CMD) up -d
	@echo "waiting up to $(CLUSTER_READY_TIMEOUT)s for /-/ready and 3 active ingesters in the querier's ring ..."
	@while :; do \
		ring=$$(curl -fsS -m 2 http://127.0.0.1:$(VIGIL_QUERIER_PORT)/metrics 2>/dev/null | grep '^vigil_ring_members'); \
		if curl -fsS -m 2 http://127.0.0.1:$(VIGIL_QUERIER_PORT)/-/ready >/dev/null 2>&1 && \
		   curl -fsS -m 2 http://127.0.0.1:$(VIGIL_DISTRIBUTOR_PORT)/-/ready >/dev/null 2>&1 && \
		   grep -qx 'vigil_ring_members{role="ingester",state="active"} 3' <<<"$$ring" && \
		   grep -qx 'vigil_ring_members_dead{role="ingester"} 0' <<<"$$ring"; then \
			echo "Vigil cluster ready after $${SECONDS}s:"; \
			echo "  query API and UI (querier-1):  http://127.0.0.1:$(VIGIL_QUERIER_PORT)  (try /api/v1/query?query=up, /ring)"; \
			echo "  remote write (distributor-1):  http://127.0.0.1:$(VIGIL_DISTRIBUTOR_PORT)/api/v1/write"; \
			echo "  logs:  $(COMPOSE) -p $(COMPOSE_PROJECT) -f $(COMPOSE_FILE) logs -f"; \
			echo "  stop:  make cluster-down  (VOLUMES=1 also deletes the data volumes)"; \
			exit 0; \
		fi; \
		if [ $$SECONDS -ge $(CLUSTER_READY_TIMEOUT) ]; then \
			echo "not ready after $(CLUSTER_READY_TIMEOUT)s:"; \
			$(COMPOSE_CMD) ps; $(COMPOSE_CMD) logs --no-color --tail=20; exit 1; \
		fi; \
		sleep 1; \
	done

.PHONY: cluster-down
cluster-down: ## Stop and remove the compose cluster (VOLUMES=1 also removes its data volumes).
	$(COMPOSE_CMD) down --remove-orphans $(if $(VOLUMES),--volumes,)

.PHONY: test-docker
test-docker: docker ## Compose fault test: SIGKILL an ingester during writes, 0 acknowledged samples lost (needs Docker).
	@# VIGIL_BIN: the harness' TestMain then reuses the static binary instead of building its own.
	VIGIL_BIN=$(CURDIR)/docker/build/vigil $(GO) test -tags docker -race -count=1 -timeout 15m -run '^TestCompose' -v ./integration/
