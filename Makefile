# Tessera: build, run and test.
#
#   make run    build and start a local 3-node cluster on 127.0.0.11-13:7000 (data in ./data/)
#   make test   formatting, lints and every test
#   make bench  single-node benchmark against its own ceilings (see docs/performance.md)
#
# `make deps` installs the system packages the build needs (Debian/Ubuntu); run and test call it.

SHELL := /bin/bash
# One target dir outside the checkout, shared by every clone: RocksDB's C++ build takes ~15 minutes.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/tessera/target
CARGO ?= cargo
BIN := $(CARGO_TARGET_DIR)/debug/tessera
RELEASE_BIN := $(CARGO_TARGET_DIR)/release/tessera

# Debian packages: clang/libclang for RocksDB's bindings, wrk for benchmarks, iptables and
# iproute2 for partition tests, curl for the quick start.
DEB_PACKAGES := clang libclang-dev curl wrk iptables iproute2

.PHONY: all deps build run test fmt-check lint unit-test bench clean-data help

all: build

help:
	@sed -n '1,8p' Makefile

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }
	@rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy 2>/dev/null || true

build: deps
	$(CARGO) build --bin tessera

run: build
	TESSERA_BIN=$(BIN) scripts/run-local.sh

fmt-check:
	$(CARGO) fmt --all -- --check

lint: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit-test: deps
	$(CARGO) test --workspace --exclude tessera-tests

test: deps fmt-check lint
	$(CARGO) build --bin tessera
	TESSERA_BIN=$(BIN) $(CARGO) test --workspace

bench: deps
	scripts/bench-node.sh

clean-data:
	rm -rf ./data
