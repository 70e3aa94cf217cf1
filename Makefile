# Palisade — one Makefile for a brand-new machine and for every day.
#   make test   installs what is missing, builds everything, runs the whole suite
#   make demo   installs what is missing, builds, brings up the local demo mesh
SHELL := /bin/bash
.DEFAULT_GOAL := build

APT_PACKAGES := clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev iproute2 pkg-config make g++ python3 curl tshark haproxy nginx-light openssl
STAMP := .make
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP):
	@mkdir -p $(STAMP)

## System packages (Debian): clang/libbpf for the eBPF objects and the addon, iproute2 for namespaces.
deps-system: | $(STAMP)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

## Node dependencies, exactly as locked.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: deps-system node_modules/.package-lock.json

bpf: deps-system
	$(MAKE) -C bpf

native/build/Release/palisade_native.node: native/binding.gyp $(wildcard native/src/*.c native/src/*.h) | node_modules/.package-lock.json
	npm run --silent build:native

native: deps-system native/build/Release/palisade_native.node

ts: node_modules/.package-lock.json
	npx tsc -p .

build: deps bpf native ts

typecheck: node_modules/.package-lock.json
	npx tsc --noEmit -p .

## The whole suite: unit, integration and privileged (real eBPF in namespaces the tests create).
test: build typecheck
	npx mocha

demo: build
	node dist/cli/main.js demo up

## The C load generator of the data-plane benchmark (the bench script builds it the same way if missing).
dist/bench/loadgen: bench/loadgen/loadgen.c | deps-system
	@mkdir -p $(@D)
	clang -O2 -Wall -Wextra -Werror -o $@ $< -lm

## Benchmarks: figures printed, never asserted. First the data plane against no mesh and a
## haproxy pair (table on stdout, JSON in bench/results/), then the component benchmarks.
bench: build dist/bench/loadgen
	node dist/test/bench/data-plane.js
	node dist/test/bench/policy-eval.js
	node dist/test/bench/flow-ingest.js
	node dist/test/bench/reporter-cost.js
	node dist/test/bench/mesh-figures.js

clean:
	$(MAKE) -C bpf clean
	rm -rf dist native/build $(STAMP)

.PHONY: deps deps-system bpf native ts build typecheck test demo bench clean
