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
# kustomize v5.8.3 needs Go 1.27; v5.8.2 builds with the Go here.
KUSTOMIZE_VERSION := v5.8.2
KUSTOMIZE := $(TOOLS_BIN)/kustomize-$(KUSTOMIZE_VERSION)
# helm v4.3.1 builds with the Go here (about 2.5 minutes on 2 cores, once).
HELM_VERSION := v4.3.1
HELM := $(TOOLS_BIN)/helm-$(HELM_VERSION)
# The Go code of the Open Inference Protocol's gRPC service (internal/oippb): protoc from Debian
# (protobuf-compiler, which .ci/run installs), its Go plugins pinned here. protoc-gen-go's version
# is go.mod's google.golang.org/protobuf.
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO := $(TOOLS_BIN)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION)
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTOC_GEN_GO_GRPC := $(TOOLS_BIN)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)

CHART := charts/freightcast

.PHONY: all
all: build

##@ Generated code

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs and RBAC from the API types and kubebuilder markers (and the chart's copies).
	$(CONTROLLER_GEN) rbac:roleName=freightcast-manager crd paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	rm -f $(CHART)/files/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/files/crds/
	cp config/rbac/role.yaml $(CHART)/files/role.yaml

.PHONY: docs
docs: ## Generate docs/reference.md from the CRD schemas.
	go run ./hack/crd-reference config/crd/bases > docs/reference.md

.PHONY: conformance-table
conformance-table: ## Rewrite docs/inference.md's ONNX backend-suite table (make test fails when it drifts).
	FREIGHTCAST_UPDATE_DOCS=1 go test -count=1 -run '^TestBackendSuite$$' ./internal/model/

.PHONY: generate
generate: $(CONTROLLER_GEN) $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) ## Generate the DeepCopy methods and the gRPC code of the Open Inference Protocol.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths="./api/..."
	@command -v protoc >/dev/null || { echo "protoc is missing: apt-get install protobuf-compiler (.ci/run does)"; exit 1; }
	protoc --plugin=protoc-gen-go=$(PROTOC_GEN_GO) --plugin=protoc-gen-go-grpc=$(PROTOC_GEN_GO_GRPC) -I internal/oippb \
		--go_out=internal/oippb --go_opt=paths=source_relative --go_opt=Mopen_inference_grpc.proto=github.com/freightcast/freightcast/internal/oippb \
		--go-grpc_out=internal/oippb --go-grpc_opt=paths=source_relative --go-grpc_opt=Mopen_inference_grpc.proto=github.com/freightcast/freightcast/internal/oippb \
		open_inference_grpc.proto

.PHONY: samples
samples: ## Regenerate the sample ConfigMaps that carry the model files (config/samples/, docs/examples/).
	hack/sample-model-configmap.sh

# Everything that generators write: checked for drift against what is committed.
GENERATED := api/v1alpha1/zz_generated.deepcopy.go internal/oippb/*.pb.go config/crd/bases config/rbac/role.yaml config/samples/freightcast_v1alpha1_model_configmap.yaml docs/examples/*/model_configmap.yaml \
	$(CHART)/files/crds $(CHART)/files/role.yaml docs/reference.md

.PHONY: verify
verify: manifests generate samples docs ## Fail when generated files drift from the committed ones.
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		echo "generated files differ from the committed ones; run 'make manifests generate samples docs' and commit:"; \
		git status --porcelain -- $(GENERATED); git --no-pager diff --stat -- $(GENERATED); exit 1; fi

##@ Development

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: fmt-check
fmt-check: ## Fail when a Go file is not gofmt-formatted.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## Run go vet (the e2e suite and the onnxruntime anchor included: they only build with their tags).
	go vet ./...
	go vet -tags e2e ./test/e2e/
	CGO_ENABLED=1 go vet -tags ortbench ./internal/model/

.PHONY: lint
lint: fmt vet ## gofmt and go vet (the linters that build here without downloads).

.PHONY: fixtures
fixtures: ## Retrain the model fixtures of internal/model/testdata/models (needs Debian's python3-sklearn, -xgboost, -torch, -onnx).
	/usr/bin/python3 hack/modelfixtures/modelfixtures.py generate

.PHONY: fixtures-check
fixtures-check: ## Check that the committed model fixtures are what hack/modelfixtures writes (same bytes).
	/usr/bin/python3 hack/modelfixtures/modelfixtures.py check

.PHONY: build
build: ## Build bin/freightcast.
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/freightcast ./cmd/freightcast

.PHONY: run
run: build ## The main job: the sample pipeline and model on this machine, on an embedded NATS (Ctrl-C stops it).
	bin/freightcast run -f config/samples/

