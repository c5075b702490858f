#!/usr/bin/env bash
# Installs what building and testing kubecache needs, skipping what is already there:
#   protoc (etcd-client's build), etcd (storage tests), the Python client and pytest
#   (client tests), diff (kubectl diff), cargo-nextest (test runner). kubectl is expected at
#   /usr/bin/kubectl. The kube-rs suite needs nothing beyond cargo (plain HTTP, no TLS stack).
# Usage: scripts/install-deps.sh [--build-only]
set -euo pipefail

build_only=false
[ "${1:-}" = "--build-only" ] && build_only=true

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_packages=()
command -v protoc >/dev/null 2>&1 || apt_packages+=(protobuf-compiler)
if ! $build_only; then
  command -v etcd >/dev/null 2>&1 || apt_packages+=(etcd-server)
  # etcdctl puts the values a real kube-apiserver wrote (shared/fixtures/kube-storage).
  command -v etcdctl >/dev/null 2>&1 || apt_packages+=(etcd-client)
  # `kubectl diff` runs diff(1) (the kubectl suite's diff test).
  command -v diff >/dev/null 2>&1 || apt_packages+=(diffutils)
  # The loadgen's TLS test makes its CA and certificates with the openssl command.
  command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "install-deps: installing ${apt_packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

$build_only && exit 0

if ! python3 -c 'import kubernetes, pytest' >/dev/null 2>&1; then
  echo "install-deps: installing the Python client and pytest"
  python3 -m pip install -q kubernetes pytest
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest"
  cargo install --locked -q cargo-nextest
fi

if ! command -v kubectl >/dev/null 2>&1; then
  echo "install-deps: kubectl is not installed; the end-to-end tests need it at /usr/bin/kubectl" >&2
  exit 1
fi
