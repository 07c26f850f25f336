# Tessera: build, run and test.
#
#   make run    build and start a local 3-node cluster on 127.0.0.11-13:7000 (data in ./data/)
#   make add-node NODE=4   add n4 (127.0.0.14) to the running `make run` cluster (4 to 9)
#   make test   formatting, lints and every test
#   make bench  benchmarks: one node against its ceilings, 3 nodes against 3-node etcd, then
#               membership (detection, gossip traffic, false positives under load); make
#               bench-node, bench-cluster or bench-membership for one of them (docs/performance.md)
#   make chaos  partitions, kills and pauses 5 local nodes under a workload for 5 minutes, checks
#               the history and writes a report (as root; CHAOS_ARGS="--seed 3" replays seed 3;
#               docs/chaos.md)
#
# `make deps` installs the system packages the build needs (Debian/Ubuntu); run and test call it.

SHELL := /bin/bash
# One target dir outside the checkout, shared by every clone: RocksDB's C++ build takes ~15 minutes.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/tessera/target
CARGO ?= cargo
BIN := $(CARGO_TARGET_DIR)/debug/tessera
RELEASE_BIN := $(CARGO_TARGET_DIR)/release/tessera

# Debian packages: clang/libclang for RocksDB's bindings, iptables and iproute2 for partition
# tests, curl for the quick start. The benchmarks also need wrk, jq and etcd (to compare with).
DEB_PACKAGES := clang libclang-dev curl iptables iproute2
BENCH_PACKAGES := wrk jq etcd-server

.PHONY: add-node all deps bench-deps install-packages build run test fmt-check lint unit-test bench bench-node bench-cluster bench-membership bench-rebalance chaos clean-data help

all: build

help:
	@sed -n '1,13p' Makefile

deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(DEB_PACKAGES)"
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }
	@rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy 2>/dev/null || true

bench-deps: deps
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(BENCH_PACKAGES)"

# Installs the Debian packages in PACKAGES that are missing (with sudo when not root).
install-packages:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(CARGO) build --bin tessera

run: build
	TESSERA_BIN=$(BIN) scripts/run-local.sh

add-node: build
	TESSERA_BIN=$(BIN) scripts/add-node.sh $(NODE)

fmt-check:
	$(CARGO) fmt --all -- --check

lint: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit-test: deps
	$(CARGO) test --workspace --exclude tessera-tests

test: deps fmt-check lint
	$(CARGO) build --bin tessera
	TESSERA_BIN=$(BIN) $(CARGO) test --workspace

bench: bench-node bench-cluster bench-membership

bench-node: bench-deps
	scripts/bench-node.sh

bench-cluster: bench-deps
	scripts/bench-cluster.sh

bench-membership: bench-deps
	scripts/bench-membership.sh

bench-rebalance: bench-deps
	scripts/bench-rebalance.sh

chaos: deps
	$(CARGO) build --bin tessera --bin tessera-chaos
	CHAOS_NO_BUILD=1 TESSERA_BIN=$(BIN) scripts/chaos.sh $(CHAOS_ARGS)

clean-data:
	rm -rf ./data
