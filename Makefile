# Iter8 in Rust. `make demo` runs an example experiment locally; `make test` installs what the
# tests need and runs them all.
SHELL := /bin/bash
CARGO ?= cargo
# helm for the tests and targets: a real helm on PATH, else scripts/helm (Helm v4 as a library).
HELM ?= $(shell bash scripts/helm-path)
export HELM

.PHONY: all build demo test test-only setup lint fmt bench image kind-up kind-e2e schemas snapshot

all: build

build:
	$(CARGO) build --release --bins

demo:
	bash scripts/demo

# Installs test dependencies (Debian packages, Python venv with Helm), then runs every test.
test: setup lint test-only

setup:
	bash scripts/setup-test-env

test-only:
	bash scripts/run-tests

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	bash scripts/bench

# Re-render the chart's committed snapshots (tests/chart/snapshots) from charts/iter8/ci.
snapshot:
	bash scripts/chart-snapshot
