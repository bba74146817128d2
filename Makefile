# Iter8 in Rust. `make demo` runs an example experiment locally; `make test` installs what the
# tests need and runs them all.
SHELL := /bin/bash
CARGO ?= cargo
# helm for the tests and targets: Helm v4 (and v3 as HELM3) built from source by scripts/tools.
HELM ?= $(shell bash scripts/helm-path)
HELM3 ?= $(shell bash scripts/helm-path 3)
export HELM HELM3
# The runner image (the chart's image.repository default) and its tag (the chart's appVersion).
IMAGE_REPO ?= ghcr.io/iter8-rs/iter8-runner
VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' charts/iter8/Chart.yaml)
IMAGE ?= $(IMAGE_REPO):$(VERSION)
CONTAINER ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
MUSL_TARGET := x86_64-unknown-linux-musl
KIND_CLUSTER ?= iter8

.PHONY: all build demo test test-only setup lint fmt bench fuzz image image-check kind-up kind-down kind-e2e schemas snapshot chart-docs

all: build

build:
	$(CARGO) build --release --bins

demo:
	bash scripts/demo

# Installs test dependencies (Debian packages; helm, kubectl and the Kubernetes control plane
# built from source by scripts/tools; a Python venv; the musl target), builds the runner image
# (tests/tests/e2e_image.rs runs it under podman), then runs every test.
test: setup lint image test-only

setup:
	bash scripts/setup-test-env

test-only:
	ITER8_TEST_IMAGE=$(IMAGE) bash scripts/run-tests

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	bash scripts/cargo-machete
	@# the workflows, and action.yml through the workflow that uses it
	"$$(bash scripts/tools path actionlint)" .github/workflows/*.yaml
	@# the chart's README is what helm-docs generates from values.yaml (scripts/chart-docs)
	bash scripts/chart-docs --check

fmt:
	$(CARGO) fmt --all

bench:
	bash scripts/bench

# Long fuzz runs: every target of fuzz/ for FUZZ_MINUTES (default 10) each, one after the
# other (`make test` runs each for a few seconds). See scripts/fuzz.
FUZZ_MINUTES ?= 10
fuzz:
	for t in $$(bash scripts/fuzz list); do bash scripts/fuzz run $$t $(FUZZ_MINUTES) || exit 1; done

# Re-render the chart's committed snapshots (tests/chart/snapshots) from charts/iter8/ci.
snapshot:
	bash scripts/chart-snapshot

# Regenerate charts/iter8/README.md from values.yaml and README.md.gotmpl (helm-docs).
chart-docs:
	bash scripts/chart-docs

# The runner image: a static musl binary built on the host, on `FROM scratch` (no base image
# to pull). Needs the musl target (rustup target add x86_64-unknown-linux-musl) and musl-gcc
# (Debian musl-tools), and podman or docker.
image:
	@rustup target list --installed 2>/dev/null | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	$(CARGO) build --profile dist --locked --target $(MUSL_TARGET) -p iter8 --bin iter8-runner
	mkdir -p out/image
	@# one binary per architecture, named as the Dockerfile's TARGETARCH picks it (the release
	@# workflow puts amd64 and arm64 side by side); the release profile strips symbols
	cp "$$(bash scripts/target-dir)/$(MUSL_TARGET)/dist/iter8-runner" out/image/iter8-runner-amd64
	$(CONTAINER) build --build-arg VERSION=$(VERSION) -t $(IMAGE) -f Dockerfile out/image
	@$(CONTAINER) image inspect $(IMAGE) --format '{{.Size}}' | awk '{printf "image $(IMAGE): %.1f MiB\n", $$1/1048576}'

# Run the image once (podman here needs --runtime runc and lowered ulimits).
image-check:
	$(CONTAINER) run --rm $(if $(filter podman,$(CONTAINER)),--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024) $(IMAGE) --version

# A kind cluster for the end-to-end run (laptops, GitHub Actions; not available here).
kind-up:
	kind get clusters 2>/dev/null | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER) --config kind-config.yaml

kind-down:
	kind delete cluster --name $(KIND_CLUSTER)

# Build the image, load it into kind, install httpbin and an experiment, assert the verdict.
kind-e2e: image
	IMAGE=$(IMAGE) CONTAINER=$(CONTAINER) KIND_CLUSTER=$(KIND_CLUSTER) bash scripts/kind-e2e
