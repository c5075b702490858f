#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/integration/conformance/end-to-end tests
# (Rust, with real etcd and kubectl), then the official Python client's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build"
cargo build -p kubecache-server
echo "== Rust tests (cargo nextest)"
# The loadgen's tests use the binary just built instead of running cargo inside a test.
KUBECACHE_BIN="$PWD/target/debug/kubecache" cargo nextest run --workspace --profile ci
echo "== Python client tests (pytest)"
KUBECACHE_BIN="$PWD/target/debug/kubecache" python3 -m pytest -q tests/python
