# Freightcast. `make run` runs the main job locally; `make test` runs every test (what .ci/run calls).

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Build outputs that are expensive on two cores (tools, kube-apiserver, etcd) live outside the clone,
# so a fresh clone on the same machine reuses them.
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/freightcast
TOOLS_BIN := $(CACHE_DIR)/tools/bin
export GOTOOLCHAIN := local

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/freightcast/freightcast/internal/version.Version=$(VERSION)

CONTROLLER_GEN_VERSION := v0.21.0
CONTROLLER_GEN := $(TOOLS_BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)

.PHONY: all
all: build

##@ Development

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: fmt vet ## gofmt and go vet (the linters that build here without downloads).

.PHONY: build
build: ## Build bin/freightcast.
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/freightcast ./cmd/freightcast

.PHONY: bench
bench: ## Run the Go benchmarks (figures go to docs/benchmarks.md), with the onnxruntime anchor when its library can be fetched.
	go test -run '^$$' -bench . -benchmem ./...
	if lib=$$(bash hack/onnxruntime.sh); then \
		ORT_LIB="$$lib" CGO_ENABLED=1 go test -tags ortbench -run '^$$' -bench 'Freight' -benchmem ./internal/model/; \
	else echo "bench: onnxruntime anchor skipped (hack/onnxruntime.sh failed)"; fi

##@ Help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