IMG ?= freightcast:$(VERSION)

.PHONY: docker-build
docker-build: ## Build the image with a Docker engine (IMG=...). This machine has none: see the Dockerfile.
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd for envtest (once; cached outside the clone).
	@hack/k8s-binaries.sh >/dev/null

.PHONY: build-installer
build-installer: manifests $(KUSTOMIZE) ## Render config/default into dist/install.yaml, one file to kubectl apply.
	@mkdir -p dist
	$(KUSTOMIZE) build config/default > dist/install.yaml

.PHONY: helm-lint
helm-lint: manifests $(HELM) ## Lint the chart strictly, with its default values and the other value sets the tests render.
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --set nats.enabled=false --set nats.url=nats://nats.messaging.svc:4222
	$(HELM) lint --strict $(CHART) --set nats.replicas=3 --set monitoring.serviceMonitor.enabled=true \
		--set monitoring.podMonitor.enabled=true --set monitoring.prometheusRule.enabled=true \
		--set monitoring.dashboard.enabled=true --set networkPolicy.enabled=true

.PHONY: test
test: manifests generate fmt-check vet envtest build-installer helm-lint ## Run every test with the race detector, against a real kube-apiserver and etcd (and the chart's, with helm).
	KUBEBUILDER_ASSETS="$$(hack/k8s-binaries.sh)" HELM="$(HELM)" go test -race -count=1 ./...

.PHONY: bench
bench: ## Run the Go benchmarks (figures go to docs/benchmarks.md), with the onnxruntime anchor when its library can be fetched.
	go test -run '^$$' -bench . -benchmem ./...
	if lib=$$(bash hack/onnxruntime.sh); then \
		ORT_LIB="$$lib" CGO_ENABLED=1 go test -tags ortbench -run '^$$' -bench 'Freight|TorchTabular|Trees|Conv' -benchmem ./internal/model/; \
	else echo "bench: onnxruntime anchor skipped (hack/onnxruntime.sh failed)"; fi

##@ A real cluster (single node, built from source; needs root)

CLUSTER := hack/cluster/cluster.sh

.PHONY: cluster-up
cluster-up: ## Build (cached) and start the single-node test cluster; prints its KUBECONFIG.
	$(CLUSTER) up

.PHONY: cluster-down
cluster-down: ## Stop the test cluster and remove its state, restoring what it changed.
	$(CLUSTER) down

.PHONY: e2e
e2e: ## Run the end-to-end tests on the test cluster (make cluster-up first); timings go to docs/benchmarks.md.
	hack/cluster/e2e.sh

.PHONY: demo
demo: ## The main job on a real Kubernetes: cluster up, operator and NATS installed, samples applied, endpoints printed.
	hack/cluster/demo.sh

##@ Help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Tools (pinned, built from the Go module proxy into $(TOOLS_BIN))

$(CONTROLLER_GEN):
	@mkdir -p $(TOOLS_BIN)/.$(@F)
	GOBIN=$(TOOLS_BIN)/.$(@F) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(TOOLS_BIN)/.$(@F)/controller-gen $@ && rmdir $(TOOLS_BIN)/.$(@F)

$(HELM):
	@mkdir -p $(TOOLS_BIN)/.$(@F)
	GOBIN=$(TOOLS_BIN)/.$(@F) go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	mv $(TOOLS_BIN)/.$(@F)/helm $@ && rmdir $(TOOLS_BIN)/.$(@F)

$(KUSTOMIZE):
	@mkdir -p $(TOOLS_BIN)/.$(@F)
	GOBIN=$(TOOLS_BIN)/.$(@F) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(TOOLS_BIN)/.$(@F)/kustomize $@ && rmdir $(TOOLS_BIN)/.$(@F)

$(PROTOC_GEN_GO):
	@mkdir -p $(TOOLS_BIN)/.$(@F)
	GOBIN=$(TOOLS_BIN)/.$(@F) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	mv $(TOOLS_BIN)/.$(@F)/protoc-gen-go $@ && rmdir $(TOOLS_BIN)/.$(@F)

$(PROTOC_GEN_GO_GRPC):
	@mkdir -p $(TOOLS_BIN)/.$(@F)
	GOBIN=$(TOOLS_BIN)/.$(@F) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	mv $(TOOLS_BIN)/.$(@F)/protoc-gen-go-grpc $@ && rmdir $(TOOLS_BIN)/.$(@F)

.PHONY: print-kustomize print-helm
print-kustomize: $(KUSTOMIZE)
	@echo $(KUSTOMIZE)
print-helm: $(HELM)
	@echo $(HELM)
