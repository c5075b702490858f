#!/usr/bin/env bash
# Builds and starts kubecache on its embedded store (in memory), on http://127.0.0.1:8080
# (and https://127.0.0.1:6443).
# Extra arguments go to `kubecache serve` (e.g. --data-dir /tmp/kc, --insecure-port 9090).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --build-only
# The secure port (6443, self-signed certificate) allows anonymous requests with the default
# AlwaysAllow authorization, as kube-apiserver's flag defaults do: keep it on loopback here
# unless --bind-address is given.
bind=(--bind-address 127.0.0.1)
for arg in "$@"; do
  [[ $arg == --bind-address* ]] && bind=()
done
exec cargo run --release -q -p kubecache-server -- serve "${bind[@]}" "$@"
